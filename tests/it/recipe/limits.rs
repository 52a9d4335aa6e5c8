//! `check` refuses the sizes the data loader would refuse (`data::limits`): the registry's
//! bounds on `data.samples_per_gpu` and on image sides in scales equal the loader's, so a
//! recipe `check` calls ok is not stopped for its sizes once `exec` has loaded the data.

use mmrun::data::limits::{MAX_BATCH, MAX_SIDE};
use std::process::Command;

fn check(set: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "check",
            "pipelines/quickstart.recipe",
            "--no-fs",
            "--set",
            set,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn pipeline(scale: usize) -> String {
    format!(
        "data.train.pipeline=[load_image, load_annotations, \
         resize {{ scale = [{scale}, {scale}], keep_ratio = true }}, pad {{ size_divisor = 32 }}]"
    )
}

#[test]
fn check_bounds_batch_size_and_scales_as_the_loader_does() {
    let (code, text) = check(&format!("data.samples_per_gpu={MAX_BATCH}"));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&format!("data.samples_per_gpu={}", MAX_BATCH + 1));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&MAX_BATCH.to_string()), "{text}");
    assert!(text.contains("samples_per_gpu"), "{text}");

    let (code, text) = check(&pipeline(MAX_SIDE));
    assert_eq!(code, 0, "{text}");
    let (code, text) = check(&pipeline(MAX_SIDE + 1));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&MAX_SIDE.to_string()), "{text}");
}
