//! Integration tests of the `graph` area.
