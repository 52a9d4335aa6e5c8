//! `mmrun bench core`.

/// Arguments of `mmrun bench core`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench core` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
