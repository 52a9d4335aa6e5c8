//! Checkpoint format and policy: round trip, max_keep_ckpts, best, corruption, failed writes.

use mmrun::engine::checkpoint::{
    CheckpointData, CheckpointManager, FileWriter, KeepPolicy, RunState, Tensor, Tensors,
    load_checkpoint, resolve_resume,
};
use mmrun::util::rng::Rng;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn data(iter: u64) -> CheckpointData {
    let mut weights = Tensors::new();
    weights.insert(
        "fc.weight".into(),
        Tensor {
            shape: vec![2, 3],
            data: (0..6).map(|i| i as f32 * 0.5 + iter as f32).collect(),
        },
    );
    weights.insert(
        "fc.bias".into(),
        Tensor {
            shape: vec![2],
            data: vec![f32::MIN_POSITIVE, -0.0],
        },
    );
    let mut optim = Tensors::new();
    optim.insert(
        "fc.weight.momentum_buffer".into(),
        Tensor {
            shape: vec![2, 3],
            data: vec![1e-30; 6],
        },
    );
    let mut state = RunState {
        mmrun_version: "test".into(),
        epoch: iter / 10,
        iter,
        ..Default::default()
    };
    let mut rng = Rng::seed(iter);
    rng.next_u64();
    state.rng.insert("data".into(), rng);
    state
        .hooks
        .insert("log".into(), serde_json::json!({"n": iter}));
    CheckpointData {
        weights,
        optimizer: Some(optim),
        ema: None,
        hooks: None,
        state,
    }
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let m = CheckpointManager::new(dir.path(), KeepPolicy::All);
    let d = data(7);
    let p = m.save("iter_7", &d).unwrap();
    assert_eq!(load_checkpoint(&p).unwrap(), d);
    let (rp, rd) = resolve_resume("auto", dir.path()).unwrap().unwrap();
    assert_eq!(rp, p);
    assert_eq!(rd, d);
}

#[test]
fn max_keep_ckpts_keeps_exactly_n_newest() {
    let dir = tempfile::tempdir().unwrap();
    let m = CheckpointManager::new(dir.path(), KeepPolicy::Last(2));
    for e in 1..=5 {
        m.save(&format!("epoch_{e}"), &data(e)).unwrap();
    }
    let names: Vec<String> = m
        .periodic()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["epoch_4", "epoch_5"]);
    assert_eq!(m.last().unwrap(), dir.path().join("epoch_5"));
    // Nothing else (temporaries) remains besides the pointer.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn save_best_replaces_the_previous_best() {
    let dir = tempfile::tempdir().unwrap();
    let m = CheckpointManager::new(dir.path(), KeepPolicy::All);
    m.save_best("bbox_mAP", "epoch_1", &data(1)).unwrap();
    m.save_best("bbox_mAP", "epoch_3", &data(3)).unwrap();
    assert!(!dir.path().join("best_bbox_mAP_epoch_1").exists());
    assert_eq!(
        load_checkpoint(&dir.path().join("best_bbox_mAP_epoch_3"))
            .unwrap()
            .state
            .iter,
        3
    );
}

fn corrupt_and_expect(edit: impl Fn(&Path), file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let m = CheckpointManager::new(dir.path(), KeepPolicy::All);
    let p = m.save("iter_1", &data(1)).unwrap();
    edit(&p.join(file));
    let err = load_checkpoint(&p).unwrap_err().to_string();
    assert!(err.contains("corrupt") && err.contains(file), "{err}");
    let err = resolve_resume("auto", dir.path()).unwrap_err().to_string();
    assert!(err.contains(file), "{err}");
}

#[test]
fn truncated_checkpoint_is_refused() {
    corrupt_and_expect(
        |f| {
            let b = std::fs::read(f).unwrap();
            std::fs::write(f, &b[..b.len() / 2]).unwrap();
        },
        "model.safetensors",
    );
}

#[test]
fn bit_flipped_checkpoint_is_refused() {
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        corrupt_and_expect(
            |f| {
                let mut b = std::fs::read(f).unwrap();
                let i = b.len() - 3;
                b[i] ^= 0x04;
                std::fs::write(f, &b).unwrap();
            },
            file,
        );
    }
}

#[test]
fn missing_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = CheckpointManager::new(dir.path(), KeepPolicy::All);
    let p = m.save("iter_1", &data(1)).unwrap();
    std::fs::remove_file(p.join("MANIFEST")).unwrap();
    let err = load_checkpoint(&p).unwrap_err().to_string();
    assert!(err.contains(&p.display().to_string()), "{err}");
}

/// Fails the `fail_at`-th write (0-based) and every one after it.
struct FaultyWriter {
    count: Arc<AtomicUsize>,
    fail_at: usize,
}

impl FileWriter for FaultyWriter {
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if self.count.fetch_add(1, Ordering::SeqCst) >= self.fail_at {
            // Leave a partial file behind, as a full disk would.
            let _ = std::fs::write(path, &bytes[..bytes.len() / 2]);
            return Err(std::io::Error::other("injected: no space left on device"));
        }
        mmrun::util::atomic_file::write_atomic(path, bytes)
    }
}

#[test]
fn failed_write_leaves_the_previous_checkpoint_intact() {
    // Each save writes model, optimizer, state, MANIFEST, then the pointer: 5 writes.
    for fail_at in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        CheckpointManager::new(dir.path(), KeepPolicy::Last(1))
            .save("iter_1", &data(1))
            .unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let m = CheckpointManager::new(dir.path(), KeepPolicy::Last(1)).with_writer(Box::new(
            FaultyWriter {
                count: count.clone(),
                fail_at,
            },
        ));
        let err = m.save("iter_2", &data(2)).unwrap_err().to_string();
        assert!(err.contains("no space left"), "{err}");
        // The previous checkpoint still loads, and resume finds a valid one.
        assert_eq!(
            load_checkpoint(&dir.path().join("iter_1")).unwrap(),
            data(1)
        );
        let (_, d) = resolve_resume("auto", dir.path()).unwrap().unwrap();
        assert!(
            d == data(1) || (fail_at == 4 && d == data(2)),
            "fail_at {fail_at}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    }
}
