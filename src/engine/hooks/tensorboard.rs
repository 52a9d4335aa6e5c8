//! TensorBoard event files, written directly: a tfevents file is a sequence of records
//! `len:u64le, masked_crc32c(len):u32le, data, masked_crc32c(data):u32le`, where each `data`
//! is an `Event` protobuf. We encode the four messages we need by hand:
//! `Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }`,
//! `Summary { repeated Value value = 1; }`,
//! `Value { string tag = 1; float simple_value = 2; Image image = 4; }` and
//! `Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }`
//! (tensorflow's `summary.proto`), and read back the image summaries we wrote. After each
//! evaluation the log hook adds pictures of the first [`VAL_PICTURES`] val images: ground
//! truth beside the predictions, as `mmrun test --show-dir` draws them.

use crate::util::protobuf::Msg;
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

/// Encode an `Event` with a wall time, a step and either a file version or scalars.
pub fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(String, f32)],
) -> Vec<u8> {
    let mut ev = Msg::new();
    ev.double(1, wall_time).int(2, step);
    if let Some(v) = file_version {
        ev.str(3, v);
    }
    if !scalars.is_empty() {
        let mut summary = Msg::new();
        for (tag, v) in scalars {
            summary.msg(1, Msg::new().str(1, tag).float(2, *v));
        }
        ev.msg(5, &summary);
    }
    ev.into_bytes()
}

/// A picture for TensorBoard's images dashboard: PNG bytes and their size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    pub tag: String,
    pub height: u32,
    pub width: u32,
    /// The encoded picture (PNG).
    pub png: Vec<u8>,
}

/// The colorspace `summary.proto` gives RGB.
const RGB: u64 = 3;

/// Encode an `Event` at `step` whose summary holds `images`.
pub fn encode_image_event(wall_time: f64, step: i64, images: &[ImageSummary]) -> Vec<u8> {
    let mut ev = Msg::new();
    ev.double(1, wall_time).int(2, step);
    let mut summary = Msg::new();
    for im in images {
        let mut image = Msg::new();
        image
            .uint(1, u64::from(im.height))
            .uint(2, u64::from(im.width));
        image.uint(3, RGB).bytes(4, &im.png);
        summary.msg(1, Msg::new().str(1, &im.tag).msg(4, &image));
    }
    ev.msg(5, &summary);
    ev.into_bytes()
}

/// Why an event file (or an event in it) could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A record's 12-byte header runs past the end of the file.
    #[error("truncated record header")]
    TruncatedHeader,
    /// A record's payload runs past the end of the file.
    #[error("truncated record")]
    TruncatedRecord,
    /// A record's length does not match its checksum.
    #[error("bad length crc")]
    BadLengthCrc,
    /// A record's data does not match its checksum.
    #[error("bad data crc")]
    BadDataCrc,
    /// A protobuf field cut short (`what`: "varint", "length-delimited field", …).
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    /// A varint of more than ten bytes.
    #[error("varint longer than 10 bytes")]
    LongVarint,
    /// A wire type protobuf has but these events never use.
    #[error("unsupported wire type {0}")]
    WireType(u64),
    /// An image summary whose pixels are not RGB.
    #[error("image `{tag}` has colorspace {colorspace}, not RGB")]
    Colorspace { tag: String, colorspace: u64 },
}

