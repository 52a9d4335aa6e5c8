//! The component registry: one declaration per component (name, category, parameter schema
//! with type, default, range, unit and a one-line doc). The single source of truth for what a
//! recipe may say; `recipe::typeck` checks against it and fills defaults from it, and
//! `mmrun explain NAME` prints it.
//!
//! Names are mmdetection's: snake_case component names (`retina_head`, `max_iou` for
//! `MaxIoUAssigner`, `delta_xywh` for `DeltaXYWHBBoxCoder`) and parameter names unchanged
//! (`num_classes`, `octave_base_scale`, `frozen_stages`, `max_keep_ckpts` …). Consumers
//! deserialize the config objects `{"type": NAME, ...params}` into their own structs.

mod data;
pub mod metrics;
mod model;
mod train;

use serde_json::Value;

/// What kind of thing a component is; a parameter accepts components of one category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    Detector,
    Backbone,
    Neck,
    Head,
    RoiHead,
    RoiExtractor,
    RoiLayer,
    BBoxHead,
    AnchorGenerator,
    Assigner,
    BoxSampler,
    BoxCoder,
    Loss,
    Nms,
    Norm,
    Init,
    Dataset,
    Transform,
    DataSampler,
    Optimizer,
    Warmup,
    Policy,
    Hook,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Detector => "detector",
            Category::Backbone => "backbone",
            Category::Neck => "neck",
            Category::Head => "head",
            Category::RoiHead => "roi head",
            Category::RoiExtractor => "roi extractor",
            Category::RoiLayer => "roi layer",
            Category::BBoxHead => "bbox head",
            Category::AnchorGenerator => "anchor generator",
            Category::Assigner => "assigner",
            Category::BoxSampler => "box sampler",
            Category::BoxCoder => "box coder",
            Category::Loss => "loss",
            Category::Nms => "nms",
            Category::Norm => "norm layer",
            Category::Init => "initialisation",
            Category::Dataset => "dataset",
            Category::Transform => "transform",
            Category::DataSampler => "data sampler",
            Category::Optimizer => "optimizer",
            Category::Warmup => "warmup",
            Category::Policy => "schedule policy",
            Category::Hook => "hook",
        }
    }
}

