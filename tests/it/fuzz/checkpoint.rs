//! `checkpoint` (checkpoint reader): the committed corpus (a real small checkpoint written
//! by `save_checkpoint`, split into records, with right, wrong, absent and unlisted sums),
//! byte mutations of it, and saved checkpoints of random content with one file corrupted
//! behind a recomputed sum never panic; errors name the folder; wrong sums are never
//! accepted; what loads saves and loads back the same.

use super::{committed_inputs, config, corpus, edits, mutate, save_seeds, write_seeds};
use mmrun::engine::checkpoint::{
    CheckpointData, RunState, Tensor, Tensors, load_checkpoint, save_checkpoint,
};
use mmrun::util::rng::Rng;
use proptest::prelude::*;
use serde_json::json;
use std::path::Path;

#[path = "../../../fuzz/harness/checkpoint.rs"]
mod harness;
use harness::{FILES, Folder, PlainWriter, Sum};

fn tensor(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n = shape.iter().product();
    Tensor {
        shape: shape.to_vec(),
        data: (0..n).map(f).collect(),
    }
}

/// A small checkpoint with every part a real one has.
fn real() -> CheckpointData {
    let mut weights = Tensors::new();
    weights.insert(
        "fc.weight".into(),
        tensor(&[2, 3], |i| i as f32 * 0.5 - 1.0),
    );
    weights.insert(
        "fc.bias".into(),
        tensor(&[2], |i| [f32::MIN_POSITIVE, -0.0][i]),
    );
    weights.insert("bn.running_var".into(), tensor(&[2], |_| 1.0));
    weights.insert("scalar".into(), tensor(&[], |_| 3.0));
    let mut optimizer = Tensors::new();
    optimizer.insert(
        "fc.weight.momentum_buffer".into(),
        tensor(&[2, 3], |_| 1e-30),
    );
    let mut hooks = Tensors::new();
    hooks.insert("ema/fc.weight".into(), tensor(&[2, 3], |i| i as f32));
    let mut state = RunState {
        mmrun_version: "0.1.0".into(),
        recipe_hash: "ab".repeat(32),
        epoch: 2,
        iter: 14,
        inner_iter: 3,
        optimizer: json!({"lr": 0.01, "momentum": 0.9, "steps": 14}),
        schedule: json!({"warmup": {"done": true}}),
        sampler: json!({"epoch": 2, "pos": 3}),
        loss_scaler: Some(json!({"scale": 65536.0, "good_steps": 7})),
        best: Some(("bbox_mAP".into(), 0.25, 12)),
        workflow: (1, 2),
        ..Default::default()
    };
    state.rng.insert("data".into(), Rng::seed(7));
    state.rng.insert("model".into(), Rng::stream(7, 1));
    state.hooks.insert("logger".into(), json!({"n": 14}));
    CheckpointData {
        weights: weights.clone(),
        optimizer: Some(optimizer),
        ema: Some(weights),
        hooks: Some(hooks),
        state,
    }
}

/// A saved checkpoint folder read back as a [`Folder`] (all sums right, MANIFEST generated).
fn folder_of(dir: &Path) -> Folder {
    let mut f = Folder::default();
    for (slot, name) in f.files.iter_mut().zip(FILES) {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            *slot = Some((Sum::Right, b));
        }
    }
    f
}

fn saved(data: &CheckpointData) -> (tempfile::TempDir, Folder) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("epoch_2");
    save_checkpoint(&dir, data, &PlainWriter).unwrap();
    let f = folder_of(&dir);
    (tmp, f)
}

fn regenerate_seeds() {
    let (tmp, full) = saved(&real());
    let manifest = std::fs::read(tmp.path().join("epoch_2/MANIFEST")).unwrap();
    let minimal = {
        let mut d = real();
        (d.optimizer, d.ema, d.hooks) = (None, None, None);
        saved(&d).1
    };
    let with = |i: usize, sum: Sum| {
        let mut f = full.clone();
        if let Some(p) = &mut f.files[i] {
            p.0 = sum;
        }
        f
    };
    let verbatim = Folder {
        manifest: Some(manifest),
        ..full.clone()
    };
    let extra = Folder {
        manifest_extra: b"0000  state.json\nnot a line\n".to_vec(),
        ..full.clone()
    };
    let seeds = [
        ("full.bin", full.to_bytes()),
        ("minimal.bin", minimal.to_bytes()),
        ("verbatim_manifest.bin", verbatim.to_bytes()),
        ("wrong_sum_state.bin", with(4, Sum::Wrong).to_bytes()),
        ("wrong_sum_model.bin", with(0, Sum::Wrong).to_bytes()),
        ("missing_ema.bin", with(2, Sum::Missing).to_bytes()),
        ("unlisted_optimizer.bin", with(1, Sum::Unlisted).to_bytes()),
        ("manifest_extra_lines.bin", extra.to_bytes()),
    ];
    save_seeds("checkpoint", &seeds);
}

