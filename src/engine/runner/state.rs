//! Checkpoint data from the runner and back: resume restores everything, `load_from` only
//! weights.

use super::{Position, RunError, Runner};
use crate::engine::checkpoint::{
    CheckpointData, CheckpointError, LoadReport, PositionError, RunState, Tensors,
    load_weights_into, params_to_tensors,
};
use crate::engine::hooks::HookPoint;
use crate::engine::optim::LossScaler;
use crate::model::weights::LoadRule;
use std::collections::BTreeMap;
use std::path::Path;

impl Runner<'_> {
    /// Everything a checkpoint holds, at the current position.
    pub(crate) fn snapshot(&mut self) -> Result<CheckpointData, RunError> {
        self.call(HookPoint::BeforeSaveCheckpoint)?;
        self.sync_host(true)?;
        let st = &self.st;
        let mut hooks = BTreeMap::new();
        let mut hook_tensors = Tensors::new();
        for h in &self.hooks {
            hooks.insert(h.name().to_string(), h.state());
            for (k, t) in h.state_tensors() {
                hook_tensors.insert(format!("{}/{k}", h.name()), t);
            }
        }
        let optimizer = self.config.checkpoint.save_optimizer.then(|| {
            st.optimizer
                .state_tensors(&st.params)
                .into_iter()
                .map(|(k, (shape, data))| (k, crate::engine::checkpoint::Tensor { shape, data }))
                .collect()
        });
        Ok(CheckpointData {
            weights: params_to_tensors(&st.params),
            optimizer,
            ema: st.ema.as_ref().map(params_to_tensors),
            hooks: (!hook_tensors.is_empty()).then_some(hook_tensors),
            state: RunState {
                mmrun_version: env!("CARGO_PKG_VERSION").to_string(),
                recipe_hash: self.config.recipe_hash.clone(),
                epoch: self.pos.epoch,
                iter: self.pos.iter,
                inner_iter: self.pos.inner,
                optimizer: st.optimizer.state_json(&st.params),
                schedule: serde_json::Value::Null,
                rng: BTreeMap::new(),
                sampler: self.task.state(),
                loss_scaler: st.scaler.as_ref().map(LossScaler::state_dict),
                best: st.best.clone(),
                hooks,
                workflow: (self.pos.phase, self.pos.phase_done),
                iters_per_epoch: self.ipe,
            },
        })
    }

    /// Resume from a checkpoint: weights, optimizer, EMA, hook states, data state, position.
    /// Weights must match the model exactly (a partial load is `load_from`'s job).
    pub fn resume(&mut self, path: &Path, data: CheckpointData) -> Result<(), RunError> {
        let invalid = |why: String| {
            RunError::Checkpoint(CheckpointError::Invalid {
                path: path.to_path_buf(),
                why,
            })
        };
        self.check_position(&data.state).map_err(|source| {
            RunError::Checkpoint(CheckpointError::Position {
                path: path.to_path_buf(),
                source,
            })
        })?;
        let report = load_weights_into(&mut self.st.params, &data.weights);
        if !report.is_exact() {
            return Err(invalid(format!(
                "its weights do not match the model, so it cannot be resumed from (use load_from for a partial load):\n{report}"
            )));
        }
        let s = &data.state;
        let opt_tensors: BTreeMap<String, Vec<f32>> = data
            .optimizer
            .as_ref()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.data.clone())).collect())
            .unwrap_or_default();
        if data.optimizer.is_none() {
            self.st
                .messages
                .push("warning: the checkpoint holds no optimizer state; momentum restarts".into());
        }
        self.st
            .optimizer
            .load_state(&self.st.params, &s.optimizer, &opt_tensors)
            .map_err(|e| invalid(e.to_string()))?;
        match (&mut self.st.scaler, &s.loss_scaler) {
            (Some(scaler), Some(saved)) => scaler
                .load_state_dict(saved)
                .map_err(|e| invalid(format!("loss scaler: {e}")))?,
            (Some(scaler), None) => self.st.messages.push(format!(
                "warning: the checkpoint holds no loss scaler state (it was not trained in fp16); the loss scale starts at {}",
                scaler.scale()
            )),
            (None, Some(_)) => self.st.messages.push(
                "warning: the checkpoint's loss scaler state is not used: this run does not scale its loss (not fp16)".into(),
            ),
            (None, None) => {}
        }
        if let Some(ema) = &data.ema {
            let mut e = self.st.params.clone();
            let r = load_weights_into(&mut e, ema);
            if !r.is_exact() {
                return Err(invalid(format!(
                    "its EMA weights do not match the model:\n{r}"
                )));
            }
            self.st.ema = Some(e);
        }
        let empty = Tensors::new();
        let all_tensors = data.hooks.as_ref().unwrap_or(&empty);
        for h in &mut self.hooks {
            let name = h.name().to_string();
            let prefix = format!("{name}/");
            let tensors: Tensors = all_tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
                .collect();
            let state = s
                .hooks
                .get(&name)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            h.load_state(&state, &tensors)
                .map_err(|e| invalid(format!("hook `{name}`: {e}")))?;
        }
        self.task
            .load_state(&s.sampler)
            .map_err(|e| invalid(format!("data state: {e}")))?;
        if !self.config.recipe_hash.is_empty() && s.recipe_hash != self.config.recipe_hash {
            self.st
                .messages
                .push("warning: the recipe changed since this checkpoint was written".to_string());
        }
        self.st.best = s.best.clone();
        self.pos = Position {
            epoch: s.epoch,
            iter: s.iter,
            inner: s.inner_iter,
            phase: s.workflow.0,
            phase_done: s.workflow.1,
        };
        self.last_saved = Some(path.to_path_buf());
        self.resumed = true;
        self.st.messages.push(format!(
            "resumed from {} at iteration {}",
            path.display(),
            s.iter
        ));
        self.set_progress_pub();
        self.call(HookPoint::AfterLoadCheckpoint)?;
        self.host_changed()?;
        Ok(())
    }

    /// A checkpoint's position is untrusted input: every number must fit this run, with
    /// overflow-checked arithmetic, before anything is restored.
    fn check_position(&self, s: &RunState) -> Result<(), PositionError> {
        let ipe = self.ipe;
        if s.iters_per_epoch != 0 && s.iters_per_epoch != ipe {
            return Err(PositionError::ItersPerEpoch {
                saved: s.iters_per_epoch,
                run: ipe,
            });
        }
        if s.iter > self.max_iters {
            return Err(PositionError::PastEnd {
                iter: s.iter,
                max_iters: self.max_iters,
            });
        }
        let consistent = s.inner_iter < ipe
            && s.epoch
                .checked_mul(ipe)
                .and_then(|i| i.checked_add(s.inner_iter))
                == Some(s.iter);
        if !consistent {
            return Err(PositionError::Inconsistent {
                epoch: s.epoch,
                iter: s.iter,
                inner: s.inner_iter,
                ipe,
            });
        }
        let (phase, done) = s.workflow;
        let Some((_, period)) = self.config.workflow.get(phase) else {
            return Err(PositionError::WorkflowPhase {
                phase: phase + 1,
                phases: self.config.workflow.len(),
            });
        };
        if done > period.count {
            return Err(PositionError::WorkflowDone {
                done,
                phase: phase + 1,
                length: *period,
            });
        }
        if let Some((metric, value, at)) = &s.best
            && (!value.is_finite() || *at > s.iter)
        {
            return Err(PositionError::Best {
                metric: metric.clone(),
                value: *value,
                at: *at,
                iter: s.iter,
            });
        }
        Ok(())
    }

    fn set_progress_pub(&mut self) {
        let p = &mut self.st.progress;
        p.epoch = self.pos.epoch;
        p.iter = self.pos.iter;
        p.inner_iter = self.pos.inner;
    }

    /// Initial weights (`init_cfg`, `load_from`): copied by `rule`, nothing else restored.
    /// A load the rule refuses copies nothing and is an error saying why.
    pub fn load_weights(
        &mut self,
        tensors: &Tensors,
        rule: &LoadRule,
    ) -> Result<LoadReport, String> {
        use crate::engine::checkpoint::{copy_matched, match_params};
        let m = match_params(&self.st.params, tensors, rule);
        if let Some(why) = m.report.refusal(rule) {
            return Err(why);
        }
        copy_matched(&mut self.st.params, tensors, &m);
        self.host_changed().map_err(|e| e.to_string())?;
        Ok(m.report)
    }

    /// A line for the run's record: printed and logged by the log hook when the run starts.
    pub fn note(&mut self, line: String) {
        self.st.messages.push(line);
    }
}
