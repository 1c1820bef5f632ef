//! Following a server's change feed (`GET /v1/watch`) so the browser shows
//! other clients' changes without a key press.
//!
//! A thread of its own holds the stream (it blocks on reads, so neither the
//! UI nor the worker can), with keys only: the browser needs to know which
//! keys changed, and reads a value it shows again through the worker. The
//! thread leaves what it saw in an [`Inbox`] that the UI empties on every
//! turn of its loop, so it never waits on the UI nor the UI on it.
//!
//! Invariants: the feed starts right after the revision of the first
//! stats read, which the worker made before the first page of keys, so no
//! change after that page is missed; after a broken stream or a restarted
//! server it resumes from 1 + the highest event or progress revision seen,
//! so none is missed or seen twice. The inbox holds at most
//! [`MAX_QUEUED`] changes: a burst beyond that is dropped and replaced by
//! one "reload" (the browser reads its page and value again), so memory
//! stays bounded however fast others write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::client::{Client, WatchQuery};
use crate::error::{Error, Result};

/// Changes held for the UI before a burst turns into one reload. The UI
/// takes them every 3 to 100 ms; with keys of up to 4 KiB this is at most
/// a few MiB.
pub const MAX_QUEUED: usize = 1_000;
/// First pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts: a restarted server is
/// followed again within this much of answering.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A change to one key, from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub key: Vec<u8>,
    pub deleted: bool,
    /// A delete by expiry.
    pub expired: bool,
}

/// The state of the connection to the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Link {
    #[default]
    Connecting,
    Live,
    /// The stream broke; trying again.
    Reconnecting(String),
    /// The server refused the watch for good (such as a bad token).
    Failed(String),
}

/// What the feed saw since the UI last looked.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    /// In revision order; empty when `reload` is set.
    pub changes: Vec<Change>,
    /// More changes came than [`MAX_QUEUED`] (or the feed had to start
    /// over): read the visible page and value again instead.
    pub reload: bool,
    /// Every change seen since the feed started (dropped ones too).
    pub seen: u64,
    /// The highest revision seen (events and progress lines).
    pub revision: u64,
    pub link: Link,
    /// Something above changed since the UI last took the inbox.
    fresh: bool,
}

impl Inbox {
    fn push(&mut self, change: Change) {
        self.seen += 1;
        self.revision = self.revision.max(change.revision);
        self.fresh = true;
        if self.reload {
            return;
        }
        if self.changes.len() >= MAX_QUEUED {
            self.changes = Vec::new();
            self.reload = true;
        } else {
            self.changes.push(change);
        }
    }

    fn set_link(&mut self, link: Link) {
        if self.link != link {
            self.link = link;
            self.fresh = true;
        }
    }
}

/// The shared inbox and the stop flag.
#[derive(Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    stop: AtomicBool,
}

impl Shared {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // The thread holding the lock only moves data: a poisoned inbox is
        // still whole.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A server to follow, not yet started.
pub struct Feed {
    client: Client,
    /// Seconds between the server's progress lines when nothing happens:
    /// below the client's read timeout, and how long stopping may take.
    progress_secs: u64,
}

impl Feed {
    pub fn new(client: Client, progress_secs: u64) -> Feed {
        Feed {
            client,
            progress_secs: progress_secs.max(1),
        }
    }

