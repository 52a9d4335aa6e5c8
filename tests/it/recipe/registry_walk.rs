//! Nothing a recipe may say is accepted and then ignored: a walk over every registry
//! parameter. Each parameter of every component, section and hook, as the shipped recipes
//! and a set of variants instantiate them, is given another valid value; then either `check`
//! refuses the recipe or the plan `exec` runs from (model, data, training spec, evaluator)
//! is different. A parameter that changes nothing is a knob accepted and ignored.
//!
//! The section holding the changed value is written back whole through `--set`, rendered
//! from the checked config by its registry types (so defaults the recipe did not write are
//! changed too); a round trip of every section first proves the rendering changes nothing.

use mmrun::plan::{NotPlanned, Plan};
use mmrun::recipe::CheckOptions;
use mmrun::registry::{self, Category, Param, Ty};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Recipes and overrides that together instantiate every registry component this build runs.
const BASES: &[(&str, &[&str])] = &[
    ("pipelines/quickstart.recipe", &[]),
    ("pipelines/retinanet_r50_fpn_1x_coco.recipe", &[]),
    ("pipelines/finetune.recipe", &[]),
    ("pipelines/quickstart_rpn.recipe", &[]),
    ("pipelines/quickstart_two_stage.recipe", &[]),
    (
        "pipelines/quickstart.recipe",
        &[
            "optimizer=adamw { lr = 0.001 }",
            "data.sampler=infinite_sampler {}",
            "data.val=voc_dataset { ann_file = \"voc/ImageSets/Main/val.txt\", \
             img_prefix = \"voc/\", classes = [\"circle\", \"square\", \"triangle\", \
             \"ellipse\", \"star\", \"hexagon\"], pipeline = [load_image, \
             resize { scale = [64, 64] }, normalize { mean = [0, 0, 0], std = [1, 1, 1] }, \
             pad { size_divisor = 32 }] }",
            "hooks.ema=ema {}",
            "hooks.early_stopping=early_stopping { monitor = \"bbox_mAP\" }",
            "schedule.lr={ warmup = exp { duration = 10 iters }, main = cosine {} }",
            "schedule.momentum={ main = cyclic { target_ratio = [0.85, 0.95] } }",
        ],
    ),
    (
        "pipelines/bench/retinanet_r18_fpn.recipe",
        &[
            "model.train_cfg.assigner=atss { topk = 9 }",
            "model.bbox_head.loss_bbox=l1_loss {}",
            "data.train.pipeline=[load_image, load_annotations, photometric_distortion {}, \
             random_crop { crop_size = [64, 64] }, random_flip { prob = 0.5 }, \
             resize { scale = [64, 64] }, normalize { mean = [0, 0, 0], std = [1, 1, 1] }, \
             pad { size_divisor = 32 }]",
            "data.sampler=sequential_sampler {}",
            "schedule.lr={ warmup = constant { duration = 10 iters }, main = poly {} }",
        ],
    ),
    (
        "pipelines/quickstart.recipe",
        &[
            "data.sampler=random_sampler {}",
            "schedule.lr={ main = flat_cosine { start_percent = 0.5 } }",
            "model.bbox_head.loss_bbox=iou_loss {}",
            "model.backbone.norm_cfg=sync_batch_norm {}",
        ],
    ),
    (
        "pipelines/quickstart.recipe",
        &["schedule.lr={ main = exp { gamma = 0.9 } }"],
    ),
    (
        "pipelines/quickstart.recipe",
        &["schedule.lr={ main = inv { gamma = 0.1, power = 1.0 } }"],
    ),
    (
        "pipelines/quickstart.recipe",
        &["schedule.lr={ main = one_cycle { max_lr = 0.1 } }"],
    ),
    (
        "pipelines/quickstart.recipe",
        &["schedule.lr={ main = cosine_restart { periods = [12 epochs, 12 epochs] } }"],
    ),
    (
        "pipelines/quickstart.recipe",
        &["schedule.lr={ main = constant {} }"],
    ),
    (
        "pipelines/quickstart.recipe",
        &[
            "schedule.lr={ main = custom { expr = \"base_lr * (1 - progress) ^ 0.9\" } }",
            "hooks.sampler_seed=sampler_seed {}",
            "hooks.sync_buffers=sync_buffers {}",
        ],
    ),
    (
        "pipelines/bench/retinanet_r18_fpn.recipe",
        &["model.bbox_head.loss_bbox=smooth_l1_loss {}"],
    ),
];

