//! Text fitted to a width, with `…` for what is left out: at its end
//! ([`fit`], [`fit_words`]), in its middle ([`fit_middle`], for keys), or
//! by clause ([`fit_message`], [`fit_status`], for status messages, which
//! keep what they say to do). By grapheme cluster and columns as drawn
//! (`wrap.rs`), so an emoji ZWJ sequence is shown whole or not at all.

use super::wrap;

/// `text` cut to `width` columns, its last one an ellipsis when cut; by
/// grapheme cluster, as the value pane wraps (`wrap.rs`), so an emoji
/// ZWJ sequence is shown whole or not at all.
pub fn fit(text: &str, width: usize) -> String {
    let total = wrap::columns(text);
    let cut = total > width;
    let room = if cut { width.saturating_sub(1) } else { width };
    let mut out = String::new();
    let mut used = 0;
    for (g, w) in wrap::clusters(text) {
        if used + w > room {
            break;
        }
        out.push_str(g);
        used += w;
    }
    if cut && width > 0 {
        out.push('…');
    }
    out
}

/// `text` cut to `width` columns as [`fit`] cuts it, but at the end of a
/// word (`first 256.0…`, not `first 256.0 Ki…`, where a cut number reads
/// as another number); mid-word only when its first word is too wide.
pub fn fit_words(text: &str, width: usize) -> String {
    if wrap::columns(text) <= width {
        return text.to_string();
    }
    let mut end = None;
    for (at, _) in text.match_indices(' ') {
        let head = text[..at].trim_end();
        if head.is_empty() {
            continue;
        }
        match wrap::columns(head) < width {
            true => end = Some(head),
            false => break,
        }
    }
    match end {
        Some(head) => format!("{head}…"),
        None => fit(text, width),
    }
}

/// `text` in `width` columns, cut in its middle when wider: `…` stands
/// for what is left out, so both ends show (keys that share a long prefix
/// differ at their end). By grapheme cluster, as [`fit`].
pub fn fit_middle(text: &str, width: usize) -> String {
    if wrap::columns(text) <= width {
        return text.to_string();
    }
    if width < 3 {
        return fit(text, width);
    }
    let room = width - 1;
    let clusters: Vec<(&str, usize)> = wrap::clusters(text).collect();
    // The end gets the odd column: it tells keys apart.
    let mut tail = clusters.len();
    let mut tail_used = 0;
    while tail > 0 && tail_used + clusters[tail - 1].1 <= room - room / 2 {
        tail -= 1;
        tail_used += clusters[tail].1;
    }
    let mut out = String::new();
    let mut used = tail_used;
    for &(g, w) in &clusters[..tail] {
        if used + w > room {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    clusters[tail..].iter().for_each(|&(g, _)| out.push_str(g));
    out
}

/// A status message in `width` columns. One too long is cut in the
/// middle, keeping its last clause (after the last `; `: what to do about
/// it, "press e to edit your text again", "use --server URL") whole when
/// that leaves [`MESSAGE_HEAD`] columns for its start; else cut at the
/// end, where what went wrong is said first. One of a single clause loses its middle, so that both ends
/// show (`deleted LLL…LLL (revision 7)`: cut at its end, a long key took
/// the revision with it).
pub fn fit_message(text: &str, width: usize) -> String {
    if wrap::columns(text) <= width {
        return text.to_string();
    }
    if let Some(kept) = keep_last_clause(text, width).or_else(|| keep_clause_end(text, width)) {
        return kept;
    }
    match text.contains("; ") {
        true => fit(text, width),
        false => fit_middle(text, width),
    }
}

/// What a message's start keeps beside its last clause: `error: cannot
/// read keys: F…` says what failed.
const MESSAGE_HEAD: usize = 20;

/// `text` (wider than `width`) with its start cut and its last clause
/// whole, when that leaves [`MESSAGE_HEAD`] columns for the start.
fn keep_last_clause(text: &str, width: usize) -> Option<String> {
    let at = text.rfind("; ")?;
    let tail = &text[at..];
    let tail_columns = wrap::columns(tail);
    (tail_columns + MESSAGE_HEAD <= width)
        .then(|| format!("{}{tail}", fit(&text[..at], width - tail_columns)))
}

/// `text` (wider than `width`) with [`MESSAGE_HEAD`] columns of its start
/// (a third of a wider line) and the end of its last clause, too long to
/// keep whole, on a line of at least twice that: `error: cannot read k…; …give that CA with --cacert
/// PEM`, where what to do comes last (cut at its end, a certificate's
/// message lost its fix on 80 and 100 columns).
fn keep_clause_end(text: &str, width: usize) -> Option<String> {
    let at = text.rfind("; ")?;
    if width < 2 * MESSAGE_HEAD {
        return None;
    }
    // A third of a wide line says more of what failed.
    let head = fit(&text[..at], MESSAGE_HEAD.max(width / 3));
    let room = width - wrap::columns(&head) - 2;
    Some(format!("{head}; {}", fit_start(&text[at + 2..], room)))
}

/// `text` cut at its start to `width` columns, its first one an ellipsis
/// when cut; by grapheme cluster, as [`fit`].
fn fit_start(text: &str, width: usize) -> String {
    if wrap::columns(text) <= width {
        return text.to_string();
    }
    let room = width.saturating_sub(1);
    let clusters: Vec<(&str, usize)> = wrap::clusters(text).collect();
    let (mut start, mut used) = (clusters.len(), 0);
    while start > 0 && used + clusters[start - 1].1 <= room {
        start -= 1;
        used += clusters[start].1;
    }
    let mut out = String::from(if width > 0 { "…" } else { "" });
    clusters[start..].iter().for_each(|&(g, _)| out.push_str(g));
    out
}

/// A status message in `width` columns, as [`fit_message`] fits it; but
/// one with a `short` form (what it says to do, in few words: `Esc again
/// drops, Ctrl-S saves`) shows that when it would lose what it says to do.
pub fn fit_status(text: &str, short: Option<&str>, width: usize) -> String {
    match short {
        Some(short) if wrap::columns(text) > width && keep_last_clause(text, width).is_none() => {
            fit_words(short, width)
        }
        _ => fit_message(text, width),
    }
}
