//! Non-maximum suppression with torchvision's semantics: boxes visited in order of
//! decreasing score (stable: equal scores keep index order), a box is suppressed when its IoU
//! with a kept box is strictly greater than the threshold, no `+1` in widths.

use super::{BBox, Real, area};

/// Indices of stable descending order of `scores`.
fn order_desc<T: Real>(scores: &[T], idx: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut order: Vec<usize> = idx.collect();
    // NaN scores compare as equal to everything; they keep their relative order.
    order.sort_by(|&i, &j| {
        scores[j]
            .partial_cmp(&scores[i])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

/// NMS over the boxes listed in `order` (already sorted by decreasing score).
fn nms_ordered<T: Real>(boxes: &[BBox<T>], order: &[usize], iou_threshold: T) -> Vec<usize> {
    let areas: Vec<T> = order.iter().map(|&i| area(&boxes[i])).collect();
    let mut suppressed = vec![false; order.len()];
    let mut keep = Vec::new();
    for a in 0..order.len() {
        if suppressed[a] {
            continue;
        }
        let i = order[a];
        keep.push(i);
        let bi = &boxes[i];
        for b in a + 1..order.len() {
            if suppressed[b] {
                continue;
            }
            let bj = &boxes[order[b]];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(T::ZERO);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(T::ZERO);
            let inter = w * h;
            let ovr = inter / (areas[a] + areas[b] - inter);
            if ovr > iou_threshold {
                suppressed[b] = true;
            }
        }
    }
    keep
}

/// torchvision `nms`: indices of kept boxes, sorted by decreasing score.
///
/// # Panics
/// If `boxes` and `scores` differ in length (a caller bug, not user input).
pub fn nms<T: Real>(boxes: &[BBox<T>], scores: &[T], iou_threshold: T) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "nms: boxes and scores differ in length"
    );
    let order = order_desc(scores, 0..boxes.len());
    nms_ordered(boxes, &order, iou_threshold)
}

/// torchvision `batched_nms`: NMS independently per category `idxs[i]`; kept indices sorted
/// by decreasing score (ties in index order), as torchvision's coordinate-offset version
/// returns them.
///
/// # Panics
/// If the three slices differ in length (a caller bug, not user input).
pub fn batched_nms<T: Real>(
    boxes: &[BBox<T>],
    scores: &[T],
    idxs: &[usize],
    iou_threshold: T,
) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "batched_nms: boxes and scores differ in length"
    );
    assert_eq!(
        boxes.len(),
        idxs.len(),
        "batched_nms: boxes and idxs differ in length"
    );
    let order = order_desc(scores, 0..boxes.len());
    // Bucket the global order by category: each bucket stays sorted by score.
    let mut buckets: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for &i in &order {
        buckets.entry(idxs[i]).or_default().push(i);
    }
    let mut keep: Vec<usize> = buckets
        .values()
        .flat_map(|o| nms_ordered(boxes, o, iou_threshold))
        .collect();
    keep.sort_unstable();
    order_desc(scores, keep.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_is_strictly_greater_than_threshold() {
        // IoU of the two boxes is exactly 0.5: torchvision keeps both at threshold 0.5.
        let boxes = [[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]];
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5), vec![0, 1]);
        assert_eq!(nms(&boxes, &[0.8, 0.9], 0.49), vec![1]);
    }

    #[test]
    fn batched_keeps_other_categories() {
        let boxes = [[0.0, 0.0, 1.0, 1.0]; 3];
        let keep = batched_nms(&boxes, &[0.5, 0.9, 0.7], &[0, 0, 1], 0.5);
        assert_eq!(keep, vec![1, 2]);
    }
}
