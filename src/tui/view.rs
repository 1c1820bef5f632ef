//! [`render`]: the screen as a pure function of [`App`]. Nothing here
//! changes state or does I/O, so tests draw any state onto a `TestBackend`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use super::action::BINDINGS;
use super::app::{App, Focus, Meanwhile, Mode, PromptKind, ValueState};
use super::editview::{keys_in, render_conflict, render_editor, render_invalid_json};
use super::fit::{fit, fit_middle, fit_status, fit_words};
use super::keys::display_key;
use super::preview::{Kind, hex_line_count, hex_rows, hex_rows_per_line, hex_width, human_bytes};
use super::{softwrap, wrap};
use crate::limits::MAX_KEY_BYTES;

/// Where each part of the screen goes.
pub struct Areas {
    pub list: Rect,
    pub value: Rect,
    pub status: Rect,
    pub message: Rect,
}

/// Below this width the two panes do not both fit usably (at 20 columns
/// the list was 4 wide): one of them takes the whole width.
pub const NARROW: u16 = 40;

/// The layout: key list left, value right, two status lines below. On a
/// screen narrower than [`NARROW`] only one pane shows: the value pane
/// when `value_only` (see [`value_only`]), else the list; the other is
/// left zero columns wide.
pub fn areas(area: Rect, value_only: bool) -> Areas {
    let [main, status, message] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    // 40% for keys, less (down to 30%) when that leaves the value pane
    // the 80 columns a hex dump line needs; never under 20 columns.
    let w = main.width;
    let keys = match w {
        _ if w < NARROW && value_only => 0,
        _ if w < NARROW => w,
        _ => (w * 2 / 5)
            .min(w.saturating_sub(80))
            .max(w * 3 / 10)
            .max(20),
    };
    let [list, value] =
        Layout::horizontal([Constraint::Length(keys), Constraint::Fill(1)]).areas(main);
    Areas {
        list,
        value,
        status,
        message,
    }
}

/// Whether a screen narrower than [`NARROW`] shows the value pane rather
/// than the list: when it has the focus, or the built-in editor (drawn
/// over it) is open.
pub fn value_only(app: &App) -> bool {
    app.focus == Focus::Value
        || matches!(
            app.mode,
            Mode::Editor { .. } | Mode::InvalidJson { .. } | Mode::Conflict(_)
        )
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    let a = areas(frame.area(), value_only(app));
    render_list(frame, a.list, app);
    render_value(frame, a.value, app);
    render_status(frame, a.status, app);
    render_message(frame, a.message, app);
    match &app.mode {
        Mode::Help { scroll } => render_help(frame, app, *scroll),
        Mode::Confirm {
            key, revision, now, ..
        } => render_confirm(frame, app, key, *revision, *now),
        Mode::Editor { .. } => render_editor(frame, a.value, app),
        Mode::InvalidJson { error, .. } => {
            render_editor(frame, a.value, app);
            render_invalid_json(frame, app, error);
        }
        Mode::Conflict(c) => {
            render_editor(frame, a.value, app);
            render_conflict(frame, app, c);
        }
        Mode::Browse | Mode::Prompt { .. } => {}
    }
    super::cells::make_safe(frame.buffer_mut());
}

/// A bordered pane over `area` titled `title`, which ends in `…` when it
/// is wider than the border (ratatui cut it silently, mid-word).
pub(super) fn pane(title: &str, area: Rect, focused: bool, app: &App) -> Block<'static> {
    let room = usize::from(area.width.saturating_sub(2));
    // The space after a title only pads it: it goes first.
    let title = match wrap::columns(title) <= room {
        true => title.to_string(),
        false => fit(title.trim_end(), room),
    };
    let title = Line::from(title);
    let t = app.config.theme;
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(t.border(focused))
        .title(title)
}

