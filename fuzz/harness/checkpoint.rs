//! `checkpoint`: an input is the content of a checkpoint folder, written to a temporary
//! folder and read by `load_checkpoint`. Properties: no panic; every error names the
//! folder; a file whose recorded sha256 is wrong, or that is listed but absent, is never
//! accepted (and a checksum error names a file whose sum is wrong); a checkpoint that loads
//! has tensors whose data fits their shape, loads into a parameter set, and saves and loads
//! back to the same content.
//!
//! The input is a list of records `[tag: u8][len: u16 LE][len bytes]` (a short last record
//! takes what is left). `tag & 7` picks the piece: 0-4 the files `model.safetensors`,
//! `optimizer.safetensors`, `ema.safetensors`, `hooks.safetensors`, `state.json`; 5 a
//! verbatim `MANIFEST` (instead of the generated one); 6 and 7 lines appended to the
//! generated `MANIFEST`. For files, `(tag >> 3) & 3` says how `MANIFEST` lists them: 0 with
//! the right sha256, 1 with a wrong one, 2 not at all, 3 with the right one but the file is
//! not written. A later record of the same piece replaces an earlier one. The checksums are
//! computed here so that mutations reach the parsers behind the sha256 check.
//!
//! Shared by the cargo-fuzz target and `tests/it/fuzz/checkpoint.rs`.

use mmrun::engine::checkpoint::{
    CheckpointData, CheckpointError, FileWriter, Tensors, load_checkpoint, load_weights_into,
    save_checkpoint,
};
use mmrun::engine::params::{ParamKind, ParamSet};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The files of a checkpoint folder, in tag order.
pub const FILES: [&str; 5] = [
    "model.safetensors",
    "optimizer.safetensors",
    "ema.safetensors",
    "hooks.safetensors",
    "state.json",
];

/// How `MANIFEST` lists a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sum {
    Right,
    Wrong,
    Unlisted,
    /// Listed with the right sum, but not written.
    Missing,
}

/// One checkpoint folder to write.
#[derive(Clone, Debug, Default)]
pub struct Folder {
    pub files: [Option<(Sum, Vec<u8>)>; 5],
    pub manifest: Option<Vec<u8>>,
    pub manifest_extra: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Folder {
    /// Split an input into its records.
    pub fn from_bytes(mut data: &[u8]) -> Folder {
        let mut f = Folder::default();
        while data.len() >= 3 {
            let tag = data[0];
            let len = u16::from_le_bytes([data[1], data[2]]) as usize;
            let body = &data[3..(3 + len).min(data.len())];
            data = &data[3 + body.len()..];
            match tag & 7 {
                i @ 0..=4 => {
                    let sum = [Sum::Right, Sum::Wrong, Sum::Unlisted, Sum::Missing]
                        [usize::from((tag >> 3) & 3)];
                    f.files[usize::from(i)] = Some((sum, body.to_vec()));
                }
                5 => f.manifest = Some(body.to_vec()),
                _ => f.manifest_extra.extend_from_slice(body),
            }
        }
        f
    }

    /// The input that [`from_bytes`](Self::from_bytes) splits into this folder (for seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |tag: u8, body: &[u8]| {
            let len = u16::try_from(body.len()).expect("a piece under 64 KiB");
            out.push(tag);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(body);
        };
        for (i, file) in self.files.iter().enumerate() {
            if let Some((sum, bytes)) = file {
                let s = match sum {
                    Sum::Right => 0,
                    Sum::Wrong => 1,
                    Sum::Unlisted => 2,
                    Sum::Missing => 3,
                };
                push(i as u8 | (s << 3), bytes);
            }
        }
        if let Some(m) = &self.manifest {
            push(5, m);
        }
        if !self.manifest_extra.is_empty() {
            push(6, &self.manifest_extra);
        }
        out
    }

    /// Write the folder's files into `dir` (which exists).
    pub fn write(&self, dir: &Path) {
        let mut manifest = String::new();
        for (name, file) in FILES.iter().zip(&self.files) {
            let Some((sum, bytes)) = file else { continue };
            if *sum != Sum::Missing {
                std::fs::write(dir.join(name), bytes).expect("write a checkpoint file");
            }
            let mut hex = sha256_hex(bytes);
            match sum {
                Sum::Unlisted => continue,
                Sum::Wrong => {
                    let first = if hex.starts_with('0') { "1" } else { "0" };
                    hex.replace_range(0..1, first);
                }
                Sum::Right | Sum::Missing => {}
            }
            manifest.push_str(&format!("{hex}  {name}\n"));
        }
        let manifest = match &self.manifest {
            Some(m) => m.clone(),
            None => [manifest.as_bytes(), &self.manifest_extra].concat(),
        };
        std::fs::write(dir.join("MANIFEST"), manifest).expect("write MANIFEST");
    }

    /// Whether `MANIFEST` is the generated one and lists each file exactly as tagged.
    fn manifest_is_generated(&self) -> bool {
        self.manifest.is_none() && self.manifest_extra.is_empty()
    }
}

