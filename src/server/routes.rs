//! Routing and the handlers of the point routes: `/v1/kv/{key}`,
//! `/v1/batch`, `/v1/stats`, `/healthz`, `/readyz`, `/metrics`,
//! `/v1/openapi.json`. Ranges are in `range.rs`.
//!
//! [`ROUTES`] is the one list of paths, methods and query parameters.
//! [`handle`] wraps every request: authentication first, then the route
//! (its method and parameters checked against [`ROUTES`]), then the
//! `X-Kvr-Revision` header, metrics and the log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use hyper::body::Incoming;
use serde_json::json;

use super::State;
use super::body::{Body, full, read_limited};
use super::headers::{ReadConditions, ReadOutcome, WriteCondition};
use super::limits::{body_too_large, name_value_flag, too_many_ops};
use super::log::{Access, Target};
use super::response::{ApiError, error_response, json_response};
use super::target::{Query, percent_decode};
use super::writer::WriteRequest;
use crate::error::{Error, Result};
use crate::jsonl::{OpReader, show_key};
use crate::limits;
use crate::types::{Op, now_ms};

/// Batch bodies larger than this are parsed on a blocking thread, so a big
/// batch does not stall the connections sharing its async worker.
const INLINE_PARSE_BYTES: usize = 64 << 10;

/// The routes, as named in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Kv,
    Range,
    Batch,
    Stats,
    /// `/v1/limits`: the size limits this server enforces.
    Limits,
    Backup,
    Watch,
    Cluster,
    ClusterJoin,
    /// `/v1/cluster/promote`, `/remove`, `/transfer-leader`.
    ClusterAdmin,
    Unknown,
}

/// One path of the HTTP API: the methods it answers and the query
/// parameters each takes (any other is a 400 naming it).
#[derive(Debug)]
pub struct RouteDef {
    pub route: Route,
    /// The path as the OpenAPI document writes it; a trailing `{key}` is
    /// the rest of the path, percent-encoded, `/` included.
    pub path: &'static str,
    /// Whether a server with a token requires it here.
    pub needs_token: bool,
    /// Each method with the query parameters it takes.
    pub methods: &'static [(Method, &'static [&'static str])],
}

const GET_HEAD: &[(Method, &[&str])] = &[(Method::GET, &[]), (Method::HEAD, &[])];

/// Reads take `consistency` (`stale` or `linearizable`) in every mode.
const READ: &[(Method, &[&str])] = &[
    (Method::GET, &["consistency"]),
    (Method::HEAD, &["consistency"]),
];

/// The parameters of `GET /v1/watch`.
const WATCH_PARAMS: &[&str] = &[
    "start",
    "end",
    "prefix",
    "from_revision",
    "keys_only",
    "progress",
    "consistency",
];

/// The `id` of a cluster change.
const CLUSTER_CHANGE: &[(Method, &[&str])] = &[(Method::POST, &["id"])];

/// The parameters of `GET /v1/range`.
const RANGE_PARAMS: &[&str] = &[
    "start",
    "end",
    "prefix",
    "limit",
    "cursor",
    "reverse",
    "keys_only",
    "consistency",
];

/// Every route of the server, the one list routing, `405`s with their
/// `Allow`, unknown-parameter `400`s and authentication read, and the one
/// the OpenAPI document's drift test compares with the document. A new
/// route is one entry here and one arm in `dispatch`.
pub const ROUTES: &[RouteDef] = &[
    RouteDef {
        route: Route::Healthz,
        path: "/healthz",
        needs_token: false,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::Readyz,
        path: "/readyz",
        needs_token: true,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::Metrics,
        path: "/metrics",
        needs_token: true,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::OpenApi,
        path: "/v1/openapi.json",
        needs_token: false,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::Kv,
        path: "/v1/kv/{key}",
        needs_token: true,
        methods: &[
            (Method::GET, &["consistency"]),
            (Method::HEAD, &["consistency"]),
            (Method::PUT, &["ttl"]),
            (Method::DELETE, &[]),
        ],
    },
    RouteDef {
        route: Route::Kv,
        path: "/v1/kv",
        needs_token: true,
        methods: &[
            (Method::GET, &["key", "consistency"]),
            (Method::HEAD, &["key", "consistency"]),
            (Method::PUT, &["key", "ttl"]),
            (Method::DELETE, &["key"]),
        ],
    },
    RouteDef {
        route: Route::Range,
        path: "/v1/range",
        needs_token: true,
        methods: &[
            (Method::GET, RANGE_PARAMS),
            (Method::HEAD, RANGE_PARAMS),
            (Method::DELETE, &["start", "end", "prefix"]),
        ],
    },
    RouteDef {
        route: Route::Batch,
        path: "/v1/batch",
        needs_token: true,
        methods: &[(Method::POST, &[])],
    },
    RouteDef {
        route: Route::Stats,
        path: "/v1/stats",
        needs_token: true,
        methods: READ,
    },
    RouteDef {
        route: Route::Limits,
        path: "/v1/limits",
        needs_token: true,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::Backup,
        path: "/v1/backup",
        needs_token: true,
        methods: READ,
    },
    RouteDef {
        route: Route::Watch,
        path: "/v1/watch",
        needs_token: true,
        methods: &[(Method::GET, WATCH_PARAMS)],
    },
    RouteDef {
        route: Route::Cluster,
        path: "/v1/cluster",
        needs_token: true,
        methods: GET_HEAD,
    },
    RouteDef {
        route: Route::ClusterJoin,
        path: "/v1/cluster/join",
        needs_token: true,
        methods: &[(Method::POST, &[])],
    },
    RouteDef {
        route: Route::ClusterAdmin,
        path: "/v1/cluster/promote",
        needs_token: true,
        methods: CLUSTER_CHANGE,
    },
    RouteDef {
        route: Route::ClusterAdmin,
        path: "/v1/cluster/remove",
        needs_token: true,
        methods: CLUSTER_CHANGE,
    },
    RouteDef {
        route: Route::ClusterAdmin,
        path: "/v1/cluster/transfer-leader",
        needs_token: true,
        methods: CLUSTER_CHANGE,
    },
];

impl RouteDef {
    /// The route of a raw request path, if it is one.
    pub fn of(path: &str) -> Option<&'static RouteDef> {
        ROUTES.iter().find(|d| d.matches(path))
    }

