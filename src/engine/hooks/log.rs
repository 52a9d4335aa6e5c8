//! Logging: averages over each `every` interval written as text (`log.txt` with a UTC
//! timestamp on each line, as mmcv's logger; stdout), JSON lines with mmdetection's log.json
//! fields (`log.jsonl`, every digit) and mmdetection's own `<timestamp>.log.json` (see
//! `mmdet_json`), TensorBoard scalars (and pictures of val images after each evaluation:
//! `tensorboard`), and a progress bar with ETA when stderr is a terminal.
//! Interval sums are hook state, so the lines after a resume are the lines an uninterrupted
//! run writes.

use super::mmdet_json::MmdetJsonLog;
use super::tensorboard::EventWriter;
use super::{Console, Ctx, Hook, HookConfigError, HookError, HookPoint, HookStateError, Mode};
use crate::util::clock::Utc;
use crate::util::progress::{Progress, hms};
use crate::util::units::{Period, PeriodUnit};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Instant;

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSink {
    Text,
    Json,
    Tensorboard,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub every: Period,
    pub to: Vec<LogSink>,
    /// Print lines on stdout too.
    pub stdout: bool,
    /// Progress bar with ETA on stderr when it is a terminal.
    pub progress_bar: bool,
    /// Skip the partial interval at the end of an epoch (mmcv's default).
    pub ignore_last: bool,
}

/// Running sums over the current interval, in first-seen key order.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
struct Interval {
    keys: Vec<String>,
    sums: BTreeMap<String, f64>,
    counts: BTreeMap<String, u64>,
}

impl Interval {
    fn add(&mut self, k: &str, v: f64) {
        if !self.sums.contains_key(k) {
            self.keys.push(k.to_string());
        }
        *self.sums.entry(k.to_string()).or_default() += v;
        *self.counts.entry(k.to_string()).or_default() += 1;
    }
    fn mean(&self, k: &str) -> Option<f64> {
        Some(self.sums.get(k)? / *self.counts.get(k)? as f64)
    }
}

/// A log line's fields in the order they were inserted (a later insert of a key replaces it).
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
    fn insert(&mut self, k: String, v: Value) {
        match self.0.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k, v)),
        }
    }
}

pub struct LogHook {
    config: LogConfig,
    train: Interval,
    val: Interval,
    text: Option<File>,
    json: Option<File>,
    mmdet: Option<MmdetJsonLog>,
    tb: Option<EventWriter>,
    bar: Option<Progress>,
    started: Option<(Instant, u64)>,
    /// The first write that failed, not yet handed to the runner: a log that cannot be
    /// written stops the run with a checkpoint rather than training on unrecorded.
    failed: Option<String>,
    /// What stdout carries (the run's, read at the start).
    console: Console,
}

/// Peak resident memory of this process in MiB (mmdetection logs peak GPU memory; on the
/// CPU the process peak is the honest equivalent).
fn memory_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// A write to a log file deleted under the run (the work dir removed, a log rotated away)
/// succeeds and is lost: report it as a failed write.
fn still_linked(f: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if f.metadata()?.nlink() == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it was deleted while the run was writing it",
            ));
        }
    }
    Ok(())
}

