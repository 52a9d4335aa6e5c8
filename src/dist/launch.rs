//! How a process becomes a rank: `runtime.launcher`, the environment a launcher leaves, and
//! `mmrun exec --nproc N`, which starts N local ranks through `mpirun` (as `torchrun
//! --nproc-per-node N` starts its workers).

use super::{Dist, DistError};
use std::ffi::OsString;

/// `runtime.launcher`: who started the ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Launcher {
    /// One process on one device.
    #[default]
    None,
    /// `mpirun`/`mpiexec` (or `srun --mpi=pmix`): ranks from MPI.
    Mpi,
    /// torchrun's environment; its collectives are NCCL's (not in this build).
    Pytorch,
    /// mmcv's `_init_dist_slurm` (NCCL; not in this build).
    Slurm,
}

/// The world size an MPI launcher announced in the environment (Open MPI, MPICH/Hydra,
/// PMIx), when this process is one of several ranks.
pub fn mpi_world_from_env() -> Option<usize> {
    env_number(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]).filter(|&n| n > 1)
}

/// This process's rank as an MPI launcher announced it, before MPI is initialised (so that
/// ranks other than 0 can keep quiet from the start).
pub fn mpi_rank_from_env() -> Option<usize> {
    env_number(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"])
}

/// The first of these environment variables (Open MPI's, Hydra's, PMIx's) that holds a number.
fn env_number(keys: &[&str]) -> Option<usize> {
    keys.iter()
        .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
}

/// Join the process group `launcher` says this process belongs to: `None` for a
/// single-process run.
pub fn join(launcher: Launcher) -> Result<Option<Dist>, DistError> {
    match launcher {
        Launcher::None => match mpi_world_from_env() {
            Some(n) => Err(DistError::Init(format!(
                "this process is one of {n} ranks an MPI launcher started, but runtime.launcher = none \
                 would train each of them alone into the same work dir: add `--launcher mpi` \
                 (or start one process, or `mmrun exec --nproc {n}`)"
            ))),
            None => Ok(None),
        },
        Launcher::Mpi => mpi_join(),
        Launcher::Pytorch | Launcher::Slurm => Err(DistError::Init(format!(
            "runtime.launcher = {launcher:?}: its ranks talk through NCCL, which this build does not have; \
             start CPU ranks with `mpirun` (or `srun --mpi=pmix`) and `--launcher mpi`"
        ))),
    }
}

#[cfg(feature = "mpi")]
fn mpi_join() -> Result<Option<Dist>, DistError> {
    super::mpi::init().map(Some)
}

#[cfg(not(feature = "mpi"))]
fn mpi_join() -> Result<Option<Dist>, DistError> {
    Err(DistError::Init(
        "runtime.launcher = mpi needs mmrun built with the `mpi` feature (`cargo build --release --features mpi`, with Open MPI installed)".into(),
    ))
}

/// The command that runs `args` (this program's arguments without `--nproc`) as `nproc`
/// local MPI ranks: `mpirun -np N <this program> args --launcher mpi`. Each rank gets an equal
/// share of the cores for its compute threads unless `RAYON_NUM_THREADS` says otherwise.
pub fn local_ranks_command(
    nproc: usize,
    args: Vec<OsString>,
) -> Result<std::process::Command, DistError> {
    if !cfg!(feature = "mpi") {
        return Err(DistError::Init(
            "--nproc starts its ranks with MPI: build mmrun with the `mpi` feature (`cargo build --release --features mpi`, with Open MPI installed)".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| {
        DistError::Init(format!("cannot find this program to start its ranks: {e}"))
    })?;
    let mut cmd = std::process::Command::new("mpirun");
    // Local ranks may outnumber the cores (as torchrun's may); mpirun refuses that by default.
    cmd.args(["-np", &nproc.to_string(), "--oversubscribe"]);
    cmd.arg(exe).args(args).args(["--launcher", "mpi"]);
    // Local ranks run as whoever started them, as torchrun's do: Open MPI's refusal to start
    // ranks as root (the usual user in containers) is lifted for them.
    for k in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, "1");
        }
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cmd.env("RAYON_NUM_THREADS", (cores / nproc).max(1).to_string());
    }
    Ok(cmd)
}
