//! How keys (arbitrary bytes) are shown and typed in the browser.
//!
//! Shown: as the inside of the JSON string that `kvr range` prints and that
//! CLI and HTTP messages quote (`jsonl::show_key`), so a key looks the same
//! everywhere and can be copied between them: `\"`, `\\`, `\n`, `\t`, `\r`,
//! `\b`, `\f` and `\u00XX` for other control characters. Two additions keep
//! the screen safe and every key visible: DEL and the C1 controls, which
//! JSON may leave raw but a terminal may act on, are `\u007f`…`\u009f`; and
//! a byte that is not UTF-8, which no JSON string can hold (messages show
//! such a key whole as `b64:…`), is `\xNN`. Characters that are drawn as
//! nothing or reorder the text around them (bidirectional controls such as
//! U+202E, zero-width spaces, U+2028/U+2029, a BOM) are `\uXXXX` too: raw,
//! `zero-width:\u200b` looked like `zero-width:` and an override reversed
//! what followed it on terminals that lay out right-to-left text (found by
//! an audit). Typed (seek, filter, new key):
//! the same escapes are read back, plus `\/` and any `\uXXXX` (a surrogate
//! pair for characters beyond U+FFFF); any other backslash is kept
//! literally.

use std::fmt::Write;

/// The printable form of a key.
pub fn display_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if c.is_control() || invisible(c) => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Characters shown escaped because they draw as nothing or reorder the
/// text around them (see the module doc). Not the zero-width joiner, which
/// emoji sequences are made of, nor the non-joiner, which Persian writes.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// The bytes of a typed key; see the module doc for the escapes.
pub fn parse_key(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some((decoded, used)) = escape(&bytes[i + 1..])
        {
            out.extend_from_slice(&decoded);
            i += 1 + used;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The bytes an escape (the text after its backslash) stands for, and how
/// many bytes of `rest` it used; None if it is not one.
pub(super) fn escape(rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    let simple = match rest.first()? {
        b'\\' => b'\\',
        b'"' => b'"',
        b'/' => b'/',
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 8,
        b'f' => 12,
        b'x' => return Some((vec![hex(rest.get(1..3)?)? as u8], 3)),
        b'u' => return unicode(rest),
        _ => return None,
    };
    Some((vec![simple], 1))
}

/// `uXXXX`, or a surrogate pair `uD83D\uDE00`, as UTF-8.
fn unicode(rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    let first = hex(rest.get(1..5)?)?;
    let (c, used) = if (0xd800..0xdc00).contains(&first) {
        if rest.get(5..7)? != b"\\u" {
            return None;
        }
        let low = hex(rest.get(7..11)?)?;
        if !(0xdc00..0xe000).contains(&low) {
            return None;
        }
        let c = 0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00);
        (char::from_u32(c)?, 11)
    } else {
        (char::from_u32(first)?, 5)
    };
    Some((c.to_string().into_bytes(), used))
}

fn hex(digits: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(digits).ok()?;
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_binary_escaped_and_round_trips() {
        let key = b"a\\b\x00\xff\xe2\x82\xacz\n\"\x7f\xc2\x85".to_vec();
        let shown = display_key(&key);
        assert_eq!(shown, "a\\\\b\\u0000\\xff\u{20ac}z\\n\\\"\\u007f\\u0085");
        assert_eq!(parse_key(&shown), key);
    }

    /// Invisible and reordering characters are escaped, and read back;
    /// emoji joined by U+200D stay as they are.
    #[test]
    fn invisible_characters_are_escaped() {
        let key = "a\u{202e}b\u{200b}c\u{2028}d\u{feff}";
        let shown = display_key(key.as_bytes());
        assert_eq!(shown, "a\\u202eb\\u200bc\\u2028d\\ufeff");
        assert_eq!(parse_key(&shown), key.as_bytes());
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        assert_eq!(display_key(family.as_bytes()), family);
    }

    /// The browser shows a UTF-8 key as CLI and HTTP messages do, minus the
    /// quotes (and plus escapes for DEL and C1, which JSON leaves raw).
    #[test]
    fn shows_keys_as_the_messages_do() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            let key = format!("k{c}");
            let json = crate::jsonl::show_key(key.as_bytes());
            let shown = display_key(key.as_bytes());
            if ('\u{7f}'..='\u{9f}').contains(&c) {
                assert_eq!(shown, format!("k\\u{:04x}", u32::from(c)));
            } else {
                assert_eq!(format!("\"{shown}\""), json, "{c:?}");
            }
            assert_eq!(parse_key(&shown), key.as_bytes(), "{c:?}");
        }
    }

    #[test]
    fn reads_json_escapes_and_keeps_other_backslashes() {
        assert_eq!(parse_key("c:\\dir"), b"c:\\dir");
        assert_eq!(parse_key("\\x4"), b"\\x4");
        assert_eq!(parse_key("\\x41"), b"A");
        assert_eq!(parse_key("\\u0041\\/"), b"A/");
        assert_eq!(parse_key("\\ud83d\\ude00"), "😀".as_bytes());
        assert_eq!(parse_key("\\ud83d"), b"\\ud83d", "a lone surrogate");
        assert_eq!(parse_key("\\u12"), b"\\u12");
        assert_eq!(parse_key("\\x+1"), b"\\x+1");
    }
}
