//! Answers on the HTTP listener while a node waits to join its cluster.
//!
//! `serve --join` binds and announces its listener first (SPEC: the
//! listening lines come before joining), but until a member has added it
//! the node has no identity, no Raft and so no [`super::State`] to serve
//! from; a join can wait a long time (its seed down). Connections were
//! accepted by the kernel and left unanswered: a health check hung, and a
//! liveness probe would kill a node that was only waiting. Once the start
//! has taken 3 s (`ANSWER_AFTER`), each connection gets one answer and is
//! closed: `/healthz` 200 (the process
//! answers), everything else 503 `unavailable` with `Retry-After` (it
//! serves nothing yet; `/readyz` says why), after the token check a
//! server with a token makes first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::body::Body;
use super::response::{ApiError, error_response, text};
use crate::error::Error;

/// The header of every answer given here: this process's mark
/// ([`this_process`]), so that a node whose `--join` URL leads back to
/// itself (`localhost` for `127.0.0.1`, another name of the host) finds out
/// from the answer, instead of waiting for its own join for ever.
pub const JOINING_HEADER: &str = "x-kvr-joining";

/// A random mark of this process, the same for each call.
pub fn this_process() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| {
        crate::idempotency::new_key().unwrap_or_else(|_| {
            // No randomness: the pid and the time still tell processes apart.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}-{nanos}", std::process::id())
        })
    })
}

/// How long a start may take before this answers: a restart or a join
/// that goes through at once leaves its first requests queued for the
/// server proper, as before, rather than turn them into 503s.
const ANSWER_AFTER: Duration = Duration::from_secs(3);

/// Time a connection has for its TLS handshake and its request.
const ANSWER_TIME: Duration = Duration::from_secs(10);

/// Answers every connection to `listener` as the module header says,
/// until dropped (the join is done, or the node stops).
pub async fn answer_until_joined(
    listener: &TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    token: Option<String>,
) {
    tokio::time::sleep(ANSWER_AFTER).await;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let token: Arc<Option<String>> = Arc::new(token);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tls, token) = (tls.clone(), token.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let token = token.clone();
                async move { Ok::<_, Infallible>(answer(&req, token.as_deref())) }
            });
            let serve = async {
                let builder = http1::Builder::new().keep_alive(false).clone();
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(ANSWER_TIME, serve).await;
        });
    }
}

fn answer(req: &Request<Incoming>, token: Option<&str>) -> Response<Body> {
    let mut resp = answer_for(req, token);
    if let Ok(mark) = HeaderValue::from_str(this_process()) {
        resp.headers_mut().insert(JOINING_HEADER, mark);
    }
    resp
}

fn answer_for(req: &Request<Incoming>, token: Option<&str>) -> Response<Body> {
    let path = req.uri().path();
    let monitoring = matches!(*req.method(), Method::GET | Method::HEAD);
    if monitoring && path == "/healthz" {
        return text(StatusCode::OK, "ok", "text/plain");
    }
    // As the routes say: only `/healthz` and the OpenAPI document need no
    // token.
    let needs_token = path != "/v1/openapi.json";
    if let Err(e) = super::auth::check(token, needs_token, req.headers()) {
        return error_response(&ApiError::from(e));
    }
    let message = match path {
        "/readyz" => "joining its cluster: no member has added this node yet",
        _ => {
            "this node is joining its cluster and serves no requests until a member has added \
             it; retry, or ask another member"
        }
    };
    let mut resp = error_response(&ApiError::from(Error::Unavailable {
        message: message.into(),
        overloaded: false,
    }));
    if path != "/readyz" {
        // Its revision, as every answer but /healthz and /readyz says: a
        // joiner's file is empty.
        resp.headers_mut()
            .insert("x-kvr-revision", HeaderValue::from_static("0"));
    }
    resp
}
