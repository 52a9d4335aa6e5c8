//! The loader: same batches whatever the worker count, exact resume, shape buckets, and the
//! target closure running with the bucket known.

use super::small_synth;
use mmrun::data::coco::{ReadOptions, read_coco};
use mmrun::data::loader::{Batch, Loader, LoaderOptions, TargetFn};
use mmrun::data::{
    BadSampleLog, BatchSampler, Dataset, OnBadSample, Pipeline, SamplerConfig, SamplerState,
    TransformConfig,
};
use serde_json::json;
use std::sync::Arc;

fn dataset(dir: &std::path::Path) -> Dataset {
    let s = small_synth(dir, 14, 5);
    let opts = ReadOptions {
        img_prefix: s.train_dir.clone(),
        filter_empty_gt: true,
        ..Default::default()
    };
    read_coco(&s.train_ann, &opts, &BadSampleLog::default()).unwrap()
}

fn pipeline() -> Pipeline {
    let v: Vec<TransformConfig> = crate::support::typed(&crate::support::TRANSFORMS, json!([
        {"type": "load_image"}, {"type": "load_annotations"},
        {"type": "photometric_distortion"},
        {"type": "resize", "scale": [96, 64], "ratio_range": [0.8, 1.2], "keep_ratio": true},
        {"type": "random_flip", "prob": 0.5, "direction": ["horizontal", "vertical", "diagonal"]},
        {"type": "normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
        {"type": "pad", "size_divisor": 16}
    ]))
    .unwrap();
    Pipeline::new(&v).unwrap()
}

/// Target: the number of boxes and the bucket the closure saw.
type T = (usize, [usize; 2]);

fn make(ds: &Dataset, workers: usize, buckets: Vec<[u32; 2]>, cfg: SamplerConfig) -> Loader<T> {
    let sampler = BatchSampler::new(&cfg, ds.aspect_groups(), 3, 0, 1, 9).unwrap();
    let target: TargetFn<T> = Arc::new(|s, _| Ok((s.boxes.len(), s.meta.batch_input_shape)));
    let opts = LoaderOptions {
        workers,
        prefetch: 2,
        seed: 9,
        on_bad_sample: OnBadSample::Error,
        buckets,
        size_divisor: Some(16),
    };
    Loader::new(
        Arc::new(ds.clone()),
        Arc::new(pipeline()),
        sampler,
        target,
        opts,
    )
}

fn drain(l: &mut Loader<T>) -> Vec<Batch<T>> {
    std::iter::from_fn(|| l.next_batch())
        .map(|b| b.unwrap())
        .collect()
}

fn same(a: &[Batch<T>], b: &[Batch<T>]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape, y.shape);
        assert_eq!(x.indices, y.indices);
        assert_eq!(x.metas, y.metas);
        assert_eq!(x.gt_boxes, y.gt_boxes);
        assert_eq!(x.targets, y.targets);
        assert!(
            x.images
                .iter()
                .zip(&y.images)
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );
    }
}

#[test]
fn batches_are_identical_for_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let base = drain(&mut make(
        &ds,
        0,
        vec![],
        SamplerConfig::GroupSampler { shuffle: true },
    ));
    assert!(!base.is_empty());
    for w in [1, 2, 3] {
        same(
            &base,
            &drain(&mut make(
                &ds,
                w,
                vec![],
                SamplerConfig::GroupSampler { shuffle: true },
            )),
        );
    }
    // Collation: [N, 3, H, W], buckets a multiple of 16, each image inside it, zeros after.
    for b in &base {
        let [n, c, h, w] = b.shape;
        assert_eq!((n, c, b.images.len()), (3, 3, n * c * h * w));
        assert!(h % 16 == 0 && w % 16 == 0);
        for (k, m) in b.metas.iter().enumerate() {
            assert_eq!(m.batch_input_shape, [h, w]);
            assert_eq!(
                b.targets[k],
                (b.gt_boxes[k].len(), [h, w]),
                "the closure saw the bucket"
            );
            let [ih, iw, _] = m.img_shape;
            assert!(ih <= h && iw <= w && m.pad_shape[0] % 16 == 0);
            if iw < w {
                assert_eq!(b.images[k * c * h * w + iw], 0.0, "padding is zero");
            }
            assert!(b.gt_labels[k].iter().all(|&l| l < 6));
        }
    }
    // Another epoch gives other augmentations.
    let mut l = make(
        &ds,
        2,
        vec![],
        SamplerConfig::GroupSampler { shuffle: true },
    );
    l.set_epoch(1);
    let e1 = drain(&mut l);
    assert!(
        e1.iter()
            .zip(&base)
            .any(|(a, b)| a.indices != b.indices || a.metas != b.metas)
    );
}

