//! The JSON lines format: batch input and range output.
//!
//! One JSON object per line:
//!
//! ```text
//! {"key":"user:1","value":"alice"}                  put, UTF-8 key and value
//! {"op":"delete","key":"user:2"}                    delete
//! {"key_b64":"AAEC","value_b64":"/w=="}             any bytes, standard base64 with padding
//! {"key":"user:3","value":{"name":"c"},"if_revision":0}
//! ```
//!
//! Input rules:
//! * exactly one of `key` / `key_b64`, never empty, at most 4,096 bytes;
//! * `op` is `"put"` (default) or `"delete"`; a put has exactly one of
//!   `value` / `value_b64`, a delete neither;
//! * `value` may be any JSON value: a string is stored as its UTF-8 bytes,
//!   anything else as its JSON text exactly as written (numbers and key order
//!   kept);
//! * `if_revision: N` makes the whole batch conditional on that key's revision
//!   before the batch (0: absent);
//! * only `value` and `revision` may be `null`: a null `op`, key, `_b64`
//!   field or number makes the line bad (a null `if_revision` is no
//!   condition to drop silently);
//! * `revision` is accepted and ignored, so range output is valid batch
//!   input; a put may carry `ttl` (an integer, 1 to 315,360,000 seconds) or
//!   `expires_at_ms` (Unix milliseconds), not both, so range output keeps
//!   its expiry (the write turns a `ttl` into an absolute time when it is
//!   accepted, and skips a line whose expiry has passed: `Op::accept`);
//!   any other field makes the line bad, so a misspelt
//!   `if_revision` never turns a conditional write into an unconditional
//!   one; so does a line that is not a JSON object; blank lines are skipped;
//! * line numbers in errors are 1-based and count every physical line.
//!
//! Output (range, `get --json`): `{"key":…,"value":…,"revision":N}`, and
//! `"expires_at_ms":T` for a key with an expiry, using the plain fields
//! when the bytes are valid UTF-8 and the `_b64` ones otherwise; keys-only
//! lines carry just the key.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::limits;
use crate::types::{Action, Item, Op};

mod parallel;

pub use parallel::ParallelOpReader;

/// A key as text for messages: a JSON string when it is UTF-8, else `b64:…`.
pub fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) => serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}")),
        Err(_) => format!("b64:{}", B64.encode(key)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine<'a> {
    #[serde(default, borrow, deserialize_with = "string")]
    op: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "string")]
    key: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "string")]
    key_b64: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "any_value")]
    value: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "string")]
    value_b64: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "number")]
    if_revision: Option<u64>,
    /// Range output carries it; input ignores it.
    #[serde(default, rename = "revision")]
    _revision: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "number")]
    ttl: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    expires_at_ms: Option<u64>,
}

/// `value` is present whatever JSON it holds, `null` included.
fn any_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A field that, when present, must be a string: `null` is refused like
/// any other non-string (an absent field is `None` through `default`), so
/// `"op":null` is not taken for a put. Borrows when the JSON string has no
/// escapes.
fn string<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(Text).map(Some)
}

/// A field that, when present, must be a whole number: `"if_revision":null`
/// is refused, never read as "no condition".
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(d).map(Some)
}

use crate::types::YEAR_10000_MS;

/// Longest `ttl`, in seconds: ten years (SPEC "Expiry (TTL)").
pub const MAX_TTL_SECS: u64 = 315_360_000;

/// Parses one non-blank input line into an [`Op`].
/// What is wrong with the base64 of `field`, in words (the crate's own
/// message names bytes by their code: `Invalid symbol 45, offset 0.`).
fn base64_error(field: &str, e: base64::DecodeError) -> String {
    use base64::DecodeError::{InvalidByte, InvalidLastSymbol, InvalidLength, InvalidPadding};
    let shown = |b: u8| match b {
        0x21..=0x7e => format!("'{}'", b as char),
        _ => format!("byte 0x{b:02x}"),
    };
    let what = match e {
        InvalidByte(at, b @ (b'-' | b'_')) => format!(
            "{} at offset {at}: that is URL-safe base64; {field} takes standard base64 \
             (+ and /, padded with =)",
            shown(b)
        ),
        InvalidByte(at, b'=') => format!("'=' at offset {at}, before the end"),
        InvalidByte(at, b) => format!("{} at offset {at} is not a base64 character", shown(b)),
        InvalidLength(len) => format!("its length, {len} characters, is not a base64 length"),
        InvalidLastSymbol(at, b) => {
            format!(
                "the last character, {} at offset {at}, has bits left over",
                shown(b)
            )
        }
        InvalidPadding => "missing or extra '=' padding (standard base64 pads to a multiple \
                           of 4 characters)"
            .to_string(),
    };
    format!("{field} is not valid base64: {what}")
}

