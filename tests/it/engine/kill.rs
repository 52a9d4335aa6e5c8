//! Exact resume across a real `kill -9`: the test binary re-runs itself as a child process
//! that trains the stand-in model with a checkpoint every iteration; one child runs straight,
//! another is killed mid-run and a third resumes it with `resume auto`. Final weights must be
//! bit-identical and the log lines after the resume point must match.

use super::runner::{Setup, deterministic, hooks, json_lines, sgd};
use super::standin::Linear;
use mmrun::engine::checkpoint::resolve_resume;
use mmrun::engine::hooks::{CheckpointConfig, CheckpointHook, Hook};
use mmrun::engine::optim::Optimizer;
use mmrun::engine::{RunConfig, Runner};
use mmrun::util::units::Period;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENV: &str = "MMRUN_TEST_KILL_CHILD";
const ITERS_PER_EPOCH: u64 = 8;
const EPOCHS: u64 = 3;

fn child_hooks() -> Vec<Box<dyn Hook>> {
    let s = Setup {
        cumulative_iters: 3,
        ema: true,
        log_every: 1,
        ..Default::default()
    };
    let mut h: Vec<Box<dyn Hook>> = hooks(&s)
        .into_iter()
        .filter(|h| h.name() != "checkpoint")
        .collect();
    h.push(Box::new(
        CheckpointHook::new(CheckpointConfig {
            every: Period::iters(1),
            max_keep_ckpts: 2,
            save_best: None,
            ..super::hook_defaults("checkpoint")
        })
        .unwrap(),
    ));
    h
}

/// The child's body; a no-op unless the parent set the environment variable.
#[test]
#[ignore = "run by kill_and_resume_auto_is_bit_identical as a child process"]
fn kill_child() {
    let Ok(dir) = std::env::var(ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let mut task = Linear::new((ITERS_PER_EPOCH * 4) as usize, 4);
    task.sleep = 0.02;
    let params = Linear::params();
    let opt = Optimizer::new(sgd(0.1), &params).unwrap();
    let c = RunConfig::new(Period::epochs(EPOCHS), dir);
    let mut r = Runner::new(&mut task, params, opt, child_hooks(), c).unwrap();
    if let Some((p, d)) = resolve_resume("auto", &dir.join("checkpoints")).unwrap() {
        r.resume(&p, d).unwrap();
    }
    r.run().unwrap();
}

fn child(dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "engine::kill::kill_child",
        "--exact",
        "--ignored",
        "--test-threads=1",
    ])
    .env(ENV, dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

fn final_weights(dir: &Path) -> Vec<u8> {
    let last = dir.join(format!("checkpoints/iter_{}", ITERS_PER_EPOCH * EPOCHS));
    std::fs::read(last.join("model.safetensors")).unwrap()
}

#[test]
fn kill_and_resume_auto_is_bit_identical() {
    let a = tempfile::tempdir().unwrap();
    assert!(child(a.path()).status().unwrap().success());

    let b = tempfile::tempdir().unwrap();
    let mut proc = child(b.path()).spawn().unwrap();
    let t0 = Instant::now();
    // Kill once about a third of the run has been logged.
    loop {
        let n = std::fs::read_to_string(b.path().join("log.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 8 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "child made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    let killed_at = resolve_resume("auto", &b.path().join("checkpoints"))
        .unwrap()
        .expect("a checkpoint survived the kill")
        .1
        .state
        .iter;
    assert!(
        killed_at > 0 && killed_at < ITERS_PER_EPOCH * EPOCHS,
        "killed at {killed_at}"
    );
    assert!(child(b.path()).status().unwrap().success());

    assert_eq!(final_weights(a.path()), final_weights(b.path()));
    let la: Vec<_> = json_lines(a.path())
        .into_iter()
        .map(deterministic)
        .collect();
    let lb: Vec<_> = json_lines(b.path())
        .into_iter()
        .map(deterministic)
        .collect();
    // Lines of iterations after the resume point, in A and at the end of B.
    let global = |l: &serde_json::Value| {
        (l["epoch"].as_u64().unwrap() - 1) * ITERS_PER_EPOCH + l["iter"].as_u64().unwrap()
    };
    let after: Vec<_> = la
        .iter()
        .filter(|l| {
            l["mode"] == "train" && global(l) > killed_at
                || l["mode"] == "val" && global(l) > killed_at
        })
        .cloned()
        .collect();
    assert!(after.len() > 5);
    assert_eq!(lb[lb.len() - after.len()..], after[..]);
}
