//! The thread that talks to the data source, so the UI never waits on it.
//!
//! A remote `kvr serve` can be slow or gone; a call on the UI thread would
//! freeze the screen until its timeout. The worker owns the `Kv`, runs
//! [`Request`]s one at a time and sends a [`Response`] for each. It opens the
//! source itself, because a `Box<dyn Kv>` need not be `Send`: only the
//! opening function crosses threads.
//!
//! A local file is held only while calls come (`hold.rs`): the worker lets
//! go of it when idle and opens it again for the next call.
//!
//! When the UI goes away the request channel closes, the worker finishes the
//! call in flight, drops the `Kv` (closing a local file cleanly) and ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::types::{Entry, RangeQuery, Stats};

use super::glob::Glob;
use super::hold::{Opener, Reopen, Slot};

/// A call on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Stats,
    /// When the next key in a file expires (see [`Kv::next_expiry`]).
    NextExpiry,
    /// Keys only, as the list pages them; `tag` says what they are for.
    Keys {
        tag: KeysTag,
        query: RangeQuery,
    },
    /// One step of a pattern filter's read: up to the query's limit of
    /// keys (see [`SCAN_BATCH`]) are read and the ones matching `glob`
    /// kept, at most `want` of them. The list asks for the next step.
    Scan {
        tag: KeysTag,
        query: RangeQuery,
        glob: Glob,
        want: usize,
    },
    Get {
        key: Vec<u8>,
    },
    /// Whether a key exists, before a new one is edited (`n`).
    Probe {
        key: Vec<u8>,
    },
    /// What a key holds now, after a save of it was refused.
    Current {
        key: Vec<u8>,
    },
    /// How many keys have `prefix`, counting at most [`COUNT_LIMIT`].
    Count {
        prefix: Vec<u8>,
    },
    /// One step of counting a pattern's matches (the query's limit of
    /// keys read); `id` names the count it belongs to.
    CountMatches {
        id: u64,
        query: RangeQuery,
        glob: Glob,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        if_revision: u64,
    },
    Delete {
        key: Vec<u8>,
        if_revision: u64,
    },
    /// Let go of a file now, before the browser is suspended (Ctrl-Z): a
    /// stopped process would hold it, and shut every other kvr out of it,
    /// until it is continued.
    Release,
}

/// Why keys were asked for; handed back with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysTag {
    /// The list's generation when asked: answers for an older one are stale.
    pub generation: u64,
    pub purpose: Purpose,
}

/// What to do with a page of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A new window from the first key.
    Top,
    /// A new window from a key (or the next one), the cursor on it.
    Seek,
    /// A new window of the last keys (descending), cursor on the last.
    Bottom,
    /// More keys after the window.
    Forward,
    /// More keys before the window (descending).
    Backward,
}

/// What one step of a pattern's read found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanStep {
    /// The matches, in the query's order (for a scan, not a count).
    pub keys: Vec<Vec<u8>>,
    /// How many keys matched.
    pub matched: u64,
    /// How many keys were read.
    pub read: u64,
    /// The last key read, when the range may go on past it (the step
    /// stopped at its limit, or at `want` matches); `None`: it ended.
    pub next: Option<Vec<u8>>,
}

/// The answer to one [`Request`].
#[derive(Debug)]
pub enum Response {
    Stats(Result<Stats>),
    /// `None` also when it could not be read: the list then waits for `r`.
    NextExpiry(Option<u64>),
    Keys {
        tag: KeysTag,
        result: Result<Vec<Vec<u8>>>,
    },
    Scanned {
        tag: KeysTag,
        result: Result<ScanStep>,
    },
    Value {
        key: Vec<u8>,
        result: Result<Option<Entry>>,
    },
    Probe {
        key: Vec<u8>,
        result: Result<Option<Entry>>,
    },
    Current {
        key: Vec<u8>,
        result: Result<Option<Entry>>,
    },
    /// The keys with `prefix`: how many, and whether there are more than
    /// that (the count stopped at [`COUNT_LIMIT`]).
    Count {
        prefix: Vec<u8>,
        result: Result<(u64, bool)>,
    },
    /// A step of [`Request::CountMatches`] (its `keys` left empty).
    Counted {
        id: u64,
        result: Result<ScanStep>,
    },
    Put {
        key: Vec<u8>,
        created: bool,
        result: Result<u64>,
    },
    Deleted {
        key: Vec<u8>,
        result: Result<u64>,
    },
    /// A read of a value that a later one made pointless was skipped.
    Skipped,
    /// [`Request::Release`] done: nothing is held.
    Released,
    /// The call panicked (a bug in the source); the message says where.
    Crashed(String),
}

