//! The HTTP client behind `--server`: [`Client`] implements [`Kv`] over
//! `kvr serve`'s API, so commands give the same output and exit codes as
//! with a local file.
//!
//! * Error bodies (`{"error":CODE,…}`) are mapped back to the same
//!   [`Error`] variants the local store returns, by their code.
//! * Several URLs are tried in order, moving on only when one cannot be
//!   reached; then `cannot reach kvr server at URL (is kvr serve running?)`
//!   (exit 5). Against a cluster (a member answers with `X-Kvr-Node`), a
//!   503 `unavailable` and an unreachable member are retried (at the
//!   leader named by `X-Kvr-Leader` first) until `--timeout`, and so is a
//!   write whose outcome is unknown, with its Idempotency-Key. A write
//!   whose outcome is unknown at a standalone server goes to no other
//!   (exit 5, saying so): that one keeps its own idempotency records.
//! * Keys go in the path, percent-encoded, or as `?key=` when a segment is
//!   `.`, `..` or empty (which URL handling elsewhere could rewrite).
//! * Ranges are read as an NDJSON stream; a stream that breaks off is an
//!   error (exit 3), never a silently short result (`stream.rs`). The
//!   stream is read ahead of a slow reader (`read_ahead.rs`), so a paused
//!   pipe does not leave it unread until the server ends it.
//!
//! What a failed request means is in `failure.rs`, and what makes a
//! `--server` URL in `url.rs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use ureq::http::Response;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body, SendBody};

use crate::error::{Error, Result};
use crate::kv::{Kv, Visit};
use crate::limits;
use crate::server::target::percent_encode;
use crate::types::{Applied, Entry, RangeQuery, Stats};

mod failure;
pub use failure::{CHUNK_HINT, LINE_ALONE_HINT};
mod read_ahead;
mod stream;
mod url;

use failure::{
    batch_cut_off, batch_over_bytes, batch_too_large, error_of, gateway_failure,
    line_over_batch_bytes, not_our_pipe, transport_error, transport_error_given, unreachable,
    unreachable_message, value_cut_off, value_refused,
};
use stream::{range_target, read_stream, stalled, stream_stalled};
use url::NameLookup;
pub use url::{check_url, check_url_of, normal_url};

/// The header a write's idempotency key goes in (SPEC "Idempotency").
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// A batch input up to this size is kept in memory so that it can be sent
/// again after a failover: the server's default `--max-batch-bytes`.
const RETRY_BUFFER_BYTES: u64 = 64 << 20;
/// How long a cluster member has to answer `/healthz` before a retry is
/// sent to it. A member that is stopped or frozen (`kill -STOP`, a paused
/// VM) still accepts connections, so without this a retry sent to it (the
/// old leader a follower still names) waited for the whole `--timeout`
/// while the rest of the cluster took writes again.
const MEMBER_PROBE_WAIT: Duration = Duration::from_secs(1);
/// What a retried request keeps of `--timeout` for its last try: a
/// refusal comes back in milliseconds, a write that is taken needs a
/// commit.
const LAST_TRY: Duration = Duration::from_millis(250);
/// How often a list of servers none of which can be reached is tried
/// again (a refused connection costs next to nothing).
const UNREACHABLE_RETRY: Duration = Duration::from_millis(250);

/// A `kvr serve` (or a list of them) as a [`Kv`].
pub struct Client {
    agent: Agent,
    /// For an agent with less time ([`agent_of`]): a retry's.
    tls: TlsConfig,
    urls: Vec<String>,
    token: Option<String>,
    /// `--timeout`: also bounds the retries against a cluster.
    timeout: Duration,
    /// Reads with `?consistency=stale`.
    stale: bool,
    /// A server answered as a cluster member: retry through the cluster.
    clustered: std::sync::atomic::AtomicBool,
    /// Whether this client's first request has been sent: with several
    /// servers, the first one asked is probed before it (see
    /// [`Client::send_retrying_as`]).
    first_sent: std::sync::atomic::AtomicBool,
    /// Whether any server has answered this client yet ([`Client::send`]).
    answered: std::sync::atomic::AtomicBool,
    /// `--cacert`, for the advice when a certificate is refused.
    cacert: Option<std::path::PathBuf>,
}

/// `GET /v1/limits` (servers before it answer 404 `no_route`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ServerLimits {
    pub max_value_bytes: usize,
    pub max_batch_bytes: usize,
}

#[derive(Debug, Deserialize)]
struct BatchAnswer {
    applied: u64,
    revision: u64,
    #[serde(default)]
    puts: Option<u64>,
    #[serde(default)]
    deletes: Option<u64>,
}

impl Client {
    /// A client for the comma-separated `urls`; `https://` ones are verified
    /// against the system's roots plus `cacert` (see [`crate::tls`]).
    pub fn new(
        urls: &str,
        token: Option<String>,
        timeout: Duration,
        cacert: Option<&Path>,
    ) -> Result<Client> {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(normal_url)
            .collect();
        if urls.is_empty() {
            return Err(Error::invalid(
                "--server needs a URL, e.g. http://127.0.0.1:7070",
            ));
        }
        for url in &urls {
            check_url(url)?;
        }
        // The roots are read only when a URL needs them.
        let roots = if urls.iter().any(|u| u.starts_with("https://")) {
            crate::tls::roots(cacert)?
        } else {
            Vec::new()
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crate::tls::provider())
            .root_certs(RootCerts::new_with_certs(
                &roots
                    .iter()
                    .map(|c| Certificate::from_der(c).to_owned())
                    .collect::<Vec<_>>(),
            ))
            .build();
        let agent = agent_of(&tls, timeout, None);
        Ok(Client {
            agent,
            tls,
            urls,
            token,
            timeout,
            stale: false,
            clustered: std::sync::atomic::AtomicBool::new(false),
            first_sent: std::sync::atomic::AtomicBool::new(false),
            answered: std::sync::atomic::AtomicBool::new(false),
            cacert: cacert.map(Path::to_path_buf),
        })
    }

    /// Reads ask for `consistency=stale` (see `--consistency`).
    pub fn stale_reads(mut self, stale: bool) -> Client {
        self.stale = stale;
        self
    }

