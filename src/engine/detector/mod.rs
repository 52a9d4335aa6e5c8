//! The recipe's detector as a [`Task`] (model graph + data loaders + evaluator), the one
//! place where `mmrun exec`/`mmrun test` turn `model` and `data` sections into something the
//! runner can drive.
//!
//! The runner owns the [`ParamSet`]; each train step is a [`TrainStep`] on the loader's next
//! batch (a two-stage detector's step makes its second stage's feeds first). Evaluation runs
//! the eval graph over the val split, decodes ([`eval`]: post-processing, an RPN's proposals,
//! a two-stage detector's second stage) and scores with the eval hook's `metric`: COCO bbox
//! mAP or proposal recall against the val annotation file, or VOC mAP against the val records
//! (so VOC XML sets work too).
//!
//! In a data-parallel run each rank trains on its slice of every global batch and evaluates
//! a shard of the val set; the shards' detections are gathered on every rank, in the
//! sequential order of one process, before the metric (mmdetection's `collect_results`).
//!
//! Graphs run on the [`Device`] the task was built for (`--device cpu|cuda:N|wgpu`): the CPU
//! reference backend, which reads the parameters in place, or, with the `cuda` or `wgpu`
//! feature, a GPU.
//! Parameters live on the host either way (the runner's optimizer updates them there); a GPU
//! run uploads them.

mod eval;
pub mod pictures;

use eval::voc_map;

use crate::backend::Device;
use crate::data::config::{DataConfig, DatasetConfig, SamplerConfig};
use crate::data::{
    BadSampleLog, BatchSampler, Dataset, Loader, LoaderOptions, SamplerState, build_dataset,
};
use crate::dist::Dist;
use crate::engine::device_params::DeviceParams;
use crate::engine::on_device::RunGraph;
use crate::engine::params::ParamSet;
use crate::engine::step::{ShapeKey, TrainStep};
use crate::engine::task::{Metrics, Task, TaskError, TrainOutput};
use crate::eval::coco::{CocoGt, CocoParams, Detection};
use crate::eval::{MetricKind, metric_names};
use crate::ir::{HostTensor, Precision};
use crate::model::assign::ImageGt;
use crate::model::config::DetectorConfig;
use crate::model::net::{Detector, HeadOutputs};
use crate::model::postprocess::to_coco;
use crate::model::target::{DenseTargets, PaddedShapes, TargetBuilder};
use crate::util::progress::Progress;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// An eval graph with what post-processing needs to read its outputs.
struct EvalGraph {
    exec: Box<dyn RunGraph>,
    heads: Vec<HeadOutputs>,
    featmap_sizes: Vec<(usize, usize)>,
}

/// The val split: its dataset, pipeline, evaluator and (for the COCO evaluators) ground truth.
struct ValSet {
    dataset: Arc<Dataset>,
    pipeline: Arc<crate::data::Pipeline>,
    opts: LoaderOptions,
    batch: usize,
    metric: MetricKind,
    /// The annotation file as COCO ground truth; `None` for VOC mAP, which reads the records.
    gt: Option<CocoGt>,
}

/// A detector with its train loader and val set.
pub struct DetectorTask {
    /// The detector and its train graphs on the task's device.
    step: TrainStep,
    train: Loader<DenseTargets>,
    eval_graphs: HashMap<ShapeKey, EvalGraph>,
    /// A two-stage detector's second stage at test time, by the first stage's batch shape.
    rcnn_graphs: HashMap<ShapeKey, Box<dyn RunGraph>>,
    val: Option<ValSet>,
    /// The epoch of the last `set_epoch`.
    epoch: u64,
    results: Option<Vec<crate::model::postprocess::CocoDetection>>,
    /// The image ids the last `evaluate` saw, in its order (what `draw_results` draws).
    evaluated: Vec<u64>,
}

/// One evaluated image's detections, as ranks exchange them.
#[derive(serde::Serialize, serde::Deserialize)]
struct ImageResult {
    img_id: u64,
    dets: Vec<crate::model::postprocess::CocoDetection>,
}

fn err(e: impl std::fmt::Display) -> TaskError {
    TaskError(e.to_string())
}

