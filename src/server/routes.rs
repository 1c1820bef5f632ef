//! Routing, and the handlers of the small routes: `/v1/stats`,
//! `/v1/limits`, `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json` and
//! the cluster's. The key routes (`/v1/kv/{key}`, `/v1/batch`) are in
//! `kv.rs`, ranges in `range.rs`, watches in `watch.rs`.
//!
//! [`ROUTES`] is the one list of paths, methods and query parameters.
//! [`handle`] wraps every request: authentication first, then the route
//! (its method and parameters checked against [`ROUTES`]), then the
//! `X-Kvr-Revision` header, metrics and the log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use hyper::body::Incoming;
use serde_json::json;

use super::State;
use super::body::Body;
use super::headers::carries_any;
use super::kv;
use super::limits::body_too_large;
use super::log::{Access, Target};
use super::response::{ApiError, error_response, json_response, text};
use super::target::Query;
use crate::error::{Error, Result};

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
        // HEAD as on every GET route: the head the stream would start
        // with (a 410 for a revision no longer kept), no stream.
        methods: &[(Method::GET, WATCH_PARAMS), (Method::HEAD, WATCH_PARAMS)],
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
    let method = method_label(req.method());
    let def = RouteDef::of(req.uri().path());
    let route = def.map_or(Route::Unknown, |d| d.route);
    // An unknown path asks for the token too: it tells nothing otherwise.
    let needs_token = def.is_none_or(|d| d.needs_token);
    let log_target = state
        .access_log
        .as_ref()
        .map(|_| (req.method().clone(), Target::of(req.uri())));
    // A member restarted after a power loss answers what carries its
    // revision once that cannot go below one it answered before
    // (`Node::settled`); `/healthz` and `/readyz` carry none.
    if let Some(node) = &state.cluster
        && !matches!(route, Route::Healthz | Route::Readyz)
    {
        node.settled().await;
    }
    let mut resp = match super::auth::check(state.token.as_deref(), needs_token, req.headers()) {
        Ok(()) => match crate::panics::contain_async(dispatch(&state, def, req)).await {
            Ok(answer) => answer.unwrap_or_else(|e| {
                // The file may need reopening (redb's sticky I/O error), or
                // a reopen failed and is to be tried again.
                let reopen = match &e {
                    ApiError::Kv(Error::Storage(_) | Error::Io { .. }) => true,
                    // Only a closed file answers so ("being reopened"): a
                    // 404 or a 412 looks at no lock.
                    ApiError::Kv(Error::Unavailable { .. }) => !state.engine.store().is_open(),
                    _ => false,
                };
                if reopen {
                    state.engine.read_failed();
                }
                error_response(&e)
            }),
            Err(caught) => error_response(&super::fault(&state.engine, caught).into()),
        },
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
        // every entry applied, not only with writes through this node), or
        // a newer one a write was answered with (`State::revision`).
        headers.insert(REVISION, HeaderValue::from(state.revision()));
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
        .request(route.name(), method, resp.status().as_u16(), took);
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

/// A request's method as a metrics label: the methods of the API, any
/// other as `OTHER` (a label must not take every word a client sends).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
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
/// value stored would be the still-encoded bytes (RFC 9112 6.1). So is any
/// content coding (`Content-Encoding: gzip`): the server decodes none, and
/// a later GET would answer the compressed bytes as the value.
fn codings(headers: &HeaderMap) -> Result<()> {
    if !carries_any(
        headers,
        &[header::TRANSFER_ENCODING, header::CONTENT_ENCODING],
    ) {
        return Ok(());
    }
    if let Some(other) = coding_other_than(headers, &header::TRANSFER_ENCODING, "chunked") {
        return Err(Error::invalid(format!(
            "Transfer-Encoding {other:?} is not supported (only chunked): send the body as it is"
        )));
    }
    // `chunked, chunked` (or on two lines): the HTTP layer undoes one, and
    // the value stored would hold the other's framing (RFC 9112 6.1: the
    // sender must not apply chunked twice).
    if codings_of(headers, &header::TRANSFER_ENCODING).count() > 1 {
        return Err(Error::invalid(
            "Transfer-Encoding names chunked more than once: a body is chunked once; send it \
             with one Transfer-Encoding: chunked",
        ));
    }
    if let Some(other) = coding_other_than(headers, &header::CONTENT_ENCODING, "identity") {
        return Err(Error::invalid(format!(
            "Content-Encoding {other:?} is not supported: send the body as it is (a value is \
             stored as the bytes sent)"
        )));
    }
    Ok(())
}

/// The comma-separated items that header `name` lists (codings, or
/// expectations), over all its lines (`?` for a line that is not text).
fn codings_of<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// The first coding that header `name` lists (over all its lines) other
/// than `allowed`.
fn coding_other_than(headers: &HeaderMap, name: &HeaderName, allowed: &str) -> Option<String> {
    codings_of(headers, name)
        .find(|c| !c.eq_ignore_ascii_case(allowed))
        .map(str::to_string)
}

/// Refuses an HTTP/1.1 request without a `Host` header, and any with more
/// than one: RFC 9112 section 3.2 requires a 400 (HTTP/1.0 had none).
fn host(req: &Request<Incoming>) -> Result<()> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == http::Version::HTTP_11 => Err(Error::invalid(
            "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)",
        )),
        (Some(_), Some(_)) => Err(Error::invalid(
            "the request has more than one Host header: send one (RFC 9112 section 3.2)",
        )),
        _ => Ok(()),
    }
}

