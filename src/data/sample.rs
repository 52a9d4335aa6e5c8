//! A sample as it flows through the pipeline, and the per-image metadata evaluation needs
//! to map predictions back onto the original image.

use super::config::FlipDirection;
use super::dataset::BoxXyxy;
use super::image::Image;
use serde::{Deserialize, Serialize};

/// One geometric step applied to an image, in order, so that [`ImageMeta::unmap_boxes`]
/// can undo any sequence of them exactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum GeomOp {
    /// Coordinates multiplied by `(sx, sy)`.
    Scale { sx: f32, sy: f32 },
    /// Mirrored inside a `w × h` image.
    Flip {
        direction: FlipDirection,
        w: f32,
        h: f32,
    },
    /// Shifted by `(-x, -y)` (a crop whose top-left corner was `(x, y)`).
    Shift { x: f32, y: f32 },
}

/// Per-image metadata (mmdetection's `img_metas`). Shapes are `[h, w, c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// Image id in the annotation file.
    pub img_id: u64,
    /// File name as the annotation file writes it.
    pub file_name: String,
    /// Shape of the decoded image.
    pub ori_shape: [usize; 3],
    /// Shape after resize/crop, before padding: the valid region.
    pub img_shape: [usize; 3],
    /// Shape after the pipeline's `pad`.
    pub pad_shape: [usize; 3],
    /// `[w_scale, h_scale, w_scale, h_scale]` of the (last) resize.
    pub scale_factor: [f32; 4],
    /// Whether the image was flipped, and how.
    pub flip: bool,
    pub flip_direction: Option<FlipDirection>,
    /// `[h, w]` of the batch tensor the image was collated into (its shape bucket); set by
    /// the loader before the target closure runs.
    pub batch_input_shape: [usize; 2],
    /// The geometric steps in order.
    pub geometry: Vec<GeomOp>,
}

impl ImageMeta {
    /// Metadata of an image fresh from the decoder.
    pub fn new(img_id: u64, file_name: &str, h: usize, w: usize) -> Self {
        ImageMeta {
            img_id,
            file_name: file_name.to_string(),
            ori_shape: [h, w, 3],
            img_shape: [h, w, 3],
            pad_shape: [h, w, 3],
            scale_factor: [1.0; 4],
            flip: false,
            flip_direction: None,
            batch_input_shape: [h, w],
            geometry: vec![],
        }
    }

    /// Map boxes predicted on the network input back onto the original image: undo each
    /// geometric step in reverse order, then clip to `ori_shape`.
    pub fn unmap_boxes(&self, boxes: &[BoxXyxy]) -> Vec<BoxXyxy> {
        let (oh, ow) = (self.ori_shape[0] as f32, self.ori_shape[1] as f32);
        boxes
            .iter()
            .map(|b| {
                let mut b = *b;
                for op in self.geometry.iter().rev() {
                    b = match *op {
                        GeomOp::Scale { sx, sy } => [b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy],
                        GeomOp::Flip { direction, w, h } => flip_box(b, direction, w, h),
                        GeomOp::Shift { x, y } => [b[0] + x, b[1] + y, b[2] + x, b[3] + y],
                    };
                }
                [
                    b[0].clamp(0.0, ow),
                    b[1].clamp(0.0, oh),
                    b[2].clamp(0.0, ow),
                    b[3].clamp(0.0, oh),
                ]
            })
            .collect()
    }
}

/// Mirror a box inside a `w × h` image (its own inverse).
pub fn flip_box(b: BoxXyxy, direction: FlipDirection, w: f32, h: f32) -> BoxXyxy {
    match direction {
        FlipDirection::Horizontal => [w - b[2], b[1], w - b[0], b[3]],
        FlipDirection::Vertical => [b[0], h - b[3], b[2], h - b[1]],
        FlipDirection::Diagonal => [w - b[2], h - b[3], w - b[0], h - b[1]],
    }
}

/// An image with its annotations and metadata, as the pipeline produces it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub image: Image,
    /// Ground-truth boxes (xyxy) on the transformed image.
    pub boxes: Vec<BoxXyxy>,
    /// 0-based class index per box.
    pub labels: Vec<u32>,
    /// Ignored boxes (crowd, difficult) on the transformed image.
    pub ignored: Vec<BoxXyxy>,
    pub meta: ImageMeta,
}
