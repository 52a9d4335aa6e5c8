//! Reading files: parsing, imports (relative paths, cycles, sibling conflicts), `let`
//! variables and `--set` overrides, producing one merged tree.
//!
//! Order of a file: its imports merge first, in order (wherever they are written), then its
//! own bindings in order; `--set` overrides apply last. Two imports binding one leaf to
//! different values is an error unless the importing file (or `--set`) binds it itself. A
//! file imported twice (a diamond) is read once and never conflicts with itself.

use super::diag::{Diagnostic, Diagnostics, FileId, Files, Loc};
use super::tree::{Node, NodeKind, PathSeg, apply_items, bind, lower_value, segs};
use crate::syntax::{self, Assign, Item, Seg, Span};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The largest recipe file read (16 MiB; real recipes are a few KiB): a path to something
/// else (a log, a dataset) is refused instead of parsed for minutes.
pub const MAX_RECIPE_BYTES: u64 = 16 << 20;

/// The merged recipe before references are resolved.
pub struct Merged {
    /// The configuration sections.
    pub root: Node,
    /// `let` variables.
    pub vars: Node,
}

/// What loading a file gives: tree, variables, unsettled conflicts, files read.
type Loaded = (Node, Node, Vec<Conflict>, Vec<FileId>);

/// A leaf two sibling imports both bind.
struct Conflict {
    path: String,
    first: Loc,
    second: Loc,
}

struct Loader<'a> {
    files: &'a mut Files,
    diags: &'a mut Diagnostics,
    /// Canonical paths of the files being loaded, outermost first (for cycle reports).
    stack: Vec<(PathBuf, PathBuf)>,
    /// Trees of files already read, with the files each one read (itself and its imports).
    cache: HashMap<PathBuf, (Node, Node, Vec<FileId>)>,
}

/// Loads `path` with its imports, then applies `overrides` (`path=value`, as `--set` takes
/// them). Diagnostics go to `diags`; the tree holds whatever could be read.
pub fn load(
    path: &Path,
    overrides: &[String],
    files: &mut Files,
    diags: &mut Diagnostics,
) -> Option<Merged> {
    let mut l = Loader {
        files,
        diags,
        stack: Vec::new(),
        cache: HashMap::new(),
    };
    let (mut root, mut vars, mut conflicts, _) = l.file(path, None)?;
    for (i, o) in overrides.iter().enumerate() {
        l.override_one(i, o, &mut root, &mut vars, &mut conflicts);
    }
    l.report(conflicts, None);
    Some(Merged { root, vars })
}

