//! Lazy references, resolved after every import and override is merged: `a.b.c` values,
//! `${a.b}` inside strings, bare names of `let` variables, and `env("VAR", default)`.

use super::diag::{Diagnostic, Diagnostics, Loc};
use super::load::Merged;
use super::tree::{Field, Node, NodeKind, PathSeg};
use crate::syntax::Seg;
use std::collections::HashMap;

/// Facts about the recipe that `${recipe.stem}` and `${recipe.dir}` read.
#[derive(Clone, Debug, Default)]
pub struct Builtins {
    pub stem: String,
    pub dir: String,
}

/// Whether `env(...)` may read the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvPolicy {
    /// `env` is an error: the recipe must not depend on the machine it is checked on.
    #[default]
    Deny,
    /// `env` reads the variable (or its default); every use is reported as a warning.
    Allow,
}

struct Resolver<'a> {
    merged: &'a Merged,
    builtins: &'a Builtins,
    env: EnvPolicy,
    diags: &'a mut Diagnostics,
    memo: HashMap<String, Node>,
    active: Vec<String>,
    /// Levels of the value being built, references followed included.
    depth: usize,
    /// Whether the depth error was given (once: every path below a long chain meets it).
    told_depth: bool,
}

/// The deepest resolved configuration: twice the deepest file (`syntax::MAX_DEPTH`), since a
/// reference puts a whole subtree under another path. Checked here because references chain:
/// each file may be shallow and the result still thousands of levels deep.
pub const MAX_RESOLVED_DEPTH: usize = 2 * crate::syntax::MAX_DEPTH;

/// Returns the configuration tree with every reference replaced by its value.
pub fn resolve(
    merged: &Merged,
    builtins: &Builtins,
    env: EnvPolicy,
    diags: &mut Diagnostics,
) -> Node {
    let mut r = Resolver {
        merged,
        builtins,
        env,
        diags,
        memo: HashMap::new(),
        active: Vec::new(),
        depth: 0,
        told_depth: false,
    };
    r.node(&merged.root)
}

