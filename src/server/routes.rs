//! Routing and the handlers of the point routes: `/v1/kv/{key}`,
//! `/v1/batch`, `/v1/stats`, `/healthz`, `/readyz`, `/metrics`. Ranges are in
//! `range.rs`.
//!
//! [`handle`] wraps every request: authentication first, then the route,
//! then the `X-Kvr-Revision` header, metrics and the log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;
use serde_json::json;

use super::State;
use super::body::{Body, full, read_limited};
use super::limits::{body_too_large, name_value_flag, too_many_ops};
use super::log::{Access, Target};
use super::response::{ApiError, error_response, json_response};
use super::target::{Query, percent_decode};
use super::writer::WriteRequest;
use crate::error::{Error, Result};
use crate::jsonl::{OpReader, show_key};
use crate::limits;
use crate::types::Op;

/// Batch bodies larger than this are parsed on a blocking thread, so a big
/// batch does not stall the connections sharing its async worker.
const INLINE_PARSE_BYTES: usize = 64 << 10;

/// The routes, as named in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    Kv,
    Range,
    Batch,
    Stats,
    Backup,
    Cluster,
    ClusterJoin,
    /// `/v1/cluster/promote`, `/remove`, `/transfer-leader`.
    ClusterAdmin,
    Unknown,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/v1/kv" => Route::Kv,
            "/v1/range" => Route::Range,
            "/v1/batch" => Route::Batch,
            "/v1/stats" => Route::Stats,
            "/v1/backup" => Route::Backup,
            "/v1/cluster" => Route::Cluster,
            "/v1/cluster/join" => Route::ClusterJoin,
            "/v1/cluster/promote" | "/v1/cluster/remove" | "/v1/cluster/transfer-leader" => {
                Route::ClusterAdmin
            }
            p if p.starts_with("/v1/kv/") => Route::Kv,
            _ => Route::Unknown,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Kv => "kv",
            Route::Range => "range",
            Route::Batch => "batch",
            Route::Stats => "stats",
            Route::Backup => "backup",
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
    let route = Route::of(req.uri().path());
    let log_target = state
        .access_log
        .as_ref()
        .map(|_| (req.method().clone(), Target::of(req.uri())));
    let mut resp = match super::auth::check(state.token.as_deref(), route, req.headers()) {
        Ok(()) => dispatch(&state, route, req)
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
        headers.insert(REVISION, HeaderValue::from(state.metrics.revision()));
    }
    if let Some(node) = &state.cluster {
        headers.insert(NODE, HeaderValue::from(node.me.node_id));
        if let Some((_, leader)) = node.leader()
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
/// carries.
pub const REVISION: &str = "x-kvr-revision";
/// In cluster mode: the node that answered.
pub const NODE: &str = "x-kvr-node";
/// In cluster mode: the leader's URL, when one is known.
pub const LEADER: &str = "x-kvr-leader";

/// Takes `consistency` out of a read's query (every read route accepts it,
/// in every mode), so the route's own parameter check does not see it.
/// Returns whether the read may be stale.
fn take_consistency(req: &mut Request<Incoming>) -> Result<bool> {
    let Some(query) = req.uri().query() else {
        return Ok(false);
    };
    let mut stale = false;
    let mut kept = Vec::new();
    let mut found = false;
    for pair in query.split('&') {
        match pair.split_once('=').map_or((pair, ""), |(k, v)| (k, v)) {
            ("consistency", "stale") => (stale, found) = (true, true),
            ("consistency", "linearizable") => found = true,
            ("consistency", other) => {
                return Err(Error::invalid(format!(
                    "consistency must be stale or linearizable, not {other:?}"
                )));
            }
            _ => kept.push(pair),
        }
    }
    if found {
        let path = req.uri().path();
        let target = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        *req.uri_mut() = target
            .parse()
            .map_err(|e| Error::invalid(format!("bad request target: {e}")))?;
    }
    Ok(stale)
}

async fn dispatch(
    state: &Arc<State>,
    route: Route,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    if let Some(node) = &state.cluster
        && !matches!(route, Route::Healthz | Route::Metrics)
    {
        node.check_member()?;
    }
    let read = is_get(&method)
        && matches!(
            route,
            Route::Kv | Route::Range | Route::Stats | Route::Backup
        );
    if read {
        let stale = take_consistency(&mut req)?;
        if let Some(node) = &state.cluster
            && !stale
        {
            node.read_barrier().await?;
        }
    }
    if !matches!(
        route,
        Route::Kv | Route::Range | Route::ClusterAdmin | Route::Unknown
    ) {
        Query::parse(req.uri().query())?.only(&[])?;
    }
    match route {
        Route::Healthz if is_get(&method) => Ok(text(StatusCode::OK, "ok", "text/plain")),
        // Standalone, a server is ready once it listens: recovery ran before.
        Route::Readyz if is_get(&method) => match state.cluster.as_ref().map(|n| n.ready()) {
            Some(Err(why)) => Ok(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "unavailable", "message": why}),
            )),
            _ => Ok(text(StatusCode::OK, "ready", "text/plain")),
        },
        Route::Cluster if is_get(&method) => match &state.cluster {
            Some(node) => Ok(json_response(StatusCode::OK, &node.status())),
            None => Err(Error::NotClustered.into()),
        },
        Route::Cluster => Err(ApiError::MethodNotAllowed("GET, HEAD")),
        Route::ClusterJoin if method == Method::POST => Ok(join(state, req).await?),
        Route::ClusterAdmin if method == Method::POST => Ok(cluster_admin(state, req.uri()).await?),
        Route::ClusterJoin | Route::ClusterAdmin => Err(ApiError::MethodNotAllowed("POST")),
        Route::Metrics if is_get(&method) => {
            let stats = state.engine.stats();
            let mut body = state.metrics.render(Some((stats.file_bytes, stats.keys)));
            body.push_str(&state.engine.metrics());
            Ok(text(StatusCode::OK, body, "text/plain; version=0.0.4"))
        }
        Route::Healthz | Route::Readyz | Route::Metrics => {
            Err(ApiError::MethodNotAllowed("GET, HEAD"))
        }
        Route::Kv if is_get(&method) => Ok(get(
            state,
            req.uri(),
            req.headers(),
            method == Method::HEAD,
        )?),
        Route::Kv if method == Method::PUT => Ok(put(state, req).await?),
        Route::Kv if method == Method::DELETE => Ok(delete(state, req.uri(), req.headers()).await?),
        Route::Kv => Err(ApiError::MethodNotAllowed("GET, HEAD, PUT, DELETE")),
        Route::Range if is_get(&method) => {
            Ok(super::range::handle(state, req.uri(), req.headers()).await?)
        }
        Route::Range if method == Method::DELETE => {
            Ok(super::range::delete(state, req.uri()).await?)
        }
        Route::Stats if is_get(&method) => Ok(stats(state)?),
        Route::Backup if is_get(&method) => Ok(super::backup::handle(state, req.uri())?),
        Route::Range => Err(ApiError::MethodNotAllowed("GET, HEAD, DELETE")),
        Route::Stats | Route::Backup => Err(ApiError::MethodNotAllowed("GET, HEAD")),
        Route::Batch if method == Method::POST => Ok(batch(state, req).await?),
        Route::Batch => Err(ApiError::MethodNotAllowed("POST")),
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

