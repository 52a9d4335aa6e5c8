//! Integration tests of the `data` area.
