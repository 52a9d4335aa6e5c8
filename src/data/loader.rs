//! The loader: worker threads run the pipeline and the caller's target closure on whole
//! batches, a bounded queue per worker holds prepared batches, and the consumer takes them
//! in sampler order. Each sample draws its random transforms from an RNG stream keyed by
//! (seed, epoch, batch position, slot in the global batch), never by worker or rank, so
//! batches are bit-identical for any worker count, and N ranks transform each image of a
//! step as one rank with the whole global batch would.
//!
//! A [`Batch`] is plain data: images as one `Vec<f32>` of shape `[N, 3, H, W]` (row-major,
//! zero-padded bottom/right to the batch's shape bucket), per-image metadata, ground truth
//! and the targets `T`.

use super::coco::ReadOptions;
use super::config::{DataConfig, DatasetConfig, Normalize};
use super::dataset::{BoxXyxy, Dataset};
use super::error::{BadSampleLog, DataError, OnBadSample, Result, SkipCount};
use super::image::Pixels;
use super::limits::{self, MAX_SIDE};
use super::sample::{ImageMeta, Sample};
use super::sampler::{BatchSampler, SamplerState};
use super::transforms::Pipeline;
use crate::util::rng::Rng;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// The per-image target computation (anchor/target assignment) run in the workers. It
/// sees the transformed sample with `meta.batch_input_shape` set to the batch's bucket, and a
/// random stream of the sample's own (a sampler's draws: keyed like the transforms' stream,
/// so they too are the same for any number of workers or ranks).
pub type TargetFn<T> = Arc<
    dyn Fn(&Sample, &mut Rng) -> std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync,
>;

/// The `attempt` key of a slot's target stream: never an attempt at loading it.
const TARGET_STREAM: u64 = u64::MAX;

/// A collated batch.
#[derive(Debug)]
pub struct Batch<T> {
    /// `[N, 3, H, W]` f32, row-major; padding is 0.
    pub images: Vec<f32>,
    /// `[N, 3, H, W]`; `[H, W]` is the shape bucket.
    pub shape: [usize; 4],
    pub metas: Vec<ImageMeta>,
    /// Ground-truth boxes (xyxy, on the transformed image), labels and ignored boxes.
    pub gt_boxes: Vec<Vec<BoxXyxy>>,
    pub gt_labels: Vec<Vec<u32>>,
    pub gt_ignored: Vec<Vec<BoxXyxy>>,
    /// What the target closure returned for each image.
    pub targets: Vec<T>,
    /// Dataset index of each image (after any skip substitutions).
    pub indices: Vec<usize>,
    /// Where this batch sits in the sampler's sequence.
    pub position: SamplerState,
}

/// Loader settings that are not part of the sampler.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    /// Worker threads; 0 runs everything on the calling thread.
    pub workers: usize,
    /// Batches each worker may hold ready.
    pub prefetch: usize,
    /// Seed of the per-sample transform streams.
    pub seed: u64,
    pub on_bad_sample: OnBadSample,
    /// Padded batch shapes `[h, w]`; empty: the batch's own maximum, rounded up to
    /// `size_divisor`.
    pub buckets: Vec<[u32; 2]>,
    pub size_divisor: Option<u32>,
}

impl LoaderOptions {
    /// Options from the data config (`workers_per_gpu`, `prefetch`, `on_bad_sample`,
    /// `shape_buckets`) and the pipeline's `size_divisor`. Without configured buckets the
    /// pipeline's own [`Pipeline::bucket_shapes`] are used, so shapes stay static.
    pub fn from_config(cfg: &DataConfig, pipeline: &Pipeline, seed: u64) -> Self {
        let buckets = if cfg.shape_buckets.is_empty() {
            pipeline.bucket_shapes().unwrap_or_default()
        } else {
            cfg.shape_buckets.clone()
        };
        LoaderOptions {
            workers: cfg.workers_per_gpu,
            prefetch: cfg.prefetch.max(1),
            seed,
            on_bad_sample: cfg.on_bad_sample,
            buckets,
            size_divisor: pipeline.size_divisor(),
        }
    }
}

/// Read the dataset a config names (annotation paths as given, relative to the working
/// directory) and build its pipeline.
pub fn build_dataset(
    cfg: &DatasetConfig,
    on_bad_sample: OnBadSample,
    log: &BadSampleLog,
) -> Result<(Dataset, Pipeline)> {
    let p = cfg.params();
    let opts = ReadOptions {
        img_prefix: p.img_prefix.clone().into(),
        classes: p.classes.clone(),
        filter_empty_gt: p.filter_empty_gt,
        min_size: p.min_size,
        test_mode: p.test_mode,
        on_bad_sample,
    };
    let ann = Path::new(&p.ann_file);
    let ds = match cfg {
        DatasetConfig::CocoDataset(_) | DatasetConfig::ShapesDataset(_) => {
            super::coco::read_coco(ann, &opts, log)?
        }
        DatasetConfig::VocDataset(_) => super::voc::read_voc(ann, &opts, log)?,
    };
    Ok((ds, Pipeline::new(&p.pipeline)?))
}

