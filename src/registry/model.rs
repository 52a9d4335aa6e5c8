//! Model components: detectors, backbones, necks, heads, anchors, assigners, box coders,
//! losses, NMS, norm layers, initialisation.
//!
//! Over 600 lines on purpose: one table, one `Def` per component, read top to bottom; split by
//! category it would scatter the shared types (`NORM`, `CHANNELS`, `LEVELS`, `CLASSES`) and
//! parameter lists (`RESNET`, `FPN`) that several components reuse.

use super::{Category::*, Component, Def, INT, NAT, NONNEG, NUM, POS, Param, Ty, UNIT, p};

/// The settings of `batch_norm` and `sync_batch_norm` (mmdetection's BN and SyncBN).
const BATCH_NORM_PARAMS: &[Param] = &[
    p(
        "requires_grad",
        Ty::Bool,
        Def::Bool(true),
        "train the affine parameters",
    ),
    p("eps", NONNEG, Def::Float(1e-5), "added to the variance"),
    p(
        "momentum",
        UNIT,
        Def::Float(0.1),
        "running-statistics momentum",
    ),
];

const NORM: Ty = Ty::Nullable(&Ty::Comp(Norm));
const INTS: Ty = Ty::List(&POS);
// Structural sizes are bounded: a typo of 100000 stacked convs or a million channels would
// otherwise build a graph for minutes or allocate terabytes before `exec`'s memory check.
// The bounds are far past any published detector (mmdetection's largest use 2048 channels,
// 7 convs per tower, 7 levels, 1203 classes).
/// Channels of a layer.
const CHANNELS: Ty = Ty::Int {
    min: 1,
    max: 16_384,
};
const CHANNEL_LIST: Ty = Ty::List(&CHANNELS);
/// Convolutions in a head tower.
const TOWER: Ty = Ty::Int { min: 0, max: 32 };
/// Feature levels a neck outputs.
const LEVELS: Ty = Ty::Int { min: 1, max: 16 };
/// Object classes of a head.
const CLASSES: Ty = Ty::Int {
    min: 1,
    max: 100_000,
};
const FLOATS: Ty = Ty::List(&NUM);
/// A positive size in pixels.
const SCALE: Ty = Ty::Float {
    min: 1e-6,
    max: f64::INFINITY,
};

const RESNET: &[Param] = &[
    p(
        "depth",
        Ty::Int { min: 18, max: 152 },
        Def::Required,
        "18, 34, 50, 101 or 152",
    ),
    p(
        "in_channels",
        CHANNELS,
        Def::Int(3),
        "channels of the input image",
    ),
    p(
        "base_channels",
        CHANNELS,
        Def::Int(64),
        "width of the stem; stages are 1, 2, 4, 8 times it (before expansion)",
    ),
    p(
        "num_stages",
        Ty::Int { min: 1, max: 4 },
        Def::Int(4),
        "residual stages used",
    ),
    p(
        "out_indices",
        Ty::List(&NAT),
        Def::Ints(&[0, 1, 2, 3]),
        "stages whose outputs go to the neck (0-based)",
    ),
    p(
        "strides",
        INTS,
        Def::Ints(&[1, 2, 2, 2]),
        "stride of the first block of each stage",
    ),
    p(
        "style",
        Ty::Enum(&["pytorch", "caffe"]),
        Def::Str("pytorch"),
        "where the stride-2 conv sits in a bottleneck",
    ),
    p(
        "frozen_stages",
        Ty::Int { min: -1, max: 4 },
        Def::Int(-1),
        "stages whose weights are frozen (-1: none; 0: the stem)",
    ),
    p(
        "norm_cfg",
        NORM,
        Def::Comp("batch_norm"),
        "normalisation layer",
    ),
    p(
        "norm_eval",
        Ty::Bool,
        Def::Bool(true),
        "keep batch-norm layers in eval mode (frozen statistics) while training",
    ),
    p(
        "zero_init_residual",
        Ty::Bool,
        Def::Bool(true),
        "zero-initialise the last norm of each residual block",
    ),
    p(
        "init_cfg",
        Ty::Nullable(&Ty::Comp(Init)),
        Def::Null,
        "pretrained weights",
    ),
];

