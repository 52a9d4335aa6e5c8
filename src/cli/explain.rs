//! `mmrun explain`: a component's parameters, or an error code's long explanation.

/// Arguments of `mmrun explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A component name (`retina_head`) or an error code (`E0302`).
    #[arg(required_unless_present = "reference")]
    pub name: Option<String>,
    /// Print the whole language reference (Markdown; `docs/recipe.md` is this output).
    #[arg(long, conflicts_with = "name")]
    pub reference: bool,
}

pub fn run(args: Args) -> u8 {
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
