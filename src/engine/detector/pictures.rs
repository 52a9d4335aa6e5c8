//! Pictures of a detector's data and results: the training images as the model sees them,
//! boxes and class names drawn (`mmrun data browse`, mmdetection's `browse_dataset.py`), and
//! evaluated images with their ground truth beside the predictions (`mmrun test --show-dir`,
//! TensorBoard's images). Drawing is `crate::viz`'s; this module turns records, loader
//! batches and detections into the boxes it draws.

use super::{DetectorTask, dataset_of, err};
use crate::data::config::{DataConfig, Normalize, SamplerConfig};
use crate::data::{BatchSampler, BoxXyxy, Image, Loader, LoaderOptions, Pixels, Transform};
use crate::engine::task::TaskError;
use crate::model::postprocess::CocoDetection;
use crate::viz::Picture;
use crate::viz::boxes::{DrawnBox, draw_boxes, side_by_side, tag_text};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The score a prediction needs to be drawn unless told otherwise (mmdetection's
/// `show_score_thr`).
pub const SHOW_SCORE_THR: f64 = 0.3;

/// The file a picture of the image `file_name` is saved as, relative to the output folder:
/// the image's own relative path (subfolders kept, as mmdetection's `show_dir` keeps
/// `ori_filename`'s, so same-named images in different folders do not overwrite each other)
/// with a `.png` extension. Only plain path parts are kept: a `..` or a root in an annotation
/// file cannot lead outside the output folder.
pub fn picture_file(file_name: &str) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Path::new(file_name)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let last = parts.pop().unwrap_or_else(|| "image".into());
    let stem = Path::new(&last)
        .file_stem()
        .map_or(last.clone(), |s| s.to_string_lossy().into_owned());
    parts.push(format!("{stem}.png"));
    parts.join("/")
}

/// A decoded image as a picture (f32 pixels rounded and clamped to 0..=255).
fn picture_of(img: &Image) -> Picture {
    let rgb = match &img.pixels {
        Pixels::U8(d) => d.clone(),
        Pixels::F32(d) => d
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect(),
    };
    Picture {
        width: img.w as u32,
        height: img.h as u32,
        rgb,
    }
}

/// Ground-truth boxes with their class names.
fn gt_boxes(boxes: &[BoxXyxy], labels: &[u32], classes: &[String]) -> Vec<DrawnBox> {
    (boxes.iter().zip(labels))
        .map(|(b, &l)| DrawnBox {
            bbox: *b,
            class: l as usize,
            text: classes
                .get(l as usize)
                .cloned()
                .unwrap_or_else(|| l.to_string()),
        })
        .collect()
}

/// Image `i` of a collated batch (`[N, 3, H, W]`, normalized by `norm` when given) as a
/// picture in RGB: `normalize` undone (`x · std + mean`, its BGR order put back), so the
/// picture shows the pixels the model is fed, padding included.
fn batch_picture(images: &[f32], shape: [usize; 4], i: usize, norm: Option<&Normalize>) -> Picture {
    let [_, _, h, w] = shape;
    let plane = h * w;
    let img = &images[i * 3 * plane..(i + 1) * 3 * plane];
    let (order, mean, std) = match norm {
        Some(n) => (if n.to_rgb { [0, 1, 2] } else { [2, 1, 0] }, n.mean, n.std),
        None => ([0, 1, 2], [0.0; 3], [1.0; 3]),
    };
    let mut rgb = vec![0u8; 3 * plane];
    for c in 0..3 {
        let (src, m, s) = (&img[c * plane..(c + 1) * plane], mean[c], std[c]);
        for (p, v) in rgb.chunks_exact_mut(3).zip(src) {
            p[order[c]] = (v * s + m).round().clamp(0.0, 255.0) as u8;
        }
    }
    Picture {
        width: w as u32,
        height: h as u32,
        rgb,
    }
}

/// `mmrun data browse`: the first `count` images of `data.train` in file order after the
/// training pipeline (its random transforms drawn from `seed`, as the loader draws them),
/// each with its boxes and class names, written as PNGs into `out`. Returns the files.
pub fn browse(
    data: &DataConfig,
    seed: u64,
    count: usize,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    let (dataset, pipeline) =
        dataset_of(data, "train")?.ok_or("the recipe has no `data.train` dataset to browse")?;
    let norm = pipeline.stages.iter().rev().find_map(|t| match t {
        Transform::Normalize(n) => Some(n.clone()),
        _ => None,
    });
    let opts = LoaderOptions::from_config(data, &pipeline, seed);
    let groups = dataset.aspect_groups();
    let sampler = BatchSampler::new(&SamplerConfig::SequentialSampler {}, groups, 1, 0, 1, seed)
        .map_err(|e| format!("data.train: {e}"))?;
    let classes = dataset.classes.clone();
    let mut loader: Loader<()> = Loader::new(
        Arc::new(dataset),
        Arc::new(pipeline),
        sampler,
        Arc::new(|_, _| Ok(())),
        opts,
    );
    let mut written = Vec::new();
    while written.len() < count {
        let Some(batch) = loader.next_batch() else {
            break;
        };
        let batch = batch.map_err(|e| format!("data.train: {e}"))?;
        let mut pic = batch_picture(&batch.images, batch.shape, 0, norm.as_ref());
        let boxes = gt_boxes(&batch.gt_boxes[0], &batch.gt_labels[0], &classes);
        draw_boxes(&mut pic, &boxes).map_err(|e| e.to_string())?;
        let path = out.join(picture_file(&batch.metas[0].file_name));
        pic.save_png(&path).map_err(|e| e.to_string())?;
        written.push(path);
    }
    Ok(written)
}

