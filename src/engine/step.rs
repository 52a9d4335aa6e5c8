//! One training step of a detector on a device: the step graph of the batch's shape (built
//! once per `(images, height, width)` and kept: graphs have static shapes), run against the
//! parameters, its gradients and running statistics moved into them. The detector task runs it
//! on loader batches, `mmrun bench train` on a fixed synthetic batch; the optimizer update is
//! the caller's. In a data-parallel run the step averages the loss normalisers the model
//! wants averaged over ranks ([`LossNormalisers`]); the gradients are averaged by the runner.
//! A two-stage detector's step feeds its second stage half-way through the run
//! ([`LateFeeds`]), from the RPN maps of the same run.
//!
//! On a GPU the step can keep the parameters on the device between steps
//! ([`TrainStep::keep_params_on_device`]): its graphs of every batch shape then share one
//! [`KeptStore`], the gradients stay where they were computed, and the step is the runner's
//! [`DeviceParams`].

use super::device_params::{DeviceParams, KeptStore};
use super::executor::{GraphRunError, LateFeeds};
use super::on_device::{RunGraph, executor_on};
use super::optim::Optimizer;
use super::params::{ParamError, ParamSet};
use crate::backend::Device;
use crate::dist::{Dist, DistError};
use crate::graph::GraphError;
use crate::ir::{DType, HostTensor, Precision};
use crate::model::net::{Detector, FeedError, GraphMode, LOSS_SCALE, LossNormalisers};
use crate::model::target::DenseTargets;
use std::collections::HashMap;
use std::time::Instant;

/// Batch size and padded `(h, w)`: the key of a kept graph.
pub type ShapeKey = (usize, usize, usize);