/// Components this build refuses wherever a recipe names them (`check` says so: E0311).
const REFUSED_COMPONENTS: &[&str] = &["rpn_head", "fp16", "profiler"];

fn opts() -> CheckOptions {
    CheckOptions {
        no_fs: true,
        ..Default::default()
    }
}

/// The plan as `exec` runs it, without the recorded config tree; `None` when refused.
fn planned(recipe: &str, sets: &[String]) -> Result<String, String> {
    match mmrun::plan::load(Path::new(recipe), sets, &opts()) {
        Ok((_, p)) => {
            let Plan {
                model,
                data,
                training,
                metric,
                config: _,
            } = p;
            Ok(format!("{model:?}\n{data:?}\n{training:?}\n{metric:?}"))
        }
        Err(NotPlanned::Errors(f)) => Err(f.render()),
        Err(NotPlanned::Partial) => Err("partial".into()),
    }
}

fn checked_config(recipe: &str, sets: &[String]) -> Value {
    mmrun::recipe::load(Path::new(recipe), sets, &opts())
        .unwrap_or_else(|e| panic!("{recipe} {sets:?}: {e}"))
        .config
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `v` as recipe text of type `ty` (`None` where the walk does not render: maps of any keys).
fn render(ty: &Ty, v: &Value) -> Option<String> {
    Some(match (ty, v) {
        (Ty::Nullable(_), Value::Null) => "none".into(),
        (Ty::Nullable(t), _) => render(t, v)?,
        (Ty::Int { .. } | Ty::Float { .. }, Value::Number(n)) => n.to_string(),
        (Ty::Bool, Value::Bool(b)) => b.to_string(),
        (Ty::Str | Ty::Path, Value::String(s)) => serde_json::to_string(s).ok()?,
        (Ty::Period | Ty::Enum(_), Value::String(s)) => s.clone(),
        (Ty::List(t), Value::Array(items)) => {
            let items: Option<Vec<String>> = items.iter().map(|x| render(t, x)).collect();
            format!("[{}]", items?.join(", "))
        }
        (Ty::Comp(cat), Value::Object(m)) => {
            let name = m.get("type")?.as_str()?;
            let c = registry::find(*cat, name)?;
            format!("{name} {}", record(c.params, m)?)
        }
        (Ty::Named(cat), Value::Object(m)) => {
            let name = m.get("type")?.as_str()?;
            let c = registry::find(*cat, name)?;
            let all: Vec<&Param> = c.params.iter().chain(registry::hook_common()).collect();
            let mut parts = Vec::new();
            for p in all {
                if let Some(x) = m.get(p.name) {
                    parts.push(format!("{} = {}", p.name, render(&p.ty, x)?));
                }
            }
            format!("{name} {{ {} }}", parts.join(", "))
        }
        (Ty::Record(ps), Value::Object(m)) => record(ps, m)?,
        (Ty::Map(_), Value::Object(m)) if m.is_empty() => "{}".into(),
        (Ty::Or(ts), _) => ts.iter().find_map(|t| render(t, v))?,
        (Ty::Phase, Value::Object(m)) => format!(
            "{} {}",
            m.get("mode")?.as_str()?,
            m.get("length")?.as_str()?
        ),
        _ => return None,
    })
}

fn record(params: &[Param], m: &serde_json::Map<String, Value>) -> Option<String> {
    let mut parts = Vec::new();
    for p in params {
        if let Some(x) = m.get(p.name) {
            parts.push(format!("{} = {}", p.name, render(&p.ty, x)?));
        }
    }
    Some(format!("{{ {} }}", parts.join(", ")))
}

/// Another valid value of a leaf type, different from `v`.
fn other(ty: &Ty, v: &Value) -> Option<Value> {
    Some(match (ty, v) {
        (Ty::Nullable(t), Value::Null) => sample(t)?,
        (Ty::Nullable(t), _) => other(t, v)?,
        (Ty::Int { min, max }, Value::Number(n)) => {
            let i = n.as_i64()?;
            let j = if i < *max { i + 1 } else { i - 1 };
            (j >= *min).then_some(Value::from(j))?
        }
        (Ty::Float { min, max }, Value::Number(n)) => {
            let f = n.as_f64()?;
            let g = [f * 0.5, f + 0.5, (f + min) / 2.0, f * 2.0]
                .into_iter()
                .find(|g| g != &f && g >= min && g <= max && g.is_finite())?;
            Value::from(g)
        }
        (Ty::Bool, Value::Bool(b)) => Value::Bool(!b),
        (Ty::Period, Value::String(s)) => {
            let (n, unit) = s.split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            let unit = if unit.starts_with("epoch") {
                "epochs"
            } else {
                "iters"
            };
            Value::String(format!("{} {unit}", n + 1))
        }
        (Ty::Enum(names), Value::String(s)) => {
            Value::String(names.iter().find(|n| *n != s)?.to_string())
        }
        (Ty::Str, Value::String(s)) => Value::String(format!("{s}x")),
        (Ty::List(t), Value::Array(items)) => match items.split_first() {
            Some((first, rest)) => {
                let mut out = vec![other(t, first)?];
                out.extend(rest.iter().cloned());
                Value::Array(out)
            }
            None => Value::Array(vec![sample(t)?]),
        },
        (Ty::Or(ts), _) => ts.iter().find_map(|t| other(t, v))?,
        _ => return None,
    })
}

/// A value of a leaf type, for an unset optional one.
fn sample(ty: &Ty) -> Option<Value> {
    Some(match ty {
        Ty::Int { min, max } => Value::from((*min).max(1).min(*max)),
        Ty::Float { min, max } => Value::from(0.5f64.clamp(*min, *max)),
        Ty::Bool => Value::Bool(true),
        Ty::Str => Value::String("x".into()),
        Ty::Period => Value::String("1 epochs".into()),
        Ty::Enum(names) => Value::String(names.first()?.to_string()),
        Ty::List(t) => Value::Array(vec![sample(t)?]),
        Ty::Or(ts) => ts.iter().find_map(sample)?,
        _ => return None,
    })
}

struct Walk<'a> {
    recipe: &'a str,
    sets: Vec<String>,
    config: Value,
    base_plan: String,
    components: BTreeSet<String>,
    refused: usize,
    carried: usize,
    ignored: Vec<String>,
}