pub fn parse_line(text: &[u8], line: u64, max_value_bytes: usize) -> Result<Op> {
    let bad = |message: String| Error::Invalid {
        line: Some(line),
        message,
    };
    // Without its line end, so an error at the end of the line names the
    // line's last column, not column 0 of the next.
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if line == 1 && text.starts_with(b"\xEF\xBB\xBF") {
        return Err(bad(
            "the input starts with a UTF-8 byte order mark (BOM), which JSON lines do not \
             take: save the file without it (e.g. sed '1s/^\\xEF\\xBB\\xBF//')"
                .into(),
        ));
    }
    if line == 1
        && let Some(encoding) = wide_encoding(text)
    {
        return Err(bad(format!(
            "the input is {encoding}, and JSON lines are UTF-8: convert it first (e.g. iconv -f \
             {encoding} -t UTF-8 FILE)"
        )));
    }
    // serde would read `["a","b"]` as the fields in order: check first.
    if !is_object(text) && serde_json::from_slice::<IgnoredAny>(text).is_ok() {
        return Err(bad(match text.trim_ascii_start().starts_with(b"[") {
            true => "a line must be a JSON object, not an array: the input is JSON lines, one \
                     object per line"
                .into(),
            false => "a line must be a JSON object".into(),
        }));
    }
    let input: InputLine<'_> =
        serde_json::from_slice(text).map_err(|e| bad(field_error(text, &e)))?;
    check_expiry(&input).map_err(bad)?;
    let key = match (&input.key, &input.key_b64) {
        (Some(k), None) => k.as_bytes().to_vec(),
        (None, Some(b)) => B64
            .decode(b.as_bytes())
            .map_err(|e| bad(base64_error("key_b64", e)))?,
        (Some(_), Some(_)) => return Err(bad("both key and key_b64 given; use one".into())),
        (None, None) => return Err(bad("missing key (give key or key_b64)".into())),
    };
    limits::check_key(&key, Some(line))?;
    let action = match input.op.as_deref().unwrap_or("put") {
        "put" => {
            let value = match (input.value, &input.value_b64) {
                (Some(raw), None) => raw_value_bytes(raw)
                    .map_err(|e| bad(json_error_at(&e, offset_in(text, raw.get()))))?,
                (None, Some(b)) => B64
                    .decode(b.as_bytes())
                    .map_err(|e| bad(base64_error("value_b64", e)))?,
                (Some(_), Some(_)) => {
                    return Err(bad("both value and value_b64 given; use one".into()));
                }
                (None, None) => {
                    // A key alone is what `range --keys-only` prints.
                    return Err(bad(
                        "a put needs a value (value or value_b64); lines of range --keys-only \
                         are not batch input, and a delete needs \"op\":\"delete\""
                            .into(),
                    ));
                }
            };
            limits::check_value(&key, value.len(), max_value_bytes, Some(line))?;
            Action::Put(value)
        }
        "delete" => {
            if input.value.is_some() || input.value_b64.is_some() {
                return Err(bad("a delete takes no value".into()));
            }
            if input.ttl.is_some() || input.expires_at_ms.is_some() {
                return Err(bad("a delete takes no ttl or expires_at_ms".into()));
            }
            Action::Delete
        }
        other => {
            return Err(bad(format!(
                "unknown op {}: use \"put\" or \"delete\"",
                show_key(other.as_bytes())
            )));
        }
    };
    Ok(Op {
        key,
        action,
        if_revision: input.if_revision,
        line: Some(line),
        expires_at_ms: input.expires_at_ms,
        ttl_secs: input.ttl,
    })
}