fn dataset_of(
    data: &DataConfig,
    which: &str,
) -> Result<Option<(Dataset, crate::data::Pipeline)>, String> {
    let cfg: Option<&DatasetConfig> = match which {
        "train" => data.train.as_ref(),
        _ => data.val.as_ref().or(data.test.as_ref()),
    };
    let Some(cfg) = cfg else { return Ok(None) };
    let log = BadSampleLog::default();
    build_dataset(cfg, data.on_bad_sample, &log)
        .map(Some)
        .map_err(|e| format!("data.{which}: {e}"))
}

/// Build the task and its parameters from the plan's model and data; its graphs run on
/// `device` in `precision`, its evaluation scores with `metric`; with `dist`, as one rank of
/// a data-parallel run (`data.samples_per_gpu` images per rank).
pub fn build_task_on(
    model: &DetectorConfig,
    data: &DataConfig,
    seed: u64,
    metric: MetricKind,
    device: Device,
    precision: Precision,
    dist: Option<Dist>,
) -> Result<(Box<dyn Task>, ParamSet), String> {
    let (rank, world) = crate::dist::rank_world(dist.as_ref());
    let detector = (Detector::new(model.clone()).map_err(|e| e.to_string())?)
        .with_precision(precision)
        .with_ranks(world);
    let (train_ds, train_pipe) = dataset_of(data, "train")?
        .ok_or("the recipe has no `data.train` dataset: there is nothing to train on")?;
    let opts = LoaderOptions::from_config(data, &train_pipe, seed);
    let sampler = BatchSampler::new(
        &data.sampler,
        train_ds.aspect_groups(),
        data.samples_per_gpu,
        rank,
        world,
        seed,
    )
    .map_err(|e| format!("data.sampler: {e}"))?;
    let target = loader_targets(detector.target_builder().clone());
    let train = Loader::new(
        Arc::new(train_ds),
        Arc::new(train_pipe),
        sampler,
        target,
        opts,
    );

    let val = match dataset_of(data, "val")? {
        Some((ds, pipe)) => {
            let opts = LoaderOptions::from_config(data, &pipe, seed);
            let ann = match data.val.as_ref().or(data.test.as_ref()) {
                Some(c) => PathBuf::from(&c.params().ann_file),
                None => unreachable!("dataset_of found it"),
            };
            let gt = match metric {
                MetricKind::Voc => None,
                _ => Some(
                    CocoGt::from_json_path(&ann)
                        .map_err(|e| format!("data.val: {}: {e}", ann.display()))?,
                ),
            };
            Some(ValSet {
                dataset: Arc::new(ds),
                pipeline: Arc::new(pipe),
                opts,
                batch: data.samples_per_gpu,
                metric,
                gt,
            })
        }
        None => None,
    };

    let step = TrainStep::new(detector, device).with_dist(dist);
    let params = step.init_params(seed).map_err(|e| e.to_string())?;
    let task = DetectorTask {
        step,
        train,
        eval_graphs: HashMap::new(),
        rcnn_graphs: HashMap::new(),
        val,
        epoch: 0,
        results: None,
        evaluated: Vec::new(),
    };
    Ok((Box::new(task), params))
}

impl Task for DetectorTask {
    fn iters_per_epoch(&self) -> u64 {
        self.train.batches_per_epoch() as u64
    }

    fn trains_off_host(&self) -> bool {
        !matches!(self.step.device(), crate::backend::Device::Cpu)
    }

    fn keep_params_on_device(&mut self) -> bool {
        self.step.keep_params_on_device()
    }

    fn device_params(&mut self) -> Option<&mut dyn DeviceParams> {
        self.step.device_params()
    }

    fn set_epoch(&mut self, epoch: u64) {
        // The sampler was seeded from `runtime.seed` when the loader was built.
        self.epoch = epoch;
        self.train.set_epoch(epoch);
    }

