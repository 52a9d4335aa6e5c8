//! Integration tests of the `model` area.
