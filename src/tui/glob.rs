//! Redis's glob patterns (`KEYS`, `SCAN … MATCH`), matched on bytes.
//!
//! The syntax is Redis's `stringmatchlen` (util.c): `*` any run of bytes,
//! `?` one byte, `[abc]` one of a class, `[^a]` one byte not in it, `[a-z]`
//! a range (either way round), and `\` takes the byte after it literally,
//! inside a class too. Everything else is itself. Its corners are kept: a
//! class without its `]` takes the rest of the pattern, `[]` matches
//! nothing and `[^]` any byte, a `-` just before the closing `]` makes a
//! range ending in `]`, and a `\` at the very end is itself. Two
//! differences, neither of which a key can meet or wants: ranges compare
//! bytes unsigned (Redis compares C `char`s, signed on most machines, so
//! its `[a-\xff]` matches no byte above `\x7f`), and `*` matches the empty
//! key (kvr keys are 1 to 4,096 bytes).
//!
//! No crate fits: `globset` and `glob` match paths (`/` is special, `{a,b}`
//! alternates, a class negates with `!`), `wildmatch` has no classes or
//! escapes and matches characters, not bytes. The pattern is compiled once
//! into [`Tok`]s, and matching is the usual single-backtrack loop: every
//! token but `*` takes exactly one byte, so going back to the last `*` is
//! enough, and a key is matched in O(pattern × key) at worst, with no
//! recursion for a hostile pattern to exhaust.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// `*`; runs of them are one.
    Star,
    /// `?`
    Any,
    /// A literal byte (escaped or not).
    Byte(u8),
    /// `[…]`: inclusive byte ranges, a lone byte being `(b, b)`.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Tok {
    fn accepts(&self, b: u8) -> bool {
        match self {
            Tok::Star | Tok::Any => true,
            Tok::Byte(c) => *c == b,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) != *negated
            }
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// The pattern as written, in Redis's syntax.
    source: Vec<u8>,
    toks: Vec<Tok>,
    /// A class opened and never closed, which took the rest of the pattern.
    unclosed: bool,
}

impl Glob {
    /// Compiles `pattern` (Redis's syntax; any bytes are a pattern).
    pub fn new(pattern: &[u8]) -> Glob {
        let p = pattern;
        let mut toks = Vec::new();
        let mut unclosed = false;
        let mut i = 0;
        while i < p.len() {
            let tok = match p[i] {
                b'*' if toks.last() == Some(&Tok::Star) => {
                    i += 1;
                    continue;
                }
                b'*' => Tok::Star,
                b'?' => Tok::Any,
                b'[' => {
                    let (tok, used, closed) = class(&p[i + 1..]);
                    unclosed |= !closed;
                    i += 1 + used;
                    toks.push(tok);
                    continue;
                }
                b'\\' if i + 1 < p.len() => {
                    i += 1;
                    Tok::Byte(p[i])
                }
                b => Tok::Byte(b),
            };
            toks.push(tok);
            i += 1;
        }
        Glob {
            source: pattern.to_vec(),
            toks,
            unclosed,
        }
    }

    /// Whether a `[` opened a class that no `]` closed: it took the rest
    /// of the pattern (Redis's rule), which is rarely what was meant.
    pub fn has_unclosed_class(&self) -> bool {
        self.unclosed
    }

    /// The pattern in Redis's syntax.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// The bytes every matching key starts with: the literal bytes before
    /// the first `*`, `?` or class. Only keys with this prefix need be read.
    pub fn literal_prefix(&self) -> Vec<u8> {
        self.toks
            .iter()
            .map_while(|t| match t {
                Tok::Byte(b) => Some(*b),
                _ => None,
            })
            .collect()
    }

    /// Whether the pattern is literal bytes only (no `*`, `?` or class).
    pub fn is_literal(&self) -> bool {
        self.toks.iter().all(|t| matches!(t, Tok::Byte(_)))
    }