/// Everything a worker needs, shared.
struct Shared<T> {
    dataset: Arc<Dataset>,
    pipeline: Arc<Pipeline>,
    target: TargetFn<T>,
    opts: LoaderOptions,
    log: Arc<BadSampleLog>,
    groups: Vec<u8>,
    /// Where this rank's slots start in the global batch (`rank · batch size`).
    first_slot: u64,
}

/// How many other images are tried in place of a bad one before giving up.
const SUBSTITUTE_TRIES: u64 = 10;

impl<T> Shared<T> {
    fn sample_rng(&self, pos: SamplerState, slot: usize, attempt: u64) -> Rng {
        // The stream's second key was the rank: 0 keeps one rank's streams as they were.
        let mut k = Rng::stream(self.opts.seed, 0);
        for id in [pos.epoch, pos.batch, self.first_slot + slot as u64, attempt] {
            k = Rng::stream(k.next_u64(), id);
        }
        k
    }

    /// Load and transform one slot; with `skip`, a bad image is replaced by another of the
    /// same aspect group drawn from the slot's stream (mmdetection's `_rand_another`).
    fn load_slot(
        &self,
        pos: SamplerState,
        slot: usize,
        index: usize,
    ) -> Result<(usize, Sample, Option<Normalize>)> {
        let mut idx = index;
        let mut failed: Vec<usize> = vec![];
        for attempt in 0..=SUBSTITUTE_TRIES {
            let mut rng = self.sample_rng(pos, slot, attempt);
            let rec = &self.dataset.records[idx];
            let r = self
                .pipeline
                .run_deferred(rec, &mut rng)
                .map_err(|e| match e {
                    e @ (DataError::Io { .. }
                    | DataError::Decode { .. }
                    | DataError::Sample { .. }) => e,
                    other => DataError::Sample {
                        file: rec.path.display().to_string(),
                        message: other.to_string(),
                    },
                });
            match r {
                Ok((s, norm)) => return Ok((idx, s, norm)),
                Err(e) if self.opts.on_bad_sample == OnBadSample::Skip => {
                    self.log.warn(&e);
                    failed.push(idx);
                    let same: Vec<usize> = (0..self.groups.len())
                        .filter(|&i| self.groups[i] == self.groups[index] && !failed.contains(&i))
                        .collect();
                    if same.is_empty() {
                        break;
                    }
                    idx = same[rng.below(same.len() as u64) as usize];
                }
                Err(e) => return Err(e),
            }
        }
        Err(DataError::Sample {
            file: self.dataset.records[index].path.display().to_string(),
            message: format!(
                "bad image, and {} replacement images from its aspect group were bad too",
                failed.len().saturating_sub(1)
            ),
        })
    }

