//! Duplicate ids in a COCO file are refused, naming the file and both places: the loader
//! (`mmrun data inspect`, training) and the evaluator (`mmrun eval coco`) alike. pycocotools
//! indexes by id, so a duplicate silently replaces the other.

use crate::bin::mmrun as run;
use serde_json::json;

fn doc() -> serde_json::Value {
    json!({
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 40, "height": 30},
            {"id": 3, "file_name": "c.png", "width": 40, "height": 30}
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 11, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 12, "image_id": 3, "category_id": 2, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    })
}

#[test]
fn duplicate_ids_are_refused_with_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.json");
    let p = path.to_str().unwrap();
    let dt = dir.path().join("dt.json");
    std::fs::write(&dt, "[]").unwrap();
    let d = dt.to_str().unwrap();

    std::fs::write(&path, doc().to_string()).unwrap();
    assert_eq!(run(&["data", "inspect", p]).0, 0);

    for (list, field, id, loader_needle, eval_needle) in [
        (
            "annotations",
            "id",
            10,
            "annotation id 10 appears twice: `annotations[0]` and `annotations[2]`",
            "annotations[2] (id 10): duplicate annotation id (also annotations[0])",
        ),
        (
            "images",
            "id",
            2,
            "image id 2 appears twice: `images[1]` and `images[2]`",
            "images[2]: duplicate image id 2 (also images[1])",
        ),
        (
            "categories",
            "id",
            1,
            "category id 1 appears twice: `categories[0]` and `categories[1]`",
            "categories[1]: duplicate category id 1 (also categories[0])",
        ),
    ] {
        let mut bad = doc();
        let last = bad[list].as_array().unwrap().len() - 1;
        bad[list][last][field] = json!(id);
        std::fs::write(&path, bad.to_string()).unwrap();
        let (code, text) = run(&["data", "inspect", p]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("dup.json") && text.contains(loader_needle),
            "{text}"
        );
        // Skipping bad annotations does not skip an inconsistent file.
        let (code, text) = run(&["data", "inspect", "--skip-bad", p]);
        assert_eq!(code, 1, "{text}");
        let (code, text) = run(&["eval", "coco", "--gt", p, "--dt", d]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("dup.json") && text.contains(eval_needle),
            "{text}"
        );
    }
}
