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
    pub det_off: Vec<usize>,
    /// Scores of the kept detections, sorted descending (stable) within each cell.
    pub scores: Vec<f64>,
    /// Outcomes; cell c owns `det_off[c]*A*T .. det_off[c+1]*A*T`, laid out `[a][t][j]`.
    pub state: Vec<u8>,
    /// Ground truth that is neither crowd nor outside the area range, per `[cell][a]`.
    pub npig: Vec<u32>,
}

/// Sort key that orders scores descending (`-0.0` and `0.0` tie, as numpy compares them).
fn descending_key(score: f64) -> u64 {
    let neg = if score == 0.0 { 0.0 } else { -score };
    let b = neg.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Items grouped by cell in pycocotools' order: by cell, then `rank` (descending score for
/// detections: numpy's stable sort by score of the cell's list), then category rank when
/// categories are pooled, then file order. Returns the item indices and CSR offsets per cell.
fn group(
    keys: impl Iterator<Item = Option<(usize, u64, usize)>>,
    n_cells: usize,
) -> (Vec<u32>, Vec<usize>) {
    let mut items: Vec<(u32, u64, u32, u32)> = keys
        .enumerate()
        .filter_map(|(idx, k)| {
            k.map(|(cell, rank, sub)| (cell as u32, rank, sub as u32, idx as u32))
        })
        .collect();
    // Keys are unique (the index is part of them), so an unstable sort keeps file order.
    items.par_sort_unstable();
    let mut off = vec![0usize; n_cells + 1];
    for &(cell, ..) in &items {
        off[cell as usize + 1] += 1;
    }
    for c in 0..n_cells {
        off[c + 1] += off[c];
    }
    (items.into_iter().map(|(.., i)| i).collect(), off)
}

/// The fields matching reads of one ground-truth box, stored contiguously in cell order.
struct GtBox {
    bbox: [f64; 4],
    area: f64,
    crowd: bool,
    id_nonzero: bool,
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
            .map(|a| cell_of(a.image_id, a.category_id).map(|(cell, sub)| (cell, 0, sub))),
        n_cells,
    );
    let (dt_items, dt_off) = group(
        dets.iter().map(|d| {
            cell_of(d.image_id, d.category_id)
                .map(|(cell, sub)| (cell, descending_key(d.score), sub))
        }),
        n_cells,
    );
    // One gathering pass each; everything after reads contiguous memory.
    let gt_boxes: Vec<GtBox> = gt_items
        .par_iter()
        .map(|&i| {
            let a = &gt.annotations[i as usize];
            GtBox {
                bbox: a.bbox,
                area: a.area,
                crowd: a.iscrowd,
                id_nonzero: a.id != 0,
            }
        })
        .collect();
    let dt_boxes: Vec<(f64, [f64; 4])> = dt_items
        .par_iter()
        .map(|&i| (dets[i as usize].score, dets[i as usize].bbox))
        .collect();
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
            let g = &gt_boxes[gt_off[c]..gt_off[c + 1]];
            let d = &dt_boxes[dt_off[c]..dt_off[c + 1]];
            let kept = det_off[c + 1] - det_off[c];
            let cell = CellOut {
                scores: &mut s[so..so + kept],
                state: &mut st[sto..sto + kept * at],
                npig: &mut n[(c - c0) * n_areas..(c - c0 + 1) * n_areas],
            };
            evaluate_cell(g, d, p, cell, &mut scratch);
            so += kept;
            sto += kept * at;
        }
    });
    Cells {
        n_imgs,
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
    ious: Vec<f64>,
    /// IoU rows with the columns in the area range's GT order.
    sorted_ious: Vec<f64>,
    ignore: Vec<bool>,
    crowd: Vec<bool>,
    id_nonzero: Vec<bool>,
    gtind: Vec<usize>,
    matched: Vec<bool>,
    det_outside: Vec<bool>,
}

