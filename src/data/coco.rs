//! COCO instances JSON → [`Dataset`]. Crowd (`iscrowd = 1`) and `ignore = 1` annotations
//! become ignored boxes; boxes are checked against their image; images are filtered like
//! mmdetection's `CocoDataset` (`filter_empty_gt`, `min_size`).

use super::dataset::{BoxXyxy, Dataset, Record, select_classes};
use super::error::{BadSampleLog, DataError, OnBadSample, Result, apply_policy};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnn>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct CocoAnn {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    area: Option<f64>,
    #[serde(default)]
    iscrowd: u8,
    #[serde(default)]
    ignore: u8,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

/// Options of a dataset read (from [`super::DatasetParams`]).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub img_prefix: PathBuf,
    pub classes: Option<Vec<String>>,
    pub filter_empty_gt: bool,
    pub min_size: u32,
    pub test_mode: bool,
    pub on_bad_sample: OnBadSample,
}

/// How far (pixels) a box may reach past the image border before it is an error; real
/// annotation files round box corners, so a sliver past the edge is clipped, not rejected.
pub const BORDER_TOLERANCE: f64 = 1.0;

/// Read a COCO instances file.
pub fn read_coco(ann_file: &Path, opts: &ReadOptions, log: &BadSampleLog) -> Result<Dataset> {
    let text = crate::util::read::regular_file(ann_file, crate::util::read::UNLIMITED)
        .map_err(|e| DataError::io(ann_file, e))?;
    let file: CocoFile = serde_json::from_slice(&text).map_err(|e| {
        DataError::parse(
            ann_file,
            format!(
                "not a COCO instances file: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    check_unique_ids(ann_file, &file)?;
    // Categories in id order, as pycocotools' getCatIds returns them.
    let mut cats: Vec<&CocoCategory> = file.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    let names: Vec<String> = cats.iter().map(|c| c.name.clone()).collect();
    let (labels, classes) = select_classes(ann_file, &names, opts.classes.as_deref())?;
    let mut label_of_cat: HashMap<u64, Option<u32>> = HashMap::new();
    let mut cat_ids = vec![0u64; classes.len()];
    for (c, l) in cats.iter().zip(&labels) {
        label_of_cat.insert(c.id, *l);
        if let Some(l) = l {
            cat_ids[*l as usize] = c.id;
        }
    }

    let mut records: Vec<Record> = Vec::with_capacity(file.images.len());
    let mut index: HashMap<u64, usize> = HashMap::new();
    // Images with any annotation of a selected class (crowd included), as mmdetection.
    let mut has_ann: Vec<bool> = Vec::with_capacity(file.images.len());
    for img in &file.images {
        index.insert(img.id, records.len());
        records.push(Record {
            id: img.id,
            file_name: img.file_name.clone(),
            path: opts.img_prefix.join(&img.file_name),
            width: img.width,
            height: img.height,
            boxes: vec![],
            labels: vec![],
            ignored: vec![],
            ignored_labels: vec![],
        });
        has_ann.push(false);
    }

    for ann in &file.annotations {
        let checked = check_ann(ann_file, ann, &index, &records, &label_of_cat);
        let Some((i, label, b)) = apply_policy(opts.on_bad_sample, log, checked)? else {
            continue;
        };
        let Some(label) = label else { continue }; // category not selected
        let [_, _, w, h] = ann.bbox;
        // mmdetection drops degenerate boxes silently (area <= 0, side < 1 px).
        if ann.area.is_some_and(|a| a <= 0.0) || w < 1.0 || h < 1.0 {
            continue;
        }
        has_ann[i] = true;
        let r = &mut records[i];
        if ann.iscrowd != 0 || ann.ignore != 0 {
            r.ignored.push(b);
            r.ignored_labels.push(label);
        } else {
            r.boxes.push(b);
            r.labels.push(label);
        }
    }

    if !opts.test_mode {
        let mut keep = has_ann.iter();
        records.retain(|r| {
            let annotated = *keep.next().unwrap_or(&true);
            (!opts.filter_empty_gt || annotated) && r.width.min(r.height) >= opts.min_size
        });
    }
    Ok(Dataset {
        classes,
        cat_ids,
        records,
    })
}

/// Refuse duplicate image, category and annotation ids, naming both places: pycocotools
/// indexes by id, so a duplicate silently replaces the other (an image's boxes would train
/// on another image's pixels, a result would be scored against the wrong box). Not a bad
/// sample that could be skipped: the file itself is inconsistent.
fn check_unique_ids(path: &Path, file: &CocoFile) -> Result<()> {
    fn first_duplicate(ids: impl Iterator<Item = u64>) -> Option<(u64, usize, usize)> {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            if let Some(&first) = seen.get(&id) {
                return Some((id, first, i));
            }
            seen.insert(id, i);
        }
        None
    }
    let lists = [
        (
            "images",
            "image",
            first_duplicate(file.images.iter().map(|i| i.id)),
        ),
        (
            "categories",
            "category",
            first_duplicate(file.categories.iter().map(|c| c.id)),
        ),
        (
            "annotations",
            "annotation",
            first_duplicate(file.annotations.iter().map(|a| a.id)),
        ),
    ];
    for (list, what, dup) in lists {
        if let Some((id, a, b)) = dup {
            return Err(DataError::parse(
                path,
                format!("{what} id {id} appears twice: `{list}[{a}]` and `{list}[{b}]`"),
            ));
        }
    }
    Ok(())
}

/// Validate one annotation: its image and category exist and its box lies in the image.
/// Returns the image's position, the label (None: category not selected) and the box.
fn check_ann(
    path: &Path,
    ann: &CocoAnn,
    index: &HashMap<u64, usize>,
    records: &[Record],
    label_of_cat: &HashMap<u64, Option<u32>>,
) -> Result<(usize, Option<u32>, BoxXyxy)> {
    let Some(&i) = index.get(&ann.image_id) else {
        return Err(DataError::bad_ann(
            path,
            ann.id,
            format!(
                "refers to image_id {}, which is not in `images`",
                ann.image_id
            ),
        ));
    };
    let Some(&label) = label_of_cat.get(&ann.category_id) else {
        return Err(DataError::bad_ann(
            path,
            ann.id,
            format!(
                "refers to category_id {}, which is not in `categories`",
                ann.category_id
            ),
        ));
    };
    let r = &records[i];
    let b = check_box(
        ann.bbox[0],
        ann.bbox[1],
        ann.bbox[0] + ann.bbox[2],
        ann.bbox[1] + ann.bbox[3],
        r.width,
        r.height,
    )
    .map_err(|m| {
        DataError::bad_ann(
            path,
            ann.id,
            format!("image {} ({}): {m}", r.id, r.file_name),
        )
    })?;
    Ok((i, label, b))
}

/// Check an xyxy box against a `w × h` image: finite, non-negative size, inside the image
/// (up to [`BORDER_TOLERANCE`], then clipped).
pub(crate) fn check_box(
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    w: u32,
    h: u32,
) -> std::result::Result<BoxXyxy, String> {
    if ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
        return Err(format!("box [{x1}, {y1}, {x2}, {y2}] is not finite"));
    }
    if x2 < x1 || y2 < y1 {
        return Err(format!(
            "box has negative size (width {}, height {})",
            x2 - x1,
            y2 - y1
        ));
    }
    let (wf, hf) = (w as f64, h as f64);
    let t = BORDER_TOLERANCE;
    if x1 < -t || y1 < -t || x2 > wf + t || y2 > hf + t {
        return Err(format!(
            "box [{x1}, {y1}, {x2}, {y2}] (xyxy) lies outside the {w}x{h} image"
        ));
    }
    Ok([
        x1.clamp(0.0, wf) as f32,
        y1.clamp(0.0, hf) as f32,
        x2.clamp(0.0, wf) as f32,
        y2.clamp(0.0, hf) as f32,
    ])
}
