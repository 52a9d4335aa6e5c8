//! The one thing the Runner needs from a model and its data: a [`Task`]. It is deliberately
//! small so that the whole Runner can be tested with a tiny stand-in model, and so that the
//! detector (model + loader + metric) plugs in through one adapter.

use crate::data::SkipCount;
use crate::engine::device_params::DeviceParams;
use crate::engine::params::ParamSet;

/// Metric name → value (`bbox_mAP`, `bbox_mAP_50`, …).
pub type Metrics = indexmap::IndexMap<String, f64>;

/// What one training iteration produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainOutput {
    /// Named loss terms, in a stable order (`loss_cls`, `loss_bbox`, …). The total `loss`
    /// is computed by the runner as mmdetection does: the sum of terms whose name contains
    /// `loss`.
    pub losses: Vec<(String, f64)>,
    /// Seconds spent waiting for the batch.
    pub data_time: f64,
}

/// An error from the model or data side, carried through the runner unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(pub String);

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        TaskError(message)
    }
}

/// A model with its data: the runner calls these, in this order, and nothing else.
pub trait Task {
    /// Training iterations in one epoch (batches per epoch of the train loader).
    fn iters_per_epoch(&self) -> u64;

    /// Start (or resume into) training epoch `epoch` (0-based): reseed the sampler so the
    /// epoch's order depends only on the task's seed (given when it was built) and `epoch`.
    fn set_epoch(&mut self, epoch: u64);

    /// Forward and backward on batch `inner_iter` of the current epoch. The gradients of the
    /// loss times `loss_scale` (f16 training's loss scaling; 1 otherwise) are written into
    /// `params` (overwriting what was there); the losses reported are unscaled.
    fn train_step(
        &mut self,
        params: &mut ParamSet,
        inner_iter: u64,
        loss_scale: f64,
    ) -> Result<TrainOutput, TaskError>;

    /// Batches in one validation-loss pass (a `val` workflow phase); 0 when not supported.
    fn val_iters(&self) -> u64 {
        0
    }

    /// Losses on validation batch `i`, without gradients.
    fn val_step(&mut self, _params: &ParamSet, _i: u64) -> Result<Vec<(String, f64)>, TaskError> {
        Err(TaskError(
            "this model has no validation-loss step; remove `val` from the workflow".into(),
        ))
    }

    /// Inference over the evaluation set and its metrics. `limit` caps the number of batches
    /// (the sanity pass before training uses a couple).
    fn evaluate(&mut self, params: &ParamSet, limit: Option<u64>) -> Result<Metrics, TaskError>;

    /// Detections of the last `evaluate` in COCO results format, when the task has them
    /// (`mmrun test` writes them to `results/`).
    fn results_json(&self) -> Option<serde_json::Value> {
        None
    }

    /// Pictures of the last `evaluate`'s images, the first `limit` (all when `None`) in the
    /// order evaluated: each image's ground truth beside its predictions scoring at least
    /// `score_thr`, handed to `each` with a file name (`mmrun test --show-dir`, TensorBoard's
    /// images). Returns how many; a task without images draws none.
    fn draw_results(
        &self,
        _limit: Option<usize>,
        _score_thr: f64,
        _each: &mut dyn FnMut(&str, crate::viz::Picture) -> Result<(), crate::viz::PictureError>,
    ) -> Result<usize, TaskError> {
        Ok(0)
    }

    /// The file name `mmrun test` gives [`Task::results_json`] in `results/`.
    fn results_name(&self) -> &'static str {
        "bbox.json"
    }

    /// Metric names `evaluate` produces (checked against `save_best`/`monitor` before the run).
    fn metric_names(&self) -> Vec<String>;

    /// Training samples skipped under `on_bad_sample = skip`, this epoch and since the
    /// process started (the runner reports them at each epoch's end and in its summary).
    fn skipped_samples(&self) -> SkipCount {
        SkipCount::default()
    }

    /// Data-side state worth checkpointing (sampler, augmentation RNG), as JSON.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn load_state(&mut self, _state: &serde_json::Value) -> Result<(), TaskError> {
        Ok(())
    }

    /// Whether the task trains on a device apart from the host (a GPU), where its parameters
    /// could stay between steps.
    fn trains_off_host(&self) -> bool {
        false
    }

    /// From now on keep the parameters on the device the task trains on, between steps
    /// ([`DeviceParams`]); false where there is no such device (the CPU) or the task cannot.
    fn keep_params_on_device(&mut self) -> bool {
        false
    }

    /// The parameters kept on the device, once [`Task::keep_params_on_device`] said yes.
    fn device_params(&mut self) -> Option<&mut dyn DeviceParams> {
        None
    }
}
