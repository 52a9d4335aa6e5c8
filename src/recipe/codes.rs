//! Error codes and their long explanations (`mmrun explain E0xxx`). Codes are grouped by
//! area: E01xx syntax, E02xx imports/merge/references/overrides, E03xx types against the
//! registry, E04xx cross-section checks, E05xx reserved for `plan` (shapes, memory).

/// One error code.
pub struct Code {
    pub code: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
}

/// Looks a code up (case-insensitive).
pub fn lookup(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code.eq_ignore_ascii_case(code))
}

pub static CODES: &[Code] = &[];