const FPN: &[Param] = &[
    p(
        "in_channels",
        CHANNEL_LIST,
        Def::Required,
        "channels of each backbone output",
    ),
    p(
        "out_channels",
        CHANNELS,
        Def::Required,
        "channels of every output level",
    ),
    p("num_outs", LEVELS, Def::Required, "number of output levels"),
    p(
        "start_level",
        NAT,
        Def::Int(0),
        "first backbone output used",
    ),
    p(
        "end_level",
        INT,
        Def::Int(-1),
        "last backbone output used (-1: the last)",
    ),
    p(
        "add_extra_convs",
        Ty::Enum(&["none", "on_input", "on_lateral", "on_output"]),
        Def::Str("none"),
        "source of the extra levels (`none`: max-pool)",
    ),
    p(
        "relu_before_extra_convs",
        Ty::Bool,
        Def::Bool(false),
        "ReLU before each extra conv",
    ),
    p("norm_cfg", NORM, Def::Null, "normalisation layer"),
];

const ANCHOR: &[Param] = &[
    p(
        "strides",
        INTS,
        Def::Required,
        "stride of each feature level",
    ),
    p(
        "ratios",
        FLOATS,
        Def::Floats(&[0.5, 1.0, 2.0]),
        "anchor height/width ratios",
    ),
    p(
        "scales",
        Ty::Nullable(&FLOATS),
        Def::Null,
        "anchor scales (instead of octave_base_scale)",
    ),
    p(
        "octave_base_scale",
        Ty::Nullable(&NONNEG),
        Def::Null,
        "base scale of the octave",
    ),
    p(
        "scales_per_octave",
        Ty::Nullable(&Ty::Int { min: 1, max: 16 }),
        Def::Null,
        "scales per octave",
    ),
    p(
        "base_sizes",
        Ty::Nullable(&FLOATS),
        Def::Null,
        "base anchor size per level (default: the strides)",
    ),
    p(
        "scale_major",
        Ty::Bool,
        Def::Bool(true),
        "order anchors scale-major (mmdetection's default)",
    ),
    p(
        "center_offset",
        UNIT,
        Def::Float(0.0),
        "anchor centre offset within a cell",
    ),
];

const RETINA_HEAD: &[Param] = &[
    p(
        "num_classes",
        CLASSES,
        Def::Required,
        "object classes (no background)",
    ),
    p(
        "in_channels",
        CHANNELS,
        Def::Int(256),
        "channels of the input feature levels",
    ),
    p("stacked_convs", TOWER, Def::Int(4), "convs in each tower"),
    p(
        "feat_channels",
        CHANNELS,
        Def::Int(256),
        "channels inside the towers",
    ),
    p(
        "anchor_generator",
        Ty::Comp(AnchorGenerator),
        Def::Required,
        "anchors per level",
    ),
    p(
        "bbox_coder",
        Ty::Comp(BoxCoder),
        Def::Comp("delta_xywh"),
        "box regression encoding",
    ),
    p(
        "loss_cls",
        Ty::Comp(Loss),
        Def::Comp("focal_loss"),
        "classification loss",
    ),
    p(
        "loss_bbox",
        Ty::Comp(Loss),
        Def::Comp("l1_loss"),
        "box regression loss",
    ),
    p("norm_cfg", NORM, Def::Null, "normalisation in the towers"),
];

const RPN_HEAD: &[Param] = &[
    p("num_classes", CLASSES, Def::Int(1), "1: objectness"),
    p(
        "in_channels",
        CHANNELS,
        Def::Int(256),
        "channels of the input feature levels",
    ),
    p(
        "feat_channels",
        CHANNELS,
        Def::Int(256),
        "channels of the shared conv",
    ),
    p(
        "anchor_generator",
        Ty::Comp(AnchorGenerator),
        Def::Required,
        "anchors per level",
    ),
    p(
        "bbox_coder",
        Ty::Comp(BoxCoder),
        Def::Comp("delta_xywh"),
        "box regression encoding",
    ),
    p(
        "loss_cls",
        Ty::Comp(Loss),
        Def::Required,
        "objectness loss: cross_entropy_loss { use_sigmoid = true }",
    ),
    p(
        "loss_bbox",
        Ty::Comp(Loss),
        Def::Comp("l1_loss"),
        "box regression loss",
    ),
];