fn fmt_value(k: &str, v: f64) -> String {
    if k == "lr" {
        format!("{v:.3e}")
    } else if k == "memory" {
        format!("{v:.0}")
    } else if k == "loss_scale" {
        // Powers of two, usually: whole below a million, else in exponent form.
        if v < 1e6 {
            format!("{v}")
        } else {
            format!("{v:.3e}")
        }
    } else if k.contains("time") {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

impl LogHook {
    pub fn new(config: LogConfig) -> Result<Self, HookConfigError> {
        if config.every.unit != PeriodUnit::Iters || config.every.count == 0 {
            return Err(HookConfigError::LogEvery {
                every: config.every,
            });
        }
        Ok(LogHook {
            config,
            train: Interval::default(),
            val: Interval::default(),
            text: None,
            json: None,
            mmdet: None,
            tb: None,
            bar: None,
            started: None,
            failed: None,
            console: Console::Text,
        })
    }

    fn write_text(&mut self, line: &str) {
        if self.config.stdout {
            // With JSON on stdout, the lines for people go to stderr.
            match self.console {
                Console::Text => crate::outln!("{line}"),
                Console::Json => crate::errln!("{line}"),
            }
        }
        if let Some(f) = &mut self.text
            && let Err(e) = writeln!(f, "{} - mmrun - INFO - {line}", Utc::now().log_stamp())
                .and_then(|()| still_linked(f))
        {
            self.text = None;
            self.fail("log.txt", e);
        }
    }

    /// Record a failed sink (it is closed; the run stops after this iteration).
    fn fail(&mut self, file: &str, e: impl std::fmt::Display) {
        if self.failed.is_none() {
            self.failed = Some(format!("cannot write the log {file} in the work dir: {e}"));
        }
    }

    /// Writes one log line everywhere: `ordered` holds its fields in mmcv's order.
    fn emit(&mut self, ordered: Vec<(String, Value)>, text: String, step: u64, prefix: &str) {
        self.write_text(&text);
        let fields: Map<String, Value> = ordered.iter().cloned().collect();
        if self.console == Console::Json && self.config.stdout {
            crate::outln!("{}", Value::Object(fields.clone()));
        }
        if let Some(f) = &mut self.json
            && let Err(e) =
                writeln!(f, "{}", Value::Object(fields.clone())).and_then(|()| still_linked(f))
        {
            self.json = None;
            self.fail("log.jsonl", e);
        }
        if let Some(m) = &mut self.mmdet
            && let Err(e) = m.write(&ordered)
        {
            let name = m.path().display().to_string();
            self.mmdet = None;
            self.fail(&name, e);
        }
        if let Some(tb) = &mut self.tb {
            let scalars: Vec<(String, f32)> = fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "mode" | "epoch" | "iter"))
                .filter_map(|(k, v)| v.as_f64().map(|x| (format!("{prefix}/{k}"), x as f32)))
                .collect();
            if let Err(e) = tb.scalars(step, &scalars) {
                self.tb = None;
                self.fail("tf_logs", e);
            }
        }
    }

    fn open(&mut self, cx: &Ctx) -> Result<(), HookError> {
        let dir = &cx.run.work_dir;
        let err = |e: std::io::Error| HookError::new("log", format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(err)?;
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        if self.config.to.contains(&LogSink::Text) {
            self.text = Some(append("log.txt").map_err(err)?);
        }
        if self.config.to.contains(&LogSink::Json) {
            self.json = Some(append("log.jsonl").map_err(err)?);
            let stamp = Utc::now().file_stamp();
            self.mmdet = Some(MmdetJsonLog::create(dir, &stamp, &cx.run.meta).map_err(err)?);
        }
        if self.config.to.contains(&LogSink::Tensorboard) {
            self.tb = Some(EventWriter::create(&dir.join("tf_logs")).map_err(err)?);
        }
        let p = cx.run.progress;
        crate::util::progress::set_enabled(self.config.progress_bar);
        let bar = Progress::new("", "it", p.iter, p.stop_iter, true);
        self.bar = bar.is_drawn().then_some(bar);
        self.console = cx.run.console;
        Ok(())
    }

    fn train_line(&mut self, cx: &Ctx) {
        let p = cx.run.progress;
        let mut f = Fields::default();
        f.insert("mode".into(), json!("train"));
        let (iter, total) = if p.by_epoch {
            (p.inner_iter + 1, p.iters_per_epoch)
        } else {
            (p.iter + 1, p.max_iters)
        };
        f.insert("epoch".into(), json!(p.epoch + 1));
        f.insert("iter".into(), json!(iter));
        f.insert("lr".into(), json!(cx.run.optimizer.lr()));
        // mmcv's order: memory, data_time, the loss terms and the rest as they were first
        // recorded, time last.
        f.insert("memory".into(), json!(memory_mb()));
        if let Some(v) = self.train.mean("data_time") {
            f.insert("data_time".into(), json!(v));
        }
        for k in self.train.keys.iter().filter(|k| !k.contains("time")) {
            f.insert(k.clone(), json!(self.train.mean(k).unwrap_or(f64::NAN)));
        }
        if let Some(v) = self.train.mean("time") {
            f.insert("time".into(), json!(v));
        }
        if let Some(sc) = &cx.run.scaler {
            // The scale the next iteration uses (after this one's update).
            f.insert("loss_scale".into(), json!(sc.scale()));
        }
        let eta = match self.started {
            Some((t0, i0)) if p.iter + 1 > i0 => {
                let per = t0.elapsed().as_secs_f64() / (p.iter + 1 - i0) as f64;
                hms(per * p.stop_iter.saturating_sub(p.iter + 1) as f64)
            }
            _ => "-".into(),
        };
        let head = if p.by_epoch {
            format!("Epoch [{}][{iter}/{total}]", p.epoch + 1)
        } else {
            format!("Iter [{iter}/{total}]")
        };
        // mmcv's text line: lr, eta, time, data_time, memory, then the rest.
        let value = |k: &str| {
            f.get(k)
                .map(|v| fmt_value(k, v.as_f64().unwrap_or(f64::NAN)))
        };
        let mut body = vec![format!("lr: {}", value("lr").unwrap_or_default())];
        body.push(format!("eta: {eta}"));
        for k in ["time", "data_time", "memory"] {
            if let Some(v) = value(k) {
                body.push(format!("{k}: {v}"));
            }
        }
        body.extend(
            (f.0.iter())
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "mode" | "epoch" | "iter" | "lr" | "time" | "data_time" | "memory"
                    )
                })
                .map(|(k, v)| format!("{k}: {}", fmt_value(k, v.as_f64().unwrap_or(f64::NAN)))),
        );
        let text = format!("{head}\t{}", body.join(", "));
        self.train = Interval::default();
        self.emit(f.0, text, p.iter + 1, "train");
    }

    fn val_line(&mut self, cx: &Ctx, values: Vec<(String, f64)>) {
        let p = cx.run.progress;
        let mut f = Fields::default();
        f.insert("mode".into(), json!("val"));
        f.insert("epoch".into(), json!(p.epoch + 1));
        f.insert(
            "iter".into(),
            json!(if p.by_epoch {
                p.inner_iter + 1
            } else {
                p.iter + 1
            }),
        );
        f.insert("lr".into(), json!(cx.run.optimizer.lr()));
        for (k, v) in &values {
            f.insert(k.clone(), json!(v));
        }
        let head = if p.by_epoch {
            format!("Epoch(val) [{}][{}]", p.epoch + 1, p.inner_iter + 1)
        } else {
            format!("Iter(val) [{}]", p.iter + 1)
        };
        let body: Vec<String> = values
            .iter()
            .map(|(k, v)| format!("{k}: {}", fmt_value(k, *v)))
            .collect();
        self.emit(
            f.0,
            format!("{head}\t{}", body.join(", ")),
            p.iter + 1,
            "val",
        );
    }

    /// TensorBoard pictures of the evaluation that just ran; one that cannot be drawn is
    /// reported, not fatal (the metrics are logged).
    fn val_pictures(&mut self, cx: &mut Ctx) {
        let Some(tb) = &mut self.tb else { return };
        match super::tensorboard::val_pictures(&*cx.task) {
            Ok(images) if images.is_empty() => {}
            Ok(images) => {
                if let Err(e) = tb.images(cx.run.progress.iter + 1, &images) {
                    self.tb = None;
                    self.fail("tf_logs", e);
                }
            }
            Err(e) => (cx.run.messages).push(format!("warning: no TensorBoard pictures: {e}")),
        }
    }
}

