//! Running the `mmrun` binary from tests: its exit code and its output.

use std::process::{Command, Output};

/// The binary under test: cargo's, or `MMRUN_BIN` where the test binary runs away from its
/// build tree (`scripts/gpu-check run` on a GPU machine sets it to the bundle's `mmrun`).
fn binary() -> std::ffi::OsString {
    std::env::var_os("MMRUN_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_mmrun").into())
}

/// The crate's root, or the current directory where the build tree is absent (a copied
/// repository on a GPU machine, run from its root).
fn root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("pipelines").is_dir() {
        manifest.to_path_buf()
    } else {
        std::env::current_dir().expect("a current directory")
    }
}

/// Runs `mmrun ARGS` in the crate's root with `env` set (`None`: removed).
fn run(args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.current_dir(root()).args(args);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().expect("the mmrun binary starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `mmrun ARGS` in the crate's root: the exit code, and stdout then stderr in one string.
pub fn mmrun(args: &[&str]) -> (i32, String) {
    mmrun_env(args, &[])
}

/// [`mmrun`] with environment variables set (`Some`) or removed (`None`).
pub fn mmrun_env(args: &[&str], env: &[(&str, Option<&str>)]) -> (i32, String) {
    let out = run(args, env);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

/// Runs `mmrun ARGS` in the crate's root: the exit code, stdout and stderr apart.
pub fn mmrun_split(args: &[&str]) -> (i32, String, String) {
    let out = run(args, &[]);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}
