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
    let mut sel: Vec<(f64, u32, u32)> = Vec::with_capacity(all.len());
    let (mut rc, mut pr) = (Vec::new(), Vec::new());
    for (m, &max_det) in p.max_dets.iter().enumerate() {
        // Keeping each image's top max_det of the sorted pool preserves the pool's order.
        sel.clear();
        sel.extend(all.iter().filter(|d| (d.2 as usize) < max_det));
        for a in 0..a_n {
            if npig[a] == 0 {
                continue;
            }
            for t in 0..t_n {
                let (mut tp, mut fp) = (0u64, 0u64);
                rc.clear();
                pr.clear();
                for &(_, c, j) in &sel {
                    match cells.outcome(c as usize, j as usize, a, t) {
                        TP => tp += 1,
                        FP => fp += 1,
                        _ => {}
                    }
                    let tpf = tp as f64;
                    rc.push(tpf / npig[a] as f64);
                    pr.push(tpf / (fp as f64 + tpf + f64::EPSILON));
                }
                let nd = sel.len();
                let src = (a * m_n + m) * t_n + t;
                out.recall[src] = if nd > 0 { rc[nd - 1] } else { 0.0 };
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                let q = &mut out.precision[src * r_n..(src + 1) * r_n];
                let ss = &mut out.scores[src * r_n..(src + 1) * r_n];
                q.fill(0.0);
                ss.fill(0.0);
                for (r, &thr) in p.rec_thrs.iter().enumerate() {
                    // numpy.searchsorted(rc, thr, side='left'); past the end, stays 0.
                    let pi = rc.partition_point(|&x| x < thr);
                    if pi >= nd {
                        break;
                    }
                    q[r] = pr[pi];
                    ss[r] = sel[pi].0;
                }
            }
        }
    }
    out
}
