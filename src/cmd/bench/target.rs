//! What `kvr bench` sends requests to: a server over HTTP or HTTPS (hyper
//! client, with tokio-rustls for https:// URLs, one keep-alive connection
//! per client), or the engine in this process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Params, Rng, key};
use crate::cli::{BenchArgs, Global, Workload, given_on_command_line};
use crate::error::Error;
use crate::server::writer::WriteRequest;
use crate::server::{Limits, State};
use crate::store::OpenMode;
use crate::types::{Op, RangeQuery};

/// Pause before reconnecting after a connection failed, so a client does
/// not spin while the server is away.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

pub enum Target {
    Http {
        url: String,
        addr: String,
        auth: Option<String>,
        /// For an https:// URL: the connector and the name the server's
        /// certificate is verified against.
        tls: Option<Tls>,
    },
    Local {
        state: Arc<State>,
        path: PathBuf,
        temporary: bool,
    },
}

/// TLS towards the server: verified as the `--server` client does.
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// A client's connection (none for the local engine).
pub struct Conn(Option<SendRequest<Full<Bytes>>>);

impl Target {
    pub async fn open(g: &Global, args: &BenchArgs) -> anyhow::Result<Arc<Target>> {
        if let Some(url) = super::server_url(g) {
            if given_on_command_line("db") {
                return Err(Error::invalid("give either --db or --server, not both").into());
            }
            crate::client::check_url(&url)?;
            let (addr, tls) = match url.split_once("://") {
                Some(("http", addr)) => (addr.to_string(), None),
                None => (url.clone(), None),
                Some(("https", addr)) => {
                    let tls = tls_for(addr, g)?;
                    // A certificate this client refuses fails every request
                    // alike: say so once, as the --server client does.
                    if let Err(e) = connect(addr, Some(&tls)).await
                        && let Some(refused) = crate::tls::failure(&url, &e)
                    {
                        return Err(refused.into());
                    }
                    (addr.to_string(), Some(tls))
                }
                Some(_) => {
                    return Err(
                        Error::invalid("bench needs an http:// or https:// server URL").into(),
                    );
                }
            };
            let auth = crate::cmd::token(g)?.map(|t| format!("Bearer {t}"));
            reachable(&url, &addr, g.timeout).await?;
            // `/healthz` takes no token and has no limits.
            if args.workload != Workload::Healthz || args.prefill > 0 {
                check_server(&addr, tls.as_ref(), auth.as_deref(), args).await?;
            }
            return Ok(Arc::new(Target::Http {
                url,
                addr,
                auth,
                tls,
            }));
        }
        if args.workload == Workload::Healthz {
            return Err(Error::invalid("--workload healthz needs --server URL").into());
        }
        let temporary = !given_on_command_line("db");
        let path = if temporary {
            std::env::temp_dir().join(format!("kvr-bench-{}.redb", std::process::id()))
        } else {
            g.db.clone()
        };
        let (store, _) =
            crate::engine::open_store(&path, OpenMode::Create, &crate::cmd::store_options(g)?)?;
        let limits = Limits {
            queue_size: args.clients.max(Limits::default().queue_size),
            ..Limits::default()
        };
        let state = Arc::new(State::new(store, limits, None, true)?);
        Ok(Arc::new(Target::Local {
            state,
            path,
            temporary,
        }))
    }

