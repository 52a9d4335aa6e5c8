//! Long source lines, clipped before miette sees them.
//!
//! miette pads with `format!("{:width$}")`, whose width must fit in a `u16`, so a label past
//! column 65,535 panics inside it; and a line of 70k characters is unreadable anyway. Lines
//! longer than [`MAX_LINE`] characters keep their start and a window around every label end,
//! the rest elided. Every newline is kept, so line numbers stay right; the column in the
//! report header is computed on the original text (as miette counts it: bytes from the line
//! start), so it stays right too.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::sync::Arc;

/// Lines with more characters than this are clipped.
pub const MAX_LINE: usize = 300;
/// Characters kept at the start of a clipped line.
const HEAD: usize = 40;
/// Characters kept on each side of a label end.
const AROUND: usize = 60;

/// One copied stretch: `len` bytes from `orig` in the original text, at `new` in the clip.
#[derive(Clone, Copy, Debug)]
struct Seg {
    orig: usize,
    new: usize,
    len: usize,
}

/// A source text with its long lines clipped around the given points (byte offsets).
pub struct Clipped {
    name: String,
    orig: Arc<str>,
    text: String,
    segs: Vec<Seg>,
}

impl Clipped {
    /// Clip `orig` keeping every byte offset of `points` (label starts and ends) visible;
    /// `ellipsis` replaces what is left out.
    pub fn new(name: String, orig: Arc<str>, points: &[usize], ellipsis: &str) -> Clipped {
        let mut points: Vec<usize> = points.iter().map(|&p| p.min(orig.len())).collect();
        points.sort_unstable();
        let mut c = Clipped {
            name,
            text: String::with_capacity(orig.len().min(1 << 20)),
            segs: Vec::new(),
            orig: Arc::clone(&orig),
        };
        let mut line_start = 0;
        // Lines end at `\n`; a stray `\r` stays inside its line (it is a character, kept or
        // elided like any other; miette's line count is the same either way for `\r\n`).
        for line in orig.split_inclusive('\n') {
            let end = line_start + line.len();
            let body = line.trim_end_matches(['\n', '\r']);
            if body.len() <= MAX_LINE || body.chars().nth(MAX_LINE).is_none() {
                c.copy(line_start, end);
            } else {
                let body_end = line_start + body.len();
                let lo = points.partition_point(|&p| p < line_start);
                let hi = points.partition_point(|&p| p <= body_end);
                c.clip_line(line_start, body_end, &points[lo..hi], ellipsis);
                c.copy(body_end, end);
            }
            line_start = end;
        }
        c
    }

    /// Keep `[start, end)` verbatim.
    fn copy(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        match self.segs.last_mut() {
            Some(s) if s.orig + s.len == start && s.new + s.len == self.text.len() => {
                s.len += end - start
            }
            _ => self.segs.push(Seg {
                orig: start,
                new: self.text.len(),
                len: end - start,
            }),
        }
        self.text.push_str(&self.orig.clone()[start..end]);
    }

    /// Keep the head of the line `[start, end)` and a window around each point.
    fn clip_line(&mut self, start: usize, end: usize, points: &[usize], ellipsis: &str) {
        let line = &self.orig.clone()[start..end];
        let at = |chars: usize| {
            line.char_indices()
                .nth(chars)
                .map_or(end, |(i, _)| start + i)
        };
        let mut keep = vec![(start, at(HEAD))];
        for &p in points {
            let back = line[..p - start]
                .chars()
                .rev()
                .take(AROUND)
                .map(char::len_utf8);
            let fwd = line[p - start..].chars().take(AROUND).map(char::len_utf8);
            keep.push((p - back.sum::<usize>(), p + fwd.sum::<usize>()));
        }
        keep.sort_unstable();
        let mut pos = start;
        for (a, b) in keep {
            if a > pos {
                self.text.push_str(ellipsis);
            }
            let a = a.max(pos);
            if b > a {
                self.copy(a, b);
                pos = b;
            }
        }
        if pos < end {
            self.text.push_str(ellipsis);
        }
    }

    /// The clipped text.
    #[cfg(test)]
    fn text(&self) -> &str {
        &self.text
    }

    /// Where an original byte offset is in the clip (a point given to [`new`](Self::new) is
    /// always kept; any other elided offset maps to the next kept byte).
    pub fn map(&self, orig: usize) -> usize {
        let i = self.segs.partition_point(|s| s.orig <= orig);
        match i.checked_sub(1).map(|i| self.segs[i]) {
            Some(s) if orig <= s.orig + s.len => s.new + (orig - s.orig),
            _ => self.segs.get(i).map_or(self.text.len(), |s| s.new),
        }
    }

    /// The original byte offset of a clip offset (inside an ellipsis: the next kept byte).
    fn unmap(&self, new: usize) -> usize {
        let i = self.segs.partition_point(|s| s.new <= new);
        match i.checked_sub(1).map(|i| self.segs[i]) {
            Some(s) if new <= s.new + s.len => s.orig + (new - s.new),
            _ => self.segs.get(i).map_or(self.orig.len(), |s| s.orig),
        }
    }

    /// miette's column of an original offset: bytes since the last line break.
    fn column(&self, orig: usize) -> usize {
        let before = &self.orig.as_bytes()[..orig.min(self.orig.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n' || b == b'\r')
            .map_or(0, |i| i + 1);
        before.len() - line_start
    }
}

impl SourceCode for Clipped {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        // The header's column comes from a read without context lines; elsewhere it is 0.
        let column = if context_lines_before == 0 {
            self.column(self.unmap(span.offset()))
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column,
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged_and_maps_to_itself() {
        let src: Arc<str> = "a = 1\nb = [1, 2]\n".into();
        let c = Clipped::new("f".into(), src.clone(), &[4, 10], "...");
        assert_eq!(c.text(), &*src);
        for o in 0..=src.len() {
            assert_eq!(c.map(o), o);
            assert_eq!(c.unmap(o), o);
        }
    }

    #[test]
    fn long_line_keeps_head_points_and_newlines() {
        let long = format!("x = \"{}é{}\"", "a".repeat(1000), "b".repeat(70_000));
        let src: Arc<str> = format!("first\n{long}\nlast\n").into();
        let p = 6 + long.find('é').unwrap();
        let end = 6 + long.len();
        let c = Clipped::new("f".into(), src.clone(), &[p, end], "...");
        assert!(c.text().len() < 500, "{}", c.text().len());
        assert_eq!(c.text().lines().count(), 3);
        assert!(c.text().starts_with("first\nx = \"aaa"));
        assert!(c.text().ends_with("bb\"\nlast\n"));
        assert_eq!(&c.text()[c.map(p)..c.map(p) + 2], "é");
        assert_eq!(c.unmap(c.map(p)), p);
        assert_eq!(c.column(p), p - 6);
        assert_eq!(c.map(end), c.text().len() - "\nlast\n".len());
    }
}
