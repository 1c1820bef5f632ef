//! Pretty-printing of JSON values with colours, keeping the stored text.
//!
//! This re-indents the token stream instead of parsing into
//! `serde_json::Value`: `Value` would sort object keys and could reformat
//! numbers, and the browser must show what is stored. The caller checks the
//! text is valid JSON first, so the tokenizer can be simple.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::theme::Theme;

/// Indentation of one nesting level.
const INDENT: &str = "  ";

/// `text` (valid JSON) as indented, coloured lines; at most `max_lines`.
/// Returns the lines and whether they were cut.
pub fn pretty(text: &str, theme: Theme, max_lines: usize) -> (Vec<Line<'static>>, bool) {
    let mut p = Printer {
        chars: text.chars().collect(),
        at: 0,
        theme,
        lines: Vec::new(),
        cur: Vec::new(),
        depth: 0,
        max_lines,
    };
    while p.at < p.chars.len() && p.lines.len() < max_lines {
        p.token();
    }
    let cut = p.chars[p.at.min(p.chars.len())..]
        .iter()
        .any(|c| !c.is_whitespace());
    p.finish();
    (p.lines, cut)
}

/// `text` (valid JSON) indented, without styles or a line limit: the
/// form a compact value is edited in.
pub fn indent(text: &str) -> String {
    let (lines, _) = pretty(text, Theme { color: false }, usize::MAX);
    let mut out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// Whether [`indent`] of `text` (valid JSON) would stay within `max`
/// bytes. Each level indents its lines two more spaces, so a value nested
/// deep grows with the square of its depth: 390 KiB nested 200,000 deep
/// took the browser's memory past 1.7 GB and on (found by an audit).
pub fn indents_within(text: &str, max: usize) -> bool {
    let (mut len, mut depth) = (text.len(), 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let newline = match b {
            b'"' => {
                in_string = true;
                false
            }
            b'{' | b'[' => {
                depth += 1;
                true
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                true
            }
            b',' => true,
            _ => false,
        };
        if newline {
            len = len.saturating_add(1 + 2 * depth);
            if len > max {
                return false;
            }
        }
    }
    len <= max
}

/// `text` (valid JSON) without whitespace outside strings.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

struct Printer {
    chars: Vec<char>,
    /// The next character to read.
    at: usize,
    theme: Theme,
    lines: Vec<Line<'static>>,
    cur: Vec<Span<'static>>,
    depth: usize,
    max_lines: usize,
}

impl Printer {
    /// Reads and prints one token.
    fn token(&mut self) {
        let c = self.chars[self.at];
        self.at += 1;
        match c {
            '"' => {
                let end = string_end(&self.chars, self.at);
                let style = if next_is(&self.chars, end, ':') {
                    self.theme.json_key()
                } else {
                    self.theme.json_string()
                };
                self.push_until(end, style);
            }
            '{' | '[' => self.open(c),
            '}' | ']' => {
                self.depth = self.depth.saturating_sub(1);
                self.newline();
                self.push(c.to_string(), Style::new());
            }
            ',' => {
                self.push(",".to_string(), Style::new());
                self.newline();
            }
            ':' => self.push(": ".to_string(), Style::new()),
            c if c.is_whitespace() => {}
            _ => {
                let style = if c == '-' || c.is_ascii_digit() {
                    self.theme.json_number()
                } else {
                    self.theme.json_literal()
                };
                self.push_until(literal_end(&self.chars, self.at), style);
            }
        }
    }

    /// An opening bracket: `{}` / `[]` when empty, else a new level.
    fn open(&mut self, c: char) {
        let close = if c == '{' { '}' } else { ']' };
        match skip_ws(&self.chars, self.at).filter(|&j| self.chars[j] == close) {
            Some(after) => {
                self.push(format!("{c}{close}"), Style::new());
                self.at = after + 1;
            }
            None => {
                self.push(c.to_string(), Style::new());
                self.depth += 1;
                self.newline();
            }
        }
    }

    /// Prints the token that started one character back and ends at `end`.
    fn push_until(&mut self, end: usize, style: Style) {
        let text: String = self.chars[self.at - 1..end].iter().collect();
        self.push(text, style);
        self.at = end;
    }

    fn push(&mut self, text: String, style: Style) {
        if self.cur.is_empty() && self.depth > 0 {
            self.cur.push(Span::raw(INDENT.repeat(self.depth)));
        }
        self.cur.push(Span::styled(text, style));
    }

    fn newline(&mut self) {
        if self.lines.len() < self.max_lines {
            self.lines.push(Line::from(std::mem::take(&mut self.cur)));
        }
    }

    fn finish(&mut self) {
        if !self.cur.is_empty() {
            self.newline();
        }
    }
}

/// Index just past the closing quote of a string whose body starts at `i`.
fn string_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index just past a number or `true`/`false`/`null` whose rest starts at `i`.
fn literal_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && !matches!(chars[i], ',' | '}' | ']' | ':') && !chars[i].is_whitespace()
    {
        i += 1;
    }
    i
}

fn skip_ws(chars: &[char], mut i: usize) -> Option<usize> {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    (i < chars.len()).then_some(i)
}

fn next_is(chars: &[char], i: usize, want: char) -> bool {
    skip_ws(chars, i).is_some_and(|j| chars[j] == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Vec<String> {
        let (lines, _) = pretty(text, Theme { color: false }, 100);
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn deep_nesting_is_not_indented_past_a_bound() {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert!(!indents_within(&deep, 100 << 20));
        let flat = r#"{"a":[1,2,{"b":"x,[{"}],"c":null}"#;
        assert!(indents_within(flat, 1 << 10));
        // The estimate is at least what indent() makes.
        assert!(indent(flat).len() <= 200 && indents_within(flat, indent(flat).len() + 16));
        assert!(!indents_within(flat, 20));
    }

    #[test]
    fn indents_and_keeps_key_order_and_numbers() {
        let got = plain(r#"{"z":1.50,"a":[true,null,"x\"y"],"e":{},"f":[ ]}"#);
        let want = [
            "{",
            "  \"z\": 1.50,",
            "  \"a\": [",
            "    true,",
            "    null,",
            "    \"x\\\"y\"",
            "  ],",
            "  \"e\": {},",
            "  \"f\": []",
            "}",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn compacts_outside_strings_only() {
        let text = "{ \"a b\" : [ 1 ,\n \"x\\\" y\" ] }";
        assert_eq!(compact(text), r#"{"a b":[1,"x\" y"]}"#);
        assert_eq!(compact(&indent(r#"{"k":{"z":[]}}"#)), r#"{"k":{"z":[]}}"#);
    }

    #[test]
    fn cuts_at_max_lines() {
        let (lines, cut) = pretty("[1,2,3,4,5]", Theme { color: true }, 3);
        assert_eq!(lines.len(), 3);
        assert!(cut);
        let (_, cut) = pretty("[1,2]", Theme { color: true }, 10);
        assert!(!cut);
    }
}