#[test]
fn resume_from_a_saved_position_gives_the_remaining_batches() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let cfg = SamplerConfig::InfiniteSampler {
        shuffle: true,
        group: true,
    };
    let mut a = make(&ds, 2, vec![], cfg.clone());
    let per = a.batches_per_epoch();
    let first: Vec<_> = (0..per + 2)
        .map(|_| a.next_batch().unwrap().unwrap())
        .collect();
    assert_eq!(first[per].position, SamplerState { epoch: 1, batch: 0 });
    let saved = serde_json::to_string(&SamplerState {
        epoch: 0,
        batch: (per - 1) as u64,
    })
    .unwrap();
    let mut b = make(&ds, 3, vec![], cfg);
    b.restore(serde_json::from_str(&saved).unwrap());
    let resumed: Vec<_> = (0..3).map(|_| b.next_batch().unwrap().unwrap()).collect();
    same(&first[per - 1..], &resumed);
    // state() always points at the next batch to come.
    assert_eq!(b.state(), SamplerState { epoch: 1, batch: 2 });
}

#[test]
fn batches_pad_to_the_smallest_fitting_bucket_or_fail_naming_the_images() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let buckets = vec![[128, 128], [96, 128], [128, 96], [512, 512]];
    let batches = drain(&mut make(
        &ds,
        2,
        buckets.clone(),
        SamplerConfig::GroupSampler { shuffle: true },
    ));
    for b in &batches {
        let [_, _, h, w] = b.shape;
        assert!(buckets.contains(&[h as u32, w as u32]));
        let mh = b.metas.iter().map(|m| m.img_shape[0]).max().unwrap();
        let mw = b.metas.iter().map(|m| m.img_shape[1]).max().unwrap();
        let best = buckets
            .iter()
            .filter(|[bh, bw]| *bh as usize >= mh && *bw as usize >= mw)
            .map(|[bh, bw]| bh * bw)
            .min()
            .unwrap();
        assert_eq!((h * w) as u32, best);
    }
    let mut l = make(
        &ds,
        2,
        vec![[32, 32]],
        SamplerConfig::GroupSampler { shuffle: true },
    );
    let e = l.next_batch().unwrap().unwrap_err().to_string();
    assert!(e.contains(".png") && e.contains("shape bucket"), "{e}");
}

#[test]
fn target_closure_errors_name_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let sampler = BatchSampler::new(
        &SamplerConfig::SequentialSampler {},
        ds.aspect_groups(),
        2,
        0,
        1,
        0,
    )
    .unwrap();
    let target: TargetFn<()> = Arc::new(|_, _| Err("no anchors fit".into()));
    let opts = LoaderOptions {
        workers: 1,
        prefetch: 1,
        seed: 0,
        on_bad_sample: OnBadSample::Skip,
        buckets: vec![],
        size_divisor: None,
    };
    let mut l = Loader::new(Arc::new(ds), Arc::new(pipeline()), sampler, target, opts);
    let e = l.next_batch().unwrap().unwrap_err().to_string();
    assert!(
        e.contains("000000.png") && e.contains("no anchors fit"),
        "{e}"
    );
}

