//! `mmrun exec`: arguments and output only; the work happens in the library.

/// Arguments of `mmrun exec`.
#[derive(clap::Args)]
pub struct Args {
    /// Input files.
    pub inputs: Vec<std::path::PathBuf>,
}

pub fn run(_args: Args) -> u8 {
    eprintln!("error: `mmrun exec` is not available in this build yet");
    super::EXIT_CANNOT_RUN
}
