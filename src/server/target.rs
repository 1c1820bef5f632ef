//! The request target as bytes: percent-decoding of paths and query
//! parameters, without any normalization.
//!
//! Keys are byte strings, so they are decoded from the raw target, never
//! through a UTF-8 `String`. Dot segments stay, slashes are not merged, `/`
//! inside a key path is part of the key, and `+` in a query is a literal
//! plus (not a space).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Display;

use crate::error::{Error, Result};

/// Decodes `%XX` escapes; any other byte stands for itself. Text without
/// escapes (most keys) is borrowed, not copied.
pub fn percent_decode<'a>(text: &'a str, what: &dyn Display) -> Result<Cow<'a, [u8]>> {
    let mut rest = text.as_bytes();
    if !rest.contains(&b'%') {
        return Ok(Cow::Borrowed(rest));
    }
    let mut out = Vec::with_capacity(rest.len());
    // The runs between escapes are copied whole (a key has none, mostly).
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..at]);
        // Two hex digits exactly: from_str_radix alone would take "+5".
        let hex = rest
            .get(at + 1..at + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        let Some(b) = hex else {
            return Err(Error::invalid(format!(
                "invalid percent-encoding in {what}: every % must be followed by two hex digits"
            )));
        };
        out.push(b);
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    Ok(Cow::Owned(out))
}

/// Bytes a client may leave unencoded in a key path (RFC 3986 unreserved
/// characters and `/`).
fn path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
}

