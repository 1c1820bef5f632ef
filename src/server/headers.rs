//! Request headers that are lists (RFC 9110 section 5.6.1): `Accept` and
//! the conditional `If-Match` / `If-None-Match`.
//!
//! A list sent on several header lines means the lines joined with commas
//! (RFC 9110 section 5.3), so every reader here takes all the lines of its
//! header; empty list elements are ignored (section 5.6.1.2). A line that
//! is not visible ASCII is a 400 for the conditional headers (a condition
//! is never dropped silently) and ignored for `Accept`.

use http::header::{ACCEPT, IF_MATCH, IF_NONE_MATCH};
use http::{HeaderMap, HeaderName};

use crate::error::{Error, Result};

/// The media type of an NDJSON stream.
pub const NDJSON: &str = "application/x-ndjson";
/// The media type of a JSON page.
const JSON: &str = "application/json";

/// A header's name as RFC 9110 spells it, for messages (`HeaderName`
/// keeps names in lower case).
fn spelt(name: &HeaderName) -> &'static str {
    match name.as_str() {
        "if-match" => "If-Match",
        "if-none-match" => "If-None-Match",
        _ => "a conditional header",
    }
}

/// The elements of list header `name` over all its lines, `None` when it
/// is absent.
fn elements(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Vec<String>>> {
    let mut lines = headers.get_all(name).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for line in lines {
        let text = line.to_str().map_err(|_| {
            Error::invalid(format!(
                "{} must be visible ASCII (entity tags in quotes)",
                spelt(name)
            ))
        })?;
        split_list(text, &mut out);
    }
    Ok(Some(out))
}

/// Adds the non-empty elements of one line of a list header to `out`;
/// a comma inside a quoted string does not split. A quote left open runs
/// to the end of the line, which ends its element all the same (so that
/// `"2` is refused as the malformed tag it is, not taken as no tag).
fn split_list(text: &str, out: &mut Vec<String>) {
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in text.char_indices().chain([(text.len(), ',')]) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted || i == text.len() => {
                let element = text[start..i].trim();
                if !element.is_empty() {
                    out.push(element.to_string());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// `If-Match` or `If-None-Match` as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tags {
    /// `*`: any current representation.
    Any,
    /// Entity tags: `(weak, opaque tag without its quotes)`.
    List(Vec<(bool, String)>),
}

/// The tags of header `name`: `*` alone, or quoted entity tags (`W/` for
/// weak ones); anything else is a 400.
fn tags(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Tags>> {
    let Some(elements) = elements(headers, name)? else {
        return Ok(None);
    };
    let malformed = || {
        Error::invalid(format!(
            "{} must be * or entity tags such as \"N\" (a revision in quotes), not {}",
            spelt(name),
            elements.join(", ")
        ))
    };
    if elements.iter().any(|e| e == "*") {
        // `*` on two header lines is still `*` (a repeated tag counts
        // once); beside a tag it means nothing (RFC 9110: `*` or a list).
        return if elements.iter().all(|e| e == "*") {
            Ok(Some(Tags::Any))
        } else {
            Err(Error::invalid(format!(
                "{} must be * alone or entity tags such as \"N\" (a revision in quotes), \
                 not both: {}",
                spelt(name),
                elements.join(", ")
            )))
        };
    }
    let mut list = Vec::with_capacity(elements.len());
    for element in &elements {
        let (weak, tag) = match element.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, element.as_str()),
        };
        let opaque = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| !t.contains('"'))
            .ok_or_else(malformed)?;
        list.push((weak, opaque.to_string()));
    }
    Ok(Some(Tags::List(list)))
}

/// Whether an opaque tag is revision `revision`: digits only (Rust's
/// integer parser would also take a `+`), written as the server writes
/// its ETags: entity tags compare as strings (RFC 9110 section 8.8.3.2),
/// so `"02"` is not the tag `"2"`.
fn names_revision(opaque: &str, revision: u64) -> bool {
    revision_of(opaque) == Some(revision)
}

fn revision_of(opaque: &str) -> Option<u64> {
    let canonical = |t: &&str| !(t.len() > 1 && t.starts_with('0'));
    Some(opaque)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .filter(canonical)
        .and_then(|t| t.parse().ok())
}

/// Whether the request carries any of `names`. Most requests carry none
/// of the optional headers asked about: one pass over the few names a
/// request has costs less than a hashed lookup of each.
pub fn carries_any(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    headers.keys().any(|k| names.contains(k))
}

/// Whether the request has `If-Match` or `If-None-Match`.
fn conditional(headers: &HeaderMap) -> bool {
    carries_any(headers, &[IF_MATCH, IF_NONE_MATCH])
}

/// The conditions of a read (`GET` / `HEAD` of a key), parsed before the
/// key is looked up so that a malformed header is a 400 either way.
#[derive(Debug)]
pub struct ReadConditions {
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

/// What a read's conditions ask for, given the key's revision.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Send the value.
    Send,
    /// `If-None-Match` matched: 304.
    NotModified,
    /// `If-Match` did not match: 412 (RFC 9110 section 13.1.1); the text is
    /// the `expected` of the error.
    PreconditionFailed(String),
}

impl ReadConditions {
    pub fn parse(headers: &HeaderMap) -> Result<ReadConditions> {
        if !conditional(headers) {
            return Ok(ReadConditions {
                if_match: None,
                if_none_match: None,
            });
        }
        let if_match = tags(headers, &IF_MATCH)?;
        if if_match == Some(Tags::List(Vec::new())) {
            return Err(Error::invalid("If-Match is empty: give * or \"N\""));
        }
        // An empty one too, as on a write: most likely a tag variable
        // the client left empty, not a request for no condition.
        let if_none_match = tags(headers, &IF_NONE_MATCH)?;
        if if_none_match == Some(Tags::List(Vec::new())) {
            return Err(Error::invalid("If-None-Match is empty: give * or \"N\""));
        }
        Ok(ReadConditions {
            if_match,
            if_none_match,
        })
    }

    /// The outcome for a key at `revision`, in the order of RFC 9110
    /// section 13.2.2: `If-Match` (strong comparison), then `If-None-Match`
    /// (weak comparison; an empty list matches nothing).
    pub fn evaluate(&self, revision: u64) -> ReadOutcome {
        if let Some(Tags::List(list)) = &self.if_match
            && !list
                .iter()
                .any(|(weak, tag)| !weak && names_revision(tag, revision))
        {
            return ReadOutcome::PreconditionFailed(unmatched(list));
        }
        // A quoted tag that is not a revision ("abc") never matches, as
        // RFC 9110 compares tags; only a malformed one (unquoted) is a 400.
        match &self.if_none_match {
            Some(Tags::Any) => ReadOutcome::NotModified,
            Some(Tags::List(list)) if list.iter().any(|(_, t)| names_revision(t, revision)) => {
                ReadOutcome::NotModified
            }
            _ => ReadOutcome::Send,
        }
    }
}

/// The `expected` of a 412 for an `If-Match` list that did not match.
fn unmatched(list: &[(bool, String)]) -> String {
    let weak = match list.iter().any(|(weak, _)| *weak) {
        true => " (a weak tag, W/\"N\", never matches If-Match)",
        false => "",
    };
    match list {
        [(false, tag)] if revision_of(tag).is_some() => tag.clone(),
        _ => format!("one of {}{weak}", show(list)),
    }
}

/// The `expected` of a 412 for a write's [`WriteCondition::Never`], from
/// its `If-Match` as sent.
pub fn never_matched(headers: &HeaderMap) -> String {
    match tags(headers, &IF_MATCH) {
        Ok(Some(Tags::List(list))) => unmatched(&list),
        _ => "a revision".to_string(),
    }
}

/// The condition of a write to one key (`PUT`, `DELETE`), as the engine
/// can check it when the write applies: one revision, or presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition {
    None,
    /// `If-Match: *`: the key must exist.
    Exists,
    /// `If-Match: "N"` (the same tag on several lines or repeated counts
    /// once).
    Revision(u64),
    /// `If-None-Match: *`: the key must be absent.
    Absent,
    /// `If-Match` with tags none of which can match: weak ones (RFC 9110
    /// compares If-Match strongly) or ones not a revision (`"abc"`). It
    /// fails as a revision that does not match does: 412.
    Never,
}

