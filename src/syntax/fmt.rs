//! The canonical printer (`mmrun fmt`): two-space indentation, one binding per line in
//! blocks, short records and lists inline, lengths spelled canonically (`1 epoch`), numbers
//! as written, comments kept. `format(format(x)) == format(x)`.

use super::ast::*;
use super::comments::{Comment, comments};

/// Widest inline form before a record or list is broken over lines.
const WIDTH: usize = 100;

/// Formats a recipe; `None` when it does not parse.
pub fn format(src: &str) -> Result<String, Vec<super::SyntaxError>> {
    let file = super::parse(src)?;
    let mut p = Printer {
        src,
        comments: comments(src),
        next: 0,
        out: String::new(),
    };
    p.items(&file.items, 0, src.len());
    p.flush_before(usize::MAX, 0);
    let mut out = p.out.trim_end().to_string();
    out.push('\n');
    Ok(out)
}

struct Printer<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    next: usize,
    out: String,
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

impl Printer<'_> {
    /// Characters already on the current output line.
    fn column(&self) -> usize {
        let line = self.out.rsplit('\n').next().unwrap_or("");
        line.chars().count()
    }

    fn has_comment_in(&self, span: Span) -> bool {
        self.comments[self.next..]
            .iter()
            .any(|c| c.span.start >= span.start && c.span.start < span.end)
    }

    /// Whether the source has a blank line between two offsets.
    fn blank_between(&self, a: usize, b: usize) -> bool {
        let (a, b) = (a.min(self.src.len()), b.min(self.src.len()));
        a < b && {
            let gap = &self.src[a..b];
            gap.split('\n')
                .skip(1)
                .take(gap.matches('\n').count().saturating_sub(1))
                .any(|l| l.trim().is_empty())
        }
    }

    /// Prints the comments that start before `pos` on their own lines.
    fn flush_before(&mut self, pos: usize, level: usize) {
        while self.next < self.comments.len() && self.comments[self.next].span.start < pos {
            let c = &self.comments[self.next];
            let prev_end = if self.next > 0 {
                self.comments[self.next - 1].span.end
            } else {
                0
            };
            if self.next > 0
                && self.blank_between(prev_end, c.span.start)
                && !self.out.ends_with("\n\n")
                && !self.out.is_empty()
            {
                self.out.push('\n');
            }
            let text = c.text.clone();
            self.out.push_str(&indent(level));
            self.out.push_str(&text);
            self.out.push('\n');
            self.next += 1;
        }
    }

    /// A comment on the same line right after `end`.
    fn trailing(&mut self, end: usize) {
        if let Some(c) = self.comments.get(self.next)
            && c.span.start >= end
            && !self.src[end..c.span.start].contains('\n')
        {
            let text = c.text.clone();
            self.out.push(' ');
            self.out.push_str(&text);
            self.next += 1;
        }
    }

    fn items(&mut self, items: &[Item], level: usize, _end: usize) {
        let mut prev_end: Option<usize> = None;
        for item in items {
            let span = item.span();
            if let Some(pe) = prev_end {
                let first = self
                    .comments
                    .get(self.next)
                    .filter(|c| c.span.start < span.start)
                    .map_or(span.start, |c| c.span.start);
                if self.blank_between(pe, first) {
                    self.out.push('\n');
                }
            }
            self.flush_before(span.start, level);
            self.out.push_str(&indent(level));
            self.item(item, level);
            self.trailing(span.end);
            self.out.push('\n');
            prev_end = Some(span.end);
        }
    }

    fn item(&mut self, item: &Item, level: usize) {
        match item {
            Item::Import { path, .. } => {
                self.out.push_str("import ");
                self.out.push_str(&quote(path));
            }
            Item::Let {
                name,
                assign,
                value,
                ..
            } => {
                self.out
                    .push_str(&format!("let {}{}", name.name, op(*assign)));
                self.value(value, level);
            }
            Item::Bind {
                path,
                assign,
                value,
                ..
            } => {
                self.out.push_str(&path_string(path));
                self.out.push_str(op(*assign));
                self.value(value, level);
            }
            Item::Block { path, items, span } => {
                let words: Vec<String> = path.iter().map(|k| k.seg.to_string()).collect();
                self.out.push_str(&words.join(" "));
                if !self.has_comment_in(*span)
                    && let Some(s) = inline_items(items)
                    && self.column() + s.len() + 6 < WIDTH
                {
                    if s.is_empty() {
                        self.out.push_str(" {}");
                    } else {
                        self.out.push_str(&format!(" {{ {s} }}"));
                    }
                    return;
                }
                self.out.push_str(" {\n");
                self.items(items, level + 1, span.end);
                self.flush_before(span.end, level + 1);
                self.out.push_str(&indent(level));
                self.out.push('}');
            }
        }
    }

    fn value(&mut self, v: &Value, level: usize) {
        if !self.has_comment_in(v.span)
            && let Some(s) = inline(v)
            && self.column() + s.chars().count() < WIDTH
        {
            self.out.push_str(&s);
            return;
        }
        match &v.kind {
            ValueKind::List(items) => {
                self.out.push_str("[\n");
                for x in items {
                    self.flush_before(x.span.start, level + 1);
                    self.out.push_str(&indent(level + 1));
                    self.value(x, level + 1);
                    self.out.push(',');
                    self.trailing(x.span.end);
                    self.out.push('\n');
                }
                self.flush_before(v.span.end, level + 1);
                self.out.push_str(&indent(level));
                self.out.push(']');
            }
            ValueKind::Record(items) | ValueKind::Component { items, .. } => {
                if let ValueKind::Component { name, .. } = &v.kind {
                    self.out.push_str(&name.name);
                    self.out.push(' ');
                }
                self.out.push_str("{\n");
                self.items(items, level + 1, v.span.end);
                self.flush_before(v.span.end, level + 1);
                self.out.push_str(&indent(level));
                self.out.push('}');
            }
            // Scalars, calls and references have no room for comments; any inside were
            // printed before the binding.
            _ => {
                let s = inline(v).unwrap_or_default();
                self.out.push_str(&s);
            }
        }
    }
}