impl Resolver<'_> {
    fn node(&mut self, n: &Node) -> Node {
        if self.depth >= MAX_RESOLVED_DEPTH {
            return self.too_deep(n.loc);
        }
        self.depth += 1;
        let v = self.node_within_depth(n);
        self.depth -= 1;
        v
    }

    fn too_deep(&mut self, loc: Loc) -> Node {
        let chain = self.active.len();
        let poison = Node {
            kind: NodeKind::Poison,
            loc,
        };
        if std::mem::replace(&mut self.told_depth, true) {
            return poison;
        }
        self.diags.push(
            Diagnostic::error(
                "E0212",
                format!(
                    "with its references followed, the configuration nests deeper than \
                     {MAX_RESOLVED_DEPTH} levels ({chain} references chained)"
                ),
            )
            .with_label(loc, format!("level {} starts here", MAX_RESOLVED_DEPTH + 1))
            .with_help("bind the shared part once and reference it directly, not through a chain"),
        );
        poison
    }

    fn node_within_depth(&mut self, n: &Node) -> Node {
        let kind = match &n.kind {
            NodeKind::Ref(path) => return self.reference(path, n.loc),
            NodeKind::Symbol(s) if self.merged.vars.field(s).is_some() => {
                let p = [PathSeg {
                    seg: Seg::Name(s.clone()),
                    loc: n.loc,
                }];
                return self.reference(&p, n.loc);
            }
            NodeKind::Str(s) if s.contains('$') => NodeKind::Str(self.interpolate(s, n.loc)),
            NodeKind::List(items) => NodeKind::List(items.iter().map(|x| self.node(x)).collect()),
            NodeKind::Record { ty, fields } => NodeKind::Record {
                ty: ty.clone(),
                fields: fields
                    .iter()
                    .map(|f| Field {
                        key: f.key.clone(),
                        key_loc: f.key_loc,
                        value: self.node(&f.value),
                    })
                    .collect(),
            },
            NodeKind::Call(name, nloc, args) if name == "env" => {
                return self.env_call(*nloc, args, n.loc);
            }
            NodeKind::Call(name, nloc, args) => NodeKind::Call(
                name.clone(),
                *nloc,
                args.iter().map(|a| self.node(a)).collect(),
            ),
            other => other.clone(),
        };
        Node { kind, loc: n.loc }
    }

    fn env_call(&mut self, name_loc: Loc, args: &[Node], loc: Loc) -> Node {
        let args: Vec<Node> = args.iter().map(|a| self.node(a)).collect();
        let (var, default) = match args.as_slice() {
            [
                Node {
                    kind: NodeKind::Str(v),
                    ..
                },
            ] => (v.clone(), None),
            [
                Node {
                    kind: NodeKind::Str(v),
                    ..
                },
                d,
            ] => (v.clone(), Some(d.clone())),
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        "E0210",
                        "`env` takes a variable name and an optional default",
                    )
                    .with_label(loc, "here")
                    .with_help("write `env(\"VAR\")` or `env(\"VAR\", \"default\")`"),
                );
                return Node {
                    kind: NodeKind::Poison,
                    loc,
                };
            }
        };
        if self.env == EnvPolicy::Deny {
            self.diags.push(
                Diagnostic::error(
                    "E0210",
                    format!("the recipe reads the environment variable `{var}`"),
                )
                .with_label(name_loc, "reads the environment")
                .with_help("pass `--allow-env` to allow it, or write the value into the recipe"),
            );
            return default.unwrap_or(Node {
                kind: NodeKind::Poison,
                loc,
            });
        }
        self.diags.push(
            Diagnostic::warning(
                "E0210",
                format!("the recipe reads the environment variable `{var}`"),
            )
            .with_label(name_loc, "reads the environment"),
        );
        match std::env::var(&var) {
            Ok(v) => Node {
                kind: NodeKind::Str(v),
                loc,
            },
            Err(_) => match default {
                Some(d) => d,
                None => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0210",
                            format!("environment variable `{var}` is not set"),
                        )
                        .with_label(loc, "no default given")
                        .with_help(format!(
                            "set `{var}` or give a default: `env(\"{var}\", ...)`"
                        )),
                    );
                    Node {
                        kind: NodeKind::Poison,
                        loc,
                    }
                }
            },
        }
    }

    /// Resolves a path reference; the result keeps the place the target value was written.
    fn reference(&mut self, path: &[PathSeg], use_loc: Loc) -> Node {
        let key = path
            .iter()
            .map(|p| p.seg.to_string())
            .collect::<Vec<_>>()
            .join(".");
        if let Some(n) = self.memo.get(&key) {
            return n.clone();
        }
        if let Some(b) = self.builtin(&key) {
            return Node {
                kind: NodeKind::Str(b),
                loc: use_loc,
            };
        }
        if let Some(pos) = self.active.iter().position(|a| *a == key) {
            let mut cyc = self.active[pos..].to_vec();
            cyc.push(key.clone());
            self.diags.push(
                Diagnostic::error("E0205", format!("reference cycle: {}", cyc.join(" → ")))
                    .with_label(use_loc, "this reference is part of the cycle"),
            );
            return Node {
                kind: NodeKind::Poison,
                loc: use_loc,
            };
        }
        let head_is_var =
            matches!(&path[0].seg, Seg::Name(n) if self.merged.vars.field(n).is_some());
        let base = if head_is_var {
            &self.merged.vars
        } else {
            &self.merged.root
        };
        let Some(target) = lookup(base, path) else {
            let help =
                match super::suggest::nearest_path(&self.merged.root, &self.merged.vars, path) {
                    Some(s) => format!("the nearest bound path is `{s}`"),
                    None => {
                        "references name a bound path (`data.train.ann_file`) or a `let` variable"
                            .into()
                    }
                };
            self.diags.push(
                Diagnostic::error("E0204", format!("`{key}` is not bound"))
                    .with_label(use_loc, "referenced here")
                    .with_help(help),
            );
            return Node {
                kind: NodeKind::Poison,
                loc: use_loc,
            };
        };
        self.active.push(key.clone());
        let v = self.node(target);
        self.active.pop();
        self.memo.insert(key, v.clone());
        v
    }

    fn builtin(&self, key: &str) -> Option<String> {
        match key {
            "recipe.stem" => Some(self.builtins.stem.clone()),
            "recipe.dir" => Some(self.builtins.dir.clone()),
            _ => None,
        }
    }

    fn interpolate(&mut self, s: &str, loc: Loc) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            if i > 0 && rest.as_bytes()[i - 1] == b'\\' {
                out.push_str(&rest[..i - 1]);
                out.push('$');
                rest = &rest[i + 1..];
                continue;
            }
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if !after.starts_with('{') {
                out.push('$');
                rest = after;
                continue;
            }
            let Some(close) = after.find('}') else {
                self.diags.push(
                    Diagnostic::error("E0211", "unterminated `${` in string")
                        .with_label(loc, "this string")
                        .with_help(
                            "close the reference with `}`, or write `\\$` for a literal `$`",
                        ),
                );
                return out;
            };
            let name = after[1..close].trim();
            let segs: Option<Vec<PathSeg>> = name
                .split('.')
                .map(|p| {
                    let ok =
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    ok.then(|| PathSeg {
                        seg: match p.parse::<usize>() {
                            Ok(i) => Seg::Index(i),
                            Err(_) => Seg::Name(p.to_string()),
                        },
                        loc,
                    })
                })
                .collect();
            match segs {
                Some(segs) if !segs.is_empty() => {
                    let v = self.reference(&segs, loc);
                    match scalar_text(&v) {
                        Some(t) => out.push_str(&t),
                        None if matches!(v.kind, NodeKind::Null | NodeKind::Poison) => {}
                        None => self.diags.push(
                            Diagnostic::error(
                                "E0211",
                                format!(
                                    "`${{{name}}}` is {}, which cannot go inside a string",
                                    v.describe()
                                ),
                            )
                            .with_label(loc, "in this string")
                            .with_label(v.loc, "the value"),
                        ),
                    }
                }
                _ => self.diags.push(
                    Diagnostic::error("E0211", format!("`${{{name}}}` is not a path"))
                        .with_label(loc, "in this string")
                        .with_help("write `${a.b.c}` with names, list indices and dots"),
                ),
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn scalar_text(n: &Node) -> Option<String> {
    Some(match &n.kind {
        NodeKind::Str(s) => s.clone(),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Float(f) => f.to_string(),
        NodeKind::Bool(b) => b.to_string(),
        NodeKind::Symbol(s) => s.clone(),
        NodeKind::Quantity(c, u) => format!("{c} {}", u.name(*c)),
        _ => return None,
    })
}

/// Looks a path up without creating anything; list items may be named.
pub fn lookup<'a>(root: &'a Node, path: &[PathSeg]) -> Option<&'a Node> {
    let mut cur = root;
    for p in path {
        cur = match (&cur.kind, &p.seg) {
            (NodeKind::Record { fields, .. }, Seg::Name(n)) => {
                &fields.iter().find(|f| &f.key == n)?.value
            }
            (NodeKind::List(items), Seg::Index(i)) => items.get(*i)?,
            (NodeKind::List(items), Seg::Name(n)) => {
                let mut hits = items
                    .iter()
                    .filter(|x| super::tree::item_name(x) == Some(n.as_str()));
                let one = hits.next()?;
                if hits.next().is_some() {
                    return None;
                }
                one
            }
            _ => return None,
        };
    }
    Some(cur)
}
