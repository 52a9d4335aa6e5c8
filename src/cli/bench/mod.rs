//! `mmrun bench AREA`: benchmarks that print a ratio against a peer measured in the same run
//! (PyTorch, pycocotools, …) or against a hardware limit. Each area owns its own file.

mod core;
mod cuda;
mod data;
mod eval;
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

pub fn run(args: Args) -> u8 {
    match args.area {
        Area::Recipe(a) => recipe::run(a),
        Area::Core(a) => core::run(a),
        Area::Data(a) => data::run(a),
        Area::Eval(a) => eval::run(a),
        Area::Train(a) => train::run(a),
        Area::Cuda(a) => cuda::run(a),
    }
}