impl Walk<'_> {
    /// Tries `leaf = value` written back through its whole section.
    fn try_value(&mut self, path: &str, value: Value) {
        let mut config = self.config.clone();
        let pointer = format!("/{}", path.replace('.', "/"));
        let Some(slot) = config.pointer_mut(&pointer) else {
            return;
        };
        *slot = value.clone();
        let section = path.split('.').next().unwrap();
        let ty = &(registry::sections().iter())
            .find(|p| p.name == section)
            .unwrap()
            .ty;
        let Some(text) = render(ty, &config[section]) else {
            return;
        };
        let mut sets = self.sets.clone();
        sets.push(format!("{section}={text}"));
        match planned(self.recipe, &sets) {
            Err(_) => self.refused += 1,
            Ok(p) if p == self.base_plan => self.ignored.push(format!(
                "{path} = {value} ({} {:?})",
                self.recipe, self.sets
            )),
            Ok(_) => self.carried += 1,
        }
    }

    fn params(&mut self, params: &[Param], v: &Value, path: &str) {
        for p in params {
            let sub = join(path, p.name);
            let x = v.get(p.name).cloned().unwrap_or(Value::Null);
            if v.get(p.name).is_none() {
                continue; // absent optional parts are walked where a variant sets them
            }
            self.ty(&p.ty, &x, &sub);
        }
    }

    fn ty(&mut self, ty: &Ty, v: &Value, path: &str) {
        match ty {
            Ty::Comp(cat) | Ty::Named(cat) => {
                let Some(name) = v.get("type").and_then(Value::as_str) else {
                    return;
                };
                let Some(c) = registry::find(*cat, name) else {
                    return;
                };
                self.components.insert(format!("{}:{name}", cat.name()));
                self.params(c.params, v, path);
                if *cat == Category::Hook {
                    self.params(registry::hook_common(), v, path);
                }
            }
            Ty::Record(ps) => self.params(ps, v, path),
            Ty::List(inner) if matches!(*inner, Ty::Comp(_)) => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    self.ty(inner, item, &format!("{path}.{i}"));
                }
            }
            Ty::Nullable(inner) if !v.is_null() => self.ty(inner, v, path),
            Ty::Or(ts) if v.is_object() || v.is_array() => {
                if let Some(t) = ts.iter().find(|t| render(t, v).is_some()) {
                    self.ty(t, v, path);
                }
            }
            Ty::Map(_) | Ty::Phase => {}
            Ty::List(Ty::Phase) => {}
            _ => {
                if let Some(o) = other(ty, v) {
                    self.try_value(path, o);
                }
            }
        }
    }
}

