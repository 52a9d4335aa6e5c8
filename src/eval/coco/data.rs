//! Ground truth (COCO instances JSON) and detections (COCO results JSON): parsing and the checks
//! that keep bad input from turning into a wrong number.

use super::super::EvalError;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::HashSet;
use std::path::Path;

/// One category of the ground truth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Category {
    pub id: i64,
    #[serde(default)]
    pub name: String,
}

/// One ground-truth box. `bbox` is `[x, y, w, h]`; `area` is the annotation's `area` field
/// (the segmentation area in COCO, not `w * h`), which decides the small/medium/large range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GtAnnotation {
    pub id: i64,
    pub image_id: i64,
    pub category_id: i64,
    pub bbox: [f64; 4],
    pub area: f64,
    #[serde(default, deserialize_with = "de_flag")]
    pub iscrowd: bool,
}

/// One detection, as a line of a COCO results file: `bbox` is `[x, y, w, h]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Detection {
    pub image_id: i64,
    pub category_id: i64,
    pub bbox: [f64; 4],
    pub score: f64,
}

#[derive(Deserialize)]
struct RawImage {
    id: i64,
}

#[derive(Deserialize)]
struct RawGt {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<GtAnnotation>,
    categories: Vec<Category>,
}

/// Ground truth: images (ids, file order), categories and annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CocoGt {
    pub images: Vec<i64>,
    pub categories: Vec<Category>,
    pub annotations: Vec<GtAnnotation>,
}

/// `iscrowd` is 0/1 in COCO files, sometimes `true`/`false`.
fn de_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("0, 1, true or false")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
    }
    d.deserialize_any(Flag)
}

fn read(path: &Path) -> Result<Vec<u8>, EvalError> {
    std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json_error(origin: &str, e: serde_json::Error) -> EvalError {
    EvalError::Json {
        origin: origin.to_string(),
        message: e.to_string(),
    }
}

fn box_problems(bbox: &[f64; 4]) -> Option<&'static str> {
    if bbox.iter().any(|v| !v.is_finite()) {
        Some("bbox has a non-finite value")
    } else if bbox[2] < 0.0 || bbox[3] < 0.0 {
        Some("bbox has a negative width or height")
    } else {
        None
    }
}

impl CocoGt {
    /// Read and check a COCO instances file.
    pub fn from_json_path(path: &Path) -> Result<Self, EvalError> {
        let bytes = read(path)?;
        Self::from_json_bytes(&bytes).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// Parse and check COCO instances JSON (errors name the origin "input").
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, EvalError> {
        let raw: RawGt = serde_json::from_slice(bytes).map_err(|e| json_error("input", e))?;
        let gt = CocoGt {
            images: raw.images.into_iter().map(|i| i.id).collect(),
            categories: raw.categories,
            annotations: raw.annotations,
        };
        gt.validate()?;
        Ok(gt)
    }

    /// Check ids and boxes; every problem is reported, not just the first.
    pub fn validate(&self) -> Result<(), EvalError> {
        let mut problems = Vec::new();
        let mut images = HashSet::new();
        for &id in &self.images {
            if !images.insert(id) {
                problems.push(format!("images: duplicate image id {id}"));
            }
        }
        let mut cats = HashSet::new();
        for c in &self.categories {
            if !cats.insert(c.id) {
                problems.push(format!("categories: duplicate category id {}", c.id));
            }
        }
        let mut ann_ids = HashSet::new();
        for (i, a) in self.annotations.iter().enumerate() {
            let at = format!("annotations[{i}] (id {})", a.id);
            // pycocotools indexes annotations by id: a duplicate silently replaces the other.
            if !ann_ids.insert(a.id) {
                problems.push(format!("{at}: duplicate annotation id"));
            }
            if !images.contains(&a.image_id) {
                problems.push(format!("{at}: image_id {} is not in images", a.image_id));
            }
            if !cats.contains(&a.category_id) {
                problems.push(format!(
                    "{at}: category_id {} is not in categories",
                    a.category_id
                ));
            }
            if let Some(p) = box_problems(&a.bbox) {
                problems.push(format!("{at}: {p}"));
            }
            if !a.area.is_finite() || a.area < 0.0 {
                problems.push(format!(
                    "{at}: area {} is not a non-negative number",
                    a.area
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EvalError::Invalid {
                origin: "input".into(),
                problems,
            })
        }
    }

    /// Category ids in file order.
    pub fn cat_ids(&self) -> Vec<i64> {
        self.categories.iter().map(|c| c.id).collect()
    }
}

/// Read a COCO results file (a JSON list of detections). Values are checked by
/// [`super::evaluate`] against the ground truth.
pub fn load_detections_path(path: &Path) -> Result<Vec<Detection>, EvalError> {
    let bytes = read(path)?;
    load_detections_bytes(&bytes).map_err(|e| e.with_origin(&path.display().to_string()))
}

/// Parse a COCO results JSON list (errors name the origin "input").
pub fn load_detections_bytes(bytes: &[u8]) -> Result<Vec<Detection>, EvalError> {
    serde_json::from_slice(bytes).map_err(|e| json_error("input", e))
}

/// Every detection must belong to a ground-truth image (pycocotools asserts this) and category
/// (pycocotools silently drops the others, which hides mapping bugs), with a finite score and a
/// finite box of non-negative size.
pub(super) fn validate_detections(gt: &CocoGt, dets: &[Detection]) -> Result<(), EvalError> {
    let images: HashSet<i64> = gt.images.iter().copied().collect();
    let cats: HashSet<i64> = gt.categories.iter().map(|c| c.id).collect();
    let mut problems = Vec::new();
    for (i, d) in dets.iter().enumerate() {
        if !images.contains(&d.image_id) {
            problems.push(format!(
                "detection [{i}]: image_id {} is not in the ground truth",
                d.image_id
            ));
        }
        if !cats.contains(&d.category_id) {
            problems.push(format!(
                "detection [{i}]: category_id {} is not in the ground truth",
                d.category_id
            ));
        }
        if !d.score.is_finite() {
            problems.push(format!("detection [{i}]: score {} is not finite", d.score));
        }
        if let Some(p) = box_problems(&d.bbox) {
            problems.push(format!("detection [{i}]: {p}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EvalError::Invalid {
            origin: "detections".into(),
            problems,
        })
    }
}
