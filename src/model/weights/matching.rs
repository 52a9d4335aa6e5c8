//! Which tensors of a weights file become which parameters, and whether a load may go on. One
//! rule serves `init_cfg = pretrained(…)`, `runtime.load_from`, `mmrun check` (which matches
//! names and shapes read from headers, before anything runs) and resume (which must be exact).

use std::collections::BTreeMap;

/// Names and shapes: all that matching reads, from a file's header or from a planned model.
pub type Shapes = BTreeMap<String, Vec<usize>>;

/// How a weights file is loaded: mmcv's `load_checkpoint(…, strict, revise_keys)` as a recipe's
/// `pretrained { … }` says it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadRule {
    /// The module the file is for, as a name prefix: `backbone.` for a backbone's `init_cfg`,
    /// empty for the whole model (`load_from`, resume).
    pub target: String,
    /// Only the file's keys under this prefix, the prefix removed (mmcv's `prefix`; a dot is
    /// appended when it lacks one, as mmcv does).
    pub prefix: Option<String>,
    /// Every parameter and buffer of the target must load with its shape. `false` is mmcv's
    /// `strict=False`: what is missing or mis-shaped is reported and left as initialised.
    pub strict: bool,
    /// Parameters left as initialised and not required (the classifier of a fine-tune to other
    /// classes): each entry is a full name or a dotted prefix of names.
    pub skip: Vec<String>,
}

impl LoadRule {
    /// The whole model, every parameter required.
    pub fn exact() -> Self {
        Self {
            target: String::new(),
            prefix: None,
            strict: true,
            skip: Vec::new(),
        }
    }

    /// mmcv's prefix with the dot it appends.
    pub fn with_prefix(mut self, prefix: Option<&str>) -> Self {
        self.prefix = prefix.filter(|p| !p.is_empty()).map(|p| {
            if p.ends_with('.') {
                p.to_string()
            } else {
                format!("{p}.")
            }
        });
        self
    }

    fn skips(&self, name: &str) -> bool {
        self.skip.iter().any(|s| covers(s, name))
    }

    /// The parameter a file key feeds, or `None` for keys the rule leaves out: keys outside
    /// `prefix`, and `num_batches_tracked`, a counter PyTorch keeps beside BN statistics that
    /// mmrun's BN has no use for. DataParallel's `module.` is dropped first.
    fn param_name(&self, key: &str) -> Option<String> {
        let key = key.strip_prefix("module.").unwrap_or(key);
        if key.ends_with("num_batches_tracked") {
            return None;
        }
        let rest = match &self.prefix {
            Some(p) => key.strip_prefix(p.as_str())?,
            None => key,
        };
        Some(format!("{}{rest}", self.target))
    }
}

/// Whether skip entry `entry` covers parameter `name`: the name itself or a dotted prefix.
fn covers(entry: &str, name: &str) -> bool {
    let entry = entry.trim_end_matches('.');
    name == entry
        || name
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// What a load matched, by name: the one report of `init_cfg`, `load_from`, `check` and resume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Parameters loaded.
    pub loaded: Vec<String>,
    /// Parameters of the target the file does not hold (left as initialised).
    pub missing: Vec<String>,
    /// Keys of the file that no parameter takes (as the file spells them).
    pub unexpected: Vec<String>,
    /// `(parameter, file shape, model shape)`: not loaded.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Parameters the rule's `skip` left as initialised.
    pub skipped: Vec<String>,
    /// Entries of `skip` that cover no parameter of the target (a typo).
    pub unknown_skips: Vec<String>,
    /// The first key of the file, for the message when nothing matches.
    pub first_key: Option<String>,
}

/// A matched load: file key → parameter pairs to copy, and the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matched {
    pub pairs: Vec<(String, String)>,
    pub report: LoadReport,
}

