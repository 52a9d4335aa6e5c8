//! Recipe semantics: imports, merge/replace, lazy references, `--set` overrides, type checking
//! against the registry, cross-section checks, diagnostics. Builds nothing.
