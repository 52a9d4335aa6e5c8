//! `mmrun bench cuda`.

/// Arguments of `mmrun bench cuda`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench cuda` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