/// Matches a file's tensors (`file`) to a model's parameters (`model`, every parameter and
/// buffer; only those under `rule.target` are wanted).
pub fn match_weights(file: &Shapes, model: &Shapes, rule: &LoadRule) -> Matched {
    let mut m = Matched::default();
    let r = &mut m.report;
    r.first_key = file.keys().next().cloned();
    for (key, file_shape) in file {
        let Some(name) = rule.param_name(key) else {
            continue;
        };
        match model.get(&name) {
            Some(_) if rule.skips(&name) => {}
            Some(shape) if shape == file_shape => {
                r.loaded.push(name.clone());
                m.pairs.push((key.clone(), name));
            }
            Some(shape) => r.mismatched.push((name, file_shape.clone(), shape.clone())),
            None => r.unexpected.push(key.clone()),
        }
    }
    let mut seen: Vec<&str> = r.loaded.iter().map(String::as_str).collect();
    seen.extend(r.mismatched.iter().map(|(n, ..)| n.as_str()));
    seen.sort_unstable();
    for name in model.keys().filter(|k| k.starts_with(&rule.target)) {
        if rule.skips(name) {
            r.skipped.push(name.clone());
        } else if seen.binary_search(&name.as_str()).is_err() {
            r.missing.push(name.clone());
        }
    }
    r.unknown_skips = rule
        .skip
        .iter()
        .filter(|s| {
            !model
                .keys()
                .any(|k| k.starts_with(&rule.target) && covers(s, k))
        })
        .cloned()
        .collect();
    m
}

impl LoadReport {
    /// Every parameter loaded and every tensor used.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.skipped.is_empty()
    }

    /// Why the load must not go on, if it must not: nothing matched, a `skip` entry names
    /// nothing, or (strict) a parameter is missing or mis-shaped. What the file has beyond the
    /// model is never a reason.
    pub fn refusal(&self, rule: &LoadRule) -> Option<String> {
        if let Some(s) = self.unknown_skips.first() {
            return Some(format!(
                "`skip` entry `{s}` names no parameter of the {}",
                target_name(rule)
            ));
        }
        if !self.mismatched.is_empty() && (rule.strict || self.loaded.is_empty()) {
            let what: Vec<String> = self
                .mismatched
                .iter()
                .map(|(k, f, m)| format!("{k}: file {f:?}, model {m:?}"))
                .collect();
            let advice = if self.loaded.is_empty() {
                "nothing in the file fits (another depth or width?)"
            } else {
                "list them in `skip` to leave them as initialised (a classifier for other \
                 classes), or set `strict = false`"
            };
            return Some(format!("shapes differ: {}; {advice}", listed(&what)));
        }
        if self.loaded.is_empty() {
            let looks = self.first_key.as_ref().map_or_else(
                || " (it holds no tensor)".to_string(),
                |k| format!(" (its keys look like `{k}`)"),
            );
            let selected = rule
                .prefix
                .as_ref()
                .map_or_else(String::new, |p| format!(", selected by prefix `{p}`,"));
            let hint = match (&rule.prefix, rule.target.as_str()) {
                (None, "") => "; weights for the backbone alone go in \
                               `model.backbone.init_cfg = pretrained(\"…\")`"
                    .to_string(),
                (None, t) => format!("; a whole-detector checkpoint needs `prefix = \"{t}\"`"),
                (Some(_), _) => String::new(),
            };
            return Some(format!(
                "no tensor of the file{selected} matches a parameter of the {}{looks}{hint}",
                target_name(rule)
            ));
        }
        if !rule.strict {
            return None;
        }
        if !self.missing.is_empty() {
            return Some(format!(
                "the file lacks {} of the {}'s parameters: {}; list them in `skip`, or set \
                 `strict = false` to leave them as initialised",
                self.missing.len(),
                target_name(rule),
                listed(&self.missing)
            ));
        }
        None
    }
}

