//! Help for Python syntax where the grammar stops: mmdetection configs are Python, and their
//! spellings are the first thing a user porting one writes. Python stays a syntax error
//! (E0101); this only says what to write instead.

/// Help for a syntax error at byte `pos` of `src`, when the text there is Python.
pub(super) fn help(src: &str, pos: usize) -> Option<String> {
    let rest = &src[pos..];
    let before = src[..pos].trim_end();
    let line_before = before.rsplit('\n').next().unwrap_or("");
    let h = match rest.chars().next()? {
        '#' => "comments start with `//`",
        '\'' => "strings use double quotes: `\"...\"`",
        '(' if before.ends_with("dict") => DICT,
        '(' => "tuples are lists in a recipe: `(1333, 800)` is `[1333, 800]`",
        '=' if open_paren(line_before) => DICT,
        ':' if line_before.trim_start().starts_with(['{', '"']) || line_before.contains('{') => {
            "records bind with `=`: `{ key = value }` (Python's `{'key': value}` is not a recipe)"
        }
        _ if rest.starts_with("**") => "there is no `**` unpacking; imports merge base files",
        _ => return None,
    };
    Some(h.to_string())
}

const DICT: &str = "`dict(type='X', key=value)` is Python: a component is written \
                    `X { key = value }`, a plain record `{ key = value }`";

/// Whether a `(` on the line is still open (a keyword argument `f(key = ...)` inside it).
fn open_paren(line: &str) -> bool {
    let mut depth = 0i32;
    for c in line.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}