    /// Whether `key`, whole, matches.
    pub fn matches(&self, key: &[u8]) -> bool {
        let toks = &self.toks;
        let (mut p, mut k) = (0, 0);
        // After the last `*` seen: the token after it and the key position
        // it was tried at; a mismatch retries with the `*` taking one more.
        let mut star: Option<(usize, usize)> = None;
        loop {
            match toks.get(p) {
                Some(Tok::Star) => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                Some(t) if k < key.len() && t.accepts(key[k]) => {
                    p += 1;
                    k += 1;
                    continue;
                }
                None if k == key.len() => return true,
                _ => {}
            }
            match star {
                Some((after, at)) if at < key.len() => {
                    star = Some((after, at + 1));
                    (p, k) = (after, at + 1);
                }
                _ => return false,
            }
        }
    }
}

/// A class, `rest` being the pattern after its `[`: the token and how many
/// bytes of `rest` it used (up to and with its `]`, or all of them).
fn class(rest: &[u8]) -> (Tok, usize, bool) {
    let negated = rest.first() == Some(&b'^');
    let mut i = usize::from(negated);
    let mut ranges = Vec::new();
    while let Some(&b) = rest.get(i) {
        match b {
            b'\\' if i + 1 < rest.len() => {
                ranges.push((rest[i + 1], rest[i + 1]));
                i += 2;
            }
            b']' => {
                return (Tok::Class { negated, ranges }, i + 1, true);
            }
            // As Redis: any byte, `]` included, after a `-` ends a range.
            a if i + 2 < rest.len() && rest[i + 1] == b'-' => {
                let z = rest[i + 2];
                ranges.push((a.min(z), a.max(z)));
                i += 3;
            }
            a => {
                ranges.push((a, a));
                i += 1;
            }
        }
    }
    (Tok::Class { negated, ranges }, i, false)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(pattern: &[u8], key: &[u8]) -> bool {
        Glob::new(pattern).matches(key)
    }

    #[test]
    fn an_unclosed_class_is_told() {
        assert!(Glob::new(b"user:[0").has_unclosed_class());
        assert!(Glob::new(b"user:[^").has_unclosed_class());
        assert!(!Glob::new(b"user:[0]").has_unclosed_class());
        assert!(!Glob::new(b"user:\\[0").has_unclosed_class());
        assert!(!Glob::new(b"user:[\\]]").has_unclosed_class());
    }

    #[test]
    fn star_and_question_mark_as_redis_documents_them() {
        // The examples of Redis's KEYS documentation.
        for key in [&b"hello"[..], b"hallo", b"hxllo"] {
            assert!(m(b"h?llo", key), "{key:?}");
        }
        for key in [&b"hllo"[..], b"heeeello", b"hello"] {
            assert!(m(b"h*llo", key), "{key:?}");
        }
        assert!(m(b"h[ae]llo", b"hello") && m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo") && m(b"h[^e]llo", b"hbllo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hallo") && m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
        assert!(!m(b"h?llo", b"hllo"), "? takes exactly one byte");
    }

    #[test]
    fn the_whole_key_must_match() {
        assert!(m(b"user:*:email", b"user:17:email"));
        assert!(m(b"user:*:email", b"user::email"));
        assert!(m(b"user:*:email", b"user:1:email:2:email"));
        assert!(!m(b"user:*:email", b"user:17:email2"));
        assert!(!m(b"user:*:email", b"xuser:17:email"));
        assert!(!m(b"user:", b"user:1"), "no star: the key itself");
        assert!(m(b"user:", b"user:"));
    }

    #[test]
    fn stars_at_either_end_and_in_runs() {
        assert!(m(b"*session*", b"session"));
        assert!(m(b"*session*", b"web:session:9"));
        assert!(!m(b"*session*", b"sess"));
        assert!(m(b"*:9", b"a:b:9") && !m(b"*:9", b"a:9:b"));
        assert!(m(b"a*", b"a") && m(b"a**", b"abc") && m(b"**", b"x"));
        assert!(m(b"*a*b*c*", b"xxaxxbxxcxx") && !m(b"*a*b*c*", b"xxcxxbxxaxx"));
        // Backtracking past several candidate positions.
        assert!(m(b"*aab", b"aaaaab") && !m(b"*aab", b"aaaaaba"));
        assert!(m(b"*", b"anything at all"));
    }

    #[test]
    fn the_empty_pattern_matches_only_the_empty_key() {
        assert!(m(b"", b""));
        assert!(!m(b"", b"a"));
        assert!(m(b"*", b""), "unlike Redis; kvr keys are never empty");
    }

    #[test]
    fn a_backslash_takes_the_next_byte_literally() {
        assert!(m(br"a\*", b"a*") && !m(br"a\*", b"ab"));
        assert!(m(br"\?", b"?") && !m(br"\?", b"x"));
        assert!(m(br"\[x]", b"[x]") && !m(br"\[x]", b"x"));
        assert!(m(br"a\\b", br"a\b"));
        assert!(m(br"\a", b"a"), "an escaped ordinary byte is itself");
        assert!(m(br"a\", br"a\"), "a backslash at the end is itself");
        assert!(!m(br"a\", b"a"));
    }

    #[test]
    fn classes_ranges_negation_and_their_corners() {
        assert!(m(b"[z-a]", b"m"), "a range either way round");
        assert!(m(b"[a-cx]", b"x") && m(b"[a-cx]", b"b") && !m(b"[a-cx]", b"d"));
        assert!(m(b"[^a-c]", b"d") && !m(b"[^a-c]", b"b"));
        assert!(m(br"[\]]", b"]") && m(br"[\-]", b"-") && m(br"[a\^]", b"^"));
        assert!(m(b"[-a]", b"-"), "a leading - is itself");
        // `[a-]` ends in a range from `]` to `a`, as in Redis, and the class
        // then runs on to the end of the pattern.
        assert!(m(b"[a-]", b"^") && m(b"[a-]", b"]") && !m(b"[a-]", b"-"));
        assert!(!m(b"[]", b"]") && !m(b"[]", b"a"), "[] matches nothing");
        assert!(!m(b"[]a", b"a") && m(b"[^]", b"q"), "[^] any byte");
        // No `]`: the class takes the rest of the pattern.
        assert!(m(b"x[abc", b"xb") && !m(b"x[abc", b"xbc"));
        assert!(!m(b"[", b"[") && !m(b"x[", b"x"));
        assert!(m(br"[a\", br"\") && m(br"[a\", b"a"));
        assert!(
            m(b"[?*]", b"*") && !m(b"[?*]", b"x"),
            "? and * are literal in a class"
        );
    }

    #[test]
    fn bytes_not_characters() {
        // `?` takes one byte: `é` is two.
        assert!(!m("?".as_bytes(), "é".as_bytes()));
        assert!(m("??".as_bytes(), "é".as_bytes()));
        assert!(m(b"k\xff*", b"k\xff\x00\xfe"));
        assert!(m(b"[\x80-\xff]", b"\xc3") && !m(b"[\x80-\xff]", b"a"));
        assert!(m(b"*\x00*", b"a\x00b") && !m(b"*\x00*", b"ab"));
        assert!(m(b"[^a]", b"\xff"));
    }

    #[test]
    fn the_literal_prefix_bounds_the_scan() {
        let prefix = |p: &[u8]| Glob::new(p).literal_prefix();
        assert_eq!(prefix(b"user:*:email"), b"user:");
        assert_eq!(prefix(b"*x"), b"");
        assert_eq!(prefix(b"ab?"), b"ab");
        assert_eq!(prefix(b"ab[cd]"), b"ab");
        assert_eq!(prefix(br"a\*b*"), b"a*b");
        assert_eq!(prefix(b"plain"), b"plain");
        assert!(Glob::new(br"a\*b").is_literal() && !Glob::new(b"a*").is_literal());
        assert!(!Glob::new(b"a[").is_literal());
    }

    /// A pattern that makes a naive recursive matcher take exponential
    /// time is matched at once.
    #[test]
    fn a_pathological_pattern_is_quick() {
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b".to_vec();
        let key = vec![b'a'; 4096];
        let t = std::time::Instant::now();
        assert!(!m(&pattern, &key));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
