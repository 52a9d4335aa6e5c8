//! `check` refuses the sizes the data loader would refuse or could not honour
//! (`data::limits`): the registry's bounds on `data.samples_per_gpu`, `workers_per_gpu`,
//! `prefetch` and image sides in scales equal the loader's, so a recipe `check` calls ok is not
//! stopped (or aborted) for its sizes once `exec` has loaded the data.

use mmrun::data::limits::{MAX_BATCH, MAX_PREFETCH, MAX_SIDE, MAX_WORKERS};
use std::process::Command;

fn check(set: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "check",
            "pipelines/quickstart.recipe",
            "--no-fs",
            "--set",
            set,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn pipeline(scale: usize) -> String {
    format!(
        "data.train.pipeline=[load_image, load_annotations, \
         resize {{ scale = [{scale}, {scale}], keep_ratio = true }}, pad {{ size_divisor = 32 }}]"
    )
}

#[test]
fn check_bounds_batch_size_and_scales_as_the_loader_does() {
    let (code, text) = check(&format!("data.samples_per_gpu={MAX_BATCH}"));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&format!("data.samples_per_gpu={}", MAX_BATCH + 1));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&MAX_BATCH.to_string()), "{text}");
    assert!(text.contains("samples_per_gpu"), "{text}");

    for (key, max) in [
        ("data.workers_per_gpu", MAX_WORKERS),
        ("data.prefetch", MAX_PREFETCH),
    ] {
        let (code, text) = check(&format!("{key}={max}"));
        assert_eq!(code, 0, "{text}");
        // 100000 worker threads or a channel of 10^9 batches aborted the process in `exec`.
        for over in [max + 1, 100_000, 1_000_000_000] {
            let (code, text) = check(&format!("{key}={over}"));
            assert_eq!(code, 1, "{key}={over}: {text}");
            assert!(
                text.contains(key) && text.contains(&max.to_string()),
                "{text}"
            );
        }
    }

    let (code, text) = check(&pipeline(MAX_SIDE));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&pipeline(MAX_SIDE + 1));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&MAX_SIDE.to_string()), "{text}");
}

fn mmrun(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that blocks on a FIFO or reads /dev/zero forever fails the test, not CI.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("mmrun {args:?} did not end within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Recipe paths and imports that are not regular files, or far too large, are refused at
/// once with the reason: never a read of `/dev/zero` until memory runs out, never a block on
/// a FIFO.
#[test]
fn recipe_paths_and_imports_that_are_not_recipe_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.recipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    let folder = dir.path().to_str().unwrap();
    for cmd in ["check", "plan", "exec", "fmt"] {
        for (path, why) in [
            (fifo, "not a regular file"),
            ("/dev/zero", "not a regular file"),
            (folder, "a folder"),
        ] {
            if cmd == "check" && path == folder {
                // `check DIR` checks the recipes below it: here the FIFO, refused by name.
                let (code, text) = mmrun(&[cmd, path]);
                assert_eq!(code, 1, "{text}");
                assert!(
                    text.contains(fifo) && text.contains("not a regular file"),
                    "{text}"
                );
                continue;
            }
            let (code, text) = mmrun(&[cmd, path]);
            assert_eq!(code, 2, "{cmd} {path}: {text}");
            assert!(
                text.contains(path) && text.contains(why),
                "{cmd} {path}: {text}"
            );
        }
    }
    let big = dir.path().join("big.recipe");
    let mut text = "// padding\n".repeat(2 << 20);
    text.push_str("let x = 1\n");
    std::fs::write(&big, text).unwrap();
    for (import, why) in [
        (fifo.to_string(), "not a regular file"),
        ("/dev/zero".to_string(), "not a regular file"),
        (big.display().to_string(), "larger than the 16.0 MiB"),
    ] {
        let r = dir.path().join("r.recipe");
        std::fs::write(&r, format!("import \"{import}\"\n")).unwrap();
        let (code, text) = mmrun(&["check", r.to_str().unwrap()]);
        assert_eq!(code, 1, "{import}: {text}");
        assert!(
            text.contains("E0201") && text.contains(why),
            "{import}: {text}"
        );
    }
}

/// Structural sizes of the model are bounded in `check`: 100000 stacked convs built a graph
/// for minutes; a million channels or classes allocated beyond any machine.
#[test]
fn check_bounds_the_model_sizes() {
    for (set, max) in [
        ("model.bbox_head.stacked_convs=100000", "32"),
        ("model.bbox_head.feat_channels=1000000", "16384"),
        ("model.bbox_head.num_classes=1000000", "100000"),
        ("model.neck.num_outs=1000", "16"),
    ] {
        let (code, text) = check(set);
        assert_eq!(code, 1, "{set}: {text}");
        let key = set.split('=').next().unwrap().rsplit('.').next().unwrap();
        assert!(text.contains(key) && text.contains(max), "{set}: {text}");
    }
}
