//! The one typed error of kvr.
//!
//! Everything below the command line (the store, the JSON lines parser, later
//! the HTTP client) returns [`Error`]. The two places that turn an error into
//! something a user sees sit side by side here: [`Error::exit_code`] for the
//! CLI and [`Error::kind`] for the HTTP API, a [`Code`] that has the error
//! code and its one status. Both are exhaustive `match`es, so a new variant
//! forces both decisions.

use std::path::PathBuf;

/// Result with kvr's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::DatabaseMissing`] of `path`, saying whether a file is there,
/// or a command is creating one.
pub fn database_missing(path: &std::path::Path) -> Error {
    let creator = crate::store::create::creator_of(path);
    // Held by nobody: what a killed creation left (a batch killed before
    // its commit leaves all it had written there).
    let leftover = match creator {
        Some(_) => None,
        None => std::fs::metadata(crate::store::create::temp_path(path))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len()),
    };
    Error::DatabaseMissing {
        path: path.to_path_buf(),
        unfinished: path.exists(),
        creator,
        leftover,
    }
}

/// What [`Error::DatabaseMissing`] adds after "does not exist".
fn missing_detail(
    path: &std::path::Path,
    unfinished: bool,
    creator: Option<&str>,
    leftover: Option<u64>,
) -> String {
    let mut detail = match (creator, unfinished) {
        (Some(creator), _) => {
            format!(" yet: {creator} is creating it, and it appears when that command commits")
        }
        (None, true) => " as a database: the file there is one whose creation never finished \
                         (empty or partly written; put or batch creates the database in it)"
            .to_string(),
        (None, false) => String::new(),
    };
    if let Some(bytes) = leftover {
        detail.push_str(&format!(
            " ({} beside it, {bytes} bytes, was left by a creation that was killed: the next \
             put or batch reuses it; remove it to free the space)",
            crate::store::create::temp_path(path).display()
        ));
    }
    detail
}