/// Joins and removes `.`/`..` lexically, so printed paths stay short and stable.
pub fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl Loader<'_> {
    /// Loads one file: its merged tree, variables, unsettled sibling conflicts, and the files
    /// it read.
    fn file(&mut self, path: &Path, from: Option<Loc>) -> Option<Loaded> {
        let shown = normalise(path);
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| shown.clone());
        if let Some(pos) = self.stack.iter().position(|(k, _)| *k == key) {
            let mut cycle: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(_, s)| s.display().to_string())
                .collect();
            cycle.push(shown.display().to_string());
            self.diags.push(
                Diagnostic::error("E0202", format!("import cycle: {}", cycle.join(" → ")))
                    .with_label_opt(from, "this import closes the cycle")
                    .with_help("remove one of the imports; shared settings belong in a base file both import"),
            );
            return None;
        }
        if let Some((r, v, seen)) = self.cache.get(&key) {
            return Some((r.clone(), v.clone(), Vec::new(), seen.clone()));
        }
        let text = match crate::util::read::regular_text(path, MAX_RECIPE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                let e = if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    e.to_string()
                };
                let msg = if from.is_some() {
                    format!("cannot read imported file `{}`: {e}", shown.display())
                } else {
                    format!("cannot read `{}`: {e}", shown.display())
                };
                self.diags
                    .push(Diagnostic::error("E0201", msg).with_label_opt(from, "imported here"));
                return None;
            }
        };
        let id = self.files.add(shown.clone(), syntax::normalize(text));
        let text = self.files.files[id].text.clone();
        let ast = match syntax::parse(&text) {
            Ok(a) => a,
            Err(errs) => {
                for e in errs {
                    self.diags.push(
                        Diagnostic::error(e.code, e.message)
                            .with_label(Loc::new(id, e.span), e.label)
                            .with_help_opt(e.help),
                    );
                }
                return None;
            }
        };
        self.stack.push((key.clone(), shown.clone()));
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut root = Node::empty_record(Loc::new(id, Span::new(0, 0)));
        let mut vars = Node::empty_record(Loc::new(id, Span::new(0, 0)));
        let mut conflicts = Vec::new();
        let mut first_import = true;
        // Files read by the imports merged so far (and this one).
        let mut read: Vec<FileId> = vec![id];
        for item in &ast.items {
            if let Item::Import {
                path: p, path_span, ..
            } = item
            {
                let loc = Loc::new(id, *path_span);
                if p.contains("://") {
                    self.diags.push(
                        Diagnostic::error(
                            "E0201",
                            format!("cannot import `{p}`: imports are local files"),
                        )
                        .with_label(loc, "a URL")
                        .with_help(
                            "copy the file next to the recipe and import it by relative path",
                        ),
                    );
                    continue;
                }
                let Some((r, v, _, seen)) = self.file(&dir.join(p), Some(loc)) else {
                    continue;
                };
                let acc_seen = read.clone();
                read.extend(seen.iter().copied());
                if first_import {
                    root = r;
                    vars = v;
                    first_import = false;
                } else {
                    merge_sibling(&mut root, r, (&acc_seen, &seen), &mut conflicts);
                    merge_sibling(&mut vars, v, (&acc_seen, &seen), &mut conflicts);
                }
            }
        }
        for item in &ast.items {
            match item {
                Item::Import { .. } => {}
                Item::Let {
                    name,
                    assign,
                    value,
                    ..
                } => {
                    let v = lower_value(value, id, self.diags);
                    let p = vec![PathSeg {
                        seg: Seg::Name(name.name.clone()),
                        loc: Loc::new(id, name.span),
                    }];
                    conflicts.retain(|c| c.path != name.name);
                    bind(&mut vars, &p, *assign, v, self.diags);
                }
                Item::Bind { path, .. } | Item::Block { path, .. } => {
                    let p = syntax::path_string(path);
                    decide(&mut conflicts, &p);
                    apply_items(&mut root, std::slice::from_ref(item), id, self.diags);
                }
            }
        }
        self.stack.pop();
        if !self.stack.is_empty() {
            // An imported file must settle its own imports' conflicts.
            self.report(std::mem::take(&mut conflicts), Some(id));
        }
        self.cache
            .insert(key, (root.clone(), vars.clone(), read.clone()));
        Some((root, vars, conflicts, read))
    }

    fn report(&mut self, conflicts: Vec<Conflict>, _file: Option<FileId>) {
        for c in conflicts {
            let key = c.path.trim_end_matches(":type").to_string();
            self.diags.push(
                Diagnostic::error(
                    "E0203",
                    format!("two imports bind `{key}` differently and the importing file does not decide"),
                )
                .with_label(c.second, "bound here")
                .with_label(c.first, "and here")
                .with_help(format!("bind `{key}` in the importing file (or with `--set`) to choose")),
            );
        }
    }

    fn override_one(
        &mut self,
        i: usize,
        text: &str,
        root: &mut Node,
        vars: &mut Node,
        conflicts: &mut Vec<Conflict>,
    ) {
        let id = self.files.add(
            PathBuf::from(format!("<--set {}>", i + 1)),
            text.to_string(),
        );
        let ast = match syntax::parse(text) {
            Ok(a) => a,
            Err(errs) => {
                for e in errs {
                    // A value that parsed but does not fit (an integer past 64 bits) needs no
                    // lesson in `--set` syntax; a grammar error does.
                    let help = e.help.or_else(|| {
                        e.message.starts_with("expected").then(|| {
                            "write `--set path.to.key=value` with a recipe value".to_string()
                        })
                    });
                    self.diags.push(
                        Diagnostic::error(
                            "E0206",
                            format!("cannot parse `--set {text}`: {}", e.message),
                        )
                        .with_label(Loc::new(id, e.span), e.label)
                        .with_help_opt(help),
                    );
                }
                return;
            }
        };
        let [
            Item::Bind {
                path,
                assign,
                value,
                ..
            },
        ] = ast.items.as_slice()
        else {
            self.diags.push(
                Diagnostic::error("E0206", format!("`--set {text}` is not one `path=value`"))
                    .with_label(Loc::new(id, Span::new(0, text.len())), "this override")
                    .with_help("write `--set path.to.key=value`"),
            );
            return;
        };
        let p = segs(path, id);
        let v = lower_value(value, id, self.diags);
        let head = match &p[0].seg {
            Seg::Name(n) => n.clone(),
            Seg::Index(_) => String::new(),
        };
        if vars.field(&head).is_some() {
            bind(vars, &p, *assign, v, self.diags);
            return;
        }
        decide(conflicts, &syntax::path_string(path));
        bind(root, &p, *assign, v, self.diags);
    }
}

