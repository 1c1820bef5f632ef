//! What the value pane shows: JSON pretty-printed, UTF-8 text, or a hex
//! dump with an ASCII column, computed once when a value arrives so that
//! rendering stays cheap however often the screen is drawn.
//!
//! Values reach 16 MiB; only a bounded head of one is formatted
//! ([`TEXT_PREVIEW_BYTES`], [`HEX_PREVIEW_BYTES`], [`MAX_PREVIEW_LINES`]) and
//! the pane's title says how much is shown.

use std::fmt::Write;

use ratatui::text::{Line, Span};

use super::json;
use super::theme::Theme;
use super::wrap;

/// Largest value parsed as JSON: beyond it validation and re-indenting
/// would stall the UI thread for a view of which only a screenful is read.
pub const JSON_PREVIEW_BYTES: usize = 1 << 20;
/// Text shown of a larger UTF-8 value.
pub const TEXT_PREVIEW_BYTES: usize = 256 << 10;
/// Bytes of a binary value in the hex dump (4,096 lines of 16).
pub const HEX_PREVIEW_BYTES: usize = 64 << 10;
/// Lines kept of any preview: far more than anyone scrolls through.
pub const MAX_PREVIEW_LINES: usize = 10_000;
/// Bytes per hex dump line, as in `hexdump -C`, when the pane is wide enough
/// ([`HEX_WIDE_COLUMNS`]); half as many otherwise.
const HEX_WIDTH: usize = 16;
/// Columns one line of 16 bytes takes: offset, hex, ASCII column.
pub const HEX_WIDE_COLUMNS: usize = 10 + 3 * HEX_WIDTH + 1 + 2 + HEX_WIDTH + 1;

/// How a value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Text,
    Binary,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "JSON",
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }
}

/// A formatted value.
#[derive(Debug, Clone)]
pub struct Preview {
    pub kind: Kind,
    /// The lines of JSON and text. A hex dump is drawn from the bytes by
    /// [`hex_rows`] instead, because its width follows the pane's.
    pub lines: Vec<Line<'static>>,
    /// When only a part of the value is shown: which part, for the title.
    pub partial: Option<String>,
}

/// Formats `value` for the pane.
pub fn preview(value: &[u8], theme: Theme) -> Preview {
    match classify(value) {
        Kind::Json => json_preview(value, theme),
        // Too large to re-indent: its head as it is, but still called
        // JSON (it was labelled text, which it is not).
        Kind::Text if large_json(value) => {
            let mut shown = text_preview(value);
            shown.kind = Kind::Json;
            shown.partial = shown.partial.map(|part| format!("{part} as text"));
            shown
        }
        Kind::Text => text_preview(value),
        Kind::Binary => hex_preview(value),
    }
}

/// Whether `value`, too large to pretty-print ([`JSON_PREVIEW_BYTES`]), is
/// an object or array that parses. Checked without building anything (a
/// few milliseconds a MiB) and only up to the default value limit.
fn large_json(value: &[u8]) -> bool {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    value.len() > JSON_PREVIEW_BYTES
        && value.len() <= crate::limits::DEFAULT_MAX_VALUE_BYTES
        && matches!(first, Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
}

/// JSON: an object or array that parses; text: UTF-8 without control
/// characters other than tab and line breaks (judged on the shown head of a
/// large value); anything else is binary.
pub fn classify(value: &[u8]) -> Kind {
    let head = &value[..value.len().min(TEXT_PREVIEW_BYTES)];
    let text = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut by the head's end is still text.
        Err(e) if e.error_len().is_none() && head.len() < value.len() => {
            match std::str::from_utf8(&head[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return Kind::Binary,
            }
        }
        Err(_) => return Kind::Binary,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Kind::Binary;
    }
    let first = text.trim_start().chars().next();
    let is_json = matches!(first, Some('{' | '['))
        && value.len() <= JSON_PREVIEW_BYTES
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok();
    if is_json { Kind::Json } else { Kind::Text }
}

fn json_preview(value: &[u8], theme: Theme) -> Preview {
    let text = String::from_utf8_lossy(value);
    let (lines, cut) = json::pretty(&text, theme, MAX_PREVIEW_LINES);
    Preview {
        kind: Kind::Json,
        partial: cut.then(|| format!("first {} lines", lines.len())),
        lines,
    }
}

fn text_preview(value: &[u8]) -> Preview {
    let head = &value[..value.len().min(TEXT_PREVIEW_BYTES)];
    let text = String::from_utf8_lossy(head);
    let mut partial =
        (head.len() < value.len()).then(|| format!("first {}", human_bytes(head.len())));
    let mut lines = Vec::new();
    for line in text.lines() {
        if lines.len() == MAX_PREVIEW_LINES {
            partial = Some(format!("first {MAX_PREVIEW_LINES} lines"));
            break;
        }
        // A carriage return not ending a line (progress output, `end\r`)
        // as its control picture, as the editor shows it: drawn as it is,
        // the terminal dropped it and the text around it ran together
        // (found by an audit).
        let line = match line.contains('\r') {
            true => std::borrow::Cow::Owned(line.replace('\r', "\u{240d}")),
            false => std::borrow::Cow::Borrowed(line),
        };
        lines.push(Line::raw(expand_tabs(&line)));
    }
    Preview {
        kind: Kind::Text,
        lines,
        partial,
    }
}

/// Columns between tab stops, as in `cat` and `less`.
pub const TAB_STOP: usize = 8;

/// `line` with each tab turned into the spaces up to the next tab stop
/// (counted from the line's start, by columns as drawn): a tab's width
/// depends on its column, and spaces make the rows wrapped and counted
/// (`wrap.rs`) the rows drawn. A fixed 4 spaces misaligned columns.
pub fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + TAB_STOP);
    let mut column = 0;
    for (g, w) in wrap::clusters(line) {
        if g == "\t" {
            let n = TAB_STOP - column % TAB_STOP;
            out.extend(std::iter::repeat_n(' ', n));
            column += n;
        } else {
            out.push_str(g);
            column += w;
        }
    }
    out
}

