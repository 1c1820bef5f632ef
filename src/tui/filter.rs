//! The filter typed at `f`: a prefix, or a glob pattern in the syntax of
//! Redis's `SCAN … MATCH` (see `glob.rs`).
//!
//! Text without an unescaped `*`, `?` or `[` is a prefix, as it always
//! was: `user:` shows the keys starting with `user:`. Text with one is a
//! pattern the whole key must match: `user:*:email`, or `*session*` for
//! the keys containing `session`. Typed, the text reads the escapes of a
//! key (`keys.rs`: `\\` is one backslash, `\xNN` any byte, `\n`…, any other
//! backslash kept as typed), plus `\*`, `\?`, `\[` and `\]` for those
//! characters themselves. So a key is typed into a filter as it is shown,
//! and its backslashes stay backslashes, in a pattern too.
//!
//! Only the keys starting with a filter's literal prefix are read (the
//! bytes before the pattern's first `*`, `?` or `[`): `user:*` reads the
//! keys of `user:`, `*x` reads them all.

use super::glob::Glob;
use super::keys::{display_key, escape};

/// Bytes that have a meaning in a pattern, escaped when meant literally.
const SPECIAL: &[u8] = b"*?[]\\";
/// The characters whose escape (`\*`) the filter text reads itself.
const ESCAPED: &[u8] = b"*?[]";

/// A filter on the key list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The keys starting with these bytes.
    Prefix(Vec<u8>),
    /// The keys matching the pattern, whole.
    Glob(Glob),
}

impl Filter {
    /// The filter `text` stands for; `None` for empty text (all keys).
    pub fn parse(text: &str) -> Option<Filter> {
        if text.is_empty() {
            return None;
        }
        let glob = Glob::new(&pattern(text));
        Some(match glob.is_literal() {
            true => Filter::Prefix(glob.literal_prefix()),
            false => Filter::Glob(glob),
        })
    }

    /// Whether `key` passes the filter.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            Filter::Prefix(p) => key.starts_with(p),
            Filter::Glob(g) => g.matches(key),
        }
    }

    /// The bytes every key that passes starts with: the range to read.
    pub fn scan_prefix(&self) -> Vec<u8> {
        match self {
            Filter::Prefix(p) => p.clone(),
            Filter::Glob(g) => g.literal_prefix(),
        }
    }

    /// The pattern, for a filter that is one.
    pub fn glob(&self) -> Option<&Glob> {
        match self {
            Filter::Prefix(_) => None,
            Filter::Glob(g) => Some(g),
        }
    }

    /// The filter as text, which [`Filter::parse`] reads back as it is: a
    /// prefix as its keys are shown (with `\*`, `\?` and `\[` for those
    /// bytes, which would make it a pattern), a pattern as typed.
    pub fn display(&self) -> String {
        match self {
            Filter::Prefix(p) => {
                let mut out = String::new();
                let mut from = 0;
                for (i, &b) in p.iter().enumerate() {
                    if b"*?[".contains(&b) {
                        out.push_str(&display_key(&p[from..i]));
                        out.push('\\');
                        out.push(char::from(b));
                        from = i + 1;
                    }
                }
                out.push_str(&display_key(&p[from..]));
                out
            }
            Filter::Glob(g) => display_pattern(g.source()),
        }
    }

    /// The title's words: `starting with` or `matching`.
    pub fn verb(&self) -> &'static str {
        match self {
            Filter::Prefix(_) => "starting with",
            Filter::Glob(_) => "matching",
        }
    }
}

/// The pattern, in Redis's syntax, of the filter text: escapes decoded as
/// a key's are, every byte meant literally escaped with `\`.
fn pattern(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let literal = |out: &mut Vec<u8>, b: u8| {
        if SPECIAL.contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.get(i) {
            Some(&c) if ESCAPED.contains(&c) => {
                out.extend([b'\\', c]);
                i += 1;
            }
            _ => match escape(&bytes[i..]) {
                Some((decoded, used)) => {
                    decoded.into_iter().for_each(|d| literal(&mut out, d));
                    i += used;
                }
                // Kept as typed: a backslash.
                None => literal(&mut out, b'\\'),
            },
        }
    }
    out
}