    /// `target` with `consistency=stale` when reads may be stale.
    fn read_target(&self, target: String) -> String {
        if !self.stale {
            target
        } else if target.contains('?') {
            format!("{target}&consistency=stale")
        } else {
            format!("{target}?consistency=stale")
        }
    }

    /// [`Client::send_retrying_as`] of a read: it changes nothing, so a
    /// server that cut the connection or did not answer in time is treated
    /// as one that cannot be reached: the next in the list is tried, and
    /// giving up is `unavailable` (exit 5).
    fn send_read(
        &self,
        request: impl FnMut(&Agent, &str, Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<(String, Response<Body>)> {
        self.send_retrying_as(Sent::Read, request)
    }

    /// [`Client::send_retrying_as`] of a write sent with an Idempotency-Key:
    /// repeating it cannot apply it twice, so an `outcome_unknown`, a
    /// timeout or a connection lost after sending is retried too (SPEC
    /// "Client"); giving up after one of those says the outcome is unknown.
    fn send_write(
        &self,
        request: impl FnMut(&Agent, &str, Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<(String, Response<Body>)> {
        self.send_retrying_as(Sent::KeyedWrite, request)
    }

    /// [`Client::send`] that rides out a cluster's elections and a busy
    /// server: a 503 `unavailable` or `overloaded` (the request was not
    /// applied) is retried, at the leader a member names first, then
    /// through the list, honouring `Retry-After`, until `--timeout`; so is
    /// a server that cannot be reached once a member has answered. Other
    /// answers, `outcome_unknown` included, are returned as they are.
    fn send_retrying_as(
        &self,
        sent: Sent,
        mut request: impl FnMut(&Agent, &str, Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<(String, Response<Body>)> {
        use std::sync::atomic::Ordering;
        let keyed_write = sent == Sent::KeyedWrite;
        let deadline = std::time::Instant::now() + self.timeout;
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut leader: Option<String> = None;
        // A keyed write that may have been applied: giving up says so.
        let mut unknown: Option<Error> = None;
        // Whether an attempt was made: the first uses the client's agent
        // (and its pooled connection), only a retry one of its own.
        let mut tried = false;
        // What a member answered in an earlier round: named if a later try
        // is cut off by --timeout, rather than only "did not answer".
        let mut earlier: Option<Error> = None;
        // The members that answered this call, and when: one that answered
        // within the last two seconds (a refusal with `Retry-After: 1`) is
        // not probed before it is asked again.
        let mut answered_at: Vec<(String, std::time::Instant)> = Vec::new();
        // Whether a read was sent again after a connection closed without
        // an answer (once a call: see `stale`).
        let mut stale_retried = false;
        loop {
            let first = leader.take();
            let mut order: Vec<String> = first.clone().into_iter().collect();
            order.extend(
                self.urls
                    .iter()
                    .filter(|u| first.as_ref() != Some(*u))
                    .cloned(),
            );
            let mut last: Option<Error> = None;
            // What a member that answered said (no leader, not applied):
            // it tells more than a member that could not be reached.
            let mut answered: Option<Error> = None;
            // Whether no server of this round was reached at all.
            let mut all_unreachable = true;
            // Whether a standalone server refused the request unapplied.
            let mut standalone_busy = false;
            // A read whose connection closed without an answer: most often
            // a kept-alive connection the server closed as the request
            // went out (it restarted, or timed the connection out). Sent
            // again at once on a new connection, once, to any server (as
            // HTTP clients do for requests that change nothing).
            let mut stale = false;
            let mut wait = Duration::from_millis(100);
            for url in &order {
                // A retry gets what is left of --timeout, not all of it
                // again (SPEC: it bounds a write's retries as a whole).
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let retry_agent;
                // Also the first request sent, after probes of servers
                // passed over took part of --timeout: it ran a second or two
                // past it (found by an audit). Not a first request sent at
                // once, which keeps the client's agent and its connection.
                let late = left + Duration::from_millis(100) < self.timeout;
                let agent = if (tried || late) && left < self.timeout && left > Duration::ZERO {
                    retry_agent = agent_of(&self.tls, left, Some(left));
                    &retry_agent
                } else {
                    &self.agent
                };
                let just_answered = answered_at
                    .iter()
                    .any(|(u, at)| u == url && at.elapsed() < 2 * MEMBER_PROBE_WAIT);
                // The first server a client asks, when there are others to
                // ask: a stopped one (SIGSTOP, a frozen VM) takes the
                // connection and never answers, and held the command for
                // its whole --timeout. The probe's connection carries the
                // request after it: one round trip more, once a client.
                let first_of_several =
                    !tried && self.urls.len() > 1 && !self.first_sent.swap(true, Ordering::Relaxed);
                let probe = first_of_several
                    || (tried && !just_answered && self.clustered.load(Ordering::Relaxed));
                if probe && !self.answers_healthz(url, auth.as_deref(), left) {
                    // Passed over this round, as a member that cannot be
                    // reached is; tried again in the next.
                    last = Some(Error::Unavailable {
                        message: format!(
                            "kvr server at {url} did not answer /healthz within {} s (stopped \
                             or frozen?)",
                            MEMBER_PROBE_WAIT.as_secs()
                        ),
                        overloaded: false,
                    });
                    continue;
                }
                tried = true;
                if let Some(e) = unknown.take() {
                    // The write may have been applied where it went. A
                    // repeat meets its idempotency record only within the
                    // same database: on a cluster's members, not on another
                    // standalone server (it would be applied there too).
                    // And it is sent again only within --timeout.
                    if std::time::Instant::now() >= deadline
                        || !self.is_cluster_member(url, auth.as_deref(), deadline)
                    {
                        return Err(e);
                    }
                    unknown = Some(e);
                }
                let result = request(agent, url, auth.as_deref());
                if result.is_ok() {
                    answered_at.retain(|(u, _)| u != url);
                    answered_at.push((url.clone(), std::time::Instant::now()));
                }
                match result {
                    Ok(resp) if resp.headers().contains_key("x-kvr-node") => {
                        self.clustered.store(true, Ordering::Relaxed);
                        all_unreachable = false;
                        if resp.status().as_u16() != 503 {
                            return Ok((url.clone(), resp));
                        }
                        wait = wait.max(retry_after(&resp));
                        let hint = resp
                            .headers()
                            .get("x-kvr-leader")
                            .and_then(|v| v.to_str().ok())
                            .map(|v| v.trim_end_matches('/').to_string());
                        match error_of(url, resp, None) {
                            e @ Error::Unavailable { .. } => {
                                if let Some(h) = hint.filter(|h| h != url) {
                                    // Try the leader at once.
                                    wait = Duration::ZERO;
                                    leader = Some(h);
                                }
                                answered = Some(e);
                            }
                            e @ Error::OutcomeUnknown { .. } if keyed_write => {
                                if let Some(h) = hint.filter(|h| h != url) {
                                    leader = Some(h);
                                }
                                unknown = Some(e);
                            }
                            // A member just removed answers so for the
                            // moment before it exits: the others serve
                            // the request. It stopped a command (exit 3)
                            // whose list named it first while the cluster
                            // was healthy (found by an audit); it is the
                            // answer only when nobody else is left to ask.
                            e @ Error::Removed(_)
                                if order.len() > 1 || hint.as_ref().is_some_and(|h| h != url) =>
                            {
                                if let Some(h) = hint.filter(|h| h != url) {
                                    wait = Duration::ZERO;
                                    leader = Some(h);
                                }
                                answered = Some(e);
                            }
                            other => return Err(other),
                        }
                    }
                    // A standalone server that took nothing (overloaded,
                    // or stopping): sent again after its Retry-After,
                    // through the list, until --timeout (SPEC "Client").
                    Ok(resp)
                        if resp.status().as_u16() == 503
                            && resp.headers().contains_key("x-kvr-revision") =>
                    {
                        all_unreachable = false;
                        wait = wait.max(retry_after(&resp));
                        match error_of(url, resp, None) {
                            e @ Error::Unavailable { .. } => {
                                standalone_busy = true;
                                answered = Some(e);
                            }
                            other => return Err(other),
                        }
                    }
                    Ok(resp) => match (gateway_failure(&resp), sent) {
                        (Some(what), Sent::Read) => {
                            all_unreachable = false;
                            last = Some(Error::Unavailable {
                                message: format!("kvr server at {url} did not answer: {what}"),
                                overloaded: false,
                            });
                        }
                        (Some(what), Sent::KeyedWrite) => {
                            unknown = Some(Error::OutcomeUnknown {
                                message: format!(
                                    "kvr server at {url} did not answer: {what}; the write \
                                     may or may not have been applied"
                                ),
                            });
                        }
                        _ => {
                            failure::check_answer(url, &resp, sent == Sent::Read)?;
                            return Ok((url.clone(), resp));
                        }
                    },
                    Err(e) if keyed_write && !unreachable(&e) && sent_maybe(&e) => {
                        let what = match e {
                            ureq::Error::Timeout(_) => {
                                format!("kvr server at {url} did not answer in time (--timeout)")
                            }
                            e => transport_error_given(url, e, self.cacert.as_deref()).to_string(),
                        };
                        unknown = Some(Error::OutcomeUnknown {
                            message: format!("{what}; the write may or may not have been applied"),
                        });
                    }
                    Err(e) if unreachable(&e) => {
                        last = Some(Error::Unavailable {
                            message: unreachable_message(url, &e),
                            overloaded: false,
                        });
                    }
                    Err(e) if sent == Sent::Read && sent_maybe(&e) => {
                        all_unreachable = false;
                        let what = match e {
                            // The last try, cut short by --timeout, after
                            // refusals: they say why (a leader without a
                            // majority answers 503 within a second; "did
                            // not answer in time" alone hid that).
                            ureq::Error::Timeout(_) => match answered.as_ref().or(earlier.as_ref())
                            {
                                Some(before) => format!(
                                    "did not answer the last try in time (--timeout); the try \
                                     before was refused: {before}"
                                ),
                                None => "did not answer in time (--timeout)".to_string(),
                            },
                            _ => {
                                stale |= !stale_retried;
                                "closed the connection without an answer".to_string()
                            }
                        };
                        last = Some(Error::Unavailable {
                            message: format!("kvr server at {url} {what}"),
                            overloaded: false,
                        });
                    }
                    Err(ureq::Error::Timeout(_)) if answered.is_some() || earlier.is_some() => {
                        let before = answered.or(earlier).map(|e| e.to_string());
                        return Err(Error::Unavailable {
                            message: format!(
                                "kvr server at {url} did not answer this try in time \
                                 (--timeout), so its outcome is unknown; the try before was \
                                 refused: {}",
                                before.unwrap_or_default()
                            ),
                            overloaded: false,
                        });
                    }
                    Err(e) => return Err(transport_error_given(url, e, self.cacert.as_deref())),
                }
            }
            // Several servers, none of which took a connection: a
            // cluster's members restarting (a power cut, `kill -9` of
            // all), asked again until --timeout (SPEC "Client"). One
            // server that cannot be reached is said at once (is kvr serve
            // running?): nothing names another to go to.
            let list_down = all_unreachable && order.len() > 1;
            if list_down {
                wait = wait.max(UNREACHABLE_RETRY);
            }
            // A wait that would run past --timeout is cut short for one
            // last try just before it (an election may be over by then):
            // the retries go on until --timeout (SPEC), not until the last
            // whole Retry-After that fits.
            let now = std::time::Instant::now();
            let left = deadline.saturating_duration_since(now);
            if now + wait >= deadline && left > LAST_TRY {
                wait = left - LAST_TRY;
            }
            if stale {
                stale_retried = true;
                wait = Duration::ZERO;
            }
            // A write whose outcome is unknown, with no member's answer seen
            // yet (one server given, whose connection dropped after the
            // write went out): if it is a cluster member, the write is sent
            // again with its key, as through a list (it exited 5 at once,
            // found by an audit). `healthz` notes a member in `clustered`.
            if unknown.is_some()
                && !self.clustered.load(Ordering::Relaxed)
                && let Some(url) = order.first()
            {
                self.is_cluster_member(url, auth.as_deref(), deadline);
            }
            let give_up =
                !(self.clustered.load(Ordering::Relaxed) || standalone_busy || list_down || stale)
                    || now + wait >= deadline;
            if give_up {
                if let Some(e) = unknown {
                    return Err(e);
                }
                if all_unreachable && order.len() > 1 {
                    // Passed over in the last round (a frozen member's probe
                    // took what was left of --timeout), after members had
                    // refused: their refusal is what happened, not "cannot
                    // reach any" (found by an audit).
                    if let Some(before) = earlier {
                        return Err(Error::Unavailable {
                            message: format!(
                                "no kvr server of {} answered the last try within --timeout; \
                                 the try before was refused: {before}",
                                order.join(", ")
                            ),
                            overloaded: false,
                        });
                    }
                    // Name every server tried, not just the last one.
                    return Err(Error::Unavailable {
                        message: format!(
                            "cannot reach any kvr server of {} (is kvr serve running?)",
                            order.join(", ")
                        ),
                        overloaded: false,
                    });
                }
                return Err(answered.or(last).unwrap_or_else(|| Error::Unavailable {
                    message: format!("cannot reach kvr server at {}", self.urls.join(", ")),
                    overloaded: false,
                }));
            }
            if answered.is_some() {
                earlier = answered;
            }
            if !stale {
                std::thread::sleep(wait.max(Duration::from_millis(50)));
            }
        }
    }

    /// Sends one request to the first server that can be reached. Of a
    /// list, each is first asked `/healthz` (within [`MEMBER_PROBE_WAIT`]),
    /// and a read moves on past one that does not answer in time or closes
    /// the connection without an answer: a watch whose first server was
    /// stopped (SIGSTOP) gave up after its whole `--timeout` there, and one
    /// whose first connection was closed exited 3 (found by audits). A
    /// write's outcome is then unknown, and it goes no further.
    fn send(
        &self,
        sent: Sent,
        mut request: impl FnMut(&Agent, &str, Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<(String, Response<Body>)> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut message = String::new();
        let several = self.urls.len() > 1;
        for url in &self.urls {
            if several {
                match self.probe(url, auth.as_deref(), MEMBER_PROBE_WAIT) {
                    Ok(_) => {}
                    Err(e) if unreachable(&e) => {
                        message = unreachable_message(url, &e);
                        continue;
                    }
                    Err(_) => {
                        message = format!(
                            "kvr server at {url} did not answer /healthz within {} s (stopped \
                             or frozen?)",
                            MEMBER_PROBE_WAIT.as_secs()
                        );
                        continue;
                    }
                }
            }
            match request(&self.agent, url, auth.as_deref()) {
                Ok(resp) => {
                    self.answered
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return Ok((url.clone(), resp));
                }
                Err(e) if unreachable(&e) => message = unreachable_message(url, &e),
                Err(ureq::Error::Timeout(_)) if sent == Sent::Read => {
                    message = format!("kvr server at {url} did not answer in time (--timeout)");
                }
                Err(e) if sent == Sent::Read && sent_maybe(&e) => {
                    message =
                        format!("kvr server at {url} closed the connection without an answer");
                }
                Err(e) => return Err(transport_error_given(url, e, self.cacert.as_deref())),
            }
        }
        if several && message.contains("cannot reach") {
            message = format!(
                "cannot reach any kvr server of {} (is kvr serve running?)",
                self.urls.join(", ")
            );
        }
        Err(Error::Unavailable {
            message,
            overloaded: false,
        })
    }

    /// Whether this client talks to a cluster: a member has answered it,
    /// or `url` answers `/healthz` as one (with `X-Kvr-Node`) before
    /// `deadline`.
    fn is_cluster_member(
        &self,
        url: &str,
        auth: Option<&str>,
        deadline: std::time::Instant,
    ) -> bool {
        use std::sync::atomic::Ordering;
        if self.clustered.load(Ordering::Relaxed) {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        self.healthz(url, auth, left) == Some(true)
    }

    /// Whether `url` answers `GET /healthz` within [`MEMBER_PROBE_WAIT`]
    /// (and `left`): any answer counts, the process is there.
    fn answers_healthz(&self, url: &str, auth: Option<&str>, left: Duration) -> bool {
        self.healthz(url, auth, MEMBER_PROBE_WAIT.min(left))
            .is_some()
    }

    /// `GET /healthz` of `url`, within `wait`: `None` without an answer,
    /// else whether it answered as a cluster member (`X-Kvr-Node`, noted
    /// in [`Client::clustered`]). On the client's agent, so the connection
    /// it opens carries the request that follows.
    fn healthz(&self, url: &str, auth: Option<&str>, wait: Duration) -> Option<bool> {
        self.probe(url, auth, wait).ok()
    }

    /// [`Client::healthz`], with why it had no answer.
    fn probe(
        &self,
        url: &str,
        auth: Option<&str>,
        wait: Duration,
    ) -> std::result::Result<bool, ureq::Error> {
        let resp = with_auth(self.agent.get(format!("{url}/healthz")), auth)
            .config()
            .timeout_global(Some(wait))
            .http_status_as_error(false)
            .build()
            .call()?;
        let member = resp.headers().contains_key("x-kvr-node");
        // Read to its end, so that the connection goes back to the pool
        // for the request after the probe (dropped unread, it is closed:
        // a new connection cost the probe 0.7 ms instead of a round trip).
        let _ = resp.into_body().with_config().limit(4096).read_to_vec();
        if member {
            self.clustered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(member)
    }

    /// Whether a server has answered a request sent with `Client::send`
    /// (a watch's): until one has, none may be there at all.
    pub fn has_answered(&self) -> bool {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the `--server` list names several servers: a cluster's
    /// members, which may all be restarting at once, so that none
    /// answering yet is waited out up to `--timeout` (as
    /// `send_retrying_as` does).
    pub fn has_several_servers(&self) -> bool {
        self.urls.len() > 1
    }

    /// The path (or `?key=` form) of a key.
    fn key_target(key: &[u8]) -> String {
        let awkward = key
            .split(|&b| b == b'/')
            .any(|seg| seg.is_empty() || seg == b"." || seg == b"..");
        if awkward {
            format!("/v1/kv?key={}", percent_encode(key, true))
        } else {
            format!("/v1/kv/{}", percent_encode(key, false))
        }
    }
}

/// What a watch stream asks for (see [`Client::watch`]).
#[derive(Debug, Clone, Default)]
pub struct WatchQuery {
    pub query: RangeQuery,
    /// The first revision to send; `None`: after the current one.
    pub from_revision: Option<u64>,
    pub keys_only: bool,
    /// Seconds between progress lines when nothing happens.
    pub progress_secs: u64,
}

impl Client {
    /// Follows `GET /v1/watch`, handing each complete line to `line`
    /// (which returns `false` to stop). Returns when the stream ends, the
    /// server went away midway (a torn last line is dropped), or `line`
    /// stops; an error before the stream starts (such as `compacted`) is
    /// returned as it is, a broken stream as `unavailable`. `start` is told
    /// the revision the server has applied (`X-Kvr-Revision`) before the
    /// first line; an error from it ends the watch there.
    pub fn watch(
        &self,
        w: &WatchQuery,
        start: &mut dyn FnMut(Option<u64>) -> Result<()>,
        line: &mut dyn FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        // A third of a --timeout over three days would be over the server's
        // longest progress interval; a day is as good.
        let progress = w
            .progress_secs
            .clamp(1, crate::limits::MAX_WATCH_PROGRESS_SECS);
        let mut target = format!("/v1/watch?progress={progress}");
        for (name, value) in [
            ("start", &w.query.start),
            ("end", &w.query.end),
            ("prefix", &w.query.prefix),
        ] {
            if let Some(v) = value {
                target.push_str(&format!("&{name}={}", percent_encode(v, true)));
            }
        }
        if let Some(r) = w.from_revision {
            target.push_str(&format!("&from_revision={r}"));
        }
        if w.keys_only {
            target.push_str("&keys_only=true");
        }
        let target = self.read_target(target);
        let (url, resp) = self.send(Sent::Read, |a, url, auth| {
            with_auth(a.get(format!("{url}{target}")), auth).call()
        })?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, None));
        }
        let revision = resp
            .headers()
            .get("x-kvr-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // Every kvr answer carries it: a 200 without it (a proxy's page)
        // was read as a stream that ended at once, reconnected to for ever
        // and nothing said (found by an audit).
        if revision.is_none() {
            return Err(Error::Remote(format!(
                "{url} does not look like a kvr server (its answer to the watch carries no \
                 X-Kvr-Revision); check the --server URL"
            )));
        }
        start(revision)?;
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) if buf.last() != Some(&b'\n') => return Ok(()),
                Ok(_) => {
                    if !line(&buf)? {
                        return Ok(());
                    }
                }
                Err(e) if stalled(&e) => return Err(stream_stalled("watch", &url)),
                Err(e) => {
                    // A connection cut is the usual way (a server killed or
                    // unplugged): said in words, not the library's.
                    let why = match e.kind() {
                        std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted => {
                            "the server stopped or the connection was cut".to_string()
                        }
                        _ => e.to_string(),
                    };
                    return Err(Error::Unavailable {
                        message: format!(
                            "the watch stream from kvr server at {url} broke off ({why})"
                        ),
                        overloaded: false,
                    });
                }
            }
        }
    }

    /// `GET` or `POST` of a cluster route (`/v1/cluster...`): its JSON.
    /// `id` is the node a change names (a 404 then means no such node).
    pub fn cluster(&self, post: bool, target: &str, id: Option<u64>) -> Result<serde_json::Value> {
        let sent = if post { Sent::Change } else { Sent::Read };
        let (url, resp) = self.send_retrying_as(sent, |a, url, auth| {
            if post {
                with_auth(a.post(format!("{url}{target}")), auth).send_empty()
            } else {
                with_auth(a.get(format!("{url}{target}")), auth).call()
            }
        })?;
        if resp.status().as_u16() != 200 {
            return Err(match (error_of(&url, resp, None), id) {
                (Error::KeyNotFound { .. }, Some(id)) => Error::NodeNotFound { id },
                (other, _) => other,
            });
        }
        read_json(&url, resp)
    }

    /// Reads `GET /v1/backup` (format in `crate::backup`), visiting every
    /// entry in key order. `start` is told the backup's revision (from
    /// `X-Kvr-Revision`) before the first entry. Returns the entry count,
    /// or [`BackupEnd::Broke`] when the stream began and then broke off or
    /// stalled (what was visited is only part of it).
    pub fn backup(
        &self,
        start: &mut dyn FnMut(u64) -> Result<()>,
        visit: &mut crate::backup::Visit<'_>,
    ) -> Result<BackupEnd> {
        let target = self.read_target("/v1/backup".to_string());
        let (url, resp) = self.send_read(|a, url, auth| {
            with_auth(a.get(format!("{url}{target}")), auth)
                .header("Accept", crate::backup::CONTENT_TYPE)
                .call()
        })?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, None));
        }
        let revision: u64 = resp
            .headers()
            .get("x-kvr-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Remote(format!("{url} sent a backup without X-Kvr-Revision")))?;
        start(revision)?;
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        // Set when the stream itself failed, as against the visits (the
        // copy's own disk) or a stream that is not a backup.
        let broken = std::cell::Cell::new(false);
        let broke = |e: std::io::Error| {
            broken.set(true);
            if stalled(&e) {
                return stream_stalled("backup", &url);
            }
            Error::io(
                format!("the backup stream from kvr server at {url} broke off"),
                not_our_pipe(e),
            )
        };
        let (stream_revision, entries) =
            match crate::backup::decode(BufReader::with_capacity(1 << 16, reader), broke, visit) {
                Ok(done) => done,
                Err(error) if broken.get() => return Ok(BackupEnd::Broke { url, error }),
                Err(e) => return Err(e),
            };
        if stream_revision != revision {
            return Err(Error::Remote(format!(
                "{url} sent a backup of revision {stream_revision} under X-Kvr-Revision {revision}"
            )));
        }
        Ok(BackupEnd::Done(entries))
    }

    /// Moves `url` to the end of the `--server` list: asked last from now
    /// on (a backup whose stream from it broke off or stalled, which it
    /// would otherwise be asked for again while it answers at all).
    pub fn ask_last(&mut self, url: &str) {
        if let Some(at) = self.urls.iter().position(|u| u == url) {
            let url = self.urls.remove(at);
            self.urls.push(url);
        }
    }

    /// How many servers the `--server` list names.
    pub fn server_count(&self) -> usize {
        self.urls.len()
    }
}

/// How a [`Client::backup`] that began ended.
#[derive(Debug)]
pub enum BackupEnd {
    /// The whole backup was read: its entry count.
    Done(u64),
    /// The stream from `url` broke off or stalled after it began: a new
    /// backup, from another server or this one, may succeed.
    Broke { url: String, error: Error },
}

/// What a request sent through [`Client::send_retrying_as`] does, which
/// decides what is safe to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Changes nothing: sent again anywhere after any transport failure.
    Read,
    /// A write with an Idempotency-Key: sent again, even when it may have
    /// been applied, since a repeat cannot apply it twice.
    KeyedWrite,
    /// Anything else (a membership change): sent again only when it was
    /// certainly not received.
    Change,
}

/// Transport failures after which a request may have reached the server
/// (a timeout waiting for the answer, a connection cut): a write's outcome
/// is then unknown.
/// (A broken pipe is a body the server refused to read: not applied.)
fn sent_maybe(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::TimedOut
        ),
        _ => false,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(url: &str, mut resp: Response<Body>) -> Result<T> {
    let text = resp
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| transport_error(url, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Remote(format!("unexpected answer from {url}: {e}")))
}

fn condition_headers(
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    if_revision: Option<u64>,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    match if_revision {
        Some(0) => req.header("If-None-Match", "*"),
        Some(n) => req.header("If-Match", format!("\"{n}\"")),
        None => req,
    }
}

/// An agent whose every wait is bounded by `timeout`, and the whole
/// request by `total` when given (a retry within what is left of
/// `--timeout`).
fn agent_of(tls: &TlsConfig, timeout: Duration, total: Option<Duration>) -> Agent {
    let config = Agent::config_builder()
        .tls_config(tls.clone())
        .http_status_as_error(false)
        // A kvr server never redirects: a 301/302 followed turned a PUT
        // into a GET, whose answer could read as the write's (found by an
        // audit). A redirect is an answer, refused in `send`.
        .max_redirects(0)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .timeout_global(total)
        .user_agent(concat!("kvr/", env!("CARGO_PKG_VERSION")))
        .build();
    Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        NameLookup::default(),
    )
}

fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

fn revision_of(url: &str, resp: Response<Body>) -> Result<u64> {
    #[derive(Deserialize)]
    struct Written {
        revision: u64,
    }
    Ok(written::<Written>(url, resp)?.revision)
}

/// The answer of a write the server took (2xx): one that cannot be read
/// (cut short, not JSON) leaves the write's outcome unknown, and says so
/// (exit 5), where it was a plain failure (exit 3) though the write may
/// well have been applied (found by an audit).
fn written<T: serde::de::DeserializeOwned>(url: &str, resp: Response<Body>) -> Result<T> {
    read_json(url, resp).map_err(|e| Error::OutcomeUnknown {
        message: format!(
            "kvr server at {url} took the write but its answer could not be read ({e}); the \
             write may or may not have been applied"
        ),
    })
}

impl Kv for Client {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        if limits::check_key(key, None).is_err() {
            // No such key can exist; a local read says "not found" too.
            return Ok(None);
        }
        let target = self.read_target(Self::key_target(key));
        let (url, mut resp) =
            self.send_read(|a, url, auth| with_auth(a.get(format!("{url}{target}")), auth).call())?;
        match resp.status().as_u16() {
            200 => {}
            404 => match error_of(&url, resp, Some(key)) {
                Error::KeyNotFound { .. } => return Ok(None),
                other => return Err(other),
            },
            _ => return Err(error_of(&url, resp, Some(key))),
        }
        let revision = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse().ok())
            .ok_or_else(|| Error::Remote(format!("{url} sent a value without its ETag")))?;
        let expires_at_ms = resp
            .headers()
            .get(crate::server::EXPIRES_AT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let value = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| transport_error(&url, e))?;
        Ok(Some(Entry {
            value,
            revision,
            expires_at_ms,
        }))
    }

    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        self.put_ttl(key, value, if_revision, None)
    }

    fn put_ttl(
        &self,
        key: &[u8],
        value: Vec<u8>,
        if_revision: Option<u64>,
        ttl_secs: Option<u64>,
    ) -> Result<u64> {
        limits::check_key(key, None)?;
        let target = put_target(key, ttl_secs);
        let idem = crate::idempotency::new_key()?;
        let started = std::time::Instant::now();
        let sent = self.send_write(|a, url, auth| {
            let req =
                with_auth(a.put(format!("{url}{target}")), auth).header(IDEMPOTENCY_KEY, &idem);
            expect_continue(condition_headers(req, if_revision), value.len() as u64)
                .send(value.as_slice())
        });
        let (url, resp) = match sent {
            Ok(sent) => sent,
            // A value under `EXPECT_CONTINUE_BYTES` goes without waiting
            // for the server's word, and one over its limit is cut off
            // (as a batch is): a broken pipe or a reset, which alone says
            // "the outcome is unknown"; but such a value is never applied.
            Err(e) if cut_off(&e) || matches!(e, Error::OutcomeUnknown { .. }) => {
                return Err(match self.limits_after(&e, started)? {
                    Some(l) if value.len() > l.max_value_bytes => value_refused(
                        &self.urls.join(", "),
                        Error::TooLarge {
                            message: format!(
                                "the value is over the limit of {} bytes (--max-value-bytes)",
                                l.max_value_bytes
                            ),
                        },
                    ),
                    _ => e,
                });
            }
            Err(e) => return Err(e),
        };
        if resp.status().as_u16() != 200 {
            return Err(value_refused(&url, error_of(&url, resp, Some(key))));
        }
        revision_of(&url, resp)
    }

    /// A value that fits the retry buffer is sent as [`Kv::put_ttl`] sends
    /// it (and may be repeated after a failover); a larger one is streamed
    /// once, so memory stays bounded whatever the server's limit. With its
    /// `size` known (stdin is a file) it goes with a Content-Length and
    /// `Expect: 100-continue`, so a server refuses a value over its limit
    /// with a 413 naming it before the value is sent.
    fn put_stream(
        &self,
        key: &[u8],
        value: &mut dyn std::io::Read,
        size: Option<u64>,
        if_revision: Option<u64>,
        ttl_secs: Option<u64>,
    ) -> Result<u64> {
        use std::io::Read;
        limits::check_key(key, None)?;
        let mut head = Vec::new();
        (&mut *value)
            .take(RETRY_BUFFER_BYTES + 1)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("cannot read the value from stdin", e))?;
        if head.len() as u64 <= RETRY_BUFFER_BYTES {
            return self.put_ttl(key, head, if_revision, ttl_secs);
        }
        // The file's size was taken before the head was read from it.
        let size = size.filter(|&s| s >= head.len() as u64);
        let target = put_target(key, ttl_secs);
        let idem = crate::idempotency::new_key()?;
        let mut whole = head.as_slice().chain(value);
        let sent = self.send(Sent::KeyedWrite, |a, url, auth| {
            let mut req =
                with_auth(a.put(format!("{url}{target}")), auth).header(IDEMPOTENCY_KEY, &idem);
            if let Some(size) = size {
                req = expect_continue(req, size).header("Content-Length", size);
            }
            condition_headers(req, if_revision).send(SendBody::from_reader(&mut whole))
        });
        let (url, resp) = match sent {
            Ok(sent) => sent,
            Err(e) if cut_off(&e) => {
                // (A server that refuses the token closes the same way.)
                self.limits_with(None)?;
                return Err(match self.answers() {
                    true => value_cut_off(&self.urls),
                    false => e,
                });
            }
            Err(e) => return Err(e),
        };
        if resp.status().as_u16() != 200 {
            return Err(value_refused(&url, error_of(&url, resp, Some(key))));
        }
        revision_of(&url, resp)
    }

    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        limits::check_key(key, None)?;
        let target = Self::key_target(key);
        let idem = crate::idempotency::new_key()?;
        let (url, resp) = self.send_write(|a, url, auth| {
            let req = with_auth(a.delete(format!("{url}{target}")), auth)
                .header(IDEMPOTENCY_KEY, &idem)
                .force_send_body();
            condition_headers(req, if_revision).send_empty()
        })?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, Some(key)));
        }
        revision_of(&url, resp)
    }

    fn delete_range(&self, query: &RangeQuery) -> Result<Applied> {
        query.validate()?;
        if query.start.is_none() && query.end.is_none() && query.prefix.is_none() {
            return Err(Error::invalid(
                "a range delete needs a start, an end or a prefix",
            ));
        }
        // An empty prefix (every key) goes as `prefix=`, which the server takes so.
        let target = range_target(query);
        let idem = crate::idempotency::new_key()?;
        let (url, resp) = self.send_write(|a, url, auth| {
            with_auth(a.delete(format!("{url}{target}")), auth)
                .header(IDEMPOTENCY_KEY, &idem)
                .force_send_body()
                .send_empty()
        })?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, None));
        }
        let answer: DeleteAnswer = written(&url, resp)?;
        Ok(Applied {
            puts: 0,
            deletes: answer.deleted,
            revision: answer.revision,
        })
    }

    fn batch(&self, input: crate::kv::BatchInput) -> Result<Applied> {
        use std::io::Read;
        let idem = crate::idempotency::new_key()?;
        // An input that fits in memory is kept, so the request can be
        // repeated (with the same key) after a failover; a larger one is
        // streamed once.
        let mut input = input;
        let mut head = Vec::new();
        (&mut input)
            .take(RETRY_BUFFER_BYTES + 1)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("cannot read batch input", e))?;
        let started = std::time::Instant::now();
        let sent_bytes = std::cell::Cell::new(head.len() as u64);
        let longest = std::cell::Cell::new(LongestLine::default().fed(&head));
        let sent = if head.len() as u64 <= RETRY_BUFFER_BYTES {
            self.send_write(|a, url, auth| {
                let req = with_auth(a.post(format!("{url}/v1/batch")), auth);
                req.content_type("application/x-ndjson")
                    .header(IDEMPOTENCY_KEY, &idem)
                    .send(head.as_slice())
            })
        } else {
            let mut whole = head.as_slice().chain(Tally {
                inner: &mut input,
                bytes: &sent_bytes,
                longest: &longest,
            });
            self.send(Sent::KeyedWrite, |a, url, auth| {
                let req = with_auth(a.post(format!("{url}/v1/batch")), auth);
                req.content_type("application/x-ndjson")
                    .header(IDEMPOTENCY_KEY, &idem)
                    .send(SendBody::from_reader(&mut whole))
            })
        };
        let (url, resp) = match sent {
            Ok(sent) => sent,
            // (Any `Io`, so a `cut_off` one too.)
            Err(e) if matches!(e, Error::Io { .. } | Error::OutcomeUnknown { .. }) => {
                // The server's 413 is lost when it closes a connection with
                // body still coming: ask it for the limit it enforced. How
                // the close reaches us depends on timing (a broken pipe, or
                // a reset, which alone says "the outcome is unknown"), but
                // a body over the limit is never applied, so any such
                // failure of one is that refusal.
                return Err(match self.limits_after(&e, started)? {
                    Some(l) if longest.get().len > l.max_batch_bytes as u64 => {
                        line_over_batch_bytes(&self.urls, longest.get().line, longest.get().len, &l)
                    }
                    Some(l) if sent_bytes.get() > l.max_batch_bytes as u64 => {
                        batch_over_bytes(&self.urls, l.max_batch_bytes)
                    }
                    _ if cut_off(&e) && self.answers() => batch_cut_off(&self.urls),
                    _ => e,
                });
            }
            Err(e) => return Err(e),
        };
        if resp.status().as_u16() != 200 {
            return Err(match error_of(&url, resp, None) {
                Error::TooLarge { message } => match self.limits() {
                    Some(l) if longest.get().len > l.max_batch_bytes as u64 => {
                        line_over_batch_bytes(&self.urls, longest.get().line, longest.get().len, &l)
                    }
                    _ => batch_too_large(&url, &message),
                },
                other => other,
            });
        }
        let answer: BatchAnswer = written(&url, resp)?;
        Ok(Applied {
            puts: answer.puts.unwrap_or(answer.applied),
            deletes: answer.deletes.unwrap_or(0),
            revision: answer.revision,
        })
    }

    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        query.validate()?;
        if query.limit == Some(0) {
            return Ok(());
        }
        let target = self.read_target(range_target(query));
        let (url, resp) = self.send_read(|a, url, auth| {
            with_auth(a.get(format!("{url}{target}")), auth)
                .header("Accept", "application/x-ndjson")
                .call()
        })?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, None));
        }
        let reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let reader = read_ahead::ReadAhead::start(reader);
        read_stream(&url, BufReader::new(reader), query.keys_only, visit)
    }

    fn stats(&self) -> Result<Stats> {
        let target = self.read_target("/v1/stats".to_string());
        let (url, resp) =
            self.send_read(|a, url, auth| with_auth(a.get(format!("{url}{target}")), auth).call())?;
        if resp.status().as_u16() != 200 {
            return Err(error_of(&url, resp, None));
        }
        read_json(&url, resp)
    }

    fn source(&self) -> String {
        self.urls.join(",")
    }

    fn max_value_bytes(&self) -> Option<usize> {
        self.limits().map(|l| l.max_value_bytes)
    }
}

