//! Help for mmdetection's Python config habits: the names and spellings a user porting a
//! config writes first, and what the recipe language calls them. Only help text: the errors
//! themselves come from the grammar and the registry.

/// Help for a bare name where a value was expected (`True`, `None`, `NaN`).
pub fn symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "True" => "booleans are lowercase: `true`",
        "False" => "booleans are lowercase: `false`",
        "None" => "no value is written `none`",
        "NaN" | "nan" | "inf" | "Inf" | "Infinity" | "infinity" => {
            "recipes hold finite numbers only; NaN and infinity are not values"
        }
        _ => return None,
    })
}

/// Help for a key mmdetection's configs use where the recipe language has another name;
/// `section` is the path of the record it was written in (empty at the top).
pub fn renamed(section: &str, key: &str) -> Option<&'static str> {
    let top = section.is_empty();
    Some(match key {
        "lr_config" if top => "mmdetection's `lr_config` is the `schedule lr { ... }` block",
        "momentum_config" if top => {
            "mmdetection's `momentum_config` is the `schedule momentum { ... }` block"
        }
        "optimizer_config" if top => {
            "mmdetection's `optimizer_config` is the `hooks.optimizer` block (`grad_clip`)"
        }
        "checkpoint_config" if top => "mmdetection's `checkpoint_config` is `hooks.checkpoint`",
        "log_config" if top => "mmdetection's `log_config` is `hooks.log`",
        "evaluation" if top => "mmdetection's `evaluation` is `hooks.eval`",
        "custom_hooks" if top => "hooks are blocks inside `hooks { ... }`",
        "total_epochs" | "max_epochs" if top => "the training length is `run.epochs`",
        "runner" if top => "the training length is `run.epochs` (or `run.iters`)",
        "workflow" if top => "the workflow is `run.workflow`",
        "load_from" if top => "the key is `runtime.load_from`",
        "resume_from" if top => "the key is `runtime.resume`",
        "work_dir" if top => "the key is `runtime.work_dir`",
        "gpu_ids" if top => "the device count is `runtime.devices`",
        "interval" => "periods are `every` with a unit: `every = 1 epoch`",
        "img_scale" => "the key is `scale`",
        "imgs_per_gpu" => "the key is `samples_per_gpu`",
        "type" => "the component's name goes before its braces: `sgd { lr = 0.02 }`",
        _ => return None,
    })
}