impl WriteCondition {
    /// A write's condition: `If-Match: *` or one revision, or
    /// `If-None-Match: *`; both headers, a list of different revisions,
    /// an empty header or a malformed tag is a 400.
    pub fn parse(headers: &HeaderMap) -> Result<WriteCondition> {
        if !conditional(headers) {
            return Ok(WriteCondition::None);
        }
        let if_match = tags(headers, &IF_MATCH)?;
        let if_none_match = tags(headers, &IF_NONE_MATCH)?;
        match (if_match, if_none_match) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "give either If-Match or If-None-Match, not both",
            )),
            (Some(Tags::Any), None) => Ok(WriteCondition::Exists),
            (Some(Tags::List(list)), None) => one_revision(&list),
            (None, Some(Tags::Any)) => Ok(WriteCondition::Absent),
            (None, Some(Tags::List(list))) if list.is_empty() => Err(Error::invalid(
                "If-None-Match is empty: a write takes If-None-Match: * (only if absent)",
            )),
            (None, Some(Tags::List(list))) => Err(Error::invalid(format!(
                "If-None-Match on a write supports only *, not {}",
                show(&list)
            ))),
            (None, None) => Ok(WriteCondition::None),
        }
    }

    /// Refuses `If-Match` and `If-None-Match` on a write that has no
    /// single key to compare them with (`what`: a batch, a range delete):
    /// ignored, a client's guard would be dropped and the write done.
    pub fn refuse(headers: &HeaderMap, what: &str) -> Result<()> {
        match [IF_MATCH, IF_NONE_MATCH]
            .into_iter()
            .find(|h| headers.contains_key(h))
        {
            Some(header) => Err(Error::invalid(format!(
                "{} applies to the write of one key (PUT or DELETE /v1/kv/KEY), not to {what}; \
                 nothing was written",
                if header == IF_MATCH {
                    "If-Match"
                } else {
                    "If-None-Match"
                }
            ))),
            None => Ok(()),
        }
    }

    /// The condition as the fingerprint of an Idempotency-Key takes it:
    /// empty without one (so fingerprints of unconditional writes are
    /// those of earlier releases), else a canonical text, the same however
    /// the header was spelled or split.
    pub fn fingerprint_part(self) -> Vec<u8> {
        match self {
            WriteCondition::None => Vec::new(),
            WriteCondition::Exists => b"if-match:*".to_vec(),
            WriteCondition::Revision(n) => format!("if-match:{n}").into_bytes(),
            WriteCondition::Absent => b"if-none-match:*".to_vec(),
            WriteCondition::Never => b"if-match:never".to_vec(),
        }
    }
}