/// UTF-32 or UTF-16 (Windows' "Unicode") as a first line shows it: a
/// byte order mark, or NULs next to the first `{`. UTF-32 is looked for
/// first: its little-endian BOM starts as UTF-16's does.
fn wide_encoding(text: &[u8]) -> Option<&'static str> {
    const SIGNS: [(&[u8], &str); 8] = [
        (b"\xFF\xFE\0\0", "UTF-32"),
        (b"\0\0\xFE\xFF", "UTF-32"),
        (b"{\0\0\0", "UTF-32"),
        (b"\0\0\0{", "UTF-32"),
        (b"\xFF\xFE", "UTF-16"),
        (b"\xFE\xFF", "UTF-16"),
        (b"{\0", "UTF-16"),
        (b"\0{", "UTF-16"),
    ];
    SIGNS
        .iter()
        .find(|(sign, _)| text.starts_with(sign))
        .map(|&(_, name)| name)
}

/// Whether the line's first non-blank byte opens an object.
fn is_object(text: &[u8]) -> bool {
    text.iter().find(|b| !blank(b)) == Some(&b'{')
}

/// `ttl` and `expires_at_ms` are checked as SPEC "Expiry (TTL)" says.
/// An `expires_at_ms` is before the year 10,000: a later one is a time in
/// the wrong unit (microseconds or nanoseconds read as milliseconds: a key
/// that would never expire).
fn check_expiry(input: &InputLine<'_>) -> std::result::Result<(), String> {
    match (input.ttl, input.expires_at_ms) {
        (Some(_), Some(_)) => Err("give ttl or expires_at_ms, not both".into()),
        (Some(ttl), None) => check_ttl(ttl),
        (None, Some(at)) if at >= YEAR_10000_MS => Err(format!(
            "expires_at_ms {at} is past the year 9999: it is Unix time in milliseconds, not \
             micro- or nanoseconds"
        )),
        _ => Ok(()),
    }
}

/// A `ttl` in seconds is 1 to 315,360,000 (ten years, SPEC "Expiry (TTL)").
pub fn check_ttl(ttl: u64) -> std::result::Result<(), String> {
    if (1..=MAX_TTL_SECS).contains(&ttl) {
        Ok(())
    } else {
        Err(format!(
            "ttl must be 1 to {MAX_TTL_SECS} seconds, not {ttl}"
        ))
    }
}

/// A JSON string's contents, or any other JSON value's text as written.
fn raw_value_bytes(raw: &RawValue) -> serde_json::Result<Vec<u8>> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text)?;
        Ok(s.into_owned().into_bytes())
    } else {
        Ok(text.as_bytes().to_vec())
    }
}

/// Where `part`, a slice borrowed from `line`, starts in it (0 if it is
/// not one).
fn offset_in(line: &[u8], part: &str) -> usize {
    let offset = (part.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    if offset <= line.len() { offset } else { 0 }
}

/// serde_json's message without its "line 1 column N" (the line is ours).
/// Valid JSON of the wrong shape (an unknown field, a string for a number)
/// is not called invalid JSON.
fn json_error(e: &serde_json::Error) -> String {
    json_error_at(e, 0)
}

/// What a line that is not JSON says about the input's layout: an object
/// spread over lines (pretty-printed), or objects run together on one
/// (`curl -d @file` drops the newlines). Found by an audit, where serde's
/// "EOF while parsing an object" and "trailing characters" said neither.
fn layout_hint(text: &[u8], e: &serde_json::Error) -> &'static str {
    let trimmed = text.trim_ascii();
    if e.classify() == serde_json::error::Category::Eof && trimmed.starts_with(b"{") {
        return " (the line ends inside an object: each object must be on one line of its \
                own, not pretty-printed)";
    }
    let after = text
        .get(e.column().saturating_sub(1)..)
        .unwrap_or_default()
        .trim_ascii_start();
    if e.to_string().starts_with("trailing characters") && after.starts_with(b"{") {
        return " (another object follows on the same line: give each its own line; curl's -d \
                drops newlines, --data-binary keeps them)";
    }
    ""
}

/// Fields that must be strings, and whole numbers, when present.
const STRING_FIELDS: [&str; 4] = ["op", "key", "key_b64", "value_b64"];
const NUMBER_FIELDS: [&str; 3] = ["if_revision", "ttl", "expires_at_ms"];

