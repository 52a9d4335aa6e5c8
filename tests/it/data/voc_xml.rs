//! VOC annotation files at hostile sizes, through `mmrun data inspect --voc`: 400k tags parse
//! in linear time (the hand-written reader before took minutes), deep nesting is no crash,
//! and errors name the file and line.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A VOC year folder with one image set `big` whose annotation has `objects` objects
/// (9 elements each).
fn voc(dir: &Path, objects: usize) -> std::path::PathBuf {
    for d in ["Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let obj = "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin>\
               <ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>\n";
    let xml = format!(
        "<annotation><filename>big.jpg</filename><size><width>100</width><height>100</height>\
         </size>\n{}</annotation>\n",
        obj.repeat(objects)
    );
    std::fs::write(dir.join("Annotations/big.xml"), xml).unwrap();
    let list = dir.join("ImageSets/Main/big.txt");
    std::fs::write(&list, "big\n").unwrap();
    list
}

fn inspect(dir: &Path, list: &Path) -> (i32, String, Duration) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .args(["data", "inspect", "--voc", "--img-prefix"])
        .arg(dir)
        .arg(list)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text, t.elapsed())
}

#[test]
fn a_400k_tag_annotation_parses_in_linear_time() {
    let small = tempfile::tempdir().unwrap();
    let big = tempfile::tempdir().unwrap();
    let (l1, l4) = (voc(small.path(), 11_200), voc(big.path(), 44_800)); // 100k, 400k tags
    let (c1, o1, t1) = inspect(small.path(), &l1);
    let (c4, o4, t4) = inspect(big.path(), &l4);
    assert_eq!((c1, c4), (0, 0), "{o1}\n{o4}");
    assert!(o4.contains("44800 boxes"), "{o4}");
    // Generous: well under a second here; quadratic took minutes at this size.
    assert!(t4 < Duration::from_secs(10), "400k tags took {t4:?}");
    // 4x the input, at most ~8x the time (quadratic is 16x), plus slack for process start.
    assert!(
        t4 < t1 * 8 + Duration::from_millis(500),
        "100k tags {t1:?}, 400k tags {t4:?}: not linear"
    );
}

#[test]
fn deep_nesting_and_broken_files_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = voc(dir.path(), 1);
    let ann = dir.path().join("Annotations/big.xml");
    // 200k nested elements: no stack overflow, just a file without a <size>.
    let deep = format!(
        "<annotation>{}{}</annotation>",
        "<a>".repeat(200_000),
        "</a>".repeat(200_000)
    );
    std::fs::write(&ann, deep).unwrap();
    let (c, out, _) = inspect(dir.path(), &list);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("big.xml") && out.contains("missing <width>"),
        "{out}"
    );

    std::fs::write(&ann, "<annotation>\n<size><width>10</width>\n</annotation>").unwrap();
    let (c, out, _) = inspect(dir.path(), &list);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("big.xml") && out.contains("line 3"), "{out}");

    std::fs::write(
        &ann,
        "<annotation>\n<size>\n<width>ten</width><height>10</height></size></annotation>",
    )
    .unwrap();
    let (c, out, _) = inspect(dir.path(), &list);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("big.xml: line 3: <width> is not a number: `ten`"),
        "{out}"
    );
}