/// What went wrong, in the terms the contract (SPEC.md) speaks of.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist (exit 1, HTTP 404 `not_found`).
    #[error("key {key} not found")]
    KeyNotFound { key: String },

    /// A read-only command was pointed at a path with no database (exit 1):
    /// nothing there, or a file whose creation never finished (`unfinished`:
    /// empty or partly written, which `put` or `batch` replaces).
    #[error(
        "{} does not exist{}",
        path.display(),
        missing_detail(path, *unfinished, creator.as_deref(), *leftover)
    )]
    DatabaseMissing {
        path: PathBuf,
        unfinished: bool,
        /// The process creating it (a `kvr batch` that has not committed).
        creator: Option<String>,
        /// The size of a `DB.creating` no process holds.
        leftover: Option<u64>,
    },

    /// Bad input or usage; nothing was written (exit 2, HTTP 400).
    #[error("{}{message}", line_prefix(*line))]
    Invalid { line: Option<u64>, message: String },

    /// A request over a configured size limit (exit 2, HTTP 413).
    #[error("{message}")]
    TooLarge { message: String },

    /// An `if_revision` / `--if-revision` / `If-Match` condition did not hold
    /// (exit 4, HTTP 412). `current` is the key's revision, `None` if absent.
    #[error(
        "{}precondition failed for key {key}: expected revision {expected}, current {}",
        line_prefix(*line),
        current.map_or_else(|| "absent".to_string(), |r| r.to_string())
    )]
    PreconditionFailed {
        line: Option<u64>,
        key: String,
        expected: String,
        current: Option<u64>,
    },

    /// A creating command was pointed into a directory that does not exist (exit 1).
    #[error(
        "cannot create {}: the directory {} does not exist",
        path.display(),
        dir.display()
    )]
    DirectoryMissing { path: PathBuf, dir: PathBuf },

    /// Another process holds the database file (exit 3).
    #[error(
        "{} is {}in use by {}{}{}",
        path.display(),
        if waited.is_zero() { "" } else { "still " },
        holder.as_deref().unwrap_or("another process"),
        waited_text(*waited),
        in_use_hint(server.as_deref(), *file_command, holder.as_deref(), !waited.is_zero())
    )]
    InUse {
        path: PathBuf,
        /// How long this command waited for it (`--lock-timeout`).
        waited: std::time::Duration,
        /// The URL of the `kvr serve` holding it, when it could be learned.
        server: Option<String>,
        /// The holding process, e.g. `kvr tui --db F (pid 42)`, when known.
        holder: Option<String>,
        /// A command that works on the file only (`check`, `compact`): the
        /// hint says to stop the holder instead of suggesting `--server`.
        file_command: Option<&'static str>,
    },

    /// A backup's DEST is a database file another process holds, or one
    /// with a write-ahead log still to replay: replacing it would lose
    /// what that process writes (exit 3).
    #[error("{0}")]
    DestInUse(String),

    /// The filesystem is full (exit 3, HTTP 507).
    #[error("disk full: {context}; free some space and retry")]
    DiskFull { context: String },

    /// Any other I/O failure (exit 3, HTTP 500).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The database file is damaged or from an unknown format (exit 3, HTTP 500).
    #[error("{0}")]
    Corrupt(String),

    /// A failure inside the storage engine that is none of the above (exit 3, HTTP 500).
    #[error("storage error: {0}")]
    Storage(String),

    /// A fault in kvr's own code, caught (a panic; exit 3, HTTP 500). Its
    /// report with the place is on stderr: a bug to report.
    #[error("internal error: {0}")]
    Internal(String),

    /// Talking to a kvr server failed in a way none of the other variants
    /// covers: a transport failure, an answer that is not kvr's (exit 3,
    /// HTTP 500). Not a [`Error::Storage`]: that one is about the database.
    #[error("{0}")]
    Remote(String),

    /// SIGINT or SIGTERM stopped a command (exit 3, HTTP 500); the message
    /// says what was left undone.
    #[error("{0}")]
    Interrupted(String),

    /// The server asked for a token and none or a wrong one was given (exit 3, HTTP 401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),

    /// A load test whose requests mostly failed (`kvr bench`): exit 1 when
    /// they were mostly reads of absent keys, else 3; never sent over HTTP.
    #[error("{message}")]
    MostlyFailed { message: String, not_found: bool },

    /// TLS could not be set up or the server's certificate was refused
    /// (exit 3, HTTP 500); the message names the server and what to do.
    #[error("{0}")]
    Tls(String),

    /// A watch from a revision whose events are no longer kept (exit 1,
    /// HTTP 410 `compacted` with `oldest_revision`).
    /// `resumed`: the watch was resuming after a break (`kvr watch`), not
    /// starting at a revision the user gave.
    #[error("{}", compacted_message(*requested, *oldest, *resumed))]
    Compacted {
        requested: u64,
        oldest: u64,
        resumed: bool,
    },

    /// Try again later: unreachable, timed out, overloaded, shutting down (exit 5, HTTP 503).
    #[error("{message}")]
    Unavailable { message: String, overloaded: bool },

    /// A write was proposed to the cluster but its fate is unknown
    /// (leadership lost before commit, the leader went away): exit 5, HTTP
    /// 503 `outcome_unknown`.
    #[error("{message}")]
    OutcomeUnknown { message: String },

    /// A cluster route on a standalone server (exit 2, HTTP 404).
    #[error(
        "this server is not part of a cluster: it runs standalone (a cluster's first node \
         starts with serve --raft-listen ADDR --cluster-init)"
    )]
    NotClustered,

    /// A join that names an address a current member has (exit 3, HTTP 409).
    #[error("{0}")]
    Conflict(String),

    /// A cluster command named a node id the cluster does not have (exit 1, HTTP 404).
    #[error("no node {id} in this cluster")]
    NodeNotFound { id: u64 },

    /// This node was removed from its cluster (exit 3, HTTP 503 `removed`).
    #[error("{0}")]
    Removed(String),

    /// An `Idempotency-Key` seen before with another request (a different
    /// method, key, query or body): exit 2, HTTP 422.
    #[error(
        "the Idempotency-Key {key:?} was used before for a different request; \
         use a new key for a new request"
    )]
    IdempotencyKeyReused { key: String },
}

/// The `expected` text of [`Error::PreconditionFailed`] for a required
/// revision (0: absent), or `None` for `If-Match: *`. The store and the
/// writer build the same texts; [`expected_revision`] reads them back.
pub fn expected_text(expected: Option<u64>) -> String {
    match expected {
        Some(0) => "0 (absent)".to_string(),
        Some(n) => n.to_string(),
        None => "any (If-Match: *)".to_string(),
    }
}

/// The revision an `expected` text names (`None` for `If-Match: *`), for
/// the number in a 412 body.
pub fn expected_revision(text: &str) -> Option<u64> {
    text.split(' ').next().and_then(|t| t.parse().ok())
}

