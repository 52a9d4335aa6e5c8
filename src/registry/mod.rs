//! The component registry: one declaration per component (name, parameter schema with type,
//! default, range, unit and doc). The single source of truth for what a recipe may say.
