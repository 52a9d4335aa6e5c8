//! Typed configuration of the `data` section, deserialized from the checked recipe's JSON
//! tree. Names are mmdetection's (snake_case component names, parameters unchanged); every
//! component is an object tagged by `"type"`, and unknown keys are errors.
//!
//! ```text
//! data = {
//!   samples_per_gpu = 2, workers_per_gpu = 2, sampler = group {},
//!   on_bad_sample = error, shape_buckets = [[800, 1344], [1344, 800]],
//!   train = coco_dataset { ann_file, img_prefix, pipeline = [...], filter_empty_gt, min_size, classes }
//!   val = coco_dataset { ... }, test = coco_dataset { ... }
//! }
//! ```

use super::error::OnBadSample;
use serde::{Deserialize, Serialize};

/// The whole `data` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Images per batch on each device.
    pub samples_per_gpu: usize,
    /// Loader worker threads per device (0: decode on the calling thread).
    pub workers_per_gpu: usize,
    /// How the training set is walked.
    pub sampler: SamplerConfig,
    /// What to do with a sample that cannot be used.
    pub on_bad_sample: OnBadSample,
    /// Padded batch shapes `[h, w]` the step graph is compiled for; each batch is padded to
    /// the smallest bucket that holds all its images. Empty: pad to the batch's own maximum
    /// (rounded up to the pipeline's `size_divisor`).
    pub shape_buckets: Vec<[u32; 2]>,
    /// Batches prepared ahead per worker.
    pub prefetch: usize,
    pub train: Option<DatasetConfig>,
    pub val: Option<DatasetConfig>,
    pub test: Option<DatasetConfig>,
}

/// A dataset component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DatasetConfig {
    /// COCO instances JSON.
    CocoDataset(DatasetParams),
    /// The generated shapes dataset (COCO format, `mmrun data synth`).
    ShapesDataset(DatasetParams),
    /// Pascal VOC: `ann_file` is an image-set list (`ImageSets/Main/trainval.txt`),
    /// `img_prefix` the VOC year folder holding `JPEGImages/` and `Annotations/`.
    VocDataset(DatasetParams),
}

impl DatasetConfig {
    /// The parameters common to every dataset type.
    pub fn params(&self) -> &DatasetParams {
        match self {
            DatasetConfig::CocoDataset(p)
            | DatasetConfig::ShapesDataset(p)
            | DatasetConfig::VocDataset(p) => p,
        }
    }
}

/// Parameters shared by the dataset types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetParams {
    pub ann_file: String,
    /// Folder the image file names are relative to.
    pub img_prefix: String,
    /// The transform stages, in order.
    pub pipeline: Vec<TransformConfig>,
    /// Drop images with no annotation of a selected class (training sets).
    pub filter_empty_gt: bool,
    /// Drop images whose shorter side is below this many pixels.
    pub min_size: u32,
    /// A subset of class names, in label order; `None`: every class of the file.
    pub classes: Option<Vec<String>>,
    /// Test mode keeps every image (no filtering).
    pub test_mode: bool,
}

/// A transform stage of a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransformConfig {
    LoadImage(LoadImage),
    LoadAnnotations(LoadAnnotations),
    Resize(Resize),
    RandomFlip(RandomFlip),
    Normalize(Normalize),
    Pad(Pad),
    PhotometricDistortion(PhotometricDistortion),
    RandomCrop(RandomCrop),
}

/// Read and decode the image file (PNG or JPEG) as 8-bit RGB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadImage {
    /// Convert to f32 right after decoding.
    pub to_float32: bool,
    /// `color` (and `unchanged`): RGB; `grayscale`: luminance in all three channels.
    pub color_type: ColorType,
}

/// How `load_image` decodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorType {
    #[default]
    Color,
    Grayscale,
    Unchanged,
}

/// Attach the record's boxes and labels to the sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadAnnotations {
    pub with_bbox: bool,
    pub with_label: bool,
}