    fn train_step(
        &mut self,
        params: &mut ParamSet,
        inner_iter: u64,
        loss_scale: f64,
    ) -> Result<TrainOutput, TaskError> {
        // The runner reseeds the epoch also when resuming into its middle: continue from the
        // batch it asks for, not from the epoch's first.
        let want = SamplerState {
            epoch: self.epoch,
            batch: inner_iter,
        };
        if self.train.state() != want {
            self.train.restore(want);
        }
        let t0 = Instant::now();
        let batch = self
            .train
            .next_batch()
            .ok_or_else(|| {
                err(format!(
                    "the train loader ran out of batches at iteration {inner_iter} of the epoch"
                ))
            })?
            .map_err(err)?;
        let data_time = t0.elapsed().as_secs_f64();
        let img = HostTensor::f32(batch.shape.to_vec(), batch.images).map_err(err)?;
        let out = (self.step)
            .run(params, img, &batch.targets, loss_scale)
            .map_err(err)?;
        Ok(TrainOutput {
            losses: out.losses,
            data_time,
        })
    }

    fn evaluate(&mut self, params: &ParamSet, limit: Option<u64>) -> Result<Metrics, TaskError> {
        let Some(val) = &self.val else {
            return Err(err(
                "the recipe has no `data.val` dataset to evaluate on; remove the eval hook",
            ));
        };
        let (rank, world) = crate::dist::rank_world(self.step.dist());
        let sampler = BatchSampler::new(
            &SamplerConfig::SequentialSampler {},
            val.dataset.aspect_groups(),
            val.batch,
            rank,
            world,
            0,
        )
        .map_err(err)?;
        // The sampler fills the last batch with repeats (dropped after); the bar counts images.
        let sampler_batches = sampler.batches_per_epoch();
        let cat_ids = val.dataset.cat_ids.clone();
        // Proposals are written as category 1, as mmdetection's `_proposal2json` does.
        let result_cats = match self.step.detector().cfg.is_proposal_net() {
            true => vec![1],
            false => cat_ids.clone(),
        };
        let mut loader: Loader<()> = Loader::new(
            val.dataset.clone(),
            val.pipeline.clone(),
            sampler,
            Arc::new(|_, _| Ok(())),
            val.opts.clone(),
        );
        // This rank's images, batch by batch, in sampler order.
        let mut shard: Vec<Vec<ImageResult>> = Vec::new();
        let mut done = 0u64;
        // Counted in images, as mmcv's test loop counts them; one bar, on the first rank.
        let batch_size = val.batch as u64;
        let batches = (sampler_batches as u64).min(limit.unwrap_or(u64::MAX));
        let to_evaluate = (batches * batch_size).min(val.dataset.len().div_ceil(world) as u64);
        let bar = Progress::new("eval", "img", 0, to_evaluate, rank == 0);
        while limit.is_none_or(|l| done < l) {
            let Some(batch) = loader.next_batch() else {
                break;
            };
            let batch = batch.map_err(err)?;
            done += 1;
            bar.set((done * batch_size).min(to_evaluate));
            let [n, _, h, w] = batch.shape;
            let key = (n, h, w);
            self.eval_graph(key)?;
            let mut feeds = std::collections::BTreeMap::new();
            feeds.insert(
                "img".to_string(),
                HostTensor::f32(batch.shape.to_vec(), batch.images).map_err(err)?,
            );
            let g = self.eval_graphs.get_mut(&key).expect("built above");
            let out = g.exec.run(params, &feeds).map_err(err)?;
            let per_batch = self.batch_detections(params, key, &out, &batch.metas)?;
            let g = &self.eval_graphs[&key];
            let mut images = Vec::with_capacity(n);
            for (i, meta) in batch.metas.iter().enumerate() {
                let d = match &per_batch {
                    Some(dets) => dets[i].clone(),
                    None => self.decode(g, &out, n, i, meta)?,
                };
                images.push(ImageResult {
                    img_id: meta.img_id,
                    dets: to_coco(&d, meta.img_id, &result_cats).map_err(err)?,
                });
            }
            shard.push(images);
        }
        bar.clear();
        let (img_ids, dets) = self.collect_results(shard)?;
        let evaluated = img_ids.iter().map(|&i| i as u64).collect();
        let Some(val) = &self.val else {
            unreachable!("checked above")
        };
        let eval_dets: Vec<Detection> = dets
            .iter()
            .map(|d| Detection {
                image_id: d.image_id as i64,
                category_id: d.category_id as i64,
                bbox: d.bbox,
                score: d.score,
            })
            .collect();
        let metrics = match (val.metric, &val.gt) {
            (MetricKind::Voc, _) => voc_map(&val.dataset, &img_ids, &dets, &cat_ids)?,
            (MetricKind::ProposalFast, Some(gt)) => {
                let (gts, props) = crate::eval::recall::per_image(gt, &img_ids, &eval_dets);
                let thrs = crate::eval::recall::default_iou_thrs();
                (crate::eval::recall::proposal_fast_metrics(&gts, &props, &[100, 300, 1000], &thrs))
                    .map_err(err)?
                    .into_iter()
                    .collect()
            }
            (kind, Some(gt)) => {
                let proposal = kind != MetricKind::Bbox;
                let cocop = CocoParams {
                    img_ids: Some(img_ids),
                    cat_ids: Some(cat_ids.iter().map(|&c| c as i64).collect()),
                    ..if proposal {
                        CocoParams::proposal(&[100, 300, 1000])
                    } else {
                        CocoParams::default()
                    }
                };
                let report = crate::eval::coco::evaluate(gt, &eval_dets, &cocop).map_err(err)?;
                if proposal {
                    report.proposal_metrics().into_iter().collect()
                } else {
                    report.metrics().into_iter().collect()
                }
            }
            (_, None) => unreachable!("COCO evaluators load the ground truth"),
        };
        self.results = Some(dets);
        self.evaluated = evaluated;
        Ok(metrics)
    }

