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

/// The token `serve` requires, if any. An empty `--token` or `KVR_TOKEN`
/// is refused (exit 2) as an empty `--token-file` is: `--token "$TOK"` with
/// `TOK` unset would otherwise serve without authentication. (Client
/// commands take an empty token as none.)
fn serve_token(g: &Global) -> Result<Option<String>> {
    if g.token_file.is_none() && g.token.as_deref() == Some("") {
        let source = if crate::cli::given_on_command_line("token") {
            "--token"
        } else {
            "KVR_TOKEN"
        };
        return Err(Error::invalid(format!(
            "{source} is empty: give the token clients must send, or leave {source} out \
             to serve without one"
        )));
    }
    super::token(g)
}

/// Whether `host:port` names this machine's loopback: a loopback IP, or
/// `localhost`. A name that would need resolving counts as not loopback.
fn is_loopback_address(addr: &str) -> bool {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return a.ip().is_loopback();
    }
    addr.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// The cluster-mode default of `--max-value-bytes` and `--max-batch-bytes`.
const CLUSTER_MAX_BYTES: usize = 8 << 20;

pub fn run(g: &Global, args: ServeArgs) -> anyhow::Result<()> {
    // From here on no log line waits for stderr (`server::log`); `main`
    // waits for the last ones, briefly, before the process exits.
    crate::server::log::start_events().map_err(|e| Error::io("cannot start the log thread", e))?;
    // KVR_SERVER is ignored here (SPEC), but `--server` typed on the
    // command line is a mistake: serving a new local file instead of
    // saying so would leave a stray database behind.
    if crate::cli::given_on_command_line("server") {
        return Err(Error::invalid(
            "kvr serve serves a database file: give --db PATH (--server is for the commands \
             that talk to a server)",
        )
        .into());
    }
    // Before anything is written: hyper would answer no request.
    crate::server::date::check_clock().map_err(anyhow::Error::msg)?;
    let token = serve_token(g)?;
    let limits = limits_of(g, &args)?;
    let workers = workers(args.workers)?;
    // A member URL nothing could reach is a usage error now, not a join
    // that waits for ever.
    for url in &args.cluster.join {
        crate::client::check_url_of("--join", &crate::client::normal_url(url))?;
    }
    if let Some(url) = &args.cluster.advertise_url {
        crate::client::check_url_of("--advertise-url", &crate::client::normal_url(url))?;
    }
    // Joining only itself, on a new file: said before anything listens or
    // the file is made (`cluster::start` drops such targets from a longer
    // list, and sees the URL of a port picked at random).
    let own = args.cluster.advertise_url.clone().unwrap_or_else(|| {
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", args.listen)
    });
    let c = &args.cluster;
    if !c.join.is_empty()
        && c.join
            .iter()
            .all(|u| crate::cluster::start::same_url(u, &own))
        && !g.db.exists()
    {
        return Err(crate::cluster::start::joins_itself(&c.join[0]).into());
    }
    let addr = resolve(&args.listen)?;
    if !addr.ip().is_loopback() && token.is_none() && !args.allow_unauthenticated {
        return Err(Error::invalid(format!(
            "refusing to listen on {addr} without a token: give --token, --token-file or \
             KVR_TOKEN, or --allow-unauthenticated"
        ))
        .into());
    }
    let tls = tls_of(&args)?;
    // A restart of a member (neither --cluster-init nor --join): the file
    // must be one, checked before anything listens or any file is made.
    let c = &args.cluster;
    let member_store = if c.raft_listen.is_some() && !c.cluster_init && c.join.is_empty() {
        Some(open_member(g)?)
    } else {
        None
    };
    let listener = bind(addr).map_err(|e| cannot_listen(addr, "", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot set up the listener", e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound address", e))?;
    if let Some(mib) = args.max_body_mib
        && limits.max_body_bytes > mib_to_bytes(mib as u64)
    {
        // Said, not done in silence: its 503s name the larger figure.
        crate::server::log::event(format_args!(
            "kvr serve: --max-body-mib {mib} is raised to {} MiB, to hold one largest request \
             (--max-value-bytes {}, --max-batch-bytes {})",
            limits.max_body_bytes >> 20,
            limits.max_value_bytes,
            limits.max_batch_bytes
        ));
    }
    if let Some(warning) = batch_warning(limits.max_batch_bytes, crate::store::available_bytes()) {
        crate::server::log::event(format_args!("kvr serve: warning: {warning}"));
    }
    if tls.is_none() && token.is_some() && !addr.ip().is_loopback() {
        // The address bound (`:0` names no port), as a timestamped line.
        crate::server::log::event(format_args!(
            "kvr serve: warning: listening on {bound} without TLS: the bearer token would \
             travel in clear; give --tls-cert and --tls-key"
        ));
    }
    let url = format!("{}://{bound}", if tls.is_some() { "https" } else { "http" },);
    let cluster = match &args.cluster.raft_listen {
        Some(raft) => {
            let (listener, mut opts) = bind_raft(&args, raft, &url)?;
            opts.client_token = token.clone();
            if let Some(config) = &tls {
                // Node-to-node traffic uses the same certificate, and
                // verifies peers as any client would.
                opts.tls = Some(config.clone());
                opts.peer_tls = Some(crate::tls::client_config(g.cacert.as_deref())?);
            }
            Some((listener, opts))
        }
        None => None,
    };
    // Only now that the address is ours: a taken port creates no file.
    let store = match member_store {
        Some(store) => store,
        None => open_store(g)?,
    };
    if cluster.is_none()
        && let Some((cluster_id, node)) = crate::cluster::start::identity_of(&store)?
    {
        // Served alone it would take writes its cluster never sees: the
        // node would then rejoin with revisions and data of its own.
        return Err(Error::invalid(format!(
            "{} is node {node} of cluster {cluster_id}: serve it as a member, with \
             --raft-listen ADDR (the address it was started with), or write through the \
             cluster (kvr --server URL)",
            g.db.display()
        ))
        .into());
    }
    let created = store.created();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Inside the runtime, so that the writer can start its reply task.
    let opened = std::time::Instant::now();
    let node = cluster.is_some();
    // One watch for SIGINT/SIGTERM from the start on: a signal while a
    // node joins its cluster stops it, and one that comes between the
    // join and serving is not missed (a new watch would not see it).
    let mut stop = {
        let _in_runtime = runtime.enter();
        Box::pin(shutdown_signal())
    };
    let state = match cluster {
        Some((raft_listener, opts)) => {
            // Refused before the listening lines, which a script takes for
            // a server that serves.
            crate::cluster::start::refuse_join_with_data(&store, &opts)?;
            // The bound address, as the HTTP line (with port 0 the only
            // way to learn it), not the advertised one.
            let bound = raft_listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the bound raft address", e))?;
            // Said by `start` once this node passed its start-up checks (a
            // copy of a running member's files, another cluster, a changed
            // raft address exit 3 or 2 without them), before joining,
            // which may wait.
            let listening_url = url.clone();
            let say_listening = move || {
                let mut out = std::io::stdout().lock();
                writeln!(out, "listening on {listening_url}")
                    .and_then(|()| writeln!(out, "raft listening on {bound}"))
                    .and_then(|()| out.flush())
                    .map_err(listening_line_failed)
            };
            let mut engine_opts =
                crate::engine::EngineOptions::new(limits.memtable_bytes, limits.max_value_bytes);
            // --history and --history-bytes hold on every member too.
            engine_opts.history = limits.history;
            engine_opts.row_cache_bytes = limits.row_cache_bytes;
            // Until the join is done, the HTTP listener answers monitoring
            // (`server::joining`) instead of leaving connections unread.
            let meanwhile = listener
                .try_clone()
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::io("cannot set up the listener", e))?;
            let (meanwhile_tls, meanwhile_token) = (tls.clone(), token.clone());
            let node = runtime.block_on(async {
                let l = tokio::net::TcpListener::from_std(raft_listener)
                    .map_err(|e| Error::io("cannot set up the raft listener", e))?;
                let meanwhile = tokio::net::TcpListener::from_std(meanwhile)
                    .map_err(|e| Error::io("cannot set up the listener", e))?;
                let answering = crate::server::joining::answer_until_joined(
                    &meanwhile,
                    meanwhile_tls,
                    meanwhile_token,
                );
                // A join may wait for a member a long time: SIGINT/SIGTERM
                // stop it as they stop a serving node (exit 0, SPEC). Like
                // a crash at that point, whatever the join did not finish
                // is done again by the next start.
                tokio::select! {
                    node = crate::cluster::start::start(store, l, opts, engine_opts, say_listening) => {
                        node.map(Some)
                    }
                    signal = &mut stop => {
                        crate::server::log::event(format_args!(
                            "kvr serve: {signal}: stopping before this node joined its cluster"
                        ));
                        Ok::<_, Error>(None)
                    }
                    () = answering => Ok(None),
                }
            })?;
            let Some(node) = node else {
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                return Ok(());
            };
            let _guard = runtime.enter();
            Arc::new(State::clustered(node, limits, token, args.quiet)?)
        }
        None => {
            let _guard = runtime.enter();
            Arc::new(State::new(store, limits, token, args.quiet)?)
        }
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
    let hint = ServeHint::write(&g.db, &url);
    if !node {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {url}")
            .and_then(|()| out.flush())
            .map_err(listening_line_failed)?;
        drop(out);
    }
    let line = StartLine {
        engine: state.engine.clone(),
        path: std::fs::canonicalize(&g.db).unwrap_or_else(|_| g.db.clone()),
        url: url.clone(),
        created,
        quiet: args.quiet,
    };
    // After a crash the key count needs a store lookup of every key the
    // log replayed: seconds on a big file with a cold cache (6.7 s for
    // 400k keys over 10M). Requests are served meanwhile; the line follows.
    if state.engine.keys_to_count() == 0 {
        line.print();
        // Written before the first request is answered: access lines go
        // through a thread of their own, and one came first in a loaded
        // CI run.
        crate::server::log::flush_events();
    } else {
        std::thread::Builder::new()
            .name("kvr-count".into())
            .spawn(move || line.print())
            .context("cannot start the key count")?;
    }
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io("cannot set up the listener", e))?;
        let st = state.clone();
        let hint_path = hint.as_ref().map(|h| h.0.clone());
        let shutdown = async move {
            let signal = stop.await;
            stop_at_a_second_signal(hint_path);
            if let Some(node) = &st.cluster {
                // Writes in flight get 2 s to commit from now (SPEC).
                node.liveness.begin_stop();
            }
            // The lines of the requests answered so far come first.
            tokio::task::block_in_place(|| st.flush_log());
            crate::server::log::event(format_args!(
                "kvr serve: {signal}: stopping; finishing requests in flight"
            ));
        };
        server::run(listener, state.clone(), tls, shutdown).await;
        if let Some(node) = &state.cluster {
            node.stop().await;
        }
        Ok::<(), Error>(())
    })?;
    crate::server::log::event(format_args!(
        "kvr serve: stopped at revision {}",
        state.engine.revision()
    ));
    if node {
        // A final flush still running (past the stop budget, see
        // `Node::stop`) is not waited for: the Raft log holds its data.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// The start-up line on stderr: the file served, its key count and revision.
struct StartLine {
    engine: Arc<crate::engine::Engine>,
    path: PathBuf,
    url: String,
    created: bool,
    quiet: bool,
}

impl StartLine {
    fn print(&self) {
        let path = self.path.display();
        let url = &self.url;
        match self.engine.stats() {
            Ok(stats) => crate::server::log::event(format_args!(
                "kvr serve: serving {path} ({} keys, revision {}{}) on {url}{}",
                stats.keys,
                stats.revision,
                if self.created { ", new file" } else { "" },
                if self.quiet {
                    "; --quiet: no line per request"
                } else {
                    ""
                }
            )),
            Err(e) => crate::server::log::event(format_args!(
                "kvr serve: serving {path} on {url}; cannot count its keys: {e}"
            )),
        }
    }
}

/// Binds the raft listener of `--raft-listen` and checks the cluster
/// flags (before any file is touched).
fn bind_raft(
    args: &ServeArgs,
    raft: &str,
    url: &str,
) -> Result<(std::net::TcpListener, crate::cluster::start::Options)> {
    let c = &args.cluster;
    let addr = resolve(raft)?;
    let election_ms = parse_range(&c.election_timeout_ms)?;
    if c.heartbeat_ms == 0 {
        return Err(Error::invalid("--heartbeat-ms must be at least 1"));
    }
    if election_ms.0 < 3 * c.heartbeat_ms || election_ms.0 >= election_ms.1 {
        return Err(Error::invalid(format!(
            "--election-timeout-ms {}: MIN must be at least 3 x --heartbeat-ms ({}) and below MAX",
            c.election_timeout_ms,
            3 * c.heartbeat_ms
        )));
    }
    // One port for both listeners is a mistake in the flags (exit 2), not
    // an address another process holds (it read "Address already in use").
    if let Ok(http) = resolve(&args.listen)
        && addr.port() != 0
        && http.port() == addr.port()
        && (http.ip() == addr.ip() || http.ip().is_unspecified() || addr.ip().is_unspecified())
    {
        return Err(Error::invalid(format!(
            "--listen {} and --raft-listen {raft} share port {}: give the raft listener a \
             port of its own (it carries the node-to-node traffic)",
            args.listen,
            addr.port()
        )));
    }
    let listener = bind(addr).map_err(|e| cannot_listen(addr, " (--raft-listen)", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot set up the raft listener", e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound raft address", e))?;
    let unspecified = |a: &SocketAddr| a.ip().is_unspecified();
    // Each unspecified bind address needs its own advertised one, named.
    let missing: Vec<String> = [
        (unspecified(&addr) && c.advertise_raft.is_none())
            .then(|| format!("--raft-listen {raft} needs --advertise-raft")),
        (resolve(&args.listen).is_ok_and(|a| unspecified(&a)) && c.advertise_url.is_none())
            .then(|| format!("--listen {} needs --advertise-url", args.listen)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "an unspecified bind address (0.0.0.0, ::) is no address other nodes can use: {}",
            missing.join(", and ")
        )));
    }
    check_tls_mode(args, url)?;
    let token = cluster_token(args)?;
    // The advertised address counts too: a node behind a port forward
    // binds loopback and is reached from elsewhere.
    let advertised_loopback = c.advertise_raft.as_deref().is_none_or(is_loopback_address);
    if token.is_none() && (!bound.ip().is_loopback() || !advertised_loopback) {
        return Err(Error::invalid(
            "a cluster on non-loopback addresses needs --cluster-token, --cluster-token-file \
             or KVR_CLUSTER_TOKEN",
        ));
    }
    let member = crate::cluster::Member {
        // As clients write it: `http://h:1/` is `http://h:1` (two members
        // advertised both, and `X-Kvr-Leader` named the first with its `/`).
        url: c
            .advertise_url
            .as_deref()
            .map_or_else(|| url.to_string(), crate::client::normal_url),
        raft: c
            .advertise_raft
            .clone()
            .unwrap_or_else(|| bound.to_string()),
    };
    Ok((
        listener,
        crate::cluster::start::Options {
            member,
            init: c.cluster_init,
            join: c.join.clone(),
            learner: c.learner,
            cluster_token: token,
            client_token: None,
            heartbeat_ms: c.heartbeat_ms,
            election_ms,
            tls: None,
            peer_tls: None,
        },
    ))
}

