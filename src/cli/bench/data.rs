//! `mmrun bench data`.

/// Arguments of `mmrun bench data`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench data` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
