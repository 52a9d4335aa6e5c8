//! The nesting limit. pest, the tree walk and every pass after it recurse once per level, so a
//! file nested thousands of levels deep would overflow the stack instead of getting an error;
//! real recipes nest under ten levels.

use super::ast::*;
use super::parse::SyntaxError;

/// The deepest nesting a recipe may have, counted twice: open brackets (`{`, `[`, `(`) before
/// parsing, and levels of the parsed tree (each key of a dotted path, each list or call).
pub const MAX_DEPTH: usize = 64;

fn too_deep(span: Span) -> SyntaxError {
    SyntaxError {
        code: "E0102",
        span,
        message: format!("the recipe nests deeper than {MAX_DEPTH} levels"),
        label: format!("level {} starts here", MAX_DEPTH + 1),
        help: Some(
            "keys (each part of a dotted path) and brackets both count; recipes written by hand \
             nest under ten levels — flatten the structure or bind the inner part separately"
                .into(),
        ),
    }
}

/// Brackets, before pest sees the file: the first one that opens level `MAX_DEPTH + 1`
/// (outside strings and comments).
pub(super) fn check_brackets(src: &str) -> Result<(), SyntaxError> {
    let b = src.as_bytes();
    let (mut depth, mut i, mut in_str) = (0usize, 0usize, false);
    while i < b.len() {
        match (in_str, b[i]) {
            (true, b'\\') => i += 1,
            (true, b'"' | b'\n') => in_str = false,
            (true, _) => {}
            (false, b'"') => in_str = true,
            (false, b'/') if b.get(i + 1) == Some(&b'/') => {
                i = src[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            (false, b'{' | b'[' | b'(') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(Span::new(i, i + 1)));
                }
            }
            (false, b'}' | b']' | b')') => depth = depth.saturating_sub(1),
            (false, _) => {}
        }
        i += 1;
    }
    Ok(())
}

/// Levels of the parsed file, dotted paths included (`a.b.c = 1` is three levels deep).
pub(super) fn check_tree(file: &File) -> Result<(), SyntaxError> {
    items(&file.items, 0)
}

fn items(list: &[Item], depth: usize) -> Result<(), SyntaxError> {
    for item in list {
        match item {
            Item::Import { .. } => {}
            Item::Let { value, .. } => value_depth(value, depth + 1)?,
            Item::Bind { path, value, .. } => value_depth(value, keys(path, depth)?)?,
            Item::Block {
                path, items: inner, ..
            } => items(inner, keys(path, depth)?)?,
        }
    }
    Ok(())
}

/// The depth after a path's keys, or the key that goes past the limit.
fn keys(path: &[Key], depth: usize) -> Result<usize, SyntaxError> {
    match path.get(MAX_DEPTH.saturating_sub(depth)) {
        Some(k) => Err(too_deep(k.span)),
        None => Ok(depth + path.len()),
    }
}

fn value_depth(v: &Value, depth: usize) -> Result<(), SyntaxError> {
    match &v.kind {
        ValueKind::List(xs) | ValueKind::Call { args: xs, .. } => {
            if depth >= MAX_DEPTH && !xs.is_empty() {
                return Err(too_deep(xs[0].span));
            }
            xs.iter().try_for_each(|x| value_depth(x, depth + 1))
        }
        ValueKind::Record(inner) | ValueKind::Component { items: inner, .. } => items(inner, depth),
        ValueKind::Ref(path) => keys(path, depth).map(|_| ()),
        _ => Ok(()),
    }
}
