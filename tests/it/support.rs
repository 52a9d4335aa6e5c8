//! Helpers the test areas share.

use mmrun::registry::{Category, Ty, complete};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A pipeline: a list of transforms.
pub const TRANSFORMS: Ty = Ty::List(&Ty::Comp(Category::Transform));

/// `v`, written in a test as a recipe would (keys it leaves out get the registry's defaults,
/// as the checker fills them in), as the typed config `T`.
pub fn typed<T: DeserializeOwned>(ty: &Ty, v: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(complete(ty, &v))
}

/// The type of a top-level section (`data`).
pub fn section(name: &str) -> &'static Ty {
    let p = mmrun::registry::sections().iter().find(|p| p.name == name);
    &p.unwrap_or_else(|| panic!("no section `{name}`")).ty
}

/// A component's own settings (`{"depth": 18}` for a `resnet`), completed and typed as its
/// struct, which takes no `type` key.
pub fn typed_params<T: DeserializeOwned>(cat: Category, name: &str, mut v: Value) -> T {
    v["type"] = Value::from(name);
    let mut v = complete(&Ty::Comp(cat), &v);
    v.as_object_mut().unwrap().remove("type");
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every schedule policy and warmup object in `v` completed with its registry defaults.
pub fn schedule(v: &Value) -> Value {
    fn walk(v: &Value, warmup: bool) -> Value {
        match v {
            Value::Object(m) if m.contains_key("type") => {
                let cat = if warmup {
                    Category::Warmup
                } else {
                    Category::Policy
                };
                complete(&Ty::Comp(cat), v)
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), walk(x, k == "warmup")))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|x| walk(x, warmup)).collect()),
            _ => v.clone(),
        }
    }
    walk(v, false)
}

/// A test that needs a reference implementation (Python, torch, pycocotools, ptxas) which is
/// missing: prints why `test` skips — or panics when `MMRUN_REQUIRE_REFERENCES` is set, as
/// `.ci/run` does, so a broken install fails CI instead of silently skipping the comparisons.
pub fn skip_without_reference(test: &str, why: &str) {
    if std::env::var_os("MMRUN_REQUIRE_REFERENCES").is_some() {
        panic!("{test}: MMRUN_REQUIRE_REFERENCES is set but {why}");
    }
    eprintln!("skipped {test}: {why}");
}

/// A seed that changes every run unless `MMRUN_SEED` pins it; printed with `test`'s name so a
/// failure can be replayed.
pub fn fresh_seed(test: &str) -> u64 {
    let seed = std::env::var("MMRUN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: MMRUN_SEED={seed}");
    seed
}
