//! Drawing an edit, for [`render`](super::view::render): the built-in
//! editor, its text soft-wrapped (`softwrap.rs`), and the dialogs over it
//! when a save stops (invalid JSON, a conflict). Pure, as all drawing.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::app::App;
use super::conflict::{Conflict, Now};
use super::fit::{fit, fit_middle};
use super::keys::display_key;
use super::preview::human_bytes;
use super::view::{expires_in, pane, popup};
use super::{softwrap, wrap};

/// The invalid-JSON dialog's keys, in full and in short (a row each at
/// 20 columns, for a screen too small for the full form's rows).
const INVALID_JSON_KEYS: [&[&str]; 2] = [
    &["e / Enter / Esc: keep editing    t: save it as text    d: drop the edit"],
    &["e/Enter/Esc: edit    t: save as text    d: drop the edit"],
];

/// The dialog on a save of text that is not valid JSON where JSON was
/// expected: the parser's error and the choices. On a screen too small
/// for all of it, the key lines stay whole: the spacer goes first, then
/// the error's rows from the end (the last one shown ends in `…`), then
/// the heading, and then the key lines take their short form.
pub(super) fn render_invalid_json(frame: &mut Frame, app: &App, error: &str) {
    let width = frame.area().width.min(64);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let room = usize::from(frame.area().height.saturating_sub(2));
    let keys = keys_in(&INVALID_JSON_KEYS, inner, room).concat();
    let error = error.replace(['\n', '\t'], " ");
    let mut error_rows = wrap::words(&error, inner);
    // What is left for the heading, the error and the spacer.
    let left = room.saturating_sub(keys.len());
    let heading = left >= 2;
    let spacer = left >= error_rows.len() + 2;
    let shown = left.saturating_sub(usize::from(heading));
    if error_rows.len() > shown {
        let rest = error_rows.split_off(shown.saturating_sub(1)).join(" ");
        if shown > 0 {
            error_rows.push(fit(&rest, inner));
        }
    }
    let mut rows = Vec::new();
    if heading {
        rows.push(Line::from("This is not valid JSON:"));
    }
    rows.extend(error_rows.into_iter().map(Line::from));
    if spacer {
        rows.push(Line::from(""));
    }
    rows.extend(keys.into_iter().map(Line::from));
    let area = popup(
        frame,
        width,
        u16::try_from(rows.len() + 2).unwrap_or(u16::MAX),
    );
    let block = pane(" Invalid JSON ", area, true, app);
    // Not wrapped by ratatui: the rows are laid out (and counted) here.
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

pub(super) fn render_editor(frame: &mut Frame, area: Rect, app: &App) {
    let Some((job, text)) = app.editor() else {
        return;
    };
    frame.render_widget(Clear, area);
    let verb = if job.revision == 0 { "New" } else { "Edit" };
    // A save drops the expiry (a put without a TTL): show that there is one.
    let expiry = job
        .expires_at_ms
        .map(|at| format!(" · {}", expires_in(at, crate::types::now_ms())))
        .unwrap_or_default();
    let rest = format!("{expiry} · Ctrl-S save · Esc cancel ");
    // The key gives way (in its middle), so the keys to save and cancel stay.
    let room = usize::from(area.width.saturating_sub(2))
        .saturating_sub(wrap::columns(&rest) + verb.len() + 2)
        .max(8);
    let title = format!(" {verb} {}{rest}", fit_middle(&display_key(&job.key), room));
    let block = pane(&title, area, true, app);
    // Long lines wrap (see `softwrap.rs`): `cols` columns of text and,
    // after a row whose line goes on, a mark in the pane's last column.
    let cols = app.editor_columns();
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let top = text.view_top(cols, rows);
    let mark = app.config.theme.dim();
    let lines: Vec<Line> = softwrap::window(&text.lines, top, rows, cols)
        .into_iter()
        .map(|row| match row.continued {
            true => Line::from(vec![
                Span::raw(row.text),
                Span::raw(" ".repeat(cols.saturating_sub(row.width))),
                Span::styled(CONTINUED, mark),
            ]),
            false => Line::raw(row.text),
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
    let (at, x) = softwrap::cursor(&text.lines, text.row, text.col, cols);
    let to_u16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let x = (area.x + 1)
        .saturating_add(to_u16(x))
        .min(area.right().saturating_sub(2));
    let y = (area.y + 1)
        .saturating_add(to_u16(at - top))
        .min(area.bottom().saturating_sub(2));
    frame.set_cursor_position(Position::new(x, y));
}

/// The mark after an editor row whose line goes on in the next row.
pub const CONTINUED: &str = "↩";

/// The dialog on a save refused because the key changed: what it holds
/// now, that the text is kept, and the choices. On a screen too short for
/// all of it, the lines of the value go first and the key lines stay.
pub(super) fn render_conflict(frame: &mut Frame, app: &App, c: &Conflict) {
    let width = frame.area().width.min(76);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let mut lines = conflict_news(c, inner);
    lines.push((Part::Kept, "Your text is kept; nothing was written.".into()));
    lines.push((Part::Spacer, String::new()));
    let room = usize::from(frame.area().height.saturating_sub(2));
    let choices = keys_in(conflict_keys(c), inner, room);
    lines.extend(
        choices
            .into_iter()
            .map(|rows| (Part::Keys, rows.join("\n"))),
    );
    let dim = app.config.theme.dim();
    let rows: Vec<Line> = fit_rows(lines, inner, room)
        .into_iter()
        .map(|(part, row)| match part {
            Part::Preview | Part::PreviewHead => Line::styled(row, dim),
            _ => Line::raw(row),
        })
        .collect();
    let area = popup(
        frame,
        width,
        u16::try_from(rows.len() + 2).unwrap_or(u16::MAX),
    );
    let title = match (&c.now, c.job.revision) {
        // Said of a key edited and then deleted elsewhere, "changed" was
        // not the word (found by an audit).
        (Now::Gone { .. }, _) => " Conflict · deleted meanwhile ",
        (_, 0) => " Conflict · created meanwhile ",
        _ => " Conflict · changed meanwhile ",
    };
    let block = pane(title, area, true, app);
    // Not wrapped by ratatui: the rows are laid out (and counted) here.
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

/// The conflict dialog's key lines (the question of `r` with them), in
/// full and in short (a row each at 20 columns).
fn conflict_keys(c: &Conflict) -> &'static [&'static [&'static str]; 2] {
    match (c.reload_asked, &c.now) {
        (true, _) => &[
            &[
                "Drop your text and show the stored value?",
                "y: drop it    n / Esc: keep it",
            ],
            &["Drop your text?", "y: drop it    n/Esc: keep it"],
        ],
        (false, Now::Gone { .. }) => &[
            &[
                "o: save your text (the key is created again)",
                "r: reload (drops your text)    e / Enter / Esc: back to your text",
            ],
            &["o: save yours    r: drop & reload    e/Enter/Esc: back"],
        ],
        (false, _) => &[
            &[
                "o: overwrite with your text    r: reload (drops your text)",
                "e / Enter / Esc: back to your text",
            ],
            &["o: overwrite    r: drop & reload    e/Enter/Esc: back"],
        ],
    }
}

/// What separates two keys on one line of the dialog.
const KEY_GAP: &str = "    ";

/// A dialog's key lines as rows of `inner` columns (see [`key_rows`]),
/// a list of rows per line: the first of `forms` (full, then shorter)
/// whose rows fit in `room`, else the last, the shortest.
pub(super) fn keys_in(forms: &[&[&str]], inner: usize, room: usize) -> Vec<Vec<String>> {
    let laid = |form: &[&str]| -> Vec<Vec<String>> {
        form.iter().map(|line| key_rows(line, inner)).collect()
    };
    let mut chosen = Vec::new();
    for form in forms {
        chosen = laid(form);
        if chosen.iter().map(Vec::len).sum::<usize>() <= room {
            break;
        }
    }
    chosen
}

/// A line of a dialog's keys as rows of `inner` columns: two keys that do
/// not fit a row go on two, not `r:` on one and what it does on the next
/// (as many keys a row as fit, in their order).
pub(super) fn key_rows(text: &str, inner: usize) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    let mut row = String::new();
    for key in text.split(KEY_GAP) {
        if row.is_empty() {
            row = key.to_string();
        } else if wrap::columns(&row) + KEY_GAP.len() + wrap::columns(key) <= inner {
            row = format!("{row}{KEY_GAP}{key}");
        } else {
            rows.extend(wrap::words(&std::mem::take(&mut row), inner));
            row = key.to_string();
        }
    }
    rows.extend(wrap::words(&row, inner));
    rows
}

/// A line of the conflict dialog, by what goes first when the screen is
/// too short for all of them: the value's lines but its first, then the
/// others in this order; never the key lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Preview,
    Spacer,
    Kept,
    /// The value's first line (`…` once the value is cut).
    PreviewHead,
    Now,
    /// That `o` drops the current value's expiry.
    Ttl,
    News,
    Keys,
}

/// `lines` as rows of `inner` columns, at most `room` of them (unless the
/// key lines alone take more): lines dropped by [`Part`], the last first.
/// A value shown in part ends with `…`.
fn fit_rows(lines: Vec<(Part, String)>, inner: usize, room: usize) -> Vec<(Part, String)> {
    let mut lines: Vec<(Part, Vec<String>)> = lines
        .into_iter()
        .map(|(part, text)| match part {
            // Laid out already ([`keys_in`]), a row a line.
            Part::Keys => (part, text.lines().map(str::to_string).collect()),
            _ => (part, wrap::words(&text, inner)),
        })
        .collect();
    let mut cut = false;
    while lines.iter().map(|(_, rows)| rows.len()).sum::<usize>() > room {
        let last_of_lowest = (0..lines.len())
            .filter(|&i| lines[i].0 != Part::Keys)
            .min_by_key(|&i| (lines[i].0, std::cmp::Reverse(i)));
        let Some(i) = last_of_lowest else { break };
        cut |= lines[i].0 == Part::Preview;
        lines.remove(i);
    }
    let preview = |part: &Part| matches!(part, Part::Preview | Part::PreviewHead);
    if cut && let Some(last) = lines.iter_mut().rfind(|(part, _)| preview(part)) {
        last.1 = vec!["  …".to_string()];
    }
    lines
        .into_iter()
        .flat_map(|(part, rows)| rows.into_iter().map(move |row| (part, row)))
        .collect()
}

/// The conflict dialog's news, in `inner` columns: what happened to the
/// key since the edit began, and what it holds now (its first lines).
fn conflict_news(c: &Conflict, inner: usize) -> Vec<(Part, String)> {
    let shown = fit_middle(&display_key(&c.job.key), inner / 2);
    let what = match (&c.now, c.job.revision) {
        (Now::Gone { expired: true }, r) => {
            format!("{shown} expired since you opened it (revision {r}).")
        }
        (Now::Gone { .. }, r) => format!("{shown} was deleted since you opened it (revision {r})."),
        (_, 0) => format!("{shown} was created by someone else since you started it."),
        (_, r) => format!("{shown} changed since you opened it (revision {r})."),
    };
    let mut lines = vec![(Part::News, what)];
    let now = |text| (Part::Now, text);
    match &c.now {
        Now::Reading(Some(r)) => lines.push(now(format!("It is now at revision {r}; reading it…"))),
        Now::Reading(None) => lines.push(now("It is gone, it seems; reading it…".into())),
        Now::Failed { error, .. } => {
            lines.push(now(format!("Cannot read what it holds now: {error}")));
        }
        Now::Gone { .. } => {}
        Now::Stored {
            revision,
            bytes,
            lines: head,
            more,
            expires_at_ms,
        } => {
            let size = human_bytes(bytes.len());
            lines.push(now(format!("It is now at revision {revision} ({size}):")));
            let body = match head.is_empty() {
                true if bytes.is_empty() => vec!["(empty value)".to_string()],
                true => vec!["(binary value)".to_string()],
                false => head.clone(),
            };
            let more = more.then(|| "…".to_string());
            for (i, line) in body.into_iter().chain(more).enumerate() {
                let line = fit(&line.replace('\t', " "), inner.saturating_sub(2));
                let part = if i == 0 {
                    Part::PreviewHead
                } else {
                    Part::Preview
                };
                lines.push((part, format!("  {line}")));
            }
            // `o` is a put without a TTL, as any save from the browser.
            if let Some(at) = expires_at_ms {
                let when = expires_in(*at, crate::types::now_ms());
                let ttl = format!("It {when}; o writes yours without an expiry.");
                lines.push((Part::Ttl, ttl));
            }
        }
    }
    lines
}
