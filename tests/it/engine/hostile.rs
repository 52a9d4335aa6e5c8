//! A hostile user against `mmrun exec`, through the binary, on a shortened quickstart: a
//! closed stdout, a work dir another process holds, crafted and stale checkpoints, the
//! leftovers of a killed save, a log that cannot be written, a moved work dir, a changed batch
//! size, a work dir whose name is not UTF-8. Every case ends in a clear message or a run that
//! finishes and resumes, never a panic or a lost checkpoint.

use super::detector::{dataset, exec, log_records, overrides, overrides_stepped};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The shortened quickstart (16 training images, 4 per batch: 4 iterations per epoch, 2
/// epochs) with a checkpoint every 2 iterations and every one kept.
fn sets(root: &Path) -> Vec<String> {
    let mut s = overrides_stepped(root, 2, 1);
    s.push("hooks.checkpoint.every=2 iters".into());
    s
}

fn with(mut s: Vec<String>, extra: &[&str]) -> Vec<String> {
    s.extend(extra.iter().map(|e| e.to_string()));
    s
}

fn train_records(work: &Path) -> usize {
    log_records(work)
        .iter()
        .filter(|r| r["mode"] == "train")
        .count()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rewrite a checkpoint's `state.json` through `edit` and recompute its MANIFEST, as an
/// attacker who knows the format would.
fn craft_state(ckpt: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("state.json")).unwrap()).unwrap();
    edit(&mut state);
    std::fs::write(ckpt.join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let manifest: String = std::fs::read_to_string(ckpt.join("MANIFEST"))
        .unwrap()
        .lines()
        .map(|l| {
            let file = l.split_once("  ").unwrap().1;
            let bytes = std::fs::read(ckpt.join(file)).unwrap();
            format!("{}  {file}\n", sha256_hex(&bytes))
        })
        .collect();
    std::fs::write(ckpt.join("MANIFEST"), manifest).unwrap();
}

/// `mmrun exec` of the quickstart with `sets`, running in the background, its output piped.
fn spawn_exec(work: &Path, sets: &[String]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmrun"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["exec", "pipelines/quickstart.recipe", "--work-dir"])
        .arg(work);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_stdout_leaves_a_finished_resumable_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    // `mmrun exec R | head -1`: read one line, then close the pipe.
    let mut child = spawn_exec(&work, &sets(&root));
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "first line {first:?}\n{err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(train_records(&work), 8, "the log is written whole");
    assert!(work.join("checkpoints/iter_8").is_dir());
    let (code, text) = exec(&work, &sets(&root), &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("resumed from"), "{text}");
}

#[test]
fn a_work_dir_in_use_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    std::fs::create_dir_all(&work).unwrap();
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(work.join(".mmrun.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    writeln!(lock, "4242").unwrap();
    let (code, text) = exec(&work, &sets(&root), &["--max-iters", "1"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("in use by another mmrun process (pid 4242)"),
        "{text}"
    );
    drop(lock);
    let (code, text) = exec(&work, &sets(&root), &["--max-iters", "1"]);
    assert_eq!(code, 0, "{text}");
}

/// A change made to a checkpoint's `state.json`.
type StateEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn crafted_and_damaged_checkpoints_are_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    let (code, text) = exec(&work, &sets(&root), &["--max-iters", "2"]);
    assert_eq!(code, 0, "{text}");
    let ckpt = work.join("checkpoints/iter_2");
    let pristine = dir.path().join("pristine");
    copy_dir(&ckpt, &pristine);

    let cases: Vec<(&str, StateEdit)> = vec![
        (
            "not consistent",
            Box::new(|s| {
                // epoch × iterations per epoch overflows 64 bits.
                s["epoch"] = (1u64 << 61).into();
            }),
        ),
        (
            "not consistent",
            Box::new(|s| {
                // 4 into an epoch of 4 iterations.
                s["epoch"] = 1.into();
                s["inner_iter"] = 4.into();
                s["iter"] = 8.into();
                s["iters_per_epoch"] = 0.into();
            }),
        ),
        ("iterations long", Box::new(|s| s["iter"] = u64::MAX.into())),
        (
            "workflow position",
            Box::new(|s| s["workflow"] = serde_json::json!([7, 0])),
        ),
        (
            "best score",
            Box::new(|s| s["best"] = serde_json::json!(["bbox_mAP", 0.5, 900])),
        ),
    ];
    for (expect, edit) in cases {
        std::fs::remove_dir_all(&ckpt).unwrap();
        copy_dir(&pristine, &ckpt);
        craft_state(&ckpt, edit);
        let (code, text) = exec(&work, &sets(&root), &["--resume", "auto"]);
        assert_eq!(code, 2, "{expect}: {text}");
        assert!(
            text.contains(expect) && text.contains("iter_2") && !text.contains("panicked"),
            "{expect}: {text}"
        );
    }
    // A file the MANIFEST lists, deleted: the message names it.
    std::fs::remove_dir_all(&ckpt).unwrap();
    copy_dir(&pristine, &ckpt);
    std::fs::remove_file(ckpt.join("model.safetensors")).unwrap();
    let (code, text) = exec(&work, &sets(&root), &["--resume", "auto"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("iter_2/model.safetensors"), "{text}");
}

#[test]
fn resume_and_pruning_follow_the_training_position_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    let ckpts = work.join("checkpoints");
    // An interrupt-style checkpoint at iteration 3, then epoch checkpoints (epoch_1 is
    // iteration 4, epoch_2 iteration 8) keeping one: `iter_3` is the oldest and goes first,
    // although 3 > 2.
    let (code, text) = exec(
        &work,
        &with(sets(&root), &["hooks.checkpoint.every=3 iters"]),
        &["--max-iters", "3"],
    );
    assert_eq!(code, 0, "{text}");
    let stale = dir.path().join("iter_3");
    copy_dir(&ckpts.join("iter_3"), &stale);
    let keep_one = with(
        sets(&root),
        &[
            "hooks.checkpoint.every=1 epochs",
            "hooks.checkpoint.max_keep_ckpts=1",
        ],
    );
    let (code, text) = exec(&work, &keep_one, &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    assert!(ckpts.join("epoch_2").is_dir(), "{text}");
    assert!(!ckpts.join("iter_3").exists(), "{text}");
    assert!(!ckpts.join("epoch_1").exists(), "{text}");
    // Without the `last_checkpoint` pointer, `--resume auto` takes the furthest position.
    copy_dir(&stale, &ckpts.join("iter_3"));
    std::fs::remove_file(ckpts.join("last_checkpoint")).unwrap();
    let (code, text) = exec(&work, &keep_one, &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("epoch_2 at iteration 8"),
        "resumed from the wrong checkpoint: {text}"
    );
}

#[test]
fn leftovers_of_a_killed_save_are_tidied_and_a_bad_layout_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    let junk = work.join("checkpoints/.iter_5.tmp.99999");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("model.safetensors"), vec![0u8; 4096]).unwrap();
    std::fs::write(work.join(".config.json.tmp.99999"), "{").unwrap();
    let (code, text) = exec(&work, &sets(&root), &["--max-iters", "1"]);
    assert_eq!(code, 0, "{text}");
    assert!(!junk.exists() && !work.join(".config.json.tmp.99999").exists());
    assert!(text.contains("removed the unfinished write"), "{text}");

    // `checkpoints` is a file: refused before any training.
    let work = dir.path().join("v");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("checkpoints"), "not a folder").unwrap();
    let (code, text) = exec(&work, &sets(&root), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("checkpoint folder") && text.contains("not a folder"),
        "{text}"
    );
    assert!(!work.join("log.jsonl").exists(), "nothing trained: {text}");
}

