//! Checks across sections, on the typed config: classes vs heads and annotation files,
//! metrics vs evaluators, milestones vs run length, workflow vs datasets, named files, hook
//! order. What only building the model can tell (channels, strides) is `plan`'s.

use super::diag::{Diagnostic, Diagnostics};
use super::spans::SpanTable;
use crate::util::units::Period;
use serde_json::Value;
use std::path::Path;

struct Ctx<'a> {
    c: &'a Value,
    spans: &'a SpanTable,
    diags: &'a mut Diagnostics,
    no_fs: bool,
}

/// Runs every cross-section check.
pub fn check(config: &Value, spans: &SpanTable, no_fs: bool, diags: &mut Diagnostics) {
    let mut x = Ctx {
        c: config,
        spans,
        diags,
        no_fs,
    };
    x.classes();
    x.metrics();
    x.run_length();
    x.workflow();
    x.files();
    x.hook_order();
}

/// Hooks the runner always installs, besides those a recipe names (`engine::hooks`).
const BUILTIN_HOOKS: &[&str] = &["nan_guard", "lr", "sampler_seed", "optimizer"];

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Metric names an evaluator produces (mmdetection's keys).
pub fn metrics_of(evaluator: &str) -> &'static [&'static str] {
    use crate::registry::metrics::{MetricKind, metric_names};
    MetricKind::from_name(evaluator).map_or(&[], metric_names)
}

#[derive(serde::Deserialize)]
struct Category {
    name: String,
}

#[derive(serde::Deserialize)]
struct CocoCategories {
    categories: Vec<Category>,
}

