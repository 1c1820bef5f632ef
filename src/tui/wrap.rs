//! The value pane's lines wrapped at the pane's width, grapheme cluster
//! by grapheme cluster, so that the rows scrolled through are the rows
//! drawn.
//!
//! The pane used to scroll by source lines while ratatui wrapped them:
//! with lines wider than the pane the last "line" was reached while the
//! screen still showed the middle of the value, and the rest could never
//! be seen. Here one function decides where a line breaks ([`split`]) and
//! [`rows`] counts the same breaks, so counts and drawing cannot differ.
//! A row never breaks inside a grapheme cluster (an accent stays with its
//! letter, an emoji ZWJ sequence such as 👨‍👩‍👧 stays whole), and a
//! cluster takes the columns ratatui draws it in ([`width`]).

use ratatui::buffer::CellWidth;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;

/// Columns ratatui draws the grapheme cluster `g` in: what its buffer
/// gives it, or none for a cluster with a control character, which ratatui
/// leaves out.
pub fn width(g: &str) -> usize {
    if g.contains(char::is_control) {
        return 0;
    }
    usize::from(g.cell_width())
}

/// The grapheme cluster `g` as drawn: without zero width joiners at its
/// end. Such a joiner joins nothing (the cluster ended there), but tmux
/// (3.3) joins the next emoji it prints to the cell before that, even
/// after a cursor move: its screen then no longer matches what ratatui
/// drew, and ratatui's redraws, which send only the cells that changed,
/// leave stray glyphs behind.
pub fn drawn(g: &str) -> &str {
    g.trim_end_matches('\u{200d}')
}

/// `text`'s grapheme clusters as drawn, with their columns.
pub fn clusters(text: &str) -> impl Iterator<Item = (&str, usize)> {
    text.graphemes(true).map(|g| {
        let g = drawn(g);
        (g, width(g))
    })
}

/// Columns `text` takes as drawn: the sum of its clusters' (see
/// [`clusters`]).
pub fn columns(text: &str) -> usize {
    clusters(text).map(|(_, w)| w).sum()
}

/// Rows `line` takes in `cols` columns (at least one, for an empty line).
pub fn rows(line: &Line<'_>, cols: usize) -> usize {
    let cols = cols.max(1);
    // Printable ASCII is one column a character: no need to walk it.
    if line
        .spans
        .iter()
        .all(|s| s.content.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        // Spaces at the end hang past the edge (see `split`).
        let width =
            line.spans.iter().map(|s| s.content.len()).sum::<usize>() - trailing_spaces(line);
        return width.div_ceil(cols).max(1);
    }
    let hanging = clusters_before_trailing_spaces(line);
    let mut count = 1;
    let mut used = 0;
    // Span by span, as ratatui cuts a line into clusters.
    let all = line.spans.iter().flat_map(|s| clusters(&s.content));
    for (i, (_, w)) in all.enumerate() {
        if used + w > cols && used > 0 {
            if i >= hanging {
                break;
            }
            count += 1;
            used = 0;
        }
        used += w;
    }
    count
}

/// How many spaces `line` ends with.
fn trailing_spaces(line: &Line<'_>) -> usize {
    let mut n = 0;
    for span in line.spans.iter().rev() {
        let text: &str = &span.content;
        let trimmed = text.trim_end_matches(' ');
        n += text.len() - trimmed.len();
        if !trimmed.is_empty() {
            break;
        }
    }
    n
}

/// How many clusters `line` has before the spaces it ends with: spaces
/// from there on that do not fit a row hang past its edge rather than
/// start a row of their own, which would look like an empty line that
/// the value does not have.
fn clusters_before_trailing_spaces(line: &Line<'_>) -> usize {
    let all = line.spans.iter().flat_map(|s| clusters(&s.content)).count();
    all - trailing_spaces(line)
}

/// `line` cut into rows of at most `cols` columns, keeping its styles; a
/// grapheme cluster that does not fit the rest of a row starts the next
/// one, but for the spaces at the line's end, which hang past the edge.
pub fn split(line: &Line<'_>, cols: usize) -> Vec<Line<'static>> {
    let cols = cols.max(1);
    let hanging = clusters_before_trailing_spaces(line);
    let mut out = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    let mut index = 0;
    'spans: for span in &line.spans {
        let mut text = String::new();
        for (g, w) in clusters(&span.content) {
            index += 1;
            if used + w > cols && used > 0 {
                if index > hanging {
                    if !text.is_empty() {
                        row.push(Span::styled(text, span.style));
                    }
                    break 'spans;
                }
                if !text.is_empty() {
                    row.push(Span::styled(std::mem::take(&mut text), span.style));
                }
                out.push(Line::from(std::mem::take(&mut row)).style(line.style));
                used = 0;
            }
            text.push_str(g);
            used += w;
        }
        if !text.is_empty() {
            row.push(Span::styled(text, span.style));
        }
    }
    out.push(Line::from(row).style(line.style));
    out
}