    /// Whether `path` (the raw request path) is this route's.
    fn matches(&self, path: &str) -> bool {
        match self.path.strip_suffix("{key}") {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        }
    }

    /// The query parameters `method` takes here, or `None` if the route
    /// does not answer it.
    fn params(&self, method: &Method) -> Option<&'static [&'static str]> {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, params)| *params)
    }

    /// The `Allow` header of a 405.
    fn allow(&self) -> String {
        let names: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        names.join(", ")
    }
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Kv => "kv",
            Route::Range => "range",
            Route::Batch => "batch",
            Route::Stats => "stats",
            Route::Limits => "limits",
            Route::Backup => "backup",
            Route::Watch => "watch",
            Route::Cluster => "cluster",
            Route::ClusterJoin => "cluster_join",
            Route::ClusterAdmin => "cluster_admin",
            Route::Unknown => "no_route",
        }
    }
}

/// Answers one request. Never fails: every error becomes its response.
pub async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let def = RouteDef::of(req.uri().path());
    let route = def.map_or(Route::Unknown, |d| d.route);
    // An unknown path asks for the token too: it tells nothing otherwise.
    let needs_token = def.is_none_or(|d| d.needs_token);
    let log_target = state
        .access_log
        .as_ref()
        .map(|_| (req.method().clone(), Target::of(req.uri())));
    let mut resp = match super::auth::check(state.token.as_deref(), needs_token, req.headers()) {
        Ok(()) => dispatch(&state, def, req)
            .await
            .unwrap_or_else(|e| error_response(&e)),
        Err(e) => error_response(&e.into()),
    };
    let unauthorized = resp.status() == StatusCode::UNAUTHORIZED;
    let headers = resp.headers_mut();
    if unauthorized {
        // Nothing about the data for a client without the token.
        headers.remove(REVISION);
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    } else if !matches!(route, Route::Healthz | Route::Readyz) && !headers.contains_key(REVISION) {
        // The revision applied here (on a cluster member it moves with
        // every entry applied, not only with writes through this node).
        headers.insert(REVISION, HeaderValue::from(state.engine.revision()));
    }
    if let Some(node) = &state.cluster {
        headers.insert(NODE, HeaderValue::from(node.me.node_id));
        if let Some((_, leader)) = node.leader_heard()
            && let Ok(url) = HeaderValue::from_str(&leader.url)
        {
            headers.insert(LEADER, url);
        }
    }
    let took = started.elapsed();
    state
        .metrics
        .request(route.name(), resp.status().as_u16(), took);
    if let (Some(log), Some((method, target))) = (&state.access_log, log_target) {
        log.record(Access {
            time: SystemTime::now(),
            peer,
            method,
            target,
            status: resp.status().as_u16(),
            took,
        });
    }
    resp
}