/// Entity tags as a header would list them.
fn show(list: &[(bool, String)]) -> String {
    let shown: Vec<String> = list
        .iter()
        .map(|(weak, t)| format!("{}\"{t}\"", if *weak { "W/" } else { "" }))
        .collect();
    shown.join(", ")
}

/// The one revision of a write's `If-Match` list; tags that can never
/// match (weak ones, ones not a revision) are left out, and a list of
/// only those is [`WriteCondition::Never`].
fn one_revision(list: &[(bool, String)]) -> Result<WriteCondition> {
    if list.is_empty() {
        return Err(Error::invalid("If-Match is empty: give * or \"N\""));
    }
    let mut revision = None;
    for (weak, tag) in list {
        let Some(n) = revision_of(tag).filter(|_| !weak) else {
            continue;
        };
        if revision.is_some_and(|r| r != n) {
            // The engine checks one revision when the write applies.
            return Err(Error::invalid(format!(
                "If-Match on a write takes one revision, not several: {}",
                show(list)
            )));
        }
        revision = Some(n);
    }
    Ok(revision.map_or(WriteCondition::Never, WriteCondition::Revision))
}

/// Whether a range read is to be an NDJSON stream: only when the client
/// lists `application/x-ndjson` itself with q > 0, ranked at least as high
/// as `application/json` (by the most specific range that matches it:
/// `application/json`, `application/*`, `*/*`). So `*/*`, a missing
/// `Accept` or a preference for JSON keep the bounded JSON page. Media
/// types compare case-insensitively (RFC 9110 section 8.3.1), q=0 means
/// "not acceptable" (section 12.4.2), and an element with a malformed q
/// is ignored.
pub fn wants_ndjson(headers: &HeaderMap) -> bool {
    // A line that is not visible ASCII is skipped: Accept never fails a
    // request.
    let mut elements = Vec::new();
    for line in headers.get_all(ACCEPT) {
        if let Ok(text) = line.to_str() {
            split_list(text, &mut elements);
        }
    }
    let ranges: Vec<(String, u16)> = elements.iter().filter_map(|e| media_range(e)).collect();
    let ndjson = ranges
        .iter()
        .filter(|(range, _)| range == NDJSON)
        .map(|(_, q)| *q)
        .max();
    // The most specific range matching JSON decides its weight.
    let json = [JSON, "application/*", "*/*"]
        .iter()
        .find_map(|want| {
            ranges
                .iter()
                .filter(|(range, _)| range == want)
                .map(|(_, q)| *q)
                .max()
        })
        .unwrap_or(0);
    ndjson.is_some_and(|q| q > 0 && q >= json)
}