fn render_list(frame: &mut Frame, area: Rect, app: &App) {
    let p = &app.pager;
    let focused = app.focus == Focus::Keys && app.mode == Mode::Browse;
    let mut title = " Keys ".to_string();
    if let Some(filter) = &p.filter {
        let room = usize::from(area.width).saturating_sub(22);
        title = format!(" Keys {} {} ", filter.verb(), fit(&filter.display(), room));
    }
    let block = pane(&title, area, focused, app);
    let rows = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line> = if p.keys.is_empty() {
        let text = match &app.keys_error {
            _ if let Some(read) = p.scanning() => {
                format!("scanning… {} keys read", thousands(read))
            }
            _ if p.loading => "loading…".to_string(),
            _ if let Some(text) = app.stopped_text() => text,
            Some(why) => format!("({why})"),
            None => "(no keys)".to_string(),
        };
        // Wrapped, not cut at the border: its end says what to do.
        let inner = usize::from(area.width.saturating_sub(2));
        let text = cut_rows(wrap::words(&text, inner), rows, inner);
        let dim = app.config.theme.dim();
        text.into_iter().map(|row| Line::styled(row, dim)).collect()
    } else {
        let end = (p.offset + rows).min(p.keys.len());
        // Borders and the cursor marker take four columns.
        let width = usize::from(area.width.saturating_sub(4));
        (p.offset..end)
            .map(|i| {
                // Cut in the middle: keys sharing a long prefix differ at
                // their end.
                let text = fit_middle(&display_key(&p.keys[i]), width);
                // The marker shows the cursor without colours or reverse video.
                if i == p.cursor {
                    let pad = width.saturating_sub(Span::raw(text.as_str()).width());
                    let row = format!("> {text}{}", " ".repeat(pad));
                    Line::styled(row, app.config.theme.selected(focused))
                } else {
                    Line::raw(format!("  {text}"))
                }
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The value pane's title, at most `width` columns: the key, its
/// revision, size and kind, its expiry and how much of it is shown. A key
/// that fits stays whole: what follows it gives way first, the least
/// telling first (see [`title_fields`]); a longer key loses its middle,
/// down to 8 columns, beside all of it.
fn value_title(app: &App, width: usize) -> String {
    let Some(key) = &app.value.key else {
        return " Value ".to_string();
    };
    let shown = display_key(key);
    let key_columns = wrap::columns(&shown);
    let mut fields = title_fields(app);
    let rest = |fields: &[(TitleField, String)]| {
        let all: String = fields.iter().map(|(_, f)| format!(" · {f}")).collect();
        format!("{all} ")
    };
    // A key that fits stays whole; a longer one keeps 8 columns (below),
    // and the fields give way as well, whole, where they would not fit
    // beside those (the line was cut mid-field: `con…size · rev 3 · 1…`).
    let key_needs = if key_columns + 2 <= width {
        key_columns
    } else {
        KEY_LEAST
    };
    while key_needs + 1 + wrap::columns(&rest(&fields)) > width {
        // The least telling goes; the partial sign takes its short
        // form first, and last is cut rather than dropped while
        // `first…` fits.
        let Some(i) = (0..fields.len()).min_by_key(|&i| fields[i].0) else {
            break;
        };
        let field = &fields[i].1;
        // " · " before it, " " after it.
        let left = width.saturating_sub(key_needs + 1 + 4);
        match fields[i].0 {
            TitleField::Partial => {
                fields[i] = (
                    TitleField::ShortPartial,
                    field.replacen("showing the ", "", 1),
                );
            }
            TitleField::ShortPartial if left >= 6 => {
                fields[i].1 = fit_words(field, left);
            }
            _ => {
                fields.remove(i);
            }
        }
    }
    let rest = rest(&fields);
    let room = width
        .saturating_sub(wrap::columns(&rest) + 1)
        .max(KEY_LEAST);
    format!(" {}{rest}", fit_middle(&shown, room))
}

/// The fewest columns the value title gives a key that does not fit.
const KEY_LEAST: usize = 8;

/// A field of the value title, by what goes first when the title does
/// not fit: the revision, the long form of how much is shown (`showing
/// the first 64.0 KiB`), the kind, the size, the expiry, and last the
/// short form of how much is shown (`first 64.0 KiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TitleField {
    Revision,
    Partial,
    Kind,
    Size,
    Expiry,
    ShortPartial,
}

/// The value title's fields after the key, in the order shown; none
/// while the value is not loaded.
fn title_fields(app: &App) -> Vec<(TitleField, String)> {
    let ValueState::Loaded {
        revision,
        bytes,
        preview,
        expires_at_ms,
    } = &app.value.state
    else {
        return Vec::new();
    };
    let mut fields = vec![
        (TitleField::Revision, format!("rev {revision}")),
        (TitleField::Size, human_bytes(bytes.len())),
        (TitleField::Kind, preview.kind.name().to_string()),
    ];
    if let Some(at) = expires_at_ms {
        fields.push((TitleField::Expiry, expires_in(*at, crate::types::now_ms())));
    }
    if let Some(part) = &preview.partial {
        fields.push((TitleField::Partial, format!("showing the {part}")));
    }
    fields
}

/// A key's expiry as the value pane shows it: "expires in 4m 12s" (the
/// two largest units), or "expired" once it has passed.
pub fn expires_in(at_ms: u64, now_ms: u64) -> String {
    let Some(left) = at_ms.checked_sub(now_ms).filter(|&l| l > 0) else {
        return "expired".to_string();
    };
    let secs = left.div_ceil(1000);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    format!("expires in {text}")
}

fn render_value(frame: &mut Frame, area: Rect, app: &App) {
    let focused = app.focus == Focus::Value && app.mode == Mode::Browse;
    let title = value_title(app, usize::from(area.width.saturating_sub(2)));
    let mut block = pane(&title, area, focused, app);
    let theme = app.config.theme;
    let rows = usize::from(area.height.saturating_sub(2));
    let cols = app.value_columns();
    let total = app.value_rows();
    let scroll = app.value.scroll.min(total.saturating_sub(rows));
    let lines: Vec<Line> = match &app.value.state {
        ValueState::Empty => vec![],
        ValueState::Loading => vec![Line::styled("loading…", theme.dim())],
        ValueState::Missing => vec![Line::styled(
            "this key no longer exists (press r to refresh)",
            theme.dim(),
        )],
        // Wrapped: the error's end says what to do.
        ValueState::Failed(e) => wrap::words(e, cols)
            .into_iter()
            .map(|row| Line::styled(row, theme.error()))
            .collect(),
        ValueState::Loaded { bytes, .. } if bytes.is_empty() => {
            vec![Line::styled("(empty value)", theme.dim())]
        }
        ValueState::Loaded { preview, bytes, .. } if preview.kind == Kind::Binary => {
            let per_line = hex_width(cols);
            let each = hex_rows_per_line(per_line, cols);
            let count = hex_line_count(bytes, per_line);
            let at = |row| wrap::locate(std::iter::repeat_n(each, count), row);
            if total > rows && rows > 0 {
                block = block.title_bottom(position(at, (scroll, rows, total), count, cols));
            }
            let (first, skip) = at(scroll);
            let hex = hex_rows(bytes, first, rows.div_ceil(each) + 1, per_line, theme);
            wrap::window(hex.iter(), skip, rows, cols)
        }
        ValueState::Loaded { preview, .. } => {
            let per_line = || preview.lines.iter().map(|l| wrap::rows(l, cols));
            let at = |row| wrap::locate(per_line(), row);
            let count = preview.lines.len();
            if total > rows && rows > 0 {
                block = block.title_bottom(position(at, (scroll, rows, total), count, cols));
            }
            let (first, skip) = at(scroll);
            wrap::window(preview.lines[first.min(count)..].iter(), skip, rows, cols)
        }
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Where the view is in a value longer than the pane: the source lines
/// of its top and bottom rows, of `count`, and how far down its bottom
/// row is, as `less` says it (lines that wrap into many rows scroll within
/// one line: the percentage still moves); `at` finds a row's line
/// (0-based, [`wrap::locate`]); `(scroll, rows, total)`: the first row in
/// view, the rows in view, all rows. In `width` columns: just the
/// percentage when the whole does not fit, else nothing (never cut).
fn position(
    at: impl Fn(usize) -> (usize, usize),
    (scroll, rows, total): (usize, usize, usize),
    count: usize,
    width: usize,
) -> Line<'static> {
    let first = at(scroll).0;
    let last = at((scroll + rows).saturating_sub(1)).0;
    let last = (last + 1).min(count);
    let first = (first + 1).min(last);
    let percent = (scroll + rows).min(total) * 100 / total.max(1);
    footer((first, last, count), percent, width)
}

/// A scrolling pane's footer: `lines FIRST–LAST of COUNT · PERCENT%` in
/// `width` columns, or just the percentage when that does not fit, else
/// nothing (never cut: a cut number reads as another number).
fn footer(
    (first, last, count): (usize, usize, usize),
    percent: usize,
    width: usize,
) -> Line<'static> {
    let text = [
        format!(" lines {first}–{last} of {count} · {percent}% "),
        format!(" {percent}% "),
    ]
    .into_iter()
    .find(|t| wrap::columns(t) <= width)
    .unwrap_or_default();
    Line::from(text).right_aligned()
}

/// A part of the status bar, by what goes first on a screen too narrow
/// for all of them (after the source, which gives way to its file name
/// first, and the filter's middle): the revision, the help hint, the live
/// status, the position, the filter, a wait for the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Revision,
    Hint,
    Live,
    Position,
    Filter,
    Waiting,
    Source,
}

fn render_status(frame: &mut Frame, area: Rect, app: &App) {
    let mut parts = vec![(Field::Source, app.source.clone())];
    let (position, total) = app.position();
    let filter_text = |prefix: &str, matched: &str| format!("filter {prefix} · {matched}");
    let mut filter = None;
    if let Some(f) = &app.pager.filter {
        let matched = app.matched_text();
        // Not `prefix: N keys`: a prefix ending in `:` read `user:: 3 keys`.
        let prefix = f.display();
        parts.push((Field::Filter, filter_text(&prefix, &matched)));
        filter = Some((prefix, matched));
    }
    let at = match (position, total, &app.stats) {
        (Some(at), Some(total), _) => {
            Some(format!("key {} of {}", thousands(at), thousands(total)))
        }
        (_, _, Some(s)) if app.pager.filter.is_none() => {
            Some(format!("{} {}", thousands(s.keys), plural(s.keys, "key")))
        }
        (_, _, Some(_)) => None,
        (_, _, None) => Some("… keys".to_string()),
    };
    parts.extend(at.map(|at| (Field::Position, at)));
    if let Some(s) = &app.stats {
        parts.push((Field::Revision, format!("revision {}", s.revision)));
    }
    if let Some(live) = &app.live {
        parts.push((Field::Live, live.text()));
    }
    if let Some(secs) = app.waiting {
        parts.push((Field::Waiting, format!("waiting for the source ({secs}s)…")));
    }
    // In the editor and its dialogs `?` and `q` are typed, not keys.
    let editing = matches!(
        app.mode,
        Mode::Editor { .. } | Mode::InvalidJson { .. } | Mode::Conflict(_)
    );
    if !editing {
        parts.push((Field::Hint, "? help · q quit".to_string()));
    }
    let width = usize::from(area.width);
    let bar = |parts: &[(Field, String)]| {
        let texts: Vec<&str> = parts.iter().map(|(_, t)| t.as_str()).collect();
        format!(" {}", texts.join(" │ "))
    };
    let fits = |parts: &[(Field, String)]| wrap::columns(&bar(parts)) <= width;
    // On a narrow screen the source gives way first (a path is long): its
    // last part, then nothing, so the position and the keys stay in view.
    if !fits(&parts) {
        let short = app.source.rsplit('/').find(|p| !p.is_empty());
        parts[0].1 = short.unwrap_or(&app.source).to_string();
        if !fits(&parts) {
            parts.remove(0);
        }
    }
    // Then a long filter loses its middle, so the live status and the
    // help hint after it stay in view (they were pushed off the screen).
    if let Some((prefix, matched)) = &filter
        && !fits(&parts)
        && let Some(i) = parts.iter().position(|(f, _)| *f == Field::Filter)
    {
        let over = wrap::columns(&bar(&parts)) - width;
        let room = wrap::columns(prefix).saturating_sub(over).max(8);
        parts[i].1 = filter_text(&fit_middle(prefix, room), matched);
    }
    // Then whole parts go, by [`Field`]; the last one left is cut at a
    // word, ending in `…` (`key 100,015 of 100,` read as a number).
    while !fits(&parts) && parts.len() > 1 {
        let lowest = (0..parts.len()).min_by_key(|&i| parts[i].0);
        parts.remove(lowest.unwrap_or(0));
    }
    if let [(_, only)] = &mut parts[..] {
        *only = fit_words(only, width.saturating_sub(1));
    }
    frame.render_widget(
        Paragraph::new(bar(&parts)).style(app.config.theme.status_bar()),
        area,
    );
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn render_message(frame: &mut Frame, area: Rect, app: &App) {
    if let Mode::Prompt { kind, input } = &app.mode {
        let full = input.text();
        let mut label_style = Style::new().add_modifier(Modifier::BOLD);
        let label = match kind {
            PromptKind::Seek => "seek to key: ".to_string(),
            PromptKind::Filter => "filter (prefix or glob *?[]): ".to_string(),
            // Said while it is typed: Enter would refuse it.
            PromptKind::NewKey => match super::keys::parse_key(&full).len() {
                n if n > MAX_KEY_BYTES => {
                    label_style = app.config.theme.error();
                    format!("new key ({n} bytes, over {MAX_KEY_BYTES}): ")
                }
                _ => "new key: ".to_string(),
            },
        };
        // Columns, not characters: `日` takes two.
        let (_, x) = softwrap::locate(&full, input.col, usize::MAX);
        // Text wider than the line scrolls: the cursor stays in view, and
        // `…` in front says that text is hidden before it.
        let room = usize::from(area.width).saturating_sub(label.chars().count() + 1);
        let (text, x) = if x < room {
            (full, x)
        } else {
            let hide = x + 2 - room;
            let mut hidden = 0;
            let mut rest = String::from("…");
            for (g, w) in wrap::clusters(&full) {
                if hidden < hide {
                    hidden += w;
                } else {
                    rest.push_str(g);
                }
            }
            (rest, (x + 1).saturating_sub(hidden))
        };
        // The old text, selected: typing replaces it.
        let text = if input.selected {
            Span::styled(text, Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Span::raw(text)
        };
        let col = label.chars().count() + x;
        let line = Line::from(vec![Span::styled(label, label_style), text]);
        frame.render_widget(Paragraph::new(line), area);
        let x = area.x
            + u16::try_from(col)
                .unwrap_or(u16::MAX)
                .min(area.width.saturating_sub(1));
        frame.set_cursor_position(Position::new(x, area.y));
        return;
    }
    let theme = app.config.theme;
    let (prefix, style) = if app.status.error {
        ("error: ", theme.error())
    } else {
        ("", theme.ok())
    };
    let text = if app.status.text.is_empty() {
        String::new()
    } else {
        let short = app.status.short.as_ref().map(|s| format!("{prefix}{s}"));
        fit_status(
            &format!("{prefix}{}", app.status.text),
            short.as_deref(),
            usize::from(area.width),
        )
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

/// A box of `width` × `height` in the middle of the screen, cleared.
pub(super) fn popup(frame: &mut Frame, width: u16, height: u16) -> Rect {
    popup_in(frame, frame.area(), width, height)
}

/// A box of `width` × `height` in the middle of `area`, cleared.
fn popup_in(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    use ratatui::buffer::CellWidth;
    let area = area.centered(Constraint::Length(width), Constraint::Length(height));
    // A wide character just left of the box (a CJK key in the list)
    // covers the box's first column on the terminal, its border with it:
    // it goes, as the rest of what the box covers does.
    if let Some(x) = area.x.checked_sub(1) {
        let buffer = frame.buffer_mut();
        for y in area.top()..area.bottom() {
            let cell = &mut buffer[(x, y)];
            if cell.symbol().cell_width() > 1 {
                cell.set_symbol(" ");
            }
        }
    }
    frame.render_widget(Clear, area);
    area
}

/// The help's rows for a screen of `size`, and how many of them fit: it
/// goes above the status lines, which say meanwhile what the source is
/// doing (a wait, an error); on a 24-row terminal all of it fits there.
pub fn help_rows(size: Rect) -> (Vec<String>, usize) {
    let a = areas(size, false);
    let above = a.list.union(a.value);
    // Descriptions wrap (by words, under their column) on a narrow screen;
    // below 12 columns for them (a terminal under 33 wide) each key's
    // description goes under it, indented, the whole width (a column of
    // at least 12 was clipped at the box's edge).
    const KEYS: usize = 18;
    const MIN_WHAT: usize = 12;
    const INDENT: usize = 3;
    let inner = usize::from(above.width.saturating_sub(3));
    let mut lines: Vec<String> = Vec::new();
    if inner < KEYS + MIN_WHAT {
        for (keys, what) in BINDINGS {
            if !keys.is_empty() {
                lines.push(format!(" {keys}"));
            }
            let indent = if keys.is_empty() { 1 } else { INDENT };
            let rows = wrap::words(what, inner.saturating_sub(indent).max(1));
            lines.extend(rows.into_iter().map(|r| format!("{:indent$}{r}", "")));
        }
        let room = usize::from(above.height.saturating_sub(2)).max(1);
        return (lines, room);
    }
    let what_width = inner - KEYS;
    // The notes without keys take the whole width, all alike, when one
    // would wrap under the description column.
    let notes_wide = BINDINGS
        .iter()
        .any(|(keys, what)| keys.is_empty() && wrap::columns(what) > what_width);
    for (keys, what) in BINDINGS {
        if keys.is_empty() && notes_wide {
            lines.extend(
                wrap::words(what, inner.saturating_sub(1))
                    .into_iter()
                    .map(|r| format!(" {r}")),
            );
            continue;
        }
        for (i, row) in wrap::words(what, what_width).into_iter().enumerate() {
            let keys = if i == 0 { *keys } else { "" };
            lines.push(format!(" {keys:<16} {row}"));
        }
    }
    let room = usize::from(above.height.saturating_sub(2)).max(1);
    (lines, room)
}

/// The help, from its row `scroll` when it does not fit (it scrolls as
/// the value pane does, and its footer says where it is).
fn render_help(frame: &mut Frame, app: &App, scroll: usize) {
    let size = frame.area();
    let above = {
        let a = areas(size, false);
        a.list.union(a.value)
    };
    let (lines, room) = help_rows(size);
    let total = lines.len();
    let scroll = scroll.min(total.saturating_sub(room));
    let width = lines.iter().map(|l| wrap::columns(l)).max();
    let width = u16::try_from(width.unwrap_or(0) + 3).unwrap_or(u16::MAX);
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(scroll)
        .take(room)
        .map(Line::from)
        .collect();
    let height = u16::try_from(shown.len() + 2).unwrap_or(u16::MAX);
    let area = popup_in(frame, above, width, height);
    let block = if total > room {
        let last = scroll + room;
        let inner = usize::from(area.width.saturating_sub(2));
        let footer = footer((scroll + 1, last, total), last * 100 / total, inner);
        pane(" Keys · j k scroll · other keys close ", area, true, app).title_bottom(footer)
    } else {
        pane(" Keys · any key closes ", area, true, app)
    };
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

/// The delete dialog. Its `y` / `n` line is always shown, since it is
/// what answers a destructive question: a long key is cut in its middle,
/// and on a short screen the spacer goes first, then the rows of the note
/// and of the question from their end.
fn render_confirm(frame: &mut Frame, app: &App, key: &[u8], revision: u64, now: Option<Meanwhile>) {
    let width = frame.area().width.min(60);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let room = usize::from(frame.area().height.saturating_sub(2));
    // A tiny screen: Esc still keeps it, unnamed.
    let forms: [&[&str]; 2] = [
        &["y: delete    n / Esc: keep it"],
        &["y: delete    n: keep it"],
    ];
    let keys = keys_in(&forms, inner, room).concat();
    let shown = fit_middle(&display_key(key), inner / 2);
    let question = wrap::words(&format!("Delete {shown} (revision {revision})?"), inner);
    let note = now.map(|now| match now {
        Meanwhile::Changed(now) => {
            format!("It changed meanwhile (now revision {now}): y is refused.")
        }
        Meanwhile::Deleted { expired: false } => {
            "It was deleted meanwhile by someone else: nothing to delete.".to_string()
        }
        Meanwhile::Deleted { expired: true } => {
            "It expired meanwhile: nothing to delete.".to_string()
        }
    });
    let note = note.map_or_else(Vec::new, |n| wrap::words(&n, inner));
    let mut left = room.saturating_sub(keys.len());
    let mut rows: Vec<Line> = Vec::new();
    for part in [question, note] {
        let part = cut_rows(part, left, inner);
        left -= part.len();
        rows.extend(part.into_iter().map(Line::from));
    }
    if left > 0 {
        rows.push(Line::from(""));
    }
    rows.extend(keys.into_iter().map(Line::from));
    let height = u16::try_from(rows.len() + 2).unwrap_or(u16::MAX);
    let area = popup(frame, width, height);
    let block = pane(" Confirm delete ", area, true, app);
    // Not wrapped by ratatui: the rows are laid out (and counted) here.
    frame.render_widget(Paragraph::new(rows).block(block), area);
}

/// At most `room` of `rows` (of `inner` columns): the last one kept ends
/// in `…` when rows were left out (after a whole word, see [`fit_words`]).
fn cut_rows(mut rows: Vec<String>, room: usize, inner: usize) -> Vec<String> {
    if rows.len() > room {
        let rest = rows.split_off(room.saturating_sub(1)).join(" ");
        if room > 0 {
            rows.push(fit_words(&rest, inner));
        }
    }
    rows
}

/// `10000000` as `10,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(10_000_000), "10,000,000");
    }
}