    /// Stops the local engine (final checkpoint) and removes a temporary file.
    pub async fn close(&self) {
        if let Target::Local {
            state,
            path,
            temporary,
        } = self
        {
            let st = state.clone();
            let _ = tokio::task::spawn_blocking(move || st.stop()).await;
            if *temporary {
                let _ = std::fs::remove_file(path);
                let _ = std::fs::remove_dir_all(crate::wal::dir_of(path));
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Http { url, .. } => url.clone(),
            Target::Local { path, .. } => format!("engine {}", path.display()),
        }
    }

    pub async fn connect(&self) -> Conn {
        match self {
            Target::Http { addr, tls, .. } => Conn(connect(addr, tls.as_ref()).await.ok()),
            Target::Local { .. } => Conn(None),
        }
    }

    /// One request; `Err` names the kind of failure.
    pub async fn request(
        &self,
        conn: &mut Conn,
        p: &Params,
        rng: &mut Rng,
        read: bool,
    ) -> Result<(), String> {
        match self {
            Target::Http {
                addr, auth, tls, ..
            } => {
                let req = http_request(p, rng, read, auth.as_deref())?;
                let body = http_send(addr, tls.as_ref(), conn, req).await?;
                // A range past the last key written measured nothing.
                if p.workload == Workload::Range && body.starts_with(b"{\"items\":[]") {
                    return Err(super::EMPTY_RANGE.into());
                }
                Ok(())
            }
            Target::Local { state, .. } => local_request(state, p, rng, read).await,
        }
    }

    /// Writes keys `0..prefill` in chunks, until `stopped` is set (a
    /// signal); returns how many it wrote.
    pub async fn prefill(
        &self,
        args: &BenchArgs,
        stopped: &std::sync::OnceLock<&'static str>,
    ) -> anyhow::Result<u64> {
        let value = vec![b'x'; args.value_size];
        let mut conn = self.connect().await;
        let mut start = 0;
        while start < args.prefill && stopped.get().is_none() {
            let end = (start + super::PREFILL_CHUNK).min(args.prefill);
            let ops: Vec<Op> = (start..end)
                .map(|i| Op::put(key(i, args.key_size), value.clone()))
                .collect();
            match self {
                Target::Http {
                    addr, auth, tls, ..
                } => {
                    let req = builder(Method::POST, "/v1/batch", auth.as_deref())
                        .body(Full::new(batch_body(&ops)))
                        .context("building a request")?;
                    http_send(addr, tls.as_ref(), &mut conn, req)
                        .await
                        .map_err(|kind| anyhow::anyhow!("prefill failed: {kind}"))?;
                }
                Target::Local { state, .. } => {
                    let req = WriteRequest {
                        ops,
                        ..WriteRequest::default()
                    };
                    state.writer.write(req).await?;
                }
            }
            start = end;
        }
        Ok(start)
    }
}

/// Fails fast (exit 5) when the server cannot be reached at the start,
/// instead of counting connect errors for the whole run.
async fn reachable(url: &str, addr: &str, timeout_secs: f64) -> Result<(), Error> {
    let timeout = Duration::from_secs_f64(timeout_secs.clamp(1e-3, 1e9));
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Error::Unavailable {
            message: format!("cannot reach kvr server at {url} (is kvr serve running?)"),
            overloaded: false,
        }),
    }
}

/// `GET /v1/limits` with the run's token, before the run: a token the
/// server refuses fails every request alike (a run went its whole
/// duration counting 401s), and so does a `--value-size` or
/// `--batch-size` over the server's limits (every write a 413). Anything
/// else (a server without the route, one too busy to answer) is left to
/// the run to show.
async fn check_server(
    addr: &str,
    tls: Option<&Tls>,
    auth: Option<&str>,
    args: &BenchArgs,
) -> Result<(), Error> {
    #[derive(serde::Deserialize)]
    struct Limits {
        max_value_bytes: usize,
        max_batch_bytes: usize,
        max_batch_ops: Option<usize>,
    }
    let Ok(req) = builder(Method::GET, "/v1/limits", auth).body(Full::new(Bytes::new())) else {
        return Ok(());
    };
    let asked = async {
        let mut sender = connect(addr, tls).await.ok()?;
        sender.ready().await.ok()?;
        let resp = sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    let Ok(Some((status, body))) = tokio::time::timeout(LIMITS_WAIT, asked).await else {
        return Ok(());
    };
    if status == 401 || status == 403 {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = message.strip_prefix("unauthorized: ").unwrap_or(&message);
        return Err(Error::Unauthorized(format!(
            "{message}; nothing was measured"
        )));
    }
    let Ok(limits) = serde_json::from_slice::<Limits>(&body)
        .map_err(drop)
        .and_then(|l| if status == 200 { Ok(l) } else { Err(()) })
    else {
        return Ok(());
    };
    let writes = args.prefill > 0
        || matches!(
            args.workload,
            Workload::Put | Workload::Mixed | Workload::Batch
        );
    if writes && args.value_size > limits.max_value_bytes {
        return Err(Error::invalid(format!(
            "--value-size {} is over the server's limit of {} bytes (its serve \
             --max-value-bytes): every write would be refused",
            args.value_size, limits.max_value_bytes
        )));
    }
    if args.workload == Workload::Batch {
        let line = batch_body(&[Op::put(
            super::key(0, args.key_size),
            vec![b'x'; args.value_size],
        )])
        .len();
        let bytes = line.saturating_mul(args.batch_size);
        if bytes > limits.max_batch_bytes {
            return Err(Error::invalid(format!(
                "--batch-size {} of --value-size {} makes requests of about {bytes} bytes, over \
                 the server's limit of {} (its serve --max-batch-bytes): every batch would be \
                 refused",
                args.batch_size, args.value_size, limits.max_batch_bytes
            )));
        }
        if let Some(max) = limits.max_batch_ops.filter(|max| args.batch_size > *max) {
            return Err(Error::invalid(format!(
                "--batch-size {} is over the server's limit of {max} operations per batch (its \
                 serve --max-batch-ops): every batch would be refused",
                args.batch_size
            )));
        }
    }
    Ok(())
}

/// How long [`check_server`] waits for the server's limits.
const LIMITS_WAIT: Duration = Duration::from_secs(5);

/// TLS for `addr` (`HOST:PORT`), trusting what `--cacert` and the system
/// trust, verifying HOST.
fn tls_for(addr: &str, g: &Global) -> anyhow::Result<Tls> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::invalid(format!("{host:?} is not a host name for TLS")))?;
    let config = crate::tls::client_config(g.cacert.as_deref())?;
    Ok(Tls {
        connector: TlsConnector::from(config),
        name,
    })
}

