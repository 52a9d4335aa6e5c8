//! Ground truth (COCO instances JSON) and detections (COCO results JSON): parsing and the checks
//! that keep bad input from turning into a wrong number.

use super::super::EvalError;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::collections::{HashMap, HashSet};
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
    /// mmdetection's own `ignore` flag (read by `proposal_fast`; COCOeval replaces it by
    /// `iscrowd`, as pycocotools does).
    #[serde(default, deserialize_with = "de_flag")]
    pub ignore: bool,
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

/// Where an image and a category of a [`CocoGt`] sit in its lists: the slots the VOC
/// evaluator and the confusion matrix index their per-image, per-class inputs by.
pub struct GtSlots {
    pub image: HashMap<i64, usize>,
    pub class: HashMap<i64, usize>,
}

impl GtSlots {
    pub fn of(gt: &CocoGt) -> GtSlots {
        GtSlots {
            image: (gt.images.iter().enumerate())
                .map(|(i, &id)| (id, i))
                .collect(),
            class: (gt.categories.iter().enumerate())
                .map(|(k, c)| (c.id, k))
                .collect(),
        }
    }

    /// The (image, class) slot of every detection, in order; a detection naming an image or a
    /// category the ground truth does not list is an error naming it (all of them, at once),
    /// and naming `dt_origin`.
    pub fn of_detections(
        &self,
        dets: &[Detection],
        dt_origin: &str,
    ) -> Result<Vec<(usize, usize)>, EvalError> {
        let mut slots = Vec::with_capacity(dets.len());
        let mut problems = Vec::new();
        for (n, d) in dets.iter().enumerate() {
            match (self.image.get(&d.image_id), self.class.get(&d.category_id)) {
                (Some(&i), Some(&k)) => slots.push((i, k)),
                (None, _) => problems.push(format!(
                    "detection {n}: image_id {} is not in the ground truth",
                    d.image_id
                )),
                (_, None) => problems.push(format!(
                    "detection {n}: category_id {} is not in the ground truth",
                    d.category_id
                )),
            }
        }
        if !problems.is_empty() {
            return Err(EvalError::Invalid {
                origin: dt_origin.into(),
                problems,
            });
        }
        Ok(slots)
    }
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
    crate::util::read::regular_file(path, crate::util::read::UNLIMITED).map_err(|source| {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
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
        // Each id with the index it first appeared at, so a duplicate names both places.
        let mut images = HashMap::new();
        for (i, &id) in self.images.iter().enumerate() {
            if let Some(first) = images.insert(id, i) {
                images.insert(id, first);
                problems.push(format!(
                    "images[{i}]: duplicate image id {id} (also images[{first}])"
                ));
            }
        }
        let mut cats = HashMap::new();
        for (i, c) in self.categories.iter().enumerate() {
            if let Some(first) = cats.insert(c.id, i) {
                cats.insert(c.id, first);
                problems.push(format!(
                    "categories[{i}]: duplicate category id {} (also categories[{first}])",
                    c.id
                ));
            }
        }
        let mut ann_ids = HashMap::new();
        for (i, a) in self.annotations.iter().enumerate() {
            let at = format!("annotations[{i}] (id {})", a.id);
            // pycocotools indexes annotations by id: a duplicate silently replaces the other.
            if let Some(first) = ann_ids.insert(a.id, i) {
                ann_ids.insert(a.id, first);
                problems.push(format!(
                    "{at}: duplicate annotation id (also annotations[{first}])"
                ));
            }
            if !images.contains_key(&a.image_id) {
                problems.push(format!("{at}: image_id {} is not in images", a.image_id));
            }
            if !cats.contains_key(&a.category_id) {
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

/// Parse a COCO results JSON list (errors name the origin "input"). Large lists are split at
/// top-level commas and parsed in parallel; any failure re-parses serially so the error names
/// the exact line and column.
pub fn load_detections_bytes(bytes: &[u8]) -> Result<Vec<Detection>, EvalError> {
    if let Some(chunks) = split_top_level_array(bytes, rayon::current_num_threads() * 4) {
        use rayon::prelude::*;
        let parsed: Result<Vec<Vec<Detection>>, serde_json::Error> = chunks
            .par_iter()
            .map(|&(s, e)| {
                let mut buf = Vec::with_capacity(e - s + 2);
                buf.push(b'[');
                buf.extend_from_slice(&bytes[s..e]);
                buf.push(b']');
                serde_json::from_slice(&buf)
            })
            .collect();
        if let Ok(parts) = parsed {
            return Ok(parts.concat());
        }
    }
    serde_json::from_slice(bytes).map_err(|e| json_error("input", e))
}

/// Byte ranges of about `parts` runs of whole elements of a top-level JSON array (each run
/// without the brackets and without the separating comma), or `None` when the input is small or
/// not shaped like an array of objects.
fn split_top_level_array(bytes: &[u8], parts: usize) -> Option<Vec<(usize, usize)>> {
    const MIN_PARALLEL: usize = 1 << 20;
    if bytes.len() < MIN_PARALLEL || parts < 2 {
        return None;
    }
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if bytes[start] != b'[' || bytes[end] != b']' {
        return None;
    }
    let target = (end - start) / parts;
    let mut runs = Vec::with_capacity(parts);
    let (mut run_start, mut depth, mut in_string, mut escaped) = (start + 1, 0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().take(end).skip(start + 1) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 && i - run_start >= target => {
                runs.push((run_start, i));
                run_start = i + 1;
            }
            _ => {}
        }
    }
    if in_string || depth != 0 {
        return None;
    }
    runs.push((run_start, end));
    Some(runs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_parse_equals_serial() {
        // Strings with brackets, commas and escaped quotes must not split an element.
        let mut text = String::from("[");
        for i in 0..30_000 {
            if i > 0 {
                text.push_str(",\n");
            }
            text.push_str(&format!(
                r#"{{"image_id": {i}, "tag": "a,]}}\"[{{", "category_id": {}, "bbox": [1.5, 2, 3, 4e-1], "score": 0.{i}}}"#,
                i % 7
            ));
        }
        text.push(']');
        assert!(text.len() > 1 << 20);
        let serial: Vec<Detection> = serde_json::from_str(&text).unwrap();
        assert_eq!(load_detections_bytes(text.as_bytes()).unwrap(), serial);
        assert!(split_top_level_array(text.as_bytes(), 8).unwrap().len() > 1);
        // A bad value deep inside still reports its real line.
        let bad = text.replacen(r#""score": 0.29999"#, r#""score": "x""#, 1);
        let err = load_detections_bytes(bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 30000"), "{err}");
    }
}
