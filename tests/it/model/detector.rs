//! Detectors built from the canonical recipes: the exact parameter count of RetinaNet R-50-FPN,
//! and tiny RetinaNet / FCOS variants (recipe + `--set` overrides) that train on a fixed batch
//! until their losses fall, then run inference through post-processing.

use mmrun::backend::cpu::CpuBackend;
use mmrun::engine::{Executor, ParamSet};
use mmrun::ir::{DType, HostTensor};
use mmrun::model::assign::ImageGt;
use mmrun::model::config::DetectorConfig;
use mmrun::model::net::{Detector, GraphMode};
use mmrun::model::postprocess::{Decoder, LevelOutput, postprocess, to_coco};
use mmrun::model::target::PaddedShapes;
use mmrun::recipe::{CheckOptions, load};
use mmrun::util::rng::Rng;
use std::path::Path;

/// A detector built from a pipeline recipe with `--set` overrides (no file checks).
pub(crate) fn detector(recipe: &str, sets: &[&str]) -> Detector {
    let opts = CheckOptions {
        no_fs: true,
        ..Default::default()
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(recipe);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let r = load(&path, &sets, &opts).unwrap_or_else(|e| panic!("{e}"));
    let cfg = DetectorConfig::from_value(&r.config["model"]).unwrap();
    Detector::new(cfg).unwrap()
}

#[test]
fn retinanet_r50_fpn_has_mmdetections_parameter_count() {
    let d = detector("retinanet_r50_fpn_1x_coco.recipe", &[]);
    let g = d
        .build(GraphMode::Eval, 1, (800, 1344), DType::F32)
        .unwrap()
        .graph;
    let part = |p: &str| mmrun::plan::param_count(&g, p).0;
    assert_eq!(part("backbone."), 23_508_032);
    assert_eq!(part("neck."), 7_997_440);
    assert_eq!(part("bbox_head."), 6_463_220);
    assert_eq!(g.num_params(), 37_968_692);
}

/// A small network: ResNet-18 at base width 4, 8-channel FPN and head, 3 classes. BN trains
/// (so running statistics are updated) and no stage is frozen.
pub const TINY: &[&str] = &[
    "model.backbone.depth = 18",
    "model.backbone.base_channels = 4",
    "model.backbone.frozen_stages = -1",
    "model.backbone.norm_eval = false",
    "model.neck.in_channels = [4, 8, 16, 32]",
    "model.neck.out_channels = 8",
    "model.bbox_head.in_channels = 8",
    "model.bbox_head.feat_channels = 8",
    "model.bbox_head.stacked_convs = 1",
    "model.bbox_head.num_classes = 3",
];

/// A fixed batch of two 64×64 images with boxes drawn into them.
fn batch(rng: &mut Rng) -> (HostTensor, Vec<ImageGt>) {
    let (n, h, w) = (2, 64, 64);
    let mut img = vec![0f32; n * 3 * h * w];
    let gts = vec![
        ImageGt {
            bboxes: vec![[8.0, 8.0, 40.0, 36.0], [30.0, 34.0, 60.0, 62.0]],
            labels: vec![0, 2],
            bboxes_ignore: vec![],
        },
        ImageGt {
            bboxes: vec![[4.0, 20.0, 52.0, 44.0]],
            labels: vec![1],
            bboxes_ignore: vec![],
        },
    ];
    for (i, gt) in gts.iter().enumerate() {
        for (b, &lab) in gt.bboxes.iter().zip(&gt.labels) {
            for y in b[1] as usize..b[3] as usize {
                for x in b[0] as usize..b[2] as usize {
                    img[((i * 3 + lab) * h + y) * w + x] = 1.0;
                }
            }
        }
    }
    for v in &mut img {
        *v += 0.1 * (rng.uniform_f32() - 0.5);
    }
    (HostTensor::f32(vec![n, 3, h, w], img).unwrap(), gts)
}

/// The fixed batch and each image's targets from `d` (a sampler draws from a stream seeded
/// by the image's index).
fn batch_targets(d: &Detector) -> (HostTensor, Vec<mmrun::model::target::DenseTargets>) {
    let (img, gts) = batch(&mut Rng::seed(7));
    let hw = (64, 64);
    let meta = PaddedShapes {
        img_shape: hw,
        pad_shape: hw,
        batch_shape: hw,
    };
    let targets = (gts.iter().enumerate())
        .map(|(i, g)| (d.target_builder()).targets(g, &meta, &mut Rng::seed(i as u64)))
        .collect::<Result<_, _>>()
        .unwrap();
    (img, targets)
}

/// Train on one batch with SGD; returns the losses.
fn overfit(d: &Detector, iters: usize, lr: f32) -> (Vec<f64>, ParamSet) {
    let mut rng = Rng::seed(7);
    let (img, gts) = batch(&mut rng);
    let hw = (64, 64);
    let tb = d.target_builder();
    let meta = PaddedShapes {
        img_shape: hw,
        pad_shape: hw,
        batch_shape: hw,
    };
    let targets: Vec<_> = gts
        .iter()
        .map(|g| {
            tb.targets(g, &meta, &mut mmrun::util::rng::Rng::seed(0))
                .unwrap()
        })
        .collect();
    assert!(
        targets.iter().all(|t| t.num_pos > 0),
        "every image has positives"
    );
    let built = d.build(GraphMode::Train, 2, hw, DType::F32).unwrap();
    let feeds = (d.train_feeds(img, &targets, hw, &d.loss_normalisers(&targets))).unwrap();
    let mut store = ParamSet::init(&built.graph, 1);
    let mut ex = Executor::new(built.graph, CpuBackend);
    let mut losses = Vec::new();
    for _ in 0..iters {
        let mut out = ex.run(&store, &feeds).unwrap();
        losses.push(out.scalar("loss").unwrap());
        store.take_run(&mut out).unwrap();
        for p in store.iter_mut().filter(|p| p.trainable) {
            let g = std::mem::take(&mut p.grad);
            for (v, d) in p.values_mut().iter_mut().zip(&g) {
                *v -= lr * d;
            }
            p.grad = g;
        }
    }
    (losses, store)
}

/// One level's class, regression and centerness outputs of one image.
type LevelData = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

fn infer(d: &Detector, store: &ParamSet) -> usize {
    let mut rng = Rng::seed(7);
    let (img, _) = batch(&mut rng);
    let built = d.build(GraphMode::Eval, 2, (64, 64), DType::F32).unwrap();
    let mut feeds = std::collections::BTreeMap::new();
    feeds.insert("img".to_string(), img);
    let heads = built.heads.clone();
    let out = Executor::new(built.graph, CpuBackend)
        .run(store, &feeds)
        .unwrap();
    let (mmrun::model::config::DetectorConfig::Retinanet(parts)
    | mmrun::model::config::DetectorConfig::Fcos(parts)) = &d.cfg
    else {
        panic!("a one-stage detector")
    };
    let tb = d.target_builder();
    let sizes = built.featmap_sizes.clone();
    let mut total = 0;
    for i in 0..2 {
        let per = |name: &str| -> Vec<f32> {
            let t = &out.outputs[name];
            let v = t.as_f32().unwrap();
            let k = v.len() / 2;
            v[i * k..(i + 1) * k].to_vec()
        };
        let data: Vec<LevelData> = heads
            .iter()
            .map(|h| (per(&h.cls), per(&h.reg), h.centerness.as_deref().map(per)))
            .collect();
        let levels: Vec<LevelOutput<'_>> = data
            .iter()
            .zip(&heads)
            .map(|((c, r, ctr), h)| LevelOutput {
                cls: c,
                reg: r,
                centerness: ctr.as_deref(),
                h: h.size.0,
                w: h.size.1,
            })
            .collect();
        let dets = match tb {
            mmrun::model::target::TargetBuilder::Anchor(t) => {
                let anchors = t.anchor_generator.grid_anchors(&sizes).unwrap();
                let dec = Decoder::Delta {
                    anchors: &anchors,
                    coder: &t.bbox_coder,
                };
                postprocess(
                    &levels,
                    &dec,
                    d.num_classes(),
                    &parts.test_cfg,
                    (64, 64),
                    [1.0; 4],
                    true,
                )
                .unwrap()
            }
            mmrun::model::target::TargetBuilder::Point(t) => {
                let strides: Vec<(f64, f64)> = t.strides.iter().map(|&s| (s, s)).collect();
                let pts = mmrun::model::anchor::point_grid(&strides, &sizes, 0.5);
                let coder = Default::default();
                let scale: Vec<f32> = t
                    .strides
                    .iter()
                    .map(|&s| if t.norm_on_bbox { s as f32 } else { 1.0 })
                    .collect();
                let dec = Decoder::Distance {
                    points: &pts,
                    coder: &coder,
                    scale: &scale,
                };
                postprocess(
                    &levels,
                    &dec,
                    d.num_classes(),
                    &parts.test_cfg,
                    (64, 64),
                    [1.0; 4],
                    true,
                )
                .unwrap()
            }
        };
        let coco = to_coco(&dets, i as u64 + 1, &[1, 2, 3]).unwrap();
        assert!(
            coco.iter()
                .all(|c| c.bbox[2] >= 0.0 && c.bbox[3] >= 0.0 && c.score > 0.0 && c.score <= 1.0)
        );
        total += coco.len();
    }
    total
}

#[test]
fn tiny_retinanet_overfits_a_fixed_batch() {
    let d = detector("retinanet_r50_fpn_1x_coco.recipe", TINY);
    let (losses, store) = overfit(&d, 40, 0.02);
    eprintln!("retinanet losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[losses.len() - 1] < 0.8 * losses[0],
        "loss did not fall: {losses:?}"
    );
    infer(&d, &store);
}

#[test]
fn tiny_fcos_overfits_a_fixed_batch() {
    let mut sets = TINY.to_vec();
    sets.push("model.bbox_head.loss_bbox := giou_loss { loss_weight = 1.0 }");
    sets.push("model.bbox_head.norm_cfg := group_norm { num_groups = 2 }");
    sets.push("model.bbox_head.center_sampling = true");
    sets.push("model.bbox_head.norm_on_bbox = true");
    let d = detector("fcos_r50_fpn_gn-head_1x_coco.recipe", &sets);
    let (losses, store) = overfit(&d, 20, 0.05);
    eprintln!("fcos losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[losses.len() - 1] < 0.8 * losses[0],
        "loss did not fall: {losses:?}"
    );
    infer(&d, &store);
}

#[test]
fn target_closure_for_the_data_loader_uses_the_batch_bucket() {
    use mmrun::data::{Image, ImageMeta as DataMeta, Sample};
    let d = detector("retinanet_r50_fpn_1x_coco.recipe", TINY);
    let f = mmrun::engine::detector::loader_targets(d.target_builder().clone());
    let mut meta = DataMeta::new(1, "a.jpg", 50, 60);
    meta.pad_shape = [64, 64, 3];
    meta.batch_input_shape = [64, 96];
    let sample = Sample {
        image: Image::from_u8(50, 60, vec![0; 50 * 60 * 3]),
        boxes: vec![[8.0, 8.0, 40.0, 36.0]],
        labels: vec![2],
        ignored: vec![],
        meta,
    };
    let t = f(&sample, &mut mmrun::util::rng::Rng::seed(0)).unwrap();
    // 9 anchors per location over the levels of a 64×96 bucket: 8×12, 4×6, 2×3, 1×2, 1×1.
    assert_eq!(t.labels.len(), 9 * (96 + 24 + 6 + 2 + 1));
    assert!(t.num_pos > 0 && t.labels.iter().filter(|&&l| l == 2).count() == t.num_pos);
    // Anchors in columns beyond the image's pad_shape (64) are ignored: level 0, x ≥ 8.
    let ignored_col = 10 * 9; // row 0, column 10
    assert_eq!(t.label_weights[ignored_col], 0.0);
    let mut bad = sample.clone();
    bad.labels = vec![3];
    let e = f(&bad, &mut mmrun::util::rng::Rng::seed(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label 3") && e.contains("num_classes = 3"),
        "{e}"
    );
}

#[test]
fn rpn_r50_fpn_has_mmdetections_parameter_count() {
    let d = detector("rpn_r50_fpn_1x_coco.recipe", &[]);
    let g = d
        .build(GraphMode::Eval, 1, (800, 1344), DType::F32)
        .unwrap()
        .graph;
    let part = |p: &str| mmrun::plan::param_count(&g, p).0;
    assert_eq!(part("backbone."), 23_508_032);
    assert_eq!(part("neck."), 3_344_384);
    assert_eq!(part("rpn_head."), 593_935);
    assert_eq!(g.num_params(), 27_446_351);
    // frozen_stages = 1: the stem and layer1 do not train.
    assert_eq!(mmrun::plan::param_count(&g, "").1, 27_221_007);
}

/// The tiny RPN: the quickstart RPN's shape at TINY's widths; batch norm frozen (`norm_eval`)
/// so the eval graph's head outputs are the train graph's.
const TINY_RPN: &[&str] = &[
    "model.backbone.base_channels = 4",
    "model.backbone.out_indices = [0, 1, 2, 3]",
    "model.backbone.norm_eval = true",
    "model.neck.in_channels = [4, 8, 16, 32]",
    "model.neck.out_channels = 8",
    "model.neck.num_outs = 4",
    "model.rpn_head.in_channels = 8",
    "model.rpn_head.feat_channels = 8",
    "model.rpn_head.anchor_generator.strides = [4, 8, 16, 32]",
    "model.train_cfg.rpn.sampler.num = 64",
];

const RPN_LOSS: &str = r#"
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
cls, reg = [], []
for lv in d["levels"]:
    n, a, h, w = lv["shape"]
    c = torch.tensor(lv["cls"], dtype=torch.float64).reshape(n, a, h, w)
    r = torch.tensor(lv["reg"], dtype=torch.float64).reshape(n, a * 4, h, w)
    # AnchorHead.loss_single: permute(0, 2, 3, 1) and flatten, image by image over levels
    cls.append(c.permute(0, 2, 3, 1).reshape(n, -1)); reg.append(r.permute(0, 2, 3, 1).reshape(n, -1, 4))
cls = torch.cat(cls, 1).reshape(-1); reg = torch.cat(reg, 1).reshape(-1, 4)
t = d["targets"]
labels = torch.tensor(t["labels"]); lw = torch.tensor(t["label_weights"], dtype=torch.float64)
bt = torch.tensor(t["bbox_targets"], dtype=torch.float64).reshape(-1, 4)
bw = torch.tensor(t["bbox_weights"], dtype=torch.float64)[:, None].expand(-1, 4)
avg = d["avg_factor"]
# CrossEntropyLoss(use_sigmoid=True): one-hot of label 0, background 1 -> 0
target = (labels == 0).double()
loss_cls = (F.binary_cross_entropy_with_logits(cls, target, reduction="none") * lw).sum() / avg
loss_bbox = ((reg - bt).abs() * bw).sum() / avg
print(json.dumps({"loss_rpn_cls": loss_cls.item(), "loss_rpn_bbox": loss_bbox.item()}))
"#;

/// The RPN's losses against PyTorch on the head's own outputs: binary cross-entropy of the
/// sampled anchors' objectness and L1 of the positives' deltas, both divided by
/// `num_total_samples`.
#[test]
fn rpn_losses_equal_torch_on_the_head_outputs() {
    let d = detector("quickstart_rpn.recipe", TINY_RPN);
    let hw = (64, 64);
    let (img, targets) = batch_targets(&d);
    assert!(
        targets
            .iter()
            .all(|t| t.num_pos > 0 && t.num_pos + t.num_neg == 64)
    );
    let norms = d.loss_normalisers(&targets);
    let train = d.build(GraphMode::Train, 2, hw, DType::F32).unwrap();
    let store = ParamSet::init(&train.graph, 3);
    let feeds = d.train_feeds(img.clone(), &targets, hw, &norms).unwrap();
    let out = Executor::new(train.graph, CpuBackend)
        .run(&store, &feeds)
        .unwrap();
    let eval = d.build(GraphMode::Eval, 2, hw, DType::F32).unwrap();
    let mut feeds = std::collections::BTreeMap::new();
    feeds.insert("img".to_string(), img);
    let heads = Executor::new(eval.graph, CpuBackend)
        .run(&store, &feeds)
        .unwrap();
    let levels: Vec<serde_json::Value> = (eval.heads.iter())
        .map(|h| {
            let (y, x) = h.size;
            serde_json::json!({
                "shape": [2, 3, y, x],
                "cls": heads.outputs[&h.cls].as_f32().unwrap(),
                "reg": heads.outputs[&h.reg].as_f32().unwrap(),
            })
        })
        .collect();
    let flat = |f: &dyn Fn(&mmrun::model::target::DenseTargets) -> Vec<f64>| -> Vec<f64> {
        targets.iter().flat_map(f).collect()
    };
    let input = serde_json::json!({
        "levels": levels,
        "avg_factor": norms.counts[0],
        "targets": {
            "labels": flat(&|t| t.labels.iter().map(|&l| l as f64).collect()),
            "label_weights": flat(&|t| t.label_weights.iter().map(|&v| v as f64).collect()),
            "bbox_targets": flat(&|t| t.bbox_targets.iter().flatten().map(|&v| v as f64).collect()),
            "bbox_weights": flat(&|t| t.bbox_weights.iter().map(|&v| v as f64).collect()),
        },
    });
    assert_eq!(
        norms.counts[0],
        targets
            .iter()
            .map(|t| t.num_pos.max(1) + t.num_neg.max(1))
            .sum::<usize>() as f64
    );
    let Some(want) = super::py::run(&["torch"], RPN_LOSS, &input) else {
        return;
    };
    for k in ["loss_rpn_cls", "loss_rpn_bbox"] {
        let (got, want) = (out.scalar(k).unwrap(), want[k].as_f64().unwrap());
        assert!(
            want > 0.0 && (got - want).abs() <= 1e-5 * want,
            "{k}: {got} vs torch {want}"
        );
    }
}

#[test]
fn faster_rcnn_r50_fpn_has_mmdetections_parameter_count() {
    let d = detector("faster_rcnn_r50_fpn_1x_coco.recipe", &[]);
    // The train graph holds both stages (the eval graph is the first stage).
    let g = d
        .build(GraphMode::Train, 1, (320, 320), DType::F32)
        .unwrap()
        .graph;
    let part = |p: &str| mmrun::plan::param_count(&g, p).0;
    assert_eq!(part("backbone."), 23_508_032);
    assert_eq!(part("neck."), 3_344_384);
    assert_eq!(part("rpn_head."), 593_935);
    assert_eq!(part("roi_head."), 14_306_705);
    assert_eq!(g.num_params(), 41_753_056);
    assert_eq!(g.num_trainable(), 41_527_712);
}

/// A tiny Faster R-CNN from the two-stage quickstart, batch norm frozen (`norm_eval`) so the
/// first stage's eval features are the train graph's.
const TINY_TWO_STAGE: &[&str] = &[
    "model.backbone.base_channels = 4",
    "model.backbone.out_indices = [0, 1, 2, 3]",
    "model.backbone.norm_eval = true",
    "model.neck.in_channels = [4, 8, 16, 32]",
    "model.neck.out_channels = 8",
    "model.neck.num_outs = 4",
    "model.rpn_head.in_channels = 8",
    "model.rpn_head.feat_channels = 8",
    "model.rpn_head.anchor_generator.strides = [4, 8, 16, 32]",
    "model.roi_head.bbox_roi_extractor.out_channels = 8",
    "model.roi_head.bbox_roi_extractor.featmap_strides = [4, 8, 16]",
    "model.roi_head.bbox_head.in_channels = 8",
    "model.roi_head.bbox_head.fc_out_channels = 16",
    "model.train_cfg.rcnn.sampler.num = 32",
];

const RCNN_LOSS: &str = r#"
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
cls = torch.tensor(d["cls"], dtype=torch.float64).reshape(d["rows"], -1)
reg = torch.tensor(d["reg"], dtype=torch.float64).reshape(d["rows"], -1, 4)
labels = torch.tensor(d["labels"]); lw = torch.tensor(d["label_weights"], dtype=torch.float64)
C = cls.shape[1] - 1
# BBoxHead.loss: CrossEntropyLoss over the sampled RoIs, avg_factor = max(sum(lw > 0), 1)
loss_cls = (F.cross_entropy(cls, labels, reduction="none") * lw).sum() / max(float((lw > 0).sum()), 1.0)
pos = (labels >= 0) & (labels < C)
pred = reg[pos, labels[pos]]
t = torch.tensor(d["pos_targets"], dtype=torch.float64).reshape(-1, 4)
loss_bbox = (pred - t).abs().sum() / d["sampled"]
print(json.dumps({"loss_cls": loss_cls.item(), "loss_bbox": loss_bbox.item(), "num_pos": int(pos.sum())}))
"#;

/// The second stage's losses against PyTorch on the RoI head's own outputs for the sampled
/// RoIs: mmdetection picks each positive's deltas by its label (`BBoxHead.loss`); mmrun's
/// graph weighs the class-specific columns, so a wrong column would show here.
#[test]
fn rcnn_losses_equal_torch_on_the_head_outputs() {
    let d = detector("quickstart_two_stage.recipe", TINY_TWO_STAGE);
    let hw = (64, 64);
    let (img, targets) = batch_targets(&d);
    let train = d.build(GraphMode::Train, 2, hw, DType::F32).unwrap();
    let store = ParamSet::init(&train.graph, 3);
    let img_feed = std::collections::BTreeMap::from([("img".to_string(), img.clone())]);
    // The first stage's outputs, as the step makes them (eval = train with frozen BN).
    let eval = d.build(GraphMode::Eval, 2, hw, DType::F32).unwrap();
    let first = Executor::new(eval.graph, CpuBackend)
        .run(&store, &img_feed)
        .unwrap();
    let rcnn = d.rcnn_train_feeds(&first.outputs, &targets, hw).unwrap();
    let mut feeds = (d.train_feeds(img, &targets, hw, &d.loss_normalisers(&targets))).unwrap();
    feeds.extend(rcnn.clone());
    let out = Executor::new(train.graph, CpuBackend)
        .run(&store, &feeds)
        .unwrap();
    // The second stage's outputs on the same RoIs over the first stage's features.
    let rows = rcnn["rois"].shape[0];
    let feats: Vec<(String, HostTensor)> = (0..3)
        .map(mmrun::model::net::feat_name)
        .map(|n| (n.clone(), first.outputs[&n].clone()))
        .collect();
    let shapes: Vec<Vec<usize>> = feats.iter().map(|(_, t)| t.shape.clone()).collect();
    let g = d.rcnn_eval_graph(rows, &shapes, DType::F32).unwrap();
    let mut f2: std::collections::BTreeMap<String, HostTensor> = feats.into_iter().collect();
    for k in ["rois", "roi_level_masks"] {
        f2.insert(k.into(), rcnn[k].clone());
    }
    let heads = Executor::new(g, CpuBackend).run(&store, &f2).unwrap();
    let labels: Vec<i64> = (rcnn["rcnn_labels"].as_i32().unwrap().iter())
        .map(|&l| l as i64)
        .collect();
    let bt = rcnn["rcnn_bbox_targets"].as_f32().unwrap();
    let k = bt.len() / rows;
    let pos_targets: Vec<f32> = (labels.iter().enumerate())
        .filter(|(_, l)| (0..6).contains(*l))
        .flat_map(|(r, &l)| bt[r * k + 4 * l as usize..r * k + 4 * l as usize + 4].to_vec())
        .collect();
    let input = serde_json::json!({
        "rows": rows,
        "cls": heads.outputs["rcnn_cls_score"].as_f32().unwrap(),
        "reg": heads.outputs["rcnn_bbox_pred"].as_f32().unwrap(),
        "labels": labels,
        "label_weights": rcnn["rcnn_label_weights"].as_f32().unwrap(),
        "pos_targets": pos_targets,
        "sampled": rcnn["rcnn_bbox_avg_factor"].to_f64_vec()[0],
    });
    let Some(want) = super::py::run(&["torch"], RCNN_LOSS, &input) else {
        return;
    };
    assert!(want["num_pos"].as_u64().unwrap() > 0, "{want}");
    for k in ["loss_cls", "loss_bbox"] {
        let (got, want) = (out.scalar(k).unwrap(), want[k].as_f64().unwrap());
        assert!(
            want > 0.0 && (got - want).abs() <= 1e-5 * want,
            "{k}: {got} vs torch {want}"
        );
    }
}
