//! Data components: datasets, transforms, samplers, and the `data` section.

use super::{Category::*, Component, Def, NAT, NONNEG, NUM, POS, Param, Ty, UNIT, p};

/// An image side in pixels, up to the loader's `data::limits::MAX_SIDE` (the registry does
/// not import `data`; `tests/it/recipe/limits.rs` keeps the two equal).
const SIDE: Ty = Ty::Int {
    min: 1,
    max: 16_384,
};
const SCALE: Ty = Ty::List(&SIDE);
/// Images per batch, up to the loader's `data::limits::MAX_BATCH` (kept equal by the same
/// test).
const BATCH: Ty = Ty::Int { min: 1, max: 1_024 };
/// Loader threads, up to `data::limits::MAX_WORKERS` (kept equal by the same test).
const WORKERS: Ty = Ty::Int { min: 0, max: 64 };
/// Batches prepared ahead per worker, up to `data::limits::MAX_PREFETCH` (same test).
const PREFETCH: Ty = Ty::Int { min: 1, max: 64 };
const FLIP: Ty = Ty::Enum(&["horizontal", "vertical", "diagonal"]);

const DATASET: &[Param] = &[
    p("ann_file", Ty::Path, Def::Required, "annotation file"),
    p(
        "img_prefix",
        Ty::Path,
        Def::Required,
        "folder the image file names are relative to",
    ),
    p(
        "pipeline",
        Ty::List(&Ty::Comp(Transform)),
        Def::Required,
        "transform stages, in order",
    ),
    p(
        "classes",
        Ty::Nullable(&Ty::List(&Ty::Str)),
        Def::Null,
        "class names to keep, in label order (default: every category)",
    ),
    p(
        "filter_empty_gt",
        Ty::Bool,
        Def::Bool(true),
        "skip training images without boxes",
    ),
    p(
        "test_mode",
        Ty::Bool,
        Def::Bool(false),
        "load without annotations filtering (evaluation)",
    ),
    p(
        "min_size",
        NAT,
        Def::Int(0),
        "drop images whose shorter side is below this many pixels",
    ),
];

const VOC_DATASET: &[Param] = &[
    p(
        "ann_file",
        Ty::Path,
        Def::Required,
        "image-set list (`ImageSets/Main/trainval.txt`)",
    ),
    p("img_prefix", Ty::Path, Def::Required, "the VOC year folder"),
    p(
        "pipeline",
        Ty::List(&Ty::Comp(Transform)),
        Def::Required,
        "transform stages, in order",
    ),
    p(
        "classes",
        Ty::Nullable(&Ty::List(&Ty::Str)),
        Def::Null,
        "class names in label order: the dataset's own, or some of VOC's (default: the 20 VOC classes); objects of other classes are left out",
    ),
    p(
        "filter_empty_gt",
        Ty::Bool,
        Def::Bool(true),
        "skip training images without boxes",
    ),
    p("test_mode", Ty::Bool, Def::Bool(false), "evaluation mode"),
    p(
        "min_size",
        NAT,
        Def::Int(0),
        "drop images whose shorter side is below this many pixels",
    ),
];