/// The revision header every response but 401s, `/healthz` and `/readyz`
/// carries. (A `HeaderName`, not a string, which every insert and lookup
/// would parse again.)
pub const REVISION: HeaderName = HeaderName::from_static("x-kvr-revision");
/// In cluster mode: the node that answered.
pub const NODE: &str = "x-kvr-node";
/// In cluster mode: the leader's URL, when one is known.
pub const LEADER: &str = "x-kvr-leader";

/// Refuses a body sent with a transfer coding other than `chunked`
/// (`gzip, chunked`, say): the HTTP layer undoes only `chunked`, so the
/// value stored would be the still-encoded bytes (RFC 9112 6.1).
fn transfer_codings(headers: &HeaderMap) -> Result<()> {
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = value.to_str().unwrap_or("?");
        if let Some(other) = text
            .split(',')
            .map(str::trim)
            .find(|c| !c.eq_ignore_ascii_case("chunked"))
        {
            return Err(Error::invalid(format!(
                "Transfer-Encoding {other:?} is not supported (only chunked): send the body \
                 as it is"
            )));
        }
    }
    Ok(())
}

/// Whether a read may be stale (`?consistency=stale`).
fn stale(query: &Query) -> Result<bool> {
    match query.get("consistency") {
        None | Some(b"linearizable") => Ok(false),
        Some(b"stale") => Ok(true),
        Some(other) => Err(Error::invalid(format!(
            "consistency must be stale or linearizable, not {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

async fn dispatch(
    state: &Arc<State>,
    def: Option<&'static RouteDef>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if req
        .extensions()
        .get::<super::conn::FragmentSent>()
        .is_some()
    {
        return Err(Error::invalid(
            "the request target holds a '#', which HTTP leaves to the client: a key or \
             parameter with '#' must be sent as %23 (what follows '#' would be lost)",
        )
        .into());
    }
    let method = req.method().clone();
    let def = def.ok_or(ApiError::NoRoute)?;
    let params = def
        .params(&method)
        .ok_or_else(|| ApiError::MethodNotAllowed(def.allow()))?;
    let query = Query::parse(req.uri().query())?;
    query.only(params)?;
    transfer_codings(req.headers())?;
    if let Some(node) = &state.cluster
        && !matches!(
            def.route,
            Route::Healthz | Route::Metrics | Route::OpenApi | Route::Limits
        )
    {
        node.check_member()?;
    }
    if params.contains(&"consistency") {
        let stale = stale(&query)?;
        if let Some(node) = &state.cluster
            && !stale
        {
            node.read_barrier().await?;
        }
    }
    match def.route {
        Route::Healthz => Ok(text(StatusCode::OK, "ok", "text/plain")),
        // Standalone, a server is ready once it listens: recovery ran before.
        Route::Readyz => match state.cluster.as_ref().map(|n| n.ready()) {
            Some(Err(why)) => Ok(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "unavailable", "message": why}),
            )),
            _ => Ok(text(StatusCode::OK, "ready", "text/plain")),
        },
        Route::Cluster => match &state.cluster {
            Some(node) => Ok(json_response(StatusCode::OK, &node.status())),
            None => Err(Error::NotClustered.into()),
        },
        Route::ClusterJoin => Ok(join(state, req).await?),
        Route::ClusterAdmin => Ok(cluster_admin(state, req.uri()).await?),
        Route::Metrics => {
            let stats = engine_stats(state).await?;
            let mut body = state
                .metrics
                .render(Some((stats.file_bytes, stats.keys)), stats.revision);
            body.push_str(&state.engine.metrics());
            if let Some(node) = &state.cluster {
                body.push_str(&node.metrics_text());
            }
            Ok(text(StatusCode::OK, body, "text/plain; version=0.0.4"))
        }
        Route::OpenApi => Ok(text(
            StatusCode::OK,
            crate::openapi::DOCUMENT,
            crate::openapi::CONTENT_TYPE,
        )),
        Route::Kv if is_get(&method) => Ok(get(
            state,
            req.uri(),
            req.headers(),
            method == Method::HEAD,
        )?),
        Route::Kv if method == Method::PUT => Ok(put(state, req).await?),
        Route::Kv => Ok(delete(state, req.uri(), req.headers()).await?),
        Route::Range if is_get(&method) => {
            Ok(super::range::handle(state, req.uri(), req.headers()).await?)
        }
        Route::Range => Ok(super::range::delete(state, req.uri(), req.headers()).await?),
        Route::Stats => Ok(stats(state).await?),
        Route::Limits => Ok(limits(state)),
        Route::Backup => Ok(super::backup::handle(state)?),
        Route::Watch => Ok(super::watch::handle(state, req.uri())?),
        Route::Batch => Ok(batch(state, req).await?),
        Route::Unknown => Err(ApiError::NoRoute),
    }
}

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `POST /v1/cluster/{promote,remove,transfer-leader}?id=N`.
async fn cluster_admin(state: &State, uri: &Uri) -> Result<Response<Body>> {
    use crate::cluster::node::Admin;
    let Some(node) = &state.cluster else {
        return Err(Error::NotClustered);
    };
    let id = Query::parse(uri.query())?
        .number("id")?
        .ok_or_else(|| Error::invalid("give the node id: ?id=N"))?;
    let op = match uri.path() {
        "/v1/cluster/promote" => Admin::Promote(id),
        "/v1/cluster/remove" => Admin::Remove(id),
        _ => Admin::TransferLeader(id),
    };
    node.admin(op).await?;
    Ok(json_response(StatusCode::OK, &node.status()))
}

/// `POST /v1/cluster/join`: a new node asks to be added (see
/// `cluster::node::JoinRequest`); it presents the cluster token.
async fn join(state: &State, req: Request<Incoming>) -> Result<Response<Body>> {
    let Some(node) = &state.cluster else {
        return Err(Error::NotClustered);
    };
    let given = req
        .headers()
        .get(crate::cluster::CLUSTER_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    match (&node.me.token, given) {
        (Some(token), given) if given != Some(token.as_str()) => {
            return Err(Error::Unauthorized(
                "joining needs the cluster token (--cluster-token)".into(),
            ));
        }
        // The joiner would refuse this cluster's Raft traffic, which
        // carries no token: it would stay a learner that never catches up.
        (None, Some(_)) => {
            return Err(Error::Conflict(
                "this cluster has no --cluster-token and the joining node has one: give every \
                 member the same (or none)"
                    .into(),
            ));
        }
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let body = read_limited(&parts, body, 64 << 10, || {
        body_too_large("a join request", 64 << 10, "(fixed)")
    })
    .await?;
    let join: crate::cluster::node::JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("bad join request: {e}")))?;
    let answer = node.join(join).await?;
    // The joiner compares its own history bounds with the cluster's (it
    // keeps the cluster's: it says so when its flags differ).
    let history = state.engine.history_bounds();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "cluster_id": answer.cluster_id,
            "node_id": answer.node_id,
            "history": {"events": history.events, "bytes": history.bytes},
        }),
    ))
}

