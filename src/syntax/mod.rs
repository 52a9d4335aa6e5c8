//! Recipe syntax: the pest grammar (`grammar/recipe.pest`), the AST with byte spans, parse errors.
//! The only module that sees pest types; everything after it works on the typed AST.
