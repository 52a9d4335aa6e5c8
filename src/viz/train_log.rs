//! Reading a run's `log.jsonl` back (the records `engine::hooks::log` writes, with
//! mmdetection 2.x's keys: `mode`, `epoch`, `iter`, `lr`, the losses, the val metrics) into
//! curves: one key's values against iterations or epochs, as mmdetection's
//! `tools/analysis_tools/analyze_logs.py plot_curve` takes them from its log. Nothing here
//! draws (`curves` does) or writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::TrainLogError;

/// Which records a key's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Train,
    Val,
}

/// What a curve's x axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Training iterations from the start of the run.
    Iter,
    /// Epochs (fractional within an epoch for training records).
    Epoch,
}

/// One log record: its phase, 1-based epoch, its `iter` field and its numeric values.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub phase: Phase,
    pub epoch: u64,
    /// The iteration within the epoch (epoch-based runs) or of the run (iteration-based).
    pub iter: u64,
    pub values: BTreeMap<String, f64>,
}

/// A run's log.
#[derive(Clone, Debug)]
pub struct TrainLog {
    /// The file read.
    pub path: PathBuf,
    pub records: Vec<Record>,
    /// Keys in the order they first appear (train keys before val-only ones).
    keys: Vec<String>,
}

impl TrainLog {
    /// Reads `path`: a work dir (its `log.jsonl`) or the file itself. A line that is not a
    /// log record is an error naming the file and line.
    pub fn read(path: &Path) -> Result<TrainLog, TrainLogError> {
        let file = if path.is_dir() {
            path.join("log.jsonl")
        } else {
            path.to_path_buf()
        };
        // Refuses a FIFO or a device instead of blocking on it.
        let text = crate::util::read::regular_text(&file, crate::util::read::UNLIMITED).map_err(
            |source| TrainLogError::Read {
                path: file.clone(),
                source,
            },
        )?;
        let mut records = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let line_no = n + 1;
            let bad = |missing| TrainLogError::NotRecord {
                path: file.clone(),
                line: line_no,
                missing,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|source| TrainLogError::NotJson {
                    path: file.clone(),
                    line: line_no,
                    source,
                })?;
            let phase = match v.get("mode").and_then(|m| m.as_str()) {
                Some("train") => Phase::Train,
                Some("val") => Phase::Val,
                _ => return Err(bad("no `mode` of \"train\" or \"val\"")),
            };
            let field = |k: &str| v.get(k).and_then(|x| x.as_u64());
            let (Some(epoch), Some(iter)) = (field("epoch"), field("iter")) else {
                return Err(bad("no whole-number `epoch` and `iter`"));
            };
            let values = (v.as_object().into_iter().flatten())
                .filter(|(k, _)| !matches!(k.as_str(), "mode" | "epoch" | "iter"))
                .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
                .collect();
            records.push(Record {
                phase,
                epoch,
                iter,
                values,
            });
        }
        if records.is_empty() {
            return Err(TrainLogError::Empty { path: file });
        }
        let mut keys: Vec<String> = Vec::new();
        for phase in [Phase::Train, Phase::Val] {
            for r in records.iter().filter(|r| r.phase == phase) {
                for k in r.values.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        Ok(TrainLog {
            path: file,
            records,
            keys,
        })
    }

    /// Every key the log has values for.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The keys drawn when none are asked for: the train `loss` and the first mAP-like val
    /// metric (`bbox_mAP`, `mAP`; `AR@…` for proposals), those the log has.
    pub fn default_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.phase_of("loss") == Some(Phase::Train) {
            out.push("loss".to_string());
        }
        let val = |f: &dyn Fn(&str) -> bool| {
            (self.keys.iter()).find(|k| self.phase_of(k) == Some(Phase::Val) && f(k))
        };
        if let Some(k) = val(&|k| k.contains("mAP")).or_else(|| val(&|k| k.starts_with("AR@"))) {
            out.push(k.clone());
        }
        out
    }

    /// Where `key` is logged: train records when any has it (so `lr`, also on val lines, is
    /// the train curve), else val records.
    pub fn phase_of(&self, key: &str) -> Option<Phase> {
        let has =
            |p: Phase| (self.records.iter()).any(|r| r.phase == p && r.values.contains_key(key));
        [Phase::Train, Phase::Val].into_iter().find(|&p| has(p))
    }

