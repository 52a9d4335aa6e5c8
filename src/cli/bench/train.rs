//! `mmrun bench train`.

/// Arguments of `mmrun bench train`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun bench train` is not available in this build yet");
    crate::cli::EXIT_CANNOT_RUN
}
