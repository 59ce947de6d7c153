//! Pieces every HCL reader of weft shares (policy documents here, app documents in
//! `weft-app`): line numbers from byte spans, and how a value's type is named in errors.

use hcl_edit::expr::Expression;
use std::ops::Range;

/// Turns byte offsets of one text into 1-based line numbers.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { line_starts }
    }

    /// The line of a span's start; 0 when the parser gave no span.
    pub fn line(&self, span: Option<Range<usize>>) -> u32 {
        let line = span.map_or(0, |s| {
            self.line_starts.partition_point(|&start| start <= s.start)
        });
        u32::try_from(line).unwrap_or(u32::MAX)
    }
}

/// What kind of value an expression is, for "must be X, found Y" messages.
pub fn describe(e: &Expression) -> &'static str {
    match e {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a boolean",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string"
        }
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        _ => "an expression (only literal values are allowed)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_spans_map_to_their_start() {
        let index = LineIndex::new("a\nbb\n\nc");
        assert_eq!(index.line(Some(0..1)), 1);
        assert_eq!(index.line(Some(2..4)), 2);
        assert_eq!(index.line(Some(6..7)), 4);
        assert_eq!(index.line(None), 0);
    }
}
