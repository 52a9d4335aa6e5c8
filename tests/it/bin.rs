//! Running the `mmrun` binary from tests: its exit code and its stdout and stderr together.

use std::process::Command;

/// Runs `mmrun ARGS` in the crate's root.
pub fn mmrun(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmrun"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the mmrun binary starts");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}
