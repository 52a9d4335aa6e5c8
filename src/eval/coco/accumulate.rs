//! Precision/recall curves per (category, area range, maxDets, IoU threshold), as
//! pycocotools' `accumulate()`: detections of all images pooled and stably sorted by score,
//! cumulative TP/FP, precision made non-increasing, read at the recall thresholds.

use super::matching::{Cells, FP, TP};
use super::params::CocoParams;
use rayon::prelude::*;

/// The arrays of `COCOeval.eval`: `precision` and `scores` are `[T, R, K, A, M]`, `recall` is
/// `[T, K, A, M]`, row-major; -1 where a category has no ground truth in that area range.
pub(super) struct Accumulated {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub scores: Vec<f64>,
}

/// One category slot's values, laid out `[a][m][t][r]` (recall `[a][m][t]`).
struct SlotCurves {
    precision: Vec<f64>,
    recall: Vec<f64>,
    scores: Vec<f64>,
}

pub(super) fn accumulate(cells: &Cells, p: &CocoParams) -> Accumulated {
    let (t_n, r_n, k_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.k_slots(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let slots: Vec<SlotCurves> = (0..k_n)
        .into_par_iter()
        .map(|k| slot_curves(cells, p, k))
        .collect();
    let mut precision = vec![-1.0; t_n * r_n * k_n * a_n * m_n];
    let mut scores = vec![-1.0; precision.len()];
    let mut recall = vec![-1.0; t_n * k_n * a_n * m_n];
    for (k, s) in slots.iter().enumerate() {
        for a in 0..a_n {
            for m in 0..m_n {
                for t in 0..t_n {
                    let src = (a * m_n + m) * t_n + t;
                    recall[((t * k_n + k) * a_n + a) * m_n + m] = s.recall[src];
                    for r in 0..r_n {
                        let dst = (((t * r_n + r) * k_n + k) * a_n + a) * m_n + m;
                        precision[dst] = s.precision[src * r_n + r];
                        scores[dst] = s.scores[src * r_n + r];
                    }
                }
            }
        }
    }
    Accumulated {
        precision,
        recall,
        scores,
    }
}

fn slot_curves(cells: &Cells, p: &CocoParams, k: usize) -> SlotCurves {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    let mut out = SlotCurves {
        precision: vec![-1.0; a_n * m_n * t_n * r_n],
        recall: vec![-1.0; a_n * m_n * t_n],
        scores: vec![-1.0; a_n * m_n * t_n * r_n],
    };
    let (c0, c1) = (k * cells.n_imgs, (k + 1) * cells.n_imgs);
    // (score, cell, rank in cell) in image order, then a stable sort by descending score:
    // numpy's mergesort over the concatenation of the images' score lists.
    let mut all: Vec<(f64, u32, u32)> = Vec::with_capacity(cells.det_off[c1] - cells.det_off[c0]);
    for c in c0..c1 {
        let (s, e) = (cells.det_off[c], cells.det_off[c + 1]);
        for (j, &score) in cells.scores[s..e].iter().enumerate() {
            all.push((score, c as u32, j as u32));
        }
    }
    all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    let npig: Vec<u64> = (0..a_n)
        .map(|a| {
            (c0..c1)
                .map(|c| cells.npig[c * a_n + a] as u64)
                .sum::<u64>()
        })
        .collect();
    // Outcomes in pool order, one contiguous plane per (area, threshold).
    let n = all.len();
    let at_n = a_n * t_n;
    let mut planes = vec![0u8; at_n * n];
    for (pos, &(_, c, j)) in all.iter().enumerate() {
        let c = c as usize;
        let (d, base) = (
            cells.det_off[c + 1] - cells.det_off[c],
            cells.det_off[c] * at_n + j as usize,
        );
        for x in 0..at_n {
            planes[x * n + pos] = cells.state[base + x * d];
        }
    }
    let mut sel: Vec<usize> = Vec::with_capacity(n);
    // (index in the selection, precision there) at each true positive.
    let mut events: Vec<(usize, f64)> = Vec::new();
    let mut suffix_max: Vec<f64> = Vec::new();
    for (m, &max_det) in p.max_dets.iter().enumerate() {
        // Keeping each image's top max_det of the sorted pool preserves the pool's order.
        sel.clear();
        sel.extend((0..n).filter(|&pos| (all[pos].2 as usize) < max_det));
        let nd = sel.len();
        for (a, &gt_count) in npig.iter().enumerate() {
            if gt_count == 0 {
                continue;
            }
            let npig_f = gt_count as f64;
            for t in 0..t_n {
                let plane = &planes[(a * t_n + t) * n..(a * t_n + t + 1) * n];
                events.clear();
                let (mut tp, mut fp) = (0u64, 0u64);
                for (i, &pos) in sel.iter().enumerate() {
                    let v = plane[pos];
                    // Branch-free for the common false positive / ignored outcomes.
                    fp += (v == FP) as u64;
                    if v == TP {
                        tp += 1;
                        let tpf = tp as f64;
                        events.push((i, tpf / (fp as f64 + tpf + f64::EPSILON)));
                    }
                }
                let src = (a * m_n + m) * t_n + t;
                out.recall[src] = if nd > 0 { tp as f64 / npig_f } else { 0.0 };
                // pycocotools makes precision non-increasing from the right (a suffix max).
                // Precision only rises at a true positive, so the suffix max from any index
                // is the larger of the precision there and that of the true positives after.
                suffix_max.clear();
                suffix_max.resize(events.len() + 1, 0.0);
                for k in (0..events.len()).rev() {
                    suffix_max[k] = events[k].1.max(suffix_max[k + 1]);
                }
                let q = &mut out.precision[src * r_n..(src + 1) * r_n];
                let ss = &mut out.scores[src * r_n..(src + 1) * r_n];
                q.fill(0.0);
                ss.fill(0.0);
                if nd == 0 {
                    continue;
                }
                // numpy.searchsorted(recall, thr, side='left'): recall is tp/npig, constant
                // between true positives; index 0 holds 0 or 1/npig.
                let first_tp = events.first().is_some_and(|e| e.0 == 0);
                let rc0 = if first_tp { 1.0 / npig_f } else { 0.0 };
                let mut k = 0;
                for (r, &thr) in p.rec_thrs.iter().enumerate() {
                    let (pi, prec) = if rc0 >= thr {
                        (0, suffix_max[0])
                    } else {
                        while k < events.len() && ((k + 1) as f64 / npig_f) < thr {
                            k += 1;
                        }
                        if k == events.len() {
                            break;
                        }
                        (events[k].0, suffix_max[k])
                    };
                    q[r] = prec;
                    ss[r] = all[sel[pi]].0;
                }
            }
        }
    }
    out
}
