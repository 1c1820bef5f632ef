//! The built-in editor's soft wrap: where a line of its text breaks into
//! rows on screen, where the cursor is drawn, and which character Up and
//! Down land on. Display only: the text keeps its lines, and saving stores
//! exactly what was typed.
//!
//! A row holds `cols` columns of text. The view draws a continuation mark
//! in one more column after each row whose line goes on, so a soft break
//! never looks like a line break, and the cursor at the end of a line
//! always has a cell of its own. [`breaks`] alone decides where rows
//! start; everything else here is derived from it, so the rows drawn, the
//! cursor drawn and the rows Up and Down move through cannot disagree.
//! Widths are per grapheme cluster, as the value pane wraps (`wrap.rs`)
//! and ratatui draws: a wide character that does not fit the rest of a
//! row starts the next one, a combining accent stays with its letter and
//! an emoji ZWJ sequence stays whole. Positions are char indices, as the
//! editor's cursor is.

use std::borrow::Cow;

use unicode_segmentation::UnicodeSegmentation;

use super::wrap;

/// The character drawn for `c`: a tab as one space (as the editor has
/// always drawn it), a control character as its Unicode control picture
/// (`␍` for CR), so that every character the cursor can stand on takes a
/// column (ratatui draws control characters as nothing); any other as
/// itself.
pub fn shown(c: char) -> char {
    match c {
        '\t' => ' ',
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        c if c.is_control() => '\u{fffd}',
        c => c,
    }
}

/// One grapheme cluster of a line: the chars it spans, its text as drawn
/// and the columns that takes.
struct Cluster<'a> {
    chars: usize,
    text: Cow<'a, str>,
    width: usize,
}

/// The grapheme clusters of `line`. A control character is a cluster of
/// its own (a line holds no LF, so no CR LF pair), drawn as [`shown`].
fn clusters(line: &str) -> impl Iterator<Item = Cluster<'_>> {
    line.graphemes(true).map(|g| {
        let mut chars = g.chars();
        let text = match (chars.next(), chars.next()) {
            (Some(c), None) if shown(c) != c => Cow::Owned(shown(c).to_string()),
            _ => Cow::Borrowed(wrap::drawn(g)),
        };
        Cluster {
            chars: g.chars().count(),
            width: wrap::width(&text),
            text,
        }
    })
}

/// The char index each row of `line` starts at, wrapped at `cols` columns;
/// the first is 0.
pub fn breaks(line: &str, cols: usize) -> Vec<usize> {
    let cols = cols.max(1);
    let mut starts = vec![0];
    let mut used = 0;
    let mut at = 0;
    for c in clusters(line) {
        if used + c.width > cols && used > 0 {
            starts.push(at);
            used = 0;
        }
        used += c.width;
        at += c.chars;
    }
    starts
}

/// Rows `line` takes at `cols` columns (one for an empty line).
pub fn rows(line: &str, cols: usize) -> usize {
    // Printable ASCII is one column a character: no need to walk it.
    if line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return line.len().div_ceil(cols.max(1)).max(1);
    }
    breaks(line, cols).len()
}

/// The row of `line` that the cursor before char `col` is on, and its
/// column there. A cursor between two rows is drawn at the start of the
/// second (before the character it is before).
pub fn locate(line: &str, col: usize, cols: usize) -> (usize, usize) {
    let starts = breaks(line, cols);
    let row = starts.partition_point(|&s| s <= col).saturating_sub(1);
    let start = starts[row];
    let mut at = 0;
    let mut x = 0;
    for c in clusters(line) {
        if at >= col {
            break;
        }
        if at >= start {
            x += c.width;
        }
        at += c.chars;
    }
    (row, x)
}

/// The char index on row `row` of `line` at column `x`, or before it when
/// `x` falls inside a wide cluster or past the row's end: where Up and
/// Down land, keeping the cursor's column. The last place on a row whose
/// line goes on is before its last cluster (the place after it is the
/// next row's first).
pub fn col_at(line: &str, row: usize, x: usize, cols: usize) -> usize {
    let starts = breaks(line, cols);
    let row = row.min(starts.len() - 1);
    let (start, next) = (starts[row], starts.get(row + 1).copied());
    let mut at = 0;
    let mut used = 0;
    for c in clusters(line) {
        let after = at + c.chars;
        if at >= start {
            used += c.width;
            if used > x || next.is_some_and(|n| after >= n) {
                return at;
            }
        }
        at = after;
    }
    at
}