pub static COMPONENTS: &[Component] = &[
    Component {
        name: "coco_dataset",
        category: Dataset,
        doc: "COCO-format detection dataset",
        params: DATASET,
    },
    Component {
        name: "shapes_dataset",
        category: Dataset,
        doc: "the generated shapes dataset (COCO format, `mmrun data synth`)",
        params: DATASET,
    },
    Component {
        name: "voc_dataset",
        category: Dataset,
        doc: "Pascal VOC dataset",
        params: VOC_DATASET,
    },
    Component {
        name: "load_image",
        category: Transform,
        doc: "LoadImageFromFile",
        params: &[
            p(
                "to_float32",
                Ty::Bool,
                Def::Bool(false),
                "convert to float32 after decoding",
            ),
            p(
                "color_type",
                Ty::Enum(&["color", "grayscale", "unchanged"]),
                Def::Str("color"),
                "decoding mode",
            ),
        ],
    },
    Component {
        name: "load_annotations",
        category: Transform,
        doc: "LoadAnnotations",
        params: &[
            p("with_bbox", Ty::Bool, Def::Bool(true), "load boxes"),
            p("with_label", Ty::Bool, Def::Bool(true), "load labels"),
        ],
    },
    Component {
        name: "resize",
        category: Transform,
        doc: "Resize to a scale (or a random one of several)",
        params: &[
            p(
                "scale",
                Ty::Nullable(&Ty::Or(&[Ty::List(&SCALE), SCALE])),
                Def::Required,
                "(long, short) or a list of them",
            ),
            p(
                "keep_ratio",
                Ty::Bool,
                Def::Bool(true),
                "keep the aspect ratio, fitting inside the scale",
            ),
            p(
                "multiscale_mode",
                Ty::Enum(&["range", "value"]),
                Def::Str("range"),
                "how a scale is drawn from several",
            ),
            p(
                "ratio_range",
                Ty::Nullable(&Ty::List(&NONNEG)),
                Def::Null,
                "scale the (single) scale by a random ratio in this range",
            ),
            p(
                "bbox_clip_border",
                Ty::Bool,
                Def::Bool(true),
                "clip boxes to the resized image",
            ),
        ],
    },
    Component {
        name: "random_flip",
        category: Transform,
        doc: "RandomFlip",
        params: &[
            p(
                "prob",
                UNIT,
                Def::Float(0.5),
                "probability of flipping (mmdetection 2's flip_ratio)",
            ),
            p(
                "direction",
                Ty::Or(&[FLIP, Ty::List(&FLIP)]),
                Def::Str("horizontal"),
                "flip direction, or several drawn at random",
            ),
        ],
    },
    Component {
        name: "normalize",
        category: Transform,
        doc: "Normalize: (x - mean) / std per channel",
        params: &[
            p("mean", Ty::List(&NUM), Def::Required, "per-channel mean"),
            p(
                "std",
                Ty::List(&NONNEG),
                Def::Required,
                "per-channel standard deviation",
            ),
            p(
                "to_rgb",
                Ty::Bool,
                Def::Bool(true),
                "convert BGR to RGB first",
            ),
        ],
    },
    Component {
        name: "pad",
        category: Transform,
        doc: "Pad to a multiple of size_divisor (or to size)",
        params: &[
            p(
                "size_divisor",
                Ty::Nullable(&POS),
                Def::Null,
                "pad height and width to multiples of this",
            ),
            p(
                "size",
                Ty::Nullable(&SCALE),
                Def::Null,
                "pad to this fixed (h, w)",
            ),
            p("pad_val", NUM, Def::Float(0.0), "fill value"),
        ],
    },
    Component {
        name: "photometric_distortion",
        category: Transform,
        doc: "PhotoMetricDistortion: random brightness, contrast, saturation, hue",
        params: &[
            p(
                "brightness_delta",
                NAT,
                Def::Int(32),
                "max brightness change",
            ),
            p(
                "contrast_range",
                Ty::List(&NONNEG),
                Def::Floats(&[0.5, 1.5]),
                "contrast factor range",
            ),
            p(
                "saturation_range",
                Ty::List(&NONNEG),
                Def::Floats(&[0.5, 1.5]),
                "saturation factor range",
            ),
            p("hue_delta", NAT, Def::Int(18), "max hue change"),
        ],
    },
    Component {
        name: "random_crop",
        category: Transform,
        doc: "RandomCrop",
        params: &[
            p(
                "crop_size",
                SCALE,
                Def::Required,
                "(h, w), or ratios with crop_type relative",
            ),
            p(
                "crop_type",
                Ty::Enum(&["absolute", "relative", "relative_range", "absolute_range"]),
                Def::Str("absolute"),
                "how crop_size is read",
            ),
            p(
                "allow_negative_crop",
                Ty::Bool,
                Def::Bool(false),
                "allow crops without boxes",
            ),
            p(
                "bbox_clip_border",
                Ty::Bool,
                Def::Bool(true),
                "clip boxes to the crop",
            ),
        ],
    },
    Component {
        name: "group_sampler",
        category: DataSampler,
        doc: "Shuffle within aspect-ratio groups so batches pad little (mmdetection's default)",
        params: &[p(
            "shuffle",
            Ty::Bool,
            Def::Bool(true),
            "shuffle each epoch",
        )],
    },
    Component {
        name: "random_sampler",
        category: DataSampler,
        doc: "Plain shuffling",
        params: &[p(
            "shuffle",
            Ty::Bool,
            Def::Bool(true),
            "shuffle each epoch",
        )],
    },
    Component {
        name: "infinite_sampler",
        category: DataSampler,
        doc: "Endless stream for iteration-based runs",
        params: &[
            p("shuffle", Ty::Bool, Def::Bool(true), "shuffle"),
            p("group", Ty::Bool, Def::Bool(true), "group by aspect ratio"),
        ],
    },
    Component {
        name: "sequential_sampler",
        category: DataSampler,
        doc: "Dataset order",
        params: &[],
    },
];

/// The `data` section.
pub const DATA: &[Param] = &[
    p(
        "samples_per_gpu",
        BATCH,
        Def::Int(2),
        "images per device per iteration",
    ),
    p(
        "workers_per_gpu",
        WORKERS,
        Def::Int(2),
        "loader worker threads per device",
    ),
    p(
        "sampler",
        Ty::Comp(DataSampler),
        Def::Comp("group_sampler"),
        "training sample order",
    ),
    p(
        "on_bad_sample",
        Ty::Enum(&["error", "skip"]),
        Def::Str("error"),
        "stop on an unreadable sample, or warn and skip it",
    ),
    p(
        "shape_buckets",
        Ty::List(&SCALE),
        Def::Ints(&[]),
        "padded batch shapes [h, w] the step graph is compiled for (empty: the batch maximum)",
    ),
    p(
        "prefetch",
        PREFETCH,
        Def::Int(2),
        "batches prepared ahead per worker",
    ),
    p("train", Ty::Comp(Dataset), Def::Absent, "training set"),
    p("val", Ty::Comp(Dataset), Def::Absent, "validation set"),
    p("test", Ty::Comp(Dataset), Def::Absent, "test set"),
];
