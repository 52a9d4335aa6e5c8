//! mmdetection's numpy `bbox_overlaps` (IoU of `[x1, y1, x2, y2]` boxes), shared by VOC mAP
//! and proposal recall.

/// IoU as mmdetection's `bbox_overlaps(mode='iou')`: with `legacy` coordinates a box spans
/// `x2 - x1 + 1` pixels (VOC); the union is clamped to at least 1e-6.
pub fn bbox_iou(a: &[f64], b: &[f64], legacy: bool) -> f64 {
    let extra = if legacy { 1.0 } else { 0.0 };
    let area_a = (a[2] - a[0] + extra) * (a[3] - a[1] + extra);
    let area_b = (b[2] - b[0] + extra) * (b[3] - b[1] + extra);
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + extra).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + extra).max(0.0);
    let overlap = w * h;
    overlap / (area_a + area_b - overlap).max(1e-6)
}

/// Box area with mmdetection's coordinate convention.
pub fn area(b: &[f64], legacy: bool) -> f64 {
    let extra = if legacy { 1.0 } else { 0.0 };
    (b[2] - b[0] + extra) * (b[3] - b[1] + extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        // Two 10x10 boxes overlapping in a 5x10 strip: 50 / 150.
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert_eq!(bbox_iou(&a, &b, false), 50.0 / 150.0);
        // Legacy: 11x11 boxes, overlap 6x11 = 66, union 242 - 66 = 176.
        assert_eq!(bbox_iou(&a, &b, true), 66.0 / 176.0);
        assert_eq!(bbox_iou(&a, &[20.0, 20.0, 30.0, 30.0], false), 0.0);
        assert_eq!(area(&a, true), 121.0);
    }
}