/// The body of `DELETE /v1/range`.
#[derive(serde::Deserialize)]
struct DeleteAnswer {
    deleted: u64,
    revision: u64,
}

impl Client {
    /// The first reachable server's size limits; `None` if it cannot say
    /// (one before `/v1/limits`, or none answers).
    pub fn limits(&self) -> Option<ServerLimits> {
        self.limits_with(None).ok().flatten()
    }

    /// [`Client::limits`], asked after `failed` of a write begun at
    /// `started`: after an outcome left unknown, only within what is left
    /// of its `--timeout` (a server that let the write time out is not
    /// waited for again). A 401 is returned as the error: a server that
    /// refuses the token refuses the write unread too, and its close
    /// looked like a body cut off for its size.
    fn limits_after(
        &self,
        failed: &Error,
        started: std::time::Instant,
    ) -> Result<Option<ServerLimits>> {
        if !matches!(failed, Error::OutcomeUnknown { .. }) {
            return self.limits_with(None);
        }
        let left = self.timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        self.limits_with(Some(agent_of(&self.tls, left, Some(left))))
    }

    /// [`Client::limits`] through `agent` (`None`: the client's own); a
    /// 401 as its error.
    fn limits_with(&self, agent: Option<Agent>) -> Result<Option<ServerLimits>> {
        let Ok((url, resp)) = self.send(Sent::Read, |a, url, auth| {
            let a = agent.as_ref().unwrap_or(a);
            with_auth(a.get(format!("{url}/v1/limits")), auth).call()
        }) else {
            return Ok(None);
        };
        if resp.headers().contains_key("x-kvr-node") {
            // A cluster member: a write that follows, whose answer is lost
            // with its connection, is sent again with its key, also to the
            // one server given (it went unretried, found by an audit).
            self.clustered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match resp.status().as_u16() {
            200 => Ok(read_json(&url, resp).ok()),
            401 => Err(error_of(&url, resp, None)),
            _ => Ok(None),
        }
    }

    /// Whether a server of the list answers `/healthz` at all.
    fn answers(&self) -> bool {
        self.send(Sent::Read, |a, url, _| {
            a.get(format!("{url}/healthz")).call()
        })
        .is_ok()
    }
}

/// A connection closed while a request body was being sent.
fn cut_off(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if matches!(
        source.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    ))
}

