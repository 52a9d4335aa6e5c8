//! What `mmrun exec` and `mmrun test` do once they have a plan and a task. `exec`: prepare
//! the work dir (merged config, logs, checkpoints, results), build optimizer, hooks and runner
//! from the plan, apply the initial weights or resume, and run. `test`: a checkpoint's
//! weights evaluated and the results written.

use crate::engine::checkpoint::resolve_resume;
use crate::engine::optim::Optimizer;
use crate::engine::params::ParamSet;
use crate::engine::runner::{RunError, RunSummary, Runner};
use crate::engine::setup::{Training, TrainingSpec, build_training};
use crate::engine::task::Task;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Command-line choices that override the recipe, and the process group the run is a rank of.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub work_dir: Option<PathBuf>,
    /// `auto` or a checkpoint path; overrides `runtime.resume`.
    pub resume: Option<String>,
    /// Stop after this many iterations in total (the schedule still spans the whole run).
    pub stop_at_iter: Option<u64>,
    /// The other ranks of a data-parallel run (`runtime.launcher`); `None` trains alone.
    pub dist: Option<crate::dist::Dist>,
    /// What stdout carries: log lines, or log records as JSON lines (`--format json`).
    pub console: crate::engine::hooks::Console,
}

/// Why exec could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Problems in the recipe's training sections, with config paths.
    #[error("{}", .0.join("\n"))]
    Recipe(Vec<String>),
    #[error("{0}")]
    Io(String),
    /// The work dir (or checkpoint folder) cannot be used: its layout, its lock.
    #[error(transparent)]
    WorkDir(#[from] crate::engine::workdir::WorkDirError),
    /// The weights the recipe names (`init_cfg`, `load_from`) do not load.
    #[error(transparent)]
    Weights(#[from] crate::engine::pretrained::PretrainedError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// sha256 of the merged config (recorded in checkpoints), without the settings that say where
/// a run is rather than what it trains (`runtime.work_dir`, `runtime.resume`), so that a copied
/// or moved work dir resumes without a "recipe changed" warning.
pub fn config_hash(config: &serde_json::Value) -> String {
    let mut c = config.clone();
    if let Some(rt) = c.get_mut("runtime").and_then(|r| r.as_object_mut()) {
        rt.remove("work_dir");
        rt.remove("resume");
    }
    let d = Sha256::digest(c.to_string().as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The merged config with command-line overrides applied.
pub fn effective_config(config: &serde_json::Value, opts: &ExecOptions) -> serde_json::Value {
    let mut c = config.clone();
    if let Some(w) = &opts.work_dir {
        if let Some(rt) = c.get_mut("runtime").and_then(|r| r.as_object_mut()) {
            rt.insert("work_dir".into(), w.display().to_string().into());
        } else if let Some(obj) = c.as_object_mut() {
            obj.insert(
                "runtime".into(),
                serde_json::json!({ "work_dir": w.display().to_string() }),
            );
        }
    }
    c
}

/// `runtime.devices` is the device count the recipe's batch and learning rate were written
/// for (mmdetection's `8 GPUs × 2 images`). The ranks a run has override it: say what a
/// difference changes, as mmdetection does when the world size differs, rather than refuse
/// the recipe.
fn world_size_note(spec: &TrainingSpec, world: usize) -> Option<String> {
    let devices = spec.runtime.devices;
    if devices == world as u64 {
        return None;
    }
    let per_device = spec.samples_per_device;
    let lr = match spec.runtime.auto_scale_lr {
        Some(_) => "; runtime.auto_scale_lr scales the learning rate to it".to_string(),
        None => format!(
            " at the recipe's learning rate (mmdetection's linear scaling rule would scale \
             optimizer.lr by {world}/{devices}: `runtime.auto_scale_lr = {{ base_batch_size = N }}` applies it)"
        ),
    };
    let ranks = match world {
        1 => "1 device".to_string(),
        n => format!("{n} ranks"),
    };
    Some(format!(
        "warning: runtime.devices = {devices}: the recipe was written for {devices} {} × \
         {per_device} images per step; this run trains on {ranks}, so each step sees \
         {} images{lr}",
        if devices == 1 { "device" } else { "devices" },
        per_device * world as u64
    ))
}

/// mmdetection's `meta` of a run (what `tools/train.py` hands the runner): the environment,
/// the merged config, the seed, and the experiment's name (the work dir's, as mmdetection's
/// default work dir is named after the config).
fn run_meta(pretty_config: &str, seed: u64, work_dir: &Path) -> Vec<(String, serde_json::Value)> {
    let env_info = format!(
        "mmrun: {}\nOS: {} {}\nThreads: {}\nCPU kernels: {}\nCPU elementwise: {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        rayon::current_num_threads(),
        crate::backend::cpu::isa::active().describe(),
        crate::backend::cpu::fused::describe()
    );
    let name = work_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    vec![
        ("env_info".into(), env_info.into()),
        ("config".into(), pretty_config.into()),
        ("seed".into(), seed.into()),
        ("exp_name".into(), name.into()),
    ]
}

/// A runner ready to go, and what it was built from.
pub struct Prepared<'t> {
    pub runner: Runner<'t>,
    pub work_dir: PathBuf,
    /// Lines worth printing before the run (resume source, load_from report, leftovers of
    /// a killed run tidied).
    pub notes: Vec<String>,
    /// One run at a time writes into the work dir; held (by rank 0) until this is dropped.
    _lock: Option<crate::engine::workdir::WorkDirLock>,
}

/// Build the runner for `task` from the plan's training spec, prepare the work dir (where
/// `config`, the merged recipe, is recorded), load or resume.
pub fn prepare<'t>(
    spec: &TrainingSpec,
    config: &serde_json::Value,
    task: &'t mut dyn Task,
    params: ParamSet,
    opts: &ExecOptions,
) -> Result<Prepared<'t>, JobError> {
    let config = effective_config(config, opts);
    let ranks = crate::dist::rank_world(opts.dist.as_ref());
    let main = ranks.0 == 0;
    let Training {
        optimizer,
        hooks,
        mut run,
        runtime,
        lr_note,
        ..
    } = build_training(spec, task.iters_per_epoch(), ranks).map_err(JobError::Recipe)?;
    run.recipe_hash = config_hash(&config);
    run.stop_at_iter = opts.stop_at_iter;
    run.console = opts.console;
    let pretty = serde_json::to_string_pretty(&config).expect("JSON values serialise");
    run.meta = run_meta(
        &pretty,
        runtime.seed,
        opts.work_dir.as_ref().unwrap_or(&runtime.work_dir),
    );
    // The config holds the work dir as text; a path given on the command line is kept as the
    // operating system gave it (it need not be UTF-8).
    if let Some(w) = &opts.work_dir {
        if run.checkpoint.dir == runtime.work_dir.join("checkpoints") {
            run.checkpoint.dir = w.join("checkpoints");
        }
        run.work_dir = w.clone();
    }
    let work_dir = run.work_dir.clone();
    // Rank 0 owns the work dir; the other ranks read its checkpoints and write nothing.
    let (lock, mut notes) = match main {
        true => crate::engine::workdir::open(&work_dir, &run.checkpoint.dir)
            .map(|(l, n)| (Some(l), n))?,
        false => (None, Vec::new()),
    };
    if let Some(n) = world_size_note(spec, ranks.1) {
        notes.push(n);
    }
    notes.extend(lr_note);
    let io = |e: std::io::Error| JobError::Io(format!("work dir {}: {e}", work_dir.display()));
    if main {
        std::fs::create_dir_all(work_dir.join("results")).map_err(io)?;
        crate::util::atomic_file::write_atomic(&work_dir.join("config.json"), pretty.as_bytes())
            .map_err(io)?;
    }

    let optimizer = Optimizer::new(optimizer, &params)
        .map_err(|e| JobError::Recipe(vec![format!("optimizer: {e}")]))?;
    let ckpt_dir = run.checkpoint.dir.clone();
    let mut runner = Runner::new(task, params, optimizer, hooks, run)?;
    if let Some(d) = &opts.dist {
        runner = runner.with_data_parallel(crate::engine::ddp::DataParallel::new(d.clone()));
        // Every rank resolves `--resume auto` after rank 0 has tidied the work dir.
        d.barrier().map_err(RunError::from)?;
    }

    let resume = opts.resume.clone().or(runtime.resume.clone());
    let resumed = match resume {
        Some(spec) => match resolve_resume(&spec, &ckpt_dir).map_err(RunError::from)? {
            Some((path, data)) => {
                runner.resume(&path, data)?;
                true
            }
            None => {
                notes.push(format!(
                    "no checkpoint in {} yet: starting from the beginning",
                    ckpt_dir.display()
                ));
                false
            }
        },
        None => false,
    };
    if !resumed {
        notes.extend(super::pretrained::load_initial_weights(
            &spec.weights,
            &mut runner,
        )?);
    }
    Ok(Prepared {
        runner,
        work_dir,
        notes,
        _lock: lock,
    })
}

/// Prepare and run.
pub fn execute(
    spec: &TrainingSpec,
    config: &serde_json::Value,
    task: &mut dyn Task,
    params: ParamSet,
    opts: &ExecOptions,
) -> Result<RunSummary, JobError> {
    let mut p = prepare(spec, config, task, params, opts)?;
    // Through the runner's messages: the log hook writes them to the console and `log.txt`
    // (the weights' load report belongs in the run's record), stderr takes them without one.
    for n in std::mem::take(&mut p.notes) {
        p.runner.note(n);
    }
    Ok(p.runner.run()?)
}

/// What [`test_checkpoint`] produced.
#[derive(Debug)]
pub struct TestSummary {
    pub metrics: crate::engine::task::Metrics,
    /// Which weights were evaluated: `weights` or `EMA weights`.
    pub which: &'static str,
    /// The folder `metrics.json` (and `bbox.json`) were written to; `None` when not asked.
    pub results: Option<PathBuf>,
}

/// Why `mmrun test` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The checkpoint's weights do not fit the recipe's model.
    #[error("the checkpoint's {which} do not fit the recipe's model:\n{report}")]
    Mismatch { which: &'static str, report: String },
    #[error("evaluation failed: {0}")]
    Eval(String),
    #[error("{0}")]
    Io(String),
}

/// Evaluates a checkpoint's weights — its EMA weights when it holds them, unless `no_ema` —
/// over the task's evaluation set, and writes the metrics (and the task's detections in COCO
/// results format) to `<work_dir>/results/` when given a work dir (the ranks of a
/// data-parallel test other than 0 are not).
pub fn test_checkpoint(
    task: &mut dyn Task,
    mut params: ParamSet,
    checkpoint: &crate::engine::checkpoint::CheckpointData,
    no_ema: bool,
    work_dir: Option<&std::path::Path>,
) -> Result<TestSummary, TestError> {
    let (weights, which) = match (&checkpoint.ema, no_ema) {
        (Some(e), false) => (e, "EMA weights"),
        _ => (&checkpoint.weights, "weights"),
    };
    let report = crate::engine::checkpoint::load_weights_into(&mut params, weights);
    if !report.is_exact() {
        return Err(TestError::Mismatch {
            which,
            report: report.to_string(),
        });
    }
    let metrics = task
        .evaluate(&params, None)
        .map_err(|e| TestError::Eval(e.to_string()))?;
    let Some(work_dir) = work_dir else {
        return Ok(TestSummary {
            metrics,
            which,
            results: None,
        });
    };
    let results = work_dir.join("results");
    let mut files = vec![("metrics.json", serde_json::json!(metrics))];
    if let Some(r) = task.results_json() {
        files.push((task.results_name(), r));
    }
    for (name, v) in files {
        let path = results.join(name);
        std::fs::create_dir_all(&results)
            .and_then(|_| {
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                crate::util::atomic_file::write_atomic(&path, text.as_bytes())
            })
            .map_err(|e| TestError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(TestSummary {
        metrics,
        which,
        results: Some(results),
    })
}

/// `mmrun test --show-dir`: after [`test_checkpoint`], a picture of each evaluated image (its
/// ground truth beside the predictions scoring at least `score_thr`) written as a PNG into
/// `dir` (made if missing, as each picture's subfolder is). Returns how many were written.
pub fn show_results(task: &dyn Task, dir: &Path, score_thr: f64) -> Result<usize, TestError> {
    let mut save = |name: &str, pic: crate::viz::Picture| pic.save_png(&dir.join(name));
    task.draw_results(None, score_thr, &mut save)
        .map_err(|e| TestError::Io(format!("--show-dir {}: {e}", dir.display())))
}
