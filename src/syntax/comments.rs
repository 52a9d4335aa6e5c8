//! Comment recovery. The grammar skips comments; `fmt` needs them back, so this scans the
//! source text for `//` outside strings.

use super::ast::Span;

/// A `//` comment: its span (up to, not including, the newline) and text (with the `//`).
#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
}

/// Every comment in `src`, in order.
pub fn comments(src: &str) -> Vec<Comment> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' | b'\n' => in_str = false,
                _ => {}
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
            out.push(Comment {
                span: Span::new(i, end),
                text: src[i..end].trim_end().to_string(),
            });
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_slashes_in_strings() {
        let c = comments("a = \"http://x\" // real\n// second\nb = \"\\\"//\"");
        let texts: Vec<_> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["// real", "// second"]);
    }
}
