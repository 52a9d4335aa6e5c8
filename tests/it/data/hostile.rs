//! Hostile inputs through the real CLI: sizes a user gives (`--size`, a resize scale,
//! `data.samples_per_gpu`) are checked with an error naming them and the limit; `exec`
//! refuses a planned step larger than what the address-space limit leaves, and what is left is
//! allocated fallibly, so under such a limit a command ends with an error, not an abort; a truncated JPEG is a bad sample (an error naming it, or skipped with a warning).

use std::path::Path;
use std::process::{Command, Output};

fn mmrun() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmrun"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `mmrun` under an address-space limit (`ulimit -v`, KiB), through the shell.
fn mmrun_limited(kib: u64) -> Command {
    let mut c = Command::new("sh");
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mmrun"));
    c
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

/// No abort, no panic: the process exited with a code and said why.
fn assert_clean_error(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    assert!(
        !t.contains("panicked") && !t.contains("memory allocation of"),
        "{t}"
    );
    for n in needles {
        assert!(t.contains(n), "`{n}` not in:\n{t}");
    }
}

#[test]
fn synth_sizes_and_counts_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needles) in [
        (
            &["--images", "1", "--size", "100000x100000"][..],
            &["--size", "100000x100000", "16384"][..],
        ),
        (&["--size", "0x64"], &["--size", "0x64"]),
        (&["--images", "0"], &["--images", "'0'"]),
        (&["--images=-3"], &["--images", "'-3'"]),
    ] {
        let o = mmrun()
            .args(["data", "synth", "--out"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert_clean_error(&o, 2, needles);
    }
}

#[test]
fn synth_under_an_address_space_limit_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    // A 16000x16000 image is 732 MiB; the process may have 600 MB.
    let o = mmrun_limited(600_000)
        .args([
            "data",
            "synth",
            "--images",
            "1",
            "--size",
            "16000x16000",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_clean_error(&o, 2, &["cannot allocate", "16000x16000"]);
}

/// A small JPEG shapes set under `dir` with a quickstart shortened onto it.
fn quickstart(dir: &Path) -> Vec<String> {
    let opts = mmrun::data::SynthOptions {
        images: 10,
        seed: 1,
        size: Some((96, 96)),
        format: mmrun::data::synth::SynthFormat::Jpeg,
        ..Default::default()
    };
    mmrun::data::generate(dir, &opts).unwrap();
    let pipeline = "[load_image, load_annotations, resize { scale = size, keep_ratio = true }, \
        normalize { mean = [127.5, 127.5, 127.5], std = [64.0, 64.0, 64.0], to_rgb = true }, \
        pad { size_divisor = 32 }]";
    let r = dir.display();
    vec![
        "size=[64, 64]".into(),
        format!("data.train.pipeline={pipeline}"),
        format!(
            "data.val.pipeline={}",
            pipeline.replace("= size", "= [64, 64]")
        ),
        format!("data.train.ann_file=\"{r}/annotations/instances_train.json\""),
        format!("data.train.img_prefix=\"{r}/train/\""),
        format!("data.val.ann_file=\"{r}/annotations/instances_val.json\""),
        format!("data.val.img_prefix=\"{r}/val/\""),
        "data.samples_per_gpu=2".into(),
    ]
}

fn exec(cmd: &mut Command, work: &Path, sets: &[String]) -> Output {
    cmd.args([
        "exec",
        "pipelines/quickstart.recipe",
        "--max-iters",
        "2",
        "--work-dir",
    ])
    .arg(work);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.output().unwrap()
}

#[test]
fn exec_checks_batch_size_and_resize_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mut sets = quickstart(&dir.path().join("shapes"));
    sets.push("data.samples_per_gpu=100000000".into());
    let o = exec(&mut mmrun(), &dir.path().join("w1"), &sets);
    // `check` refuses it (the registry's bound is the loader's), before any data is read.
    assert_clean_error(&o, 1, &["data.samples_per_gpu", "100000000", "1024"]);

    let mut sets = quickstart(&dir.path().join("shapes"));
    sets[0] = "size=[100000, 100000]".into();
    let o = exec(&mut mmrun(), &dir.path().join("w2"), &sets);
    assert_clean_error(&o, 1, &["scale", "100000", "16384"]);
}

#[test]
fn exec_under_an_address_space_limit_refuses_a_step_that_cannot_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sets = quickstart(&dir.path().join("shapes"));
    // Within the limits, but a batch of 16 images of 4000x4000 is 2.9 GiB of f32.
    sets[0] = "size=[4000, 4000]".into();
    sets.push("data.samples_per_gpu=16".into());
    let o = exec(&mut mmrun_limited(2_500_000), &dir.path().join("w"), &sets);
    // The planned step is compared with what `ulimit -v` leaves before any data is loaded
    // (the loader's own allocations are fallible too: see the `synth` case above).
    assert_clean_error(
        &o,
        2,
        &[
            "the planned training step needs",
            "16 x 3 x 4000 x 4000",
            "address-space limit",
        ],
    );
}

#[test]
fn a_truncated_jpeg_stops_the_run_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    let sets = quickstart(&root);
    let bad = root.join("train/000001.jpg");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();

    let mut strict = sets.clone();
    strict.push("data.sampler=sequential_sampler".into());
    let o = exec(&mut mmrun(), &dir.path().join("w1"), &strict);
    assert_clean_error(&o, 1, &["000001.jpg", "truncated JPEG"]);

    let mut skip = sets;
    skip.push("data.on_bad_sample=skip".into());
    let o = exec(&mut mmrun(), &dir.path().join("w2"), &skip);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("warning: skipped") && t.contains("000001.jpg"),
        "{t}"
    );
}

/// An image path that is a FIFO, a device or a folder is an error naming it, at once.
#[test]
fn image_paths_that_are_not_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("a.png");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let folder = dir.path().join("b.png");
    std::fs::create_dir(&folder).unwrap();
    for (path, why) in [
        (fifo.as_path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (folder.as_path(), "a folder"),
    ] {
        let e = mmrun::data::image::load_image(path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(why),
            "{e}"
        );
    }
}
