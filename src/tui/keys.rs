//! How keys (arbitrary bytes) are shown and typed in the browser.
//!
//! Shown: valid UTF-8 as is, except that control characters and bytes that
//! are not UTF-8 become `\xNN` and a backslash becomes `\\`, so every key has
//! one unambiguous, printable form. Typed (seek, filter, new key): the same
//! escapes are read back; any other backslash is kept literally, so that
//! typing a Windows-like path does not need doubling.

use std::fmt::Write;

/// The printable form of a key.
pub fn display_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => escape_char(&mut out, c),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A control character as the `\xNN` escapes of its UTF-8 bytes.
fn escape_char(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        let _ = write!(out, "\\x{b:02x}");
    }
}

/// The bytes of a typed key: `\\` is a backslash, `\xNN` a byte.
pub fn parse_key(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'x')
                && let Some(b) = bytes.get(i + 2..i + 4).and_then(hex_byte)
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_binary_escaped_and_round_trips() {
        let key = b"a\\b\x00\xff\xe2\x82\xacz\n".to_vec();
        let shown = display_key(&key);
        assert_eq!(shown, "a\\\\b\\x00\\xff\u{20ac}z\\x0a");
        assert_eq!(parse_key(&shown), key);
    }

    #[test]
    fn lone_backslash_is_literal() {
        assert_eq!(parse_key("c:\\dir"), b"c:\\dir");
        assert_eq!(parse_key("\\x4"), b"\\x4");
        assert_eq!(parse_key("\\x41"), b"A");
    }
}