    fn bucket(&self, samples: &[Sample]) -> Result<(usize, usize)> {
        let mh = samples
            .iter()
            .map(|s| s.meta.pad_shape[0])
            .max()
            .unwrap_or(1);
        let mw = samples
            .iter()
            .map(|s| s.meta.pad_shape[1])
            .max()
            .unwrap_or(1);
        if let Some(&[h, w]) = self
            .opts
            .buckets
            .iter()
            .find(|&&[h, w]| h.max(w) as usize > MAX_SIDE)
        {
            return Err(DataError::Config(format!(
                "`data.shape_buckets`: [{h}, {w}] has a side over the {MAX_SIDE} px an image may have"
            )));
        }
        if self.opts.buckets.is_empty() {
            let d = self.opts.size_divisor.unwrap_or(1).max(1) as usize;
            return Ok((mh.div_ceil(d) * d, mw.div_ceil(d) * d));
        }
        self.opts
            .buckets
            .iter()
            .map(|&[h, w]| (h as usize, w as usize))
            .filter(|&(h, w)| h >= mh && w >= mw)
            .min_by_key(|&(h, w)| (h * w, h))
            .ok_or_else(|| DataError::Sample {
                file: samples
                    .iter()
                    .map(|s| s.meta.file_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!(
                    "the batch needs {mh}x{mw} (h x w), larger than every shape bucket {:?}",
                    self.opts.buckets
                ),
            })
    }

    fn make_batch(&self, pos: SamplerState, indices: &[usize]) -> Result<Batch<T>> {
        let mut samples = Vec::with_capacity(indices.len());
        let mut used = Vec::with_capacity(indices.len());
        let mut norms = Vec::with_capacity(indices.len());
        for (slot, &i) in indices.iter().enumerate() {
            let (idx, s, norm) = self.load_slot(pos, slot, i)?;
            used.push(idx);
            samples.push(s);
            norms.push(norm);
        }
        let (bh, bw) = self.bucket(&samples)?;
        let n = samples.len();
        let plane = bh * bw;
        let what = || format!("a batch of {n} images of {bh}x{bw} (h x w)");
        let mut images = limits::zeroed(limits::product(&[n, 3, plane], what)?, 0f32, what)?;
        let mut targets = Vec::with_capacity(n);
        for (k, s) in samples.iter_mut().enumerate() {
            s.meta.batch_input_shape = [bh, bw];
            let out = &mut images[k * 3 * plane..(k + 1) * 3 * plane];
            let (h, w) = (s.image.h, s.image.w);
            // HWC → CHW into the padded bucket, normalizing on the way when the pipeline
            // left its trailing normalize to us (one pass instead of three copies).
            let (order, mean, inv) = match &norms[k] {
                Some(n) => (
                    if n.to_rgb { [0, 1, 2] } else { [2, 1, 0] },
                    n.mean,
                    [1.0 / n.std[0], 1.0 / n.std[1], 1.0 / n.std[2]],
                ),
                None => ([0, 1, 2], [0.0; 3], [1.0; 3]),
            };
            macro_rules! scatter {
                ($d:expr) => {
                    for y in 0..h {
                        let row = &$d[y * w * 3..(y + 1) * w * 3];
                        for c in 0..3 {
                            let (src, m, iv) = (order[c], mean[c], inv[c]);
                            let o = &mut out[c * plane + y * bw..c * plane + y * bw + w];
                            for (v, p) in o.iter_mut().zip(row.chunks_exact(3)) {
                                *v = (p[src] as f32 - m) * iv;
                            }
                        }
                    }
                };
            }
            match &s.image.pixels {
                Pixels::U8(d) => scatter!(d),
                Pixels::F32(d) => scatter!(d),
            }
            let mut rng = self.sample_rng(pos, k, TARGET_STREAM);
            let t = (self.target)(s, &mut rng).map_err(|e| DataError::Target {
                file: s.meta.file_name.clone(),
                message: e.to_string(),
            })?;
            targets.push(t);
        }
        let mut b = Batch {
            images,
            shape: [n, 3, bh, bw],
            metas: Vec::with_capacity(n),
            gt_boxes: Vec::with_capacity(n),
            gt_labels: Vec::with_capacity(n),
            gt_ignored: Vec::with_capacity(n),
            targets,
            indices: used,
            position: pos,
        };
        for s in samples {
            b.metas.push(s.meta);
            b.gt_boxes.push(s.boxes);
            b.gt_labels.push(s.labels);
            b.gt_ignored.push(s.ignored);
        }
        Ok(b)
    }
}

/// Workers preparing the rest of one epoch.
struct Running<T> {
    receivers: Vec<Receiver<Result<Batch<T>>>>,
    handles: Vec<JoinHandle<()>>,
    jobs: Arc<Vec<(SamplerState, Vec<usize>)>>,
    next: usize,
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        // Closing the queues makes each worker stop at its next send.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The data loader of one rank.
pub struct Loader<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    sampler: BatchSampler,
    running: Option<Running<T>>,
}

impl<T: Send + 'static> Loader<T> {
    /// A loader over `dataset` with `pipeline`, batches from `sampler`, targets from
    /// `target`.
    pub fn new(
        dataset: Arc<Dataset>,
        pipeline: Arc<Pipeline>,
        sampler: BatchSampler,
        target: TargetFn<T>,
        opts: LoaderOptions,
    ) -> Self {
        let groups = dataset.aspect_groups();
        let first_slot = (sampler.rank_world().0 * sampler.batch_size()) as u64;
        Loader {
            shared: Arc::new(Shared {
                dataset,
                pipeline,
                target,
                opts,
                log: Arc::new(BadSampleLog::default()),
                groups,
                first_slot,
            }),
            sampler,
            running: None,
        }
    }

    /// The position of the next batch [`next_batch`](Self::next_batch) returns: save this in
    /// a checkpoint, give it to [`restore`](Self::restore) to resume.
    pub fn state(&self) -> SamplerState {
        self.sampler.state()
    }