    /// Whether `iter` counts within each epoch (it goes back when the epoch moves on) rather
    /// than over the run.
    pub fn by_epoch(&self) -> bool {
        let mut last: Option<(u64, u64)> = None;
        for r in self.records.iter().filter(|r| r.phase == Phase::Train) {
            if let Some((e, i)) = last
                && r.epoch > e
                && r.iter <= i
            {
                return true;
            }
            last = Some((r.epoch, r.iter));
        }
        false
    }

    /// Iterations per epoch of an epoch-based run: the largest `iter` logged in an epoch the
    /// run finished (one a later epoch follows), else in its only epoch — as `analyze_logs`
    /// takes it. Not a val record's `iter`: evaluated every N iterations, that is N.
    pub fn iters_per_epoch(&self) -> Option<u64> {
        let last = self.records.iter().map(|r| r.epoch).max()?;
        (self.records.iter())
            .filter(|r| r.epoch < last || last == 1)
            .map(|r| r.iter)
            .max()
    }

    /// Whether no epoch has more than one val record (evaluated by epoch, not every N
    /// iterations): only then can val metrics be drawn by epoch without losing points.
    fn val_once_per_epoch(&self) -> bool {
        let mut epochs: Vec<u64> = (self.records.iter())
            .filter(|r| r.phase == Phase::Val)
            .map(|r| r.epoch)
            .collect();
        let n = epochs.len();
        epochs.sort_unstable();
        epochs.dedup();
        epochs.len() == n
    }

    /// `key`'s values against `x` (`None`: mmdetection's choice — val metrics by epoch in an
    /// epoch-based run evaluated once an epoch, everything else by iteration), in x order; a record repeated by a
    /// resume counts once (the later). An unknown key is an error naming it and listing
    /// the keys the log has.
    pub fn series(
        &self,
        key: &str,
        x: Option<XAxis>,
    ) -> Result<(XAxis, Vec<(f64, f64)>), TrainLogError> {
        let Some(phase) = self.phase_of(key) else {
            return Err(TrainLogError::UnknownKey {
                path: self.path.clone(),
                key: key.to_string(),
                keys: self.keys.clone(),
            });
        };
        let by_epoch = self.by_epoch();
        let x = x.unwrap_or(
            if phase == Phase::Val && by_epoch && self.val_once_per_epoch() {
                XAxis::Epoch
            } else {
                XAxis::Iter
            },
        );
        let ipe = self.iters_per_epoch().unwrap_or(1).max(1) as f64;
        if x == XAxis::Epoch && !by_epoch && self.records.iter().any(|r| r.epoch > 1) {
            return Err(TrainLogError::IterationBased {
                path: self.path.clone(),
            });
        }
        let mut points: Vec<(f64, f64)> = (self.records.iter())
            .filter(|r| r.phase == phase)
            .filter_map(|r| {
                let y = *r.values.get(key)?;
                let (e, i) = (r.epoch as f64, r.iter as f64);
                let at = match (x, by_epoch, phase) {
                    (XAxis::Iter, true, _) => (e - 1.0) * ipe + i,
                    (XAxis::Iter, false, _) => i,
                    (XAxis::Epoch, _, Phase::Val) => e,
                    (XAxis::Epoch, _, Phase::Train) => e - 1.0 + i / ipe,
                };
                Some((at, y))
            })
            .collect();
        // Stable: of records at the same x, the later stays.
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut kept: Vec<(f64, f64)> = Vec::with_capacity(points.len());
        for p in points {
            match kept.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => kept.push(p),
            }
        }
        Ok((x, kept))
    }
}

