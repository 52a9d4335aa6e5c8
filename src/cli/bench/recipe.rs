//! `mmrun bench recipe`.

/// Arguments of `mmrun bench recipe`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench recipe` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