const FCOS_HEAD: &[Param] = &[
    p(
        "num_classes",
        CLASSES,
        Def::Required,
        "object classes (no background)",
    ),
    p(
        "in_channels",
        CHANNELS,
        Def::Int(256),
        "channels of the input feature levels",
    ),
    p("stacked_convs", TOWER, Def::Int(4), "convs in each tower"),
    p(
        "feat_channels",
        CHANNELS,
        Def::Int(256),
        "channels inside the towers",
    ),
    p(
        "strides",
        INTS,
        Def::Ints(&[4, 8, 16, 32, 64]),
        "stride of each feature level",
    ),
    p(
        "regress_ranges",
        Ty::List(&Ty::List(&INT)),
        Def::Null,
        "object size range per level (default: mmdetection's)",
    ),
    p(
        "center_sampling",
        Ty::Bool,
        Def::Bool(false),
        "positives only near the box centre",
    ),
    p(
        "center_sample_radius",
        NONNEG,
        Def::Float(1.5),
        "centre sampling radius in strides",
    ),
    p(
        "norm_on_bbox",
        Ty::Bool,
        Def::Bool(false),
        "divide regression targets by the stride",
    ),
    p(
        "centerness_on_reg",
        Ty::Bool,
        Def::Bool(false),
        "predict centerness from the regression tower",
    ),
    p(
        "bbox_coder",
        Ty::Comp(BoxCoder),
        Def::Comp("distance_point"),
        "box regression encoding",
    ),
    p(
        "loss_cls",
        Ty::Comp(Loss),
        Def::Comp("focal_loss"),
        "classification loss",
    ),
    p(
        "loss_bbox",
        Ty::Comp(Loss),
        Def::Comp("iou_loss"),
        "box regression loss",
    ),
    p(
        "loss_centerness",
        Ty::Comp(Loss),
        Def::Comp("cross_entropy_loss"),
        "centerness loss (use_sigmoid = true)",
    ),
    p(
        "norm_cfg",
        NORM,
        Def::Comp("group_norm"),
        "normalisation in the towers",
    ),
];

/// `pos_weight` and `debug` of every `train_cfg` stage.
const POS_WEIGHT: Param = p(
    "pos_weight",
    NUM,
    Def::Float(-1.0),
    "weight of positive samples (-1: 1)",
);
const DEBUG: Param = p(
    "debug",
    Ty::Bool,
    Def::Bool(false),
    "mmdetection's debug flag (false only: its debug mode has no counterpart here)",
);

const TRAIN_CFG: &[Param] = &[
    p(
        "assigner",
        Ty::Comp(Assigner),
        Def::Required,
        "how anchors/points are matched to ground truth",
    ),
    p(
        "allowed_border",
        INT,
        Def::Int(-1),
        "anchors this far outside the image stay valid (-1: all)",
    ),
    POS_WEIGHT,
    DEBUG,
];

const TEST_CFG: &[Param] = &[
    p(
        "nms_pre",
        POS,
        Def::Int(1000),
        "top-scoring candidates per level before NMS",
    ),
    p(
        "min_bbox_size",
        NONNEG,
        Def::Float(0.0),
        "drop boxes smaller than this",
    ),
    p(
        "score_thr",
        UNIT,
        Def::Float(0.05),
        "drop detections below this score",
    ),
    p(
        "nms",
        Ty::Comp(Nms),
        Def::Comp("nms"),
        "non-maximum suppression",
    ),
    p(
        "max_per_img",
        POS,
        Def::Int(100),
        "detections kept per image",
    ),
];

/// `train_cfg.rpn` (mmdetection's `rpn_r50_fpn.py` defaults).
const RPN_TRAIN_STAGE: &[Param] = &[
    p(
        "assigner",
        Ty::Comp(Assigner),
        Def::Required,
        "how anchors are matched to ground truth",
    ),
    p(
        "sampler",
        Ty::Comp(BoxSampler),
        Def::Required,
        "which assigned anchors train",
    ),
    p(
        "allowed_border",
        INT,
        Def::Int(0),
        "anchors this far outside the image stay valid (-1: all)",
    ),
    POS_WEIGHT,
    DEBUG,
];