/// The header that carries a key's expiry (Unix ms) on reads.
pub const EXPIRES_AT: HeaderName = HeaderName::from_static("x-kvr-expires-at");

/// The key of a `/v1/kv/{key}` or `/v1/kv?key=` request.
fn key_of(uri: &Uri) -> Result<Vec<u8>> {
    let query = Query::parse(uri.query())?;
    let in_path = uri.path().strip_prefix("/v1/kv/").filter(|k| !k.is_empty());
    let key = match (in_path, query.get("key")) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "the key is given both in the path and as ?key=; give it once",
            ));
        }
        (Some(k), None) => percent_decode(k, "the key")?,
        (None, Some(k)) => k.to_vec(),
        (None, None) => {
            return Err(Error::invalid(
                "missing key: use /v1/kv/KEY or /v1/kv?key=KEY",
            ));
        }
    };
    limits::check_key(&key, None)?;
    Ok(key)
}

fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

fn get(state: &State, uri: &Uri, headers: &HeaderMap, head: bool) -> Result<Response<Body>> {
    let key = key_of(uri)?;
    let conditions = ReadConditions::parse(headers)?;
    let (found, revision) = state.engine.get(&key)?;
    let Some(crate::engine::Got {
        value,
        revision: entry_revision,
        expires_at_ms,
    }) = found
    else {
        let mut resp = error_response(&ApiError::Kv(Error::KeyNotFound {
            key: show_key(&key),
        }));
        resp.headers_mut()
            .insert(REVISION, HeaderValue::from(revision));
        return Ok(resp);
    };
    match conditions.evaluate(entry_revision) {
        ReadOutcome::Send => {}
        ReadOutcome::NotModified => {
            // The client's copy is current: no body, and the headers a 200
            // would carry about it (RFC 9110 section 15.4.5).
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            let h = resp.headers_mut();
            h.insert(header::ETAG, etag(entry_revision));
            h.insert(REVISION, HeaderValue::from(revision));
            if let Some(at) = expires_at_ms {
                h.insert(EXPIRES_AT, HeaderValue::from(at));
            }
            return Ok(resp);
        }
        ReadOutcome::PreconditionFailed(expected) => {
            let mut resp = error_response(&ApiError::Kv(Error::PreconditionFailed {
                line: None,
                key: show_key(&key),
                expected,
                current: Some(entry_revision),
            }));
            resp.headers_mut()
                .insert(REVISION, HeaderValue::from(revision));
            return Ok(resp);
        }
    }
    let len = value.len();
    let body = if head { Bytes::new() } else { value };
    let mut resp = text(StatusCode::OK, body, "application/octet-stream");
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag(entry_revision));
    h.insert(REVISION, HeaderValue::from(revision));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(at) = expires_at_ms {
        h.insert(EXPIRES_AT, HeaderValue::from(at));
    }
    Ok(resp)
}