/// [`json_error`] of a line that is JSON but whose field has the wrong
/// type, naming the field (serde's message does not: `invalid type: null,
/// expected a string`) and saying what a number must be (`expected u64`
/// of a negative number, or of one too large that JSON reads as a float).
/// Found again by parsing the line as a map: only when the line is
/// refused, so good lines cost nothing more.
fn field_error(text: &[u8], e: &serde_json::Error) -> String {
    let message = json_error(e);
    if e.classify() != serde_json::error::Category::Data {
        return message + layout_hint(text, e);
    }
    let Ok(fields) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text)
    else {
        return message;
    };
    let wrong = |name: &&&str| {
        fields
            .get(**name)
            .is_some_and(|v| match STRING_FIELDS.contains(*name) {
                true => !v.is_string(),
                false => !v.is_u64(),
            })
    };
    // With two fields wrong, serde named the first on the line: the one
    // that starts last before the column it names.
    let starts = |name: &str| {
        let quoted = format!("\"{name}\"");
        text.windows(quoted.len())
            .position(|w| w == quoted.as_bytes())
            .unwrap_or(0)
    };
    let Some(field) = STRING_FIELDS
        .iter()
        .chain(&NUMBER_FIELDS)
        .filter(wrong)
        .filter(|name| starts(name) < e.column())
        .max_by_key(|name| starts(name))
    else {
        return message;
    };
    let number = match *field {
        "ttl" => format!("a whole number of seconds from 1 to {MAX_TTL_SECS}"),
        "expires_at_ms" => format!(
            "Unix time in milliseconds, a whole number from 0 to {}",
            YEAR_10000_MS - 1
        ),
        _ => format!("a whole number from 0 to {}", u64::MAX),
    };
    let mut message = message.replace("expected u64", &format!("expected {number}"));
    // A whole number past u64 is read as a float: say what was written.
    if let Some(digits) = whole_number_of(text, field)
        && let Some(start) = message.find("invalid type: floating point `")
        && let Some(len) = message[start + 30..].find('`')
    {
        message.replace_range(
            start..start + 30 + len + 1,
            &format!("invalid value: integer `{digits}` is too large"),
        );
    }
    format!("{field}: {message}")
}

/// The number written as `field`'s value on the line, if it is a whole
/// number (digits, with a sign perhaps): what serde turned into a float
/// when it is too large for a u64.
fn whole_number_of<'a>(text: &'a [u8], field: &str) -> Option<&'a str> {
    let quoted = format!("\"{field}\"");
    let at = text
        .windows(quoted.len())
        .position(|w| w == quoted.as_bytes())?;
    let rest = std::str::from_utf8(&text[at + quoted.len()..]).ok()?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    let digits = &rest[..end];
    let tail = rest[end..].chars().next();
    (digits.bytes().any(|b| b.is_ascii_digit()) && !matches!(tail, Some('.' | 'e' | 'E')))
        .then_some(digits)
}

/// [`json_error`] of text parsed on its own that starts `offset` bytes into
/// the line (a string `value`, decoded after the line was split into
/// fields), so the column is the line's.
fn json_error_at(e: &serde_json::Error, offset: usize) -> String {
    let column = e.column() + offset;
    let text = e.to_string();
    let msg = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    // Bytes that are not UTF-8, or a lone surrogate escape (`\ud800`):
    // no JSON string holds them, the `_b64` forms do.
    let hint = if msg.contains("end of hex escape") {
        // serde's words for a high surrogate without its low one.
        " (a lone surrogate escape such as \\ud800 is no text: JSON strings hold UTF-8 text \
         only; give other bytes as key_b64 / value_b64, standard base64)"
    } else if msg.contains("unicode code point") || msg.contains("surrogate") {
        " (JSON strings hold UTF-8 text only: give other bytes as key_b64 / value_b64, \
         standard base64)"
    } else {
        ""
    };
    if e.classify() == serde_json::error::Category::Data {
        format!("{msg} (column {column}){hint}")
    } else {
        format!("invalid JSON at column {column}: {msg}{hint}")
    }
}

/// The longest line that can be valid with values of at most
/// `max_value_bytes`: the value and the longest key with every byte
/// written as a `\uXXXX` escape (six bytes a byte, more than base64
/// takes), and 64 KiB for field names, numbers and spacing. Anything longer
/// is refused without being read whole (no input can make a reader hold
/// more than this).
pub fn max_line_bytes(max_value_bytes: usize) -> usize {
    max_value_bytes
        .saturating_add(limits::MAX_KEY_BYTES)
        .saturating_mul(6)
        .saturating_add(64 << 10)
}

