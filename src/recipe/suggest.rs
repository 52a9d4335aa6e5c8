//! "Did you mean": the nearest known name by edit distance.

use super::tree::{Node, NodeKind, PathSeg};

/// Levenshtein distance over characters (strsim's, which counts `char`s, not bytes).
pub fn distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= limit || c.contains(name) || name.contains(*c) && c.len() > 2)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// The bound path nearest to a reference that is not bound.
pub fn nearest_path(root: &Node, vars: &Node, path: &[PathSeg]) -> Option<String> {
    let mut all = Vec::new();
    collect(root, &mut Vec::new(), &mut all);
    collect(vars, &mut Vec::new(), &mut all);
    let want = path
        .iter()
        .map(|p| p.seg.to_string())
        .collect::<Vec<_>>()
        .join(".");
    nearest(&want, all.iter().map(String::as_str)).map(str::to_string)
}

fn collect(n: &Node, prefix: &mut Vec<String>, out: &mut Vec<String>) {
    if let NodeKind::Record { fields, .. } = &n.kind {
        for f in fields {
            prefix.push(f.key.clone());
            out.push(prefix.join("."));
            collect(&f.value, prefix, out);
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            nearest("warmup_iter", ["warmup_iters", "warmup_ratio", "lr"]),
            Some("warmup_iters")
        );
        assert_eq!(nearest("zzzzzz", ["warmup_iters", "lr"]), None);
    }
}
