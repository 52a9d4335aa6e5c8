//! Hand-made COCO cases whose values follow from pycocotools' rules by hand (no reference run).

use mmrun::eval::EvalError;
use mmrun::eval::coco::{self, Category, CocoGt, CocoParams, Detection, GtAnnotation};

fn gt_ann(id: i64, image_id: i64, category_id: i64, bbox: [f64; 4], crowd: bool) -> GtAnnotation {
    GtAnnotation {
        id,
        image_id,
        category_id,
        bbox,
        area: bbox[2] * bbox[3],
        iscrowd: crowd,
        ignore: false,
    }
}

fn det(image_id: i64, category_id: i64, bbox: [f64; 4], score: f64) -> Detection {
    Detection {
        image_id,
        category_id,
        bbox,
        score,
    }
}

fn gt_of(images: &[i64], cats: &[i64], annotations: Vec<GtAnnotation>) -> CocoGt {
    CocoGt {
        images: images.to_vec(),
        categories: cats
            .iter()
            .map(|&id| Category {
                id,
                name: format!("c{id}"),
            })
            .collect(),
        annotations,
    }
}

/// Precision with one true positive and no false positive: `tp / (tp + fp + 2^-52)`.
const P1: f64 = 1.0 / (1.0 + f64::EPSILON);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

#[test]
fn iou_exactly_at_thresholds_matches() {
    // GT 10x10; detection 10x7.5 inside it: IoU = 75/100 = 0.75 exactly, and 0.75 is one of
    // the ten thresholds. It matches at 0.50 … 0.75 (6 thresholds) and fails at 0.80 … 0.95.
    let gt = gt_of(
        &[1],
        &[1],
        vec![gt_ann(1, 1, 1, [0.0, 0.0, 10.0, 10.0], false)],
    );
    let dets = [det(1, 1, [0.0, 0.0, 10.0, 7.5], 0.9)];
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    assert!(close(r.stats[0], 0.6 * P1), "AP {}", r.stats[0]);
    assert!(close(r.stats[1], P1));
    assert!(close(r.stats[2], P1));
    // AR: recall 1 at 6 thresholds, 0 at 4.
    assert!(close(r.stats[8], 0.6));
    // Area 100 is small: small AP equals AP, medium and large have no GT (-1).
    assert!(close(r.stats[3], 0.6 * P1));
    assert_eq!(r.stats[4], -1.0);
    assert_eq!(r.stats[5], -1.0);
}

#[test]
fn crowd_region_absorbs_many_detections() {
    // 50 high-scoring detections inside a crowd region (IoU with a crowd box is intersection
    // over the detection area = 1) are all ignored, so the one true positive, scored lowest,
    // still gives precision 1 (up to pycocotools' 2^-52): AP = P1. AR@1 and AR@10 see only crowd detections: 0.
    let gt = gt_of(
        &[7],
        &[3],
        vec![
            gt_ann(1, 7, 3, [0.0, 0.0, 100.0, 100.0], true),
            gt_ann(2, 7, 3, [200.0, 200.0, 40.0, 40.0], false),
        ],
    );
    let mut dets: Vec<Detection> = (0..50)
        .map(|i| {
            det(
                7,
                3,
                [i as f64, i as f64, 10.0, 10.0],
                0.99 - i as f64 * 0.001,
            )
        })
        .collect();
    dets.push(det(7, 3, [200.0, 200.0, 40.0, 40.0], 0.1));
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    assert!(close(r.stats[0], P1), "AP {}", r.stats[0]);
    assert_eq!(r.stats[6], 0.0, "AR@1");
    assert_eq!(r.stats[7], 0.0, "AR@10");
    assert_eq!(r.stats[8], 1.0, "AR@100");
}

#[test]
fn more_than_100_detections_are_cut_per_image_and_class() {
    // 99 false positives outrank the true positive, which is the 100th detection: kept.
    let gt = gt_of(
        &[1],
        &[1],
        vec![gt_ann(1, 1, 1, [500.0, 500.0, 50.0, 50.0], false)],
    );
    let fps = |n: usize| -> Vec<Detection> {
        (0..n)
            .map(|i| det(1, 1, [i as f64, 0.0, 5.0, 5.0], 0.9 - i as f64 * 1e-4))
            .collect()
    };
    let mut dets = fps(99);
    dets.push(det(1, 1, [500.0, 500.0, 50.0, 50.0], 0.5));
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    // Precision 1/(100 + 2^-52) at every recall threshold and IoU threshold.
    let p = 1.0 / (100.0 + f64::EPSILON);
    assert!(close(r.stats[0], p), "AP {}", r.stats[0]);
    assert_eq!(r.stats[8], 1.0);
    assert_eq!(r.stats[7], 0.0);
    // One more false positive above it pushes the true positive to rank 101: cut.
    let mut dets = fps(100);
    dets.push(det(1, 1, [500.0, 500.0, 50.0, 50.0], 0.5));
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    assert_eq!(r.stats[0], 0.0);
    assert_eq!(r.stats[8], 0.0);
    // With maxDets 1000 it counts again.
    let params = CocoParams {
        max_dets: vec![1, 10, 1000],
        ..CocoParams::default()
    };
    let r = coco::evaluate(&gt, &dets, &params).unwrap();
    assert_eq!(r.stats[8], 1.0);
}