/// Reads one line (with its newline, if any) into `buf`, but no more than
/// `max` bytes of it: `Ok(None)` at the end of the input, `Ok(Some(false))`
/// for a line longer than `max` (what was read of it stays in `buf`, the
/// rest unread).
pub fn read_line_capped(
    reader: &mut (impl BufRead + ?Sized),
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    append_line_capped(reader, buf, max)
}

/// [`read_line_capped`], appending the line to what `buf` holds.
fn append_line_capped(
    reader: &mut (impl BufRead + ?Sized),
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let start = buf.len();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((buf.len() > start).then_some(true));
        }
        let (take, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        // The newline does not count: a line of exactly `max` bytes is fine.
        let read = buf.len() - start;
        let content = read + take - usize::from(complete);
        if content > max {
            let room = max.saturating_sub(read);
            buf.extend_from_slice(&available[..room]);
            reader.consume(room);
            return Ok(Some(false));
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if complete {
            return Ok(Some(true));
        }
    }
}

/// The error for a line longer than [`max_line_bytes`] allows.
pub fn line_too_long(line: u64, max_line: usize, max_value_bytes: usize) -> Error {
    Error::Invalid {
        line: Some(line),
        message: format!(
            "the line is longer than {max_line} bytes, more than any valid line (a value \
             of at most {max_value_bytes} bytes and a key, fully escaped) can be; is the \
             input JSON lines, one object per line?"
        ),
    }
}

/// Reads batch input line by line, yielding ops and skipping blank lines.
/// Memory is one line at a time, however long the input, and a line at
/// most [`max_line_bytes`].
pub struct OpReader<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    max_value_bytes: usize,
    max_line_bytes: usize,
}

impl<R: BufRead> OpReader<R> {
    pub fn new(reader: R, max_value_bytes: usize) -> Self {
        OpReader {
            reader,
            line: 0,
            buf: Vec::new(),
            max_value_bytes,
            max_line_bytes: max_line_bytes(max_value_bytes),
        }
    }

    /// Physical lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line
    }
}

impl<R: BufRead> Iterator for OpReader<R> {
    type Item = Result<Op>;

    fn next(&mut self) -> Option<Result<Op>> {
        loop {
            let read = read_line_capped(&mut self.reader, &mut self.buf, self.max_line_bytes);
            if !matches!(read, Ok(None)) {
                self.line += 1;
            }
            match read {
                Ok(None) => return None,
                Ok(Some(true)) => {}
                Ok(Some(false)) => {
                    self.buf = Vec::new(); // give the memory back before failing
                    return Some(Err(line_too_long(
                        self.line,
                        self.max_line_bytes,
                        self.max_value_bytes,
                    )));
                }
                Err(e) => return Some(Err(Error::io("cannot read batch input", e))),
            }
            if self.buf.iter().all(blank) {
                continue;
            }
            return Some(parse_line(&self.buf, self.line, self.max_value_bytes));
        }
    }
}

/// Whether `b` is blank in the sense of "blank (or whitespace-only)
/// lines are skipped" (SPEC): ASCII whitespace, the vertical tab included
/// as the form feed is (`u8::is_ascii_whitespace` leaves it out, so a line
/// of form feeds was skipped and one of vertical tabs refused).
pub(crate) fn blank(b: &u8) -> bool {
    b.is_ascii_whitespace() || *b == 0x0b
}

/// Writes one output line (with its newline): key, and value, revision
/// and expiry unless `entry` is `None` (keys-only).
pub fn write_line(out: &mut impl Write, key: &[u8], entry: Option<Item<'_>>) -> Result<()> {
    write_line_io(out, key, entry).map_err(|e| Error::io("cannot write output", e))
}