/// One `Accept` element as `(type/subtype in lower case, q in
/// thousandths)`; `None` when it is malformed.
fn media_range(element: &str) -> Option<(String, u16)> {
    let mut parts = element.split(';');
    let range = parts.next()?.trim().to_ascii_lowercase();
    let (kind, sub) = range.split_once('/')?;
    if kind.is_empty() || sub.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
            // Parameters after q are accept-ext (RFC 7231); ignored.
            break;
        }
    }
    Some((range, q))
}

/// A qvalue (`0`, `0.5`, `1.000`: at most three decimals, 0 to 1) in
/// thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if !matches!(int, "0" | "1") || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    let q = u16::from(int == "1") * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;

    use super::*;

    /// Entity tags compare as strings: a revision written with a leading
    /// zero is not the server's tag.
    #[test]
    fn a_tag_with_a_leading_zero_is_not_a_revision() {
        assert!(names_revision("2", 2));
        assert!(names_revision("0", 0));
        assert!(!names_revision("02", 2));
        assert!(!names_revision("00", 0));
        assert_eq!(revision_of("10"), Some(10));
    }

    /// A header map with each `(name, value)` as its own line.
    fn lines(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn accept(values: &[&str]) -> bool {
        let pairs: Vec<(HeaderName, &str)> = values.iter().map(|v| (ACCEPT, *v)).collect();
        wants_ndjson(&lines(&pairs))
    }

    #[test]
    fn ndjson_only_when_listed_acceptable_and_not_ranked_below_json() {
        assert!(!accept(&[]));
        assert!(accept(&["application/x-ndjson"]));
        assert!(accept(&["Application/X-NDJSON"]));
        assert!(accept(&["application/x-ndjson; charset=utf-8"]));
        assert!(!accept(&["*/*"]));
        assert!(!accept(&["application/*"]));
        assert!(!accept(&["application/json;q=1, application/x-ndjson;q=0"]));
        assert!(!accept(&["application/json, application/x-ndjson;q=0.5"]));
        assert!(!accept(&["application/x-ndjson;q=0"]));
        assert!(!accept(&["application/x-ndjson;q=0.000"]));
        // A tie goes to the type the client named for the stream.
        assert!(accept(&["application/x-ndjson, application/json"]));
        assert!(accept(&["application/json;q=0.5, application/x-ndjson"]));
        assert!(accept(&[
            "application/x-ndjson;Q=0.5, application/json; q=0.4"
        ]));
        // JSON weighed by the most specific range that matches it.
        assert!(accept(&["application/x-ndjson;q=0.5, */*;q=0.1"]));
        assert!(!accept(&["application/x-ndjson;q=0.5, */*"]));
        assert!(!accept(&["application/x-ndjson;q=0.5, application/*"]));
        assert!(accept(&[
            "application/x-ndjson;q=0.5, application/json;q=0.2, */*"
        ]));
        assert!(accept(&["text/html, application/x-ndjson;q=0.9"]));
        // Malformed q: that element is ignored.
        for bad in ["2", "abc", "0.1234", "-1", "1.5", ""] {
            assert!(
                !accept(&[&format!("application/x-ndjson;q={bad}")]),
                "{bad}"
            );
        }
        // Several lines are one list.
        assert!(!accept(&["application/json", "application/x-ndjson;q=0.5"]));
        assert!(accept(&["application/json;q=0.1", "application/x-ndjson"]));
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0"), Some(0));
        for bad in ["1.001", "1.5", "2", "0.1234", "", ".5", "+1", "0x1"] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }

    fn write(pairs: &[(HeaderName, &str)]) -> Result<WriteCondition> {
        WriteCondition::parse(&lines(pairs))
    }

    #[test]
    fn a_write_condition_reads_every_line_alike() {
        use WriteCondition::*;
        let (m, n) = (header::IF_MATCH, header::IF_NONE_MATCH);
        assert_eq!(write(&[]).unwrap(), None);
        assert_eq!(write(&[(m.clone(), "\"7\"")]).unwrap(), Revision(7));
        assert_eq!(write(&[(m.clone(), " * ")]).unwrap(), Exists);
        assert_eq!(write(&[(n.clone(), "*")]).unwrap(), Absent);
        // One line or two: the same list, the same answer; `*` repeated
        // is `*` (it was refused as "must be *, not *, *").
        assert_eq!(
            write(&[(n.clone(), "*"), (n.clone(), "*")]).unwrap(),
            Absent
        );
        assert_eq!(write(&[(m.clone(), "*, *")]).unwrap(), Exists);
        assert_eq!(write(&[(m.clone(), "\"7\", \"7\"")]).unwrap(), Revision(7));
        assert_eq!(
            write(&[(m.clone(), "\"7\""), (m.clone(), "\"7\"")]).unwrap(),
            Revision(7)
        );
        for pairs in [
            vec![(m.clone(), "\"7\", \"1\"")],
            vec![(m.clone(), "\"7\""), (m.clone(), "\"1\"")],
            vec![(m.clone(), "*, \"1\"")],
            vec![(m.clone(), "*"), (m.clone(), "\"1\"")],
            vec![(m.clone(), "7")],
            vec![(m.clone(), "")],
            vec![(m.clone(), " , ")],
            vec![(n.clone(), "\"7\"")],
            vec![(n.clone(), "")],
            vec![(m.clone(), "*"), (n.clone(), "*")],
        ] {
            assert!(
                matches!(write(&pairs), Err(Error::Invalid { .. })),
                "{pairs:?}"
            );
        }
        // Tags that can never match: a 412, as RFC 9110 compares If-Match
        // strongly (a weak tag was a 400; found by an audit).
        for value in [
            "W/\"7\"",
            "\"-1\"",
            "\"+7\"",
            "\"18446744073709551616\"",
            "\"abc\", W/\"7\"",
        ] {
            assert_eq!(write(&[(m.clone(), value)]).unwrap(), Never, "{value}");
        }
        assert_eq!(
            write(&[(m.clone(), "W/\"1\", \"7\"")]).unwrap(),
            Revision(7)
        );
        // Not visible ASCII: refused, not a panic.
        let mut h = HeaderMap::new();
        h.insert(m, HeaderValue::from_bytes(b"\"\xff\"").unwrap());
        assert!(matches!(
            WriteCondition::parse(&h),
            Err(Error::Invalid { .. })
        ));
    }

    /// Messages name the headers as RFC 9110 spells them, whichever check
    /// refuses them (`if-match must be …` came from the list check).
    #[test]
    fn refusals_name_the_header_as_spelt() {
        let (m, n) = (header::IF_MATCH, header::IF_NONE_MATCH);
        for (name, spelt) in [(m, "If-Match"), (n, "If-None-Match")] {
            // An unclosed quote is a malformed tag, not an empty list.
            for value in ["23", "\"1\", abc", "\"2", "\"1\", \"2"] {
                let e = write(&[(name.clone(), value)]).unwrap_err().to_string();
                assert!(e.starts_with(&format!("{spelt} must be")), "{e}");
                let e = read(&[(name.clone(), value)], 2).unwrap_err().to_string();
                assert!(e.starts_with(&format!("{spelt} must be")), "{e}");
            }
        }
    }

    #[test]
    fn fingerprint_parts_are_canonical() {
        assert!(WriteCondition::None.fingerprint_part().is_empty());
        let parts = [
            WriteCondition::Exists,
            WriteCondition::Revision(0),
            WriteCondition::Revision(7),
            WriteCondition::Absent,
            WriteCondition::Never,
        ]
        .map(WriteCondition::fingerprint_part);
        for (i, a) in parts.iter().enumerate() {
            assert!(!a.is_empty());
            assert!(parts[i + 1..].iter().all(|b| a != b));
        }
    }

    fn read(pairs: &[(HeaderName, &str)], revision: u64) -> Result<ReadOutcome> {
        Ok(ReadConditions::parse(&lines(pairs))?.evaluate(revision))
    }

    #[test]
    fn read_conditions_follow_rfc_9110() {
        use ReadOutcome::*;
        let (m, n) = (header::IF_MATCH, header::IF_NONE_MATCH);
        assert_eq!(read(&[], 7).unwrap(), Send);
        // If-None-Match: weak comparison, a list on one line or several.
        assert_eq!(read(&[(n.clone(), "*")], 7).unwrap(), NotModified);
        assert_eq!(
            read(&[(n.clone(), "\"1\", \"7\"")], 7).unwrap(),
            NotModified
        );
        assert_eq!(
            read(&[(n.clone(), "\"1\""), (n.clone(), "\"7\"")], 7).unwrap(),
            NotModified
        );
        assert_eq!(read(&[(n.clone(), "W/\"7\"")], 7).unwrap(), NotModified);
        assert_eq!(
            read(&[(n.clone(), "\"1\", ,\"7\"")], 7).unwrap(),
            NotModified
        );
        assert_eq!(read(&[(n.clone(), "\"1\"")], 7).unwrap(), Send);
        assert_eq!(read(&[(n.clone(), "\"a,7\"")], 7).unwrap(), Send);
        // Empty (a tag variable left empty): a 400, as on a write.
        assert!(read(&[(n.clone(), "")], 7).is_err());
        assert!(read(&[(n.clone(), " , ")], 7).is_err());
        // If-Match: strong comparison; a failure is a 412.
        assert_eq!(read(&[(m.clone(), "*")], 7).unwrap(), Send);
        assert_eq!(read(&[(m.clone(), "\"1\", \"7\"")], 7).unwrap(), Send);
        assert_eq!(
            read(&[(m.clone(), "\"1\""), (m.clone(), "\"7\"")], 7).unwrap(),
            Send
        );
        assert_eq!(
            read(&[(m.clone(), "\"1\"")], 7).unwrap(),
            PreconditionFailed("1".into())
        );
        assert_eq!(
            read(&[(m.clone(), "W/\"7\"")], 7).unwrap(),
            PreconditionFailed(
                "one of W/\"7\" (a weak tag, W/\"N\", never matches If-Match)".into()
            )
        );
        assert_eq!(
            read(&[(m.clone(), "\"1\""), (m.clone(), "\"2\"")], 7).unwrap(),
            PreconditionFailed("one of \"1\", \"2\"".into())
        );
        // If-Match is evaluated first.
        assert_eq!(
            read(&[(m.clone(), "\"1\""), (n.clone(), "*")], 7).unwrap(),
            PreconditionFailed("1".into())
        );
        assert_eq!(
            read(&[(m.clone(), "\"7\""), (n.clone(), "\"7\"")], 7).unwrap(),
            NotModified
        );
        for pairs in [
            vec![(n.clone(), "3")],
            vec![(n.clone(), "*, \"3\"")],
            vec![(m.clone(), "3")],
            vec![(m.clone(), "")],
        ] {
            assert!(
                matches!(read(&pairs, 3), Err(Error::Invalid { .. })),
                "{pairs:?}"
            );
        }
    }

    proptest! {
        /// Any header bytes: a condition or a 400, never a panic, and a
        /// quoted number is exactly that revision.
        #[test]
        fn any_condition_header_parses_or_is_invalid(
            m in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..3),
            n in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..3),
            a in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3),
            rev in any::<u64>(),
        ) {
            let mut h = HeaderMap::new();
            for (name, values) in [(header::IF_MATCH, &m), (header::IF_NONE_MATCH, &n), (ACCEPT, &a)] {
                for v in values {
                    if let Ok(v) = HeaderValue::from_bytes(v) {
                        h.append(name.clone(), v);
                    }
                }
            }
            if let Err(e) = WriteCondition::parse(&h) {
                let invalid = matches!(e, Error::Invalid { .. });
                prop_assert!(invalid);
            }
            match ReadConditions::parse(&h) {
                Ok(c) => { let _ = c.evaluate(rev); }
                Err(e) => {
                    let invalid = matches!(e, Error::Invalid { .. });
                    prop_assert!(invalid);
                }
            }
            let _ = wants_ndjson(&h);
            let tag = format!("\"{rev}\"");
            let h = lines(&[(header::IF_MATCH, tag.as_str())]);
            prop_assert_eq!(WriteCondition::parse(&h).unwrap(), WriteCondition::Revision(rev));
            prop_assert_eq!(ReadConditions::parse(&h).unwrap().evaluate(rev), ReadOutcome::Send);
        }
    }
}