    /// Continue from a saved position. Prefetched batches are dropped; no data is replayed.
    /// Another epoch than the current one restarts the epoch's skip count.
    pub fn restore(&mut self, state: SamplerState) {
        self.running = None;
        if state.epoch != self.sampler.state().epoch {
            self.shared.log.start_epoch();
        }
        self.sampler.restore(state);
    }

    /// Start `epoch` from its first batch (and its skip count from 0).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.running = None;
        self.shared.log.start_epoch();
        self.sampler.set_epoch(epoch);
    }

    /// Batches per epoch on this rank.
    pub fn batches_per_epoch(&self) -> usize {
        self.sampler.batches_per_epoch()
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.shared.dataset
    }

    /// Skipped samples so far (warnings were printed as they happened).
    pub fn bad_samples(&self) -> &BadSampleLog {
        &self.shared.log
    }

    /// Samples skipped under `on_bad_sample = skip` (each replaced by another image of its
    /// aspect group): in the current epoch (counted from the last [`set_epoch`](Self::set_epoch),
    /// or rollover of an infinite sampler) and since the loader was made. Read it after an
    /// epoch's last batch for the epoch log; the counts are final once `next_batch` returned
    /// `None` (or the epoch's last batch, for an infinite sampler).
    pub fn skipped(&self) -> SkipCount {
        self.shared.log.skipped()
    }

    /// The next batch; `None` at the end of an epoch of a finite sampler (then call
    /// [`set_epoch`](Self::set_epoch)). An error names the image it came from.
    pub fn next_batch(&mut self) -> Option<Result<Batch<T>>> {
        loop {
            if self.running.is_none() {
                let pos = self.sampler.state();
                let jobs: Vec<(SamplerState, Vec<usize>)> = self
                    .sampler
                    .remaining()
                    .into_iter()
                    .enumerate()
                    .map(|(k, b)| {
                        (
                            SamplerState {
                                epoch: pos.epoch,
                                batch: pos.batch + k as u64,
                            },
                            b,
                        )
                    })
                    .collect();
                if jobs.is_empty() {
                    if self.sampler.is_infinite() {
                        self.shared.log.start_epoch();
                        self.sampler.set_epoch(pos.epoch + 1);
                        continue;
                    }
                    return None;
                }
                self.running = Some(self.spawn(jobs));
            }
            let run = self.running.as_mut().expect("started above");
            if run.next >= run.jobs.len() {
                self.running = None;
                let e = self.sampler.state().epoch;
                if self.sampler.is_infinite() {
                    self.shared.log.start_epoch();
                    self.sampler.set_epoch(e + 1);
                    continue;
                }
                return None;
            }
            let k = run.next;
            run.next += 1;
            let result = if run.receivers.is_empty() {
                let (pos, idx) = &run.jobs[k];
                self.shared.make_batch(*pos, idx)
            } else {
                let w = k % run.receivers.len();
                run.receivers[w].recv().unwrap_or_else(|_| {
                    Err(DataError::Config(
                        "a loader worker stopped unexpectedly".into(),
                    ))
                })
            };
            let pos = run.jobs[k].0;
            self.sampler.restore(SamplerState {
                epoch: pos.epoch,
                batch: pos.batch + 1,
            });
            if result.is_err() {
                self.running = None;
            }
            return Some(result);
        }
    }

    fn spawn(&self, jobs: Vec<(SamplerState, Vec<usize>)>) -> Running<T> {
        let jobs = Arc::new(jobs);
        // `check` refuses larger values; a library caller's are capped rather than let a
        // thread or channel allocation abort the process.
        let workers = self.shared.opts.workers.min(limits::MAX_WORKERS);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx): (SyncSender<Result<Batch<T>>>, _) =
                sync_channel(self.shared.opts.prefetch.clamp(1, limits::MAX_PREFETCH));
            let shared = Arc::clone(&self.shared);
            let jobs = Arc::clone(&jobs);
            let h = std::thread::Builder::new()
                .name(format!("mmrun-data-{w}"))
                .spawn(move || {
                    for k in (w..jobs.len()).step_by(workers) {
                        let (pos, idx) = &jobs[k];
                        let b = shared.make_batch(*pos, idx);
                        let stop = b.is_err();
                        if tx.send(b).is_err() || stop {
                            return;
                        }
                    }
                });
            match h {
                Ok(h) => {
                    receivers.push(rx);
                    handles.push(h);
                }
                // No thread: fall back to the calling thread for everything.
                Err(_) => {
                    receivers.clear();
                    break;
                }
            }
        }
        Running {
            receivers,
            handles,
            jobs,
            next: 0,
        }
    }
}