/// The target of a PUT of `key`, with its `ttl`.
fn put_target(key: &[u8], ttl_secs: Option<u64>) -> String {
    let mut target = Client::key_target(key);
    if let Some(ttl) = ttl_secs {
        let sep = if target.contains('?') { '&' } else { '?' };
        target.push_str(&format!("{sep}ttl={ttl}"));
    }
    target
}

/// Values from this size on are sent with `Expect: 100-continue` (as curl
/// does): a server that refuses the value (over its limit, a bad token)
/// answers before it is sent, and the answer is not lost to a connection
/// closed under a body still being written.
const EXPECT_CONTINUE_BYTES: u64 = 1 << 20;

fn expect_continue(
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    size: u64,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    if size >= EXPECT_CONTINUE_BYTES {
        req.header("Expect", "100-continue")
    } else {
        req
    }
}

/// Counts the bytes read through it (the batch body sent so far).
struct Tally<'a, R> {
    inner: R,
    bytes: &'a std::cell::Cell<u64>,
    longest: &'a std::cell::Cell<LongestLine>,
}

impl<R: std::io::Read> std::io::Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        self.longest.set(self.longest.get().fed(&buf[..n]));
        Ok(n)
    }
}

/// The longest line of a batch body as it is sent (one not ended yet
/// counts as far as it was read): a line over the server's limit on a
/// batch request cannot be sent in any part, which the client says
/// instead of offering `--chunk-size` (an audit followed that advice for a
/// line of 70 MB).
#[derive(Debug, Default, Clone, Copy)]
struct LongestLine {
    /// Its number (1-based) and length, its newline included: the bytes
    /// it takes in any part that sends it (a line of exactly the limit
    /// and its newline was offered `--chunk-size`, found by an audit).
    line: u64,
    len: u64,
    /// Lines ended so far, and the length of the one being read.
    ended: u64,
    current: u64,
}

impl LongestLine {
    fn fed(mut self, bytes: &[u8]) -> LongestLine {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.current += i as u64 + 1;
            self.note();
            self.ended += 1;
            self.current = 0;
            rest = &rest[i + 1..];
        }
        self.current += rest.len() as u64;
        self.note();
        self
    }

    fn note(&mut self) {
        if self.current > self.len {
            (self.line, self.len) = (self.ended + 1, self.current);
        }
    }
}

/// A 503's `Retry-After`, or nothing: seconds, or an HTTP-date (RFC 9110
/// section 10.2.3, which a proxy in front of the server may send; it was
/// read as nothing, and the request sent again at once). A date past is
/// nothing.
fn retry_after(resp: &Response<Body>) -> Duration {
    let Some(value) = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return Duration::ZERO;
    };
    if let Ok(secs) = value.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    httpdate::parse_http_date(value)
        .ok()
        .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
        .unwrap_or(Duration::ZERO)
}
