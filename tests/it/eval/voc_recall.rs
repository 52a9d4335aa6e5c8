//! VOC mAP (`eval_map`) and `proposal_fast` recall on cases computed by hand from
//! mmdetection's definitions.

use mmrun::eval::recall::{default_iou_thrs, eval_recalls, proposal_fast_metrics};
use mmrun::eval::voc::{self, ApMode, ImageDetections, VocAnnotation, VocParams};

/// Two images, two classes. Class 0: image 0 has GT A, image 1 has GT B and a difficult box C.
/// Detections by score: 0.9 on A (TP), 0.8 on nothing (FP), 0.7 on C (ignored), 0.6 on B (TP).
/// Class 1 has no ground truth, one false positive.
fn case() -> (Vec<ImageDetections>, Vec<VocAnnotation>) {
    let dets = vec![
        vec![
            vec![[0.0, 0.0, 10.0, 10.0, 0.9], [50.0, 50.0, 60.0, 60.0, 0.8]],
            vec![[0.0, 0.0, 10.0, 10.0, 0.95]],
        ],
        vec![
            vec![[0.0, 0.0, 10.0, 10.0, 0.6], [20.0, 20.0, 30.0, 30.0, 0.7]],
            vec![],
        ],
    ];
    let anns = vec![
        VocAnnotation {
            bboxes: vec![[0.0, 0.0, 10.0, 10.0]],
            labels: vec![0],
            ..Default::default()
        },
        VocAnnotation {
            bboxes: vec![[0.0, 0.0, 10.0, 10.0]],
            labels: vec![0],
            bboxes_ignore: vec![[20.0, 20.0, 30.0, 30.0]],
            labels_ignore: vec![0],
        },
    ];
    (dets, anns)
}

#[test]
fn voc_area_mode_by_hand() {
    // Cumulative tp 1,1,1,2 and fp 0,1,1,1 over 2 GT: recall .5 .5 .5 1, precision 1 .5 .5 2/3.
    // Envelope: 1 up to recall .5, 2/3 up to 1: AP = .5 * 1 + .5 * 2/3 = 5/6.
    let (dets, anns) = case();
    let r = voc::eval_map(&dets, &anns, &VocParams::default()).unwrap();
    assert!(
        (r.classes[0].ap[0] - 5.0 / 6.0).abs() < 1e-12,
        "{:?}",
        r.classes[0]
    );
    assert_eq!(r.classes[0].num_gts, vec![2]);
    assert_eq!(r.classes[0].num_dets, 4);
    assert_eq!(r.classes[0].recall[0], vec![0.5, 0.5, 0.5, 1.0]);
    assert_eq!(r.classes[1].ap[0], 0.0);
    // Class 1 has no ground truth: left out of the mean.
    assert!((r.mean_ap[0] - 5.0 / 6.0).abs() < 1e-12);
}

#[test]
fn voc_eleven_points_by_hand() {
    // Recall thresholds 0 … 0.5 (6 points) see precision 1; 0.6 … 1.0 (5 points) see 2/3:
    // (6 + 5 * 2/3) / 11 = 28/33.
    let (dets, anns) = case();
    let p = VocParams {
        mode: ApMode::ElevenPoints,
        ..VocParams::default()
    };
    let r = voc::eval_map(&dets, &anns, &p).unwrap();
    assert!(
        (r.mean_ap[0] - 28.0 / 33.0).abs() < 1e-12,
        "{}",
        r.mean_ap[0]
    );
}

#[test]
fn voc_scale_ranges_and_threshold_list() {
    // All boxes are 10x10 (area 100): none in [0², 5²), all in [5², 100²).
    let (dets, anns) = case();
    let p = VocParams {
        scale_ranges: Some(vec![(0.0, 5.0), (5.0, 100.0)]),
        ..VocParams::default()
    };
    let r = voc::eval_map(&dets, &anns, &p).unwrap();
    assert_eq!(r.classes[0].num_gts, vec![0, 2]);
    assert_eq!(r.mean_ap[0], 0.0);
    assert!((r.mean_ap[1] - 5.0 / 6.0).abs() < 1e-12);
    // Every overlap is 0 or 1, so AP is the same at IoU 0.5 and 0.75.
    let m = voc::voc_metrics(&dets, &anns, &[0.5, 0.75], ApMode::Area).unwrap();
    let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["mAP", "AP50", "AP75"]);
    assert_eq!(m[1].1, 0.833);
    assert!((m[0].1 - 5.0 / 6.0).abs() < 1e-12);
}

#[test]
fn voc_rejects_inconsistent_input() {
    let (mut dets, anns) = case();
    dets[0][0][0][4] = f64::NAN;
    let err = voc::eval_map(&dets, &anns, &VocParams::default()).unwrap_err();
    assert!(
        err.to_string().contains("image 0 class 0 detection 0"),
        "{err}"
    );
    let err = voc::eval_map(&dets[..1], &anns, &VocParams::default()).unwrap_err();
    assert!(
        err.to_string().contains("1 images of detections but 2"),
        "{err}"
    );
}

#[test]
fn proposal_fast_recall_by_hand() {
    // GT A and B; proposals by score: P1 = A (IoU 1), P2 covers 72% of B (IoU 0.72), P3 half of
    // A (IoU 0.5, but A is taken by P1 first).
    let gts = vec![vec![[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]]];
    let props = vec![vec![
        [0.0, 0.0, 10.0, 5.0, 0.7],
        [0.0, 0.0, 10.0, 10.0, 0.9],
        [20.0, 0.0, 30.0, 7.2, 0.8],
    ]];
    let thrs = default_iou_thrs();
    let table = eval_recalls(&gts, &props, &[1, 2, 3], &thrs).unwrap();
    // One proposal: A at every threshold, B never.
    assert!(table[0].iter().all(|&r| r == 0.5));
    // Two or three: B reaches 0.50 … 0.70 (5 thresholds) too.
    let expect: Vec<f64> = (0..10).map(|i| if i < 5 { 1.0 } else { 0.5 }).collect();
    assert_eq!(table[1], expect);
    assert_eq!(table[2], expect);
    let m = proposal_fast_metrics(&gts, &props, &[1, 2], &thrs).unwrap();
    assert_eq!(m[0], ("AR@1".to_string(), 0.5));
    assert_eq!(m[1], ("AR@2".to_string(), 0.75));
}