impl Ctx<'_> {
    fn err(&mut self, code: &'static str, path: &str, msg: String, label: &str) -> Diagnostic {
        let _ = code;
        Diagnostic::error(code, msg).with_label_opt(self.spans.nearest(path), label.to_string())
    }

    fn classes(&mut self) {
        // A one-stage head's classes, or a two-stage detector's second stage's.
        let Some((head_classes, nc)) = [
            "model.bbox_head.num_classes",
            "model.roi_head.bbox_head.num_classes",
        ]
        .into_iter()
        .find_map(|p| Some((p, get(self.c, p)?.as_i64()?))) else {
            return;
        };
        for split in ["train", "val", "test"] {
            let base = format!("data.{split}");
            let Some(ds) = get(self.c, &base) else {
                continue;
            };
            let declared: Option<Vec<String>> =
                ds.get("classes").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                });
            let file_cats = self.annotation_categories(ds, &base);
            if let (Some(decl), Some(cats)) = (&declared, &file_cats) {
                for (i, name) in decl.iter().enumerate() {
                    if !cats.iter().any(|c| c == name) {
                        let near = super::suggest::nearest(name, cats.iter().map(String::as_str));
                        let d = self
                            .err(
                                "E0402",
                                &format!("{base}.classes.{i}"),
                                format!("class `{name}` is not a category of the annotation file"),
                                "not in the file",
                            )
                            .with_help(match near {
                                Some(n) => format!("the file has `{n}`"),
                                None => format!("the file's categories are {}", cats.join(", ")),
                            });
                        self.diags.push(d);
                    }
                }
            }
            let (count, from) = match (&declared, &file_cats) {
                (Some(d), _) => (d.len(), format!("`{base}.classes` lists {}", d.len())),
                (None, Some(c)) => (
                    c.len(),
                    format!("the annotation file of `{base}` has {} categories", c.len()),
                ),
                (None, None) => continue,
            };
            if count as i64 != nc {
                let d = self
                    .err(
                        "E0401",
                        head_classes,
                        format!("`num_classes` is {nc} but {from}"),
                        "head class count",
                    )
                    .with_label_opt(
                        self.spans
                            .nearest(&format!("{base}.classes"))
                            .or(self.spans.nearest(&base)),
                        "dataset classes",
                    )
                    .with_help(format!("set `{head_classes} = {count}`"));
                self.diags.push(d);
                return;
            }
        }
    }

    /// The category names of a COCO annotation file, reading only `categories`.
    fn annotation_categories(&mut self, ds: &Value, base: &str) -> Option<Vec<String>> {
        if self.no_fs || ds.get("type").and_then(Value::as_str) == Some("voc_dataset") {
            return None;
        }
        let f = ds.get("ann_file")?.as_str()?;
        let text =
            crate::util::read::regular_text(std::path::Path::new(f), crate::util::read::UNLIMITED)
                .ok()?;
        match serde_json::from_str::<CocoCategories>(&text) {
            Ok(c) => Some(c.categories.into_iter().map(|c| c.name).collect()),
            Err(e) => {
                let d = self.err(
                    "E0412",
                    &format!("{base}.ann_file"),
                    format!("cannot read the categories of `{f}`: {e}"),
                    "this annotation file",
                );
                self.diags.push(d);
                None
            }
        }
    }

    fn metrics(&mut self) {
        use crate::registry::metrics::{default_evaluator, evaluator_fits};
        let detector = get(self.c, "model.type").and_then(Value::as_str);
        let evaluator = get(self.c, "hooks.eval").map(|eval| {
            match eval.get("metric").and_then(Value::as_str) {
                Some(m) => m,
                None => default_evaluator(detector.unwrap_or_default()),
            }
        });
        if let (Some(d), Some(e)) = (detector, evaluator)
            && !evaluator_fits(d, e)
        {
            let diag = self
                .err(
                    "E0418",
                    "hooks.eval.metric",
                    format!("an `{d}` outputs class-agnostic proposals, which `{e}` cannot score"),
                    "needs detections",
                )
                .with_label_opt(self.spans.nearest("model"), "a proposal network")
                .with_help("evaluate it with `metric = proposal_recall` (the default for an rpn)");
            self.diags.push(diag);
        }
        for (path, what) in [
            ("hooks.checkpoint.save_best", "save_best"),
            ("hooks.early_stopping.monitor", "monitor"),
        ] {
            let Some(m) = get(self.c, path).and_then(Value::as_str) else {
                continue;
            };
            match evaluator {
                None => {
                    let d = self
                        .err(
                            "E0403",
                            path,
                            format!("`{what}` watches `{m}` but no evaluation is configured"),
                            "needs an eval hook",
                        )
                        .with_help("add `hooks { eval { every = 1 epoch, metric = coco_bbox } }`");
                    self.diags.push(d);
                }
                Some(e) => {
                    let known = metrics_of(e);
                    if !known.contains(&m) {
                        let help = match super::suggest::nearest(m, known.iter().copied()) {
                            Some(n) => format!("the metric is `{n}`"),
                            None => format!("`{e}` produces {}", known.join(", ")),
                        };
                        let d = self
                            .err(
                                "E0403",
                                path,
                                format!("`{m}` is not a metric of the `{e}` evaluator"),
                                "unknown metric",
                            )
                            .with_help(help);
                        self.diags.push(d);
                    }
                }
            }
        }
    }

    fn run_length(&mut self) {
        let Some(run) = get(self.c, "run") else {
            return;
        };
        let epochs = run.get("epochs").and_then(Value::as_i64);
        let iters = run.get("iters").and_then(Value::as_i64);
        if epochs.is_some() == iters.is_some() {
            let d = self
                .err(
                    "E0413",
                    "run",
                    "the run needs exactly one of `epochs` and `iters`".into(),
                    "run length",
                )
                .with_help("write `run = { epochs = 12, ... }` or `run = { iters = 90000, ... }`");
            self.diags.push(d);
            return;
        }
        let total = match (epochs, iters) {
            (Some(e), _) => Period::epochs(e as u64),
            (_, Some(i)) => Period::iters(i as u64),
            _ => return,
        };
        // The schedule module owns every schedule rule (milestones, warmup, expressions,
        // policy parameters): report its findings on the recipe text.
        if let Some(section) = get(self.c, "schedule") {
            for e in crate::schedule::check(section, "schedule", total, None) {
                self.schedule_problem(e, total);
            }
        }
    }

    /// One problem found by `schedule::check`, as a diagnostic on the recipe span.
    fn schedule_problem(&mut self, e: crate::schedule::ConfigError, total: Period) {
        use crate::schedule::ProblemKind;
        // The schedule module writes list items as `main[0]`; recipe spans as `main.0`.
        let path = e.path.replace('[', ".").replace(']', "");
        let d = match &e.kind {
            ProblemKind::WarmupTooLong => self
                .err("E0405", &path, e.message.clone(), "too long")
                .with_help("shorten the warmup or lengthen the run"),
            ProblemKind::MilestoneOutside => self
                .err("E0404", &path, e.message.clone(), "outside the run")
                .with_help(format!("milestones must be below {total}")),
            ProblemKind::Expression { reason, offset } => {
                // The string's span includes its opening quote; point at the offending byte.
                let loc = self.spans.get(&path).map(|l| {
                    let start = (l.start + 1 + offset)
                        .min(l.end.saturating_sub(1))
                        .max(l.start);
                    super::diag::Loc {
                        file: l.file,
                        start,
                        end: (start + 1).min(l.end),
                    }
                });
                Diagnostic::error("E0414", format!("schedule expression: {reason}"))
                    .with_label_opt(loc, "here")
                    .with_help("expressions use `epoch`, `iter`, `progress`, `base_lr`, numbers, + - * / ^ and functions like cos, exp, min")
            }
            ProblemKind::Invalid => self.err("E0416", &path, e.message.clone(), "here"),
        };
        self.diags.push(d);
    }

    fn workflow(&mut self) {
        let Some(wf) = get(self.c, "run.workflow").and_then(Value::as_array) else {
            return;
        };
        let has_data = get(self.c, "data").is_some();
        for (i, ph) in wf.iter().enumerate() {
            // Only the phases that typed (`train`, `val`): an unknown one is E0308 already.
            let Some(mode) = ph
                .get("mode")
                .and_then(Value::as_str)
                .filter(|m| ["train", "val"].contains(m))
            else {
                continue;
            };
            if has_data && get(self.c, &format!("data.{mode}")).is_none() {
                let d = self
                    .err("E0406", &format!("run.workflow.{i}"), format!("the workflow has a `{mode}` phase but there is no `data.{mode}` dataset"), "needs a dataset")
                    .with_help(format!("add `data.{mode} = coco_dataset {{ ... }}` or remove the phase"));
                self.diags.push(d);
            }
        }
        if has_data && get(self.c, "hooks.eval").is_some() && get(self.c, "data.val").is_none() {
            let d = self
                .err(
                    "E0406",
                    "hooks.eval",
                    "the eval hook has no `data.val` dataset to evaluate".into(),
                    "needs data.val",
                )
                .with_help("add `data.val = ...` or remove the eval hook");
            self.diags.push(d);
        }
    }

    /// `before`/`after` name hooks that exist, and the constraints have no cycle.
    fn hook_order(&mut self) {
        let Some(hooks) = get(self.c, "hooks").and_then(Value::as_object) else {
            return;
        };
        let known: Vec<&str> = crate::registry::names(crate::registry::Category::Hook)
            .into_iter()
            .chain(BUILTIN_HOOKS.iter().copied())
            .collect();
        // Edges a → b: a runs before b.
        let mut edges: Vec<(String, String)> = Vec::new();
        for (name, h) in hooks {
            for rel in ["before", "after"] {
                let Some(list) = h.get(rel).and_then(Value::as_array) else {
                    continue;
                };
                for (i, other) in list.iter().filter_map(Value::as_str).enumerate() {
                    let path = format!("hooks.{name}.{rel}.{i}");
                    if other == name || !known.contains(&other) {
                        let help = if other == name {
                            "a hook cannot be ordered against itself".to_string()
                        } else {
                            match super::suggest::nearest(other, known.iter().copied()) {
                                Some(n) => format!("the hook is `{n}`"),
                                None => format!("hooks are {}", known.join(", ")),
                            }
                        };
                        let d = self
                            .err(
                                "E0415",
                                &path,
                                format!("`{name}` is ordered {rel} `{other}`, which is not a hook"),
                                "unknown hook",
                            )
                            .with_help(help);
                        self.diags.push(d);
                        continue;
                    }
                    let (a, b) = if rel == "before" {
                        (name.clone(), other.to_string())
                    } else {
                        (other.to_string(), name.clone())
                    };
                    edges.push((a, b));
                }
            }
        }
        // A cycle: some hook reaches itself through the edges.
        for (start, _) in &edges {
            let mut seen = vec![start.clone()];
            let mut stack = vec![start.clone()];
            while let Some(n) = stack.pop() {
                for (a, b) in &edges {
                    if *a != n {
                        continue;
                    }
                    if b == start {
                        let has_before = hooks
                            .get(start.as_str())
                            .and_then(|h| h.get("before"))
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty());
                        let rel = if has_before { "before" } else { "after" };
                        let d = self
                            .err(
                                "E0415",
                                &format!("hooks.{start}.{rel}"),
                                format!(
                                    "the `before`/`after` constraints of `{start}` form a cycle"
                                ),
                                "part of a cycle",
                            )
                            .with_help("remove one of the constraints");
                        self.diags.push(d);
                        return;
                    }
                    if !seen.contains(b) {
                        seen.push(b.clone());
                        stack.push(b.clone());
                    }
                }
            }
        }
    }

    fn files(&mut self) {
        if self.no_fs {
            return;
        }
        let mut wanted = Vec::new();
        for split in ["train", "val", "test"] {
            wanted.push(format!("data.{split}.ann_file"));
            wanted.push(format!("data.{split}.img_prefix"));
        }
        wanted.push("model.backbone.init_cfg.checkpoint".into());
        wanted.push("runtime.load_from".into());
        wanted.push("runtime.load_from.checkpoint".into());
        if get(self.c, "runtime.resume").and_then(Value::as_str) != Some("auto") {
            wanted.push("runtime.resume".into());
        }
        // `mmrun exec` generates a missing shapes dataset on its first run, in the folder
        // above the train annotation file's (`data::synth::missing_shapes_root`).
        let generated = (get(self.c, "data.train.type").and_then(Value::as_str)
            == Some("shapes_dataset"))
        .then(|| get(self.c, "data.train.ann_file").and_then(Value::as_str))
        .flatten()
        .map(Path::new)
        .filter(|ann| !ann.is_file())
        .and_then(|ann| ann.parent()?.parent())
        .map(Path::to_path_buf);
        for path in wanted {
            let Some(f) = get(self.c, &path).and_then(Value::as_str) else {
                continue;
            };
            if generated
                .as_deref()
                .is_some_and(|root| Path::new(f).starts_with(root))
            {
                continue;
            }
            if !Path::new(f).exists() {
                let d = self
                    .err(
                        "E0411",
                        &path,
                        format!("`{f}` does not exist"),
                        "no such file or folder",
                    )
                    .with_help("fix the path, or pass `--no-fs` to skip file checks");
                self.diags.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_the_evaluators() {
        assert!(metrics_of("coco_bbox").contains(&"bbox_mAP_50"));
    }
}