/// Why a training step (or the parameters it starts from) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The images are not one `[n, 3, h, w]` batch.
    #[error("images of shape {shape:?}, not [n, 3, h, w]")]
    ImageShape { shape: Vec<usize> },
    /// A loss scale other than 1 for a graph that does not scale its loss.
    #[error("a loss scale of {scale} in {precision} training: only fp16 scales its loss")]
    LossScale { scale: f64, precision: Precision },
    /// The small train graph that declares the parameters could not be built.
    #[error("model: {0}")]
    Model(#[source] GraphError),
    /// The train graph of a batch shape could not be built.
    #[error("building the train graph for {key:?}: {source}")]
    Build {
        key: ShapeKey,
        #[source]
        source: GraphError,
    },
    /// The batch's feeds (or a two-stage detector's second-stage values) could not be made.
    #[error(transparent)]
    Feeds(#[from] FeedError),
    /// The loss normalisers could not be averaged over the ranks.
    #[error(transparent)]
    Dist(#[from] DistError),
    /// The graph run failed.
    #[error(transparent)]
    Run(#[from] GraphRunError),
    /// The run's results could not be moved into the parameters.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// A loss the detector names is not an output of its train graph.
    #[error("the train graph has no scalar output `{0}`")]
    MissingLoss(String),
}

/// What one step produced.
#[derive(Clone, Debug, Default)]
pub struct StepOutput {
    /// The detector's loss terms in a stable order ([`Detector::loss_names`]).
    pub losses: Vec<(String, f64)>,
    /// Seconds outside the graph run: the feeds, and the results moved into the parameters.
    pub host_s: f64,
}

/// A detector's train graphs on one device.
pub struct TrainStep {
    detector: Detector,
    device: Device,
    graphs: HashMap<ShapeKey, Box<dyn RunGraph>>,
    profile: bool,
    /// The other ranks of a data-parallel run.
    dist: Option<Dist>,
    /// The parameters kept on the device between steps, when they are.
    kept: Option<KeptStore>,
    /// The batch shape of the last step: its graph holds the gradients a kept step left.
    last: Option<ShapeKey>,
    /// The last step's `Σ g²`, once asked for.
    sum_squares: Option<f64>,
}

impl TrainStep {
    pub fn new(detector: Detector, device: Device) -> Self {
        TrainStep {
            detector,
            device,
            graphs: HashMap::new(),
            profile: false,
            dist: None,
            kept: None,
            last: None,
            sum_squares: None,
        }
    }

    /// From now on keep the parameters, the optimizer's state and the gradients on the device
    /// between steps; the caller updates them through [`DeviceParams`]. Returns false, and
    /// changes nothing, on the CPU (where they already are).
    pub fn keep_params_on_device(&mut self) -> bool {
        if matches!(self.device, Device::Cpu) {
            return false;
        }
        self.kept.get_or_insert_with(KeptStore::default);
        true
    }

    /// The parameters kept on the device, when [`TrainStep::keep_params_on_device`] is on.
    pub fn device_params(&mut self) -> Option<&mut dyn DeviceParams> {
        match self.kept {
            Some(_) => Some(self),
            None => None,
        }
    }

    /// The graph of the last step, with the store: what [`DeviceParams`] works on.
    fn last_step(&mut self) -> Result<(&mut dyn RunGraph, &mut KeptStore), GraphRunError> {
        let none = || GraphRunError::NoValue("the gradients (no step ran)".into());
        let key = self.last.ok_or_else(none)?;
        let (Some(exec), Some(store)) = (self.graphs.get_mut(&key), self.kept.as_mut()) else {
            return Err(none());
        };
        Ok((exec.as_mut(), store))
    }

    /// The other ranks of the data-parallel run, if any.
    pub fn dist(&self) -> Option<&Dist> {
        self.dist.as_ref()
    }

    /// Run as one rank of `dist`: loss normalisers are averaged over its ranks.
    pub fn with_dist(mut self, dist: Option<Dist>) -> Self {
        self.dist = dist;
        self
    }

    /// The batch's loss normalisers, averaged over the ranks where the model asks for it.
    fn normalisers(&self, targets: &[DenseTargets]) -> Result<LossNormalisers, StepError> {
        let mut n = self.detector.loss_normalisers(targets);
        if let Some(d) = self.dist.as_ref().filter(|_| n.mean_over_ranks) {
            d.all_reduce_sum_f64(&mut n.counts)?;
            let w = d.world() as f64;
            n.counts.iter_mut().for_each(|c| *c /= w);
        }
        Ok(n)
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter and buffer of the detector, initialised from `seed`. Parameter shapes
    /// do not depend on the input size, so a small train graph declares them (a train graph:
    /// eval graphs declare every parameter frozen).
    pub fn init_params(&self, seed: u64) -> Result<ParamSet, StepError> {
        let probe = self
            .detector
            .build(GraphMode::Train, 1, (64, 64), DType::F32)
            .map_err(StepError::Model)?;
        Ok(ParamSet::init(&probe.graph, seed))
    }

    /// Per-op timing of every graph, now and later built (see `Executor::set_profile`).
    pub fn set_profile(&mut self, on: bool) {
        self.profile = on;
        self.graphs.values_mut().for_each(|g| g.set_profile(on));
    }

    /// The graph kept for a batch shape, if one ran.
    pub fn graph(&self, key: ShapeKey) -> Option<&dyn RunGraph> {
        self.graphs.get(&key).map(|g| g.as_ref())
    }

    /// One step on `images` (`[n, 3, h, w]`, padded) with each image's targets. The gradients
    /// are of the loss times `loss_scale` (f16 training's loss scaling; 1 otherwise).
    pub fn run(
        &mut self,
        params: &mut ParamSet,
        images: HostTensor,
        targets: &[DenseTargets],
        loss_scale: f64,
    ) -> Result<StepOutput, StepError> {
        let t0 = Instant::now();
        let &[n, _, h, w] = images.shape.as_slice() else {
            return Err(StepError::ImageShape {
                shape: images.shape,
            });
        };
        let norms = self.normalisers(targets)?;
        let mut feeds = (self.detector).train_feeds(images, targets, (h, w), &norms)?;
        if self.detector.precision().needs_loss_scale() {
            feeds.insert(
                LOSS_SCALE.into(),
                HostTensor::scalar(DType::F32, loss_scale),
            );
        } else if loss_scale != 1.0 {
            return Err(StepError::LossScale {
                scale: loss_scale,
                precision: self.detector.precision(),
            });
        }
        self.graph_for((n, h, w))?;
        let (exec, detector) = (self.graphs.get_mut(&(n, h, w)), &self.detector);
        let exec = exec.expect("built above");
        let t1 = Instant::now();
        // A two-stage detector's second-stage feeds are made half-way through the run, from
        // its RPN maps: proposals, sampling and targets on the host (`docs/two-stage.md`).
        // The sampled labels are kept for the second stage's accuracy (`acc`) after the run.
        let mut sampled = None;
        let mut make = |rpn: &std::collections::BTreeMap<String, HostTensor>| {
            let feeds =
                (detector.rcnn_train_feeds(rpn, targets, (h, w))).map_err(|e| e.to_string())?;
            sampled = Some(
                detector
                    .rcnn_sampled_labels(&feeds)
                    .map_err(|e| e.to_string())?,
            );
            Ok(feeds)
        };
        let late = detector.is_two_stage().then(|| {
            let (names, after) = detector.rcnn_late_feeds();
            LateFeeds {
                names,
                after,
                make: &mut make,
            }
        });
        let mut out = match &mut self.kept {
            Some(store) => exec.run_kept(store, params, &feeds, late)?,
            None => exec.run_with_late_feeds(params, &feeds, late)?,
        };
        let t2 = Instant::now();
        if self.kept.is_some() {
            params.take_buffers(&mut out)?;
        } else {
            let replaced = params.take_run(&mut out)?;
            exec.recycle(replaced);
        }
        self.last = Some((n, h, w));
        self.sum_squares = None;
        let mut losses = (self.detector.loss_names().iter())
            .map(|k| {
                out.scalar(k)
                    .map(|v| (k.to_string(), v))
                    .ok_or_else(|| StepError::MissingLoss(k.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(sampled) = &sampled {
            // mmdetection logs it after `loss_cls` (`BBoxHead.loss`); not a loss, so not summed.
            let acc = self.detector.rcnn_accuracy(&out.outputs, sampled)?;
            let at = losses
                .iter()
                .position(|(k, _)| k == "loss_cls")
                .map_or(losses.len(), |i| i + 1);
            losses.insert(at, ("acc".into(), acc));
        }
        Ok(StepOutput {
            losses,
            host_s: (t1 - t0).as_secs_f64() + t2.elapsed().as_secs_f64(),
        })
    }

    fn graph_for(&mut self, key: ShapeKey) -> Result<&mut Box<dyn RunGraph>, StepError> {
        if !self.graphs.contains_key(&key) {
            let built = (self.detector)
                .build(GraphMode::Train, key.0, (key.1, key.2), DType::F32)
                .map_err(|source| StepError::Build { key, source })?;
            let mut exec = executor_on(&self.device, built.graph);
            exec.set_profile(self.profile);
            exec.set_dist(self.dist.clone());
            self.graphs.insert(key, exec);
        }
        Ok(self.graphs.get_mut(&key).expect("inserted above"))
    }
}

impl DeviceParams for TrainStep {
    fn grad_sum_squares(&mut self, params: &ParamSet) -> Result<f64, GraphRunError> {
        if let Some(v) = self.sum_squares {
            return Ok(v);
        }
        let (exec, store) = self.last_step()?;
        let v = exec.kept_grad_sum_squares(store, params)?;
        self.sum_squares = Some(v);
        Ok(v)
    }

    fn first_non_finite_grad(
        &mut self,
        params: &ParamSet,
    ) -> Result<Option<(String, f32)>, GraphRunError> {
        self.last_step()?.0.kept_first_non_finite_grad(params)
    }

    fn update(
        &mut self,
        optimizer: &mut Optimizer,
        params: &ParamSet,
        grad_scale: f64,
    ) -> Result<(), GraphRunError> {
        let (exec, store) = self.last_step()?;
        exec.kept_update(store, optimizer, params, grad_scale)
    }

    fn download(
        &mut self,
        params: &mut ParamSet,
        optimizer: Option<&mut Optimizer>,
    ) -> Result<(), GraphRunError> {
        match self.last_step() {
            Ok((exec, store)) => exec.kept_download(store, params, optimizer),
            // Nothing ran on the device yet: the host is current.
            Err(_) => Ok(()),
        }
    }

    fn invalidate(&mut self) {
        if let Some(store) = &mut self.kept {
            store.clear();
        }
    }
}
