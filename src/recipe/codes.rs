//! Error codes and their long explanations (`mmrun explain E0xxx`). Codes are grouped by
//! area: E01xx syntax, E02xx imports/merge/references/overrides, E03xx types against the
//! registry, E04xx cross-section checks, E05xx found by building the plan (the model, its
//! graph, the engine's settings).

/// One error code.
pub struct Code {
    pub code: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
}

/// Looks a code up (case-insensitive).
pub fn lookup(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code.eq_ignore_ascii_case(code))
}

macro_rules! codes {
    ($($code:literal, $title:literal, $text:literal;)*) => {
        /// Every code the recipe checks emit.
        pub static CODES: &[Code] = &[$(Code { code: $code, title: $title, explanation: $text }),*];
    };
}

codes! {
    "E0101", "syntax error",
    "The file does not follow the recipe grammar. The label shows where parsing stopped and what\n\
     could come next. Common causes: a missing `}` or `]`, `=` written as `:`, a string without\n\
     its closing quote, a length written as a float (`1.5 epochs`; lengths are whole numbers).\n\n\
     Example:\n    model = retinanet { backbone = resnet { depth = 50 }\n                                                      ^ expected `}`";
    "E0102", "nested too deep",
    "The file nests more than 64 levels: open brackets (`{`, `[`, `(`) count, and so do the\n\
     levels of the tree they build, each key of a dotted path included (`a.b.c = 1` is three).\n\
     Recipes written by hand nest under ten; the limit keeps a generated or hostile file from\n\
     exhausting the stack. Flatten the structure, or bind the inner part separately.";
    "E0201", "cannot read an import",
    "An `import` names a file that cannot be read. Import paths are relative to the importing file,\n\
     never URLs: a recipe reads only the local files it names.";
    "E0202", "import cycle",
    "A file imports itself through a chain of imports. The message lists the chain. Move the\n\
     shared settings into a base file that both import.";
    "E0203", "sibling imports disagree",
    "Two files imported side by side bind the same key to different values, and the importing\n\
     file does not choose. Which one wins would depend on import order, which is easy to get\n\
     wrong silently (mmcv takes the last). Bind the key in the importing file, or with `--set`.";
    "E0204", "unknown reference",
    "A reference (`data.train.classes` or `${data_root}`) names a path that is not bound after\n\
     every import and override is merged. References are lazy: they read the final value, so an\n\
     overridden `data_root` moves every path derived from it.";
    "E0205", "reference cycle",
    "References lead back to themselves (`a = b.c`, `b.c = a`), so no value can be computed.";
    "E0206", "bad --set override",
    "An override must be one `path=value` with the recipe's value syntax:\n\
     `--set optimizer.lr=0.02`, `--set 'data.train.classes=[\"cat\"]'`.";
    "E0207", "unknown path",
    "A path names a key that is not bound.";
    "E0208", "no such list item",
    "A path addresses a list item by name (`data.train.pipeline.resize`) or index, and there is\n\
     no such item, or the name matches several items (then use the index).";
    "E0209", "binding inside a non-record",
    "A path goes through a value that is not a record (`optimizer.lr.x = 1` where `lr` is a\n\
     number). Replace the value wholesale with `:=`, or fix the path.";
    "E0210", "environment access",
    "`env(\"VAR\", default)` makes the recipe depend on the machine it is checked on. It is an\n\
     error unless `--allow-env` is given; then every use is still reported as a warning.";
    "E0211", "bad string interpolation",
    "`${...}` inside a string must name a path whose value is a string, number, boolean or\n\
     length. Write `\\$` for a literal dollar sign.";
    "E0212", "nested too deep through references",
    "A reference puts the whole value it names under another path, so chained references can\n\
     build a configuration far deeper than any file: with references followed, the result may\n\
     nest at most 128 levels. Reference the shared value directly rather than through a chain.";
    "E0213", "key bound twice in one block",
    "One `{ ... }` body binds the same key twice (`sgd { lr = 0.02, lr = 0.01 }`). mmcv keeps the\n\
     last silently; here it is an error naming both. Repeating a binding at the top level of a\n\
     file (an override of an import) stays legal, as do `--set` overrides.";
    "E0214", "a component replaces another whole (warning)",
    "Binding a component of another type where one is set (`model = fcos { ... }` over an\n\
     imported `retinanet`, `optimizer = adamw { ... }` over `sgd`) replaces it whole: the old\n\
     component's settings do not carry over, since its parameters mean something else. mmcv\n\
     merges the keys instead (unless `_delete_=True`), which hands AdamW an SGD `momentum`. Write\n\
     every setting the new component needs; `:=` replaces without this warning.";
    "E0301", "unknown component",
    "No component of this name exists in the category the key expects. `mmrun explain NAME`\n\
     lists a component's parameters; the help names the nearest known component.";
    "E0302", "unknown key",
    "The component or record has no such parameter. mmcv silently adds misspelled keys and they\n\
     are ignored; here they are errors. The help names the nearest parameter.\n\n\
     Example:\n    checkpoint { max_keep_ckpt = 3 }   // the key is `max_keep_ckpts`";
    "E0303", "wrong type",
    "The value has the wrong type for the parameter (a string where a number is expected, a\n\
     record where a list is expected...). Strings are always quoted.";
    "E0304", "out of range",
    "The value is outside the parameter's range (`mmrun explain NAME` shows it): e.g. a\n\
     probability above 1, a negative learning rate, a ResNet depth that does not exist.";
    "E0305", "wrong unit",
    "Training lengths carry a unit (`500 iters`, `12 epochs`); plain numbers (`lr`) do not.";
    "E0306", "missing key",
    "A required parameter is not given, or a component key holds a record without a component\n\
     name, or a recipe with a model lacks a section it needs.";
    "E0307", "component of the wrong category",
    "The name is a component, but of another kind than the key expects (a loss where an\n\
     assigner goes).";
    "E0308", "unknown value",
    "The parameter takes one of a fixed set of names; the help gives the nearest.";
    "E0310", "unknown section",
    "Top-level keys are the sections `model`, `data`, `optimizer`, `schedule`, `hooks`, `run`\n\
     and `runtime`. Variables are declared with `let`.";
    "E0311", "not supported by this build",
    "The registry knows the setting, but this build cannot honour it (the `profiler` hook, a\n\
     distributed launcher, clipping by a norm other than 2). `check` refuses it rather\n\
     than let `exec` stop after the data is loaded, or silently do something else. The help\n\
     says what to write instead.";
    "E0401", "num_classes does not match the dataset",
    "The head's `num_classes` differs from the dataset's classes (its `classes` list, or the\n\
     categories of its annotation file). mmdetection finds this only when a hook runs, or never.";
    "E0402", "class not in the annotation file",
    "A name in `classes` is not a category of the dataset's annotation file, so it would\n\
     silently have no examples.";
    "E0403", "unknown metric",
    "`save_best` or an early-stopping `monitor` names a metric the configured evaluator does not\n\
     produce (mmdetection fails after the first epoch). coco_bbox produces bbox_mAP,\n\
     bbox_mAP_50, bbox_mAP_75, bbox_mAP_s, bbox_mAP_m, bbox_mAP_l.";
    "E0404", "milestone outside the run",
    "A schedule milestone is at or past the end of the run, so it never takes effect.";
    "E0405", "warmup too long",
    "The warmup is not shorter than the run.";
    "E0406", "phase without a dataset",
    "A workflow phase (or the eval hook) needs a dataset that `data` does not define.";
    "E0407", "channel mismatch",
    "Channels do not flow: the neck's `in_channels` must be the backbone's output channels\n\
     (ResNet: base_channels × 2^stage, × 4 from depth 50), and the head's `in_channels` the\n\
     neck's `out_channels`.";
    "E0408", "stride mismatch",
    "The head's or anchor generator's strides must be the strides of the neck's output levels\n\
     (the backbone stride at `start_level`, doubling per level, `num_outs` levels).";
    "E0409", "pad divisor",
    "The pad `size_divisor` must be a multiple of the backbone's largest stride, or feature maps\n\
     of neighbouring levels stop aligning.";
    "E0411", "file not found",
    "A file or folder the recipe names does not exist. `--no-fs` skips file checks (for CI\n\
     without data).";
    "E0412", "unreadable annotation file",
    "The annotation file exists but its `categories` cannot be read as COCO JSON.";
    "E0413", "run length",
    "`run` needs exactly one of `epochs` and `iters`.";
    "E0414", "bad schedule expression",
    "A `custom` schedule's `expr` does not parse. Expressions are arithmetic over `epoch`, `iter`,\n\
     `progress` (0 to 1 over the run) and `base_lr`, compiled to native code; they cannot read\n\
     anything else.\n\n\
     Example:\n    main = custom { expr = \"base_lr * (1 - progress) ^ 0.9\" }";
    "E0415", "bad hook order",
    "A hook's `before`/`after` names a hook that does not exist, or the constraints form a cycle\n\
     (`a` before `b` and `b` before `a`). Hooks run in a built-in order (optimizer, ema, lr,\n\
     sampler_seed, eval, early_stopping, checkpoint, log) adjusted by these names; there are no\n\
     priorities.";
    "E0416", "invalid schedule",
    "The `schedule` section does not describe a schedule mmrun can run: an unknown key or\n\
     policy parameter, a milestone at 0, a step list that is not increasing, a `by_epoch` that\n\
     contradicts the units given. The message names the key; the schedule rules are mmcv's\n\
     (`mmrun explain step` and the other policy names show each policy's parameters).";
    "E0417", "weights do not fit the model",
    "A weights file the recipe names (`init_cfg = pretrained(…)`, `runtime.load_from`) cannot be\n\
     read as weights, or does not load into the model by its rule: nothing in it matches a\n\
     parameter, a `skip` entry names no parameter, or (with `strict = true`, the default) a\n\
     parameter is missing from it or has another shape. `check` reads names and shapes from the\n\
     file's header only; `exec` applies the same rule.\n\n\
     Example (a COCO RetinaNet fine-tuned to 3 classes):\n    \
     runtime.load_from = pretrained { checkpoint = \"retinanet_coco.pth\", skip = [\"bbox_head.retina_cls\"] }";
    "E0418", "evaluator the detector cannot feed",
    "The eval hook's `metric` scores output the detector does not make: an `rpn` outputs\n\
     class-agnostic proposals, scored by `proposal_recall` (its default) or `proposal_fast`\n\
     only. Detectors take every evaluator (the proposal ones then score their detections as\n\
     proposals).";
    "E0501", "the model cannot be built with these settings",
    "Building the model found a setting it cannot use: a backbone or neck whose layers do not\n\
     fit together (e.g. `out_indices` past `num_stages`, `start_level` at or past the last input\n\
     level, `num_outs` fewer than the levels used), or a combination of losses, coders and\n\
     anchors the detector does not take (e.g. `fcos_head` with a `smooth_l1_loss`). `check`\n\
     builds the model as `exec` does, so a recipe that checks clean builds.\n\n\
     Example:\n    model.neck.start_level = 4   # the backbone gives 4 levels: 0 to 3";
    "E0502", "the train graph cannot be built at the recipe's batch shape",
    "The model's train graph, built for `data.samples_per_gpu` images of the largest size the\n\
     training pipeline can make (what `mmrun plan` shows), has tensors that do not fit: an\n\
     input too small for the strides (a feature map of size 0), or feature maps whose sizes\n\
     differ from what the head's strides say. Pad or resize to a larger size, or use fewer\n\
     levels.";
    "E0503", "the engine refuses a setting",
    "A setting typed cleanly against the registry but the engine that runs the recipe cannot\n\
     take it (`exec` would stop on it before training). The message names the config path and\n\
     the reason. This is the plan's last guard: settings the checker knows to refuse have codes\n\
     of their own (E03xx, E04xx).";
}