#[test]
fn every_registry_parameter_is_honoured_or_refused() {
    let mut components = BTreeSet::new();
    let (mut refused, mut carried) = (0, 0);
    let mut ignored = Vec::new();
    for (recipe, sets) in BASES {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let base_plan = planned(recipe, &sets).unwrap_or_else(|e| panic!("{recipe}: {e}"));
        let config = checked_config(recipe, &sets);
        // The rendering round-trips: every section written back changes nothing.
        for section in registry::sections() {
            let Some(v) = config.get(section.name) else {
                continue;
            };
            let text = render(&section.ty, v)
                .unwrap_or_else(|| panic!("{recipe}: cannot render `{}`", section.name));
            let mut s = sets.clone();
            s.push(format!("{}={text}", section.name));
            assert_eq!(
                planned(recipe, &s).unwrap_or_else(|e| panic!("{}={text}: {e}", section.name)),
                base_plan,
                "{recipe}: `{}` written back changes the plan",
                section.name
            );
        }
        let mut w = Walk {
            recipe,
            sets,
            config: config.clone(),
            base_plan,
            components: BTreeSet::new(),
            refused: 0,
            carried: 0,
            ignored: Vec::new(),
        };
        w.params(registry::sections(), &config, "");
        components.extend(w.components);
        refused += w.refused;
        carried += w.carried;
        ignored.extend(w.ignored);
    }
    assert!(
        ignored.is_empty(),
        "accepted by check and ignored by the plan:\n{}",
        ignored.join("\n")
    );
    let missing: Vec<String> = registry::components()
        .map(|c| format!("{}:{}", c.category.name(), c.name))
        .filter(|k| !components.contains(k))
        .filter(|k| {
            !REFUSED_COMPONENTS
                .iter()
                .any(|r| k.ends_with(&format!(":{r}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "components no base recipe instantiates (add a variant to BASES): {missing:?}"
    );
    eprintln!(
        "registry walk: {carried} values carried into the plan, {refused} refused by check, \
         {} components",
        components.len()
    );
    assert!(carried > 200, "{carried} values carried, {refused} refused");
}
