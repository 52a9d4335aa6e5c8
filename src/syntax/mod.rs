//! Recipe syntax: the pest grammar (`grammar/recipe.pest`), the AST with byte spans, parse
//! errors, comment recovery and the canonical printer (`mmrun fmt`).
//!
//! Only `parse.rs` sees pest types; everything after it works on the typed AST in `ast.rs`.
//! This module knows no component names: meaning is the `recipe` module's business.

pub mod ast;
pub mod comments;
mod depth;
pub mod fmt;
mod parse;
mod python;

pub use ast::*;
pub use depth::MAX_DEPTH;
pub use parse::{SyntaxError, parse};

/// The text the parser, the printer and diagnostics see: without a UTF-8 byte-order mark, and
/// with old Mac line endings (a lone `\r`) read as `\n`, so a comment ends at its line on
/// every platform. `\r\n` stays as written (the grammar skips the `\r`).
pub fn normalize(mut text: String) -> String {
    if let Some(rest) = text.strip_prefix('\u{feff}') {
        text = rest.to_string();
    }
    if text.contains('\r') {
        let b = text.as_bytes();
        let lone: Vec<usize> = (0..b.len())
            .filter(|&i| b[i] == b'\r' && b.get(i + 1) != Some(&b'\n'))
            .collect();
        if !lone.is_empty() {
            let mut bytes = text.into_bytes();
            for i in lone {
                bytes[i] = b'\n';
            }
            // Replacing one ASCII byte by another keeps the text UTF-8.
            text = String::from_utf8(bytes).unwrap_or_default();
        }
    }
    text
}