/// Why the pictures of an evaluation could not be made for TensorBoard.
#[derive(Debug, thiserror::Error)]
pub enum PicturesError {
    /// A picture could not be drawn or encoded.
    #[error(transparent)]
    Picture(#[from] crate::viz::PictureError),
    /// The task could not draw its results.
    #[error(transparent)]
    Task(#[from] crate::engine::task::TaskError),
}

/// One protobuf field: its number and, for the wire types we meet, its value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Split a protobuf message into its fields.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, DecodeError> {
    let truncated = |what| DecodeError::Truncated { what };
    fn read_varint(b: &mut &[u8]) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) =
                (b.split_first()).ok_or(DecodeError::Truncated { what: "varint" })?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::LongVarint)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = read_varint(&mut b)?;
        let field = match key & 7 {
            0 => Field::Varint(read_varint(&mut b)?),
            2 => {
                let n = read_varint(&mut b)? as usize;
                if n > b.len() {
                    return Err(truncated("length-delimited field"));
                }
                let (v, rest) = b.split_at(n);
                b = rest;
                Field::Bytes(v)
            }
            w @ (1 | 5) => {
                let n = if w == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or(truncated("fixed-width field"))?;
                Field::Fixed
            }
            w => return Err(DecodeError::WireType(w)),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

/// The image summaries of one `Event` (empty for scalars and the version event).
pub fn decode_images(event: &[u8]) -> Result<Vec<ImageSummary>, DecodeError> {
    let mut out = Vec::new();
    for (n, f) in fields(event)? {
        let (5, Field::Bytes(summary)) = (n, f) else {
            continue;
        };
        for (n, f) in fields(summary)? {
            let (1, Field::Bytes(value)) = (n, f) else {
                continue;
            };
            let (mut tag, mut image) = (String::new(), None);
            for (n, f) in fields(value)? {
                match (n, f) {
                    (1, Field::Bytes(t)) => tag = String::from_utf8_lossy(t).into_owned(),
                    (4, Field::Bytes(i)) => image = Some(i),
                    _ => {}
                }
            }
            let Some(image) = image else { continue };
            let mut im = ImageSummary {
                tag,
                height: 0,
                width: 0,
                png: Vec::new(),
            };
            for (n, f) in fields(image)? {
                match (n, f) {
                    (1, Field::Varint(v)) => im.height = v as u32,
                    (2, Field::Varint(v)) => im.width = v as u32,
                    (3, Field::Varint(v)) if v != RGB => {
                        return Err(DecodeError::Colorspace {
                            tag: im.tag,
                            colorspace: v,
                        });
                    }
                    (4, Field::Bytes(p)) => im.png = p.to_vec(),
                    _ => {}
                }
            }
            out.push(im);
        }
    }
    Ok(out)
}

/// How many val images TensorBoard gets a picture of after each evaluation.
pub const VAL_PICTURES: usize = 4;

/// Pictures of the first [`VAL_PICTURES`] images of `task`'s last evaluation, tagged
/// `val/<image>`; none for a task without images.
pub fn val_pictures(
    task: &dyn crate::engine::task::Task,
) -> Result<Vec<ImageSummary>, PicturesError> {
    let thr = crate::engine::detector::pictures::SHOW_SCORE_THR;
    let mut out = Vec::new();
    let mut add = |name: &str, pic: crate::viz::Picture| {
        let png = pic
            .to_png()
            .map_err(|source| crate::viz::PictureError::Encode {
                path: name.into(),
                source,
            })?;
        out.push(ImageSummary {
            tag: format!("val/{}", name.strip_suffix(".png").unwrap_or(name)),
            height: pic.height,
            width: pic.width,
            png,
        });
        Ok(())
    };
    task.draw_results(Some(VAL_PICTURES), thr, &mut add)?;
    Ok(out)
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
pub fn decode_records(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err(DecodeError::TruncatedHeader);
        }
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let lcrc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if lcrc != masked_crc32c(&bytes[..8]) {
            return Err(DecodeError::BadLengthCrc);
        }
        if bytes.len() < 16 + len {
            return Err(DecodeError::TruncatedRecord);
        }
        let data = &bytes[12..12 + len];
        let dcrc = u32::from_le_bytes(bytes[12 + len..16 + len].try_into().unwrap());
        if dcrc != masked_crc32c(data) {
            return Err(DecodeError::BadDataCrc);
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

    /// Append pictures at `step`.
    pub fn images(&mut self, step: u64, images: &[ImageSummary]) -> io::Result<()> {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let ev = encode_image_event(t, step as i64, images);
        self.file.write_all(&encode_record(&ev))?;
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

    #[test]
    fn image_summaries_round_trip() {
        let im = ImageSummary {
            tag: "val/000001".into(),
            height: 300,
            width: 200,
            png: vec![0x89, b'P', b'N', b'G', 1, 2, 3],
        };
        let ev = encode_image_event(2.5, 40, std::slice::from_ref(&im));
        assert_eq!(decode_images(&ev).unwrap(), vec![im]);
        let scalars = encode_event(1.5, 7, None, &[("train/loss".into(), 0.25)]);
        assert_eq!(decode_images(&scalars).unwrap(), vec![]);
        assert!(decode_images(&ev[..ev.len() - 3]).is_err());
    }
}
