//! TensorBoard event files, written directly: a tfevents file is a sequence of records
//! `len:u64le, masked_crc32c(len):u32le, data, masked_crc32c(data):u32le`, where each `data`
//! is an `Event` protobuf. We encode the three messages we need by hand:
//! `Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }`,
//! `Summary { repeated Value value = 1; }`, `Value { string tag = 1; float simple_value = 2; }`.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const CRC32C_POLY: u32 = 0x82F6_3B78; // Castagnoli, reflected

/// CRC-32C (Castagnoli), bitwise table-free for brevity; logging writes a few hundred bytes.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TensorFlow's masked CRC, so that CRCs of data containing CRCs stay well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encode an `Event` with a wall time, a step and either a file version or scalars.
pub fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(String, f32)],
) -> Vec<u8> {
    let mut ev = Vec::new();
    ev.push(0x09); // field 1, 64-bit
    ev.extend_from_slice(&wall_time.to_le_bytes());
    ev.push(0x10); // field 2, varint
    varint(step as u64, &mut ev);
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut ev);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, v) in scalars {
            let mut value = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut value);
            value.push(0x15); // field 2, 32-bit
            value.extend_from_slice(&v.to_le_bytes());
            bytes_field(1, &value, &mut summary);
        }
        bytes_field(5, &summary, &mut ev);
    }
    ev
}

/// Frame one record.
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Split a tfevents byte stream into record payloads, checking both CRCs.
pub fn decode_records(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err("truncated record header".into());
        }
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let lcrc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if lcrc != masked_crc32c(&bytes[..8]) {
            return Err("bad length crc".into());
        }
        if bytes.len() < 16 + len {
            return Err("truncated record".into());
        }
        let data = &bytes[12..12 + len];
        let dcrc = u32::from_le_bytes(bytes[12 + len..16 + len].try_into().unwrap());
        if dcrc != masked_crc32c(data) {
            return Err("bad data crc".into());
        }
        out.push(data.to_vec());
        bytes = &bytes[16 + len..];
    }
    Ok(out)
}

/// An open event file.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Create `events.out.tfevents.<secs>.mmrun` in `dir` and write the version event.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let path = dir.join(format!(
            "events.out.tfevents.{}.mmrun.{}",
            now.as_secs(),
            std::process::id()
        ));
        let mut file = File::create(&path)?;
        file.write_all(&encode_record(&encode_event(
            now.as_secs_f64(),
            0,
            Some("brain.Event:2"),
            &[],
        )))?;
        Ok(EventWriter { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append scalars at `step`.
    pub fn scalars(&mut self, step: u64, scalars: &[(String, f32)]) -> io::Result<()> {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.file
            .write_all(&encode_record(&encode_event(t, step as i64, None, scalars)))?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value from the RFC 3720 / iSCSI catalogue.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn records_round_trip_and_detect_corruption() {
        let ev = encode_event(1.5, 7, None, &[("train/loss".into(), 0.25)]);
        let mut rec = encode_record(&ev);
        rec.extend(encode_record(b"x"));
        assert_eq!(decode_records(&rec).unwrap(), vec![ev, b"x".to_vec()]);
        rec[14] ^= 1;
        assert!(decode_records(&rec).is_err());
    }
}
