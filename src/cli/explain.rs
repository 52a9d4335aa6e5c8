//! `mmrun explain`: a component's parameters, or an error code's long explanation.

/// Arguments of `mmrun explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A component name (`retina_head`) or an error code (`E0302`).
    pub name: String,
}

pub fn run(args: Args) -> u8 {
    match explain(&args.name) {
        Some(text) => {
            crate::out!("{text}");
            super::EXIT_OK
        }
        None => {
            crate::errln!(
                "error: `{}` is neither a component nor an error code",
                args.name
            );
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
