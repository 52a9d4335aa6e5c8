//! Bounded versions of the cargo-fuzz targets in `fuzz/`. Each runs the target's own
//! harness (`fuzz/harness/<target>.rs`, included here, so CI checks exactly the properties
//! a campaign checks) on its committed seed corpus (`fuzz/corpus/<target>/`), on the
//! regression inputs of earlier findings (`tests/fixtures/fuzz/<target>/`), and on a few
//! hundred mutated or generated inputs. `MMRUN_FUZZ_CASES=N` runs N cases per property
//! instead (a poor man's campaign, see `docs/fuzzing.md`); `MMRUN_WRITE_FUZZ_SEEDS=1`
//! rewrites the generated seed files.

pub mod check;
mod checkpoint;
mod coco_json;
mod image_decode;
mod pickle;

use proptest::prelude::*;
use std::path::{Path, PathBuf};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Proptest settings: `default` cases, or `MMRUN_FUZZ_CASES`; no persistence file (findings
/// are committed as fixtures instead).
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("MMRUN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The files of a folder, sorted by name (none when it does not exist).
fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = rd
        .map(|e| e.expect("list a corpus folder").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).expect("read a corpus file");
            (p, b)
        })
        .collect();
    out.sort();
    out
}

/// The committed seed corpus of a target (never empty).
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let c = files_in(&root().join("fuzz/corpus").join(target));
    assert!(!c.is_empty(), "fuzz/corpus/{target} has no seeds");
    c
}

/// Every committed input of a target: seeds, then regression inputs of earlier findings.
pub fn committed_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut c = corpus(target);
    c.extend(files_in(&root().join("tests/fixtures/fuzz").join(target)));
    c
}

/// Whether to rewrite the generated seed files (`MMRUN_WRITE_FUZZ_SEEDS=1`).
pub fn write_seeds() -> bool {
    std::env::var_os("MMRUN_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1")
}

/// Write generated seeds of a target under their names.
pub fn save_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus folder");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

/// One byte-level edit, as libFuzzer's mutators make them.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Overwrite the byte at a position.
    Set(usize, u8),
    /// Flip one bit.
    Flip(usize, u8),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Remove up to `n` bytes at a position.
    Remove(usize, usize),
    /// Cut the input at a position.
    Truncate(usize),
    /// Copy `n` bytes from one position over another.
    Copy(usize, usize, usize),
}

/// Edits to apply to a seed; positions are taken modulo the length.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let one = prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        3 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6)).prop_map(|(p, b)| Edit::Insert(p, b)),
        2 => (any::<usize>(), 1usize..16).prop_map(|(p, n)| Edit::Remove(p, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1usize..32).prop_map(|(a, b, n)| Edit::Copy(a, b, n)),
    ];
    prop::collection::vec(one, 1..4)
}

/// Apply edits to a copy of `seed`.
pub fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % len };
        match e {
            Edit::Set(p, b) if !v.is_empty() => {
                let i = at(*p, v.len());
                v[i] = *b;
            }
            Edit::Flip(p, bit) if !v.is_empty() => {
                let i = at(*p, v.len());
                v[i] ^= 1 << bit;
            }
            Edit::Insert(p, b) => {
                let i = at(*p, v.len() + 1);
                v.splice(i..i, b.iter().copied());
            }
            Edit::Remove(p, n) if !v.is_empty() => {
                let i = at(*p, v.len());
                let j = (i + n).min(v.len());
                v.drain(i..j);
            }
            Edit::Truncate(p) => {
                let i = at(*p, v.len() + 1);
                v.truncate(i);
            }
            Edit::Copy(a, b, n) if !v.is_empty() => {
                let (i, j) = (at(*a, v.len()), at(*b, v.len()));
                let n = (*n).min(v.len() - i).min(v.len() - j);
                let src = v[i..i + n].to_vec();
                v[j..j + n].copy_from_slice(&src);
            }
            _ => {}
        }
    }
    v
}

#[test]
fn mutate_applies_each_edit() {
    let s = b"abcdef";
    assert_eq!(mutate(s, &[Edit::Set(7, b'x')]), b"axcdef");
    assert_eq!(mutate(s, &[Edit::Flip(0, 0)]), b"`bcdef");
    assert_eq!(mutate(s, &[Edit::Insert(6, b"zz".to_vec())]), b"abcdefzz");
    assert_eq!(mutate(s, &[Edit::Remove(4, 9)]), b"abcd");
    assert_eq!(mutate(s, &[Edit::Truncate(2)]), b"ab");
    assert_eq!(mutate(s, &[Edit::Copy(0, 3, 2)]), b"abcabf");
    assert_eq!(mutate(b"", &[Edit::Set(3, 1), Edit::Remove(0, 1)]), b"");
}
