//! Drawing an edit, for [`render`](super::view::render): the built-in
//! editor, its text soft-wrapped (`softwrap.rs`), and the dialogs over it
//! when a save stops (invalid JSON, a conflict). Pure, as all drawing.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::app::App;
use super::conflict::{Conflict, Now};
use super::keys::display_key;
use super::preview::human_bytes;
use super::view::{fit, pane, popup};
use super::{softwrap, wrap};

pub(super) fn render_invalid_json(frame: &mut Frame, app: &App, error: &str) {
    let area = popup(frame, 64, 7);
    let lines = vec![
        Line::from("This is not valid JSON:"),
        Line::from(error.to_string()),
        Line::from(""),
        Line::from("e / Enter / Esc: keep editing    t: save it as text"),
    ];
    let block = pane(Line::from(" Invalid JSON "), true, app);
    let para = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(para, area);
}

pub(super) fn render_editor(frame: &mut Frame, area: Rect, app: &App) {
    let Some((job, text)) = app.editor() else {
        return;
    };
    frame.render_widget(Clear, area);
    let verb = if job.revision == 0 { "New" } else { "Edit" };
    let title = format!(
        " {verb} {} · Ctrl-S save · Esc cancel ",
        display_key(&job.key)
    );
    let block = pane(Line::from(title), true, app);
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
/// now, that the text is kept, and the choices.
pub(super) fn render_conflict(frame: &mut Frame, app: &App, c: &Conflict) {
    let width = frame.area().width.min(76);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let mut lines = conflict_news(c, inner, app.config.theme.dim());
    lines.push(Line::from("Your text is kept; nothing was written."));
    lines.push(Line::from(""));
    let choices: &[&str] = match (c.reload_asked, &c.now) {
        (true, _) => &[
            "Drop your text and show the stored value?",
            "y: drop it    n / Esc: keep it",
        ],
        (false, Now::Gone { .. }) => &[
            "o: save your text (the key is created again)",
            "r: reload (drops your text)    e / Enter / Esc: back to your text",
        ],
        (false, _) => &[
            "o: overwrite with your text    r: reload (drops your text)",
            "e / Enter / Esc: back to your text",
        ],
    };
    lines.extend(choices.iter().map(|&l| Line::from(l)));
    let height: usize = lines.iter().map(|l| wrap::rows(l, inner)).sum();
    let area = popup(frame, width, u16::try_from(height + 2).unwrap_or(u16::MAX));
    let title = match c.job.revision {
        0 => " Conflict · created meanwhile ",
        _ => " Conflict · changed meanwhile ",
    };
    let block = pane(Line::from(title), true, app);
    let para = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(para, area);
}

/// The conflict dialog's news, in `inner` columns: what happened to the
/// key since the edit began, and what it holds now (its first lines in
/// `dim`).
fn conflict_news(c: &Conflict, inner: usize, dim: Style) -> Vec<Line<'static>> {
    let shown = fit(&display_key(&c.job.key), inner / 2);
    let what = match (&c.now, c.job.revision) {
        (Now::Gone { expired: true }, r) => {
            format!("{shown} expired since you opened it (revision {r}).")
        }
        (Now::Gone { .. }, r) => format!("{shown} was deleted since you opened it (revision {r})."),
        (_, 0) => format!("{shown} was created by someone else since you started it."),
        (_, r) => format!("{shown} changed since you opened it (revision {r})."),
    };
    let mut lines = vec![Line::from(what)];
    match &c.now {
        Now::Reading(Some(r)) => lines.push(Line::from(format!(
            "It is now at revision {r}; reading it…"
        ))),
        Now::Reading(None) => lines.push(Line::from("It is gone, it seems; reading it…")),
        Now::Failed { error, .. } => lines.push(Line::from(format!(
            "Cannot read what it holds now: {error}"
        ))),
        Now::Gone { .. } => {}
        Now::Stored {
            revision,
            bytes,
            lines: head,
            more,
        } => {
            let size = human_bytes(bytes.len());
            lines.push(Line::from(format!(
                "It is now at revision {revision} ({size}):"
            )));
            let body = match head.is_empty() {
                true if bytes.is_empty() => vec!["(empty value)".to_string()],
                true => vec!["(binary value)".to_string()],
                false => head.clone(),
            };
            let more = more.then(|| "…".to_string());
            for line in body.into_iter().chain(more) {
                let line = fit(&line.replace('\t', " "), inner.saturating_sub(2));
                lines.push(Line::styled(format!("  {line}"), dim));
            }
        }
    }
    lines
}
