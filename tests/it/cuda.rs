//! Integration tests of the `cuda` area.