#[test]
fn corpus_replays_without_panic() {
    if write_seeds() {
        regenerate_seeds();
    }
    for (path, bytes) in committed_inputs("checkpoint") {
        eprintln!("{}", path.display());
        harness::run(&bytes);
    }
    // The main seed is the real checkpoint: it passes the checks and loads exactly.
    let seeds = corpus("checkpoint");
    let (_, full) = seeds
        .iter()
        .find(|(p, _)| p.ends_with("full.bin"))
        .expect("the full.bin seed");
    let tmp = tempfile::tempdir().unwrap();
    Folder::from_bytes(full).write(tmp.path());
    assert_eq!(load_checkpoint(tmp.path()).unwrap(), real());
}

/// Named tensors of small random shapes and arbitrary bits.
fn tensors() -> impl Strategy<Value = Tensors> {
    let t = prop::collection::vec(0usize..4, 0..3).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        prop::collection::vec(any::<u32>().prop_map(f32::from_bits), n).prop_map(move |data| {
            Tensor {
                shape: shape.clone(),
                data,
            }
        })
    });
    prop::collection::btree_map("[a-z._/]{0,6}|ü|\\.\\.", t, 0..4)
}

fn run_state() -> impl Strategy<Value = RunState> {
    (
        any::<[u64; 3]>(),
        prop::option::of(("[a-z_]{0,8}", any::<f64>(), any::<u64>())),
        prop::collection::btree_map("[a-z]{0,4}", any::<u64>().prop_map(Rng::seed), 0..3),
        (any::<usize>(), any::<u64>()),
    )
        .prop_map(
            |([epoch, iter, inner_iter], best, rng, workflow)| RunState {
                mmrun_version: "0.1.0".into(),
                epoch,
                iter,
                inner_iter,
                best,
                rng,
                workflow,
                optimizer: json!({"lr": 0.02}),
                ..Default::default()
            },
        )
}

fn checkpoint() -> impl Strategy<Value = CheckpointData> {
    (
        tensors(),
        prop::option::of(tensors()),
        prop::option::of(tensors()),
        prop::option::of(tensors()),
        run_state(),
    )
        .prop_map(|(weights, optimizer, ema, hooks, state)| CheckpointData {
            weights,
            optimizer,
            ema,
            hooks,
            state,
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_corpus_never_panics(pick in any::<prop::sample::Index>(), e in edits()) {
        let seeds = corpus("checkpoint");
        let (_, seed) = &seeds[pick.index(seeds.len())];
        harness::run(&mutate(seed, &e));
    }

    /// A saved checkpoint loads back exactly; then one file is corrupted (with its sum
    /// recomputed, so the parser sees the damage) and the sums are listed as drawn.
    #[test]
    fn saved_checkpoints_load_and_corruptions_are_caught(
        data in checkpoint(),
        sums in prop::collection::vec(prop::sample::select(vec![Sum::Right, Sum::Right, Sum::Right, Sum::Wrong, Sum::Unlisted, Sum::Missing]), 5),
        victim in 0usize..5,
        e in prop::option::of(edits()),
    ) {
        if let Some((_, best, _)) = &data.state.best
            && !best.is_finite()
        {
            // JSON cannot hold it: the save is refused, naming the field, and leaves nothing.
            let tmp = tempfile::tempdir().unwrap();
            let e = save_checkpoint(&tmp.path().join("epoch_2"), &data, &PlainWriter)
                .expect_err("a non-finite best score is not saved");
            prop_assert!(e.to_string().contains("state.best"), "{}", e);
            prop_assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
            return Ok(());
        }
        let (tmp, mut f) = saved(&data);
        let back = load_checkpoint(&tmp.path().join("epoch_2")).expect("a saved checkpoint loads");
        prop_assert!(back.state == data.state && back.weights.len() == data.weights.len());
        harness::run_folder(&f);
        for (file, sum) in f.files.iter_mut().zip(sums) {
            if let Some(p) = file {
                p.0 = sum;
            }
        }
        if let (Some(e), Some(p)) = (&e, &mut f.files[victim]) {
            p.1 = mutate(&p.1, e);
        }
        harness::run_folder(&f);
    }
}
