//! The in-memory dataset every reader produces: one [`Record`] per image with its boxes
//! already mapped to contiguous 0-based labels, plus the class names.

use std::path::PathBuf;

/// A box as `[x1, y1, x2, y2]` in pixels (mmdetection's convention: width is `x2 - x1`).
pub type BoxXyxy = [f32; 4];

/// One image of a dataset and its annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The image id in the annotation file (COCO `id`; VOC: the line index in the image set).
    pub id: u64,
    /// The file name as the annotation file writes it.
    pub file_name: String,
    /// Where the image is read from (`img_prefix` joined with `file_name`).
    pub path: PathBuf,
    /// Width and height stated by the annotation file.
    pub width: u32,
    pub height: u32,
    /// Ground-truth boxes used for training.
    pub boxes: Vec<BoxXyxy>,
    /// 0-based contiguous class index of each box in `boxes`.
    pub labels: Vec<u32>,
    /// Boxes marked crowd / ignore / difficult: neither positives nor negatives.
    pub ignored: Vec<BoxXyxy>,
    /// 0-based class index of each box in `ignored` (VOC mAP ignores them per class).
    pub ignored_labels: Vec<u32>,
}

impl Record {
    /// `width / height`; 1 when the height is unknown.
    pub fn aspect_ratio(&self) -> f32 {
        if self.height == 0 {
            1.0
        } else {
            self.width as f32 / self.height as f32
        }
    }
}

/// A dataset: the images and class names, in a fixed order.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Class names; a label is an index into this list.
    pub classes: Vec<String>,
    /// The annotation file's category id of each class (COCO ids; VOC: 1-based index),
    /// which evaluation writes back into result files.
    pub cat_ids: Vec<u64>,
    /// The images in file order, after filtering.
    pub records: Vec<Record>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// Aspect-ratio group of each image (mmdetection's `flag`: 1 when `w / h > 1`).
    pub fn aspect_groups(&self) -> Vec<u8> {
        self.records
            .iter()
            .map(|r| u8::from(r.aspect_ratio() > 1.0))
            .collect()
    }
}

/// Pick the classes named by the config out of those the file has. Returns, for each of
/// the file's categories, its label in the selection (or `None` when not selected), and the
/// selected names in the config's order. An unknown name is an error that lists the
/// available names.
pub(crate) fn select_classes(
    path: &std::path::Path,
    file_names: &[String],
    wanted: Option<&[String]>,
) -> super::Result<(Vec<Option<u32>>, Vec<String>)> {
    let Some(wanted) = wanted else {
        let labels = (0..file_names.len() as u32).map(Some).collect();
        return Ok((labels, file_names.to_vec()));
    };
    let mut labels = vec![None; file_names.len()];
    for (label, name) in wanted.iter().enumerate() {
        match file_names.iter().position(|n| n == name) {
            Some(i) => labels[i] = Some(label as u32),
            None => {
                return Err(super::DataError::UnknownClass {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    available: file_names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok((labels, wanted.to_vec()))
}

/// What `mmrun data inspect` reports of a dataset: image and box counts, and boxes per class.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DatasetCounts {
    pub images: usize,
    pub images_without_boxes: usize,
    pub boxes: usize,
    pub ignored: usize,
    /// Each class with its number of boxes, in label order.
    pub classes: Vec<ClassCount>,
}

/// One class of [`DatasetCounts`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassCount {
    pub name: String,
    pub boxes: usize,
}

impl Dataset {
    /// The counts `mmrun data inspect` reports.
    pub fn counts(&self) -> DatasetCounts {
        let mut per = vec![0usize; self.classes.len()];
        for l in self.records.iter().flat_map(|r| &r.labels) {
            per[*l as usize] += 1;
        }
        DatasetCounts {
            images: self.len(),
            images_without_boxes: self.records.iter().filter(|r| r.boxes.is_empty()).count(),
            boxes: self.records.iter().map(|r| r.boxes.len()).sum(),
            ignored: self.records.iter().map(|r| r.ignored.len()).sum(),
            classes: (self.classes.iter().zip(per))
                .map(|(name, boxes)| ClassCount {
                    name: name.clone(),
                    boxes,
                })
                .collect(),
        }
    }
}