/// One `[w, h]` scale or a list of them (`[long, short]` pairs for multi-scale).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scales {
    One([f64; 2]),
    Many(Vec<[f64; 2]>),
}

impl Scales {
    /// The scales as a list.
    pub fn list(&self) -> Vec<[f64; 2]> {
        match self {
            Scales::One(s) => vec![*s],
            Scales::Many(v) => v.clone(),
        }
    }
}

/// How a scale is drawn from several.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiscaleMode {
    /// Long and short edges drawn uniformly between the scales' extremes.
    #[default]
    Range,
    /// One of the listed scales.
    Value,
}

/// Resize to a scale (`[w, h]`, or `[long, short]` with `keep_ratio`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    #[serde(alias = "img_scale")]
    pub scale: Option<Scales>,
    pub keep_ratio: bool,
    pub multiscale_mode: MultiscaleMode,
    /// Multiply the single scale by a factor drawn from `[lo, hi]`.
    pub ratio_range: Option<[f64; 2]>,
    /// Clip boxes to the resized image.
    pub bbox_clip_border: bool,
}

/// Flip directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipDirection {
    Horizontal,
    Vertical,
    Diagonal,
}

/// One direction, or a list of them sharing the probability equally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Directions {
    One(FlipDirection),
    Many(Vec<FlipDirection>),
}

impl Default for Directions {
    fn default() -> Self {
        Directions::One(FlipDirection::Horizontal)
    }
}

/// Flip the image and its boxes with probability `prob`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFlip {
    #[serde(alias = "flip_ratio")]
    pub prob: f64,
    pub direction: Directions,
}

/// `(x - mean) / std` per channel, as f32. `mean`/`std` are in the output channel order:
/// RGB when `to_rgb` (images decode as RGB), BGR otherwise (mmdetection's caffe-style).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub to_rgb: bool,
}

/// Pad bottom/right to a fixed `[h, w]` or to a multiple of `size_divisor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad {
    pub size: Option<[u32; 2]>,
    pub size_divisor: Option<u32>,
    pub pad_val: f32,
}

/// mmdetection's `PhotoMetricDistortion` (SSD): random brightness, contrast (before or
/// after), saturation, hue, channel swap; each applied with probability 1/2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotometricDistortion {
    pub brightness_delta: f32,
    pub contrast_range: [f32; 2],
    pub saturation_range: [f32; 2],
    pub hue_delta: f32,
}

/// How `crop_size` is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropType {
    /// `crop_size` is `[h, w]` in pixels.
    #[default]
    Absolute,
    /// Side lengths drawn from `[crop_size[0], crop_size[1]]` pixels.
    AbsoluteRange,
    /// `crop_size` is `[h, w]` as fractions of the image.
    Relative,
    /// Fractions drawn from `[crop_size, 1]`.
    RelativeRange,
}

/// Crop a random window; boxes are shifted, clipped, and those left empty removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomCrop {
    pub crop_size: [f64; 2],
    pub crop_type: CropType,
    /// Keep a crop that contains no box; otherwise another window is drawn.
    pub allow_negative_crop: bool,
    pub bbox_clip_border: bool,
}

/// How batches of image indices are drawn. Any sampler is split over ranks when the loader
/// is built with a world size above one (equal counts per rank, reshuffled per epoch from
/// seed and epoch, like mmdetection's `DistributedGroupSampler` + `DistSamplerSeedHook`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerConfig {
    /// In dataset order (evaluation).
    SequentialSampler {},
    /// A fresh permutation each epoch (dataset order with `shuffle = false`).
    RandomSampler { shuffle: bool },
    /// Each batch from one aspect-ratio group (`w > h` or not), batches shuffled:
    /// mmdetection's `GroupSampler`, the training default.
    GroupSampler { shuffle: bool },
    /// Endless batches for iteration-based runs: epochs follow each other without a break.
    InfiniteSampler { shuffle: bool, group: bool },
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::GroupSampler { shuffle: true }
    }
}