/// Drops the conflicts a binding at `path` settles.
fn decide(conflicts: &mut Vec<Conflict>, path: &str) {
    conflicts.retain(|c| {
        let cp = c.path.trim_end_matches(":type");
        !(cp == path || cp.starts_with(&format!("{path}.")) || path.starts_with(&format!("{cp}.")))
    });
}

/// Merges a sibling import's tree, recording leaves both bind to different values. A value
/// written in a file the other side also read is not a conflict: that side overrode it
/// knowingly (two siblings sharing a base, one changing a key of it).
fn merge_sibling(
    acc: &mut Node,
    next: Node,
    seen: (&[FileId], &[FileId]),
    conflicts: &mut Vec<Conflict>,
) {
    let mut mine = Vec::new();
    leaves_typed(acc, &mut Vec::new(), &mut mine);
    let mut theirs = Vec::new();
    leaves_typed(&next, &mut Vec::new(), &mut theirs);
    for (p, loc, n) in &theirs {
        if let Some((_, l0, n0)) = mine.iter().find(|(q, _, _)| q == p)
            && l0 != loc
            && !same(n0, n)
            && !seen.1.contains(&l0.file)
            && !seen.0.contains(&loc.file)
        {
            conflicts.push(Conflict {
                path: p.clone(),
                first: *l0,
                second: *loc,
            });
        }
    }
    // Two siblings choosing different components is a conflict (reported above), not a
    // replacement to warn about.
    super::tree::put(acc, Assign::Merge, next, &mut Diagnostics::default());
}

fn leaves_typed<'a>(n: &'a Node, prefix: &mut Vec<String>, out: &mut Vec<(String, Loc, &'a Node)>) {
    match &n.kind {
        NodeKind::Record { ty, fields } if !fields.is_empty() || ty.is_some() => {
            if let Some((_, l)) = ty {
                out.push((format!("{}:type", prefix.join(".")), *l, n));
            }
            for f in fields {
                prefix.push(f.key.clone());
                leaves_typed(&f.value, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push((prefix.join("."), n.loc, n)),
    }
}

/// Structural equality ignoring where things were written.
fn same(a: &Node, b: &Node) -> bool {
    use NodeKind::*;
    match (&a.kind, &b.kind) {
        // Records meet here only as `:type` pseudo-leaves: compare the component names.
        (Record { ty: t1, .. }, Record { ty: t2, .. }) => {
            t1.as_ref().map(|t| &t.0) == t2.as_ref().map(|t| &t.0)
        }
        (List(x), List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Call(n1, _, a1), Call(n2, _, a2)) => {
            n1 == n2 && a1.len() == a2.len() && a1.iter().zip(a2).all(|(p, q)| same(p, q))
        }
        (Ref(p1), Ref(p2)) => {
            p1.len() == p2.len() && p1.iter().zip(p2).all(|(x, y)| x.seg == y.seg)
        }
        (x, y) => x == y,
    }
}