/// Refuses an `Expect` the server cannot meet with 417, before anything
/// is read or written (RFC 9110 section 10.1.1): only `100-continue`
/// exists, which hyper answers when the body is read.
fn expect(headers: &HeaderMap) -> Result<(), ApiError> {
    match codings_of(headers, &header::EXPECT).find(|e| !e.eq_ignore_ascii_case("100-continue")) {
        Some(other) => Err(ApiError::ExpectationFailed(other.to_string())),
        None => Ok(()),
    }
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
    host(&req)?;
    expect(req.headers())?;
    let method = req.method().clone();
    let def = def.ok_or(ApiError::NoRoute)?;
    let params = def
        .params(&method)
        .ok_or_else(|| ApiError::MethodNotAllowed(def.allow()))?;
    let query = Query::parse(req.uri().query())?;
    if let Err(unknown) = query.only(params) {
        // Not "unknown": `key` is a parameter of /v1/kv, given here
        // beside a key in the path (or an empty one, `/v1/kv/?key=`).
        if def.path == "/v1/kv/{key}" && query.get("key").is_some() {
            return Err(Error::invalid(if req.uri().path() == "/v1/kv/" {
                "/v1/kv/?key= has a slash after kv, which starts an empty key in the path: \
                 use /v1/kv?key=KEY, or /v1/kv/KEY"
            } else {
                "the key is given both in the path and as ?key=: use /v1/kv/{key}, or \
                 /v1/kv?key= (with no slash after kv)"
            })
            .into());
        }
        return Err(unknown.into());
    }
    codings(req.headers())?;
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
        if let Some(node) = &state.cluster {
            if stale {
                Box::pin(node.stale_read_barrier(state.answered())).await?;
            } else {
                Box::pin(node.read_barrier()).await?;
            }
        }
    }
    // A future is as large as the largest one it awaits, and hyper moves
    // each request's future: the rare large ones (a read barrier's, a
    // batch's, a delete's) are boxed, which took a request's future from
    // 7.9 KB to 4.0 KB and ~800 instructions off both a GET and a PUT
    // (`scripts/bench/instructions.sh`). A PUT's own (2.2 KB) is not:
    // boxing it made a PUT dearer.
    match def.route {
        Route::Healthz => Ok(text(StatusCode::OK, "ok", "text/plain")),
        // Standalone, a server is ready once it listens (recovery ran
        // before), until its engine cannot write the file any more.
        Route::Readyz => match state
            .engine
            .broken()
            .map(Err)
            .or_else(|| state.cluster.as_ref().map(|n| n.ready()))
        {
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
        Route::ClusterJoin => Ok(Box::pin(join(state, req)).await?),
        Route::ClusterAdmin => Ok(Box::pin(cluster_admin(state, req.uri())).await?),
        Route::Metrics => {
            let stats = engine_stats(state).await?;
            let db = state.engine.store().path();
            let log_dir = match &state.cluster {
                Some(_) => crate::cluster::log_store::dir_of(db),
                None => crate::wal::dir_of(db),
            };
            let mut body = state.metrics.render(
                Some((stats.file_bytes, stats.keys)),
                stats.revision,
                super::metrics::log_bytes(&log_dir),
            );
            body.push_str(&state.engine.metrics());
            if let Some(node) = &state.cluster {
                body.push_str(&node.metrics_text());
            }
            Ok(text(
                StatusCode::OK,
                body,
                "text/plain; version=0.0.4; charset=utf-8",
            ))
        }
        Route::OpenApi => Ok(text(
            StatusCode::OK,
            crate::openapi::DOCUMENT,
            crate::openapi::CONTENT_TYPE,
        )),
        Route::Kv if is_get(&method) => Ok(kv::get(
            state,
            req.uri(),
            &query,
            req.headers(),
            method == Method::HEAD,
        )?),
        Route::Kv if method == Method::PUT => Ok(kv::put(state, req, &query).await?),
        Route::Kv => Ok(Box::pin(kv::delete(state, req.uri(), &query, req.headers())).await?),
        Route::Range if is_get(&method) => {
            Ok(super::range::handle(state, req.uri(), req.headers()).await?)
        }
        Route::Range => Ok(Box::pin(super::range::delete(state, req.uri(), req.headers())).await?),
        Route::Stats => Ok(stats(state).await?),
        Route::Limits => Ok(limits(state)),
        Route::Backup => Ok(super::backup::handle(state)?),
        Route::Watch => Ok(super::watch::handle(state, req.uri())?),
        Route::Batch => Ok(Box::pin(kv::batch(state, req)).await?),
        Route::Unknown => Err(ApiError::NoRoute),
    }
}

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
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
    if op == Admin::Remove(node.me.node_id) {
        // This node is out and about to exit (it gets no more entries):
        // its own view, less itself.
        let mut status = node.status();
        if let Some(nodes) = status["nodes"].as_array_mut() {
            nodes.retain(|n| n["id"] != id);
        }
        // Not "leader" over a table that lists no such node.
        status["state"] = "removed".into();
        status["leader"] = serde_json::Value::Null;
        return Ok(json_response(StatusCode::OK, &status));
    }
    // The status shows the change once this node (a follower, perhaps)
    // has applied what the leader committed.
    let _ = tokio::time::timeout(Duration::from_secs(1), node.read_barrier()).await;
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
            return Err(Error::Unauthorized(match given {
                None => "joining needs the cluster token (--cluster-token)".into(),
                Some(_) => "the joining node's --cluster-token is not this cluster's".into(),
            }));
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
    let (body, _room) = super::kv::read_body(state, &parts, body, 64 << 10, || {
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

/// The engine's stats, off the async threads: the count may need redb
/// lookups (`engine::memtable`).
async fn engine_stats(state: &State) -> Result<crate::types::Stats> {
    super::stats(&state.engine).await
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
