//! Idempotency keys (SPEC "Idempotency"): a write sent with
//! `Idempotency-Key: K` records its first outcome decided at apply (200,
//! 404, 412) with the write; a repeat with the same key within
//! [`WINDOW_MS`] gets that outcome again and is not applied twice, so a
//! client may retry a write whose answer it lost (a dropped connection, a
//! failover) without doubling it.
//!
//! Everything deterministic is decided here from the request's own time
//! (the leader's clock in a cluster, carried in the log), never from the
//! applying node's clock, so every replica answers a repeat the same way.
//!
//! A record's byte layout (the value of the store's `idempotency` table,
//! the write-ahead log's trailer and the Raft snapshot's rows):
//!
//! ```text
//! offset  size  field
//! 0       1     format version (1)
//! 1       8     time_ms: when the first request was accepted, u64 LE
//! 9       32    fingerprint: SHA-256 of the request (see `fingerprint`)
//! 41      1     outcome: 1 applied, 2 precondition failed
//! 42      ...   applied: puts, deletes, revision (3 × u64 LE)
//!               precondition failed: line (u8 flag + u64), key (u32 LE
//!               length + UTF-8), expected (u32 LE length + UTF-8),
//!               current (u8 flag + u64)
//! ```

use crate::error::{Error, Result};
use crate::types::Applied;

/// How long an outcome answers repeats: 10 minutes (SPEC).
pub const WINDOW_MS: u64 = 10 * 60 * 1000;

/// Records older than the window by this much more are deleted when a
/// memory table is flushed. Lookups judge age by the request's time, so
/// this slack only keeps a record that some node's clock still sees in the
/// window (clocks may disagree by about a second) from being deleted early.
pub const KEEP_SLACK_MS: u64 = 60 * 1000;

/// The longest key a client may send.
pub const MAX_KEY_BYTES: usize = 128;

/// What a server's `outcome_unknown` adds for a write sent with an
/// `Idempotency-Key`: how its sender learns the outcome.
pub const RESEND_HINT: &str = "; resend it with the same Idempotency-Key: it is then applied \
                               at most once, and the answer is its outcome";

/// What a server's `outcome_unknown` adds for a write sent without one.
pub const KEY_HINT: &str = "; it may have been applied: read what it writes to find out; a write \
                            sent with an Idempotency-Key header can be resent without being \
                            applied twice";
/// [`KEY_HINT`] after a message that says already that the write may
/// still be applied (not twice, found by an audit).
const KEY_HINT_AFTER_MAY: &str = "; read what it writes to find out; a write sent with an \
                                  Idempotency-Key header can be resent without being applied \
                                  twice";

/// An `outcome_unknown` answered to a write, with the hint of [`RESEND_HINT`]
/// or [`KEY_HINT`] (`keyed`: the write carried an `Idempotency-Key`).
pub fn with_hint(e: Error, keyed: bool) -> Error {
    match e {
        Error::OutcomeUnknown { message } => {
            let hint = match (keyed, message.contains("may still be applied")) {
                (true, _) => RESEND_HINT,
                (false, false) => KEY_HINT,
                (false, true) => KEY_HINT_AFTER_MAY,
            };
            Error::OutcomeUnknown {
                message: message + hint,
            }
        }
        other => other,
    }
}

/// A server's `outcome_unknown` message without its hint: the CLI, which
/// resends with its own key, says what it did instead.
pub fn without_hint(message: &str) -> &str {
    message
        .strip_suffix(RESEND_HINT)
        .or_else(|| message.strip_suffix(KEY_HINT))
        .or_else(|| message.strip_suffix(KEY_HINT_AFTER_MAY))
        .unwrap_or(message)
}

const RECORD_VERSION: u8 = 1;
const OUTCOME_APPLIED: u8 = 1;
const OUTCOME_PRECONDITION: u8 = 2;

/// A write's claim on an idempotency key: the key, what the request was,
/// and when it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    pub fingerprint: [u8; 32],
    /// Unix ms: the leader's clock in a cluster.
    pub time_ms: u64,
}

/// The outcome recorded for a key, and what it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time_ms: u64,
    pub fingerprint: [u8; 32],
    pub outcome: Outcome,
}

/// An outcome that is recorded: the write applied (a delete of an absent
/// key too: its route answers 404 from `deletes == 0`), or a precondition
/// failed. Other failures are not decided by the data and are not
/// recorded: a retry is evaluated again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied(Applied),
    PreconditionFailed {
        line: Option<u64>,
        key: String,
        expected: String,
        current: Option<u64>,
    },
}