fn line_prefix(line: Option<u64>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn waited_text(waited: std::time::Duration) -> String {
    match waited.is_zero() {
        true => String::new(),
        // As given (`--lock-timeout 2`: "2 s"), to a tenth of a second.
        false => format!(
            " after waiting {} s",
            (waited.as_secs_f64() * 10.0).round() / 10.0
        ),
    }
}

fn in_use_hint(
    server: Option<&str>,
    file_command: Option<&str>,
    holder: Option<&str>,
    waited: bool,
) -> String {
    let wait = match waited {
        true => "a longer --lock-timeout waits longer",
        false => "give this command --lock-timeout SECS to wait for it",
    };
    // A command of its own (`kvr --db F batch …`, a browser): it lets go
    // when it is done.
    let passing = holder.is_some_and(|h| h.starts_with("kvr ") && !h.contains(" serve"));
    match (file_command, server) {
        // A second server of the file: `serve` refuses `--server`.
        (Some("serve"), Some(url)) => format!(
            "; it is served at {url} already, and a file has one server: use that one, or \
             serve another file"
        ),
        (Some("serve"), None) if passing => {
            format!("; it lets go of the file when it is done: {wait}")
        }
        (Some("serve"), None) => {
            "; a file has one server, and a process holds this one: stop it first, or serve \
             another file"
                .to_string()
        }
        // `check` and `compact` refuse `--server`: suggesting it leads nowhere.
        (Some(command), _) if passing => format!(
            "; kvr {command} works only on a file no process holds, and it lets go of the file \
             when it is done: {wait}"
        ),
        (Some("check"), _) => format!(
            "; kvr check reads the file only while no process holds it: stop that process \
             first, or check a backup instead (kvr --server {url} backup COPY, then \
             kvr --db COPY check)",
            url = server.unwrap_or("URL")
        ),
        (Some(command), _) => format!(
            "; kvr {command} works only on a file no process holds: stop that process first"
        ),
        (None, Some(url)) => format!("; it is served at {url}: use --server {url}"),
        // Sharing a file between processes is what a server is for.
        (None, None) if passing => {
            format!(
                "; it lets go of the file when it is done: {wait}; to share the file between \
                 processes, serve it (kvr serve) and use --server URL"
            )
        }
        (None, None) => match waited {
            true => "; if a kvr serve owns it, use --server URL; a longer --lock-timeout waits \
                     longer"
                .to_string(),
            false => "; if a kvr serve owns it, use --server URL, or wait with --lock-timeout SECS"
                .to_string(),
        },
    }
}

impl Error {
    /// An invalid-input error not tied to a JSON line.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            line: None,
            message: message.into(),
        }
    }

    /// This error as `command` (`check`, `compact`, `serve`: commands that
    /// refuse `--server`) reports it: an [`Error::InUse`] says to stop the
    /// holder (or, for `serve`, to use the server that has the file).
    pub fn for_file_command(self, command: &'static str) -> Self {
        match self {
            Error::InUse {
                path,
                waited,
                server,
                holder,
                ..
            } => Error::InUse {
                path,
                waited,
                server,
                holder,
                file_command: Some(command),
            },
            other => other,
        }
    }

    /// An I/O error with what was being done; ENOSPC becomes [`Error::DiskFull`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let context = context.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            Error::DiskFull { context }
        } else {
            Error::Io { context, source }
        }
    }

    /// The process exit code of SPEC "Exit codes".
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::KeyNotFound { .. }
            | Error::DatabaseMissing { .. }
            | Error::DirectoryMissing { .. }
            | Error::Compacted { .. }
            | Error::NodeNotFound { .. }
            | Error::MostlyFailed {
                not_found: true, ..
            } => 1,
            Error::Invalid { .. }
            | Error::TooLarge { .. }
            | Error::NotClustered
            | Error::IdempotencyKeyReused { .. } => 2,
            Error::Conflict(_) | Error::Removed(_) => 3,
            Error::OutcomeUnknown { .. } => 5,
            Error::InUse { .. }
            | Error::DestInUse(_)
            | Error::DiskFull { .. }
            | Error::Io { .. }
            | Error::Corrupt(_)
            | Error::Storage(_)
            | Error::Internal(_)
            | Error::Remote(_)
            | Error::Interrupted(_)
            | Error::Unauthorized(_)
            | Error::MostlyFailed { .. }
            | Error::Tls(_) => 3,
            Error::PreconditionFailed { .. } => 4,
            Error::Unavailable { .. } => 5,
        }
    }

    /// The HTTP status of SPEC "HTTP API": the one of [`Error::kind`].
    pub fn http_status(&self) -> u16 {
        self.kind().status()
    }

    /// The error code of the HTTP error body, read back by the CLI client.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The [`Code`] this error is answered with over HTTP.
    pub fn kind(&self) -> Code {
        match self {
            Error::KeyNotFound { .. }
            | Error::DatabaseMissing { .. }
            | Error::DirectoryMissing { .. } => Code::NotFound,
            Error::Invalid { .. } => Code::BadRequest,
            Error::Compacted { .. } => Code::Compacted,
            Error::TooLarge { .. } => Code::PayloadTooLarge,
            Error::PreconditionFailed { .. } => Code::PreconditionFailed,
            Error::Unauthorized(_) => Code::Unauthorized,
            Error::DiskFull { .. } => Code::InsufficientStorage,
            Error::Unavailable {
                overloaded: true, ..
            } => Code::Overloaded,
            Error::Unavailable { .. } => Code::Unavailable,
            Error::OutcomeUnknown { .. } => Code::OutcomeUnknown,
            Error::NotClustered => Code::NotClustered,
            Error::Conflict(_) => Code::Conflict,
            Error::NodeNotFound { .. } => Code::NotFound,
            Error::Removed(_) => Code::Removed,
            Error::IdempotencyKeyReused { .. } => Code::IdempotencyKeyReused,
            Error::InUse { .. }
            | Error::DestInUse(_)
            | Error::Io { .. }
            | Error::Corrupt(_)
            | Error::Storage(_)
            | Error::Internal(_)
            | Error::Remote(_)
            | Error::Interrupted(_)
            | Error::MostlyFailed { .. }
            | Error::Tls(_) => Code::Internal,
        }
    }
}