/// The UI's handle on the worker thread.
pub struct Worker {
    requests: Option<Sender<Request>>,
    responses: Receiver<Response>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    /// Set on shutdown: calls still queued are dropped, not made.
    stop: Arc<AtomicBool>,
    /// A local file (`start_file`), not a server's client.
    file: bool,
}

impl Worker {
    /// Starts the thread, which opens the source with `open` and holds
    /// it until the worker ends (a server's client). Returns the source's
    /// description, or the error opening it failed with.
    pub fn start<F>(open: F) -> Result<(Worker, String)>
    where
        F: FnOnce() -> Result<Box<dyn Kv>> + Send + 'static,
    {
        Self::spawn(move || open().map(Slot::held), false)
    }

    /// Starts the thread on a local file: opened for reading by `open`
    /// now (so that browsing and quitting leave the file's bytes as they
    /// were; its description still says whether it may be written), let
    /// go of after `idle` without a call, and opened again by `open` for
    /// the next one, for writing when that is a save or delete (see
    /// [`super::hold`]).
    pub fn start_file(mut open: Opener, idle: Duration) -> Result<(Worker, String)> {
        Self::spawn(
            move || {
                let first = open(Reopen {
                    write: false,
                    wait: false,
                })?;
                Ok(Slot::file(first, open, idle))
            },
            true,
        )
    }

    fn spawn<F>(open: F, file: bool) -> Result<(Worker, String)>
    where
        F: FnOnce() -> Result<Slot> + Send + 'static,
    {
        let (req_tx, req_rx) = mpsc::channel();
        let (resp_tx, resp_rx) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kvr-tui-source".into())
            .spawn(move || {
                let mut slot = match open() {
                    Ok(slot) => slot,
                    Err(e) => {
                        let _ = open_tx.send(Err(e));
                        return;
                    }
                };
                let _ = open_tx.send(slot.ready(false, false).map(|kv| kv.source()));
                serve(&mut slot, &req_rx, &resp_tx, &stopped);
                drop(slot);
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::io("cannot start the browser's worker thread", e))?;
        // A thread that ended without a word panicked while opening.
        let gone = |_| Error::Storage("the source thread ended while opening".into());
        let source = open_rx.recv().map_err(gone)??;
        let worker = Worker {
            requests: Some(req_tx),
            responses: resp_rx,
            done: done_rx,
            thread: Some(thread),
            stop,
            file,
        };
        Ok((worker, source))
    }

    /// Whether the source is a local file.
    pub fn holds_file(&self) -> bool {
        self.file
    }

    /// Queues a request; a dead worker shows up as missing answers.
    pub fn send(&self, request: Request) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(request);
        }
    }

    /// An answer, if one is ready.
    pub fn try_recv(&self) -> Option<Response> {
        self.responses.try_recv().ok()
    }

    /// Waits up to `timeout` for an answer.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Response> {
        self.responses.recv_timeout(timeout).ok()
    }

    /// Closes the request channel and waits up to `grace` for the worker to
    /// finish its call and close the source. A source stuck beyond that (a
    /// server that does not answer) is left behind: the process is exiting.
    pub fn shutdown(&mut self, grace: Duration) {
        self.requests = None;
        self.stop.store(true, Ordering::SeqCst);
        match self.done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.requests.is_some() {
            self.shutdown(SHUTDOWN_GRACE);
        }
    }
}

