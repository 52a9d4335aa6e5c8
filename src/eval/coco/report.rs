//! What an evaluation hands back: pycocotools' `summarize()` stats and text, the full arrays,
//! mmdetection's metric keys (rounded to 3 decimals as mmdetection logs them) and the
//! per-class AP table (`classwise`).

use super::super::numpy;
use super::accumulate::Accumulated;
use super::data::CocoGt;
use super::params::CocoParams;
use crate::registry::metrics::BBOX_METRIC_NAMES;

/// Result of [`super::evaluate`].
#[derive(Debug, Clone)]
pub struct CocoReport {
    /// The parameters used (ids sorted and deduplicated, maxDets sorted).
    pub params: CocoParams,
    /// `COCOeval.stats`: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl (with
    /// the maxDets of the params: for proposals AR@100, AR@300, AR@1000 and by size @1000).
    pub stats: [f64; 12],
    /// `[T, R, K, A, M]` row-major; -1 where there is no ground truth.
    pub precision: Vec<f64>,
    /// `[T, K, A, M]` row-major.
    pub recall: Vec<f64>,
    /// `[T, R, K, A, M]` row-major: the score at which each precision value is read.
    pub scores: Vec<f64>,
    /// Names of the evaluated categories, in the K order (sorted ids).
    pub category_names: Vec<String>,
}

/// Round as mmdetection does before logging: `float(f'{x:.3f}')`.
fn round3(x: f64) -> f64 {
    format!("{x:.3}").parse().unwrap_or(x)
}

impl CocoReport {
    pub(super) fn new(params: CocoParams, acc: Accumulated, gt: &CocoGt) -> Self {
        let category_names = if params.use_cats {
            params
                .cats()
                .iter()
                .map(|id| {
                    gt.categories
                        .iter()
                        .find(|c| c.id == *id)
                        .map_or_else(|| id.to_string(), |c| c.name.clone())
                })
                .collect()
        } else {
            vec!["all".to_string()]
        };
        let mut r = CocoReport {
            params,
            stats: [-1.0; 12],
            precision: acc.precision,
            recall: acc.recall,
            scores: acc.scores,
            category_names,
        };
        r.stats = std::array::from_fn(|i| {
            let (ap, thr, area, md) = r.stat_spec(i);
            md.map_or(-1.0, |md| r.summarize_one(ap, thr, area, md))
        });
        r
    }

    /// `[T, R, K, A, M]`.
    pub fn shape(&self) -> [usize; 5] {
        let p = &self.params;
        [
            p.iou_thrs.len(),
            p.rec_thrs.len(),
            p.k_slots(),
            p.area_rng.len(),
            p.max_dets.len(),
        ]
    }

    /// What stat `i` of `summarize()` averages: (precision?, IoU threshold, area label, maxDets).
    fn stat_spec(&self, i: usize) -> (bool, Option<f64>, &'static str, Option<usize>) {
        let md = |j: usize| self.params.max_dets.get(j).copied();
        match i {
            0 => (true, None, "all", Some(100)),
            1 => (true, Some(0.5), "all", md(2)),
            2 => (true, Some(0.75), "all", md(2)),
            3 => (true, None, "small", md(2)),
            4 => (true, None, "medium", md(2)),
            5 => (true, None, "large", md(2)),
            6 => (false, None, "all", md(0)),
            7 => (false, None, "all", md(1)),
            8 => (false, None, "all", md(2)),
            9 => (false, None, "small", md(2)),
            10 => (false, None, "medium", md(2)),
            _ => (false, None, "large", md(2)),
        }
    }

    /// pycocotools' `_summarize`: the mean of the entries > -1 selected by precision/recall,
    /// IoU threshold (exact match, all when `None`), area label and maxDets; -1 when none.
    pub fn summarize_one(
        &self,
        ap: bool,
        iou_thr: Option<f64>,
        area: &str,
        max_dets: usize,
    ) -> f64 {
        let p = &self.params;
        let [t_n, r_n, k_n, a_n, m_n] = self.shape();
        let (Some(a), Some(m)) = (
            p.area_rng_lbl.iter().position(|l| l == area),
            p.max_dets.iter().position(|&d| d == max_dets),
        ) else {
            return -1.0;
        };
        let ts: Vec<usize> = (0..t_n)
            .filter(|&t| iou_thr.is_none_or(|thr| p.iou_thrs[t] == thr))
            .collect();
        let mut vals = Vec::new();
        for &t in &ts {
            if ap {
                for r in 0..r_n {
                    for k in 0..k_n {
                        vals.push(self.precision[(((t * r_n + r) * k_n + k) * a_n + a) * m_n + m]);
                    }
                }
            } else {
                for k in 0..k_n {
                    vals.push(self.recall[((t * k_n + k) * a_n + a) * m_n + m]);
                }
            }
        }
        vals.retain(|&v| v > -1.0);
        if vals.is_empty() {
            -1.0
        } else {
            numpy::mean(&vals)
        }
    }