/// `?ttl=SECS` of a PUT: 1 to 315,360,000 (SPEC "Expiry (TTL)").
fn ttl_of(uri: &Uri) -> Result<Option<u64>> {
    let query = Query::parse(uri.query())?;
    let Some(raw) = query.get("ttl") else {
        return Ok(None);
    };
    let ttl = std::str::from_utf8(raw)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| Error::invalid("ttl must be a whole number of seconds"))?;
    crate::jsonl::check_ttl(ttl).map_err(Error::invalid)?;
    Ok(Some(ttl))
}

/// The header of SPEC "Idempotency".
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What a write sent with `Idempotency-Key` asked for, fingerprinted.
pub struct Fingerprinted<'a> {
    pub method: &'a Method,
    /// The data key of a point write; empty for a batch or a range.
    pub key: &'a [u8],
    pub uri: &'a Uri,
    pub body: &'a [u8],
    /// `If-Match` / `If-None-Match` of a point write, as parsed: a retry
    /// with another precondition is another request (422).
    pub condition: WriteCondition,
}

/// The claim of a write sent with `Idempotency-Key`: the key (checked:
/// 400 when malformed) and the request's fingerprint over its method, data
/// key, parameters (`Query::canonical`), body and precondition, at the
/// time it is accepted (in a cluster the leader puts its own). The
/// fingerprint is computed here, on the node the client sent the request
/// to, and travels with the write, so every node records and compares the
/// same bytes.
pub fn claim(
    headers: &HeaderMap,
    req: &Fingerprinted<'_>,
) -> Result<Option<Box<crate::idempotency::Claim>>> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Which one is meant? Taking either makes the order of the lines
        // decide which request this repeats.
        return Err(Error::invalid(
            "Idempotency-Key is given more than once; give one key",
        ));
    }
    let idem = crate::idempotency::check_key(value.as_bytes())?;
    // The key is fingerprinted as bytes, wherever the request put it.
    let query = Query::parse(req.uri.query())?.canonical("key");
    let condition = req.condition.fingerprint_part();
    Ok(Some(Box::new(crate::idempotency::Claim {
        key: idem,
        fingerprint: crate::idempotency::fingerprint(
            req.method.as_str(),
            req.key,
            &query,
            req.body,
            &condition,
        ),
        time_ms: now_ms(),
    })))
}

