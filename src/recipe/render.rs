//! Human rendering of diagnostics through miette. Labels in one file render together; labels
//! in other files render as related reports, so a sibling conflict shows both imports. Long
//! lines are clipped around the labels first ([`clip`]), so any line width renders.

mod clip;

use super::diag::{Diagnostic, Files, Severity};
use clip::Clipped;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use std::fmt;

/// How to render.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    /// Unicode box drawing, and ANSI colours unless `color` is off (terminals); off gives
    /// plain ASCII (tests, pipes).
    pub fancy: bool,
    /// Colours in a fancy rendering (off under `NO_COLOR`, https://no-color.org, and on a
    /// `TERM=dumb` terminal).
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            fancy: false,
            color: false,
            width: 100,
        }
    }
}

impl RenderOptions {
    /// For stderr: fancy on a terminal, coloured unless `NO_COLOR` is set to something or the
    /// terminal is dumb. (Not the `supports-color` crate: it takes an empty `NO_COLOR` as set
    /// and `NO_COLOR=0` as unset, where no-color.org says any non-empty value turns colour off.)
    pub fn for_stderr() -> Self {
        use std::io::IsTerminal;
        let fancy = std::io::stderr().is_terminal();
        let set = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
        let no_color = set("NO_COLOR").is_some() || set("TERM").is_some_and(|t| t == "dumb");
        RenderOptions {
            fancy,
            color: fancy && !no_color,
            ..RenderOptions::default()
        }
    }
}

/// Renders one diagnostic.
pub fn render(d: &Diagnostic, files: &Files, opts: RenderOptions) -> String {
    let theme = match (opts.fancy, opts.color) {
        (true, true) => GraphicalTheme::unicode(),
        (true, false) => GraphicalTheme::unicode_nocolor(),
        (false, _) => GraphicalTheme::none(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(opts.width)
        .with_links(false)
        .without_syntax_highlighting()
        .with_show_related_as_nested(true);
    let ellipsis = if opts.fancy { "…" } else { "..." };
    let view = View::new(d, files, ellipsis);
    let mut out = String::new();
    if handler.render_report(&mut out, &view).is_err() {
        // miette only fails on a broken formatter; fall back to the bare message.
        out = format!("error[{}]: {}\n", d.code, d.message);
    }
    out
}

/// Renders all diagnostics followed by a summary line.
pub fn render_all(ds: &[Diagnostic], files: &Files, opts: RenderOptions) -> String {
    let mut out = String::new();
    for d in ds {
        out.push_str(&render(d, files, opts));
        out.push('\n');
    }
    let errors = ds.iter().filter(|d| d.is_error()).count();
    let warnings = ds.len() - errors;
    out.push_str(&format!(
        "{errors} error{}, {warnings} warning{}\n",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// A label of one file: its index in the diagnostic and its byte range in the text.
type Spot = (usize, std::ops::Range<usize>);

struct View {
    code: String,
    severity: Severity,
    message: String,
    help: Option<String>,
    source: Option<Clipped>,
    labels: Vec<LabeledSpan>,
    related: Vec<View>,
}

impl View {
    fn new(d: &Diagnostic, files: &Files, ellipsis: &str) -> View {
        let mut groups: Vec<(usize, Vec<Spot>)> = Vec::new();
        for (i, l) in d.labels.iter().enumerate() {
            let Some(f) = files.get(l.loc.file) else {
                continue;
            };
            // Clamp to the text and to character boundaries: a span computed from an offset
            // (an expression error inside a string) may land inside a multi-byte character.
            let mut end = l.loc.end.min(f.text.len());
            while !f.text.is_char_boundary(end) {
                end += 1;
            }
            let mut start = l.loc.start.min(end);
            while !f.text.is_char_boundary(start) {
                start -= 1;
            }
            match groups.iter_mut().find(|(id, _)| *id == l.loc.file) {
                Some((_, v)) => v.push((i, start..end)),
                None => groups.push((l.loc.file, vec![(i, start..end)])),
            }
        }
        // Each file's text, clipped around its labels; the spans moved into the clip.
        let source_of = |id: usize, spans: Vec<Spot>| {
            let Some(f) = files.get(id) else {
                return (None, Vec::new());
            };
            let points: Vec<usize> = spans.iter().flat_map(|(_, r)| [r.start, r.end]).collect();
            let name = normalise(&f.path.display().to_string());
            let clip = Clipped::new(name, f.text.clone(), &points, ellipsis);
            let labels = spans
                .into_iter()
                .map(|(i, r)| {
                    let label = Some(d.labels[i].message.clone());
                    let span = clip.map(r.start)..clip.map(r.end);
                    if i == 0 {
                        LabeledSpan::new_primary_with_span(label, span)
                    } else {
                        LabeledSpan::new_with_span(label, span)
                    }
                })
                .collect();
            (Some(clip), labels)
        };
        let mut groups = groups.into_iter();
        let (source, labels) = match groups.next() {
            Some((id, spans)) => source_of(id, spans),
            None => (None, Vec::new()),
        };
        let related = groups
            .map(|(id, spans)| {
                let (source, labels) = source_of(id, spans);
                View {
                    code: String::new(),
                    severity: d.severity,
                    message: "see also".into(),
                    help: None,
                    source,
                    labels,
                    related: Vec::new(),
                }
            })
            .collect();
        View {
            code: d.code.to_string(),
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            source,
            labels,
            related,
        }
    }
}

/// Paths print with forward slashes, so output is the same on every platform.
fn normalise(p: &str) -> String {
    p.replace('\\', "/")
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for View {}

impl miette::Diagnostic for View {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.code.is_empty() {
            None
        } else {
            Some(Box::new(&self.code))
        }
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}