/// A cluster is all-TLS or all-plain: a node with `--tls-cert` advertises
/// and joins `https://` URLs, one without `http://` ones. A mismatched
/// `--join` is refused (exit 3) before anything is written or sent.
fn check_tls_mode(args: &ServeArgs, url: &str) -> Result<()> {
    use crate::cluster::start::is_https;
    let tls = is_https(url);
    let c = &args.cluster;
    if let Some(advertised) = &c.advertise_url
        && is_https(advertised) != tls
    {
        return Err(Error::invalid(format!(
            "--advertise-url {advertised}: this node serves {}, so advertise an {}:// URL",
            if tls { "HTTPS" } else { "plain HTTP" },
            if tls { "https" } else { "http" }
        )));
    }
    if let Some(other) = c.join.iter().find(|j| is_https(j) != tls) {
        return Err(Error::Tls(if tls {
            format!(
                // Judged by the URL alone (nothing was sent): the member
                // may well speak TLS (an audit found this said it did not).
                "--join {other}: this node has --tls-cert, and that is a plain http:// URL: a \
                 cluster is all-TLS or all-plain (give the member's https:// URL, or start \
                 this node without --tls-cert and --tls-key)"
            )
        } else {
            format!(
                "--join {other}: that is an https:// URL and this node has no --tls-cert: a \
                 cluster is all-TLS or all-plain (give this node --tls-cert and --tls-key, \
                 and --cacert if the cluster's CA is not among the system's roots)"
            )
        }));
    }
    Ok(())
}

