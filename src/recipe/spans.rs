//! The span table: config path → where the value was written, so later stages (`plan`'s
//! shape inference, the runner) can point diagnostics at recipe text.

use super::diag::Loc;
use std::collections::BTreeMap;

/// Config paths (`model.neck.in_channels`, `data.train.pipeline.2.scale`) to places.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanTable {
    map: BTreeMap<String, Loc>,
}

impl SpanTable {
    pub fn insert(&mut self, path: impl Into<String>, loc: Loc) {
        self.map.insert(path.into(), loc);
    }
    /// The place of exactly this path.
    pub fn get(&self, path: &str) -> Option<Loc> {
        self.map.get(path).copied()
    }
    /// The place of this path, or of its nearest ancestor that has one (a default filled in
    /// from the registry has no text; its component does).
    pub fn nearest(&self, path: &str) -> Option<Loc> {
        let mut p = path;
        loop {
            if let Some(l) = self.map.get(p) {
                return Some(*l);
            }
            p = &p[..p.rfind('.')?];
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, Loc)> {
        self.map.iter().map(|(k, v)| (k.as_str(), *v))
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Joins a parent path and a key.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}
