//! A small network trains; memory plan; determinism; text dump.
