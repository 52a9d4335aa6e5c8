//! pest pairs → AST. The only file in the crate that sees pest types.

use super::ast::*;
use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/recipe.pest"]
struct RecipeParser;

/// A syntax error: where, and what was expected there.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    /// `E0101` (grammar and tokens) or `E0102` (nesting).
    pub code: &'static str,
    pub span: Span,
    pub message: String,
    /// A short label for the span (`expected ...`).
    pub label: String,
    pub help: Option<String>,
}

impl SyntaxError {
    fn new(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        SyntaxError {
            code: "E0101",
            span,
            message: message.into(),
            label: label.into(),
            help: None,
        }
    }
}

/// Parses one recipe file.
///
/// Returns every error that the tree walk finds (bad numbers, bad escapes); a grammar error
/// stops parsing, since the rest of the file has no structure to recover.
pub fn parse(src: &str) -> Result<File, Vec<SyntaxError>> {
    super::depth::check_brackets(src).map_err(|e| vec![e])?;
    let pairs = match RecipeParser::parse(Rule::file, src) {
        Ok(p) => p,
        Err(e) => return Err(vec![convert_error(src, e)]),
    };
    let mut w = Walker { errors: Vec::new() };
    let file_pair = pairs.into_iter().next().expect("grammar: file rule");
    let items = file_pair
        .into_inner()
        // A top-level item may end in a comma, as items in blocks may; the comma is not an item.
        .filter(|p| !matches!(p.as_rule(), Rule::EOI | Rule::comma))
        .map(|p| w.item(p))
        .collect();
    if w.errors.is_empty() {
        let file = File { items };
        super::depth::check_tree(&file).map_err(|e| vec![e])?;
        Ok(file)
    } else {
        Err(w.errors)
    }
}

fn describe(rule: &Rule) -> &'static str {
    match rule {
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::comma => "`,`",
        Rule::dot => "`.`",
        Rule::assign_op | Rule::merge_op => "`=`",
        Rule::replace_op => "`:=`",
        Rule::value
        | Rule::string
        | Rule::list
        | Rule::record
        | Rule::number
        | Rule::numeric
        | Rule::kw_true
        | Rule::kw_false
        | Rule::kw_none
        | Rule::named
        | Rule::call_args
        | Rule::component_body
        | Rule::phase_length
        | Rule::reference_tail => "a value",
        Rule::ident | Rule::path | Rule::block_path => "a name",
        Rule::index => "a list index",
        Rule::import | Rule::kw_import => "`import`",
        Rule::let_binding | Rule::kw_let => "`let`",
        Rule::binding | Rule::block | Rule::file => "a binding",
        Rule::unit => "a unit (`iters` or `epochs`)",
        Rule::quote => "`\"`",
        Rule::EOI => "end of file",
        _ => "something else",
    }
}

