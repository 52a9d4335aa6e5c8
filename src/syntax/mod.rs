//! Recipe syntax: the pest grammar (`grammar/recipe.pest`), the AST with byte spans, parse
//! errors, comment recovery and the canonical printer (`mmrun fmt`).
//!
//! Only `parse.rs` sees pest types; everything after it works on the typed AST in `ast.rs`.
//! This module knows no component names: meaning is the `recipe` module's business.

pub mod ast;
pub mod comments;
pub mod fmt;
mod parse;

pub use ast::*;
pub use parse::{SyntaxError, parse};
