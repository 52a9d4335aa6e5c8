//! The benchmarks behind `mmrun bench AREA`: each prints a ratio against a peer measured in
//! the same run (PyTorch, pycocotools, …) or against a hardware limit, with the machine it ran
//! on. Each area owns its own file; the CLI parses the arguments declared here and turns the
//! [`Outcome`] into its exit code.

mod core;
mod cuda;
mod data;
mod eval;
pub mod machine;
mod recipe;
mod train;

/// Arguments of `mmrun bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    area: Area,
}

#[derive(clap::Subcommand)]
enum Area {
    /// Recipe parsing and checking time.
    Recipe(recipe::Args),
    /// Conv2d forward/backward GFLOP/s against PyTorch.
    Core(core::Args),
    /// Input pipeline images/s against PyTorch's DataLoader.
    Data(data::Args),
    /// COCO evaluation time against pycocotools and faster-coco-eval.
    Eval(eval::Args),
    /// Training iterations per second against torchvision.
    Train(train::Args),
    /// CUDA kernels bandwidth and training step against PyTorch.
    Cuda(cuda::Args),
}

/// How a benchmark ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Measured and printed.
    Done,
    /// Measured, but a result was wrong (e.g. mmrun's metrics differ from the peer's).
    Problems,
    /// Could not measure (no peer, bad arguments, a failed run); the reason was printed.
    CannotRun,
}

/// Runs the benchmark `args` names.
pub fn run(args: Args) -> Outcome {
    match args.area {
        Area::Recipe(a) => recipe::run(a),
        Area::Core(a) => core::run(a),
        Area::Data(a) => data::run(a),
        Area::Eval(a) => eval::run(a),
        Area::Train(a) => train::run(a),
        Area::Cuda(a) => cuda::run(a),
    }
}
