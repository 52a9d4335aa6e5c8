//! The recipe AST. Every node carries the byte span of its source text.

/// A half-open byte range `[start, end)` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A name with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One segment of a path: a name or a list index.
#[derive(Clone, Debug, PartialEq)]
pub enum Seg {
    Name(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Name(n) => f.write_str(n),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A path segment with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub seg: Seg,
    pub span: Span,
}

/// Prints a path as `a.b.2.c`.
pub fn path_string(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| k.seg.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// A whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

/// How a binding combines with what is already bound at its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assign {
    /// `=`: records merge key by key, everything else replaces.
    Merge,
    /// `:=`: replace wholesale.
    Replace,
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `import "path"`; `path` is the unescaped string.
    Import {
        path: String,
        path_span: Span,
        span: Span,
    },
    /// `let name = value`.
    Let {
        name: Ident,
        assign: Assign,
        value: Value,
        span: Span,
    },
    /// `path = value` or `path := value`.
    Bind {
        path: Vec<Key>,
        assign: Assign,
        value: Value,
        span: Span,
    },
    /// `path { items }`.
    Block {
        path: Vec<Key>,
        items: Vec<Item>,
        span: Span,
    },
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import { span, .. }
            | Item::Let { span, .. }
            | Item::Bind { span, .. }
            | Item::Block { span, .. } => *span,
        }
    }
}

/// A value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

/// A number as written (the text is kept so `fmt` prints `1e-4`, not `0.0001`).
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// A unit of training length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Iters,
    Epochs,
}

impl Unit {
    /// The canonical spelling for a count (`1 epoch`, `12 epochs`).
    pub fn name(self, count: u64) -> &'static str {
        match (self, count == 1) {
            (Unit::Iters, true) => "iter",
            (Unit::Iters, false) => "iters",
            (Unit::Epochs, true) => "epoch",
            (Unit::Epochs, false) => "epochs",
        }
    }
}

/// The kinds of values.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// `42`, `-1`, `1e-4`, `0.5`; `text` is the source spelling.
    Number {
        value: Number,
        text: String,
    },
    /// A string; `text` is the unescaped content (still holding `${...}`).
    Str {
        text: String,
    },
    Bool(bool),
    /// `none`
    None,
    /// `[a, b]`
    List(Vec<Value>),
    /// `{ ... }`
    Record(Vec<Item>),
    /// `name { ... }`
    Component {
        name: Ident,
        items: Vec<Item>,
    },
    /// `name(args)`
    Call {
        name: Ident,
        args: Vec<Value>,
    },
    /// `500 iters`; the count must be a non-negative integer.
    Quantity {
        count: u64,
        unit: Unit,
    },
    /// `train 1 epoch`
    Phase {
        name: Ident,
        count: u64,
        unit: Unit,
    },
    /// `a.b.c`
    Ref(Vec<Key>),
    /// `on_input`, `load_image`, or a `let` variable.
    Symbol(Ident),
}