/// The cursor (line `row`, char `col`) as a row among all the rows of
/// `lines` wrapped at `cols`, and its column.
pub fn cursor(lines: &[String], row: usize, col: usize, cols: usize) -> (usize, usize) {
    let above: usize = lines[..row].iter().map(|l| rows(l, cols)).sum();
    let (sub, x) = locate(&lines[row], col, cols);
    (above + sub, x)
}

/// One row on screen: its text as drawn, the columns it takes, and
/// whether its line goes on in the next row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub text: String,
    pub width: usize,
    pub continued: bool,
}

/// Up to `count` rows of `lines` wrapped at `cols`, from row `top`.
pub fn window(lines: &[String], top: usize, count: usize, cols: usize) -> Vec<Row> {
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for line in lines {
        if out.len() == count {
            break;
        }
        let n = rows(line, cols);
        if at + n <= top {
            at += n;
            continue;
        }
        let starts = breaks(line, cols);
        let mut parts: Vec<Row> = (1..=starts.len())
            .map(|i| Row {
                text: String::new(),
                width: 0,
                continued: i < starts.len(),
            })
            .collect();
        let mut char_at = 0;
        for c in clusters(line) {
            let part = &mut parts[starts.partition_point(|&s| s <= char_at) - 1];
            part.text.push_str(&c.text);
            part.width += c.width;
            char_at += c.chars;
        }
        let skip = top.saturating_sub(at);
        out.extend(parts.into_iter().skip(skip).take(count - out.len()));
        at += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_by_columns_not_bytes() {
        assert_eq!(breaks("", 4), [0]);
        assert_eq!(breaks("abcd", 4), [0]);
        assert_eq!(breaks("abcdefghij", 4), [0, 4, 8]);
        // é is two bytes, one column; 日 is three bytes, two columns.
        assert_eq!(breaks("éééééé", 4), [0, 4]);
        assert_eq!(breaks("a日本語", 4), [0, 2]);
        // A combining accent stays with its letter.
        assert_eq!(breaks("abce\u{301}fg", 4), [0, 5]);
        // A wide character in one column still gets a row.
        assert_eq!(breaks("日本", 1), [0, 1]);
        for line in ["", "abcdefghij", "x\ty", "éééééé", "a日本語b", "a\u{1}b"] {
            for cols in 1..8 {
                assert_eq!(rows(line, cols), breaks(line, cols).len(), "{line:?}");
            }
        }
    }

    #[test]
    fn locates_the_cursor_and_lands_on_columns() {
        let line = "a日本語bc";
        // Rows at 4 columns: "a日" (3 columns), "本語" (4), "bc".
        assert_eq!(breaks(line, 4), [0, 2, 4]);
        assert_eq!(locate(line, 0, 4), (0, 0));
        assert_eq!(locate(line, 1, 4), (0, 1));
        assert_eq!(locate(line, 2, 4), (1, 0), "between rows: the next");
        assert_eq!(locate(line, 3, 4), (1, 2));
        assert_eq!(locate(line, 6, 4), (2, 2), "the end of the line");
        // Column 1 of the second row is inside 本: before it.
        assert_eq!(col_at(line, 1, 1, 4), 2);
        assert_eq!(col_at(line, 1, 2, 4), 3);
        // Past a row that goes on: before its last character.
        assert_eq!(col_at(line, 0, 9, 4), 1);
        assert_eq!(col_at(line, 2, 9, 4), 6);
        // Landing after a letter skips its combining accent.
        assert_eq!(col_at("e\u{301}x", 0, 1, 8), 2);
    }

    #[test]
    fn windows_rows_across_lines() {
        let lines: Vec<String> = ["abcdef", "", "日本語"].map(String::from).into();
        let all = window(&lines, 0, 10, 4);
        let texts: Vec<&str> = all.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["abcd", "ef", "", "日本", "語"]);
        let continued: Vec<bool> = all.iter().map(|r| r.continued).collect();
        assert_eq!(continued, [true, false, false, true, false]);
        assert_eq!(all[3].width, 4);
        let part: Vec<String> = window(&lines, 1, 3, 4)
            .into_iter()
            .map(|r| r.text)
            .collect();
        assert_eq!(part, ["ef", "", "日本"]);
        assert_eq!(cursor(&lines, 2, 2, 4), (4, 0));
        assert_eq!(cursor(&lines, 0, 6, 4), (1, 2));
        assert_eq!(
            window(&["a\tb\u{d}".to_string()], 0, 1, 9)[0].text,
            "a b\u{240d}"
        );
    }
}