fn written(revision: u64) -> Response<Body> {
    // `{"revision":N}` as `json!` writes it, without building a map first
    // (every acknowledged write answers this).
    let body = format!("{{\"revision\":{revision}}}\n");
    let mut resp = text(StatusCode::OK, body, "application/json");
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(revision));
    resp
}

async fn put(state: &State, req: Request<Incoming>) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let key = key_of(&parts.uri)?;
    let ttl = ttl_of(&parts.uri)?;
    let condition = WriteCondition::parse(&parts.headers)?;
    let (if_revision, must_exist) = match condition {
        WriteCondition::None => (None, false),
        WriteCondition::Exists => (None, true),
        // `"0"`: the key must be absent, as `if_revision` 0 everywhere.
        WriteCondition::Revision(n) => (Some(n), false),
        WriteCondition::Absent => (Some(0), false),
    };
    let max = state.limits.max_value_bytes;
    let value = read_limited(&parts, body, max, || {
        body_too_large("the value", max, "--max-value-bytes")
    })
    .await?;
    // After the body (a client still sending it would see a reset, not
    // the 503), before any work on it.
    state.writer.admit()?;
    let idempotency = claim(
        &parts.headers,
        &Fingerprinted {
            method: &Method::PUT,
            key: &key,
            uri: &parts.uri,
            body: &value,
            condition,
        },
    )?;
    let op = accept(
        state,
        Op::put(key, Vec::from(value))
            .if_revision(if_revision)
            .ttl(ttl),
    );
    let applied = state
        .writer
        .write(WriteRequest {
            ops: op.into_iter().collect(),
            must_exist,
            idempotency,
            ..WriteRequest::default()
        })
        .await?;
    let mut resp = written(applied.revision);
    resp.headers_mut()
        .insert(header::ETAG, etag(applied.revision));
    Ok(resp)
}

async fn delete(state: &State, uri: &Uri, headers: &HeaderMap) -> Result<Response<Body>> {
    let key = key_of(uri)?;
    let condition = WriteCondition::parse(headers)?;
    let (if_revision, must_exist) = match condition {
        WriteCondition::None => (None, false),
        WriteCondition::Exists => (None, true),
        // No key has revision 0: `If-Match: "0"` fails on a present key
        // (its revision) and on a missing one (SPEC: a missing key with
        // If-Match is 412), never a 404.
        WriteCondition::Revision(0) => (Some(0), true),
        WriteCondition::Revision(n) => (Some(n), false),
        // The key must be absent: a 404 when it is, else 412.
        WriteCondition::Absent => (Some(0), false),
    };
    let idempotency = claim(
        headers,
        &Fingerprinted {
            method: &Method::DELETE,
            key: &key,
            uri,
            body: &[],
            condition,
        },
    )?;
    let ops = vec![Op::delete(key.clone()).if_revision(if_revision)];
    let applied = state
        .writer
        .write(WriteRequest {
            ops,
            must_exist,
            idempotency,
            ..WriteRequest::default()
        })
        .await?;
    if applied.deletes == 0 {
        return Err(Error::KeyNotFound {
            key: show_key(&key),
        });
    }
    Ok(written(applied.revision))
}

