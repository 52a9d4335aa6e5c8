//! `mmrun fmt`: print recipes in canonical form, or check that they are.

/// Arguments of `mmrun fmt`.
#[derive(clap::Args)]
pub struct Args {
    /// Recipe files.
    #[arg(required = true)]
    pub inputs: Vec<std::path::PathBuf>,
    /// Report files that are not formatted instead of printing them (exit 1 if any).
    #[arg(long)]
    pub check: bool,
    /// Rewrite the files in place.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
}

pub fn run(args: Args) -> u8 {
    let mut code = super::EXIT_OK;
    for path in &args.inputs {
        let raw = match crate::util::read::regular_text(path, crate::recipe::MAX_RECIPE_BYTES) {
            Ok(s) => s,
            Err(e) => {
                crate::errln!("error: cannot read `{}`: {e}", path.display());
                return super::EXIT_CANNOT_RUN;
            }
        };
        // Compared with the file as it is: a byte-order mark or `\r` endings are not canonical.
        let src = crate::syntax::normalize(raw.clone());
        let out = match crate::syntax::fmt::format(&src) {
            Ok(o) => o,
            Err(errs) => {
                for e in errs {
                    crate::errln!(
                        "error[{}]: {}: {} (byte {})",
                        e.code,
                        path.display(),
                        e.message,
                        e.span.start
                    );
                }
                code = super::EXIT_PROBLEMS;
                continue;
            }
        };
        if args.check {
            if out != raw {
                crate::outln!("{}: not formatted", path.display());
                code = super::EXIT_PROBLEMS;
            }
        } else if args.write {
            if out != raw
                && let Err(e) = std::fs::write(path, &out)
            {
                crate::errln!("error: cannot write `{}`: {e}", path.display());
                return super::EXIT_CANNOT_RUN;
            }
        } else {
            crate::out!("{out}");
        }
    }
    code
}