/// Most keys counted for a filter's "N keys" (shown as "100,000+"):
/// counting reads every matching key, and from a server each one crosses
/// the network, so an unbounded count of a broad prefix on a big store
/// would hold up every other call for seconds. 100,000 short keys are a
/// few MB and a fraction of a second.
pub const COUNT_LIMIT: u64 = 100_000;

/// Keys read by one step of a pattern filter's read or count. A sparse
/// pattern reads much of the store, and the worker answers one call at a
/// time: in steps, the value of the key under the cursor, a save or a
/// seek wait for one step at most, each step shows how far the read got,
/// and a read no longer wanted is simply not continued. 5,000 keys are a
/// few milliseconds on a file and one answer of a few hundred KB from a
/// server; a 10M-key store is read in 2,000 steps.
pub const SCAN_BATCH: u64 = 5_000;

/// How long quitting waits for a call in flight before leaving it behind.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs requests until the UI hangs up. Of several queued reads of a value
/// only the last is made: scrolling fast over a slow source must not queue
/// one read per key passed. A file is let go of while no call comes (see
/// [`super::hold`]) and opened again for the next.
fn serve(
    slot: &mut Slot,
    requests: &Receiver<Request>,
    responses: &Sender<Response>,
    stop: &AtomicBool,
) {
    while let Some(first) = next(slot, requests) {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        let last_get = batch.iter().rposition(|r| matches!(r, Request::Get { .. }));
        // Once a reopen waited in vain, the rest of the batch does not wait.
        let mut wait = true;
        for (i, request) in batch.into_iter().enumerate() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let skip = matches!(request, Request::Get { .. }) && Some(i) != last_get;
            let response = if request == Request::Release {
                slot.release();
                Response::Released
            } else if skip {
                Response::Skipped
            } else {
                guarded_call(slot, request, &mut wait)
            };
            if responses.send(response).is_err() {
                return;
            }
        }
    }
}

