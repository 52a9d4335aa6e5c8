//! The resolved tree, typed against the registry → the JSON config and its span table.
//! Unknown keys (with the nearest name), wrong types, ranges, units, missing keys; defaults
//! are filled in so consumers see every parameter.

use super::diag::{Diagnostic, Diagnostics, Loc};
use super::spans::{SpanTable, join};
use super::suggest::nearest;
use super::tree::{Field, Node, NodeKind};
use crate::registry::{self, Category, Component, Def, Param, Ty};
use serde_json::{Map, Value};

/// Types the tree, recording where every value was written.
pub fn check(root: &Node, diags: &mut Diagnostics) -> (Value, SpanTable) {
    let mut c = Checker {
        diags,
        spans: SpanTable::default(),
    };
    let fields = root.fields().unwrap_or(&[]);
    let v = c.record(fields, registry::sections(), "", root.loc, None);
    // A recipe with a model needs the sections that train it; without one (or with
    // `model = none`) it is a partial recipe (`CheckedRecipe::is_partial`).
    if root
        .field("model")
        .is_some_and(|f| f.value.kind != NodeKind::Null)
    {
        for s in ["data", "optimizer", "run"] {
            if root.field(s).is_none() {
                c.diags.push(
                    Diagnostic::error(
                        "E0306",
                        format!("the recipe has a model but no `{s}` section"),
                    )
                    .with_label(
                        root.field("model").map_or(root.loc, |f| f.key_loc),
                        "model defined here",
                    )
                    .with_help(format!(
                        "add `{s} = ...` or import a base recipe that defines it"
                    )),
                );
            }
        }
    }
    (v, c.spans)
}

struct Checker<'a> {
    diags: &'a mut Diagnostics,
    spans: SpanTable,
}