/// The type of a parameter.
#[derive(Debug)]
pub enum Ty {
    /// An integer in `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in `[min, max]`; integers are accepted.
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    Str,
    /// A file or folder path (checked to exist unless `--no-fs`).
    Path,
    /// A training length with a unit: `500 iters`, `12 epochs`.
    Period,
    /// One of the names (written bare or quoted).
    Enum(&'static [&'static str]),
    List(&'static Ty),
    /// A component of a category.
    Comp(Category),
    /// A record with these keys.
    Record(&'static [Param]),
    /// A record with any keys, each value of the type (`custom_keys`).
    Map(&'static Ty),
    /// A record that configures the component the key names (hooks).
    Named(Category),
    /// `none` or the type.
    Nullable(&'static Ty),
    /// The first type that fits.
    Or(&'static [Ty]),
    /// A workflow phase: `train 1 epoch`.
    Phase,
}

impl Ty {
    /// How the type reads in messages and `explain`.
    pub fn describe(&self) -> String {
        match self {
            Ty::Int { min, max } => match (*min, *max) {
                (i64::MIN, i64::MAX) => "integer".into(),
                (lo, i64::MAX) => format!("integer ≥ {lo}"),
                (lo, hi) => format!("integer in [{lo}, {hi}]"),
            },
            Ty::Float { min, max } => {
                if *min == f64::NEG_INFINITY && *max == f64::INFINITY {
                    "number".into()
                } else if *max == f64::INFINITY {
                    format!("number ≥ {min}")
                } else {
                    format!("number in [{min}, {max}]")
                }
            }
            Ty::Bool => "boolean".into(),
            Ty::Str => "string".into(),
            Ty::Path => "path".into(),
            Ty::Period => "length (`N iters` or `N epochs`)".into(),
            Ty::Enum(v) => format!("one of {}", v.join(", ")),
            Ty::List(t) => format!("list of {}", t.describe()),
            Ty::Comp(c) => format!("{} component", c.name()),
            Ty::Record(_) => "record".into(),
            Ty::Map(t) => format!("record of {}", t.describe()),
            Ty::Named(c) => format!("{} settings", c.name()),
            Ty::Nullable(t) => format!("{} or none", t.describe()),
            Ty::Or(ts) => ts.iter().map(Ty::describe).collect::<Vec<_>>().join(" or "),
            Ty::Phase => "workflow phase (`train 1 epoch`)".into(),
        }
    }
}

/// A parameter's default.
#[derive(Debug)]
pub enum Def {
    /// The recipe must give it.
    Required,
    /// Left out of the config when not given (optional sections, hooks).
    Absent,
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Ints(&'static [i64]),
    Floats(&'static [f64]),
    Strs(&'static [&'static str]),
    /// A component with all its defaults.
    Comp(&'static str),
    /// A record with all its defaults.
    Record,
}

/// One parameter of a component or record.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub def: Def,
    pub doc: &'static str,
}

impl Param {
    /// `required`, `optional`, or `default V` as `explain` and the reference print it.
    pub fn default_text(&self) -> String {
        match &self.def {
            Def::Required => "required".to_string(),
            Def::Absent => "optional".to_string(),
            d => format!(
                "default {}",
                default_value(d, &self.ty).map_or_else(String::new, |v| v.to_string())
            ),
        }
    }
}

/// A component: what a recipe names in `name { ... }`.
#[derive(Debug)]
pub struct Component {
    pub name: &'static str,
    pub category: Category,
    pub doc: &'static str,
    pub params: &'static [Param],
}

/// Shorthand for declarations.
pub(crate) const fn p(name: &'static str, ty: Ty, def: Def, doc: &'static str) -> Param {
    Param { name, ty, def, doc }
}

pub(crate) const INT: Ty = Ty::Int {
    min: i64::MIN,
    max: i64::MAX,
};
pub(crate) const NAT: Ty = Ty::Int {
    min: 0,
    max: i64::MAX,
};
pub(crate) const POS: Ty = Ty::Int {
    min: 1,
    max: i64::MAX,
};
pub(crate) const NUM: Ty = Ty::Float {
    min: f64::NEG_INFINITY,
    max: f64::INFINITY,
};
pub(crate) const NONNEG: Ty = Ty::Float {
    min: 0.0,
    max: f64::INFINITY,
};
pub(crate) const UNIT: Ty = Ty::Float { min: 0.0, max: 1.0 };

/// Every component.
pub fn components() -> impl Iterator<Item = &'static Component> {
    model::COMPONENTS
        .iter()
        .chain(data::COMPONENTS)
        .chain(train::COMPONENTS)
}

/// The component `name` of a category.
pub fn find(category: Category, name: &str) -> Option<&'static Component> {
    components().find(|c| c.category == category && c.name == name)
}

/// Every component called `name` (a name may exist in several categories: `linear` warmup).
pub fn find_any(name: &str) -> Vec<&'static Component> {
    components().filter(|c| c.name == name).collect()
}

/// The names of a category's components.
pub fn names(category: Category) -> Vec<&'static str> {
    components()
        .filter(|c| c.category == category)
        .map(|c| c.name)
        .collect()
}

/// The top-level sections of a recipe.
pub fn sections() -> &'static [Param] {
    train::SECTIONS
}

/// Keys every hook accepts besides its own: ordering by name.
pub fn hook_common() -> &'static [Param] {
    train::HOOK_COMMON
}

/// The JSON value of a default (`None` for [`Def::Required`] and [`Def::Absent`]).
pub fn default_value(def: &Def, ty: &Ty) -> Option<Value> {
    Some(match def {
        Def::Required | Def::Absent => return None,
        Def::Null => Value::Null,
        Def::Int(i) => Value::from(*i),
        Def::Float(f) => Value::from(*f),
        Def::Bool(b) => Value::Bool(*b),
        Def::Str(s) => Value::from(*s),
        Def::Ints(v) => Value::from(v.to_vec()),
        Def::Floats(v) => Value::from(v.to_vec()),
        Def::Strs(v) => Value::from(v.to_vec()),
        Def::Comp(name) => {
            let cat = component_category(ty)?;
            instance_defaults(find(cat, name)?)
        }
        Def::Record => match record_params(ty) {
            Some(ps) => record_defaults(ps),
            None => Value::Object(Default::default()),
        },
    })
}