/// A pattern made by [`pattern`] as text again.
fn display_pattern(source: &[u8]) -> String {
    let mut out = String::new();
    // Bytes shown as a key's are, gathered so that a character's bytes
    // are shown together.
    let mut run = Vec::new();
    let mut i = 0;
    while i < source.len() {
        match (source[i], source.get(i + 1)) {
            (b'\\', Some(&c)) if ESCAPED.contains(&c) => {
                out.push_str(&display_key(&std::mem::take(&mut run)));
                out.push('\\');
                out.push(char::from(c));
                i += 2;
            }
            (b'\\', Some(&c)) => {
                run.push(c);
                i += 2;
            }
            (b, _) => {
                run.push(b);
                i += 1;
            }
        }
    }
    out.push_str(&display_key(&run));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Filter {
        Filter::parse(text).unwrap()
    }

    #[test]
    fn text_without_a_glob_character_is_a_prefix_as_before() {
        assert_eq!(Filter::parse(""), None);
        assert_eq!(parse("user:"), Filter::Prefix(b"user:".to_vec()));
        // A key's escapes, as before: `\\` one backslash, others kept.
        assert_eq!(parse("a\\\\b"), Filter::Prefix(b"a\\b".to_vec()));
        assert_eq!(parse("c:\\dir"), Filter::Prefix(b"c:\\dir".to_vec()));
        assert_eq!(parse("k\\xff\\n"), Filter::Prefix(b"k\xff\n".to_vec()));
        // `]`, `^` and `-` mean something only in a class.
        assert_eq!(parse("a]^-"), Filter::Prefix(b"a]^-".to_vec()));
        // Escaped glob characters are themselves.
        assert_eq!(parse("a\\*\\?\\[\\]"), Filter::Prefix(b"a*?[]".to_vec()));
        assert!(parse("user:").matches(b"user:1") && !parse("user:").matches(b"use"));
    }

    #[test]
    fn text_with_one_is_a_pattern_on_whole_keys() {
        let f = parse("user:*:email");
        assert_eq!(f.scan_prefix(), b"user:");
        assert!(f.matches(b"user:17:email") && !f.matches(b"user:17:emails"));
        assert_eq!(parse("*x").scan_prefix(), b"");
        assert!(parse("*session*").matches(b"web:session:1"));
        assert!(parse("k?").matches(b"k1") && !parse("k?").matches(b"k12"));
        assert!(parse("[ab]*").matches(b"b7"));
    }

    /// Backslashes typed as a key's stay literal in a pattern; the four
    /// glob escapes make their character literal.
    #[test]
    fn escapes_in_a_pattern() {
        let f = parse("a\\\\b*");
        assert!(f.matches(b"a\\bc") && !f.matches(b"abc"));
        let f = parse("c:\\dir*");
        assert!(f.matches(b"c:\\dir\\x"));
        let f = parse("\\*lit*");
        assert!(f.matches(b"*lit1") && !f.matches(b"xlit1"));
        assert_eq!(f.scan_prefix(), b"*lit");
        let f = parse("k\\xff*");
        assert!(f.matches(b"k\xff\x01") && !f.matches(b"k\xfe"));
        // `\x2a` is a `*` byte, meant literally, as any escape of a key's.
        assert_eq!(parse("a\\x2a"), Filter::Prefix(b"a*".to_vec()));
        let f = parse("[\\]x]*");
        assert!(f.matches(b"]1") && f.matches(b"x") && !f.matches(b"y"));
    }

    #[test]
    fn shown_as_typed_and_read_back_the_same() {
        for text in [
            "user:",
            "user:*:email",
            "*session*",
            "a\\\\b*",
            "\\*lit*",
            "a\\*b",
            "k\\xff*",
            "é?[^a-z]\\]",
            "a]b",
            "x\\n*\\\"",
            "c:\\\\dir*",
        ] {
            let f = parse(text);
            let shown = f.display();
            assert_eq!(parse(&shown), f, "{text} shown as {shown}");
        }
        assert_eq!(parse("user:*:email").display(), "user:*:email");
        assert_eq!(parse("a\\*b").display(), "a\\*b");
        assert_eq!(parse("k\\xff*").display(), "k\\xff*");
        assert_eq!(parse("a\\\\b").display(), "a\\\\b");
        assert_eq!(parse("x\\*?").display(), "x\\*?");
    }
}