fn convert_error(src: &str, e: pest::error::Error<Rule>) -> SyntaxError {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let pos = pos.min(src.len());
    // One character wide (or empty at end of input), on a char boundary.
    let end = src[pos..]
        .chars()
        .next()
        .map_or(pos, |c| pos + c.len_utf8());
    // At the end of input the label goes on the last visible character, so it renders.
    let (lpos, lend) = if pos == end {
        match src.trim_end().char_indices().next_back() {
            Some((i, c)) => (i, i + c.len_utf8()),
            None => (pos, end),
        }
    } else {
        (pos, end)
    };
    let found = match src[pos..].chars().next() {
        None => "end of file".to_string(),
        Some(_) => {
            let tok: String = src[pos..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if tok.is_empty() {
                format!("`{}`", src[pos..end].escape_debug())
            } else {
                format!("`{tok}`")
            }
        }
    };
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut v: Vec<&str> = positives.iter().map(describe).collect();
            v.sort();
            v.dedup();
            v
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let exp = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let label = if pos == end {
        format!("the file ends here; expected {exp}")
    } else {
        format!("expected {exp}")
    };
    SyntaxError {
        help: super::python::help(src, pos),
        ..SyntaxError::new(
            Span::new(lpos, lend),
            format!("expected {exp}, found {found}"),
            label,
        )
    }
}

struct Walker {
    errors: Vec<SyntaxError>,
}

/// The span of a pair, ending at its last token. pest keeps the implicit whitespace (and
/// comments) skipped before a trailing `?` or repetition that matched nothing inside the
/// pair (`a.l` followed by a line break spans the break), which would run labels onto the
/// next line and make `fmt` take the next line's comment for a trailing one (found by
/// fuzzing). Tokens are atomic or single literals, so the last descendant ends exactly.
fn span_of(p: &Pair<Rule>) -> Span {
    let mut last = p.clone();
    while let Some(q) = last.clone().into_inner().last() {
        last = q;
    }
    Span::new(p.as_span().start(), last.as_span().end())
}

impl Walker {
    fn item(&mut self, p: Pair<Rule>) -> Item {
        let span = span_of(&p);
        match p.as_rule() {
            Rule::import => {
                let s = p.into_inner().nth(1).expect("grammar: import string");
                let path_span = span_of(&s);
                let path = self.string(s);
                Item::Import {
                    path,
                    path_span,
                    span,
                }
            }
            Rule::let_binding => {
                let mut it = p.into_inner().skip(1);
                let id = it.next().expect("grammar: let name");
                let name = Ident {
                    name: id.as_str().to_string(),
                    span: span_of(&id),
                };
                let assign = assign(it.next().expect("grammar: let op"));
                let value = self.value(it.next().expect("grammar: let value"));
                Item::Let {
                    name,
                    assign,
                    span: Span::new(span.start, value.span.end),
                    value,
                }
            }
            Rule::binding => {
                let mut it = p.into_inner();
                let path = self.path(it.next().expect("grammar: path"));
                let assign = assign(it.next().expect("grammar: op"));
                let value = self.value(it.next().expect("grammar: value"));
                Item::Bind {
                    path,
                    assign,
                    span: Span::new(span.start, value.span.end),
                    value,
                }
            }
            Rule::block => {
                let mut it = p.into_inner();
                let path = self.path(it.next().expect("grammar: block path"));
                let items = self.items(it);
                Item::Block { path, items, span }
            }
            r => unreachable!("grammar: unexpected item rule {r:?}"),
        }
    }

    fn items<'a>(&mut self, it: impl Iterator<Item = Pair<'a, Rule>>) -> Vec<Item> {
        it.filter(|p| matches!(p.as_rule(), Rule::binding | Rule::block))
            .map(|p| self.item(p))
            .collect()
    }

    fn path(&mut self, p: Pair<Rule>) -> Vec<Key> {
        p.into_inner()
            .filter(|k| k.as_rule() != Rule::dot)
            .map(|k| {
                let span = span_of(&k);
                let seg = match k.as_rule() {
                    Rule::index => match k.as_str().parse::<usize>() {
                        Ok(i) => Seg::Index(i),
                        Err(_) => {
                            self.errors.push(SyntaxError::new(
                                span,
                                "list index is too large",
                                "this index",
                            ));
                            Seg::Index(0)
                        }
                    },
                    _ => Seg::Name(k.as_str().to_string()),
                };
                Key { seg, span }
            })
            .collect()
    }

    fn string(&mut self, p: Pair<Rule>) -> String {
        let inner = p
            .into_inner()
            .find(|q| q.as_rule() == Rule::string_inner)
            .expect("grammar: string inner");
        let base = inner.as_span().start();
        let raw = inner.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                // `\$` keeps a literal `$`; interpolation sees the marker `\$`.
                Some((_, '$')) => out.push_str("\\$"),
                Some((j, other)) => {
                    self.errors.push(SyntaxError::new(
                        Span::new(base + i, base + j + other.len_utf8()),
                        format!("unknown escape `\\{other}` in string"),
                        "unknown escape",
                    ));
                }
                None => {}
            }
        }
        out
    }

    fn quantity(&mut self, p: Pair<Rule>) -> (u64, Unit) {
        let mut it = p.into_inner();
        let n = it.next().expect("grammar: quantity number");
        let u = it.next().expect("grammar: quantity unit");
        let unit = if u.as_str().starts_with("iter") {
            Unit::Iters
        } else {
            Unit::Epochs
        };
        let count = match n.as_str().parse::<u64>() {
            Ok(c) => c,
            Err(_) => {
                self.errors.push(SyntaxError::new(
                    span_of(&n),
                    format!(
                        "a training length must be a whole number, found `{}`",
                        n.as_str()
                    ),
                    "not a whole, non-negative number",
                ));
                0
            }
        };
        (count, unit)
    }

    fn value(&mut self, p: Pair<Rule>) -> Value {
        let p = if p.as_rule() == Rule::value {
            p.into_inner().next().expect("grammar: value inner")
        } else {
            p
        };
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::string => ValueKind::Str {
                text: self.string(p),
            },
            Rule::numeric => {
                if p.clone().into_inner().nth(1).is_some() {
                    let (count, unit) = self.quantity(p);
                    ValueKind::Quantity { count, unit }
                } else {
                    let n = p.into_inner().next().expect("grammar: numeric number");
                    self.number(n)
                }
            }
            Rule::kw_true => ValueKind::Bool(true),
            Rule::kw_false => ValueKind::Bool(false),
            Rule::kw_none => ValueKind::None,
            Rule::list => ValueKind::List(
                p.into_inner()
                    .filter(|q| q.as_rule() == Rule::value)
                    .map(|q| self.value(q))
                    .collect(),
            ),
            Rule::record => ValueKind::Record(self.items(p.into_inner())),
            Rule::named => self.named(p),
            r => unreachable!("grammar: unexpected value rule {r:?}"),
        };
        Value { kind, span }
    }

    fn number(&mut self, p: Pair<Rule>) -> ValueKind {
        let span = span_of(&p);
        let text = p.as_str().to_string();
        let is_float = text.contains(['.', 'e', 'E']);
        let value = if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Number::Float(f),
                _ => {
                    let mut e = SyntaxError::new(
                        span,
                        format!("number `{text}` is out of range"),
                        "not a finite number",
                    );
                    e.help = Some(
                        "recipe numbers are 64-bit floats (at most about 1.8e308); each key \
                         allows less (`mmrun explain --reference` lists every range)"
                            .into(),
                    );
                    self.errors.push(e);
                    Number::Float(0.0)
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => Number::Int(i),
                Err(_) => {
                    let mut e = SyntaxError::new(
                        span,
                        format!("integer `{text}` is out of range"),
                        "does not fit in 64 bits",
                    );
                    e.help = Some(format!(
                        "recipe integers are 64-bit ({} to {}); each key allows less \
                         (`mmrun explain --reference` lists every range)",
                        i64::MIN,
                        i64::MAX
                    ));
                    self.errors.push(e);
                    Number::Int(0)
                }
            }
        };
        ValueKind::Number { value, text }
    }

    /// A value that starts with a name: component, call, phase, reference or bare name.
    fn named(&mut self, p: Pair<Rule>) -> ValueKind {
        let mut it = p.into_inner();
        let id = it.next().expect("grammar: named ident");
        let name = Ident {
            name: id.as_str().to_string(),
            span: span_of(&id),
        };
        let Some(rest) = it.next() else {
            return ValueKind::Symbol(name);
        };
        match rest.as_rule() {
            Rule::component_body => ValueKind::Component {
                name,
                items: self.items(rest.into_inner()),
            },
            Rule::call_args => ValueKind::Call {
                name,
                args: rest
                    .into_inner()
                    .filter(|q| q.as_rule() == Rule::value)
                    .map(|q| self.value(q))
                    .collect(),
            },
            Rule::phase_length => {
                let (count, unit) = self.quantity(rest);
                ValueKind::Phase { name, count, unit }
            }
            Rule::reference_tail => {
                let mut keys = vec![Key {
                    seg: Seg::Name(name.name),
                    span: name.span,
                }];
                for k in rest.into_inner().filter(|k| k.as_rule() != Rule::dot) {
                    let ks = span_of(&k);
                    let seg = match k.as_rule() {
                        Rule::index => Seg::Index(k.as_str().parse().unwrap_or(usize::MAX)),
                        _ => Seg::Name(k.as_str().to_string()),
                    };
                    keys.push(Key { seg, span: ks });
                }
                ValueKind::Ref(keys)
            }
            r => unreachable!("grammar: unexpected named rule {r:?}"),
        }
    }
}