fn cluster_token(args: &ServeArgs) -> Result<Option<String>> {
    let c = &args.cluster;
    let Some(file) = &c.cluster_token_file else {
        let token = c.cluster_token.clone().filter(|t| !t.is_empty());
        if let Some(t) = &token {
            super::check_token(t, "--cluster-token (or KVR_CLUSTER_TOKEN)")?;
        }
        return Ok(token);
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::io(
            format!("cannot read the cluster token file {}", file.display()),
            e,
        )
    })?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(Error::invalid(format!(
            "the cluster token file {} is empty",
            file.display()
        )));
    }
    super::check_token(token, &format!("the cluster token file {}", file.display()))?;
    Ok(Some(token.to_string()))
}

/// `MIN-MAX` in milliseconds.
fn parse_range(text: &str) -> Result<(u64, u64)> {
    text.split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .ok_or_else(|| {
            Error::invalid(format!(
                "--election-timeout-ms {text:?}: give MIN-MAX in milliseconds, e.g. 500-1000"
            ))
        })
}

/// Opens (or creates) the database, with `serve`'s default cache.
fn open_store(g: &Global) -> Result<Store> {
    crate::wal::refuse_without_database(&g.db)?;
    crate::wal::refuse_another_database(&g.db)?;
    Store::open(&g.db, OpenMode::Create, &serve_store_options(g)?)
        .map_err(|e| e.for_file_command("serve"))
}

