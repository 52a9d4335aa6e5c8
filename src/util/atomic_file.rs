//! Crash-safe file writes: write to a temporary file in the same folder, fsync it, rename it
//! over the target, fsync the folder. A reader sees the old file or the new one, never half.
//! Folders are replaced the same way ([`replace_dir`]); [`clean_leftovers`] removes what a
//! killed process left behind.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Atomically replace `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = temporary_sibling(path, name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Persist the rename itself.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary name a write of `path` goes through: `.<name>.tmp.<pid>` beside it.
fn temporary_sibling(path: &Path, name: &std::ffi::OsStr) -> std::path::PathBuf {
    let mut t = std::ffi::OsString::from(".");
    t.push(name);
    t.push(format!("{TMP_MARK}{}", std::process::id()));
    path.with_file_name(t)
}

const TMP_MARK: &str = ".tmp.";
const OLD_MARK: &str = ".old.";

/// A temporary folder for building what will replace `dst` (see [`replace_dir`]).
pub fn temporary_dir(dst: &Path) -> io::Result<std::path::PathBuf> {
    let name = dst
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(temporary_sibling(dst, name))
}

/// Put folder `new` in place of `dst`. Where `dst` exists, the two are exchanged by one
/// atomic rename (Linux `renameat2(RENAME_EXCHANGE)`) and the old content, now at `new`, is
/// removed: a crash at any moment leaves `dst` whole, old or new. Where the exchange is not
/// available, the old folder moves aside to `.<name>.old.<pid>` first and [`clean_leftovers`]
/// moves it back if a crash comes between the two renames.
pub fn replace_dir(new: &Path, dst: &Path) -> io::Result<()> {
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dst.exists() {
        if !exchange(new, dst)? {
            let mut old = std::ffi::OsString::from(".");
            old.push(dst.file_name().unwrap_or_default());
            old.push(format!("{OLD_MARK}{}", std::process::id()));
            let old = dst.with_file_name(old);
            fs::rename(dst, &old)?;
            fs::rename(new, dst)?;
            let _ = fs::remove_dir_all(&old);
        }
    } else {
        fs::rename(new, dst)?;
    }
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
    // After an exchange `new` holds the old content.
    if new.exists() {
        let _ = fs::remove_dir_all(new);
    }
    Ok(())
}

/// Swap two paths atomically; `Ok(false)` where the platform or file system cannot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Tidy `dir` after a killed process: remove `.<name>.tmp.<pid>` files and folders (writes
/// that never finished, or old content an exchange left), and put a `.<name>.old.<pid>`
/// folder back as `<name>` when `<name>` is missing (a crash between the two renames of
/// [`replace_dir`]'s fallback), removing it otherwise. Only call this while holding the
/// folder's lock: another live process's temporaries look the same. Returns what it did.
pub fn clean_leftovers(dir: &Path) -> io::Result<Vec<String>> {
    let mut done = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hidden) = name.strip_prefix('.') else {
            continue;
        };
        let split = |mark: &str| {
            let (base, pid) = hidden.rsplit_once(mark)?;
            (!base.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                .then_some(base)
        };
        let path = e.path();
        let remove = |p: &Path| {
            if p.is_dir() {
                fs::remove_dir_all(p)
            } else {
                fs::remove_file(p)
            }
        };
        if split(TMP_MARK).is_some() {
            remove(&path)?;
            done.push(format!("removed the unfinished write {}", path.display()));
        } else if let Some(base) = split(OLD_MARK) {
            let target = dir.join(base);
            if target.exists() {
                remove(&path)?;
                done.push(format!("removed the replaced {}", path.display()));
            } else {
                fs::rename(&path, &target)?;
                done.push(format!(
                    "restored {} (a replacement was interrupted)",
                    target.display()
                ));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_dir_swaps_and_cleanup_restores_an_interrupted_fallback() {
        let root = tempfile::tempdir().unwrap();
        let dst = root.path().join("epoch_1");
        fs::create_dir(&dst).unwrap();
        fs::write(dst.join("f"), "old").unwrap();
        let new = temporary_dir(&dst).unwrap();
        fs::create_dir(&new).unwrap();
        fs::write(new.join("f"), "new").unwrap();
        replace_dir(&new, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("f")).unwrap(), "new");
        assert!(!new.exists());
        // A crash between the fallback's renames: `dst` gone, `.epoch_1.old.7` holds it.
        fs::rename(&dst, root.path().join(".epoch_1.old.7")).unwrap();
        fs::create_dir(root.path().join(".epoch_2.tmp.7")).unwrap();
        fs::write(root.path().join(".last_checkpoint.tmp.7"), "x").unwrap();
        let done = clean_leftovers(root.path()).unwrap();
        assert_eq!(done.len(), 3, "{done:?}");
        assert_eq!(fs::read_to_string(dst.join("f")).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(root.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