#[test]
fn fused_normalize_and_pad_in_collation_give_the_pipelines_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    for to_rgb in [true, false] {
        let v: Vec<TransformConfig> = crate::support::typed(&crate::support::TRANSFORMS, json!([
            {"type": "load_image"}, {"type": "resize", "scale": [80, 60], "keep_ratio": true},
            {"type": "normalize", "mean": [120.0, 110.0, 100.0], "std": [50.0, 60.0, 70.0], "to_rgb": to_rgb},
            {"type": "pad", "size_divisor": 32}
        ]))
        .unwrap();
        let pipe = Pipeline::new(&v).unwrap();
        let sampler = BatchSampler::new(
            &SamplerConfig::SequentialSampler {},
            ds.aspect_groups(),
            2,
            0,
            1,
            0,
        )
        .unwrap();
        let target: TargetFn<()> = Arc::new(|_, _| Ok(()));
        let opts = LoaderOptions {
            workers: 1,
            prefetch: 1,
            seed: 0,
            on_bad_sample: OnBadSample::Error,
            buckets: vec![],
            size_divisor: Some(32),
        };
        let mut l = Loader::new(
            Arc::new(ds.clone()),
            Arc::new(pipe.clone()),
            sampler,
            target,
            opts,
        );
        let b = l.next_batch().unwrap().unwrap();
        let [_, _, h, w] = b.shape;
        for (k, &i) in b.indices.iter().enumerate() {
            let s = pipe
                .run(&ds.records[i], &mut mmrun::util::rng::Rng::seed(0))
                .unwrap();
            assert_eq!(
                s.meta,
                b.metas[k].clone().tap_batch(s.meta.batch_input_shape)
            );
            let (ph, pw) = (s.image.h, s.image.w);
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        let got = b.images[((k * 3 + c) * h + y) * w + x];
                        let want = if y < ph && x < pw {
                            s.image.get(y, x, c)
                        } else {
                            0.0
                        };
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "to_rgb {to_rgb} ({c}, {y}, {x})"
                        );
                    }
                }
            }
        }
    }
}

trait TapBatch {
    fn tap_batch(self, shape: [usize; 2]) -> Self;
}
impl TapBatch for mmrun::data::ImageMeta {
    fn tap_batch(mut self, shape: [usize; 2]) -> Self {
        self.batch_input_shape = shape;
        self
    }
}

#[test]
fn ranks_transform_their_slots_as_one_rank_with_the_global_batch() {
    // Augmentation is keyed by the slot in the global batch: rank r's images are the single
    // rank's images r·b .. (r+1)·b, bit for bit (one fixed bucket, so the padding agrees).
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let cfg = SamplerConfig::GroupSampler { shuffle: true };
    let bucket = vec![[128, 128]];
    let load = |bs: usize, rank: usize, world: usize| {
        let sampler = BatchSampler::new(&cfg, ds.aspect_groups(), bs, rank, world, 9).unwrap();
        let target: TargetFn<T> = Arc::new(|s, _| Ok((s.boxes.len(), s.meta.batch_input_shape)));
        let opts = LoaderOptions {
            workers: 1,
            prefetch: 2,
            seed: 9,
            on_bad_sample: OnBadSample::Error,
            buckets: bucket.clone(),
            size_divisor: Some(16),
        };
        let mut l = Loader::new(
            Arc::new(ds.clone()),
            Arc::new(pipeline()),
            sampler,
            target,
            opts,
        );
        drain(&mut l)
    };
    let one = load(4, 0, 1);
    let ranks = [load(2, 0, 2), load(2, 1, 2)];
    assert!(!one.is_empty());
    for (step, global) in one.iter().enumerate() {
        let per_image = global.images.len() / 4;
        for (r, rank) in ranks.iter().enumerate() {
            let b = &rank[step];
            assert_eq!(
                b.indices,
                global.indices[2 * r..2 * r + 2],
                "step {step} rank {r}"
            );
            assert_eq!(b.metas, global.metas[2 * r..2 * r + 2]);
            assert_eq!(b.targets, global.targets[2 * r..2 * r + 2]);
            let slice = &global.images[2 * r * per_image..(2 * r + 2) * per_image];
            assert!(
                b.images
                    .iter()
                    .zip(slice)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
            );
        }
    }
}