/// The key of a `/v1/kv/{key}` or `/v1/kv?key=` request.
fn key_of(uri: &Uri) -> Result<Vec<u8>> {
    let query = Query::parse(uri.query())?;
    query.only(&["key"])?;
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

/// `If-Match` / `If-None-Match`: a revision the key must have (0: absent),
/// or `If-Match: *` (the key must exist).
fn condition(headers: &HeaderMap) -> Result<(Option<u64>, bool)> {
    let get = |name| headers.get(name).map(|v| v.to_str().unwrap_or("?").trim());
    match (get(header::IF_MATCH), get(header::IF_NONE_MATCH)) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "give either If-Match or If-None-Match, not both",
        )),
        (Some("*"), None) => Ok((None, true)),
        (Some(tag), None) => tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            // Digits only: Rust's integer parser would also take a `+`.
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .map(|n| (Some(n), false))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "If-Match must be \"N\" (a revision in quotes) or *, not {tag}"
                ))
            }),
        (None, Some("*")) => Ok((Some(0), false)),
        (None, Some(tag)) => Err(Error::invalid(format!(
            "If-None-Match supports only *, not {tag}"
        ))),
        (None, None) => Ok((None, false)),
    }
}

fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Whether a read's `If-None-Match` matches the key's revision: `*`, or a
/// list of entity tags with `"N"` among them (weak `W/"N"` alike, RFC 9110
/// section 13.1.2). A tag that is not quoted is a 400.
fn none_match(headers: &HeaderMap, revision: u64) -> Result<bool> {
    let Some(value) = headers.get(header::IF_NONE_MATCH) else {
        return Ok(false);
    };
    let text = value.to_str().unwrap_or("?").trim();
    if text == "*" {
        return Ok(true);
    }
    let mut hit = false;
    for tag in text.split(',').map(str::trim) {
        let Some(inner) = tag
            .strip_prefix("W/")
            .unwrap_or(tag)
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
        else {
            return Err(Error::invalid(format!(
                "If-None-Match must be * or entity tags such as \"N\" (a revision in quotes), \
                 not {text}"
            )));
        };
        hit |= !inner.is_empty()
            && inner.bytes().all(|b| b.is_ascii_digit())
            && inner.parse() == Ok(revision);
    }
    Ok(hit)
}