    fn results_json(&self) -> Option<serde_json::Value> {
        self.results
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
    }

    fn draw_results(
        &self,
        limit: Option<usize>,
        score_thr: f64,
        each: &mut dyn FnMut(&str, crate::viz::Picture) -> Result<(), crate::viz::PictureError>,
    ) -> Result<usize, TaskError> {
        self.draw_evaluated(limit, score_thr, each)
    }

    fn results_name(&self) -> &'static str {
        match self.step.detector().cfg.is_proposal_net() {
            true => "proposals.json",
            false => "bbox.json",
        }
    }

    fn skipped_samples(&self) -> crate::data::SkipCount {
        self.train.skipped()
    }

    fn metric_names(&self) -> Vec<String> {
        metric_names(self.val.as_ref().map_or(MetricKind::Bbox, |v| v.metric))
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "train_loader": self.train.state() })
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), TaskError> {
        if let Some(s) = state.get("train_loader") {
            let s: SamplerState = serde_json::from_value(s.clone())
                .map_err(|e| err(format!("the checkpoint's train loader state: {e}")))?;
            self.epoch = s.epoch;
            self.train.restore(s);
        }
        Ok(())
    }
}

/// The model's target assignment as the closure the data loader's worker threads call on
/// each transformed sample (whose `meta.batch_input_shape` is the batch's shape bucket): the
/// engine hands it over, so the model does not know the data's types.
pub fn loader_targets(builder: TargetBuilder) -> crate::data::TargetFn<DenseTargets> {
    Arc::new(
        move |s: &crate::data::Sample, rng: &mut crate::util::rng::Rng| {
            let gt = ImageGt {
                bboxes: s.boxes.clone(),
                labels: s.labels.iter().map(|&l| l as usize).collect(),
                bboxes_ignore: s.ignored.clone(),
            };
            let meta = PaddedShapes {
                img_shape: (s.meta.img_shape[0], s.meta.img_shape[1]),
                pad_shape: (s.meta.pad_shape[0], s.meta.pad_shape[1]),
                batch_shape: (s.meta.batch_input_shape[0], s.meta.batch_input_shape[1]),
            };
            if let Some(limit) = builder.label_limit()
                && let Some(&l) = gt.labels.iter().find(|&&l| l >= limit)
            {
                return Err(format!("label {l} is not below num_classes = {limit}").into());
            }
            builder.targets(&gt, &meta, rng).map_err(|e| e.into())
        },
    )
}