/// `text` in rows of at most `cols` columns, broken at spaces (dropped at
/// a break) and, in a word wider than a row, between clusters: the
/// dialogs' prose, laid out here rather than by ratatui so that its rows
/// can be counted (to keep the lines that matter on a small screen).
pub fn words(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    for word in text.split_inclusive(' ') {
        let need = columns(word.trim_end_matches(' '));
        if used + need > cols && used > 0 {
            rows.push(row.trim_end().to_string());
            row.clear();
            used = 0;
        }
        for (g, w) in clusters(word) {
            if used + w > cols && used > 0 {
                if g == " " {
                    continue;
                }
                rows.push(std::mem::take(&mut row));
                used = 0;
            }
            row.push_str(g);
            used += w;
        }
    }
    rows.push(row.trim_end().to_string());
    rows
}

/// Which line row `row` falls in, and its row within that line, given
/// the rows each line takes; past the end: (number of lines, 0).
pub fn locate(per_line: impl Iterator<Item = usize>, row: usize) -> (usize, usize) {
    let mut start = 0;
    let mut index = 0;
    for n in per_line {
        if row < start + n {
            return (index, row - start);
        }
        start += n;
        index += 1;
    }
    (index, 0)
}

/// `count` rows of `lines` wrapped at `cols`, leaving out the first
/// `skip` rows of the first line.
pub fn window<'a>(
    lines: impl Iterator<Item = &'a Line<'a>>,
    skip: usize,
    count: usize,
    cols: usize,
) -> Vec<Line<'static>> {
    lines
        .flat_map(|l| split(l, cols))
        .skip(skip)
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Style, Stylize};

    #[test]
    fn counts_the_rows_it_splits_into() {
        let cases = [
            Line::raw(""),
            Line::raw("abcdef"),
            Line::raw("abcdefg"),
            Line::raw("日本語のテキスト"),
            Line::from(vec![Span::raw("ab"), "cdé".red(), Span::raw("fg日")]),
        ];
        for line in &cases {
            for cols in 1..9 {
                let parts = split(line, cols);
                assert_eq!(rows(line, cols), parts.len(), "{line:?} at {cols}");
                assert!(parts.iter().all(|p| p.width() <= cols.max(2)));
                let joined: String = parts.iter().map(ToString::to_string).collect();
                assert_eq!(joined, line.to_string());
            }
        }
        let parts = split(&cases[4], 3);
        assert_eq!(parts[1].spans[0].content, "dé");
        assert_eq!(parts[1].spans[0].style, Style::new().red());
    }

    /// Spaces that end a line do not start a row of their own (an empty
    /// row the value does not have); inside a line they are kept.
    #[test]
    fn spaces_at_a_lines_end_hang_past_the_edge() {
        let cases = [
            (Line::raw("abc "), 3, vec!["abc"]),
            (Line::raw("abc    "), 3, vec!["abc"]),
            (Line::raw("ab  "), 3, vec!["ab "]),
            (Line::raw("abc d "), 3, vec!["abc", " d "]),
            (Line::raw("      "), 3, vec!["   "]),
            (Line::raw("日本語 "), 6, vec!["日本語"]),
            (
                Line::from(vec![Span::raw("abc"), " ".red()]),
                3,
                vec!["abc"],
            ),
            (
                Line::from(vec![Span::raw("ab"), "c ".red(), Span::raw(" ")]),
                3,
                vec!["abc"],
            ),
        ];
        for (line, cols, want) in cases {
            let got: Vec<String> = split(&line, cols).iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{line:?}");
            assert_eq!(rows(&line, cols), want.len(), "{line:?}");
        }
    }

    #[test]
    fn words_break_at_spaces_and_inside_a_word_too_wide() {
        let rows = |text, cols| words(text, cols);
        assert_eq!(rows("", 5), [""]);
        assert_eq!(rows("o: one    r: two", 20), ["o: one    r: two"]);
        assert_eq!(rows("o: one    r: two", 10), ["o: one", "r: two"]);
        assert_eq!(rows("  indented text", 10), ["  indented", "text"]);
        assert_eq!(rows("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(rows("日本語 x", 4), ["日本", "語 x"]);
    }

    #[test]
    fn locates_rows_and_windows() {
        let lines = [Line::raw("aaaaa"), Line::raw("b"), Line::raw("cccccc")];
        let per = || lines.iter().map(|l| rows(l, 2));
        assert_eq!(per().sum::<usize>(), 7);
        assert_eq!(locate(per(), 0), (0, 0));
        assert_eq!(locate(per(), 2), (0, 2));
        assert_eq!(locate(per(), 3), (1, 0));
        assert_eq!(locate(per(), 6), (2, 2));
        assert_eq!(locate(per(), 7), (3, 0));
        let shown: Vec<String> = window(lines[2..].iter(), 1, 5, 2)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["cc", "cc"]);
    }
}