/// `test_cfg.rpn`.
const PROPOSAL_TEST: &[Param] = &[
    p(
        "nms_pre",
        POS,
        Def::Int(2000),
        "top-scoring anchors per level before NMS",
    ),
    p(
        "max_per_img",
        POS,
        Def::Int(1000),
        "proposals kept per image",
    ),
    p(
        "nms",
        Ty::Comp(Nms),
        Def::Required,
        "non-maximum suppression per level (mmdetection's RPNs use 0.7)",
    ),
    p(
        "min_bbox_size",
        NONNEG,
        Def::Float(0.0),
        "proposals must be wider and taller than this",
    ),
];

/// The parts every detector has, and those of the detectors with an RPN.
const BACKBONE: Param = p(
    "backbone",
    Ty::Comp(Backbone),
    Def::Required,
    "feature extractor",
);
const NECK: Param = p("neck", Ty::Comp(Neck), Def::Required, "feature pyramid");
const RPN_HEAD_PART: Param = p(
    "rpn_head",
    Ty::Comp(Head),
    Def::Required,
    "region proposal head (rpn_head)",
);
const RPN_STAGE: Param = p(
    "rpn",
    Ty::Record(RPN_TRAIN_STAGE),
    Def::Required,
    "the RPN's assignment and sampling",
);

const RPN_DETECTOR: &[Param] = &[
    BACKBONE,
    NECK,
    RPN_HEAD_PART,
    p(
        "train_cfg",
        Ty::Record(&[RPN_STAGE]),
        Def::Required,
        "training-time assignment",
    ),
    p(
        "test_cfg",
        Ty::Record(&[p(
            "rpn",
            Ty::Record(PROPOSAL_TEST),
            Def::Required,
            "proposal generation",
        )]),
        Def::Required,
        "test-time proposals",
    ),
];

/// `train_cfg.rcnn` (mmdetection's `faster_rcnn_r50_fpn.py` numbers are the recipe's).
const RCNN_TRAIN_STAGE: &[Param] = &[
    p(
        "assigner",
        Ty::Comp(Assigner),
        Def::Required,
        "how proposals are matched to ground truth",
    ),
    p(
        "sampler",
        Ty::Comp(BoxSampler),
        Def::Required,
        "which RoIs train the second stage",
    ),
    POS_WEIGHT,
    DEBUG,
];

/// `test_cfg.rcnn`.
const RCNN_TEST: &[Param] = &[
    p(
        "score_thr",
        UNIT,
        Def::Float(0.05),
        "drop detections below this score",
    ),
    p(
        "nms",
        Ty::Comp(Nms),
        Def::Comp("nms"),
        "non-maximum suppression per class",
    ),
    p(
        "max_per_img",
        POS,
        Def::Int(100),
        "detections kept per image",
    ),
];

const FASTER_RCNN: &[Param] = &[
    BACKBONE,
    NECK,
    RPN_HEAD_PART,
    p(
        "roi_head",
        Ty::Comp(RoiHead),
        Def::Required,
        "second stage on the proposals",
    ),
    p(
        "train_cfg",
        Ty::Record(&[
            RPN_STAGE,
            p(
                "rpn_proposal",
                Ty::Record(PROPOSAL_TEST),
                Def::Required,
                "proposals for the second stage while training",
            ),
            p(
                "rcnn",
                Ty::Record(RCNN_TRAIN_STAGE),
                Def::Required,
                "the second stage's assignment and sampling",
            ),
        ]),
        Def::Required,
        "training-time assignment",
    ),
    p(
        "test_cfg",
        Ty::Record(&[
            p(
                "rpn",
                Ty::Record(PROPOSAL_TEST),
                Def::Required,
                "proposals at test time",
            ),
            p(
                "rcnn",
                Ty::Record(RCNN_TEST),
                Def::Record,
                "detections at test time",
            ),
        ]),
        Def::Required,
        "test-time proposals and detections",
    ),
];

const DETECTOR: &[Param] = &[
    BACKBONE,
    NECK,
    p(
        "bbox_head",
        Ty::Comp(Head),
        Def::Required,
        "dense detection head",
    ),
    p(
        "train_cfg",
        Ty::Record(TRAIN_CFG),
        Def::Required,
        "training-time assignment",
    ),
    p(
        "test_cfg",
        Ty::Record(TEST_CFG),
        Def::Record,
        "test-time post-processing",
    ),
];