fn op(a: Assign) -> &'static str {
    match a {
        Assign::Merge => " = ",
        Assign::Replace => " := ",
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `\$` is the parser's marker for an escaped dollar: print it back as written.
            '\\' if chars.peek() == Some(&'$') => {
                out.push_str("\\$");
                chars.next();
            }
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The one-line form of a value, if it has one (nested blocks do not).
fn inline(v: &Value) -> Option<String> {
    Some(match &v.kind {
        ValueKind::Number { text, .. } => text.clone(),
        ValueKind::Str { text } => quote(text),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::None => "none".into(),
        ValueKind::List(items) => {
            let parts: Option<Vec<String>> = items.iter().map(inline).collect();
            format!("[{}]", parts?.join(", "))
        }
        ValueKind::Record(items) => {
            if items.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", inline_items(items)?)
            }
        }
        ValueKind::Component { name, items } => {
            if items.is_empty() {
                format!("{} {{}}", name.name)
            } else {
                format!("{} {{ {} }}", name.name, inline_items(items)?)
            }
        }
        ValueKind::Call { name, args } => {
            let parts: Option<Vec<String>> = args.iter().map(inline).collect();
            format!("{}({})", name.name, parts?.join(", "))
        }
        ValueKind::Quantity { count, unit } => format!("{count} {}", unit.name(*count)),
        ValueKind::Phase { name, count, unit } => {
            format!("{} {count} {}", name.name, unit.name(*count))
        }
        ValueKind::Ref(keys) => path_string(keys),
        ValueKind::Symbol(id) => id.name.clone(),
    })
}

fn inline_items(items: &[Item]) -> Option<String> {
    let parts: Option<Vec<String>> = items
        .iter()
        .map(|i| match i {
            Item::Bind {
                path,
                assign,
                value,
                ..
            } => Some(format!(
                "{}{}{}",
                path_string(path),
                op(*assign),
                inline(value)?
            )),
            _ => None,
        })
        .collect();
    Some(parts?.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_is_idempotent() {
        let src = "// head\nimport \"a.recipe\"\n\n\nmodel=retinanet{backbone=resnet{depth=50} // r\n neck = fpn { in_channels = [1,2],\n // inside\n num_outs=5 }}\nrun={epochs=12,workflow=[train 1 epochs]}\nhooks{checkpoint{every=1 epochs}}\n// tail\n";
        let once = format(src).unwrap();
        assert_eq!(format(&once).unwrap(), once);
        for c in ["// head", "// r", "// inside", "// tail"] {
            assert!(once.contains(c), "{c} lost:\n{once}");
        }
        assert!(once.contains("[train 1 epoch]"), "{once}");
        assert!(
            once.contains("hooks {\n  checkpoint { every = 1 epoch }\n}"),
            "{once}"
        );
    }

    /// A length's span used to swallow the line break after it, so a comment at the end of the
    /// next line looked like a trailing comment of the length's binding (found by fuzzing).
    #[test]
    fn a_comment_after_a_length_stays_on_its_own_line() {
        let once = format("n=2 epoch\no=s//").unwrap();
        assert_eq!(once, "n = 2 epochs\no = s //\n");
        assert_eq!(format(&once).unwrap(), once);
        // The same with a one-key reference (`a.l`), found by the next campaign.
        let once = format("s=a.l\ns=n//").unwrap();
        assert_eq!(once, "s = a.l\ns = n //\n");
        assert_eq!(format(&once).unwrap(), once);
    }
}