fn hex_preview(value: &[u8]) -> Preview {
    Preview {
        kind: Kind::Binary,
        lines: Vec::new(),
        partial: (value.len() > HEX_PREVIEW_BYTES)
            .then(|| format!("first {}", human_bytes(HEX_PREVIEW_BYTES))),
    }
}

/// Bytes per hex dump line in a pane `columns` wide.
pub fn hex_width(columns: usize) -> usize {
    if columns >= HEX_WIDE_COLUMNS {
        HEX_WIDTH
    } else {
        HEX_WIDTH / 2
    }
}

/// Lines of the hex dump of `value`'s shown head at `per_line` bytes a line.
pub fn hex_line_count(value: &[u8], per_line: usize) -> usize {
    value.len().min(HEX_PREVIEW_BYTES).div_ceil(per_line)
}

/// Rows one hex dump line of `per_line` bytes takes in `cols` columns
/// (more than one in a pane too narrow even for half a line).
pub fn hex_rows_per_line(per_line: usize, cols: usize) -> usize {
    // Offset and gaps, three columns a byte in hex, one in the ASCII column.
    let width = 10 + 3 * per_line + 1 + 2 + per_line + 1;
    width.div_ceil(cols.max(1))
}

/// Up to `count` hex dump lines from line `first`.
pub fn hex_rows(
    value: &[u8],
    first: usize,
    count: usize,
    per_line: usize,
    theme: Theme,
) -> Vec<Line<'static>> {
    let head = &value[..value.len().min(HEX_PREVIEW_BYTES)];
    head.chunks(per_line)
        .enumerate()
        .skip(first)
        .take(count)
        .map(|(i, chunk)| hex_line(i * per_line, chunk, per_line, theme))
        .collect()
}

/// `00000010  41 42 ... 4f  |AB.............O|`, with a gap mid-line.
fn hex_line(offset: usize, chunk: &[u8], per_line: usize, theme: Theme) -> Line<'static> {
    let mut hex = String::with_capacity(3 * per_line + 1);
    for i in 0..per_line {
        if i == per_line / 2 {
            hex.push(' ');
        }
        match chunk.get(i) {
            Some(b) => {
                let _ = write!(hex, "{b:02x} ");
            }
            None => hex.push_str("   "),
        }
    }
    let ascii: String = chunk
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    Line::from(vec![
        Span::styled(format!("{offset:08x}  "), theme.dim()),
        Span::raw(hex),
        Span::styled(format!(" |{ascii}|"), theme.json_string()),
    ])
}

pub use crate::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    const MONO: Theme = Theme { color: false };

    #[test]
    fn classifies() {
        assert_eq!(classify(br#"{"a":1}"#), Kind::Json);
        assert_eq!(classify(b"[1, 2"), Kind::Text);
        assert_eq!(classify(b"42"), Kind::Text);
        assert_eq!(classify(b"hello\tworld\n"), Kind::Text);
        assert_eq!(classify(b"\x00\x01"), Kind::Binary);
        assert_eq!(classify(b"\xff"), Kind::Binary);
    }

    /// A lone carriage return shows as its control picture; CRLF line
    /// ends stay line ends.
    #[test]
    fn a_carriage_return_inside_a_line_is_shown() {
        let p = preview(b"progress 10%\rprogress 100%\rDONE\r\nnext\nend\r", MONO);
        assert_eq!(p.kind, Kind::Text);
        let lines: Vec<String> = p.lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            lines,
            [
                "progress 10%\u{240d}progress 100%\u{240d}DONE",
                "next",
                "end\u{240d}"
            ]
        );
    }

    #[test]
    fn hex_dump_has_ascii_column() {
        let value = b"ABCDEFGHIJKLMNOPQ\x00";
        assert_eq!(preview(value, MONO).kind, Kind::Binary);
        let lines = hex_rows(value, 0, 10, hex_width(HEX_WIDE_COLUMNS), MONO);
        assert_eq!(
            lines[0].to_string(),
            "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|"
        );
        assert_eq!(lines[0].width(), HEX_WIDE_COLUMNS);
        assert!(lines[1].to_string().starts_with("00000010  51 00 "));
        assert!(lines[1].to_string().ends_with("|Q.|"));
        let narrow = hex_rows(value, 1, 1, hex_width(60), MONO);
        assert_eq!(
            narrow[0].to_string(),
            "00000008  49 4a 4b 4c  4d 4e 4f 50  |IJKLMNOP|"
        );
    }

    #[test]
    fn large_values_are_cut() {
        let big = vec![0u8; HEX_PREVIEW_BYTES * 2];
        let p = preview(&big, MONO);
        assert!(p.partial.is_some());
        assert_eq!(hex_line_count(&big, 16), HEX_PREVIEW_BYTES / 16);
        let text = "x\n".repeat(MAX_PREVIEW_LINES + 5);
        let p = preview(text.as_bytes(), MONO);
        assert!(p.partial.is_some());
        assert_eq!(p.lines.len(), MAX_PREVIEW_LINES);
    }

    #[test]
    fn human_sizes() {}
}