#[test]
fn a_log_that_cannot_be_written_stops_the_run_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    std::fs::create_dir_all(&work).unwrap();
    // Every write to /dev/full fails with "No space left on device".
    std::os::unix::fs::symlink("/dev/full", work.join("log.jsonl")).unwrap();
    let (code, text) = exec(&work, &sets(&root), &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("log.jsonl") && text.contains("No space left on device"),
        "{text}"
    );
    assert!(text.contains("checkpoint written to"), "{text}");
    assert!(work.join("checkpoints/iter_1").is_dir(), "{text}");
    std::fs::remove_file(work.join("log.jsonl")).unwrap();
    let (code, text) = exec(&work, &sets(&root), &["--resume", "auto"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("at iteration 1"), "{text}");
}

/// Deleting the work dir under a running `exec` loses what the log writes next (the files
/// are unlinked, writes to them succeed): the log hook notices, and the run stops with a
/// checkpoint in the recreated folder, from which it resumes.
#[test]
fn a_work_dir_deleted_under_the_run_stops_it_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    let s = with(overrides(&root, 200), &["hooks.checkpoint.every=50 iters"]);
    let child = spawn_exec(&work, &s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !work.join("log.jsonl").is_file()
        || std::fs::read_to_string(work.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
            < 2
    {
        assert!(std::time::Instant::now() < deadline, "the run did not log");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The run may create a file while the folder is being emptied: try until it is gone.
    while let Err(e) = std::fs::remove_dir_all(&work) {
        assert!(
            e.kind() == std::io::ErrorKind::DirectoryNotEmpty,
            "removing the work dir: {e}"
        );
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    if text.contains("cannot write checkpoint") {
        // The deletion hit a save (rare with one every 50 iterations): also a clean stop.
        return;
    }
    assert!(
        text.contains("deleted while the run was writing it"),
        "{text}"
    );
    assert!(text.contains("checkpoint written to"), "{text}");
    let at: u64 = text
        .split("checkpoints/iter_")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no iter_N checkpoint named in: {text}"));
    let stop = (at + 1).to_string();
    let (code, text) = exec(&work, &s, &["--resume", "auto", "--max-iters", &stop]);
    assert!(code == 0 && text.contains("resumed from"), "{code}: {text}");
}

#[test]
fn a_moved_work_dir_resumes_and_a_changed_batch_size_names_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let a = dir.path().join("a");
    let (code, text) = exec(&a, &sets(&root), &["--max-iters", "2"]);
    assert_eq!(code, 0, "{text}");
    let b = dir.path().join("b");
    std::fs::rename(&a, &b).unwrap();
    let (code, text) = exec(&b, &sets(&root), &["--resume", "auto", "--max-iters", "3"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("resumed from"), "{text}");
    assert!(!text.contains("recipe changed"), "{text}");

    let smaller = with(sets(&root), &["data.samples_per_gpu=2"]);
    let (code, text) = exec(&b, &smaller, &["--resume", "auto"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("written with 4 iterations per epoch") && text.contains("this run has 8"),
        "{text}"
    );
}

#[test]
fn a_work_dir_name_that_is_not_utf8_is_kept_as_given() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let name = std::ffi::OsStr::from_bytes(b"w\xff");
    let work: PathBuf = dir.path().join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmrun"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["exec", "pipelines/quickstart.recipe", "--max-iters", "2"])
        .arg("--work-dir")
        .arg(&work);
    for s in sets(&root) {
        cmd.args(["--set", &s]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.join("checkpoints/iter_2").is_dir());
    assert!(work.join("log.jsonl").is_file());
    assert!(!dir.path().join("w\u{fffd}").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn skipped_samples_are_reported_per_epoch_and_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    // Damage one training image: cut it in half.
    let train = root.join("train");
    let mut images: Vec<PathBuf> = std::fs::read_dir(&train)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    let bytes = std::fs::read(&images[0]).unwrap();
    std::fs::write(&images[0], &bytes[..bytes.len() / 2]).unwrap();
    let work = dir.path().join("w");

    // The default policy stops, naming the file.
    let (code, text) = exec(&work, &sets(&root), &["--max-iters", "8"]);
    assert_ne!(code, 0, "{text}");
    let name = images[0].file_name().unwrap().to_str().unwrap();
    assert!(text.contains(name), "{text}");

    let work = dir.path().join("skip");
    let s = with(sets(&root), &["data.on_bad_sample=skip"]);
    let (code, text) = exec(&work, &s, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("warning: skipped: ") && text.contains(name),
        "{text}"
    );
    // Each of the two epochs reads the damaged image once.
    assert!(text.contains("skipped samples: 2 "), "{text}");
    let log = std::fs::read_to_string(work.join("log.txt")).unwrap();
    for (epoch, total) in [(1, 1), (2, 2)] {
        let line = format!(
            "epoch {epoch}: training samples skipped: 1 (on_bad_sample = skip); {total} since this process started"
        );
        assert!(log.contains(&line), "no `{line}` in log.txt:\n{log}");
    }
}

#[test]
fn a_step_too_large_for_the_device_is_refused_at_start_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let work = dir.path().join("w");
    // 1024 images of up to 16000 x 16000: terabytes per step, on any machine.
    let s = with(
        sets(&root),
        &[
            "data.samples_per_gpu=1024",
            "data.train.pipeline=[load_image, load_annotations, \
             resize { scale = [16000, 16000], keep_ratio = true }, pad { size_divisor = 32 }]",
        ],
    );
    let (code, text) = exec(&work, &s, &[]);
    assert_eq!(code, 2, "{text}");
    for needle in [
        "the planned training step needs",
        "1024 x 3 x 16000 x 16000",
        "the cpu has",
        "available (",
        "data.samples_per_gpu",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    assert!(!work.join("checkpoints").exists(), "nothing ran");

    // The same through `data.shape_buckets`: batches are padded to the largest bucket.
    let s = with(
        sets(&root),
        &[
            "data.samples_per_gpu=1024",
            "data.shape_buckets=[[64, 64], [16384, 16384]]",
        ],
    );
    let (code, text) = exec(&work, &s, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("1024 x 3 x 16384 x 16384"), "{text}");
}
