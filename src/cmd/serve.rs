//! `kvr serve`: open the database, bind, print the address, serve until
//! SIGINT/SIGTERM, then finish in-flight requests and checkpoint.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{Global, ServeArgs};
use crate::error::{Error, Result};
use crate::server::{self, Limits, State};
use crate::store::{OpenMode, Store, serve_hint_path};

pub fn run(g: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let token = super::token(g)?;
    let limits = limits_of(g, &args)?;
    let addr = resolve(&args.listen)?;
    if !addr.ip().is_loopback() && token.is_none() && !args.allow_unauthenticated {
        return Err(Error::invalid(format!(
            "refusing to listen on {addr} without a token: give --token, --token-file or \
             KVR_TOKEN, or --allow-unauthenticated"
        ))
        .into());
    }
    let tls = tls_of(&args)?;
    if tls.is_none() && token.is_some() && !addr.ip().is_loopback() {
        let _ = writeln!(
            std::io::stderr(),
            "kvr serve: warning: listening on {addr} without TLS: the bearer token would \
             travel in clear; give --tls-cert and --tls-key"
        );
    }
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot set up the listener", e))?;
    let url = format!(
        "{}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?
    );
    // Only now that the address is ours: a taken port creates no file.
    let store = open_store(g)?;
    let created = store.created();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(args.workers)?)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Inside the runtime, so that the writer can start its reply task.
    let opened = std::time::Instant::now();
    let state = {
        let _guard = runtime.enter();
        Arc::new(State::new(store, limits, token, args.quiet)?)
    };
    if let Some(r) = state.recovered {
        // After a crash: what the log held, replayed into memory.
        crate::server::log::event(format_args!(
            "kvr serve: recovered {} after a crash: replayed {} write-ahead log records \
             up to revision {} in {} ms",
            g.db.display(),
            r.records,
            r.revision,
            opened.elapsed().as_millis()
        ));
    }
    let _hint = ServeHint::write(&g.db, &url);
    let stats = state.engine.stats();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {url}").and_then(|()| out.flush())?;
    drop(out);
    let path = std::fs::canonicalize(&g.db).unwrap_or_else(|_| g.db.clone());
    crate::server::log::event(format_args!(
        "kvr serve: serving {} ({} keys, revision {}{}) on {url}{}",
        path.display(),
        stats.keys,
        stats.revision,
        if created { ", new file" } else { "" },
        if args.quiet {
            "; --quiet: no line per request"
        } else {
            ""
        }
    ));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io("cannot set up the listener", e))?;
        let st = state.clone();
        let shutdown = async move {
            let signal = shutdown_signal().await;
            // The lines of the requests answered so far come first.
            tokio::task::block_in_place(|| st.flush_log());
            crate::server::log::event(format_args!(
                "kvr serve: {signal}: stopping; finishing requests in flight"
            ));
        };
        server::run(listener, state.clone(), tls, shutdown).await;
        Ok::<(), Error>(())
    })?;
    crate::server::log::event(format_args!(
        "kvr serve: stopped at revision {}",
        state.metrics.revision()
    ));
    Ok(())
}

/// Opens (or creates) the database.
fn open_store(g: &Global) -> Result<Store> {
    // The log of a crashed server is replayed by the engine (into memory).
    Store::open(&g.db, OpenMode::Create, &super::store_options(g)?)
}

/// The TLS configuration of `--tls-cert` and `--tls-key`, read and checked
/// before anything listens; none without the flags.
fn tls_of(args: &ServeArgs) -> Result<Option<Arc<rustls::ServerConfig>>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::server_config(cert, key)?)),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::invalid(
            "--tls-cert needs --tls-key (KVR_TLS_KEY): the certificate's private key",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "--tls-key needs --tls-cert (KVR_TLS_CERT): the certificate chain",
        )),
    }
}

fn limits_of(g: &Global, args: &ServeArgs) -> Result<Limits> {
    let positive = |n: usize, flag: &str| {
        if n == 0 {
            Err(Error::invalid(format!("{flag} must be at least 1")))
        } else {
            Ok(n)
        }
    };
    Ok(Limits {
        max_value_bytes: args.max_value_bytes,
        max_batch_ops: positive(args.max_batch_ops, "--max-batch-ops")?,
        max_batch_bytes: positive(args.max_batch_bytes, "--max-batch-bytes")?,
        queue_size: positive(args.queue_size, "--queue-size")?,
        max_connections: positive(args.max_connections, "--max-connections")?,
        header_timeout: super::seconds(args.header_timeout, "--header-timeout")?,
        idle_timeout: super::seconds(args.idle_timeout, "--idle-timeout")?,
        memtable_bytes: memtable_bytes(g, args)?,
        history: crate::engine::history::HistoryBounds {
            events: args.history,
            bytes: args.history_bytes,
        },
    })
}

/// `--memtable-mib`, or the default for the cache size in use.
fn memtable_bytes(g: &Global, args: &ServeArgs) -> Result<usize> {
    let mib = match args.memtable_mib {
        Some(0) => return Err(Error::invalid("--memtable-mib must be at least 1")),
        Some(mib) => mib,
        None => {
            let cache = g.cache_mib.unwrap_or_else(crate::store::default_cache_mib);
            crate::engine::default_memtable_mib(cache)
        }
    };
    Ok(usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX))
}

/// HTTP worker threads: by default one per core but one, which the writer
/// thread (on the path of every write) keeps. On 2 cores with the load
/// generator alongside, 1 worker gave 14 % more durable puts than 2 (and
/// 20 % fewer `/healthz`); see NOTES-server.md.
fn workers(flag: Option<usize>) -> Result<usize> {
    match flag {
        Some(0) => Err(Error::invalid("--workers must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1)),
    }
}

fn resolve(listen: &str) -> Result<SocketAddr> {
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Error::invalid(format!(
                "--listen {listen:?} is not an address: give HOST:PORT, e.g. 127.0.0.1:7070"
            ))
        })
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The `DB.serve` file naming the server's URL, removed when dropped, so a
/// command that finds the database locked can say where to go instead.
struct ServeHint(PathBuf);

impl ServeHint {
    /// Written under a temporary name and renamed, so a reader never sees
    /// half a URL. Not synced: after a power loss the server is gone too, and
    /// a stale hint only makes an "in use" message name a dead URL.
    fn write(db: &Path, url: &str) -> Option<ServeHint> {
        let path = serve_hint_path(db);
        let mut temp = path.clone().into_os_string();
        temp.push(".tmp");
        let written =
            std::fs::write(&temp, format!("{url}\n")).and_then(|()| std::fs::rename(&temp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
            return None;
        }
        Some(ServeHint(path))
    }
}

impl Drop for ServeHint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