/// Checks an `Idempotency-Key` header value: 1 to 128 printable ASCII bytes
/// (SPEC; spaces included, as in the IETF draft's string form), neither
/// starting nor ending with a space: HTTP trims spaces around a header
/// value, so a key could not keep them (the OpenAPI document's pattern
/// says the same).
pub fn check_key(key: &[u8]) -> Result<String> {
    let printable = key.iter().all(|b| (0x20..=0x7e).contains(b));
    let trimmed = key.first() != Some(&b' ') && key.last() != Some(&b' ');
    if key.is_empty() || key.len() > MAX_KEY_BYTES || !printable || !trimmed {
        return Err(Error::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} printable ASCII characters, \
             not starting or ending with a space"
        )));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// The fingerprint of a request: SHA-256 over its method, data key, query,
/// body and precondition (a canonical text, empty without one), each
/// length-prefixed, so a different request under the same idempotency key
/// is told apart (422). An empty precondition is left out entirely: the
/// fingerprint of an unconditional request is the one earlier releases
/// computed, so its records made before an upgrade still answer its
/// repeats (and no other request can share it: the parts are
/// length-prefixed).
pub fn fingerprint(
    method: &str,
    key: &[u8],
    query: &str,
    body: &[u8],
    condition: &[u8],
) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let parts = [method.as_bytes(), key, query.as_bytes(), body, condition];
    let used = if condition.is_empty() { 4 } else { 5 };
    for part in &parts[..used] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A new random key, 32 hex digits (what the CLI sends with each write).