async fn connect(addr: &str, tls: Option<&Tls>) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    match tls {
        None => start(stream).await,
        Some(tls) => start(tls.connector.connect(tls.name.clone(), stream).await?).await,
    }
}

/// The HTTP/1.1 handshake over a connected stream; the connection is
/// driven by a task of its own.
async fn start<S>(stream: S) -> std::io::Result<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

fn builder(method: Method, target: &str, auth: Option<&str>) -> http::request::Builder {
    let b = Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, "kvr");
    match auth {
        Some(a) => b.header(header::AUTHORIZATION, a),
        None => b,
    }
}

fn batch_body(ops: &[Op]) -> Bytes {
    let mut body = Vec::new();
    for op in ops {
        if let crate::types::Action::Put(v) = &op.action {
            let item = crate::types::Item {
                value: v,
                revision: 0,
                expires_at_ms: None,
            };
            let _ = crate::jsonl::write_line(&mut body, &op.key, Some(item));
        }
    }
    Bytes::from(body)
}

fn http_request(
    p: &Params,
    rng: &mut Rng,
    read: bool,
    auth: Option<&str>,
) -> Result<Request<Full<Bytes>>, String> {
    let text = |k: Vec<u8>| String::from_utf8_lossy(&k).into_owned();
    let (method, target, body) = match p.workload {
        Workload::Healthz => (Method::GET, "/healthz".to_string(), Bytes::new()),
        Workload::Range => {
            let start = text(key(rng.below(p.keyspace), p.key_size));
            let t = format!("/v1/range?start={start}&limit={}", p.range_size);
            (Method::GET, t, Bytes::new())
        }
        Workload::Batch => {
            let ops: Vec<Op> = (0..p.batch_size)
                .map(|_| Op::put(key(rng.below(p.keyspace), p.key_size), p.value.to_vec()))
                .collect();
            (Method::POST, "/v1/batch".to_string(), batch_body(&ops))
        }
        _ if read => {
            let k = text(key(rng.below(p.keyspace), p.key_size));
            (Method::GET, format!("/v1/kv/{k}"), Bytes::new())
        }
        _ => {
            let k = text(key(rng.below(p.keyspace), p.key_size));
            (Method::PUT, format!("/v1/kv/{k}"), p.value.clone())
        }
    };
    builder(method, &target, auth)
        .body(Full::new(body))
        .map_err(|_| "bad_request_built".to_string())
}

/// Sends on the client's connection (reconnecting when needed), returning
/// the body of a 200; any other status is an error named by its code.
async fn http_send(
    addr: &str,
    tls: Option<&Tls>,
    conn: &mut Conn,
    req: Request<Full<Bytes>>,
) -> Result<Bytes, String> {
    if conn.0.is_none() {
        match connect(addr, tls).await {
            Ok(s) => conn.0 = Some(s),
            Err(_) => {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                return Err("connect".into());
            }
        }
    }
    let Some(sender) = conn.0.as_mut() else {
        return Err("connect".into());
    };
    let sent = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    };
    match sent.await {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("http_{status}"))),
        Err(_) => {
            conn.0 = None;
            Err("connection".into())
        }
    }
}

async fn local_request(state: &State, p: &Params, rng: &mut Rng, read: bool) -> Result<(), String> {
    let code = |e: Error| e.code().to_string();
    match p.workload {
        Workload::Range => {
            let query = RangeQuery {
                start: Some(key(rng.below(p.keyspace), p.key_size)),
                limit: Some(p.range_size as u64),
                ..RangeQuery::default()
            };
            let snap = state.engine.snapshot();
            let mut out = Vec::new();
            snap.range(&query, |k, rec| {
                crate::jsonl::write_line(&mut out, k, Some(rec.item()))?;
                Ok(true)
            })
            .map_err(code)?;
            match out.is_empty() {
                true => Err(super::EMPTY_RANGE.into()),
                false => Ok(()),
            }
        }
        Workload::Get | Workload::Mixed | Workload::Healthz if read => {
            match state.engine.get(&key(rng.below(p.keyspace), p.key_size)) {
                Ok((Some(_), _)) => Ok(()),
                Ok((None, _)) => Err("not_found".into()),
                Err(e) => Err(code(e)),
            }
        }
        _ => {
            let n = if p.workload == Workload::Batch {
                p.batch_size
            } else {
                1
            };
            let ops = (0..n)
                .map(|_| Op::put(key(rng.below(p.keyspace), p.key_size), p.value.to_vec()))
                .collect();
            let req = WriteRequest {
                ops,
                ..WriteRequest::default()
            };
            state.writer.write(req).await.map(|_| ()).map_err(code)
        }
    }
}