fn target_name(rule: &LoadRule) -> &str {
    match rule.target.trim_end_matches('.') {
        "" => "model",
        t => t,
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loaded {} tensors", self.loaded.len())?;
        if !self.skipped.is_empty() {
            write!(f, "; skipped as asked: {}", listed(&self.skipped))?;
        }
        if !self.missing.is_empty() {
            write!(
                f,
                "; missing keys in the file (left as initialised): {}",
                listed(&self.missing)
            )?;
        }
        if !self.mismatched.is_empty() {
            let what: Vec<String> = self
                .mismatched
                .iter()
                .map(|(k, a, b)| format!("{k} (file {a:?}, model {b:?})"))
                .collect();
            write!(f, "; shape mismatch, not loaded: {}", listed(&what))?;
        }
        if !self.unexpected.is_empty() {
            write!(
                f,
                "; unexpected keys in the file: {}",
                listed(&self.unexpected)
            )?;
        }
        Ok(())
    }
}

/// The first few names, and how many more.
pub fn listed(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(items: &[(&str, &[usize])]) -> Shapes {
        items
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_vec()))
            .collect()
    }

    #[test]
    fn rules_select_rename_and_refuse() {
        let model = shapes(&[
            ("backbone.conv1.weight", &[8, 3, 7, 7]),
            ("backbone.bn1.running_var", &[8]),
            ("bbox_head.cls.weight", &[9, 8]),
            ("bbox_head.cls.bias", &[9]),
        ]);
        let torchvision = shapes(&[
            ("module.conv1.weight", &[8, 3, 7, 7]),
            ("bn1.running_var", &[8]),
            ("bn1.num_batches_tracked", &[]),
            ("fc.weight", &[10, 8]),
        ]);
        let backbone = LoadRule {
            target: "backbone.".into(),
            ..LoadRule::exact()
        };
        let m = match_weights(&torchvision, &model, &backbone);
        assert_eq!(m.report.loaded.len(), 2);
        assert_eq!(m.report.unexpected, ["fc.weight"]);
        assert!(m.report.missing.is_empty());
        assert_eq!(m.report.refusal(&backbone), None);
        assert_eq!(
            m.pairs[0],
            ("bn1.running_var".into(), "backbone.bn1.running_var".into())
        );

        // A detector with other classes: strict refuses until the classifier is skipped.
        let detector = shapes(&[
            ("backbone.conv1.weight", &[8, 3, 7, 7]),
            ("backbone.bn1.running_var", &[8]),
            ("bbox_head.cls.weight", &[3, 8]),
            ("bbox_head.cls.bias", &[3]),
        ]);
        let whole = LoadRule::exact();
        let m = match_weights(&detector, &model, &whole);
        let why = m.report.refusal(&whole).unwrap();
        assert!(
            why.contains("bbox_head.cls.weight: file [3, 8], model [9, 8]"),
            "{why}"
        );
        let skip = LoadRule {
            skip: vec!["bbox_head.cls".into()],
            ..LoadRule::exact()
        };
        let m = match_weights(&detector, &model, &skip);
        assert_eq!(m.report.refusal(&skip), None);
        assert_eq!(
            m.report.skipped,
            ["bbox_head.cls.bias", "bbox_head.cls.weight"]
        );
        let lax = LoadRule {
            strict: false,
            ..LoadRule::exact()
        };
        assert_eq!(
            match_weights(&detector, &model, &lax).report.refusal(&lax),
            None
        );
        // `bbox_head.cl` is not a dotted prefix of anything: a typo, refused.
        let typo = LoadRule {
            skip: vec!["bbox_head.cl".into()],
            ..LoadRule::exact()
        };
        let why = match_weights(&detector, &model, &typo)
            .report
            .refusal(&typo);
        assert!(why.unwrap().contains("`bbox_head.cl` names no parameter"));

        // A whole-detector file for a backbone: the prefix selects, else nothing matches.
        let m = match_weights(&detector, &model, &backbone);
        let why = m.report.refusal(&backbone).unwrap();
        assert!(why.contains("prefix = \"backbone.\""), "{why}");
        let sel = backbone.clone().with_prefix(Some("backbone"));
        let m = match_weights(&detector, &model, &sel);
        assert_eq!(m.report.loaded.len(), 2);
        assert!(
            m.report.unexpected.is_empty(),
            "keys outside the prefix are not asked for"
        );
    }
}