impl Hook for LogHook {
    fn name(&self) -> &str {
        "log"
    }

    fn param_access(&self, _: HookPoint, _: &super::Progress) -> super::ParamAccess {
        super::ParamAccess::None
    }

    fn on(&mut self, point: HookPoint, cx: &mut Ctx) -> Result<(), HookError> {
        match point {
            HookPoint::BeforeRun => {
                self.open(cx)?;
                self.started = Some((Instant::now(), cx.run.progress.iter));
            }
            HookPoint::AfterTrainIter => {
                let r = cx.run.record.clone();
                self.train.add("time", r.time);
                self.train.add("data_time", r.data_time);
                for (k, v) in &r.losses {
                    self.train.add(k, *v);
                }
                if let Some(g) = r.grad_norm {
                    self.train.add("grad_norm", g);
                }
                let p = cx.run.progress;
                let n = self.config.every.count;
                let due = if p.by_epoch {
                    (p.inner_iter + 1).is_multiple_of(n)
                        || (!self.config.ignore_last && p.inner_iter + 1 == p.iters_per_epoch)
                } else {
                    (p.iter + 1).is_multiple_of(n) || (!self.config.ignore_last && p.last_iter())
                };
                if due {
                    self.train_line(cx);
                }
                if let Some(bar) = &self.bar {
                    bar.set(cx.run.progress.iter + 1);
                }
            }
            HookPoint::AfterValIter if cx.run.mode == Mode::Val => {
                for (k, v) in cx.run.record.losses.clone() {
                    self.val.add(&k, v);
                }
            }
            HookPoint::AfterValEpoch => {
                let v = std::mem::take(&mut self.val);
                let values = v
                    .keys
                    .iter()
                    .map(|k| (k.clone(), v.mean(k).unwrap_or(f64::NAN)))
                    .collect();
                self.val_line(cx, values);
            }
            // Left on screen in its final state; later lines print below it.
            HookPoint::AfterRun => {
                if let Some(bar) = self.bar.take() {
                    bar.finish();
                }
            }
            _ => {}
        }
        if matches!(
            point,
            HookPoint::AfterTrainIter | HookPoint::AfterTrainEpoch
        ) && let Some(m) = cx.run.metrics.clone()
        {
            self.val_line(cx, m.into_iter().collect());
            self.val_pictures(cx);
        }
        for m in std::mem::take(&mut cx.run.messages) {
            self.write_text(&m);
        }
        if let Some(why) = self.failed.take() {
            crate::errln!("error: {why}; stopping after this iteration with a checkpoint");
            cx.run.halt.get_or_insert(why);
        }
        Ok(())
    }

    fn state(&self) -> Value {
        json!({ "train": self.train, "val": self.val })
    }

    fn load_state(
        &mut self,
        state: &Value,
        _: &crate::engine::checkpoint::Tensors,
    ) -> Result<(), HookStateError> {
        let malformed = |key| move |source| HookStateError::Malformed { key, source };
        if let Some(t) = state.get("train") {
            self.train = serde_json::from_value(t.clone()).map_err(malformed("train"))?;
        }
        if let Some(v) = state.get("val") {
            self.val = serde_json::from_value(v.clone()).map_err(malformed("val"))?;
        }
        Ok(())
    }
}
