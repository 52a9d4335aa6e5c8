//! `--nproc N` and `--launcher` for the commands that run as data-parallel ranks (`exec`,
//! `test`): starting N local ranks through `mpirun`, and joining the process group as one.

use crate::dist::Dist;
use crate::plan::Plan;
use std::path::Path;

/// The rank arguments of `exec` and `test`.
#[derive(clap::Args)]
pub struct RankArgs {
    /// Run on N local ranks (data parallel, `data.samples_per_gpu` images each): starts them
    /// through `mpirun` with `--launcher mpi` (needs the `mpi` feature).
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
    /// How this process was started: `none`, or `mpi` under `mpirun`/`srun --mpi=pmix`
    /// (sets `runtime.launcher`).
    #[arg(long, value_name = "LAUNCHER")]
    pub launcher: Option<String>,
}

/// Before the recipe is read. `Err(code)`: `--nproc N` ran N ranks of this command (and
/// waited for them), or could not. `Ok(other_rank)`: go on as this process, `--launcher`
/// applied to `set`; a rank other than 0 (as its launcher announced) has a quiet stdout and
/// reports only its own failures, rank 0 speaking for the run.
pub fn start(ranks: &RankArgs, recipe: &Path, set: &mut Vec<String>) -> Result<bool, u8> {
    match ranks.nproc {
        Some(0) => {
            crate::errln!("error: --nproc must be at least 1");
            return Err(super::EXIT_CANNOT_RUN);
        }
        Some(n) if n > 1 => return Err(run_local_ranks(n, recipe, set)),
        _ => {}
    }
    if let Some(l) = &ranks.launcher {
        set.push(format!("runtime.launcher={l}"));
    }
    let other_rank = crate::dist::launch::mpi_rank_from_env().is_some_and(|r| r > 0);
    if other_rank {
        crate::util::console::quiet_stdout();
    }
    Ok(other_rank)
}

/// After the recipe is read: the process group `runtime.launcher` names (`None` alone).
pub fn join(plan: &Plan) -> Result<Option<Dist>, u8> {
    crate::dist::launch::join(plan.training.runtime.launcher).map_err(|e| {
        crate::errln!("error: {e}");
        super::EXIT_CANNOT_RUN
    })
}

/// This program's arguments without `--nproc N` (what each local rank is started with).
fn args_without_nproc() -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--nproc" {
            args.next();
        } else if !a.to_string_lossy().starts_with("--nproc=") {
            out.push(a);
        }
    }
    out
}

/// `--nproc N`: run N local ranks of this command and wait for them; a rank that fails ends
/// the others (`mpirun` stops the job and names the rank). The recipe is checked here first,
/// so its problems are reported once and no rank starts for a recipe with errors; the shapes
/// dataset is generated here too, once.
fn run_local_ranks(nproc: usize, recipe: &Path, set: &[String]) -> u8 {
    let mut set = set.to_vec();
    set.push("runtime.launcher=mpi".into());
    match super::setup::load_recipe(recipe, &set, true) {
        Ok((_, plan)) => super::setup::ensure_shapes_data(&plan),
        Err(code) => return code,
    }
    let mut cmd = match crate::dist::launch::local_ranks_command(nproc, args_without_nproc()) {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("error: {e}");
            return super::EXIT_CANNOT_RUN;
        }
    };
    match cmd.status() {
        Ok(s) if s.success() => super::EXIT_OK,
        Ok(s) => match s.code() {
            Some(c) => u8::try_from(c).unwrap_or(super::EXIT_PROBLEMS),
            None => super::EXIT_PROBLEMS,
        },
        Err(e) => {
            crate::errln!(
                "error: cannot start `mpirun` for --nproc {nproc}: {e} (install Open MPI: `apt install openmpi-bin`)"
            );
            super::EXIT_CANNOT_RUN
        }
    }
}
