//! `mmrun check`: arguments and output only; the work happens in `crate::plan::check` (the
//! recipe checks of `crate::recipe`, then the plan and the weights files it names).

use crate::recipe::{self, CheckOptions, EnvPolicy, RenderOptions};

use super::Format;

/// Arguments of `mmrun check`.
#[derive(clap::Args)]
pub struct Args {
    /// Recipe files to check; a folder checks every `.recipe` file below it.
    #[arg(required = true)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Override a value: `--set optimizer.lr=0.02` (recipe value syntax; unknown paths fail).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Skip checks that read files the recipe names (annotation files, checkpoints).
    #[arg(long)]
    pub no_fs: bool,
    /// Allow `env("VAR", default)` in recipes (every use is still reported).
    #[arg(long)]
    pub allow_env: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Print the checked configuration tree as JSON.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(args: Args) -> u8 {
    let opts = CheckOptions {
        no_fs: args.no_fs,
        env: if args.allow_env {
            EnvPolicy::Allow
        } else {
            EnvPolicy::Deny
        },
    };
    let render = RenderOptions::for_stderr();
    let mut inputs = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            let found = recipes_below(input);
            if found.is_empty() {
                crate::errln!(
                    "error: `{}` is a folder with no `.recipe` file below it",
                    input.display()
                );
                return super::EXIT_CANNOT_RUN;
            }
            inputs.extend(found);
        } else if let Some(why) = super::unreadable_recipe(input) {
            crate::errln!("error: {why}");
            return super::EXIT_CANNOT_RUN;
        } else {
            inputs.push(input.clone());
        }
    }
    let mut worst = super::EXIT_OK;
    for input in &inputs {
        let out = crate::plan::check(input, &args.set, &opts);
        match args.format {
            Format::Json => {
                for d in out.diagnostics.iter() {
                    let j = d.to_json(&out.files);
                    crate::outln!("{}", serde_json::to_string(&j).unwrap_or_default());
                }
            }
            Format::Text => {
                if !out.diagnostics.is_empty() {
                    crate::err!(
                        "{}",
                        recipe::render::render_all(&out.diagnostics.0, &out.files, render)
                    );
                }
            }
        }
        match &out.recipe {
            Some(r) => {
                if args.print_config {
                    crate::outln!(
                        "{}",
                        serde_json::to_string_pretty(&r.config).unwrap_or_default()
                    );
                } else if args.format == Format::Text && r.is_partial() {
                    crate::errln!(
                        "{}: ok (a partial recipe, no `model`: checked, not planned)",
                        input.display()
                    );
                } else if args.format == Format::Text {
                    crate::errln!("{}: ok", input.display());
                }
            }
            None => worst = super::EXIT_PROBLEMS,
        }
    }
    worst
}

/// Every `.recipe` file below `dir`, sorted, not following links to folders (no cycles) and
/// skipping hidden folders (`.git`).
fn recipes_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() && !hidden {
                todo.push(path);
            } else if !kind.is_dir() && path.extension().is_some_and(|x| x == "recipe") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