    /// The twelve lines `summarize()` prints.
    pub fn summary_text(&self) -> String {
        let p = &self.params;
        let mut s = String::new();
        for i in 0..12 {
            let (ap, thr, area, md) = self.stat_spec(i);
            let iou = match thr {
                Some(t) => format!("{t:.2}"),
                None => format!(
                    "{:.2}:{:.2}",
                    p.iou_thrs[0],
                    p.iou_thrs[p.iou_thrs.len() - 1]
                ),
            };
            let (title, ty) = if ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            s.push_str(&format!(
                " {title:<18} {ty} @[ IoU={iou:<9} | area={area:>6} | maxDets={:>3} ] = {:.3}\n",
                md.unwrap_or(0),
                self.stats[i]
            ));
        }
        s
    }

    /// mmdetection's `classwise` table: per category, the mean of
    /// `precision[:, :, k, area all, last maxDets]` over entries > -1 (NaN when none).
    pub fn classwise(&self) -> Vec<(String, f64)> {
        let [t_n, r_n, k_n, a_n, m_n] = self.shape();
        let m = m_n - 1;
        (0..k_n)
            .map(|k| {
                let mut vals = Vec::with_capacity(t_n * r_n);
                for t in 0..t_n {
                    for r in 0..r_n {
                        let v = self.precision[(((t * r_n + r) * k_n + k) * a_n) * m_n + m];
                        if v > -1.0 {
                            vals.push(v);
                        }
                    }
                }
                let ap = if vals.is_empty() {
                    f64::NAN
                } else {
                    numpy::mean(&vals)
                };
                (self.category_names[k].clone(), ap)
            })
            .collect()
    }

    /// mmdetection's `bbox` metrics: `bbox_mAP`, `bbox_mAP_50`, … `bbox_mAP_l`, each rounded
    /// to 3 decimals (the raw values are `stats[0..6]`).
    pub fn metrics(&self) -> Vec<(String, f64)> {
        BBOX_METRIC_NAMES
            .iter()
            .zip(&self.stats)
            .map(|(k, &v)| (k.to_string(), round3(v)))
            .collect()
    }

    /// mmdetection's `bbox_mAP_copypaste` line: the first six stats with 3 decimals.
    pub fn copypaste(&self) -> String {
        self.stats[..6]
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// mmdetection's `proposal` metrics (`AR@N` for each maxDets N, `AR_s/m/l@` the largest),
    /// rounded to 3 decimals; meaningful for a report made with [`CocoParams::proposal`].
    pub fn proposal_metrics(&self) -> Vec<(String, f64)> {
        let md = &self.params.max_dets;
        let last = md.last().copied().unwrap_or(0);
        let mut out: Vec<(String, f64)> = md
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, n)| (format!("AR@{n}"), round3(self.stats[6 + i])))
            .collect();
        for (i, size) in ["s", "m", "l"].iter().enumerate() {
            out.push((format!("AR_{size}@{last}"), round3(self.stats[9 + i])));
        }
        out
    }

    /// The metric keys of a `bbox` report, or of a `proposal` one.
    pub fn keyed_metrics(&self, proposal: bool) -> Vec<(String, f64)> {
        if proposal {
            self.proposal_metrics()
        } else {
            self.metrics()
        }
    }

    /// The report as `mmrun eval --format json` prints it: `stats`, the metric keys,
    /// `bbox_mAP_copypaste` (not for proposals) and, with `classwise`, the per-class table.
    pub fn to_json(&self, classwise: bool, proposal: bool) -> serde_json::Value {
        use crate::eval::json::number;
        let mut obj = serde_json::Map::new();
        let stats = self.stats.iter().map(|&v| number(v)).collect();
        obj.insert("stats".into(), serde_json::Value::Array(stats));
        for (k, v) in self.keyed_metrics(proposal) {
            obj.insert(k, number(v));
        }
        if !proposal {
            obj.insert("bbox_mAP_copypaste".into(), self.copypaste().into());
        }
        if classwise {
            let table: serde_json::Map<String, serde_json::Value> = (self.classwise().into_iter())
                .map(|(n, ap)| (n, number(ap)))
                .collect();
            obj.insert("classwise".into(), table.into());
        }
        serde_json::Value::Object(obj)
    }
}