/// The next call; while a file is held, waits for one only as long as
/// the file may stay open, then lets go of it and waits on.
fn next(slot: &mut Slot, requests: &Receiver<Request>) -> Option<Request> {
    if let Some(idle) = slot.idle() {
        match requests.recv_timeout(idle) {
            Ok(request) => return Some(request),
            Err(RecvTimeoutError::Timeout) => slot.release(),
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
    requests.recv().ok()
}

/// Makes the call, opening the file again first if it was let go of; a
/// reopen that fails (the file in use by another process) is the call's
/// error. A panic in the source must not take the browser down with an
/// unrestored terminal or leave it waiting forever: it becomes an answer.
fn guarded_call(slot: &mut Slot, request: Request, wait: &mut bool) -> Response {
    // What to answer if the storage engine panics (on a damaged page): the
    // request without its value, which only the call needs.
    let shape = match &request {
        Request::Put {
            key, if_revision, ..
        } => Request::Put {
            key: key.clone(),
            value: Vec::new(),
            if_revision: *if_revision,
        },
        other => other.clone(),
    };
    let result = crate::panics::contain(|| {
        let write = matches!(request, Request::Put { .. } | Request::Delete { .. });
        match slot.ready(write, *wait) {
            Ok(kv) => call(kv, request),
            Err(e) => {
                *wait = false;
                failed(request, e)
            }
        }
    });
    match result {
        Ok(response) => response,
        // Its report is kept off the screen (`panics::install`): the
        // request fails with what it means, and browsing goes on.
        Err(caught) if caught.in_storage_engine => failed(
            shape,
            Error::Storage(format!(
                "the storage engine (redb) stopped on an internal error: {}; the file may be \
                 damaged: quit, and kvr check tells; if it is, restore a backup",
                caught.text
            )),
        ),
        Err(caught) => Response::Crashed(caught.text),
    }
}

/// The answer to `request` when the source could not be opened.
fn failed(request: Request, e: Error) -> Response {
    match request {
        Request::Stats => Response::Stats(Err(e)),
        Request::NextExpiry => Response::NextExpiry(None),
        Request::Keys { tag, .. } => Response::Keys {
            tag,
            result: Err(e),
        },
        Request::Scan { tag, .. } => Response::Scanned {
            tag,
            result: Err(e),
        },
        Request::CountMatches { id, .. } => Response::Counted { id, result: Err(e) },
        Request::Get { key } => Response::Value {
            key,
            result: Err(e),
        },
        Request::Probe { key } => Response::Probe {
            key,
            result: Err(e),
        },
        Request::Current { key } => Response::Current {
            key,
            result: Err(e),
        },
        Request::Count { prefix } => Response::Count {
            prefix,
            result: Err(e),
        },
        Request::Put {
            key, if_revision, ..
        } => Response::Put {
            key,
            created: if_revision == 0,
            result: Err(e),
        },
        Request::Delete { key, .. } => Response::Deleted {
            key,
            result: Err(e),
        },
        Request::Release => Response::Released,
    }
}

fn call(kv: &dyn Kv, request: Request) -> Response {
    match request {
        Request::Stats => Response::Stats(kv.stats()),
        Request::NextExpiry => {
            Response::NextExpiry(kv.next_expiry(crate::types::now_ms()).ok().flatten())
        }
        Request::Keys { tag, query } => Response::Keys {
            tag,
            result: keys(kv, &query),
        },
        Request::Scan {
            tag,
            query,
            glob,
            want,
        } => Response::Scanned {
            tag,
            result: scan(kv, &query, &glob, Some(want)),
        },
        Request::CountMatches { id, query, glob } => Response::Counted {
            id,
            result: scan(kv, &query, &glob, None),
        },
        Request::Get { key } => Response::Value {
            result: kv.get(&key),
            key,
        },
        Request::Probe { key } => Response::Probe {
            result: kv.get(&key),
            key,
        },
        Request::Current { key } => Response::Current {
            result: kv.get(&key),
            key,
        },
        Request::Count { prefix } => Response::Count {
            result: count(kv, &prefix),
            prefix,
        },
        Request::Put {
            key,
            value,
            if_revision,
        } => Response::Put {
            result: kv.put(&key, value, Some(if_revision)),
            created: if_revision == 0,
            key,
        },
        Request::Delete { key, if_revision } => Response::Deleted {
            result: kv.delete(&key, Some(if_revision)),
            key,
        },
        // Done by `serve` itself, which holds the file.
        Request::Release => Response::Released,
    }
}

fn keys(kv: &dyn Kv, query: &RangeQuery) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    kv.range(query, &mut |key, _| {
        keys.push(key.to_vec());
        Ok(true)
    })?;
    Ok(keys)
}

fn count(kv: &dyn Kv, prefix: &[u8]) -> Result<(u64, bool)> {
    let query = RangeQuery {
        prefix: Some(prefix.to_vec()),
        limit: Some(COUNT_LIMIT + 1),
        keys_only: true,
        ..RangeQuery::default()
    };
    let mut n = 0;
    kv.range(&query, &mut |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok((n.min(COUNT_LIMIT), n > COUNT_LIMIT))
}

/// One step of a pattern's read: the keys of `query` (its limit bounding
/// the step) that match `glob`, kept up to `want` of them (`None`: only
/// counted).
fn scan(kv: &dyn Kv, query: &RangeQuery, glob: &Glob, want: Option<usize>) -> Result<ScanStep> {
    let mut step = ScanStep::default();
    let mut last = Vec::new();
    let mut full = false;
    kv.range(query, &mut |key, _| {
        step.read += 1;
        last.clear();
        last.extend_from_slice(key);
        if glob.matches(key) {
            step.matched += 1;
            if let Some(want) = want {
                step.keys.push(key.to_vec());
                full = step.keys.len() >= want;
            }
        }
        Ok(!full)
    })?;
    let limit = query.limit.unwrap_or(u64::MAX);
    step.next = (full || step.read >= limit).then_some(last);
    Ok(step)
}