fn write_line_io(out: &mut impl Write, key: &[u8], entry: Option<Item<'_>>) -> std::io::Result<()> {
    // Plain fields (most) with the punctuation around them in one write
    // each: a range page writes this for every item, and each write into
    // its buffer is a call.
    if plain_ascii(key) {
        out.write_all(b"{\"key\":\"")?;
        out.write_all(key)?;
        out.write_all(b"\"")?;
    } else {
        out.write_all(b"{")?;
        write_field(out, "key", key)?;
    }
    if let Some(item) = entry {
        if plain_ascii(item.value) {
            out.write_all(b",\"value\":\"")?;
            out.write_all(item.value)?;
            out.write_all(b"\",\"revision\":")?;
        } else {
            out.write_all(b",")?;
            write_field(out, "value", item.value)?;
            out.write_all(b",\"revision\":")?;
        }
        // itoa, not `write!`: a range page writes this for every item.
        let mut digits = itoa::Buffer::new();
        out.write_all(digits.format(item.revision).as_bytes())?;
        if let Some(at) = item.expires_at_ms {
            out.write_all(b",\"expires_at_ms\":")?;
            out.write_all(digits.format(at).as_bytes())?;
        }
    }
    out.write_all(b"}\n")
}

/// Writes `"name":"…"` or `"name_b64":"…"` for `bytes` (see the header).
pub fn write_field(out: &mut impl Write, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    if plain_ascii(bytes) {
        // Valid UTF-8 with nothing to escape, found in one pass (a range
        // page writes two fields per item).
        out.write_all(b"\"")?;
        out.write_all(name.as_bytes())?;
        out.write_all(b"\":\"")?;
        out.write_all(bytes)?;
        return out.write_all(b"\"");
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            out.write_all(b"\"")?;
            out.write_all(name.as_bytes())?;
            out.write_all(b"\":")?;
            if !needs_escape(bytes) {
                out.write_all(b"\"")?;
                out.write_all(bytes)?;
                return out.write_all(b"\"");
            }
            serde_json::to_writer(&mut *out, s).map_err(|e| match e.io_error_kind() {
                Some(kind) => std::io::Error::from(kind),
                None => std::io::Error::other(e),
            })
        }
        Err(_) => write!(out, "\"{name}_b64\":\"{}\"", B64.encode(bytes)),
    }
}

