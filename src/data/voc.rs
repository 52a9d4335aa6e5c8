//! Pascal VOC → [`Dataset`]: an image-set list of ids, one XML file per image under
//! `Annotations/`, images under `JPEGImages/`. `difficult` objects become ignored boxes.
//! Coordinates are 1-based in VOC files; like mmdetection, 1 is subtracted.
//!
//! The classes are the 20 VOC ones, or the recipe's `classes` (mmdetection's `CLASSES`): any
//! names, in the label order given — a dataset in VOC layout with its own classes, or a subset
//! of VOC's. As in mmdetection's `XMLDataset`, objects of other classes are then left out;
//! without `classes`, an object of no VOC class is a bad sample that names it.

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
    let list = crate::util::read::regular_text(ann_file, crate::util::read::UNLIMITED)
        .map_err(|e| DataError::io(ann_file, e))?;
    let all: Vec<String> = match &opts.classes {
        Some(own) => {
            if let Some((i, c)) = (own.iter().enumerate()).find(|(i, c)| own[..*i].contains(c)) {
                return Err(DataError::Config(format!(
                    "classes: `{c}` is listed twice (at {} and {i}); each class is one label",
                    own.iter().position(|x| x == c).unwrap_or(0)
                )));
            }
            own.clone()
        }
        None => VOC_CLASSES.iter().map(|s| s.to_string()).collect(),
    };
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
    let text = crate::util::read::regular_text(xml_path, crate::util::read::UNLIMITED)
        .map_err(|e| DataError::io(xml_path, e))?;
    let doc = xml::parse(&text).map_err(|source| DataError::Xml {
        path: xml_path.to_path_buf(),
        source,
    })?;
    let root = doc.root_element();
    // `parent` is where the element should be, for the line of a "missing" error.
    let num = |parent: Option<xml::Node<'_, '_>>, what: &str| -> Result<f64> {
        let at = parent.unwrap_or(root);
        let el = parent.and_then(|p| xml::child(p, what)).ok_or_else(|| {
            let m = format!(
                "line {}: missing <{what}> in <{}>",
                xml::line(at),
                at.tag_name().name()
            );
            DataError::parse(xml_path, m)
        })?;
        let t = xml::text(el);
        t.parse::<f64>().map_err(|_| {
            let m = format!("line {}: <{what}> is not a number: `{t}`", xml::line(el));
            DataError::parse(xml_path, m)
        })
    };
    let size = xml::child(root, "size");
    let width = num(size, "width")? as u32;
    let height = num(size, "height")? as u32;
    let file_name = xml::child(root, "filename")
        .map(xml::text)
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
    for (k, obj) in xml::children_named(root, "object").enumerate() {
        let one = || -> Result<Option<(u32, [f32; 4], bool)>> {
            let name = xml::child(obj, "name").map(xml::text).unwrap_or_default();
            let Some(pos) = all.iter().position(|c| *c == name) else {
                if opts.classes.is_some() {
                    return Ok(None);
                }
                return Err(DataError::bad_ann(
                    xml_path,
                    format!("object {k} (line {})", xml::line(obj)),
                    format!(
                        "unknown category `{name}`: not a VOC class (a dataset with its own classes lists them in `classes`)"
                    ),
                ));
            };
            let Some(label) = labels[pos] else {
                return Ok(None);
            };
            let difficult = xml::child(obj, "difficult").is_some_and(|d| xml::text(d) == "1");
            let bb = xml::child(obj, "bndbox").ok_or_else(|| {
                let m = format!("line {}: missing <bndbox> in <object>", xml::line(obj));
                DataError::bad_ann(xml_path, format!("object {k}"), m)
            })?;
            // mmdetection truncates to integers, then makes the corners 0-based.
            let c = |n: &str| num(Some(bb), n).map(|v| v.trunc() - 1.0);
            let (x1, y1, x2, y2) = (c("xmin")?, c("ymin")?, c("xmax")?, c("ymax")?);
            let b = check_box(x1, y1, x2, y2, width, height).map_err(|m| {
                DataError::bad_ann(xml_path, format!("object {k} (line {})", xml::line(obj)), m)
            })?;
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
