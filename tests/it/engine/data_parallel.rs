//! Data-parallel training over MPI ranks, end to end through the binary: `mmrun exec --nproc
//! 2` with `b` images per rank trains the same weights as one process with `2b` (each step's
//! global batch dealt to the ranks), `mpirun -np 2 … --launcher mpi` is the same run, a
//! killed rank ends the run promptly with an error naming it, resuming with two ranks is
//! exact, and `mmrun test --nproc 2` writes one process's results. The model is the quickstart's FCOS with frozen batch-norm statistics (`norm_eval`):
//! its norms are per-sample and its loss normalisers averaged over ranks, so one rank with
//! the whole batch is the reference. Faster R-CNN trains and tests on two ranks too.

use super::detector::{dataset, deviation, overrides};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpirun` on the PATH, or why the tests skip.
fn have_mpirun() -> bool {
    match Command::new("mpirun").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            crate::support::skip_without_reference(
                "data_parallel",
                "mpirun is not installed (apt install openmpi-bin libopenmpi-dev)",
            );
            false
        }
    }
}

/// The binary, allowed to start MPI ranks as root (CI's containers run as root).
fn mmrun_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmrun"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c
}

/// `mpirun -np 2 mmrun <args>`, run as `mmrun_cmd` runs the binary.
fn mpirun_two(args: Vec<String>) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", "2", "--oversubscribe", env!("CARGO_BIN_EXE_mmrun")])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c
}

fn exec_args(work: &Path, sets: &[String], extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["exec", "pipelines/quickstart.recipe", "--work-dir"]
        .map(String::from)
        .into();
    a.push(work.display().to_string());
    for s in sets {
        a.push("--set".into());
        a.push(s.clone());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn run_ok(mut c: Command) -> String {
    let o = c.output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{c:?} failed:\n{t}");
    t
}

/// The run's settings with `per_rank` images per rank.
fn sets(root: &Path, epochs: u32, per_rank: usize) -> Vec<String> {
    let mut s = overrides(root, epochs);
    s.push("model.backbone.norm_eval=true".into());
    s.push(format!("data.samples_per_gpu={per_rank}"));
    s
}

fn last_checkpoint(work: &Path) -> PathBuf {
    let dir = work.join("checkpoints");
    let name = std::fs::read_to_string(dir.join("last_checkpoint")).unwrap();
    dir.join(name.trim())
}

fn val_maps(work: &Path) -> Vec<f64> {
    super::detector::log_records(work)
        .iter()
        .filter(|r| r["mode"] == "val")
        .map(|r| r["bbox_mAP"].as_f64().unwrap())
        .collect()
}

#[test]
fn two_ranks_train_the_weights_of_one_rank_with_twice_the_batch() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let (one, two, mpirun) = (
        dir.path().join("one"),
        dir.path().join("two"),
        dir.path().join("mpirun"),
    );
    // 16 training images: 4 steps of 4 images per epoch, 3 epochs, evaluated after each.
    let stop = ["--max-iters", "12"];
    let mut c = mmrun_cmd();
    c.args(exec_args(&one, &sets(&root, 10, 4), &stop));
    run_ok(c);
    let mut c = mmrun_cmd();
    c.args(exec_args(
        &two,
        &sets(&root, 10, 2),
        &[&stop[..], &["--nproc", "2"]].concat(),
    ));
    let out = run_ok(c);
    assert!(
        out.contains("the weights are identical on all 2 ranks"),
        "{out}"
    );
    let c = mpirun_two(exec_args(
        &mpirun,
        &sets(&root, 10, 2),
        &[&stop[..], &["--launcher", "mpi"]].concat(),
    ));
    run_ok(c);

    let (a, b) = (last_checkpoint(&one), last_checkpoint(&two));
    assert!(
        a.ends_with("epoch_3") && b.ends_with("epoch_3"),
        "{a:?} {b:?}"
    );
    let (worst, differ) = deviation(&a, &b);
    eprintln!(
        "1 rank × 4 images vs 2 ranks × 2 images, 12 steps: worst relative deviation {worst:.3e} ({differ} tensors not bit-identical)"
    );
    // f32 sums in another order (the gradients of two half batches added after the backward
    // pass): observed ~1e-7 after 12 SGD steps.
    assert!(worst < 1e-5, "worst relative deviation {worst:e}");
    assert_eq!(
        deviation(&b, &last_checkpoint(&mpirun)),
        (0.0, 0),
        "--nproc 2 and mpirun -np 2 differ"
    );
    // Evaluation sharded over the ranks and gathered scores every val image once.
    let (ma, mb) = (val_maps(&one), val_maps(&two));
    assert_eq!(ma.len(), 3);
    for (x, y) in ma.iter().zip(&mb) {
        assert!((x - y).abs() < 1e-3, "bbox_mAP {ma:?} vs {mb:?}");
    }
    // `mmrun test` on two ranks writes what one process writes.
    let tested = |name: &str, ranks: &[&str]| {
        let work = dir.path().join(name);
        let mut args = vec!["test".to_string(), "pipelines/quickstart.recipe".into()];
        args.extend(["--checkpoint".into(), a.display().to_string()]);
        args.extend(["--work-dir".into(), work.display().to_string()]);
        for set in sets(&root, 10, 4) {
            args.extend(["--set".into(), set]);
        }
        args.extend(ranks.iter().map(|r| r.to_string()));
        let mut c = mmrun_cmd();
        c.args(args);
        run_ok(c);
        ["metrics.json", "bbox.json"].map(|f| std::fs::read(work.join("results").join(f)).unwrap())
    };
    assert_eq!(
        tested("test_one", &[]),
        tested("test_two", &["--nproc", "2"])
    );
}

/// The pids of this work dir's rank `rank` (found by the environment `mpirun` gave it).
fn rank_pids(work: &Path, rank: usize) -> Vec<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let key = work.display().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has = |b: &[u8], s: &str| b.split(|&c| c == 0).any(|x| x == s.as_bytes());
        if has(&cmd, &key) && has(&env, &want) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_rank_ends_the_run_and_two_ranks_resume_exactly() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let (killed, straight) = (dir.path().join("killed"), dir.path().join("straight"));
    let sets = sets(&root, 1000, 2);
    let mut c = mmrun_cmd();
    c.args(exec_args(&killed, &sets, &["--nproc", "2"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // Kill rank 1 once two epochs are checkpointed.
    let t0 = Instant::now();
    while !killed.join("checkpoints/epoch_2").is_dir() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids = rank_pids(&killed, 1);
    assert_eq!(pids.len(), 1, "rank 1's process: {pids:?}");
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let waited = killed_at.elapsed();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        waited < Duration::from_secs(60),
        "ended {waited:?} after the kill"
    );
    assert!(t.contains("rank 1"), "the error names the rank:\n{t}");
    eprintln!("the run ended {waited:?} after rank 1 was killed");

    // Resume with two ranks to 8 steps past the last checkpoint; one straight run to there.
    let from = mmrun::engine::checkpoint::position(&last_checkpoint(&killed)).unwrap();
    let stop = (from + 8).to_string();
    let mut c = mmrun_cmd();
    c.args(exec_args(
        &killed,
        &sets,
        &["--nproc", "2", "--resume", "auto", "--max-iters", &stop],
    ));
    run_ok(c);
    let mut c = mmrun_cmd();
    c.args(exec_args(
        &straight,
        &sets,
        &["--nproc", "2", "--max-iters", &stop],
    ));
    run_ok(c);
    let (a, b) = (last_checkpoint(&killed), last_checkpoint(&straight));
    assert_eq!(a.file_name(), b.file_name());
    assert_eq!(deviation(&a, &b), (0.0, 0), "resumed at iteration {from}");
}

#[test]
fn ranks_started_without_a_launcher_are_refused_before_training() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("work");
    let o = mpirun_two(exec_args(&work, &sets(&root, 10, 2), &[]))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("one of 2 ranks") && t.contains("--launcher mpi"),
        "{t}"
    );
    assert!(!work.join("checkpoints").exists(), "nothing was trained");
}

#[test]
fn sync_batch_norm_makes_two_ranks_train_as_one_with_batch_statistics() {
    if !have_mpirun() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    // The backbone's batch norm in training mode: per-rank statistics differ from the whole
    // batch's unless synchronised.
    let with_norm = |per_rank: usize, norm: &str| {
        let mut s = overrides(&root, 10);
        s.push(format!("model.backbone.norm_cfg={norm} {{}}"));
        s.push(format!("data.samples_per_gpu={per_rank}"));
        s
    };
    let stop = ["--max-iters", "8"];
    let run = |name: &str, sets: Vec<String>, ranks: &[&str]| {
        let work = dir.path().join(name);
        let mut c = mmrun_cmd();
        c.args(exec_args(&work, &sets, &[&stop[..], ranks].concat()));
        run_ok(c);
        last_checkpoint(&work)
    };
    let one = run("one", with_norm(4, "sync_batch_norm"), &[]);
    let plain_one = run("plain_one", with_norm(4, "batch_norm"), &[]);
    assert_eq!(
        deviation(&one, &plain_one),
        (0.0, 0),
        "one process: sync batch norm is batch norm"
    );
    let two = run("two", with_norm(2, "sync_batch_norm"), &["--nproc", "2"]);
    let plain_two = run("plain_two", with_norm(2, "batch_norm"), &["--nproc", "2"]);
    let (synced, _) = deviation(&one, &two);
    let (unsynced, _) = deviation(&one, &plain_two);
    eprintln!(
        "1 × 4 images vs 2 × 2, 8 steps: sync batch norm {synced:.3e}, per-rank batch norm {unsynced:.3e}"
    );
    assert!(synced < 1e-5, "sync batch norm deviates by {synced:e}");
    assert!(
        unsynced > 100.0 * synced.max(1e-7),
        "per-rank statistics should differ: {unsynced:e}"
    );
}

/// Faster R-CNN on two ranks: `--nproc 2` and `mpirun -np 2` train the same weights (each rank
/// samples its images' RoIs from their own target streams, so the ranks need nothing but the
/// gradient mean), the log carries the second stage's terms and `acc`, and `mmrun test
/// --nproc 2` writes what one process writes (the two-stage evaluation sharded and gathered).
/// Not compared with one rank of twice the batch: mmdetection's R-CNN losses are averaged per
/// GPU, not over the global batch.
#[test]
fn faster_rcnn_trains_and_tests_on_two_ranks() {
    if !have_mpirun() {
        return;
    }
    const RECIPE: &str = "pipelines/quickstart_two_stage.recipe";
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let mut sets = super::detector::small_variant_sets(&root);
    sets.push("data.samples_per_gpu=2".into());
    let args = |work: &Path, extra: &[&str]| {
        let mut a = exec_args(work, &sets, extra);
        a[1] = RECIPE.into();
        a
    };
    let (nproc, mpirun) = (dir.path().join("nproc"), dir.path().join("mpirun"));
    let mut c = mmrun_cmd();
    c.args(args(&nproc, &["--nproc", "2"]));
    let out = run_ok(c);
    assert!(
        out.contains("the weights are identical on all 2 ranks"),
        "{out}"
    );
    run_ok(mpirun_two(args(&mpirun, &["--launcher", "mpi"])));
    let ckpt = last_checkpoint(&nproc);
    assert_eq!(
        deviation(&ckpt, &last_checkpoint(&mpirun)),
        (0.0, 0),
        "--nproc 2 and mpirun -np 2 differ"
    );
    let recs = super::detector::log_records(&nproc);
    let train: Vec<_> = recs.iter().filter(|r| r["mode"] == "train").collect();
    assert!(!train.is_empty());
    for r in &train {
        for k in [
            "loss_rpn_cls",
            "loss_rpn_bbox",
            "loss_cls",
            "loss_bbox",
            "loss",
        ] {
            assert!(r[k].as_f64().is_some_and(f64::is_finite), "{k}: {r}");
        }
        assert!(
            r["acc"]
                .as_f64()
                .is_some_and(|a| (0.0..=100.0).contains(&a)),
            "{r}"
        );
    }
    assert_eq!(val_maps(&nproc).len(), 2, "one evaluation per epoch");
    let tested = |name: &str, ranks: &[&str]| {
        let work = dir.path().join(name);
        let mut a = vec!["test".to_string(), RECIPE.into()];
        a.extend(["--checkpoint".into(), ckpt.display().to_string()]);
        a.extend(["--work-dir".into(), work.display().to_string()]);
        for set in &sets {
            a.extend(["--set".into(), set.clone()]);
        }
        a.extend(ranks.iter().map(|r| r.to_string()));
        let mut c = mmrun_cmd();
        c.args(a);
        run_ok(c);
        ["metrics.json", "bbox.json"].map(|f| std::fs::read(work.join("results").join(f)).unwrap())
    };
    assert_eq!(
        tested("test_one", &[]),
        tested("test_two", &["--nproc", "2"])
    );
}