fn get(state: &State, uri: &Uri, headers: &HeaderMap, head: bool) -> Result<Response<Body>> {
    let key = key_of(uri)?;
    let (found, revision) = state.engine.get(&key)?;
    let Some((value, entry_revision)) = found else {
        let mut resp = error_response(&ApiError::Kv(Error::KeyNotFound {
            key: show_key(&key),
        }));
        resp.headers_mut()
            .insert(REVISION, HeaderValue::from(revision));
        return Ok(resp);
    };
    if none_match(headers, entry_revision)? {
        // The client's copy is current: no body (RFC 9110 section 15.4.5).
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        let h = resp.headers_mut();
        h.insert(header::ETAG, etag(entry_revision));
        h.insert(REVISION, HeaderValue::from(revision));
        return Ok(resp);
    }
    let len = value.len();
    let body = if head { Bytes::new() } else { value };
    let mut resp = text(StatusCode::OK, body, "application/octet-stream");
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag(entry_revision));
    h.insert(REVISION, HeaderValue::from(revision));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

fn written(revision: u64) -> Response<Body> {
    let mut resp = json_response(StatusCode::OK, &json!({ "revision": revision }));
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(revision));
    resp
}

async fn put(state: &State, req: Request<Incoming>) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let key = key_of(&parts.uri)?;
    let (if_revision, must_exist) = condition(&parts.headers)?;
    let max = state.limits.max_value_bytes;
    let value = read_limited(&parts.headers, body, max, || {
        body_too_large("the value", max, "--max-value-bytes")
    })
    .await?;
    // After the body (a client still sending it would see a reset, not
    // the 503), before any work on it.
    state.writer.admit()?;
    let ops = vec![Op::put(key, Vec::from(value)).if_revision(if_revision)];
    let applied = state
        .writer
        .write(WriteRequest {
            ops,
            must_exist,
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
    let (if_revision, must_exist) = condition(headers)?;
    let ops = vec![Op::delete(key.clone()).if_revision(if_revision)];
    let applied = state
        .writer
        .write(WriteRequest {
            ops,
            must_exist,
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
    let body = read_limited(&parts.headers, body, max, || {
        body_too_large("the batch body", max, "--max-batch-bytes")
    })
    .await?;
    // Before the body is parsed: a refusal costs only its reading.
    state.writer.admit()?;
    let (max_value, max_ops) = (limits.max_value_bytes, limits.max_batch_ops);
    let ops = if body.len() <= INLINE_PARSE_BYTES {
        parse_batch(&body, max_value, max_ops)?
    } else {
        tokio::task::spawn_blocking(move || parse_batch(&body, max_value, max_ops))
            .await
            .map_err(|e| Error::Storage(format!("batch parser failed: {e}")))??
    };
    let applied = state
        .writer
        .write(WriteRequest {
            ops,
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

fn parse_batch(body: &[u8], max_value: usize, max_ops: usize) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for op in OpReader::new(body, max_value) {
        let op = op.map_err(name_value_flag)?;
        if ops.len() == max_ops {
            return Err(too_many_ops(max_ops));
        }
        ops.push(op);
    }
    Ok(ops)
}

fn stats(state: &State) -> Result<Response<Body>> {
    let stats = state.engine.stats();
    let body = serde_json::to_value(stats).map_err(|e| Error::Storage(e.to_string()))?;
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut()
        .insert(REVISION, HeaderValue::from(stats.revision));
    Ok(resp)
}

/// `POST /v1/cluster/{promote,remove,transfer-leader}?id=N`.
async fn cluster_admin(state: &State, uri: &Uri) -> Result<Response<Body>> {
    use crate::cluster::node::Admin;
    let Some(node) = &state.cluster else {
        return Err(Error::NotClustered);
    };
    let query = Query::parse(uri.query())?;
    query.only(&["id"])?;
    let id = query
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
    if let Some(token) = &node.me.token {
        let given = req
            .headers()
            .get(crate::cluster::CLUSTER_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok());
        if given != Some(token.as_str()) {
            return Err(Error::Unauthorized(
                "joining needs the cluster token (--cluster-token)".into(),
            ));
        }
    }
    let (parts, body) = req.into_parts();
    let body = read_limited(&parts.headers, body, 64 << 10, || {
        body_too_large("a join request", 64 << 10, "(fixed)")
    })
    .await?;
    let join: crate::cluster::node::JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("bad join request: {e}")))?;
    let answer = node.join(join).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"cluster_id": answer.cluster_id, "node_id": answer.node_id}),
    ))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;

    use super::condition;
    use crate::error::Error;

    fn headers(if_match: Option<&[u8]>, if_none_match: Option<&[u8]>) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        for (name, value) in [
            (header::IF_MATCH, if_match),
            (header::IF_NONE_MATCH, if_none_match),
        ] {
            if let Some(v) = value {
                h.insert(name, HeaderValue::from_bytes(v).ok()?);
            }
        }
        Some(h)
    }

    #[test]
    fn conditions_parse() {
        let c = |m: Option<&str>, n: Option<&str>| {
            condition(&headers(m.map(str::as_bytes), n.map(str::as_bytes)).unwrap())
        };
        assert_eq!(c(Some("\"7\""), None).unwrap(), (Some(7), false));
        assert_eq!(c(Some(" * "), None).unwrap(), (None, true));
        assert_eq!(c(None, Some("*")).unwrap(), (Some(0), false));
        assert_eq!(c(None, None).unwrap(), (None, false));
        for (m, n) in [
            (Some("7"), None),
            (Some("\"-1\""), None),
            (Some("\"+7\""), None),
            (Some("\"18446744073709551616\""), None),
            (Some("W/\"7\""), None),
            (None, Some("\"7\"")),
            (Some("*"), Some("*")),
        ] {
            assert!(matches!(c(m, n), Err(Error::Invalid { .. })), "{m:?} {n:?}");
        }
        // Not UTF-8: refused, not a panic.
        let h = headers(Some(b"\"\xff\""), None).unwrap();
        assert!(matches!(condition(&h), Err(Error::Invalid { .. })));
    }

    proptest! {
        /// Any header bytes: a condition or a 400, never a panic, and a
        /// quoted number is exactly that revision.
        #[test]
        fn any_condition_header_parses_or_is_invalid(
            m in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)),
            n in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            rev in any::<u64>(),
        ) {
            if let Some(h) = headers(m.as_deref(), n.as_deref())
                && let Err(e) = condition(&h)
            {
                let invalid = matches!(e, Error::Invalid { .. });
                prop_assert!(invalid);
            }
            let tag = format!("\"{rev}\"");
            let h = headers(Some(tag.as_bytes()), None).unwrap();
            prop_assert_eq!(condition(&h).unwrap(), (Some(rev), false));
        }
    }
}
