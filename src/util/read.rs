//! Reading a file a user named, safely: only a regular file (a folder, a FIFO or a device
//! such as `/dev/zero` would fail late, block forever or never end), and at most a given
//! size, so a wrong path is an error instead of a hang or an exhausted memory.

use std::io::{self, Read};
use std::path::Path;

/// No limit beyond the file system's.
pub const UNLIMITED: u64 = u64::MAX;

/// The bytes of the regular file at `path` (symlinks followed), refused when it is something
/// else or holds more than `max` bytes. Errors say which, without the path (callers name it).
pub fn regular_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}"),
        ));
    }
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is larger than the {} this file may have",
                super::units::human_bytes(u128::from(max))
            ),
        )
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(meta.len() as usize)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "not enough memory to read it"))?;
    // The file may grow after `metadata`; read one byte past the limit to notice.
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`regular_file`] as UTF-8 text.
pub fn regular_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(regular_file(path, max)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is not UTF-8 text: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_folders_devices_and_files_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(regular_file(&f, 5).unwrap(), b"12345");
        assert!(
            regular_file(&f, 4)
                .unwrap_err()
                .to_string()
                .contains("larger than the 4 B")
        );
        assert!(
            regular_file(dir.path(), 5)
                .unwrap_err()
                .to_string()
                .contains("a folder")
        );
        let dev = regular_file(Path::new("/dev/zero"), UNLIMITED).unwrap_err();
        assert!(dev.to_string().contains("not a regular file"), "{dev}");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(
            regular_text(&f, 5)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let missing = regular_file(&dir.path().join("none"), 5).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
