//! `mmrun plot`: arguments and output only; the logs are read by `crate::viz::train_log` and
//! drawn by `crate::viz::curves`.

use crate::viz::TrainLogError;
use crate::viz::train_log::{self, TrainLog, XAxis};
use std::path::PathBuf;

/// Arguments of `mmrun plot`.
#[derive(clap::Args)]
pub struct Args {
    /// Work dirs of runs (or their `log.jsonl` files), drawn over each other.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Keys to draw, one chart each (default: `loss` and the first mAP metric).
    #[arg(long, num_args = 1..)]
    pub keys: Vec<String>,
    /// The x axis of every chart (default: val metrics by epoch in epoch-based runs, the
    /// rest by iteration).
    #[arg(long, value_enum)]
    pub x: Option<XArg>,
    /// The PNG to write.
    #[arg(long, default_value = "curves.png")]
    pub out: PathBuf,
    /// The runs' names in the legend, one per run (default: each work dir's name).
    #[arg(long, num_args = 1..)]
    pub legend: Vec<String>,
}

/// `--x`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum XArg {
    Iter,
    Epoch,
}

/// A run's default legend name: its work dir's name (the folder of a `log.jsonl` given).
fn run_name(path: &std::path::Path) -> String {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let name = dir.file_name().unwrap_or(dir.as_os_str());
    name.to_string_lossy().into_owned()
}

pub fn run(args: Args) -> u8 {
    match plot(&args) {
        Ok(()) => {
            crate::outln!("wrote {}", args.out.display());
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
    }
}

/// Why `mmrun plot` drew nothing.
#[derive(Debug, thiserror::Error)]
enum PlotError {
    /// `--legend` names a different number of runs than were given.
    #[error("--legend names {legends} runs but {runs} were given")]
    Legend { legends: usize, runs: usize },
    #[error(transparent)]
    Log(#[from] TrainLogError),
    #[error(transparent)]
    Picture(#[from] crate::viz::PictureError),
}

fn plot(args: &Args) -> Result<(), PlotError> {
    if !args.legend.is_empty() && args.legend.len() != args.runs.len() {
        return Err(PlotError::Legend {
            legends: args.legend.len(),
            runs: args.runs.len(),
        });
    }
    let mut runs = Vec::new();
    for (k, path) in args.runs.iter().enumerate() {
        let name = args
            .legend
            .get(k)
            .cloned()
            .unwrap_or_else(|| run_name(path));
        runs.push((name, TrainLog::read(path)?));
    }
    let x = args.x.map(|x| match x {
        XArg::Iter => XAxis::Iter,
        XArg::Epoch => XAxis::Epoch,
    });
    let panels = train_log::panels(&runs, &args.keys, x)?;
    Ok(crate::viz::curves::draw(&panels)?.save_png(&args.out)?)
}