/// Percent-encodes `bytes` for a path (`/` kept) or, with `in_query`, for a
/// query value (`/` encoded too).
pub fn percent_encode(bytes: &[u8], in_query: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if path_safe(b) && !(in_query && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The decoded parameters of a query string, in order.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Query {
    /// Parses `a=1&b=%FF`; names are ASCII, values any bytes. A name given
    /// twice (after decoding) is a 400 naming it: taking either value would
    /// silently turn `?prefix=z&prefix=` into another request.
    pub fn parse(query: Option<&str>) -> Result<Query> {
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = String::from_utf8_lossy(&percent_decode(name, &"a query parameter name")?)
                .into_owned();
            if !seen.insert(name.clone()) {
                return Err(Error::invalid(format!(
                    "repeated query parameter {name:?}; give each parameter once"
                )));
            }
            let value =
                percent_decode(value, &format_args!("query parameter {name}"))?.into_owned();
            pairs.push((name, value));
        }
        Ok(Query { pairs })
    }

    /// Refuses a parameter not in `allowed`, naming it, so that a typo
    /// (`prefx=`) is a 400 instead of a silently different answer.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        let Some((name, _)) = self
            .pairs
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        else {
            return Ok(());
        };
        let takes = if allowed.is_empty() {
            "this route takes no query parameters".to_string()
        } else {
            format!("this route takes {}", allowed.join(", "))
        };
        Err(Error::invalid(format!(
            "unknown query parameter {name:?}; {takes}"
        )))
    }

    /// The parameters but `without`, as one canonical text for a request's
    /// fingerprint: sorted by name, `name=value` joined by `&`, the value's
    /// bytes as they are but `%`, `&`, `=` and bytes outside printable
    /// ASCII as `%XX`. So the same parameters spelt another way (another
    /// order, escapes, the key in the path or as `?key=`) are the same
    /// request, and a query as clients usually write it (`ttl=10`) is its
    /// own canonical text, as earlier releases fingerprinted it.
    pub fn canonical(&self, without: &str) -> String {
        let mut pairs: Vec<&(String, Vec<u8>)> =
            self.pairs.iter().filter(|(n, _)| n != without).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        for (name, value) in pairs {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            for &b in value {
                match b {
                    b'%' | b'&' | b'=' => out.push_str(&format!("%{b:02X}")),
                    0x21..=0x7e => out.push(char::from(b)),
                    _ => out.push_str(&format!("%{b:02X}")),
                }
            }
        }
        out
    }

    /// The value of `name` (given at most once: see [`Query::parse`]).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// `name` as a whole number. One too large for a `u64` is refused as
    /// what it is: no revision, id or duration reaches it, so it is a
    /// typo, and reading it as `u64::MAX` would make a watch from it wait
    /// for ever and a page's limit be misquoted.
    pub fn number(&self, name: &str) -> Result<Option<u64>> {
        self.whole_number(name, false)
    }

    /// `name` as a count of items, where one too large for a `u64` reads
    /// as `u64::MAX`: more than any store holds (a stream's `limit` takes
    /// any positive number, SPEC).
    pub fn count(&self, name: &str) -> Result<Option<u64>> {
        self.whole_number(name, true)
    }

    fn whole_number(&self, name: &str, saturate: bool) -> Result<Option<u64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(v).unwrap_or("");
        // Digits only, as `ttl` is read: `+5` is no whole number either
        // (Rust's parse takes a sign).
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(format!(
                "query parameter {name} must be a whole number, not {:?}",
                String::from_utf8_lossy(v)
            )));
        }
        match text.parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) if saturate => Ok(Some(u64::MAX)),
            Err(_) => Err(Error::invalid(format!(
                "query parameter {name} is {text}, more than the largest number it \
                 takes ({})",
                u64::MAX
            ))),
        }
    }

    /// `name` as a boolean: `true`/`1` or `false`/`0` (absent: false).
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None | Some(b"false") | Some(b"0") => Ok(false),
            Some(b"true") | Some(b"1") | Some(b"") => Ok(true),
            Some(v) => Err(Error::invalid(format!(
                "query parameter {name} must be true or false (or 1 or 0; given bare, \
                 ?{name}, it is true), not {:?}",
                String::from_utf8_lossy(v)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_keeps_everything() {
        assert_eq!(
            percent_decode("a/../b%2F%ff+", &"k").unwrap().as_ref(),
            b"a/../b/\xff+"
        );
        // Text without escapes is borrowed as it is.
        assert!(matches!(
            percent_decode("key:1/x", &"k"),
            Ok(Cow::Borrowed(b"key:1/x"))
        ));
        assert!(percent_decode("%zz", &"k").is_err());
    }

    #[test]
    fn canonical_queries_name_the_same_parameters_alike() {
        let c = |q: &str| Query::parse(Some(q)).unwrap().canonical("key");
        assert_eq!(c("ttl=10"), "ttl=10");
        assert_eq!(c(""), "");
        assert_eq!(c("key=k&ttl=10"), "ttl=10");
        assert_eq!(c("start=a&end=b"), c("end=b&start=%61"));
        // Escaped separators stay apart from real ones.
        assert_ne!(c("end=b%26start%3Da"), c("start=a&end=b"));
        assert_eq!(c("prefix=%25%20%FF"), "prefix=%25%20%FF");
        assert!(percent_decode("%f", &"k").is_err());
        let q = Query::parse(Some("key=%00+b&limit=5")).unwrap();
        assert_eq!(q.get("key"), Some(&b"\x00+b"[..]));
        assert_eq!(q.number("limit").unwrap(), Some(5));
        let huge = Query::parse(Some("from_revision=18446744073709551616")).unwrap();
        let err = huge.number("from_revision").unwrap_err().to_string();
        assert!(err.contains("18446744073709551616, more than"), "{err}");
        assert_eq!(huge.count("from_revision").unwrap(), Some(u64::MAX));
        let max = Query::parse(Some("r=18446744073709551615")).unwrap();
        assert_eq!(max.number("r").unwrap(), Some(u64::MAX));
        assert!(
            Query::parse(Some("limit=x"))
                .unwrap()
                .number("limit")
                .is_err()
        );
    }

    #[test]
    fn unknown_parameters_are_named() {
        let q = Query::parse(Some("prefix=a&prefx=z")).unwrap();
        assert!(q.only(&["prefix", "prefx"]).is_ok());
        let err = q.only(&["prefix", "limit"]).unwrap_err().to_string();
        assert!(
            err.contains("\"prefx\"") && err.contains("prefix, limit"),
            "{err}"
        );
        assert!(Query::parse(Some("x")).unwrap().only(&[]).is_err());
        assert!(Query::parse(None).unwrap().only(&[]).is_ok());
    }

    #[test]
    fn repeated_parameters_are_named() {
        for query in [
            "prefix=z&prefix=",
            "a=1&limit=2&limit=2",
            "key&key",
            "pre%66ix=a&prefix=b",
        ] {
            let err = Query::parse(Some(query)).unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{query}");
            assert!(
                err.to_string().contains("repeated query parameter"),
                "{err}"
            );
        }
        let err = Query::parse(Some("a=1&limit=2&limit=3")).unwrap_err();
        assert!(err.to_string().contains("\"limit\""), "{err}");
        // Empty parts are not parameters.
        assert!(Query::parse(Some("a=1&&b=2&")).is_ok());
    }

    #[test]
    fn encoding_round_trips() {
        let key = b"a b/\xff%+.";
        assert_eq!(percent_encode(key, false), "a%20b/%FF%25%2B.");
        assert_eq!(
            percent_decode(&percent_encode(key, true), &"k")
                .unwrap()
                .as_ref(),
            key
        );
    }

    #[test]
    fn a_sign_after_percent_is_not_a_hex_digit() {
        assert!(percent_decode("%+5", &"k").is_err());
        assert!(percent_decode("%-5", &"k").is_err());
    }

    /// The decoding a client may rely on: `%` and two hex digits is that
    /// byte, anything else stands for itself, a lone `%` is an error.
    fn reference(text: &str) -> Option<Vec<u8>> {
        let b = text.as_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < b.len() {
            if b[i] == b'%' {
                let h = b.get(i + 1..i + 3)?;
                let digit = |c: u8| (c as char).to_digit(16);
                out.push((digit(h[0])? * 16 + digit(h[1])?) as u8);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        Some(out)
    }

    proptest::proptest! {
        #[test]
        fn decoding_matches_the_reference_and_never_panics(text in "(%[0-9a-fA-F+ -]{0,2}|[^%]{0,3}|\\PC){0,12}") {
            match (percent_decode(&text, &"k"), reference(&text)) {
                (Ok(got), Some(want)) => proptest::prop_assert_eq!(got.as_ref(), want.as_slice()),
                (Err(Error::Invalid { .. }), None) => {}
                (got, want) => proptest::prop_assert!(false, "{text:?}: {got:?} vs {want:?}"),
            }
        }

        #[test]
        fn any_bytes_round_trip_in_paths_and_queries(key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let encoded = percent_encode(&key, false);
            proptest::prop_assert_eq!(percent_decode(&encoded, &"k").unwrap().into_owned(), key.clone());
            let query = format!("a=1&key={}&b", percent_encode(&key, true));
            let q = Query::parse(Some(&query)).unwrap();
            proptest::prop_assert_eq!(q.get("key"), Some(key.as_slice()));
        }

        #[test]
        fn any_query_string_parses_or_is_invalid(text in "\\PC{0,40}") {
            if let Err(e) = Query::parse(Some(&text)) {
                let invalid = matches!(e, Error::Invalid { .. });
                proptest::prop_assert!(invalid);
            }
            if let Ok(q) = Query::parse(Some(&text)) {
                let _ = q.number("limit");
                let _ = q.flag("reverse");
            }
        }
    }
}