/// `serve`'s store options: paced write-back, its default cache.
fn serve_store_options(g: &Global) -> Result<crate::store::StoreOptions> {
    // The log of a crashed server is replayed by the engine (into memory).
    let mut opts = crate::store::StoreOptions {
        paced_writeback: true,
        ..super::store_options(g)?
    };
    opts.cache_bytes = cache_bytes(g) - row_cache_bytes(g);
    Ok(opts)
}

/// `--cache-mib`, or `serve`'s default: redb's page cache and the engine's
/// row cache together.
fn cache_bytes(g: &Global) -> usize {
    mib_to_bytes(
        g.cache_mib
            .unwrap_or_else(crate::store::default_serve_cache_mib),
    )
}

/// The row cache's share of the cache: an eighth. 1M keys of 100-byte
/// values take about 260 MiB there; the page cache keeps the rest, which a
/// store larger than the cache needs for its flushes more than the row
/// cache for its reads.
fn row_cache_bytes(g: &Global) -> usize {
    cache_bytes(g) / 8
}

/// Opens the database of a member restarted without `--cluster-init` or
/// `--join`; a missing file, or one that is not a member, is refused
/// (exit 2) without creating or changing anything.
fn open_member(g: &Global) -> Result<Store> {
    let not_member = || {
        Error::invalid(format!(
            "{} is not a cluster member: give --cluster-init (a new cluster) or --join URL",
            g.db.display()
        ))
    };
    let store = match Store::open(&g.db, OpenMode::MustExist, &serve_store_options(g)?) {
        Err(Error::DatabaseMissing { .. }) => return Err(not_member()),
        other => other?,
    };
    match crate::cluster::start::identity_of(&store)? {
        Some(_) => Ok(store),
        None => Err(not_member()),
    }
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

/// How many times over a batch is held while it is parsed, logged and put
/// in the memory table, which then holds it whole (about five times, in a
/// 256 MiB cgroup where one 62 MB batch OOM-killed the server), with room
/// for the rest of the process.
const BATCH_MEMORY_FACTOR: u64 = 8;

/// A warning when one batch of `max_batch_bytes` could take a process
/// that may use `available` bytes past them.
fn batch_warning(max_batch_bytes: usize, available: u64) -> Option<String> {
    let needs = (max_batch_bytes as u64).saturating_mul(BATCH_MEMORY_FACTOR);
    if needs <= available {
        return None;
    }
    let fits = (available / BATCH_MEMORY_FACTOR).max(1 << 20) >> 20 << 20;
    Some(format!(
        "one batch of up to {} MiB (--max-batch-bytes) is held several times over while it \
         is applied, and this process may use {} MiB: give --max-batch-bytes {fits} (or \
         less) so that one request cannot exhaust its memory",
        max_batch_bytes >> 20,
        available >> 20,
    ))
}

fn limits_of(g: &Global, args: &ServeArgs) -> Result<Limits> {
    let positive = |n: usize, flag: &str| {
        if n == 0 {
            Err(Error::invalid(format!("{flag} must be at least 1")))
        } else {
            Ok(n)
        }
    };
    // In cluster mode one request is one Raft entry: huge entries delay
    // heartbeats, so the defaults are 8 MiB there.
    let clustered = args.cluster.raft_listen.is_some();
    let cluster_default = |given: usize, id: &str| {
        if clustered && !crate::cli::given_on_command_line(id) {
            given.min(CLUSTER_MAX_BYTES)
        } else {
            given
        }
    };
    let max_value_bytes = cluster_default(args.max_value_bytes, "max_value_bytes");
    let memtable_bytes = memtable_bytes(g, args)?;
    // SPEC's default (64 MiB; 8 MiB in cluster mode) whatever the memory:
    // a lower one on a small host refused batches the contract allows,
    // such as the line of one largest value. A start-up warning says when
    // one batch could take the process past its memory (`batch_warning`).
    let max_batch_bytes = cluster_default(args.max_batch_bytes, "max_batch_bytes");
    let max_batch_bytes = positive(max_batch_bytes, "--max-batch-bytes")?;
    let body_bytes = match args.max_body_mib {
        Some(mib) => mib_to_bytes(positive(mib, "--max-body-mib")? as u64),
        None => memtable_bytes.saturating_mul(2),
    };
    Ok(Limits {
        max_value_bytes,
        max_batch_ops: positive(args.max_batch_ops, "--max-batch-ops")?,
        max_batch_bytes,
        // One largest request always fits.
        max_body_bytes: body_bytes.max(max_value_bytes).max(max_batch_bytes),
        queue_size: positive(args.queue_size, "--queue-size")?,
        max_connections: positive(args.max_connections, "--max-connections")?,
        header_timeout: super::seconds(args.header_timeout, "--header-timeout")?,
        idle_timeout: super::seconds(args.idle_timeout, "--idle-timeout")?,
        memtable_bytes,
        row_cache_bytes: row_cache_bytes(g),
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
            let cache = g
                .cache_mib
                .unwrap_or_else(crate::store::default_serve_cache_mib);
            crate::engine::default_memtable_mib(cache)
        }
    };
    Ok(mib_to_bytes(mib))
}

fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// HTTP worker threads: by default one per core. (Before the memory table
/// the writer thread did redb's work and kept a core to itself; now it
/// only appends and inserts, and with 2 workers on 2 cores, wrk alongside,
/// GETs went up 7-18 % and 100-key ranges 40 %, durable PUTs unchanged.)
fn workers(flag: Option<usize>) -> Result<usize> {
    match flag {
        Some(0) => Err(Error::invalid("--workers must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

fn resolve(listen: &str) -> Result<SocketAddr> {
    let resolved = listen.to_socket_addrs();
    if let Some(addr) = resolved
        .as_ref()
        .ok()
        .and_then(|addrs| addrs.clone().next())
    {
        return Ok(addr);
    }
    // HOST:PORT whose host does not resolve is not a malformed address
    // (found by an audit: `nohost.invalid:0` was told to give HOST:PORT).
    let has_port = listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    Err(Error::invalid(match (has_port, resolved) {
        (true, Err(e)) => format!(
            "--listen {listen:?}: its host does not resolve ({e}); give an IP address or a \
             name this machine resolves, e.g. 127.0.0.1:7070"
        ),
        _ => format!("--listen {listen:?} is not an address: give HOST:PORT, e.g. 127.0.0.1:7070"),
    }))
}

/// Resolves on SIGINT, SIGTERM or SIGHUP, with the signal's name. SIGHUP
/// (the terminal the server ran in closed) stops it as SIGTERM does: its
/// default action killed it without a stop line, leaving its log to replay.
/// The signals are caught from this call on, not from the future's first
/// poll: a SIGTERM sent as soon as the listening line was out (before the
/// future was first polled) killed the server, which exited by the signal
/// instead of stopping with 0. Called within the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let caught = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    async move {
        match caught {
            (Ok(mut int), Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
}

/// A stop signal this soon after the first is the same stop sent twice,
/// not a second one: GNU `timeout` signals the server and then its process
/// group, and that second SIGTERM, a few milliseconds later, cut requests
/// in flight (found by an audit). Ctrl-C pressed again comes later.
const REPEATED_SIGNAL: std::time::Duration = std::time::Duration::from_millis(500);

/// After the first stop signal, a second one (Ctrl-C pressed again) ends
/// the process at once instead of waiting out requests in flight and the
/// last flush: every acknowledged write is in the write-ahead log (or the
/// Raft log), which the next start replays, as after a crash.
fn stop_at_a_second_signal(serve_hint: Option<PathBuf>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return; // the first signal's stop goes on as before
    };
    let spawned = std::thread::Builder::new()
        .name("kvr-second-signal".into())
        .spawn(move || {
            let first = std::time::Instant::now();
            let mut second = signals
                .forever()
                .filter(|_| first.elapsed() >= REPEATED_SIGNAL);
            if let Some(signal) = second.next() {
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                crate::server::log::event(format_args!(
                    "kvr serve: second {name}: stopping now; requests in flight are cut, and \
                     the next start replays the log, which holds every acknowledged write"
                ));
                crate::server::log::flush_events();
                if let Some(path) = serve_hint {
                    let _ = std::fs::remove_file(path);
                }
                std::process::exit(0);
            }
        });
    drop(spawned);
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

/// The listening line could not be written: the server stops (exit 3),
/// saying so. A reader of stdout that went away (EPIPE) is no quiet
/// success here, as it is for commands that print data: the process that
/// started the server waits for that line.
fn listening_line_failed(e: std::io::Error) -> Error {
    let e = match e.kind() {
        std::io::ErrorKind::BrokenPipe => std::io::Error::other("stdout is a pipe nobody reads"),
        _ => e,
    };
    Error::io("cannot write the listening line to stdout", e)
}

/// Connections the kernel queues for a listener before it accepts them
/// (Redis and nginx take 511, tokio's own bind 1,024; Linux caps it at
/// `net.core.somaxconn`, 4,096 by default since Linux 5.4).
const LISTEN_BACKLOG: i32 = 1024;

/// A listener on `addr`, as `std::net::TcpListener::bind` makes it
/// (`SO_REUSEADDR`, close-on-exec) but with [`LISTEN_BACKLOG`]: std's 128
/// overflowed when 1,024 clients connected at once (`wrk -c1024`: 1,503
/// SYNs dropped in three runs, each client's a 1 s retransmit).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As std does on Unix (on Windows it would let another process take
    // the port).
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A listener that could not bind, with what to do for the usual causes.
fn cannot_listen(addr: SocketAddr, flag: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    let hint = match e.kind() {
        ErrorKind::AddrInUse => {
            "; another process listens there: stop it, or give another port (port 0 picks a free one)"
        }
        ErrorKind::AddrNotAvailable => "; this machine has no such address",
        ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "; ports below 1024 need privileges: give a port of 1024 or more"
        }
        _ => "",
    };
    let e = if hint.is_empty() {
        e
    } else {
        std::io::Error::new(e.kind(), format!("{e}{hint}"))
    };
    Error::io(format!("cannot listen on {addr}{flag}"), e)
}

#[cfg(test)]
mod tests {
    /// `serve --help` states the cluster-mode default of the two limits in
    /// words clap cannot derive: they must say what `limits_of` does.
    #[test]
    fn help_states_the_cluster_defaults() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        let said = format!("is {}", super::CLUSTER_MAX_BYTES);
        assert_eq!(help.matches(&said).count(), 2, "{help}");
    }

    /// SPEC's 64 MiB default batch is kept on a small host, with a warning
    /// that names a limit that fits; none where it fits already.
    #[test]
    fn a_batch_limit_the_memory_cannot_hold_is_warned_of() {
        const MIB: u64 = 1 << 20;
        let warning = super::batch_warning(64 << 20, 256 * MIB).expect("a warning");
        assert!(
            warning.contains("up to 64 MiB")
                && warning.contains("may use 256 MiB")
                && warning.contains("--max-batch-bytes 33554432"),
            "{warning}"
        );
        assert_eq!(super::batch_warning(64 << 20, 512 * MIB), None);
        assert_eq!(super::batch_warning(8 << 20, 256 * MIB), None);
        // Never a suggestion below 1 MiB.
        let tiny = super::batch_warning(64 << 20, 3 * MIB).expect("a warning");
        assert!(tiny.contains("--max-batch-bytes 1048576"), "{tiny}");
    }
}