async fn batch(state: &State, req: Request<Incoming>) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let limits = state.limits.clone();
    let max = limits.max_batch_bytes;
    let body = read_limited(&parts, body, max, || {
        body_too_large("the batch body", max, "--max-batch-bytes")
    })
    .await?;
    // Before the body is parsed: a refusal costs only its reading.
    state.writer.admit()?;
    // A batch's conditions are its lines' `if_revision`.
    let idempotency = claim(
        &parts.headers,
        &Fingerprinted {
            method: &Method::POST,
            key: &[],
            uri: &parts.uri,
            body: &body,
            condition: WriteCondition::None,
        },
    )?;
    let (max_value, max_ops) = (limits.max_value_bytes, limits.max_batch_ops);
    let ops = if body.len() <= INLINE_PARSE_BYTES {
        parse_batch(&body, max_value, max_ops, state.cluster.is_none())?
    } else {
        let here = state.cluster.is_none();
        tokio::task::spawn_blocking(move || parse_batch(&body, max_value, max_ops, here))
            .await
            .map_err(|e| Error::Storage(format!("batch parser failed: {e}")))??
    };
    let applied = state
        .writer
        .write(WriteRequest {
            ops,
            idempotency,
            ..WriteRequest::default()
        })
        .await?;
    let body = json!({"applied": applied.applied(), "revision": applied.revision,
                      "puts": applied.puts, "deletes": applied.deletes});
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(applied.revision));
    Ok(resp)
}

/// The ops of a batch body, accepted at one clock (`here`; else by the
/// cluster's leader, see [`accept`]): a `ttl` becomes an absolute expiry,
/// a line whose expiry has passed is skipped.
fn parse_batch(body: &[u8], max_value: usize, max_ops: usize, here: bool) -> Result<Vec<Op>> {
    let now = now_ms();
    let mut ops = Vec::new();
    for (lines, op) in OpReader::new(body, max_value).enumerate() {
        let op = op.map_err(name_value_flag)?;
        if lines == max_ops {
            return Err(too_many_ops(max_ops));
        }
        if here {
            ops.extend(op.accept(now));
        } else {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Accepts an op (SPEC "Expiry (TTL)"): its `ttl` becomes an absolute
/// expiry by this server's clock, or, in a cluster, by the leader's: the
/// op then travels with its `ttl` and the entry carries the leader's time
/// (`WriteCommand::into_request`). `None`: a put whose expiry has passed.
fn accept(state: &State, op: Op) -> Option<Op> {
    if state.cluster.is_some() {
        Some(op)
    } else {
        op.accept(now_ms())
    }
}

/// The engine's stats, off the async threads: the count may need redb
/// lookups (`engine::memtable`).
async fn engine_stats(state: &State) -> Result<crate::types::Stats> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.stats())
        .await
        .map_err(|e| Error::Storage(format!("stats failed: {e}")))?
}

/// The size limits of this server, so that a client can name them when
/// the server had to cut a request off unread (a batch body far over
/// `--max-batch-bytes` gets no readable 413) and size `--chunk-size`.
fn limits(state: &State) -> Response<Body> {
    let l = &state.limits;
    json_response(
        StatusCode::OK,
        &json!({"max_key_bytes": crate::limits::MAX_KEY_BYTES,
                "max_value_bytes": l.max_value_bytes,
                "max_batch_ops": l.max_batch_ops,
                "max_batch_bytes": l.max_batch_bytes}),
    )
}

async fn stats(state: &State) -> Result<Response<Body>> {
    let stats = engine_stats(state).await?;
    // In the struct's order, the same text as `kvr stats` prints (a
    // `Value` would sort the fields).
    let mut body = serde_json::to_string(&stats).map_err(|e| Error::Storage(e.to_string()))?;
    body.push('\n');
    let mut resp = text(StatusCode::OK, body, "application/json");
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(stats.revision));
    Ok(resp)
}