pub fn new_key() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Storage("no randomness for an Idempotency-Key".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Outcome {
    /// The outcome of a write as the engine gives it, if it is one to record.
    pub fn of(outcome: std::result::Result<&Applied, &Error>) -> Option<Outcome> {
        match outcome {
            Ok(a) => Some(Outcome::Applied(*a)),
            Err(Error::PreconditionFailed {
                line,
                key,
                expected,
                current,
            }) => Some(Outcome::PreconditionFailed {
                line: *line,
                key: key.clone(),
                expected: expected.clone(),
                current: *current,
            }),
            Err(_) => None,
        }
    }

    /// The engine's outcome again.
    pub fn to_result(&self) -> Result<Applied> {
        match self {
            Outcome::Applied(a) => Ok(*a),
            Outcome::PreconditionFailed {
                line,
                key,
                expected,
                current,
            } => Err(Error::PreconditionFailed {
                line: *line,
                key: key.clone(),
                expected: expected.clone(),
                current: *current,
            }),
        }
    }
}

impl Record {
    /// Whether this record answers `claim`: same key (the caller looked it
    /// up by key) and still within the window at the claim's time.
    pub fn answers(&self, claim: &Claim) -> bool {
        claim.time_ms < self.time_ms.saturating_add(WINDOW_MS)
    }

    /// The outcome a repeat of the request gets: the recorded one, or
    /// `idempotency_key_reused` for a different request.
    pub fn replay(&self, claim: &Claim) -> Result<Applied> {
        if self.fingerprint != claim.fingerprint {
            return Err(Error::IdempotencyKeyReused {
                key: claim.key.clone(),
            });
        }
        self.outcome.to_result()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(80);
        buf.push(RECORD_VERSION);
        buf.extend_from_slice(&self.time_ms.to_le_bytes());
        buf.extend_from_slice(&self.fingerprint);
        match &self.outcome {
            Outcome::Applied(a) => {
                buf.push(OUTCOME_APPLIED);
                for n in [a.puts, a.deletes, a.revision] {
                    buf.extend_from_slice(&n.to_le_bytes());
                }
            }
            Outcome::PreconditionFailed {
                line,
                key,
                expected,
                current,
            } => {
                buf.push(OUTCOME_PRECONDITION);
                put_opt(&mut buf, *line);
                put_str(&mut buf, key);
                put_str(&mut buf, expected);
                put_opt(&mut buf, *current);
            }
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let bad = || Error::Corrupt("bad idempotency record".into());
        let mut r = Reader(bytes);
        if r.take(1).ok_or_else(bad)?[0] != RECORD_VERSION {
            return Err(bad());
        }
        let time_ms = r.u64().ok_or_else(bad)?;
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(r.take(32).ok_or_else(bad)?);
        let outcome = match r.take(1).ok_or_else(bad)?[0] {
            OUTCOME_APPLIED => Outcome::Applied(Applied {
                puts: r.u64().ok_or_else(bad)?,
                deletes: r.u64().ok_or_else(bad)?,
                revision: r.u64().ok_or_else(bad)?,
            }),
            OUTCOME_PRECONDITION => Outcome::PreconditionFailed {
                line: r.opt().ok_or_else(bad)?,
                key: r.string().ok_or_else(bad)?,
                expected: r.string().ok_or_else(bad)?,
                current: r.opt().ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        Ok(Record {
            time_ms,
            fingerprint,
            outcome,
        })
    }

    /// The time a record was made, read from its encoding (for trimming).
    pub fn time_of(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?))
    }
}

fn put_opt(buf: &mut Vec<u8>, n: Option<u64>) {
    buf.push(u8::from(n.is_some()));
    buf.extend_from_slice(&n.unwrap_or(0).to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn opt(&mut self) -> Option<Option<u64>> {
        let flag = self.take(1)?[0];
        let n = self.u64()?;
        Some((flag == 1).then_some(n))
    }

    fn string(&mut self) -> Option<String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_says_how_to_learn_it_and_the_cli_reads_past_that() {
        let unknown = || Error::OutcomeUnknown {
            message: "the cluster lost track of the write: leadership changed".into(),
        };
        for keyed in [true, false] {
            let Error::OutcomeUnknown { message } = with_hint(unknown(), keyed) else {
                panic!("not outcome_unknown");
            };
            assert_eq!(message.contains("same Idempotency-Key"), keyed, "{message}");
            assert!(message.contains("Idempotency-Key"), "{message}");
            assert_eq!(
                without_hint(&message),
                "the cluster lost track of the write: leadership changed"
            );
        }
        // A message that says the write may still be applied does not get
        // "it may have been applied" after it.
        let said = "the node is stopping and the write was not committed within 2 s; it may \
                    still be applied";
        let Error::OutcomeUnknown { message } = with_hint(
            Error::OutcomeUnknown {
                message: said.into(),
            },
            false,
        ) else {
            panic!("not outcome_unknown");
        };
        assert!(!message.contains("may have been applied"), "{message}");
        assert!(
            message.contains("read what it writes to find out"),
            "{message}"
        );
        assert_eq!(without_hint(&message), said);
        // Other errors are as they were.
        assert!(matches!(
            with_hint(Error::NotClustered, true),
            Error::NotClustered
        ));
    }

    #[test]
    fn records_round_trip() {
        for outcome in [
            Outcome::Applied(Applied {
                puts: 2,
                deletes: 1,
                revision: 9,
            }),
            Outcome::PreconditionFailed {
                line: Some(3),
                key: "k".into(),
                expected: "0 (absent)".into(),
                current: None,
            },
        ] {
            let rec = Record {
                time_ms: 1_795_000_000_000,
                fingerprint: fingerprint("PUT", b"k", "", b"v", b""),
                outcome,
            };
            let bytes = rec.encode();
            assert_eq!(Record::decode(&bytes).unwrap(), rec);
            assert_eq!(Record::time_of(&bytes), Some(rec.time_ms));
            assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn keys_and_windows() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'a'; 129]).is_err());
        assert!(check_key(b"a\x7f").is_err());
        // Spaces inside (printable ASCII), never around (HTTP trims them).
        assert_eq!(check_key(b"retry 1").unwrap(), "retry 1");
        assert!(check_key(b" retry").is_err());
        assert!(check_key(b"retry ").is_err());
        assert!(check_key(b" ").is_err());
        assert_eq!(check_key(b"retry-1").unwrap(), "retry-1");
        let k = new_key().unwrap();
        assert_eq!(k.len(), 32);
        assert_ne!(k, new_key().unwrap());
        let rec = Record {
            time_ms: 1000,
            fingerprint: [1; 32],
            outcome: Outcome::Applied(Applied::default()),
        };
        let claim = |time_ms, fp| Claim {
            key: "k".into(),
            fingerprint: fp,
            time_ms,
        };
        assert!(rec.answers(&claim(1000 + WINDOW_MS - 1, [1; 32])));
        assert!(!rec.answers(&claim(1000 + WINDOW_MS, [1; 32])));
        assert!(rec.replay(&claim(2000, [1; 32])).is_ok());
        assert!(matches!(
            rec.replay(&claim(2000, [2; 32])),
            Err(Error::IdempotencyKeyReused { .. })
        ));
        // Each part is length-prefixed: moving bytes between parts differs.
        assert_ne!(
            fingerprint("PUT", b"ab", "", b"", b""),
            fingerprint("PUT", b"a", "b", b"", b"")
        );
        // A precondition makes another request; moving its bytes into the
        // body does not make the same one.
        let plain = fingerprint("PUT", b"k", "", b"v", b"");
        assert_ne!(plain, fingerprint("PUT", b"k", "", b"v", b"if-match:7"));
        assert_ne!(
            fingerprint("PUT", b"k", "", b"v", b"if-match:7"),
            fingerprint("PUT", b"k", "", b"v", b"if-match:*")
        );
        let mut moved = b"v".to_vec();
        moved.extend_from_slice(&10u64.to_le_bytes());
        moved.extend_from_slice(b"if-match:7");
        assert_ne!(
            fingerprint("PUT", b"k", "", &moved, b""),
            fingerprint("PUT", b"k", "", b"v", b"if-match:7")
        );
    }

    /// Without a precondition the fingerprint is the one of earlier
    /// releases (four length-prefixed parts), so records written before an
    /// upgrade still answer repeats of unconditional writes.
    #[test]
    fn an_unconditional_fingerprint_is_unchanged() {
        let hex: String = fingerprint("PUT", b"k", "", b"v", b"")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "6158363447180ed6234834f045e7165c7418670949bffd844c452151c222405f"
        );
    }
}
