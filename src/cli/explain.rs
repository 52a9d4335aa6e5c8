//! `mmrun explain`: a component's parameters, an error code's long explanation, the components
//! of a category (`--list`), or the whole language reference (`--reference`).

/// Arguments of `mmrun explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A component name (`retina_head`) or an error code (`E0302`).
    #[arg(required_unless_present_any = ["reference", "list"])]
    pub name: Option<String>,
    /// Print the whole language reference (Markdown; `docs/recipe.md` is this output).
    #[arg(long, conflicts_with_all = ["name", "list"])]
    pub reference: bool,
    /// List the components, all or of one category (`--list hook`, `--list transforms`).
    #[arg(long, value_name = "CATEGORY", num_args = 0..=1, conflicts_with = "name")]
    pub list: Option<Option<String>>,
}

pub fn run(args: Args) -> u8 {
    if let Some(category) = args.list {
        return match crate::registry::list(category.as_deref()) {
            Ok(text) => {
                crate::out!("{text}");
                super::EXIT_OK
            }
            Err(e) => {
                crate::errln!("error: {e}");
                super::EXIT_PROBLEMS
            }
        };
    }
    let Some(name) = args.name else {
        crate::out!("{}", crate::recipe::reference::markdown());
        return super::EXIT_OK;
    };
    match explain(&name) {
        Some(text) => {
            crate::out!("{text}");
            super::EXIT_OK
        }
        None => {
            crate::errln!("error: `{}` is neither a component nor an error code", name);
            super::EXIT_CANNOT_RUN
        }
    }
}

/// The text for a name or code.
pub fn explain(name: &str) -> Option<String> {
    if let Some(c) = crate::recipe::codes::lookup(name) {
        return Some(format!("{}: {}\n\n{}\n", c.code, c.title, c.explanation));
    }
    crate::registry::explain(name)
}
