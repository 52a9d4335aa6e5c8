//! Pairwise overlaps between two box sets: IoU, GIoU and IoF (intersection over the first
//! box's area), with mmdetection's `bbox_overlaps` semantics and torchvision's `box_iou` /
//! `generalized_box_iou` as the `eps = None` case.

use super::{BBox, Real, area};

/// What [`bbox_overlaps`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlapMode {
    /// Intersection over union.
    Iou,
    /// Intersection over the area of the box from the *first* set ("foreground").
    Iof,
    /// Generalized IoU: `iou - (enclosing - union) / enclosing`.
    Giou,
}

/// Pairwise overlaps, row-major `[a.len() × b.len()]`.
///
/// `eps = Some(e)` clamps the denominators from below at `e` (mmdetection uses `1e-6`, so
/// degenerate boxes give 0 instead of NaN); `eps = None` divides unclamped as torchvision does.
/// The arithmetic order matches both references (`(area1 + area2) - inter`), so results agree
/// bit for bit on well-formed boxes.
pub fn bbox_overlaps<T: Real>(
    a: &[BBox<T>],
    b: &[BBox<T>],
    mode: OverlapMode,
    eps: Option<T>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    let areas_b: Vec<T> = b.iter().map(area).collect();
    for ba in a {
        let area_a = area(ba);
        for (bb, &area_b) in b.iter().zip(&areas_b) {
            out.push(pair(ba, bb, area_a, area_b, mode, eps));
        }
    }
    out
}

/// Overlap of one pair, areas precomputed.
#[inline]
pub(crate) fn pair<T: Real>(
    a: &BBox<T>,
    b: &BBox<T>,
    area_a: T,
    area_b: T,
    mode: OverlapMode,
    eps: Option<T>,
) -> T {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(T::ZERO);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(T::ZERO);
    let inter = w * h;
    let clamp = |v: T| match eps {
        Some(e) => v.max(e),
        None => v,
    };
    let union = match mode {
        OverlapMode::Iou | OverlapMode::Giou => area_a + area_b - inter,
        OverlapMode::Iof => area_a,
    };
    let union = clamp(union);
    let iou = inter / union;
    if mode != OverlapMode::Giou {
        return iou;
    }
    let ew = (a[2].max(b[2]) - a[0].min(b[0])).max(T::ZERO);
    let eh = (a[3].max(b[3]) - a[1].min(b[1])).max(T::ZERO);
    let enclose = clamp(ew * eh);
    iou - (enclose - union) / enclose
}

/// torchvision's `box_iou`: IoU matrix `[a.len() × b.len()]`, no eps.
pub fn box_iou<T: Real>(a: &[BBox<T>], b: &[BBox<T>]) -> Vec<T> {
    bbox_overlaps(a, b, OverlapMode::Iou, None)
}

/// torchvision's `generalized_box_iou`: GIoU matrix `[a.len() × b.len()]`, no eps.
pub fn generalized_box_iou<T: Real>(a: &[BBox<T>], b: &[BBox<T>]) -> Vec<T> {
    bbox_overlaps(a, b, OverlapMode::Giou, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_pairs() {
        let a = [[0.0, 0.0, 2.0, 2.0]];
        let b = [[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]];
        let iou = box_iou(&a, &b);
        assert_eq!(iou, vec![1.0 / 7.0, 0.0]);
        let iof = bbox_overlaps(&a, &b, OverlapMode::Iof, Some(1e-6));
        assert_eq!(iof, vec![0.25, 0.0]);
        let giou = generalized_box_iou(&a, &b);
        // enclosing boxes 3x3 and 5x5; unions 7 and 5.
        assert!((giou[0] - (1.0 / 7.0 - 2.0 / 9.0)).abs() < 1e-15);
        assert!((giou[1] - (0.0 - 20.0 / 25.0)).abs() < 1e-15);
    }

    #[test]
    fn degenerate_boxes_give_zero_with_eps_and_nan_without() {
        let a = [[1.0f32, 1.0, 1.0, 1.0]];
        assert_eq!(
            bbox_overlaps(&a, &a, OverlapMode::Iou, Some(1e-6)),
            vec![0.0]
        );
        assert!(box_iou(&a, &a)[0].is_nan());
    }
}