/// Writes without fsync (checkpoints written by the harness are thrown away).
pub struct PlainWriter;

impl FileWriter for PlainWriter {
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(path, bytes)
    }
}

/// Run one input; panics (the finding) when a property does not hold.
pub fn run(data: &[u8]) {
    run_folder(&Folder::from_bytes(data));
}

/// Write `f` as a checkpoint folder and check what `load_checkpoint` makes of it.
pub fn run_folder(f: &Folder) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("iter_1");
    std::fs::create_dir(&dir).expect("create the checkpoint folder");
    f.write(&dir);
    let name = dir.display().to_string();
    let loaded = load_checkpoint(&dir);
    if f.manifest_is_generated() {
        let bad = f
            .files
            .iter()
            .flatten()
            .any(|(s, _)| matches!(s, Sum::Wrong | Sum::Missing));
        assert!(
            !(bad && loaded.is_ok()),
            "a file with a wrong sha256, or a listed file that is absent, was accepted"
        );
    }
    let data = match loaded {
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(&name), "the error does not name the folder: {m}");
            if let CheckpointError::Checksum { file, .. } = &e
                && f.manifest_is_generated()
            {
                let i = FILES.iter().position(|n| n == file).expect("a known file");
                assert!(
                    matches!(&f.files[i], Some((Sum::Wrong, _))),
                    "checksum error for {file}, whose sum is right: {m}"
                );
            }
            return;
        }
        Ok(data) => data,
    };
    for t in [
        Some(&data.weights),
        data.optimizer.as_ref(),
        data.ema.as_ref(),
        data.hooks.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        check_tensors(t);
    }
    // Load the weights into parameters of the same names and shapes, and of other shapes.
    for scale in [1, 2] {
        let mut params = ParamSet::new();
        for (k, t) in &data.weights {
            let shape: Vec<usize> = t.shape.iter().map(|d| d * scale).collect();
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if let Some(n) = n.filter(|&n| n <= 1 << 16) {
                let _ = params.add(k, &shape, ParamKind::Weight, true, vec![0.0; n]);
            }
        }
        let report = load_weights_into(&mut params, &data.weights);
        let _ = report.to_string();
    }
    // Save and load again: the same content.
    let again = tmp.path().join("iter_2");
    save_checkpoint(&again, &data, &PlainWriter).expect("a loaded checkpoint saves");
    let back = load_checkpoint(&again).expect("a saved checkpoint loads");
    assert!(same(&back, &data), "save + load changed the checkpoint");
}

fn check_tensors(t: &Tensors) {
    for (k, v) in t {
        let n = v.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(n, Some(v.data.len()), "tensor `{k}`: shape {:?}", v.shape);
    }
}

/// Equal content, comparing floats by bits (NaN payloads included).
fn same(a: &CheckpointData, b: &CheckpointData) -> bool {
    let bits = |t: &Tensors| -> Vec<(String, Vec<usize>, Vec<u32>)> {
        t.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.shape.clone(),
                    v.data.iter().map(|x| x.to_bits()).collect(),
                )
            })
            .collect()
    };
    let opt = |t: &Option<Tensors>| t.as_ref().map(bits);
    bits(&a.weights) == bits(&b.weights)
        && opt(&a.optimizer) == opt(&b.optimizer)
        && opt(&a.ema) == opt(&b.ema)
        && opt(&a.hooks) == opt(&b.hooks)
        && a.state == b.state
}
