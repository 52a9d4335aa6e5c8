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

/// Why a run cannot use its work dir (or its checkpoint folder). `what` names which
/// ("work dir", "checkpoint folder").
#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    /// A folder where mmrun writes a file (`config.json`, the logs, `last_checkpoint`).
    #[error("{} is a folder, but mmrun writes a file there; move it away", path.display())]
    FolderInTheWay {
        /// The folder.
        path: PathBuf,
    },
    /// `results` exists and is not a folder.
    #[error(
        "{} is not a folder; mmrun writes evaluation results into it",
        path.display()
    )]
    ResultsNotAFolder {
        /// The `results` path.
        path: PathBuf,
    },
    /// The folder exists and is something else (a file, a FIFO).
    #[error("the {what} {} exists and is not a folder", dir.display())]
    NotAFolder { what: &'static str, dir: PathBuf },
    /// The folder could not be created.
    #[error("cannot create the {what} {}: {source}", dir.display())]
    Create {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock the {what} ({}): {source}", path.display())]
    Lock {
        what: &'static str,
        /// The lock file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "the {what} {} is in use by {}; wait for it to finish or use another --work-dir",
        dir.display(),
        holder_text(holder.as_deref())
    )]
    InUse {
        what: &'static str,
        dir: PathBuf,
        /// The holder's process id, as its lock file records it (`None`: not recorded).
        holder: Option<String>,
    },
    /// What a killed run left behind could not be tidied.
    #[error("tidying {}: {source}", dir.display())]
    Tidy {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who holds a lock, as [`WorkDirError::InUse`] says it.
fn holder_text(pid: Option<&str>) -> String {
    match pid {
        Some(pid) => format!("another mmrun process (pid {pid})"),
        None => "another process".to_string(),
    }
}

/// Held while a run writes into its work dir (and its checkpoint folder, when that lies
/// elsewhere); the operating system releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct WorkDirLock {
    _held: Vec<File>,
}

/// Check the layout of `work_dir` and `ckpt_dir`, create them, lock them, and tidy what a
/// killed run left. Returns the lock and a line for each thing tidied.
pub fn open(work_dir: &Path, ckpt_dir: &Path) -> Result<(WorkDirLock, Vec<String>), WorkDirError> {
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
                return Err(WorkDirError::FolderInTheWay { path: p });
            }
        }
    }
    let results = work_dir.join("results");
    if results.exists() && !results.is_dir() {
        return Err(WorkDirError::ResultsNotAFolder { path: results });
    }
    let mut notes = Vec::new();
    for dir in [work_dir, ckpt_dir] {
        let done = clean_leftovers(dir).map_err(|source| WorkDirError::Tidy {
            dir: dir.to_path_buf(),
            source,
        })?;
        notes.extend(done);
    }
    Ok((WorkDirLock { _held: held }, notes))
}

fn make_folder(dir: &Path, what: &'static str) -> Result<(), WorkDirError> {
    let dir_buf = || dir.to_path_buf();
    if dir.exists() && !dir.is_dir() {
        return Err(WorkDirError::NotAFolder {
            what,
            dir: dir_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| WorkDirError::Create {
        what,
        dir: dir_buf(),
        source,
    })
}

/// Lock `dir` through `dir/.mmrun.lock`, recording this process's id in it.
fn lock_folder(dir: &Path, what: &'static str) -> Result<File, WorkDirError> {
    make_folder(dir, what)?;
    let path: PathBuf = dir.join(LOCK_FILE);
    let io = |source| WorkDirError::Lock {
        what,
        path: path.clone(),
        source,
    };
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
            return Err(WorkDirError::InUse {
                what,
                dir: dir.to_path_buf(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    f.set_len(0).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(f, "{}", std::process::id()).map_err(io)?;
    Ok(f)
}