/// The name with its indefinite article.
fn a(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

fn quantity(c: u64, u: crate::syntax::Unit) -> String {
    format!("{c} {}", u.name(c))
}

impl Checker<'_> {
    fn record(
        &mut self,
        fields: &[Field],
        params: &[Param],
        path: &str,
        loc: Loc,
        comp: Option<(&Component, Loc)>,
    ) -> Value {
        let mut m = Map::new();
        let extra: &[Param] = match comp {
            Some((c, _)) if c.category == Category::Hook => registry::hook_common(),
            _ => &[],
        };
        let all = || params.iter().chain(extra);
        for f in fields {
            let p = join(path, &f.key);
            match all().find(|q| q.name == f.key) {
                // `none` switches an optional section or hook off.
                Some(param)
                    if matches!(param.def, Def::Absent) && f.value.kind == NodeKind::Null =>
                {
                    self.spans.insert(p, f.value.loc);
                }
                Some(param) => {
                    let v = self.value(&f.value, &param.ty, &p);
                    m.insert(f.key.clone(), v);
                }
                None => {
                    let what = match comp {
                        Some((c, _)) => format!("`{}`", c.name),
                        None if path.is_empty() => "a recipe".to_string(),
                        None => format!("`{path}`"),
                    };
                    let names: Vec<&str> = all().map(|q| q.name).collect();
                    let renamed = super::habits::renamed(path, &f.key);
                    let help = match nearest(&f.key, names.iter().copied()) {
                        _ if renamed.is_some() => renamed.unwrap_or_default().to_string(),
                        Some(n) => format!("the key is `{n}`"),
                        None if names.is_empty() => format!("{what} takes no keys"),
                        None => format!(
                            "{what} takes {}",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    let code = if path.is_empty() { "E0310" } else { "E0302" };
                    let msg = if path.is_empty() {
                        format!("unknown section `{}`", f.key)
                    } else {
                        format!("unknown key `{}` in {what}", f.key)
                    };
                    self.diags.push(
                        Diagnostic::error(code, msg)
                            .with_label(f.key_loc, "unknown key")
                            .with_help(help),
                    );
                }
            }
        }
        for param in all() {
            if m.contains_key(param.name) {
                continue;
            }
            match &param.def {
                Def::Required => {
                    let (l, what) = match comp {
                        Some((c, tl)) => (tl, format!("`{}`", c.name)),
                        None => (loc, format!("`{path}`")),
                    };
                    self.diags.push(
                        Diagnostic::error(
                            "E0306",
                            format!("missing key `{}` in {what}", param.name),
                        )
                        .with_label(l, format!("needs `{}`", param.name))
                        .with_help(format!(
                            "add `{} = ...`: {} ({})",
                            param.name,
                            param.doc,
                            param.ty.describe()
                        )),
                    );
                }
                d => {
                    if let Some(v) = registry::default_value(d, &param.ty) {
                        m.insert(param.name.to_string(), v);
                    }
                }
            }
        }
        if let Some((c, _)) = comp {
            m.insert("type".into(), Value::from(c.name));
        }
        Value::Object(m)
    }

    fn mismatch(&mut self, n: &Node, ty: &Ty, path: &str) -> Value {
        let mut d = Diagnostic::error(
            "E0303",
            format!("`{path}` expects {}, found {}", ty.describe(), n.describe()),
        )
        .with_label(n.loc, format!("{} here", n.describe()));
        if let NodeKind::Symbol(s) = &n.kind {
            if let Some(h) = super::habits::symbol(s) {
                d = d.with_help(h);
            } else if matches!(ty, Ty::Str | Ty::Path) {
                d = d.with_help(format!("strings are quoted: `\"{s}\"`"));
            }
        }
        self.diags.push(d);
        Value::Null
    }

    fn value(&mut self, n: &Node, ty: &Ty, path: &str) -> Value {
        self.spans.insert(path, n.loc);
        match (ty, &n.kind) {
            (_, NodeKind::Poison) => Value::Null,
            (Ty::Nullable(_), NodeKind::Null) => Value::Null,
            (Ty::Nullable(t), _) => self.value(n, t, path),
            (Ty::Or(ts), _) => {
                for t in ts.iter() {
                    let mut scratch = Diagnostics::default();
                    let mut c = Checker {
                        diags: &mut scratch,
                        spans: SpanTable::default(),
                    };
                    c.value(n, t, path);
                    if !scratch.has_errors() {
                        return self.value(n, t, path);
                    }
                }
                // Report against the first alternative that has the right shape.
                let pick = ts.iter().find(|t| shape_fits(n, t)).unwrap_or(&ts[0]);
                if shape_fits(n, pick) {
                    self.value(n, pick, path)
                } else {
                    self.mismatch(n, ty, path)
                }
            }
            (Ty::Int { min, max }, NodeKind::Int(i)) => {
                // Out of range is a type error: null, so no later check builds on it.
                if i < min || i > max {
                    self.range(n, ty, path, &i.to_string());
                    return Value::Null;
                }
                Value::from(*i)
            }
            (Ty::Float { min, max }, NodeKind::Int(_) | NodeKind::Float(_)) => {
                let f = match n.kind {
                    NodeKind::Int(i) => i as f64,
                    NodeKind::Float(f) => f,
                    _ => 0.0,
                };
                if f < *min || f > *max {
                    self.range(n, ty, path, &f.to_string());
                    return Value::Null;
                }
                Value::from(f)
            }
            (Ty::Int { .. } | Ty::Float { .. }, NodeKind::Quantity(c, u)) => {
                self.diags.push(
                    Diagnostic::error(
                        "E0305",
                        format!(
                            "`{path}` is a plain number, found the length `{}`",
                            quantity(*c, *u)
                        ),
                    )
                    .with_label(n.loc, "has a unit")
                    .with_help(format!("write `{c}` without a unit")),
                );
                Value::Null
            }
            (Ty::Bool, NodeKind::Bool(b)) => Value::Bool(*b),
            (Ty::Str | Ty::Path, NodeKind::Str(s)) => Value::String(s.replace("\\$", "$")),
            (Ty::Period, NodeKind::Quantity(c, u)) => Value::String(quantity(*c, *u)),
            (Ty::Period, NodeKind::Int(i)) => {
                self.diags.push(
                    Diagnostic::error(
                        "E0305",
                        format!("`{path}` is a training length and needs a unit"),
                    )
                    .with_label(n.loc, "no unit")
                    .with_help(format!("write `{i} iters` or `{i} epochs`")),
                );
                Value::Null
            }
            (Ty::Enum(vals), NodeKind::Symbol(s) | NodeKind::Str(s)) => {
                if !vals.contains(&s.as_str()) {
                    let help = match nearest(s, vals.iter().copied()) {
                        Some(v) => format!("the value is `{v}`"),
                        None => format!(
                            "write one of {}",
                            vals.iter()
                                .map(|v| format!("`{v}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.diags.push(
                        Diagnostic::error("E0308", format!("`{s}` is not a value of `{path}`"))
                            .with_label(n.loc, "unknown value")
                            .with_help(help),
                    );
                }
                Value::String(s.clone())
            }
            (Ty::Enum(vals), NodeKind::Bool(false) | NodeKind::Null) if vals.contains(&"none") => {
                Value::from("none")
            }
            (Ty::List(t), NodeKind::List(items)) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.value(x, t, &join(path, &i.to_string())))
                    .collect(),
            ),
            (Ty::Map(t), NodeKind::Record { ty: None, fields }) => {
                let mut m = Map::new();
                for f in fields {
                    let v = self.value(&f.value, t, &join(path, &f.key));
                    m.insert(f.key.clone(), v);
                }
                Value::Object(m)
            }
            (Ty::Record(ps), NodeKind::Record { ty: None, fields }) => {
                self.record(fields, ps, path, n.loc, None)
            }
            (Ty::Named(cat), NodeKind::Record { ty, fields }) => {
                let key = path.rsplit('.').next().unwrap_or(path);
                let name = ty.as_ref().map_or(key, |t| t.0.as_str());
                match registry::find(*cat, name) {
                    Some(c) => self.record(
                        fields,
                        c.params,
                        path,
                        n.loc,
                        Some((c, ty.as_ref().map_or(n.loc, |t| t.1))),
                    ),
                    None => self.unknown_component(name, *cat, ty.as_ref().map_or(n.loc, |t| t.1)),
                }
            }
            (
                Ty::Comp(cat),
                NodeKind::Record {
                    ty: Some((name, tloc)),
                    fields,
                },
            ) => match registry::find(*cat, name) {
                Some(c) => self.record(fields, c.params, path, n.loc, Some((c, *tloc))),
                None => self.unknown_component(name, *cat, *tloc),
            },
            (Ty::Comp(cat), NodeKind::Symbol(name)) => match registry::find(*cat, name) {
                Some(c) => self.record(&[], c.params, path, n.loc, Some((c, n.loc))),
                None => self.unknown_component(name, *cat, n.loc),
            },
            (Ty::Comp(cat), NodeKind::Call(name, nloc, args)) => match registry::find(*cat, name) {
                Some(c) if args.len() <= c.params.len() => {
                    let fields: Vec<Field> = args
                        .iter()
                        .zip(c.params)
                        .map(|(a, p)| Field {
                            key: p.name.to_string(),
                            key_loc: a.loc,
                            value: a.clone(),
                        })
                        .collect();
                    self.record(&fields, c.params, path, n.loc, Some((c, *nloc)))
                }
                Some(c) => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0303",
                            format!(
                                "`{}` takes at most {} arguments, found {}",
                                c.name,
                                c.params.len(),
                                args.len()
                            ),
                        )
                        .with_label(n.loc, "too many arguments"),
                    );
                    Value::Null
                }
                None => self.unknown_component(name, *cat, *nloc),
            },
            (Ty::Comp(cat), NodeKind::Record { ty: None, .. }) => {
                let names = registry::names(*cat);
                self.diags.push(
                    Diagnostic::error(
                        "E0306",
                        format!("`{path}` needs {} but the record names none", a(cat.name())),
                    )
                    .with_label(n.loc, "no component type")
                    .with_help(format!(
                        "write `{} {{ ... }}`; the {}s are {}",
                        names.first().unwrap_or(&"name"),
                        cat.name(),
                        names.join(", ")
                    )),
                );
                Value::Null
            }
            (Ty::Phase, NodeKind::Phase(mode, c, u)) => {
                if mode != "train" && mode != "val" {
                    self.diags.push(
                        Diagnostic::error("E0308", format!("`{mode}` is not a workflow phase"))
                            .with_label(n.loc, "unknown phase")
                            .with_help("phases are `train` and `val`"),
                    );
                }
                let mut o = Map::new();
                o.insert("mode".into(), Value::from(mode.as_str()));
                o.insert("length".into(), Value::String(quantity(*c, *u)));
                Value::Object(o)
            }
            _ => self.mismatch(n, ty, path),
        }
    }

    fn range(&mut self, n: &Node, ty: &Ty, path: &str, v: &str) {
        self.diags.push(
            Diagnostic::error("E0304", format!("`{path}` = {v} is out of range"))
                .with_label(n.loc, "out of range")
                .with_help(format!("allowed: {}", ty.describe())),
        );
    }

    fn unknown_component(&mut self, name: &str, cat: Category, loc: Loc) -> Value {
        let names = registry::names(cat);
        let elsewhere = registry::find_any(name);
        let help = if let Some(c) = elsewhere.first() {
            format!(
                "`{name}` is a {}, not a {}; the {}s are {}",
                c.category.name(),
                cat.name(),
                cat.name(),
                names.join(", ")
            )
        } else {
            match nearest(name, names.iter().copied()) {
                Some(n) => format!("the {} is `{n}`", cat.name()),
                None => format!("the {}s are {}", cat.name(), names.join(", ")),
            }
        };
        let code = if elsewhere.is_empty() {
            "E0301"
        } else {
            "E0307"
        };
        self.diags.push(
            Diagnostic::error(code, format!("unknown {} `{name}`", cat.name()))
                .with_label(loc, format!("not {}", a(cat.name())))
                .with_help(help),
        );
        Value::Null
    }
}

/// Whether a value has the outer shape of a type (to pick which alternative to report on).
fn shape_fits(n: &Node, ty: &Ty) -> bool {
    matches!(
        (ty, &n.kind),
        (Ty::Int { .. }, NodeKind::Int(_))
            | (Ty::Float { .. }, NodeKind::Int(_) | NodeKind::Float(_))
            | (Ty::Period, NodeKind::Quantity(..))
            | (Ty::List(_), NodeKind::List(_))
            | (Ty::Enum(_), NodeKind::Symbol(_))
            | (Ty::Str | Ty::Path, NodeKind::Str(_))
            | (
                Ty::Record(_) | Ty::Map(_),
                NodeKind::Record { ty: None, .. }
            )
    )
}