    /// Starts following from `from_revision` on a thread of its own.
    pub fn start(self, from_revision: u64) -> Result<Live> {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("kvr-tui-watch".into())
            .spawn(move || follow(&self, &theirs, from_revision))
            .map_err(|e| Error::io("cannot start the browser's watch thread", e))?;
        Ok(Live { shared })
    }
}

/// The UI's handle on a running feed. Dropping it stops the thread (at
/// its next line or reconnection; it is not waited for).
pub struct Live {
    shared: Arc<Shared>,
}

impl Live {
    /// What arrived since the last call, if anything did.
    pub fn take(&self) -> Option<Inbox> {
        let mut inbox = self.shared.inbox();
        if !inbox.fresh {
            return None;
        }
        let taken = Inbox {
            changes: std::mem::take(&mut inbox.changes),
            reload: std::mem::take(&mut inbox.reload),
            seen: inbox.seen,
            revision: inbox.revision,
            link: inbox.link.clone(),
            fresh: false,
        };
        inbox.fresh = false;
        Some(taken)
    }
}

#[cfg(test)]
impl Live {
    /// Changes seen so far, without taking them.
    pub fn seen(&self) -> u64 {
        self.shared.inbox().seen
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// The fields of a watch line the browser looks at (keys only).
#[derive(Debug, Deserialize)]
struct Line {
    revision: Option<u64>,
    op: Option<String>,
    key: Option<String>,
    key_b64: Option<String>,
    #[serde(default)]
    expired: bool,
    progress_revision: Option<u64>,
    error: Option<String>,
    next_revision: Option<u64>,
}

impl Line {
    fn key(&self) -> Result<Vec<u8>> {
        match (&self.key, &self.key_b64) {
            (Some(k), _) => Ok(k.as_bytes().to_vec()),
            (None, Some(b)) => B64
                .decode(b)
                .map_err(|e| Error::Remote(format!("bad key_b64 in a watch line: {e}"))),
            (None, None) => Err(Error::Remote("a watch event without a key".into())),
        }
    }
}

/// The reconnecting loop, until the UI drops its [`Live`].
fn follow(feed: &Feed, shared: &Shared, from_revision: u64) {
    let mut next = Some(from_revision);
    // After `compacted` the feed starts over from now: once the new
    // stream has begun, the UI reloads, so nothing in between is lost.
    let mut restarted = false;
    let mut backoff = FIRST_BACKOFF;
    while !shared.stop.load(Ordering::SeqCst) {
        let mut heard = false;
        let result = stream(feed, shared, &mut next, &mut restarted, &mut heard);
        if heard {
            backoff = FIRST_BACKOFF;
        }
        let why = match result {
            Ok(()) => "the server ended the stream".to_string(),
            Err(Error::Compacted { .. }) => {
                next = None;
                restarted = true;
                "the changes since the last one seen are no longer kept".to_string()
            }
            Err(
                e @ (Error::Unavailable { .. }
                | Error::Io { .. }
                | Error::Storage(_)
                | Error::Remote(_)),
            ) => e.to_string(),
            Err(e) => {
                shared.inbox().set_link(Link::Failed(e.to_string()));
                return;
            }
        };
        shared.inbox().set_link(Link::Reconnecting(why));
        pause(shared, backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One watch request, its lines into the inbox until it ends.
fn stream(
    feed: &Feed,
    shared: &Shared,
    next: &mut Option<u64>,
    restarted: &mut bool,
    heard: &mut bool,
) -> Result<()> {
    let w = WatchQuery {
        from_revision: *next,
        keys_only: true,
        progress_secs: feed.progress_secs,
        ..WatchQuery::default()
    };
    // A server behind a revision this feed saw serves another database
    // (a restored backup, another file at the same address): waiting for
    // the revision after it would miss every change until then.
    let from = *next;
    let mut behind = false;
    let result = feed.client.watch(
        &w,
        &mut |at| match (at, from) {
            (Some(at), Some(from)) if at + 1 < from => {
                behind = true;
                Err(Error::Remote(format!(
                    "the server is at revision {at}, behind revision {} seen before (a \
                     restored backup, or another database): reading everything again",
                    from - 1
                )))
            }
            _ => Ok(()),
        },
        &mut |text| {
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let line: Line = serde_json::from_slice(text)
                .map_err(|e| Error::Remote(format!("bad watch line from the server: {e}")))?;
            *heard = true;
            let mut inbox = shared.inbox();
            inbox.set_link(Link::Live);
            if std::mem::take(restarted) {
                inbox.reload = true;
                inbox.changes.clear();
                inbox.fresh = true;
            }
            take_line(&line, next, &mut inbox)
        },
    );
    if behind {
        // From now on, and the browser reads everything again once the
        // new stream has begun (as after `compacted`).
        *next = None;
        *restarted = true;
        shared.inbox().revision = 0;
    }
    result
}

/// One line of the stream into the inbox; `next` is the revision to
/// resume from. Returns whether to go on reading.
fn take_line(line: &Line, next: &mut Option<u64>, inbox: &mut Inbox) -> Result<bool> {
    let from = next.unwrap_or(0);
    match (line.revision, line.progress_revision, &line.error) {
        (Some(r), _, _) if r >= from => {
            *next = Some(r + 1);
            inbox.push(Change {
                revision: r,
                key: line.key()?,
                deleted: line.op.as_deref() == Some("delete"),
                expired: line.expired,
            });
        }
        (Some(_), _, _) => {} // seen before a reconnect
        (None, Some(p), _) => {
            *next = Some(from.max(p + 1));
            inbox.revision = inbox.revision.max(p);
        }
        (None, None, Some(_)) => {
            // lagging / unavailable: resume where the server says.
            if let Some(n) = line.next_revision {
                *next = Some(from.max(n));
            }
            return Ok(false);
        }
        _ => {}
    }
    Ok(true)
}

/// Sleeps `total`, waking early when the UI stops the feed.
fn pause(shared: &Shared, total: Duration) {
    let end = Instant::now() + total;
    while !shared.stop.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn resumes_after_the_highest_revision_and_skips_repeats() {
        let mut inbox = Inbox::default();
        let mut next = Some(5);
        take_line(&line(r#"{"progress_revision":4}"#), &mut next, &mut inbox).unwrap();
        assert_eq!(next, Some(5));
        let put = r#"{"revision":5,"op":"put","key":"a"}"#;
        take_line(&line(put), &mut next, &mut inbox).unwrap();
        // The same event again after a reconnect is not a second change.
        take_line(&line(put), &mut next, &mut inbox).unwrap();
        let del = r#"{"revision":6,"op":"delete","key_b64":"/w==","expired":true}"#;
        take_line(&line(del), &mut next, &mut inbox).unwrap();
        take_line(&line(r#"{"progress_revision":9}"#), &mut next, &mut inbox).unwrap();
        assert_eq!(next, Some(10));
        assert_eq!(inbox.seen, 2);
        assert_eq!(inbox.revision, 9);
        assert_eq!(inbox.changes[1].key, vec![0xff]);
        assert!(inbox.changes[1].deleted && inbox.changes[1].expired);
        assert!(!inbox.changes[0].deleted);
        let lag = r#"{"error":"lagging","next_revision":12}"#;
        assert!(!take_line(&line(lag), &mut next, &mut inbox).unwrap());
        assert_eq!(next, Some(12));
    }

    #[test]
    fn a_burst_becomes_one_reload() {
        let mut inbox = Inbox::default();
        for r in 1..=(MAX_QUEUED as u64 * 3) {
            inbox.push(Change {
                revision: r,
                key: format!("k{r}").into_bytes(),
                deleted: false,
                expired: false,
            });
        }
        assert!(inbox.reload);
        assert!(inbox.changes.is_empty());
        assert_eq!(inbox.seen, MAX_QUEUED as u64 * 3);
        assert_eq!(inbox.revision, MAX_QUEUED as u64 * 3);
    }
}