/// The error codes of the HTTP API (`{"error":CODE,...}`), each with its one
/// status. [`Code::ALL`] is what the server can answer: the OpenAPI
/// document's drift test compares it with the codes the document lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    Unauthorized,
    NotFound,
    NoRoute,
    MethodNotAllowed,
    PreconditionFailed,
    PayloadTooLarge,
    Overloaded,
    Unavailable,
    InsufficientStorage,
    Internal,
    OutcomeUnknown,
    NotClustered,
    Conflict,
    Removed,
    Compacted,
    IdempotencyKeyReused,
}

impl Code {
    /// Every code, once; a new variant belongs here too.
    pub const ALL: [Code; 17] = [
        Code::BadRequest,
        Code::Unauthorized,
        Code::NotFound,
        Code::NoRoute,
        Code::MethodNotAllowed,
        Code::PreconditionFailed,
        Code::PayloadTooLarge,
        Code::Overloaded,
        Code::Unavailable,
        Code::InsufficientStorage,
        Code::Internal,
        Code::OutcomeUnknown,
        Code::NotClustered,
        Code::Conflict,
        Code::Removed,
        Code::Compacted,
        Code::IdempotencyKeyReused,
    ];

    /// The code as the error body writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::Unauthorized => "unauthorized",
            Code::NotFound => "not_found",
            Code::NoRoute => "no_route",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::PreconditionFailed => "precondition_failed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::Overloaded => "overloaded",
            Code::Unavailable => "unavailable",
            Code::InsufficientStorage => "insufficient_storage",
            Code::Internal => "internal",
            Code::OutcomeUnknown => "outcome_unknown",
            Code::NotClustered => "not_clustered",
            Code::Conflict => "conflict",
            Code::Removed => "removed",
            Code::Compacted => "compacted",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }

    /// The HTTP status a response with this code has.
    pub fn status(self) -> u16 {
        match self {
            Code::BadRequest => 400,
            Code::Unauthorized => 401,
            Code::NotFound | Code::NoRoute => 404,
            Code::MethodNotAllowed => 405,
            Code::PreconditionFailed => 412,
            Code::PayloadTooLarge => 413,
            Code::Overloaded | Code::Unavailable | Code::OutcomeUnknown | Code::Removed => 503,
            Code::NotClustered => 404,
            Code::Conflict => 409,
            Code::Compacted => 410,
            Code::IdempotencyKeyReused => 422,
            Code::InsufficientStorage => 507,
            Code::Internal => 500,
        }
    }
}

/// The text of [`Error::Compacted`] (the CLI's words).
fn compacted_message(requested: u64, oldest: u64, resumed: bool) -> String {
    compacted_message_naming(requested, oldest, resumed, "--from-revision")
}

impl Error {
    /// The message of this error in an HTTP error body: the same as the
    /// CLI's but for a `compacted`, which names the query parameter a
    /// client gives instead of the CLI's flag.
    pub fn http_message(&self) -> String {
        match self {
            Error::Compacted {
                requested,
                oldest,
                resumed,
            } => compacted_message_naming(*requested, *oldest, *resumed, "from_revision"),
            other => other.to_string(),
        }
    }
}

fn compacted_message_naming(requested: u64, oldest: u64, resumed: bool, from: &str) -> String {
    if resumed {
        format!(
            "cannot resume the watch: the events from revision {requested} on are no longer \
             kept (the oldest revision the history keeps is {oldest}); start a new watch"
        )
    } else {
        format!(
            "revision {requested} is compacted: the oldest revision the history keeps is \
             {oldest}; watch from {oldest} or later (or without {from})"
        )
    }
}

/// The message a caught panic carries (`std::panic::catch_unwind`).
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_code_is_listed_once() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }
}