fn component_category(ty: &Ty) -> Option<Category> {
    match ty {
        Ty::Comp(c) | Ty::Named(c) => Some(*c),
        Ty::Nullable(t) => component_category(t),
        _ => None,
    }
}

fn record_params(ty: &Ty) -> Option<&'static [Param]> {
    match ty {
        Ty::Record(ps) => Some(ps),
        Ty::Nullable(t) => record_params(t),
        _ => None,
    }
}

/// A component with every default filled in (`{"type": name, ...}`); required parameters
/// are left out.
pub fn instance_defaults(c: &Component) -> Value {
    let mut v = record_defaults(c.params);
    if let Value::Object(m) = &mut v {
        m.insert("type".into(), Value::from(c.name));
    }
    v
}

/// A component's defaults as the typed value `T` (hooks without their `type`, which names the
/// hook rather than configuring it): for the parts a recipe leaves out. Fails when the
/// component has required parameters.
pub fn defaults<T: serde::de::DeserializeOwned>(
    category: Category,
    name: &str,
) -> Result<T, String> {
    let c = find(category, name).ok_or_else(|| format!("no {} `{name}`", category.name()))?;
    let mut v = instance_defaults(c);
    if let (Category::Hook, Value::Object(m)) = (category, &mut v) {
        m.remove("type");
    }
    serde_json::from_value(v).map_err(|e| format!("{} `{name}`: {e}", category.name()))
}

/// `v`, a value of type `ty` written in code (a component or a list of them), with the
/// registry's defaults filled in where keys are missing, nested components included: what
/// the checker makes of a recipe that writes only these keys. For configs built without a
/// recipe (benchmarks, tests); the typed configs have no defaults of their own.
pub fn complete(ty: &Ty, v: &Value) -> Value {
    match (ty, v) {
        (Ty::Comp(cat) | Ty::Named(cat), Value::Object(m)) => {
            match m
                .get("type")
                .and_then(Value::as_str)
                .and_then(|n| find(*cat, n))
            {
                Some(c) => complete_record(c.params, m),
                None => v.clone(),
            }
        }
        (Ty::Record(ps), Value::Object(m)) => complete_record(ps, m),
        (Ty::Map(t), Value::Object(m)) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), complete(t, x))).collect())
        }
        (Ty::List(t), Value::Array(items)) => {
            Value::Array(items.iter().map(|x| complete(t, x)).collect())
        }
        (Ty::Nullable(t), _) if !v.is_null() => complete(t, v),
        (Ty::Or(ts), Value::Object(_)) => {
            let fits = |t: &&Ty| matches!(t, Ty::Comp(_) | Ty::Record(_));
            ts.iter()
                .find(fits)
                .map_or_else(|| v.clone(), |t| complete(t, v))
        }
        _ => v.clone(),
    }
}

fn complete_record(ps: &[Param], m: &serde_json::Map<String, Value>) -> Value {
    let mut out = m.clone();
    for p in ps {
        match out.get(p.name) {
            Some(x) => {
                let x = complete(&p.ty, x);
                out.insert(p.name.into(), x);
            }
            None => {
                if let Some(d) = default_value(&p.def, &p.ty) {
                    out.insert(p.name.into(), d);
                }
            }
        }
    }
    Value::Object(out)
}

fn record_defaults(ps: &[Param]) -> Value {
    let mut m = serde_json::Map::new();
    for p in ps {
        if let Some(v) = default_value(&p.def, &p.ty) {
            m.insert(p.name.into(), v);
        }
    }
    Value::Object(m)
}

