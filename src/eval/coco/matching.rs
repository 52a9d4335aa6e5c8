//! Per (category, image) cell: IoU between score-sorted detections and ground truth, then
//! pycocotools' greedy matching at every IoU threshold and area range (`computeIoU` and
//! `evaluateImg`). Cells run in parallel; results go into flat arrays sized by the number of
//! detections kept, not by images × categories × thresholds.

use super::data::{CocoGt, Detection};
use super::params::CocoParams;
use rayon::prelude::*;
use std::collections::HashMap;

/// Outcome of one kept detection at one (area range, IoU threshold).
pub(super) const FP: u8 = 0;
pub(super) const TP: u8 = 1;
pub(super) const IGNORED: u8 = 2;

/// Matching results of every cell. Cell `c = k * n_imgs + i` (k: category slot, i: image in
/// sorted id order); its kept detections are `det_off[c]..det_off[c + 1]`.
pub(super) struct Cells {
    pub n_imgs: usize,
    pub n_areas: usize,
    pub n_thrs: usize,
    pub det_off: Vec<usize>,
    /// Scores of the kept detections, sorted descending (stable) within each cell.
    pub scores: Vec<f64>,
    /// Outcomes; cell c owns `det_off[c]*A*T .. det_off[c+1]*A*T`, laid out `[a][t][j]`.
    pub state: Vec<u8>,
    /// Ground truth that is neither crowd nor outside the area range, per `[cell][a]`.
    pub npig: Vec<u32>,
}

impl Cells {
    /// Outcome of detection `j` (rank in its cell) of cell `c` at area `a`, threshold `t`.
    #[inline]
    pub fn outcome(&self, c: usize, j: usize, a: usize, t: usize) -> u8 {
        let d = self.det_off[c + 1] - self.det_off[c];
        self.state[self.det_off[c] * self.n_areas * self.n_thrs + (a * self.n_thrs + t) * d + j]
    }
}

/// Items grouped by cell in pycocotools' order: by cell, then (when categories are pooled) by
/// category rank, then file order. Returns the item indices and the CSR offsets per cell.
fn group(
    keys: impl Iterator<Item = Option<(usize, usize)>>,
    n_cells: usize,
) -> (Vec<u32>, Vec<usize>) {
    let mut items: Vec<(u32, u32, u32)> = keys
        .enumerate()
        .filter_map(|(idx, k)| k.map(|(cell, sub)| (cell as u32, sub as u32, idx as u32)))
        .collect();
    // Keys are unique (the index is part of them), so an unstable sort keeps file order.
    items.par_sort_unstable();
    let mut off = vec![0usize; n_cells + 1];
    for &(cell, _, _) in &items {
        off[cell as usize + 1] += 1;
    }
    for c in 0..n_cells {
        off[c + 1] += off[c];
    }
    (items.into_iter().map(|(_, _, i)| i).collect(), off)
}

/// IoU of detection box `d` with ground truth `g` as pycocotools' `bbIou` (crowd: the
/// intersection over the detection's area).
#[inline]
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

/// Evaluate every cell (pycocotools `evaluate()`).
pub(super) fn evaluate_cells(gt: &CocoGt, dets: &[Detection], p: &CocoParams) -> Cells {
    let imgs = p.imgs();
    let cats = p.cats();
    let n_imgs = imgs.len();
    let img_idx: HashMap<i64, usize> = imgs.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let cat_idx: HashMap<i64, usize> = cats.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let n_cells = p.k_slots() * n_imgs;
    let cell_of = |img: i64, cat: i64| -> Option<(usize, usize)> {
        let i = *img_idx.get(&img)?;
        let k = *cat_idx.get(&cat)?;
        Some(if p.use_cats {
            (k * n_imgs + i, 0)
        } else {
            (i, k)
        })
    };
    let (gt_items, gt_off) = group(
        gt.annotations
            .iter()
            .map(|a| cell_of(a.image_id, a.category_id)),
        n_cells,
    );
    let (dt_items, dt_off) = group(
        dets.iter().map(|d| cell_of(d.image_id, d.category_id)),
        n_cells,
    );
    let max_det = *p.max_dets.last().unwrap_or(&0);
    let mut det_off = vec![0usize; n_cells + 1];
    for c in 0..n_cells {
        det_off[c + 1] = det_off[c] + (dt_off[c + 1] - dt_off[c]).min(max_det);
    }
    let (n_areas, n_thrs) = (p.area_rng.len(), p.iou_thrs.len());
    let at = n_areas * n_thrs;
    let mut scores = vec![0.0; det_off[n_cells]];
    let mut state = vec![0u8; det_off[n_cells] * at];
    let mut npig = vec![0u32; n_cells * n_areas];

    // Hand each block of cells its own contiguous pieces of the outputs.
    const BLOCK: usize = 64;
    let mut jobs = Vec::with_capacity(n_cells / BLOCK + 1);
    {
        let (mut s_rest, mut st_rest, mut n_rest) =
            (&mut scores[..], &mut state[..], &mut npig[..]);
        for c0 in (0..n_cells).step_by(BLOCK) {
            let c1 = (c0 + BLOCK).min(n_cells);
            let nd = det_off[c1] - det_off[c0];
            let (s, sr) = std::mem::take(&mut s_rest).split_at_mut(nd);
            let (st, str_) = std::mem::take(&mut st_rest).split_at_mut(nd * at);
            let (n, nr) = std::mem::take(&mut n_rest).split_at_mut((c1 - c0) * n_areas);
            (s_rest, st_rest, n_rest) = (sr, str_, nr);
            jobs.push((c0, c1, s, st, n));
        }
    }
    jobs.into_par_iter().for_each(|(c0, c1, s, st, n)| {
        let mut scratch = Scratch::default();
        let (mut so, mut sto) = (0, 0);
        for c in c0..c1 {
            let g = &gt_items[gt_off[c]..gt_off[c + 1]];
            let d = &dt_items[dt_off[c]..dt_off[c + 1]];
            let kept = det_off[c + 1] - det_off[c];
            let cell = CellOut {
                scores: &mut s[so..so + kept],
                state: &mut st[sto..sto + kept * at],
                npig: &mut n[(c - c0) * n_areas..(c - c0 + 1) * n_areas],
            };
            evaluate_cell(gt, dets, g, d, p, cell, &mut scratch);
            so += kept;
            sto += kept * at;
        }
    });
    Cells {
        n_imgs,
        n_areas,
        n_thrs,
        det_off,
        scores,
        state,
        npig,
    }
}

