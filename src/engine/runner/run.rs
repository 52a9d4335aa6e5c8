//! The training loop: workflow phases, train and val iterations, hook dispatch, checkpoint
//! requests, stop and interrupt handling.

use super::{RunError, RunSummary, Runner};
use crate::engine::hooks::{Ctx, HookPoint, IterRecord, Mode, ParamAccess, Residence, SaveRequest};
use crate::engine::interrupt;
use crate::engine::optim::LossScaler;
use crate::engine::task::TaskError;
use crate::util::units::PeriodUnit;
use std::time::Instant;

/// mmdetection's `_parse_losses`: the total is the sum of terms whose name contains `loss`.
pub(crate) fn with_total(mut losses: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let total: f64 = losses
        .iter()
        .filter(|(k, _)| k.contains("loss"))
        .map(|(_, v)| v)
        .sum();
    if !losses.iter().any(|(k, _)| k == "loss") {
        losses.push(("loss".into(), total));
    }
    losses
}

impl Runner<'_> {
    /// Call every hook at `point`, in order. Parameters kept on a device are read back
    /// before a hook that reads them, and uploaded again after one that may change them.
    pub(crate) fn call(&mut self, point: HookPoint) -> Result<(), RunError> {
        for i in 0..self.hooks.len() {
            let access = self.hooks[i].param_access(point, &self.st.progress);
            match access {
                ParamAccess::None => {}
                ParamAccess::Read => self.sync_host(false)?,
                ParamAccess::Write => self.sync_host(true)?,
            }
            let mut cx = Ctx {
                task: &mut *self.task,
                run: &mut self.st,
            };
            self.hooks[i]
                .on(point, &mut cx)
                .map_err(|error| RunError::Hook {
                    error,
                    last_checkpoint: self.last_saved.clone(),
                })?;
            if access == ParamAccess::Write {
                self.host_changed()?;
            }
        }
        if let Some(m) = self.st.metrics.take() {
            self.last_metrics = Some(m);
        }
        self.flush_messages();
        Ok(())
    }

    /// Keeps the parameters on the device the task trains on, between steps, where nothing
    /// needs the gradients on the host: data parallelism (averaged there), f16 loss scaling,
    /// or a hook that accumulates or clips them element by element.
    fn choose_residence(&mut self) {
        if !self.task.trains_off_host() {
            return;
        }
        let host_grads = if self.ddp.is_some() {
            Some("data parallelism averages the gradients there".to_string())
        } else if self.st.scaler.is_some() {
            Some("f16 loss scaling unscales the gradients there".to_string())
        } else {
            (self.hooks.iter().find(|h| h.needs_host_grads()))
                .map(|h| format!("the {} hook needs the gradients there", h.name()))
        };
        let line = match host_grads {
            Some(why) => format!("parameters: on the host, uploaded every step ({why})"),
            None if self.task.keep_params_on_device() => {
                self.st.residence = Residence::DeviceInSync;
                "parameters: kept on the device between steps (read back for checkpoints, evaluation and EMA)".into()
            }
            None => return,
        };
        self.st.messages.push(line);
    }

    /// Reads back what a device keeping the parameters has updated since the host last saw
    /// it: their values, and with `with_state` the optimizer's state too (checkpoints and
    /// uploads need it; evaluation and EMA read values only).
    pub(crate) fn sync_host(&mut self, with_state: bool) -> Result<(), RunError> {
        let values = self.st.residence == Residence::DeviceAhead;
        let state = with_state && (values || self.host_state_stale);
        if !values && !state {
            return Ok(());
        }
        let st = &mut self.st;
        let kept = self.task.device_params().ok_or_else(|| {
            RunError::Config("the parameters are kept on a device the task no longer has".into())
        })?;
        kept.download(&mut st.params, state.then_some(&mut st.optimizer))
            .map_err(|e| self.task_err(TaskError(e.to_string())))?;
        self.host_state_stale = !state && (values || self.host_state_stale);
        self.st.residence = Residence::DeviceInSync;
        Ok(())
    }

    /// The run's parameters or optimizer state changed on the host: a device keeping them
    /// uploads both again before the next step (after reading back whatever of them only it
    /// had).
    pub(crate) fn host_changed(&mut self) -> Result<(), RunError> {
        if self.st.residence == Residence::Host {
            return Ok(());
        }
        self.sync_host(true)?;
        if let Some(kept) = self.task.device_params() {
            kept.invalidate();
        }
        Ok(())
    }

    /// Without a log hook, messages still reach the user (from rank 0 only).
    fn flush_messages(&mut self) {
        let messages = std::mem::take(&mut self.st.messages);
        if self.is_main() {
            for m in messages {
                crate::errln!("{m}");
            }
        }
    }

    fn set_progress(&mut self) {
        let p = &mut self.st.progress;
        p.epoch = self.pos.epoch;
        p.iter = self.pos.iter;
        p.inner_iter = self.pos.inner;
    }

    /// Write what hooks asked for.
    fn process_saves(&mut self) -> Result<(), RunError> {
        let requests = std::mem::take(&mut self.st.save_requests);
        // Every rank holds the same state; rank 0 writes it.
        if requests.is_empty() || !self.is_main() {
            return Ok(());
        }
        let data = self.snapshot()?;
        for r in requests {
            let path = match r {
                SaveRequest::Periodic(name) => {
                    let p = self.ckpt.save(&name, &data)?;
                    self.last_saved = Some(p.clone());
                    p
                }
                SaveRequest::Best { metric, tag } => self.ckpt.save_best(&metric, &tag, &data)?,
            };
            self.st
                .messages
                .push(format!("saved checkpoint {}", path.display()));
        }
        self.flush_messages();
        Ok(())
    }

    fn task_err(&self, error: crate::engine::task::TaskError) -> RunError {
        RunError::Task {
            error,
            last_checkpoint: self.last_saved.clone(),
        }
    }

    /// Run the workflow to the end (or to a stop), calling `before_run`/`after_run`.
    pub fn run(&mut self) -> Result<RunSummary, RunError> {
        if let Err(e) = interrupt::install() {
            self.st.messages.push(format!("warning: {e}"));
        }
        if let Some(ddp) = &self.ddp {
            ddp.broadcast_params(&mut self.st.params)?;
        }
        self.choose_residence();
        self.set_progress();
        self.call(HookPoint::BeforeRun)?;
        let limit = self
            .config
            .stop_at_iter
            .map_or(self.max_iters, |s| s.min(self.max_iters));
        let mut entering = true;
        // As mmcv's runners: a train phase ends early when the run is over, but the phases
        // after it in the same cycle (validation) still run.
        let mut go = self.pos.iter < limit;
        while go {
            let (mode, period) = self.config.workflow[self.pos.phase];
            while self.pos.phase_done < period.count {
                if self.st.stop.is_some() {
                    break;
                }
                match mode {
                    Mode::Train => {
                        if self.pos.iter >= limit {
                            break;
                        }
                        self.train_iter(period.unit, &mut entering)?;
                    }
                    Mode::Val => self.val_epoch(period.unit)?,
                }
            }
            self.pos.phase = (self.pos.phase + 1) % self.config.workflow.len();
            self.pos.phase_done = 0;
            go = self.st.stop.is_none() && (self.pos.phase != 0 || self.pos.iter < limit);
        }
        let stopped = if let Some(s) = self.st.stop.clone() {
            Some(s)
        } else if self.pos.iter < self.max_iters {
            Some(format!(
                "stopped after {} of {} iterations as asked",
                self.pos.iter, self.max_iters
            ))
        } else {
            None
        };
        if let Some(s) = &stopped {
            self.st.messages.push(s.clone());
        }
        if let Some(ddp) = &self.ddp {
            let digest = ddp.check_in_sync(&self.st.params)?;
            self.st.messages.push(format!(
                "the weights are identical on all {} ranks (sha256 {digest}…)",
                ddp.dist().world()
            ));
        }
        self.call(HookPoint::AfterRun)?;
        // Whoever holds the runner reads the trained parameters from the host.
        self.sync_host(true)?;
        if let Some(reason) = self.st.halt.take() {
            let checkpoint = self.checkpoint_here()?;
            return Err(RunError::Halted {
                iter: self.pos.iter,
                reason,
                checkpoint,
            });
        }
        Ok(RunSummary {
            iters: self.pos.iter,
            epochs: self.pos.epoch,
            last_metrics: self.last_metrics.clone(),
            best: self.st.best.clone(),
            stopped,
            last_checkpoint: self.last_saved.clone(),
            skipped_samples: self.task.skipped_samples().total,
        })
    }

    /// One training iteration, with the epoch boundary after it when it is the last of one.
    fn train_iter(&mut self, unit: PeriodUnit, entering: &mut bool) -> Result<(), RunError> {
        self.st.mode = Mode::Train;
        self.set_progress();
        if self.pos.inner == 0 || *entering {
            *entering = false;
            self.call(HookPoint::BeforeTrainEpoch)?;
        }
        let t0 = Instant::now();
        self.call(HookPoint::BeforeTrainIter)?;
        let loss_scale = self.st.scaler.as_ref().map(LossScaler::scale);
        let out = self
            .task
            .train_step(
                &mut self.st.params,
                self.pos.inner,
                loss_scale.unwrap_or(1.0),
            )
            .map_err(|e| self.task_err(e))?;
        let mut losses = with_total(out.losses);
        if let Some(ddp) = &self.ddp {
            ddp.average_gradients(&mut self.st.params)?;
            ddp.broadcast_buffers(&mut self.st.params)?;
            let mut v: Vec<f64> = losses.iter().map(|(_, v)| *v).collect();
            ddp.mean(&mut v)?;
            losses.iter_mut().zip(v).for_each(|((_, l), m)| *l = m);
        }
        self.st.record = IterRecord {
            losses,
            data_time: out.data_time,
            ..IterRecord::default()
        };
        self.st.record.time = t0.elapsed().as_secs_f64();
        self.call(HookPoint::AfterTrainIter)?;
        self.pos.iter += 1;
        self.pos.inner += 1;
        if unit == PeriodUnit::Iters {
            self.pos.phase_done += 1;
        }
        if self.pos.inner == self.ipe {
            let skipped = self.task.skipped_samples();
            if skipped.epoch > 0 {
                self.st.messages.push(format!(
                    "epoch {}: training samples skipped: {} (on_bad_sample = skip); {} since this process started",
                    self.pos.epoch + 1,
                    skipped.epoch,
                    skipped.total
                ));
            }
            // Hooks see the coordinates of the epoch's last iteration.
            self.call(HookPoint::AfterTrainEpoch)?;
            self.pos.epoch += 1;
            self.pos.inner = 0;
            if unit == PeriodUnit::Epochs {
                self.pos.phase_done += 1;
            }
        }
        self.process_saves()?;
        let mut halt = self.st.halt.take();
        let mut stop = [interrupt::requested() || self.st.interrupt || halt.is_some()];
        if let Some(ddp) = &self.ddp {
            // Every rank stops after the same iteration, or the others would wait forever.
            ddp.any(&mut stop)?;
            if stop[0] && halt.is_none() && !interrupt::requested() && !self.st.interrupt {
                halt = Some("another rank stopped".into());
            }
        }
        if stop[0] {
            interrupt::clear();
            self.st.interrupt = false;
            let checkpoint = self.checkpoint_here()?;
            return Err(match halt {
                Some(reason) => RunError::Halted {
                    iter: self.pos.iter,
                    reason,
                    checkpoint,
                },
                None => RunError::Interrupted {
                    iter: self.pos.iter,
                    checkpoint,
                },
            });
        }
        Ok(())
    }

    /// A checkpoint of the current position for a stop: the periodic one this iteration
    /// already wrote, else a new `iter_N` (a good checkpoint is never written twice).
    fn checkpoint_here(&mut self) -> Result<std::path::PathBuf, RunError> {
        if let Some(p) = &self.last_saved
            && crate::engine::checkpoint::position(p) == Some(self.pos.iter)
        {
            return Ok(p.clone());
        }
        let name = format!("iter_{}", self.pos.iter);
        if !self.is_main() {
            return Ok(self.config.checkpoint.dir.join(name));
        }
        let data = self.snapshot()?;
        let path = self.ckpt.save(&name, &data)?;
        self.last_saved = Some(path.clone());
        Ok(path)
    }

    /// A validation-loss pass: a whole val epoch for `N epochs` phases, one batch per unit for
    /// `N iters` phases.
    fn val_epoch(&mut self, unit: PeriodUnit) -> Result<(), RunError> {
        self.st.mode = Mode::Val;
        let n = match unit {
            PeriodUnit::Epochs => self.task.val_iters(),
            PeriodUnit::Iters => 1,
        };
        // Iteration phases walk through the val set batch by batch across calls.
        let start = match unit {
            PeriodUnit::Epochs => 0,
            PeriodUnit::Iters => self.pos.phase_done % self.task.val_iters().max(1),
        };
        self.set_progress();
        if self.pos.inner > 0 || self.pos.iter > 0 {
            // Report against the last finished train iteration.
            self.st.progress.iter = self.pos.iter.saturating_sub(1);
            self.st.progress.inner_iter = self.pos.inner.saturating_sub(1);
        }
        self.call(HookPoint::BeforeValEpoch)?;
        for i in start..start + n {
            self.call(HookPoint::BeforeValIter)?;
            self.sync_host(false)?;
            let losses = self
                .task
                .val_step(&self.st.params, i)
                .map_err(|e| self.task_err(e))?;
            self.st.record = IterRecord {
                losses: with_total(losses),
                ..Default::default()
            };
            self.call(HookPoint::AfterValIter)?;
        }
        self.call(HookPoint::AfterValEpoch)?;
        self.pos.phase_done += 1;
        self.st.mode = Mode::Train;
        Ok(())
    }
}
