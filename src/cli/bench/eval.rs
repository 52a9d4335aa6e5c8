//! `mmrun bench eval`.

/// Arguments of `mmrun bench eval`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench eval` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