/// One cell: `g` in file order, `d` sorted by descending score (ties in file order).
fn evaluate_cell(
    g: &[GtBox],
    d: &[(f64, [f64; 4])],
    p: &CocoParams,
    out: CellOut,
    s: &mut Scratch,
) {
    if g.is_empty() && d.is_empty() {
        return;
    }
    // Cut at the largest maxDets.
    let nd = out.scores.len();
    let d = &d[..nd];
    for (o, det) in out.scores.iter_mut().zip(d) {
        *o = det.0;
    }
    let ng = g.len();
    let n_thrs = p.iou_thrs.len();
    if ng == 0 {
        // Nothing to match: each detection is a false positive, or ignored outside the range.
        for (ai, rng) in p.area_rng.iter().enumerate() {
            let row = &mut out.state[ai * n_thrs * nd..(ai + 1) * n_thrs * nd];
            for (j, (_, b)) in d.iter().enumerate() {
                let a = b[2] * b[3];
                let v = if a < rng[0] || a > rng[1] {
                    IGNORED
                } else {
                    FP
                };
                for t in 0..n_thrs {
                    row[t * nd + j] = v;
                }
            }
        }
        return;
    }
    s.ious.clear();
    for (_, db) in d {
        for gb in g {
            s.ious.push(iou(db, &gb.bbox, gb.crowd));
        }
    }
    for (ai, rng) in p.area_rng.iter().enumerate() {
        let outside = |area: f64| area < rng[0] || area > rng[1];
        // Ignored ground truth (crowd, or outside the range) goes last, stably.
        s.ignore.clear();
        s.gtind.clear();
        s.crowd.clear();
        s.id_nonzero.clear();
        for pass in [false, true] {
            for (gi, gb) in g.iter().enumerate() {
                let ig = gb.crowd || outside(gb.area);
                if ig == pass {
                    s.gtind.push(gi);
                    s.ignore.push(ig);
                    s.crowd.push(gb.crowd);
                    s.id_nonzero.push(gb.id_nonzero);
                }
            }
        }
        out.npig[ai] = s.ignore.iter().filter(|&&ig| !ig).count() as u32;
        s.sorted_ious.clear();
        for j in 0..nd {
            let row = &s.ious[j * ng..(j + 1) * ng];
            s.sorted_ious.extend(s.gtind.iter().map(|&g| row[g]));
        }
        s.det_outside.clear();
        s.det_outside
            .extend(d.iter().map(|(_, b)| outside(b[2] * b[3])));
        for (ti, &thr) in p.iou_thrs.iter().enumerate() {
            let row = &mut out.state[(ai * n_thrs + ti) * nd..(ai * n_thrs + ti + 1) * nd];
            s.matched.clear();
            s.matched.resize(ng, false);
            let thr = thr.min(1.0 - 1e-10);
            let rows = s.sorted_ious.chunks_exact(ng);
            for ((out_j, ious), &det_outside) in row.iter_mut().zip(rows).zip(&s.det_outside) {
                let mut best = thr;
                let mut m: Option<usize> = None;
                for (pos, &v) in ious.iter().enumerate() {
                    if s.matched[pos] && !s.crowd[pos] {
                        continue;
                    }
                    // Matched to a regular box: ignored boxes (sorted last) cannot replace it.
                    if let Some(mm) = m
                        && !s.ignore[mm]
                        && s.ignore[pos]
                    {
                        break;
                    }
                    if v < best {
                        continue;
                    }
                    best = v;
                    m = Some(pos);
                }
                // pycocotools records the matched GT's id; an id of 0 reads as "unmatched".
                let dtm = m.is_some_and(|mm| s.id_nonzero[mm]);
                if let Some(mm) = m {
                    s.matched[mm] = true;
                }
                let ignored = m.is_some_and(|mm| s.ignore[mm]) || (!dtm && det_outside);
                *out_j = if ignored {
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
