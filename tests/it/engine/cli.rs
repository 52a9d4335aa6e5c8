//! `mmrun exec` and `mmrun test` from the outside: exit codes and messages.

use crate::bin::mmrun;
use std::process::Command;

#[test]
fn exec_refuses_a_recipe_with_errors_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.recipe");
    std::fs::write(&bad, "optimizer = sgd { lr = 0.1, momentun = 0.9 }\nrun = { epochs = 1, workflow = [train 1 epoch] }\n").unwrap();
    let (code, text) = mmrun(&["exec", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("momentun") && text.contains("nothing was run"),
        "{text}"
    );
}

#[test]
fn exec_needs_a_model_and_a_valid_device() {
    let (code, text) = mmrun(&["exec", "tests/fixtures/engine/linear.recipe"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no `model` section"), "{text}");
    let (code, text) = mmrun(&[
        "exec",
        "tests/fixtures/engine/linear.recipe",
        "--device",
        "tpu",
    ]);
    assert_eq!(code, 2);
    assert!(text.contains("unknown device `tpu`"), "{text}");
    let (code, _) = mmrun(&["exec", "does/not/exist.recipe"]);
    assert_eq!(code, 2);
}

#[test]
fn test_refuses_a_corrupt_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = mmrun(&[
        "test",
        "tests/fixtures/engine/linear.recipe",
        "--checkpoint",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("MANIFEST"), "{text}");
}

/// A command that only prints ends quietly on a closed stdout (as Unix tools do on
/// `SIGPIPE`), with no panic message; `data synth` (whose work is files) finishes its work.
#[test]
fn a_closed_stdout_ends_print_only_commands_quietly_and_lets_file_work_finish() {
    let run = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for args in [
        &["explain", "retinanet"][..],
        &["fmt", "pipelines/quickstart.recipe"],
        &["plan", "pipelines/quickstart.recipe"],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(141), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shapes");
    let (code, err) = run(&[
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--images",
        "4",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.join("annotations").is_dir(), "{err}");
}

/// `runtime.backend` and `--device` are one setting (the flag wins); `runtime.devices` is the
/// device count the recipe was written for, so another count is a warning, not a refusal.
#[test]
fn exec_reads_the_device_from_the_recipe_and_warns_about_the_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path().to_str().unwrap();
    let dry = |sets: &[&str], flag: Option<&str>| {
        let mut args = vec![
            "exec",
            "pipelines/quickstart.recipe",
            "--dry-run",
            "--work-dir",
            wd,
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        if let Some(d) = flag {
            args.extend(["--device", d]);
        }
        mmrun(&args)
    };
    let (code, text) = dry(&["runtime.devices=8"], None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("device: cpu"), "{text}");
    assert!(
        text.contains("warning: runtime.devices = 8") && text.contains("scale optimizer.lr by 1/8"),
        "{text}"
    );
    // The recipe asks for CUDA: without a GPU (this machine, CI) exec says so and stops; with
    // one, it runs there.
    let (code, text) = dry(&["runtime.backend=cuda"], None);
    assert!(
        (code == 2 && text.contains("cuda")) || (code == 0 && text.contains("device: cuda")),
        "{code}: {text}"
    );
    let (code, text) = dry(&["runtime.backend=cuda"], Some("cpu"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("device: cpu"), "{text}");
}

/// Under `--max-iters N` the progress bar (on a terminal: `script` gives the run one) and the
/// logged ETA count to N, not to the schedule's end, and the bar shows the rate; an evaluation
/// draws its own bar, counting the val images.
#[test]
fn progress_and_eta_count_to_max_iters() {
    let dir = tempfile::tempdir().unwrap();
    let root = super::detector::dataset(dir.path());
    let work = dir.path().join("w");
    let mut cmd = format!(
        "'{}' exec pipelines/quickstart.recipe --work-dir '{}' --max-iters 3",
        env!("CARGO_BIN_EXE_mmrun"),
        work.display()
    );
    for s in super::detector::overrides(&root, 10) {
        cmd.push_str(&format!(" --set '{s}'"));
    }
    cmd.push_str(" --set 'hooks.eval.every=3 iters'");
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "{text}");
    let last_bar = text.lines().rfind(|l| l.contains(" ETA "));
    let last_bar = last_bar.unwrap_or_else(|| panic!("no progress bar in\n{text}"));
    assert!(
        last_bar.contains("] 3/3 ") && last_bar.contains(" it/s ETA 0:00:00"),
        "{last_bar}"
    );
    // The shapes set of `dataset` has 4 val images.
    let eval_bar = text.lines().rfind(|l| l.starts_with("eval ["));
    let eval_bar = eval_bar.unwrap_or_else(|| panic!("no evaluation bar in\n{text}"));
    assert!(
        eval_bar.contains("] 4/4 ") && eval_bar.contains(" img/s "),
        "{eval_bar}"
    );
    let log = std::fs::read_to_string(work.join("log.txt")).unwrap();
    let last_line = log.lines().rfind(|l| l.contains("Epoch [")).unwrap();
    assert!(last_line.contains("eta: 0:00:00"), "{last_line}");
}

/// On a terminal `check` colours its diagnostics, unless `NO_COLOR` is set
/// (https://no-color.org) or the terminal is dumb; the unicode drawing stays.
#[test]
fn no_color_turns_colours_off_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.recipe");
    std::fs::write(&bad, "optimizer = sgd { lr = 0.1, momentun = 0.9 }\n").unwrap();
    let cmd = format!(
        "'{}' check '{}' --no-fs",
        env!("CARGO_BIN_EXE_mmrun"),
        bad.display()
    );
    let on_tty_as = |term: &str, no_color: Option<&str>| {
        let mut c = Command::new("script");
        c.args(["-qc", &cmd, "/dev/null"])
            .env_remove("NO_COLOR")
            .env_remove("FORCE_COLOR")
            .env("TERM", term);
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        c.output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let on_tty = |no_color: Option<&str>| on_tty_as("xterm-256color", no_color);
    let Some(coloured) = on_tty(None) else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(
        coloured.contains("\x1b[") && coloured.contains("momentun"),
        "{coloured}"
    );
    let plain = on_tty(Some("1")).unwrap();
    assert!(!plain.contains("\x1b[") && plain.contains('╭'), "{plain}");
    // An empty NO_COLOR does not count (the convention).
    assert!(on_tty(Some("")).unwrap().contains("\x1b["));
    // A terminal that says it cannot show colours gets none.
    let dumb = on_tty_as("dumb", None).unwrap();
    assert!(
        !dumb.contains("\x1b[") && dumb.contains("momentun"),
        "{dumb}"
    );
}

/// `runtime.auto_scale_lr` (mmdetection's): the learning rate the run trains at is scaled by
/// the batch per step over `base_batch_size`, and the run says so.
#[test]
fn auto_scale_lr_scales_the_learning_rate_the_run_uses() {
    let dir = tempfile::tempdir().unwrap();
    let root = super::detector::dataset(dir.path());
    let lr_of = |extra: &[&str]| {
        let work = dir.path().join(format!("w{}", extra.len()));
        let mut sets = super::detector::overrides(&root, 10);
        sets.extend(extra.iter().map(|s| s.to_string()));
        let (code, text) = super::detector::exec(&work, &sets, &["--max-iters", "2"]);
        assert_eq!(code, 0, "{text}");
        let lrs: Vec<f64> = super::detector::log_records(&work)
            .iter()
            .filter(|r| r["mode"] == "train")
            .map(|r| r["lr"].as_f64().unwrap())
            .collect();
        (lrs, text)
    };
    let (plain, _) = lr_of(&[]);
    // 4 images per step over a base of 32: an eighth of the recipe's rate, warmup included.
    let (scaled, text) = lr_of(&["runtime.auto_scale_lr={ base_batch_size = 32 }"]);
    assert!(text.contains("optimizer.lr 0.02 → 0.0025"), "{text}");
    for (p, s) in plain.iter().zip(&scaled) {
        assert!((s / p - 0.125).abs() < 1e-12, "{plain:?} {scaled:?}");
    }
}
