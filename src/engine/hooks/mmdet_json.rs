//! mmdetection 2.x's `<timestamp>.log.json`, as mmcv's `TextLoggerHook` writes it: a first line
//! of run metadata (`env_info`, `config`, `seed`, `exp_name`), then one object per log line in
//! mmcv's key order — `mode`, `epoch`, `iter`, `lr`, `memory`, `data_time`, the loss terms,
//! `loss`, `grad_norm`, `time` — with floats rounded to 5 decimals (`_round_float`). mmdetection's
//! `tools/analysis_tools/analyze_logs.py` (`plot_curve`, `cal_train_time`) reads it unchanged;
//! `log.jsonl` keeps every digit.

use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Keys mmcv writes first, in this order; `time` goes last.
const LEADING: [&str; 6] = ["mode", "epoch", "iter", "lr", "memory", "data_time"];

/// One run's `<timestamp>.log.json`.
pub struct MmdetJsonLog {
    file: File,
    path: PathBuf,
}

impl MmdetJsonLog {
    /// Creates `<dir>/<stamp>.log.json` (appending if a run of the same second wrote one)
    /// with the metadata line first.
    pub fn create(dir: &Path, stamp: &str, meta: &[(String, Value)]) -> io::Result<Self> {
        let path = dir.join(format!("{stamp}.log.json"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut log = MmdetJsonLog { file, path };
        log.write(meta)?;
        Ok(log)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one log line: `fields` in mmcv's order, floats rounded.
    pub fn write(&mut self, fields: &[(String, Value)]) -> io::Result<()> {
        writeln!(self.file, "{}", line(fields))
    }
}

/// `fields` as one JSON object in mmcv's key order (the given order within each group).
pub fn line(fields: &[(String, Value)]) -> String {
    let rank = |k: &str| match LEADING.iter().position(|l| *l == k) {
        Some(i) => i,
        None if k == "time" => LEADING.len() + 2,
        None => LEADING.len() + 1,
    };
    let mut order: Vec<&(String, Value)> = fields.iter().collect();
    order.sort_by_key(|(k, _)| rank(k));
    let items: Vec<String> = order
        .iter()
        .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), round5(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `round(x, 5)` for floats (the exact binary value rounded to 5 decimals, then the
/// nearest double), other values as they are.
fn round5(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|x| format!("{x:.5}").parse::<f64>().ok())
            .map_or(Value::Null, Value::from),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::line;
    use serde_json::{Value, json};

    #[test]
    fn keys_in_mmcv_order_and_floats_rounded() {
        let f = |k: &str, v: Value| (k.to_string(), v);
        let fields = vec![
            f("time", json!(0.4412345678)),
            f("data_time", json!(0.0528)),
            f("loss_cls", json!(1.123456789)),
            f("loss", json!(1.5)),
            f("grad_norm", json!(9.0)),
            f("mode", json!("train")),
            f("epoch", json!(1)),
            f("iter", json!(50)),
            f("lr", json!(0.001998)),
            f("memory", json!(3773)),
        ];
        assert_eq!(
            line(&fields),
            r#"{"mode": "train", "epoch": 1, "iter": 50, "lr": 0.002, "memory": 3773, "data_time": 0.0528, "loss_cls": 1.12346, "loss": 1.5, "grad_norm": 9.0, "time": 0.44123}"#
        );
    }
}
