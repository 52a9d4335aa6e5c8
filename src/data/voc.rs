//! Pascal VOC → [`Dataset`]: an image-set list of ids, one XML file per image under
//! `Annotations/`, images under `JPEGImages/`. `difficult` objects become ignored boxes.
//! Coordinates are 1-based in VOC files; like mmdetection, 1 is subtracted.

use super::coco::{ReadOptions, check_box};
use super::dataset::{Dataset, Record, select_classes};
use super::error::{BadSampleLog, DataError, Result, apply_policy};
use super::xml;
use std::path::Path;

/// The 20 Pascal VOC classes, the default class list.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// Read a VOC image set. `opts.img_prefix` is the year folder (`VOC2007/`).
pub fn read_voc(ann_file: &Path, opts: &ReadOptions, log: &BadSampleLog) -> Result<Dataset> {
    let list = std::fs::read_to_string(ann_file).map_err(|e| DataError::io(ann_file, e))?;
    let all: Vec<String> = VOC_CLASSES.iter().map(|s| s.to_string()).collect();
    let (labels, classes) = select_classes(ann_file, &all, opts.classes.as_deref())?;
    let mut cat_ids_ordered = vec![0; classes.len()];
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = l {
            cat_ids_ordered[*l as usize] = i as u64 + 1;
        }
    }
    let mut records = vec![];
    for (n, id) in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let xml_path = opts
            .img_prefix
            .join("Annotations")
            .join(format!("{id}.xml"));
        let rec = read_one(&xml_path, id, n as u64, &all, &labels, opts, log);
        let Some(rec) = apply_policy(opts.on_bad_sample, log, rec)? else {
            continue;
        };
        let keep = opts.test_mode
            || ((!opts.filter_empty_gt || !rec.boxes.is_empty() || !rec.ignored.is_empty())
                && rec.width.min(rec.height) >= opts.min_size);
        if keep {
            records.push(rec);
        }
    }
    Ok(Dataset {
        classes,
        cat_ids: cat_ids_ordered,
        records,
    })
}

fn read_one(
    xml_path: &Path,
    id: &str,
    index: u64,
    all: &[String],
    labels: &[Option<u32>],
    opts: &ReadOptions,
    log: &BadSampleLog,
) -> Result<Record> {
    let text = std::fs::read_to_string(xml_path).map_err(|e| DataError::io(xml_path, e))?;
    let root = xml::parse(&text).map_err(|m| DataError::parse(xml_path, m))?;
    let num = |el: Option<&xml::Element>, what: &str| -> Result<f64> {
        let el = el.ok_or_else(|| DataError::parse(xml_path, format!("missing <{what}>")))?;
        el.text.parse::<f64>().map_err(|_| {
            DataError::parse(xml_path, format!("<{what}> is not a number: `{}`", el.text))
        })
    };
    let size = root.child("size");
    let width = num(size.and_then(|s| s.child("width")), "width")? as u32;
    let height = num(size.and_then(|s| s.child("height")), "height")? as u32;
    let file_name = root
        .child("filename")
        .map(|f| f.text.clone())
        .unwrap_or_else(|| format!("{id}.jpg"));
    let mut rec = Record {
        id: index,
        file_name: format!("JPEGImages/{file_name}"),
        path: opts.img_prefix.join("JPEGImages").join(&file_name),
        width,
        height,
        boxes: vec![],
        labels: vec![],
        ignored: vec![],
        ignored_labels: vec![],
    };
    for (k, obj) in root.children_named("object").enumerate() {
        let one = || -> Result<Option<(u32, [f32; 4], bool)>> {
            let name = obj.child("name").map(|n| n.text.as_str()).unwrap_or("");
            let Some(pos) = all.iter().position(|c| c == name) else {
                return Err(DataError::bad_ann(
                    xml_path,
                    format!("object {k}"),
                    format!("unknown category `{name}`"),
                ));
            };
            let Some(label) = labels[pos] else {
                return Ok(None);
            };
            let difficult = obj.child("difficult").is_some_and(|d| d.text.trim() == "1");
            let bb = obj.child("bndbox");
            // mmdetection truncates to integers, then makes the corners 0-based.
            let c = |n: &str| num(bb.and_then(|b| b.child(n)), n).map(|v| v.trunc() - 1.0);
            let (x1, y1, x2, y2) = (c("xmin")?, c("ymin")?, c("xmax")?, c("ymax")?);
            let b = check_box(x1, y1, x2, y2, width, height)
                .map_err(|m| DataError::bad_ann(xml_path, format!("object {k}"), m))?;
            Ok(Some((label, b, difficult)))
        };
        let Some(Some((label, b, difficult))) = apply_policy(opts.on_bad_sample, log, one())?
        else {
            continue;
        };
        if difficult {
            rec.ignored.push(b);
            rec.ignored_labels.push(label);
        } else {
            rec.boxes.push(b);
            rec.labels.push(label);
        }
    }
    Ok(rec)
}