/// The charts of `keys` (none: the first run's [`TrainLog::default_keys`]) for `runs`, each
/// a legend name and its log, one chart per key with one line per run. Every run must have
/// every key (the error names the key, the run's file and the keys it has); the first run
/// picks each chart's x axis when `x` is `None`.
pub fn panels(
    runs: &[(String, TrainLog)],
    keys: &[String],
    x: Option<XAxis>,
) -> Result<Vec<super::curves::Panel>, TrainLogError> {
    let Some((_, first)) = runs.first() else {
        return Err(TrainLogError::NoRuns);
    };
    let keys = if keys.is_empty() {
        let d = first.default_keys();
        if d.is_empty() {
            return Err(TrainLogError::NoDefaultKeys {
                path: first.path.clone(),
                keys: first.keys.clone(),
            });
        }
        d
    } else {
        keys.to_vec()
    };
    let mut out = Vec::new();
    for key in &keys {
        let mut axis = x;
        let mut series = Vec::new();
        for (name, log) in runs {
            let (used, points) = log.series(key, axis)?;
            axis = Some(used);
            series.push(super::curves::Series {
                name: name.clone(),
                points,
            });
        }
        out.push(super::curves::Panel {
            title: key.clone(),
            x_label: match axis {
                Some(XAxis::Epoch) => "epoch".into(),
                _ => "iter".into(),
            },
            series,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> TrainLog {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("log.jsonl"), lines.join("\n")).unwrap();
        TrainLog::read(dir.path()).unwrap()
    }

    #[test]
    fn epoch_based_logs_count_iterations_across_epochs() {
        let l = log(&[
            r#"{"mode":"train","epoch":1,"iter":2,"lr":0.1,"loss":3.0}"#,
            r#"{"mode":"train","epoch":1,"iter":4,"lr":0.2,"loss":2.0}"#,
            r#"{"mode":"val","epoch":1,"iter":4,"lr":0.2,"bbox_mAP":0.1}"#,
            r#"{"mode":"train","epoch":2,"iter":2,"lr":0.3,"loss":1.0}"#,
            r#"{"mode":"val","epoch":2,"iter":4,"lr":0.3,"bbox_mAP":0.2}"#,
        ]);
        assert!(l.by_epoch());
        assert_eq!(l.iters_per_epoch(), Some(4));
        assert_eq!(l.default_keys(), vec!["loss", "bbox_mAP"]);
        let (x, lr) = l.series("lr", None).unwrap();
        assert_eq!(x, XAxis::Iter);
        assert_eq!(lr, vec![(2.0, 0.1), (4.0, 0.2), (6.0, 0.3)]);
        let (x, map) = l.series("bbox_mAP", None).unwrap();
        assert_eq!((x, map), (XAxis::Epoch, vec![(1.0, 0.1), (2.0, 0.2)]));
        let (_, map) = l.series("bbox_mAP", Some(XAxis::Iter)).unwrap();
        assert_eq!(map, vec![(4.0, 0.1), (8.0, 0.2)]);
        let (_, loss) = l.series("loss", Some(XAxis::Epoch)).unwrap();
        assert_eq!(loss[2], (1.5, 1.0));
        let e = l.series("loss_foo", None).unwrap_err().to_string();
        assert!(e.contains("`loss_foo`") && e.contains("bbox_mAP"), "{e}");
    }

    /// Evaluated every 2 iterations of 4-iteration epochs: the epoch length is 4, not the val
    /// records' 2, and the val metric is drawn by iteration (by epoch, two points would merge).
    #[test]
    fn evaluations_within_an_epoch_keep_their_points() {
        let l = log(&[
            r#"{"mode":"train","epoch":1,"iter":2,"loss":3.0}"#,
            r#"{"mode":"val","epoch":1,"iter":2,"bbox_mAP":0.1}"#,
            r#"{"mode":"train","epoch":1,"iter":4,"loss":2.0}"#,
            r#"{"mode":"val","epoch":1,"iter":4,"bbox_mAP":0.2}"#,
            r#"{"mode":"train","epoch":2,"iter":2,"loss":1.0}"#,
            r#"{"mode":"val","epoch":2,"iter":2,"bbox_mAP":0.3}"#,
        ]);
        assert_eq!(l.iters_per_epoch(), Some(4));
        let (x, map) = l.series("bbox_mAP", None).unwrap();
        assert_eq!(
            (x, map),
            (XAxis::Iter, vec![(2.0, 0.1), (4.0, 0.2), (6.0, 0.3)])
        );
        let (_, loss) = l.series("loss", None).unwrap();
        assert_eq!(loss, vec![(2.0, 3.0), (4.0, 2.0), (6.0, 1.0)]);
    }

    #[test]
    fn iteration_based_logs_and_resumed_lines() {
        let l = log(&[
            r#"{"mode":"train","epoch":1,"iter":5,"loss":3.0}"#,
            r#"{"mode":"train","epoch":2,"iter":10,"loss":2.0}"#,
            r#"{"mode":"train","epoch":2,"iter":10,"loss":2.5}"#,
        ]);
        assert!(!l.by_epoch());
        let (_, loss) = l.series("loss", None).unwrap();
        assert_eq!(loss, vec![(5.0, 3.0), (10.0, 2.5)]);
        assert!(l.series("loss", Some(XAxis::Epoch)).is_err());
    }
}
