//! Integration tests of the `recipe` area.
