//! Recipe semantics: imports, merge/replace, lazy references, `--set` overrides, type checking
//! against the registry, cross-section checks, diagnostics. Builds nothing.
//!
//! The stages, each its own file: `load` (files, imports, overrides → merged tree), `resolve`
//! (references), `typeck` (registry → JSON config + span table), `cross` (checks across
//! sections). The public entry point is [`load`]; consumers read [`CheckedRecipe::config`].

pub mod codes;
mod cross;
pub mod diag;
pub mod habits;
mod load;
pub mod reference;
pub mod render;
mod resolve;
pub mod spans;
mod suggest;
mod support;
mod tree;
mod typeck;

pub use cross::metrics_of;
pub use diag::{Diagnostic, Diagnostics, FileId, Files, Loc, Severity};
pub use load::MAX_RECIPE_BYTES;
pub use render::RenderOptions;
pub use resolve::EnvPolicy;
pub use spans::SpanTable;

use std::path::Path;

/// What a check may do besides reading the recipe files.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Skip every check that reads files the recipe names (annotation files, checkpoints).
    pub no_fs: bool,
    /// Whether `env(...)` may read the environment.
    pub env: EnvPolicy,
}

/// A recipe that passed every check.
#[derive(Clone, Debug)]
pub struct CheckedRecipe {
    /// The configuration tree (see `docs/ARCHITECTURE.md`): sections `model`, `data`,
    /// `optimizer`, `schedule`, `hooks`, `run`, `runtime`; components are objects with a
    /// `"type"` and every parameter, defaults filled in; lengths are strings like `"500 iters"`.
    pub config: serde_json::Value,
    /// Config path → where it was written.
    pub spans: SpanTable,
    /// The source files read (the recipe and its imports), for rendering diagnostics.
    pub files: Files,
    /// Warnings the check found (errors make [`load`] fail).
    pub warnings: Diagnostics,
}

/// A recipe that did not pass: every diagnostic found, with the files to render them against.
#[derive(Clone, Debug)]
pub struct Failed {
    pub diagnostics: Diagnostics,
    pub files: Files,
}

impl Failed {
    /// Renders every diagnostic (plain text, no colour) followed by a summary line.
    pub fn render(&self) -> String {
        render::render_all(&self.diagnostics.0, &self.files, RenderOptions::default())
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Failed {}

impl CheckedRecipe {
    /// A diagnostic pointing at the recipe text of a config path (or its nearest ancestor
    /// with text). Later stages use this to report, e.g., a shape mismatch on
    /// `model.neck.in_channels`.
    pub fn diagnostic_at(
        &self,
        path: &str,
        code: &'static str,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::error(code, message).with_label_opt(self.spans.nearest(path), label)
    }
    /// Renders diagnostics against this recipe's files (plain text).
    pub fn render(&self, diags: &[Diagnostic]) -> String {
        render::render_all(diags, &self.files, RenderOptions::default())
    }
    /// A recipe without a model (no `model` section, or `model = none`): a base meant for
    /// import, checked but not planned.
    pub fn is_partial(&self) -> bool {
        self.config
            .get("model")
            .is_none_or(serde_json::Value::is_null)
    }
    /// The value at a dotted config path (`model.head.num_classes`; list items by index).
    pub fn get(&self, path: &str) -> Option<&serde_json::Value> {
        path.split('.').try_fold(&self.config, |v, k| match v {
            serde_json::Value::Object(m) => m.get(k),
            serde_json::Value::Array(a) => a.get(k.parse::<usize>().ok()?),
            _ => None,
        })
    }
}

/// Everything a check produced: the recipe when there were no errors, and all diagnostics.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub recipe: Option<CheckedRecipe>,
    pub diagnostics: Diagnostics,
    pub files: Files,
}

/// Loads and checks a recipe: imports, `overrides` (`path=value` strings, as `--set` takes
/// them), references, types, cross-section checks.
pub fn load(
    path: &Path,
    overrides: &[String],
    opts: &CheckOptions,
) -> Result<CheckedRecipe, Failed> {
    check(path, overrides, opts).into_result()
}

impl Outcome {
    /// The checked recipe, or every diagnostic when it did not pass.
    pub fn into_result(self) -> Result<CheckedRecipe, Failed> {
        match self.recipe {
            Some(r) => Ok(r),
            None => Err(Failed {
                diagnostics: self.diagnostics,
                files: self.files,
            }),
        }
    }
}

/// Puts each diagnostic's labels in the files the user wrote (the recipe checked and `--set`)
/// before those in imported base files: the primary label is the line the user can change.
fn user_lines_first(diags: &mut Diagnostics, files: &Files) {
    let user = |f: FileId| f == 0 || files.files[f].path.starts_with("<--set");
    for d in &mut diags.0 {
        d.labels.sort_by_key(|l| !user(l.loc.file));
    }
}

/// Like [`load`], but returns warnings and errors together.
pub fn check(path: &Path, overrides: &[String], opts: &CheckOptions) -> Outcome {
    check_with(path, overrides, opts, &|_, _, _| {})
}

/// Checks that need more than the recipe front end (`plan` builds the model's graphs): run
/// with the cross-section checks on whatever typed cleanly, so their errors come with the
/// others in one run.
pub type LaterChecks<'a> = &'a dyn Fn(&serde_json::Value, &SpanTable, &mut Diagnostics);

/// [`check`], with `later` run beside the cross-section checks (what `mmrun check` does, with
/// `plan`'s).
pub fn check_with(
    path: &Path,
    overrides: &[String],
    opts: &CheckOptions,
    later: LaterChecks<'_>,
) -> Outcome {
    let mut files = Files::default();
    let mut diags = Diagnostics::default();
    let merged = load::load(path, overrides, &mut files, &mut diags);
    let mut recipe = None;
    if let Some(merged) = merged {
        let builtins = resolve::Builtins {
            stem: path.file_stem().map_or_else(String::new, |s| {
                let s = s.to_string_lossy();
                s.strip_suffix(".recipe").unwrap_or(&s).to_string()
            }),
            dir: path
                .parent()
                .map_or_else(String::new, |p| p.display().to_string()),
        };
        let root = resolve::resolve(&merged, &builtins, opts.env, &mut diags);
        let (config, spans) = typeck::check(&root, &mut diags);
        // Every error in one run: the checks across sections read only what typed cleanly
        // (a value with a type error is null in `config`, and they skip what is missing).
        cross::check(&config, &spans, opts.no_fs, &mut diags);
        support::check(&config, &spans, &mut diags);
        later(&config, &spans, &mut diags);
        user_lines_first(&mut diags, &files);
        diags.sort();
        if !diags.has_errors() {
            recipe = Some(CheckedRecipe {
                config,
                spans,
                files: files.clone(),
                warnings: diags.clone(),
            });
        }
    } else {
        diags.sort();
    }
    Outcome {
        recipe,
        diagnostics: diags,
        files,
    }
}