fn assign(p: Pair<Rule>) -> Assign {
    match p.into_inner().next().map(|q| q.as_rule()) {
        Some(Rule::replace_op) => Assign::Replace,
        _ => Assign::Merge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the fuzz test found that a comma after a top-level binding (`a = 1,`)
    /// reached the tree walk as an item and panicked.
    #[test]
    fn top_level_trailing_comma_is_not_an_item() {
        let f = parse("a = 1,\nb { c = 2, },").unwrap();
        assert_eq!(f.items.len(), 2);
    }

    #[test]
    fn parses_the_sketch_shapes() {
        let src = r#"
import "base/x.recipe"
let data_root = "data/coco"
model = retinanet { backbone = resnet { depth = 50, norm = batch_norm { frozen = true } }
  neck = fpn { in_channels = [256, 512], add_extra_convs = on_input } }
optimizer.lr = 1e-2 // comment
schedule lr { warmup = linear { duration = 500 iters, ratio = 0.001 } }
run = { epochs = 12, workflow = [train 1 epoch] }
hooks { checkpoint { every = 1 epoch } }
x := data.train.classes
y = pretrained("a.safetensors")
"#;
        let f = parse(src).unwrap();
        assert_eq!(f.items.len(), 9);
        match &f.items[3] {
            Item::Bind { value, .. } => assert_eq!(
                value.kind,
                ValueKind::Number {
                    value: Number::Float(0.01),
                    text: "1e-2".into()
                }
            ),
            other => panic!("{other:?}"),
        }
        match &f.items[4] {
            Item::Block { path, .. } => assert_eq!(path_string(path), "schedule.lr"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_names_span_only_themselves() {
        let f = parse("a = on_input // c\nb = 1 // d\n").unwrap();
        let Item::Bind { value, span, .. } = &f.items[0] else {
            panic!()
        };
        assert_eq!((value.span, *span), (Span::new(4, 12), Span::new(0, 12)));
        let Item::Bind { value, .. } = &f.items[1] else {
            panic!()
        };
        assert_eq!(value.span, Span::new(22, 23));
    }

    #[test]
    fn reports_what_was_expected() {
        let e = parse("model = resnet { depth = 50 ").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("`}`"), "{}", e[0].message);
        let e = parse("a = 1.5 epochs").unwrap_err();
        assert!(e[0].message.contains("whole number") || e[0].message.contains("expected"));
    }
}