/// Whether `bytes` are ASCII that a JSON string holds as they are: no
/// control characters, quotes or backslashes (so also valid UTF-8).
fn plain_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |all, &b| {
        all & (0x20..0x80).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

/// Whether a JSON string of `bytes` escapes any of them (serde_json's
/// rule: control characters, quotes and backslashes). Most keys and values
/// escape nothing and are copied as they are; a fold without early exit
/// lets the compiler check 32 bytes at a time, where serde_json looks at
/// one.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_MAX_VALUE_BYTES as MAX;

    #[test]
    fn lines_of_any_ascii_whitespace_are_skipped() {
        let input = " \t\r\n\x0b\n\x0c\n\x0b \x0c\n{\"key\":\"k\",\"value\":\"v\"}\n\x0b\n";
        let ops: Vec<Op> = OpReader::new(input.as_bytes(), MAX)
            .collect::<Result<_>>()
            .unwrap();
        let fifth = parse_line(b"{\"key\":\"k\",\"value\":\"v\"}", 5, MAX).unwrap();
        assert_eq!(ops, vec![fifth]);
    }

    fn parse(s: &str) -> Result<Op> {
        parse_line(s.as_bytes(), 7, MAX)
    }

    /// Bytes that are not UTF-8 in a string point to the `_b64` forms
    /// (audit finding: "invalid unicode code point" alone).
    #[test]
    fn bytes_that_are_not_utf8_point_to_the_b64_forms() {
        for line in [
            &b"{\"key\":\"a\xff\",\"value\":\"x\"}"[..],
            b"{\"key\":\"\\udc00\",\"value\":\"x\"}",
        ] {
            let err = parse_line(line, 1, 1 << 20).unwrap_err().to_string();
            assert!(
                err.contains("give other bytes as key_b64 / value_b64"),
                "{err}"
            );
        }
        let err = parse("{\"key\":\"a\",").unwrap_err().to_string();
        assert!(!err.contains("key_b64"), "{err}");
    }

    /// Pretty-printed objects, objects run together on a line and a JSON
    /// array say what is wrong with the layout (found by an audit).
    #[test]
    fn a_wrong_layout_is_named() {
        let err = parse("{").unwrap_err().to_string();
        assert!(err.contains("each object must be on one line"), "{err}");
        let err = parse("{\"key\":\"a\",\"value\":\"x\"}{\"key\":\"b\",\"value\":\"y\"}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--data-binary keeps them"), "{err}");
        let err = parse("[{\"key\":\"a\",\"value\":\"x\"}]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not an array: the input is JSON lines"),
            "{err}"
        );
        // Other errors are left as they were.
        let err = parse("{\"key\":\"a\",\"value\":\"x\"} x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("another object"), "{err}");
        let err = parse("{\"key\":\"a\" \"value\":\"x\"}")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("one line"), "{err}");
        for lone in ["\\ud800", "\\ud800x"] {
            let err = parse(&format!("{{\"key\":\"{lone}\",\"value\":\"x\"}}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("a lone surrogate escape such as \\ud800"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_error_at_the_end_of_a_line_names_its_last_column_with_or_without_its_end() {
        for line in [
            "{\"key\":\"bad\"",
            "{\"key\":\"bad\"\n",
            "{\"key\":\"bad\"\r\n",
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(
                err.contains("invalid JSON at column 12: EOF while parsing an object"),
                "{line:?}: {err}"
            );
        }
        assert_eq!(
            parse("{\"key\":\"a\",\"value\":\"v\"}\r\n").unwrap(),
            parse("{\"key\":\"a\",\"value\":\"v\"}").unwrap()
        );
    }

    #[test]
    fn fields_copied_unescaped_are_what_serde_json_writes() {
        let long = "x".repeat(100);
        let cases = [
            "",
            "plain",
            &long,
            "a\"b",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}",
            "\u{1f}",
            " ",
            "\u{7f}",
            "é ü 中",
            "end\"",
            "\\",
        ];
        for case in cases {
            let mut ours = Vec::new();
            write_field(&mut ours, "value", case.as_bytes()).unwrap();
            let want = format!("\"value\":{}", serde_json::to_string(case).unwrap());
            assert_eq!(String::from_utf8(ours).unwrap(), want, "{case:?}");
        }
        let mut b64 = Vec::new();
        write_field(&mut b64, "key", &[0xff, 0x00]).unwrap();
        assert_eq!(b64, br#""key_b64":"/wA=""#);
    }

    #[test]
    fn values_of_any_json_kind() {
        let op = parse(r#"{"key":"k","value":{"b": 1.50, "a":[1]}}"#).unwrap();
        assert_eq!(op.action, Action::Put(br#"{"b": 1.50, "a":[1]}"#.to_vec()));
        let op = parse(r#"{"key":"k","value":"a\nb"}"#).unwrap();
        assert_eq!(op.action, Action::Put(b"a\nb".to_vec()));
        let op = parse(r#"{"key":"k","value":null}"#).unwrap();
        assert_eq!(op.action, Action::Put(b"null".to_vec()));
        // Only `value` (and the ignored `revision`) may be null: a null op
        // is not a put, a null if_revision not "unconditional".
        // The error names the field (serde's message alone does not).
        for (line, field) in [
            (r#"{"op":null,"key":"k","value":"v"}"#, "op"),
            (
                r#"{"key":"k","value":"v","if_revision":null}"#,
                "if_revision",
            ),
            (r#"{"key":null,"key_b64":"aw==","value":"v"}"#, "key"),
            (r#"{"key":"k","value_b64":null,"value":"v"}"#, "value_b64"),
            (r#"{"key":"k","value":"v","ttl":null}"#, "ttl"),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("line 7: {field}: invalid type: null")),
                "{err}"
            );
        }
        // Numbers say which they take, not `u64`; of two wrong fields the
        // first on the line is named, as serde found it.
        for (line, said) in [
            (
                r#"{"key":"k","value":"v","expires_at_ms":18446744073709551616}"#,
                "expires_at_ms: invalid value: integer `18446744073709551616` is too large, \
                 expected Unix time in milliseconds, a whole number from 0 to 253402300799999 \
                 (column 59)",
            ),
            (
                r#"{"key":"a","value":"1","if_revision": 18446744073709551616}"#,
                "if_revision: invalid value: integer `18446744073709551616` is too large, \
                 expected a whole number from 0 to 18446744073709551615 (column 58)",
            ),
            (
                r#"{"key":"k","value":"v","ttl":1.5}"#,
                "ttl: invalid type: floating point `1.5`, expected a whole number of seconds \
                 from 1 to 315360000 (column 32)",
            ),
            (
                r#"{"key":"k","value":"v","ttl":-1,"op":1}"#,
                "ttl: invalid value: integer `-1`, expected a whole number of seconds from 1 to \
                 315360000 (column 31)",
            ),
            (
                r#"{"op":1,"key":"k","value":"v","ttl":-1}"#,
                "op: invalid type: integer `1`, expected a string (column 7)",
            ),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert_eq!(err, format!("line 7: {said}"));
        }
        assert!(parse(r#"{"key":"k","value":"v","revision":null}"#).is_ok());
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "nope",
            r#"{"key":""}"#,
            r#"{"value":"x"}"#,
            r#"{"key":"a","key_b64":"YQ==","value":"x"}"#,
            r#"{"key":"a"}"#,
            r#"{"key_b64":"!!","value":"x"}"#,
            r#"{"key":"a","op":"frob","value":"x"}"#,
            r#"{"key":"a","op":"delete","value":"x"}"#,
            r#"{"key":"a","value":"x","if_revision":-1}"#,
            r#"{"key":"a","value":"x","if_revison":0}"#,
            r#"["put","a","x"]"#,
            "3",
            r#"{"key":"a","value":"x","ttl":0}"#,
            r#"{"key":"a","value":"x","ttl":1,"expires_at_ms":9}"#,
            r#"{"key":"a","value":"x","ttl":315360001}"#,
            r#"{"key":"a","value":"x","ttl":-1}"#,
            r#"{"key":"a","value":"x","ttl":1.5}"#,
            r#"{"key":"a","value":"x","ttl":"5"}"#,
            r#"{"key":"a","value":"x","expires_at_ms":-1}"#,
            r#"{"key":"a","op":"delete","ttl":5}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::Invalid { line: Some(7), .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().starts_with("line 7: "), "{err}");
        }
    }

    #[test]
    fn output_uses_b64_for_binary() {
        let mut out = Vec::new();
        let item = |value: &'static [u8], revision, expires_at_ms| Item {
            value,
            revision,
            expires_at_ms,
        };
        write_line(&mut out, b"k\"", Some(item(b"\xff", 3, None))).unwrap();
        write_line(&mut out, b"\x00\xfe", None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"key\":\"k\\\"\",\"value_b64\":\"/w==\",\"revision\":3}\n{\"key_b64\":\"AP4=\"}\n"
        );
        let mut out = Vec::new();
        write_line(&mut out, b"s", Some(item(b"x", 9, Some(1_795_000_000_000)))).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"key\":\"s\",\"value\":\"x\",\"revision\":9,\"expires_at_ms\":1795000000000}\n"
        );
        // Range output fed back keeps the expiry.
        let op = parse_line(&out, 1, MAX).unwrap();
        assert_eq!(op.expires_at_ms, Some(1_795_000_000_000));
    }

    proptest::proptest! {
        /// Any bytes at all: an op or an invalid-input error naming the line.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            match parse_line(&bytes, 3, 64) {
                Ok(op) => proptest::prop_assert!(!op.key.is_empty()),
                Err(Error::Invalid { line, .. }) => proptest::prop_assert_eq!(line, Some(3)),
                Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// JSON-shaped lines with fields of the wrong types and values.
        #[test]
        fn json_shaped_lines_never_panic(
            op in "(\"put\"|\"delete\"|\"x\"|1|null)",
            key in "(\"[a-z]{0,3}\"|\"\\u0000\"|7|null|\\[\\])",
            value in "(\"v\"|1.5e3|\\{\"a\":\\[\\]\\}|null|true)",
            b64 in "[A-Za-z0-9+/=!]{0,8}",
        ) {
            for line in [
                format!("{{\"op\":{op},\"key\":{key},\"value\":{value}}}"),
                format!("{{\"op\":{op},\"key_b64\":\"{b64}\",\"value_b64\":\"{b64}\"}}"),
                format!("{{\"key\":{key},\"value\":{value},\"if_revision\":{value}}}"),
            ] {
                let _ = parse_line(line.as_bytes(), 1, 1 << 20);
            }
        }

        /// Whatever bytes a key and value hold, output parses back to them.
        #[test]
        fn output_round_trips_through_input(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        ) {
            let mut out = Vec::new();
            let item = Item { value: &value, revision: 9, expires_at_ms: None };
            write_line(&mut out, &key, Some(item)).unwrap();
            let op = parse_line(&out, 1, MAX).unwrap();
            proptest::prop_assert_eq!(op.key, key);
            proptest::prop_assert_eq!(op.action, Action::Put(value));
        }
    }
}
