//! The command line: argument parsing and dispatch only. Each command lives in its own file
//! and calls into the library; no logic lives here.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod data;
mod eval;
mod exec;
mod explain;
mod export;
mod fmt;
mod plan;
mod plot;
mod ranks;
mod setup;
mod test;

/// Exit status: the recipe, data or results were fine.
pub const EXIT_OK: u8 = 0;
/// Exit status: the input has problems (diagnostics were printed).
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit status: the command could not run (I/O, bad arguments).
pub const EXIT_CANNOT_RUN: u8 = 2;

/// Why the recipe file a command was given cannot be read (`None`: a regular file). Checked
/// before anything else, so a folder or a FIFO is refused at once instead of blocking.
fn unreadable_recipe(path: &std::path::Path) -> Option<String> {
    let why = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file".to_string(),
        Err(e) => e.to_string(),
        Ok(m) if m.is_dir() => "it is a folder".to_string(),
        Ok(m) if !m.is_file() => "it is not a regular file (a FIFO, socket or device)".to_string(),
        Ok(_) => return None,
    };
    Some(format!("cannot read `{}`: {why}", path.display()))
}

#[derive(Parser)]
#[command(
    name = "mmrun",
    version,
    about = "Train object detectors from declarative recipes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check recipes without running anything.
    Check(check::Args),
    /// Print recipes in canonical form.
    Fmt(fmt::Args),
    /// Explain a component's parameters or an error code.
    Explain(explain::Args),
    /// Print the execution plan of a recipe: stages, ops, shapes, parameters, memory.
    Plan(plan::Args),
    /// Train (and evaluate) as a recipe says.
    Exec(exec::Args),
    /// Draw losses, metrics and the learning rate from runs' logs (`log.jsonl`) as curves.
    Plot(plot::Args),
    /// Run inference over a recipe's test set with a checkpoint.
    Test(test::Args),
    /// Evaluate detection results against ground truth.
    Eval(eval::Args),
    /// Dataset tools (generate the shapes dataset, inspect datasets).
    Data(data::Args),
    /// Write a checkpoint's weights (safetensors) or its inference network (ONNX).
    Export(export::Args),
    /// Benchmarks that print ratios against their peers.
    Bench(crate::bench::Args),
    /// List the devices `--device` can name (the CPU, CUDA devices, wgpu adapters).
    Devices(DevicesArgs),
}

/// Arguments of `mmrun devices`.
#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Output format: a line per device, or one JSON object (`devices`: `name`, `usable`,
    /// `about`).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Under a file-size limit (`ulimit -f`) SIGXFSZ would kill the process in the middle of a
    // write; ignored, the write fails with EFBIG and is reported like a full disk, naming the
    // file (a checkpoint save leaves the previous one; a log write stops the run).
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours in a handler.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CANNOT_RUN
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    use crate::util::console::{OnClosed, set_on_closed};
    // Commands whose work is files keep working when the console goes away; commands that
    // only print end quietly, as Unix tools do on a closed pipe.
    set_on_closed(match &cli.command {
        Command::Exec(_)
        | Command::Test(_)
        | Command::Data(_)
        | Command::Bench(_)
        | Command::Export(_)
        | Command::Plot(_) => OnClosed::Continue,
        Command::Fmt(a) if a.write => OnClosed::Continue,
        Command::Plan(a) if a.schedule_plot.is_some() => OnClosed::Continue,
        Command::Eval(a) if a.writes_files() => OnClosed::Continue,
        _ => OnClosed::Exit,
    });
    // A bad `MMRUN_CPU_ISA`, `MMRUN_CPU_FUSE`, `MMRUN_WGPU_MAX_BINDING` or `MMRUN_CUDA_CONV`
    // stops the commands that run kernels before any work is done.
    if matches!(
        cli.command,
        Command::Exec(_)
            | Command::Test(_)
            | Command::Bench(_)
            | Command::Export(_)
            | Command::Data(_)
            | Command::Devices(_)
    ) {
        let isa = crate::backend::cpu::isa::from_env().map(|_| ());
        let fuse = crate::backend::cpu::fused::from_env().map(|_| ());
        #[cfg(feature = "wgpu")]
        let binding = crate::backend::wgpu::max_binding_from_env().map(|_| ());
        #[cfg(not(feature = "wgpu"))]
        let binding: Result<(), String> = Ok(());
        #[cfg(feature = "cuda")]
        let conv = crate::backend::cuda::ConvChoice::from_env().map(|_| ());
        #[cfg(not(feature = "cuda"))]
        let conv: Result<(), String> = Ok(());
        if let Err(e) = isa
            .map_err(|e| e.to_string())
            .and(fuse.map_err(|e| e.to_string()))
            .and(binding.map_err(|e| e.to_string()))
            .and(conv)
        {
            crate::errln!("error: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    }
    let code = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Exec(a) => exec::run(a),
        Command::Test(a) => test::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Data(a) => data::run(a),
        Command::Export(a) => export::run(a),
        Command::Devices(a) => {
            let all = crate::backend::device::list();
            match a.format {
                Format::Json => crate::outln!("{}", serde_json::json!({ "devices": all })),
                Format::Text => all.iter().for_each(|d| crate::outln!("{d}")),
            }
            EXIT_OK
        }
        Command::Bench(a) => match crate::bench::run(a) {
            crate::bench::Outcome::Done => EXIT_OK,
            crate::bench::Outcome::Problems => EXIT_PROBLEMS,
            crate::bench::Outcome::CannotRun => EXIT_CANNOT_RUN,
        },
    };
    ExitCode::from(code)
}

/// `HxW`, each side in `1..=MAX_SIDE` (the data loader's limit; clap names the argument and the
/// value on error).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    use crate::data::limits::MAX_SIDE;
    let side = |v: &str| v.trim().parse::<usize>().ok();
    let Some((Some(h), Some(w))) = s.split_once(['x', 'X']).map(|(h, w)| (side(h), side(w))) else {
        return Err("expected HxW with whole numbers, e.g. 800x1344".into());
    };
    if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
        return Err(format!("each side must be 1 to {MAX_SIDE} pixels"));
    }
    Ok((h, w))
}

/// A score threshold: a number in [0, 1] (`test --score-thr`, `eval confusion --score-thr`).
fn score_thr(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a score threshold must be a number in [0, 1]".into()),
    }
}

pub use crate::util::console::Format;