struct CellOut<'a> {
    scores: &'a mut [f64],
    state: &'a mut [u8],
    npig: &'a mut [u32],
}

/// Buffers reused across the cells of one block.
#[derive(Default)]
struct Scratch {
    order: Vec<u32>,
    ious: Vec<f64>,
    ignore: Vec<bool>,
    gtind: Vec<usize>,
    matched: Vec<bool>,
}

fn evaluate_cell(
    gt: &CocoGt,
    dets: &[Detection],
    g_items: &[u32],
    d_items: &[u32],
    p: &CocoParams,
    out: CellOut,
    s: &mut Scratch,
) {
    if g_items.is_empty() && d_items.is_empty() {
        return;
    }
    // Detections by descending score, ties in file order (numpy's stable mergesort), cut at
    // the largest maxDets.
    s.order.clear();
    s.order.extend_from_slice(d_items);
    s.order.sort_by(|&a, &b| {
        let (sa, sb) = (dets[a as usize].score, dets[b as usize].score);
        sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal)
    });
    let nd = out.scores.len();
    s.order.truncate(nd);
    for (o, &di) in out.scores.iter_mut().zip(&s.order) {
        *o = dets[di as usize].score;
    }
    let ng = g_items.len();
    s.ious.clear();
    for &di in &s.order {
        let db = &dets[di as usize].bbox;
        for &gi in g_items {
            let a = &gt.annotations[gi as usize];
            s.ious.push(iou(db, &a.bbox, a.iscrowd));
        }
    }
    let n_thrs = p.iou_thrs.len();
    for (ai, rng) in p.area_rng.iter().enumerate() {
        let outside = |area: f64| area < rng[0] || area > rng[1];
        // Ignored ground truth (crowd, or outside the range) goes last, stably.
        s.ignore.clear();
        s.gtind.clear();
        for pass in [false, true] {
            for (g, &gi) in g_items.iter().enumerate() {
                let a = &gt.annotations[gi as usize];
                let ig = a.iscrowd || outside(a.area);
                if ig == pass {
                    s.gtind.push(g);
                    s.ignore.push(ig);
                }
            }
        }
        out.npig[ai] = s.ignore.iter().filter(|&&ig| !ig).count() as u32;
        for (ti, &thr) in p.iou_thrs.iter().enumerate() {
            let row = &mut out.state[(ai * n_thrs + ti) * nd..(ai * n_thrs + ti + 1) * nd];
            s.matched.clear();
            s.matched.resize(ng, false);
            for (j, &di) in s.order.iter().enumerate() {
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (pos, &g) in s.gtind.iter().enumerate() {
                    let gann = &gt.annotations[g_items[g] as usize];
                    if s.matched[pos] && !gann.iscrowd {
                        continue;
                    }
                    // Matched to a regular box: ignored boxes (sorted last) cannot replace it.
                    if let Some(mm) = m
                        && !s.ignore[mm]
                        && s.ignore[pos]
                    {
                        break;
                    }
                    let v = s.ious[j * ng + g];
                    if v < best {
                        continue;
                    }
                    best = v;
                    m = Some(pos);
                }
                let det = &dets[di as usize];
                // pycocotools records the matched GT's id; an id of 0 reads as "unmatched".
                let dtm = m.is_some_and(|mm| gt.annotations[g_items[s.gtind[mm]] as usize].id != 0);
                if let Some(mm) = m {
                    s.matched[mm] = true;
                }
                let ignored = m.is_some_and(|mm| s.ignore[mm])
                    || (!dtm && outside(det.bbox[2] * det.bbox[3]));
                row[j] = if ignored {
                    IGNORED
                } else if dtm {
                    TP
                } else {
                    FP
                };
            }
        }
    }
}