/// Every category, in the registry's order.
const CATEGORIES: [Category; 23] = [
    Category::Detector,
    Category::Backbone,
    Category::Neck,
    Category::Head,
    Category::RoiHead,
    Category::RoiExtractor,
    Category::RoiLayer,
    Category::BBoxHead,
    Category::AnchorGenerator,
    Category::Assigner,
    Category::BoxSampler,
    Category::BoxCoder,
    Category::Loss,
    Category::Nms,
    Category::Norm,
    Category::Init,
    Category::Dataset,
    Category::Transform,
    Category::DataSampler,
    Category::Optimizer,
    Category::Warmup,
    Category::Policy,
    Category::Hook,
];

/// A category name (`explain --list CATEGORY`) that fits none of the registry's categories.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no category `{name}`; the categories are: {}", categories.join(", "))]
pub struct UnknownCategory {
    /// The name as given.
    pub name: String,
    /// Every category, spelled as `--list` takes it (`box_coder`).
    pub categories: Vec<String>,
}

/// The text `mmrun explain --list [CATEGORY]` prints: each component's name and one-line doc,
/// by category (`hook`, `box_coder`, `transforms`, `norm` each name one); an unknown category
/// is an error that lists them.
pub fn list(category: Option<&str>) -> Result<String, UnknownCategory> {
    let mut out = String::new();
    for cat in categories(category)? {
        out.push_str(&format!("{}:\n", cat.name()));
        for c in components().filter(|c| c.category == cat) {
            out.push_str(&format!("  {:<26} {}\n", c.name, c.doc));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Every category (`None`), or the one `category` names (its name or one of its words,
/// singular or plural, `_`/`-` for spaces), or why none fits.
pub fn categories(category: Option<&str>) -> Result<Vec<Category>, UnknownCategory> {
    let norm = |s: &str| s.trim().to_lowercase().replace(['_', '-'], " ");
    let cats: Vec<Category> = match category {
        None => CATEGORIES.to_vec(),
        Some(name) => {
            let want = norm(name);
            // The name or one of its words (`norm` for `norm layer`), singular or plural.
            let fits = |n: &str| want == n || want.strip_suffix('s') == Some(n);
            let found =
                (CATEGORIES.iter()).find(|c| fits(c.name()) || c.name().split(' ').any(fits));
            match found {
                Some(c) => vec![*c],
                None => {
                    return Err(UnknownCategory {
                        name: name.to_string(),
                        categories: CATEGORIES
                            .iter()
                            .map(|c| c.name().replace(' ', "_"))
                            .collect(),
                    });
                }
            }
        }
    };
    Ok(cats)
}

/// The parameters a recipe may give `c`: its own, and for a hook those every hook takes.
pub fn params_of(c: &Component) -> Vec<&'static Param> {
    let common = if c.category == Category::Hook {
        hook_common()
    } else {
        &[]
    };
    c.params.iter().chain(common).collect()
}

/// The text `mmrun explain NAME` prints.
pub fn explain(name: &str) -> Option<String> {
    let found = find_any(name);
    if found.is_empty() {
        return None;
    }
    let mut out = String::new();
    for c in found {
        out.push_str(&format!(
            "{} ({})\n  {}\n\n",
            c.name,
            c.category.name(),
            c.doc
        ));
        let params = params_of(c);
        if params.is_empty() {
            out.push_str("  no parameters\n");
        }
        for p in params {
            let def = p.default_text();
            out.push_str(&format!(
                "  {:<22} {} ({def})\n  {:<22} {}\n",
                p.name,
                p.ty.describe(),
                "",
                p.doc
            ));
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_category_and_defaults_fit() {
        let all: Vec<_> = components().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.name == b.name && a.category == b.category),
                    "duplicate {}",
                    a.name
                );
            }
            for p in a.params {
                if let Def::Comp(n) = p.def {
                    let cat = component_category(&p.ty).expect("Def::Comp on a component type");
                    let d = find(cat, n).unwrap_or_else(|| panic!("{}.{}: no {n}", a.name, p.name));
                    // A default must be complete: it cannot leave required keys out.
                    assert!(
                        d.params.iter().all(|q| !matches!(q.def, Def::Required)),
                        "{}.{}: default {n} has required keys",
                        a.name,
                        p.name
                    );
                }
            }
        }
        assert_eq!(
            instance_defaults(find(Category::Loss, "focal_loss").unwrap())["gamma"],
            2.0
        );
    }
}
