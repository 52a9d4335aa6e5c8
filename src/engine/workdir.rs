//! The work dir at the start of a run: its layout checked, a lock so that one `mmrun exec`
//! at a time writes into it, and what a killed run left behind tidied under that lock.

use crate::util::atomic_file::clean_leftovers;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked folder.
pub const LOCK_FILE: &str = ".mmrun.lock";

/// Files of the work dir that must not be folders.
const FILES: [&str; 4] = ["config.json", "log.txt", "log.jsonl", "last_checkpoint"];

/// Held while a run writes into its work dir (and its checkpoint folder, when that lies
/// elsewhere); the operating system releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct WorkDirLock {
    _held: Vec<File>,
}

/// Check the layout of `work_dir` and `ckpt_dir`, create them, lock them, and tidy what a
/// killed run left. Returns the lock and a line for each thing tidied.
pub fn open(work_dir: &Path, ckpt_dir: &Path) -> Result<(WorkDirLock, Vec<String>), String> {
    let mut held = vec![lock_folder(work_dir, "work dir")?];
    if !ckpt_dir.starts_with(work_dir) {
        held.push(lock_folder(ckpt_dir, "checkpoint folder")?);
    } else {
        make_folder(ckpt_dir, "checkpoint folder")?;
    }
    for dir in [work_dir, ckpt_dir] {
        for f in FILES {
            let p = dir.join(f);
            if p.is_dir() {
                return Err(format!(
                    "{} is a folder, but mmrun writes a file there; move it away",
                    p.display()
                ));
            }
        }
    }
    let results = work_dir.join("results");
    if results.exists() && !results.is_dir() {
        return Err(format!(
            "{} is not a folder; mmrun writes evaluation results into it",
            results.display()
        ));
    }
    let mut notes = Vec::new();
    for dir in [work_dir, ckpt_dir] {
        let done = clean_leftovers(dir).map_err(|e| format!("tidying {}: {e}", dir.display()))?;
        notes.extend(done);
    }
    Ok((WorkDirLock { _held: held }, notes))
}

fn make_folder(dir: &Path, what: &str) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "the {what} {} exists and is not a folder",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the {what} {}: {e}", dir.display()))
}

/// Lock `dir` through `dir/.mmrun.lock`, recording this process's id in it.
fn lock_folder(dir: &Path, what: &str) -> Result<File, String> {
    make_folder(dir, what)?;
    let path: PathBuf = dir.join(LOCK_FILE);
    let io = |e: std::io::Error| format!("cannot lock the {what} ({}): {e}", path.display());
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("another mmrun process (pid {holder})")
            };
            return Err(format!(
                "the {what} {} is in use by {who}; wait for it to finish or use another --work-dir",
                dir.display()
            ));
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    f.set_len(0).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(f, "{}", std::process::id()).map_err(io)?;
    Ok(f)
}
