//! Integration tests of the `eval` area.