#[test]
fn class_without_ground_truth_is_left_out_of_the_mean() {
    let gt = gt_of(
        &[1, 2],
        &[1, 5],
        vec![gt_ann(1, 1, 1, [0.0, 0.0, 20.0, 20.0], false)],
    );
    let dets = [
        det(1, 1, [0.0, 0.0, 20.0, 20.0], 0.8),
        det(2, 5, [0.0, 0.0, 20.0, 20.0], 0.9),
    ];
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    assert!(close(r.stats[0], P1));
    let table = r.classwise();
    assert_eq!(table[0].0, "c1");
    assert!(close(table[0].1, P1));
    assert!(table[1].1.is_nan());
    // Every entry of the no-GT class is -1.
    let [t_n, r_n, k_n, a_n, m_n] = r.shape();
    for t in 0..t_n {
        for rr in 0..r_n {
            assert_eq!(
                r.precision[(((t * r_n + rr) * k_n + 1) * a_n) * m_n + 2],
                -1.0
            );
        }
    }
}

#[test]
fn empty_results_give_zero_not_minus_one() {
    let gt = gt_of(
        &[1],
        &[1, 2],
        vec![gt_ann(1, 1, 1, [0.0, 0.0, 50.0, 50.0], false)],
    );
    let r = coco::evaluate(&gt, &[], &CocoParams::default()).unwrap();
    assert_eq!(r.stats[0], 0.0);
    assert_eq!(r.stats[8], 0.0);
    assert_eq!(r.stats[3], -1.0, "no small GT");
    assert_eq!(r.metrics()[0], ("bbox_mAP".to_string(), 0.0));
    assert_eq!(r.copypaste(), "0.000 0.000 0.000 -1.000 0.000 -1.000");
}

#[test]
fn duplicate_detection_is_a_false_positive() {
    // Two detections on one GT: the first (higher score) matches, the second is a false
    // positive. Precision at recall 1 is 1/(1 + 2^-52) read at the first detection: AP = that.
    let gt = gt_of(
        &[1],
        &[1],
        vec![gt_ann(1, 1, 1, [0.0, 0.0, 50.0, 50.0], false)],
    );
    let dets = [
        det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.4),
        det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.9),
    ];
    let r = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap();
    assert!(close(r.stats[0], P1));
    // The score at which precision is read is the higher one.
    assert_eq!(r.scores[0], 0.9);
}

#[test]
fn bad_detections_are_reported_all_at_once() {
    let gt = gt_of(
        &[1],
        &[1],
        vec![gt_ann(1, 1, 1, [0.0, 0.0, 5.0, 5.0], false)],
    );
    let dets = [
        det(9, 1, [0.0, 0.0, 5.0, 5.0], 0.5),
        det(1, 4, [0.0, 0.0, 5.0, 5.0], 0.5),
        det(1, 1, [0.0, 0.0, 5.0, 5.0], f64::NAN),
        det(1, 1, [0.0, 0.0, -5.0, 5.0], 0.5),
    ];
    let err = coco::evaluate(&gt, &dets, &CocoParams::default()).unwrap_err();
    let EvalError::Invalid { problems, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    let text = err.to_string();
    for needle in [
        "detection [0]: image_id 9",
        "detection [1]: category_id 4",
        "detection [2]: score NaN",
        "detection [3]: bbox has a negative width",
    ] {
        assert!(text.contains(needle), "{text}");
    }
}

#[test]
fn malformed_ground_truth_names_the_problem() {
    let err = CocoGt::from_json_bytes(br#"{"images": [{"id": 1}], "categories": [{"id": 1}],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0,0,1,1], "area": 1}]}"#)
    .unwrap_err();
    assert!(
        err.to_string().contains("image_id 2 is not in images"),
        "{err}"
    );
    let err = CocoGt::from_json_bytes(br#"{"images": [{"id": 1}], "categories": []"#).unwrap_err();
    assert!(matches!(err, EvalError::Json { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    let err =
        coco::load_detections_bytes(br#"[{"image_id": 1, "category_id": 1, "bbox": [0,0,1]}]"#)
            .unwrap_err();
    assert!(err.to_string().contains("malformed JSON"), "{err}");
}

#[test]
fn iscrowd_flag_and_extra_fields_parse() {
    let gt = CocoGt::from_json_bytes(
        br#"{"info": {}, "images": [{"id": 3, "width": 10}], "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [0,0,4,4], "area": 9,
        "iscrowd": true, "segmentation": [[0,0,1,1]]}]}"#,
    )
    .unwrap();
    assert!(gt.annotations[0].iscrowd);
    assert_eq!(gt.annotations[0].area, 9.0);
}