pub static COMPONENTS: &[Component] = &[
    Component {
        name: "retinanet",
        category: Detector,
        doc: "RetinaNet: backbone, FPN, anchor-based focal-loss head",
        params: DETECTOR,
    },
    Component {
        name: "fcos",
        category: Detector,
        doc: "FCOS: backbone, FPN, anchor-free head with centerness",
        params: DETECTOR,
    },
    Component {
        name: "rpn",
        category: Detector,
        doc: "Region proposal network: backbone, FPN, RPN head; evaluated by proposal recall",
        params: RPN_DETECTOR,
    },
    Component {
        name: "faster_rcnn",
        category: Detector,
        doc: "Faster R-CNN: backbone, FPN, RPN head, RoI head on the proposals",
        params: FASTER_RCNN,
    },
    Component {
        name: "standard_roi_head",
        category: RoiHead,
        doc: "StandardRoIHead: RoI features of the proposals into a box head",
        params: &[
            p(
                "bbox_roi_extractor",
                Ty::Comp(RoiExtractor),
                Def::Required,
                "RoI features from the neck's levels",
            ),
            p(
                "bbox_head",
                Ty::Comp(BBoxHead),
                Def::Required,
                "classifier and box refinement per RoI",
            ),
        ],
    },
    Component {
        name: "single_roi_extractor",
        category: RoiExtractor,
        doc: "SingleRoIExtractor: each RoI pooled from the level its scale maps to",
        params: &[
            p(
                "roi_layer",
                Ty::Comp(RoiLayer),
                Def::Required,
                "the pooling op",
            ),
            p(
                "out_channels",
                CHANNELS,
                Def::Required,
                "channels of the pooled features",
            ),
            p(
                "featmap_strides",
                INTS,
                Def::Required,
                "strides of the levels pooled from (the neck's first levels)",
            ),
            p(
                "finest_scale",
                SCALE,
                Def::Float(56.0),
                "RoI scale mapped to the first level",
            ),
        ],
    },
    Component {
        name: "roi_align",
        category: RoiLayer,
        doc: "RoIAlign (mmcv's, average pooling)",
        params: &[
            p(
                "output_size",
                Ty::Int { min: 1, max: 64 },
                Def::Required,
                "output bins per side",
            ),
            p(
                "sampling_ratio",
                NAT,
                Def::Int(0),
                "samples per bin per side (0: adaptive)",
            ),
            p(
                "aligned",
                Ty::Bool,
                Def::Bool(true),
                "pixel centres at +0.5",
            ),
        ],
    },
    Component {
        name: "shared2fc_bbox_head",
        category: BBoxHead,
        doc: "Shared2FCBBoxHead: two shared fc layers, softmax classes, class-specific deltas",
        params: &[
            p(
                "in_channels",
                CHANNELS,
                Def::Int(256),
                "channels of the RoI features",
            ),
            p(
                "fc_out_channels",
                CHANNELS,
                Def::Int(1024),
                "width of the fc layers",
            ),
            p(
                "roi_feat_size",
                Ty::Int { min: 1, max: 64 },
                Def::Int(7),
                "side of the RoI features",
            ),
            p(
                "num_classes",
                CLASSES,
                Def::Required,
                "object classes (no background)",
            ),
            p(
                "bbox_coder",
                Ty::Comp(BoxCoder),
                Def::Required,
                "delta encoding (mmdetection: target_stds = [0.1, 0.1, 0.2, 0.2])",
            ),
            p(
                "reg_class_agnostic",
                Ty::Bool,
                Def::Bool(false),
                "one box for all classes instead of one per class",
            ),
            p(
                "loss_cls",
                Ty::Comp(Loss),
                Def::Comp("cross_entropy_loss"),
                "classification loss (softmax)",
            ),
            p(
                "loss_bbox",
                Ty::Comp(Loss),
                Def::Comp("l1_loss"),
                "box regression loss",
            ),
        ],
    },
    Component {
        name: "resnet",
        category: Backbone,
        doc: "ResNet (He et al.); depth 18/34 basic blocks, 50+ bottlenecks",
        params: RESNET,
    },
    Component {
        name: "fpn",
        category: Neck,
        doc: "Feature pyramid network",
        params: FPN,
    },
    Component {
        name: "retina_head",
        category: Head,
        doc: "RetinaNet head: class and box towers over every level",
        params: RETINA_HEAD,
    },
    Component {
        name: "rpn_head",
        category: Head,
        doc: "RPN head: objectness and box deltas per anchor",
        params: RPN_HEAD,
    },
    Component {
        name: "fcos_head",
        category: Head,
        doc: "FCOS head: class, box distances and centerness per point",
        params: FCOS_HEAD,
    },
    Component {
        name: "anchor_generator",
        category: AnchorGenerator,
        doc: "mmdetection's AnchorGenerator",
        params: ANCHOR,
    },
    Component {
        name: "max_iou",
        category: Assigner,
        doc: "MaxIoUAssigner: positives above pos_iou_thr, negatives below neg_iou_thr",
        params: &[
            p(
                "pos_iou_thr",
                UNIT,
                Def::Required,
                "IoU at or above which an anchor is positive",
            ),
            p(
                "neg_iou_thr",
                Ty::Or(&[UNIT, Ty::List(&UNIT)]),
                Def::Required,
                "IoU below which an anchor is negative, or a [low, high) range",
            ),
            p(
                "min_pos_iou",
                UNIT,
                Def::Float(0.0),
                "least IoU for the best anchor of a box to be positive",
            ),
            p(
                "gt_max_assign_all",
                Ty::Bool,
                Def::Bool(true),
                "assign every anchor tied for a box's best IoU",
            ),
            p(
                "ignore_iof_thr",
                NUM,
                Def::Float(-1.0),
                "IoF with ignored boxes above which anchors are ignored (-1: off)",
            ),
            p(
                "ignore_wrt_candidates",
                Ty::Bool,
                Def::Bool(true),
                "IoF relative to the candidates (not the ignored boxes)",
            ),
            p(
                "match_low_quality",
                Ty::Bool,
                Def::Bool(true),
                "give each box its best anchor even below pos_iou_thr",
            ),
            p(
                "gpu_assign_thr",
                NUM,
                Def::Float(-1.0),
                "mmdetection's GPU/CPU switch; kept for configs moved across",
            ),
        ],
    },
    Component {
        name: "atss",
        category: Assigner,
        doc: "ATSSAssigner: adaptive IoU threshold over the top-k closest anchors per level",
        params: &[
            p("topk", POS, Def::Int(9), "candidates per level"),
            p(
                "ignore_iof_thr",
                NUM,
                Def::Float(-1.0),
                "IoF with ignored boxes above which anchors are ignored (-1: off)",
            ),
        ],
    },
    Component {
        name: "random",
        category: BoxSampler,
        doc: "RandomSampler: a fixed number of assigned priors, a share of them positive, drawn at random",
        params: &[
            p("num", POS, Def::Required, "priors sampled per image"),
            p(
                "pos_fraction",
                UNIT,
                Def::Required,
                "largest share of positives",
            ),
            p(
                "neg_pos_ub",
                NUM,
                Def::Float(-1.0),
                "most negatives per positive (-1: no bound)",
            ),
            p(
                "add_gt_as_proposals",
                Ty::Bool,
                Def::Bool(true),
                "add the ground-truth boxes to the candidates (R-CNN stages)",
            ),
        ],
    },
    Component {
        name: "delta_xywh",
        category: BoxCoder,
        doc: "DeltaXYWHBBoxCoder: (dx, dy, dw, dh) normalised by means and stds",
        params: &[
            p(
                "target_means",
                FLOATS,
                Def::Floats(&[0.0, 0.0, 0.0, 0.0]),
                "subtracted from deltas",
            ),
            p(
                "target_stds",
                FLOATS,
                Def::Floats(&[1.0, 1.0, 1.0, 1.0]),
                "deltas divided by these",
            ),
            p(
                "clip_border",
                Ty::Bool,
                Def::Bool(true),
                "clip decoded boxes to the image",
            ),
            p(
                "add_ctr_clamp",
                Ty::Bool,
                Def::Bool(false),
                "clamp the centre shift when decoding",
            ),
            p(
                "ctr_clamp",
                NONNEG,
                Def::Float(32.0),
                "largest centre shift in pixels",
            ),
        ],
    },
    Component {
        name: "distance_point",
        category: BoxCoder,
        doc: "DistancePointBBoxCoder: distances from a point to the four box sides",
        params: &[p(
            "clip_border",
            Ty::Bool,
            Def::Bool(true),
            "clip decoded boxes to the image",
        )],
    },
    Component {
        name: "focal_loss",
        category: Loss,
        doc: "Sigmoid focal loss (Lin et al.)",
        params: &[
            p("use_sigmoid", Ty::Bool, Def::Bool(true), "must be true"),
            p("gamma", NONNEG, Def::Float(2.0), "focusing parameter"),
            p("alpha", UNIT, Def::Float(0.25), "weight of positives"),
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "cross_entropy_loss",
        category: Loss,
        doc: "Cross-entropy (softmax) or binary cross-entropy (use_sigmoid)",
        params: &[
            p(
                "use_sigmoid",
                Ty::Bool,
                Def::Bool(false),
                "binary cross-entropy per class",
            ),
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "l1_loss",
        category: Loss,
        doc: "L1 loss on box deltas",
        params: &[
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "smooth_l1_loss",
        category: Loss,
        doc: "Smooth L1 (Huber) loss on box deltas",
        params: &[
            p(
                "beta",
                NONNEG,
                Def::Float(1.0),
                "transition point from quadratic to linear",
            ),
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "giou_loss",
        category: Loss,
        doc: "Generalised IoU loss on decoded boxes",
        params: &[
            p("eps", NONNEG, Def::Float(1e-6), "added to denominators"),
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "iou_loss",
        category: Loss,
        doc: "IoU loss on decoded boxes (FCOS)",
        params: &[
            p(
                "mode",
                Ty::Enum(&["linear", "square", "log"]),
                Def::Str("log"),
                "1 - IoU, 1 - IoU², or -log IoU",
            ),
            p("eps", NONNEG, Def::Float(1e-6), "added to denominators"),
            p(
                "reduction",
                Ty::Enum(&["mean", "sum", "none"]),
                Def::Str("mean"),
                "reduction over elements",
            ),
            p(
                "loss_weight",
                NONNEG,
                Def::Float(1.0),
                "multiplier of the loss",
            ),
        ],
    },
    Component {
        name: "nms",
        category: Nms,
        doc: "Greedy non-maximum suppression per class",
        params: &[p(
            "iou_threshold",
            UNIT,
            Def::Float(0.5),
            "suppress boxes overlapping a kept one above this IoU",
        )],
    },
    Component {
        name: "batch_norm",
        category: Norm,
        doc: "Batch normalisation (mmdetection's BN)",
        params: BATCH_NORM_PARAMS,
    },
    Component {
        name: "sync_batch_norm",
        category: Norm,
        doc: "Batch normalisation over the whole batch of every rank (mmdetection's SyncBN; plain batch norm in one process)",
        params: BATCH_NORM_PARAMS,
    },
    Component {
        name: "group_norm",
        category: Norm,
        doc: "Group normalisation (mmdetection's GN)",
        params: &[
            p("num_groups", POS, Def::Int(32), "groups of channels"),
            p(
                "requires_grad",
                Ty::Bool,
                Def::Bool(true),
                "train the affine parameters",
            ),
            p("eps", NONNEG, Def::Float(1e-5), "added to the variance"),
        ],
    },
    Component {
        name: "pretrained",
        category: Init,
        doc: "Load weights from a file: a torchvision/mmcv .pth (no code runs), safetensors, or an mmrun checkpoint folder",
        params: &[
            p("checkpoint", Ty::Path, Def::Required, "checkpoint file"),
            p(
                "prefix",
                Ty::Nullable(&Ty::Str),
                Def::Null,
                "only keys under this prefix, prefix removed",
            ),
            p(
                "strict",
                Ty::Bool,
                Def::Bool(true),
                "every parameter must load with its shape (false: mmcv's strict=False)",
            ),
            p(
                "skip",
                Ty::List(&Ty::Str),
                Def::Strs(&[]),
                "parameters left as initialised (names or dotted prefixes)",
            ),
        ],
    },
];