impl DetectorTask {
    /// Pictures of the images the last `evaluate` saw, in its order: each original image
    /// with its ground truth on the left and the predictions scoring at least `score_thr` on
    /// the right (the best drawn last, on top), handed to `each` with its file name.
    pub(super) fn draw_evaluated(
        &self,
        limit: Option<usize>,
        score_thr: f64,
        each: &mut dyn FnMut(&str, Picture) -> Result<(), crate::viz::PictureError>,
    ) -> Result<usize, TaskError> {
        let (Some(val), Some(results)) = (&self.val, &self.results) else {
            return Ok(0);
        };
        let proposals = self.step.detector().cfg.is_proposal_net();
        let ds = &val.dataset;
        let records: HashMap<u64, &crate::data::Record> =
            ds.records.iter().map(|r| (r.id, r)).collect();
        let label_of: HashMap<u64, usize> = (ds.cat_ids.iter().enumerate())
            .map(|(l, &c)| (c, l))
            .collect();
        let mut dets: HashMap<u64, Vec<&CocoDetection>> = HashMap::new();
        for d in results.iter().filter(|d| d.score >= score_thr) {
            dets.entry(d.image_id).or_default().push(d);
        }
        let caption = format!("predictions (score ≥ {score_thr:.2})");
        let mut drawn = 0;
        for id in self.evaluated.iter().take(limit.unwrap_or(usize::MAX)) {
            let rec = records
                .get(id)
                .ok_or_else(|| err(format!("image {id} was evaluated but is not in data.val")))?;
            let image = crate::data::image::load_image(&rec.path).map_err(err)?;
            let mut left = picture_of(&image);
            let mut right = left.clone();
            draw_boxes(&mut left, &gt_boxes(&rec.boxes, &rec.labels, &ds.classes)).map_err(err)?;
            let mut mine = dets.remove(id).unwrap_or_default();
            mine.sort_by(|a, b| a.score.total_cmp(&b.score));
            let predicted: Vec<DrawnBox> = mine
                .iter()
                .map(|d| {
                    let [x, y, w, h] = d.bbox.map(|v| v as f32);
                    let (class, name) = match (proposals, label_of.get(&d.category_id)) {
                        (false, Some(&l)) => (l, ds.classes[l].as_str()),
                        _ => (0, "proposal"),
                    };
                    DrawnBox {
                        bbox: [x, y, x + w, y + h],
                        class,
                        text: tag_text(name, Some(d.score)),
                    }
                })
                .collect();
            draw_boxes(&mut right, &predicted).map_err(err)?;
            let pic = side_by_side(&left, &right, ["ground truth", &caption]).map_err(err)?;
            each(&picture_file(&rec.file_name), pic).map_err(err)?;
            drawn += 1;
        }
        Ok(drawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_pictures_undo_normalize_and_its_channel_order() {
        // One 1×2 image: pixel 0 is RGB (200, 100, 50), normalized caffe-style (BGR order).
        let norm = Normalize {
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
            to_rgb: false,
        };
        let (b, g, r) = (
            (50.0 - 10.0) / 2.0,
            (100.0 - 20.0) / 4.0,
            (200.0 - 30.0) / 5.0,
        );
        let images = vec![b, 0.0, g, 0.0, r, 0.0];
        let pic = batch_picture(&images, [1, 3, 1, 2], 0, Some(&norm));
        assert_eq!(pic.pixel(0, 0), [200, 100, 50]);
        // Zero padding shows as the mean colour (in RGB order).
        assert_eq!(pic.pixel(1, 0), [30, 20, 10]);
    }

    #[test]
    fn pictures_are_named_after_their_image() {
        assert_eq!(picture_file("val/000012.jpg"), "val/000012.png");
        assert_eq!(picture_file("a.b.png"), "a.b.png");
        assert_eq!(picture_file("../../etc/x.jpg"), "etc/x.png");
        assert_eq!(picture_file("/abs/y.jpeg"), "abs/y.png");
        assert_eq!(picture_file(".."), "image.png");
    }
}
