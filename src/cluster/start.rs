//! Starting a cluster member (`kvr serve --raft-listen`): its identity
//! (made by `--cluster-init`, obtained by `--join`, or read back from the
//! database file), its Raft instance, the raft listener, and joining.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::answered::AnsweredRecord;
use super::boot::BootRecord;
use super::log_store::{self, LogStore};
use super::network::{Identity, Network, full};
use super::node::{JoinAnswer, JoinRequest, Node, first_members};
use super::owner;
use super::state_machine::StateMachine;
use super::types::{Member, NodeId};
use crate::engine::history::HistoryBounds;
use crate::engine::{Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::cluster::IDENTITY;

/// How often the age of the live memory table is looked at.
const FLUSH_TICK: Duration = Duration::from_millis(500);
/// How often a leader looks whether its own history bounds are the ones
/// in force (`Node::adopt_history_bounds`).
const HISTORY_CHECK: Duration = Duration::from_millis(200);
/// How often a restarted member tries again to catch up with its cluster
/// while it cannot (no leader yet).
const RECOVERY_RETRY: Duration = Duration::from_millis(100);
/// Raft log entries between snapshots (which let the log be purged);
/// `KVR_RAFT_SNAPSHOT_EVERY` changes it (tests use a small one). Building
/// one costs a flush on every node, so not more often: at 50,000 a 3-node
/// cluster under write load snapshotted every 5 s; at 500,000, with one
/// entry per request, 1,024 clients of PUTs saw a p99 of 238-689 ms
/// against 117-173 ms without snapshots. For small writes (~150 bytes a
/// record) [`SNAPSHOT_BYTES`] comes first, as it did when entries were
/// shared. The price is the log kept: at most 256 MiB on disk, and 8
/// bytes of index per entry in memory (at most 16 MB; `log_store/index.rs`).
const SNAPSHOT_EVERY: u64 = 2_000_000;
/// Bytes appended to the Raft log between snapshots, whatever the entry
/// count (a batch request's entry can be large), so the log
/// on disk stays about this size; `KVR_RAFT_SNAPSHOT_BYTES` changes it.
const SNAPSHOT_BYTES: u64 = 256 << 20;

fn snapshot_every() -> u64 {
    env_or("KVR_RAFT_SNAPSHOT_EVERY", SNAPSHOT_EVERY)
}

fn snapshot_bytes() -> u64 {
    env_or("KVR_RAFT_SNAPSHOT_BYTES", SNAPSHOT_BYTES)
}

/// Bytes of the newest entries kept below a snapshot (for a follower a
/// little behind to catch up from the log); older ones are purged once a
/// snapshot holds them, whatever openraft's count of entries to keep.
/// `KVR_RAFT_KEEP_BYTES` changes it.
const KEEP_BYTES: u64 = 64 << 20;

fn keep_bytes() -> u64 {
    env_or("KVR_RAFT_KEEP_BYTES", KEEP_BYTES)
}

/// A positive number from the environment, else `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// This node's identity as kept in its database file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredIdentity {
    cluster_id: String,
    node_id: NodeId,
}

/// How to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's public URL and raft address, as others reach them.
    pub member: Member,
    pub init: bool,
    pub join: Vec<String>,
    pub learner: bool,
    /// The node-to-node secret.
    pub cluster_token: Option<String>,
    /// The client token members require, presented when joining.
    pub client_token: Option<String>,
    pub heartbeat_ms: u64,
    pub election_ms: (u64, u64),
    /// `--tls-cert`/`--tls-key`: the raft listener serves TLS with them.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS towards peers and `--join` targets (set iff `tls` is).
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
}

/// Whether a public URL is an HTTPS one: a member's advertised URL says
/// whether it (and so its cluster, all-TLS or all-plain) speaks TLS.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn mode(tls: bool) -> &'static str {
    if tls { "TLS" } else { "plain HTTP" }
}

/// The identity in a database file, if it is a cluster member.
pub fn identity_of(store: &Store) -> Result<Option<(String, NodeId)>> {
    store
        .cluster_value(IDENTITY)?
        .map(|bytes| decode_identity(&bytes))
        .transpose()
}

/// A member's identity as stored in its file: cluster id, node id.
pub fn decode_identity(bytes: &[u8]) -> Result<(String, NodeId)> {
    let id: StoredIdentity = postcard::from_bytes(bytes)
        .map_err(|e| Error::Corrupt(format!("bad cluster identity: {e}")))?;
    Ok((id.cluster_id, id.node_id))
}

/// While a new node waits for its id: dropped before [`DiscardUnjoined::keep`],
/// removes the database file if this process created it and nothing was
/// written to it (`Store::discard_if_unwritten`).
struct DiscardUnjoined<'a>(Option<&'a Store>);

impl DiscardUnjoined<'_> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for DiscardUnjoined<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.0 {
            let _ = store.discard_if_unwritten();
        }
    }
}

fn new_cluster_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| Error::io("cannot read /dev/urandom", e))?,
        &mut bytes,
    )
    .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts the member over `store`, serving Raft on `raft_listener`;
/// calls `listening` (the listening lines) once its start-up checks
/// passed.
pub async fn start(
    store: Store,
    raft_listener: tokio::net::TcpListener,
    opts: Options,
    engine_opts: EngineOptions,
    listening: impl FnOnce() -> Result<()>,
) -> Result<Arc<Node>> {
    // `serve`'s listening lines, which a script takes for a node that
    // serves: said once the start-up checks below passed (a refused copy
    // of a running member's files printed them, then exited 3), and
    // before joining, which may wait for a member.
    let mut listening = Some(listening);
    let mut say_listening = || listening.take().map_or(Ok(()), |say| say());
    let db = store.path().to_path_buf();
    let opts = without_self(opts, &store)?;
    if let (Some((cluster, node)), Some(_)) = (
        identity_of(&store)?,
        store.cluster_value(crate::store::cluster::REMOVED)?,
    ) {
        return Err(Error::Removed(format!(
            "node {node} was removed from cluster {cluster}; {}",
            crate::cluster::COME_BACK
        )));
    }
    let (cluster_id, node_id, fresh) = match identity_of(&store)? {
        Some((c, n)) => {
            if !opts.join.is_empty() {
                check_join_cluster(&opts, &c, n).await?;
            }
            // Said, so that nobody takes the flag for what was done (an
            // audit found it ignored without a word).
            let given = match (opts.init, opts.join.is_empty()) {
                (true, _) => Some("--cluster-init"),
                (false, false) => Some("--join"),
                (false, true) => None,
            };
            if let Some(flag) = given {
                crate::server::log::event(format_args!(
                    "kvr serve: {flag} ignored: {} is node {n} of cluster {c} already",
                    db.display()
                ));
            }
            (c, n, false)
        }
        None if opts.init => {
            let id = (new_cluster_id()?, 1);
            (id.0, id.1, true)
        }
        None if !opts.join.is_empty() => {
            refuse_join_with_data(&store, &opts)?;
            // Refused, or stopped by a signal while it waits (this future
            // is then dropped): a file this start created goes again, as
            // a failed first write's does.
            let unjoined = DiscardUnjoined(Some(&store));
            say_listening()?;
            let answer = ask_join(&opts, None, None).await?;
            unjoined.keep();
            (answer.cluster_id, answer.node_id, true)
        }
        None => {
            return Err(Error::invalid(format!(
                "{} is not a cluster member: give --cluster-init (a new cluster) or --join URL",
                db.display()
            )));
        }
    };
    if fresh {
        // A file that is not a member yet has no Raft log: one beside it
        // was left by a database file deleted (or replaced) since, and
        // taking it made this node replay another node's log, with its
        // data and its membership (a new cluster then had members that
        // were not there, and no leader). Removed before the identity is
        // written, so a crash in between leaves a fresh file again.
        discard_stale_log(&db)?;
        let bytes = postcard::to_allocvec(&StoredIdentity {
            cluster_id: cluster_id.clone(),
            node_id,
        })
        .map_err(|e| Error::Storage(format!("encode identity: {e}")))?;
        store.set_cluster_value(IDENTITY, &bytes)?;
    }
    // A standalone server's log left by a crash goes into the file first.
    crate::wal::recover(&store)?;
    let history = engine_opts.history;
    let (engine, writer) = Engine::start_replicated(Arc::new(store), engine_opts)?;
    let sm = StateMachine::new(engine.clone(), writer)?.noting_history_bounds();
    let engine_writer = sm.writer();
    let identity = (cluster_id.clone(), node_id);
    let log_dir = log_store::dir_of(&db);
    if log_dir.is_dir() {
        owner::check(&log_dir, &db, &identity)?;
    }
    if let Some(applied) = sm
        .last_applied()
        .filter(|_| !log_store::holds_vote(&log_dir))
    {
        return Err(log_gone(&db, &log_dir, node_id, applied.index));
    }
    let log = LogStore::open(&log_dir).map_err(|e| Error::io("cannot open the Raft log", e))?;
    owner::record(&log_dir, &identity)?;
    let answered = AnsweredRecord::open(&log_store::dir_of(&db))
        .map_err(|e| Error::io("cannot open the Raft log's answered-revision record", e))?;
    // Before Raft writes anything: a trusted clean stop is replaced here.
    let (boot, trusted) = BootRecord::open(&log_store::dir_of(&db))
        .map_err(|e| Error::io("cannot open the Raft log's boot record", e))?;
    // A commit index record that is gone or torn (a disk fault, a hand)
    // under a log with entries: the replay may stop short of what was
    // applied, whatever the boot record says.
    let committed_known = log_store::read_committed_in(&log_store::dir_of(&db))
        .map_err(|e| Error::io("cannot read the Raft log's commit index", e))?
        .is_some();
    let trusted = trusted && (committed_known || log.last_index().is_none());
    let appended = log.appended();
    let log_sizes = log.clone();
    let me = Arc::new(Identity {
        cluster_id,
        node_id,
        token: opts.cluster_token.clone(),
        tls: opts.peer_tls.clone(),
        clocks: Default::default(),
    });
    if !fresh {
        // Before Raft starts, which would stand for election.
        refuse_a_second_process(&opts, &me, raft_listener.local_addr().ok()).await?;
    }
    let config = openraft::Config {
        cluster_name: "kvr".into(),
        heartbeat_interval: opts.heartbeat_ms,
        election_timeout_min: opts.election_ms.0,
        election_timeout_max: opts.election_ms.1,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every()),
        max_in_snapshot_log_to_keep: snapshot_every().min(1000),
        // SPEC: a node back from a partition does not depose a healthy
        // leader. Without pre-vote it raised its term at every election
        // timeout while cut off, and its return forced an election
        // (writes got 503s for about a second). openraft leaves it off
        // unless asked.
        enable_pre_vote: Some(true),
        // A restarted leader stands for election like any node, as in
        // standard Raft. openraft otherwise lets it resume leadership in
        // its old term at once, counting on its log to hold every entry
        // it proposed. After a power loss it may not: a majority of
        // followers may have committed entries its own unsynced log
        // lost. Back as leader of the same term, it proposed new entries
        // under those entries' log ids (term, node, index). The followers
        // took them for the ones they held, so the replicas diverged and
        // acknowledged writes were lost on the old leader, and on any
        // follower that later took a snapshot from it
        // (`scripts/prove/lazyfs_cluster.py` found it in 60 power losses).
        // A `kill -9` keeps the log's page cache, so it never showed there.
        // The cost is an election after a leader's restart.
        enable_leader_restore: Some(false),
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::invalid(format!("bad Raft settings: {e}")))?;
    let raft = openraft::Raft::new(
        node_id,
        Arc::new(config),
        Network { me: me.clone() },
        log,
        sm,
    )
    .await
    .map_err(|e| Error::Storage(format!("cannot start Raft: {e}")))?;
    if !fresh {
        check_restart(&raft, node_id, &opts.member).await?;
    }
    say_listening()?;
    let tmp_dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| std::path::PathBuf::from("."), |p| p.to_path_buf());
    let node = Arc::new(Node::new(
        raft,
        me,
        opts.member.clone(),
        engine,
        engine_writer,
        tmp_dir,
        appended.clone(),
        answered,
        boot,
    ));
    tokio::spawn(serve_raft(
        raft_listener,
        opts.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        node.clone(),
    ));
    if fresh && opts.init {
        // A new cluster's first node: there is nothing to catch up with.
        node.mark_recovered();
    } else {
        if fresh {
            node.mark_new_member();
        } else if trusted {
            // A restart in the same boot (a `kill -9`) or after a clean
            // stop replays all it applied.
            node.mark_stale_reads_safe();
        }
        // Catch up with the cluster once, so that readiness (and stale
        // reads) need not wait for a client's read (see `Node::recovered`,
        // `Node::caught_up`).
        let catching_up = node.clone();
        tokio::spawn(async move {
            while !catching_up.caught_up() {
                if catching_up.read_barrier().await.is_err() {
                    tokio::time::sleep(RECOVERY_RETRY).await;
                }
            }
        });
    }
    let ticker = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_TICK);
        let mut snapshot_at = 0;
        let mut purge_asked = 0;
        loop {
            tick.tick().await;
            let n = ticker.clone();
            let _ = tokio::task::spawn_blocking(move || n.maybe_flush()).await;
            // A snapshot lets the log be purged: one per SNAPSHOT_BYTES
            // appended (besides openraft's own, per SNAPSHOT_EVERY entries).
            let now = appended.load(std::sync::atomic::Ordering::Relaxed);
            if now - snapshot_at >= snapshot_bytes() {
                snapshot_at = now;
                let _ = ticker.raft.trigger().snapshot().await;
            }
            // Below what the newest snapshot holds (it is built apart, so
            // its index is read back), and past the newest `keep_bytes`.
            if let Some(keep) = log_sizes.keep_from(keep_bytes()) {
                let m = ticker.metrics();
                let held = m.snapshot.map_or(0, |l| l.index);
                let purged = m.purged.map_or(0, |l| l.index);
                let upto = (keep - 1).min(held);
                if upto > purged && upto != purge_asked {
                    purge_asked = upto;
                    let _ = ticker.raft.trigger().purge_log(upto).await;
                }
            }
        }
    });
    tokio::spawn(node.clone().watch_for_removal());
    let adopter = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HISTORY_CHECK);
        loop {
            tick.tick().await;
            adopter.adopt_history_bounds().await;
        }
    });
    let initialized = node
        .raft
        .is_initialized()
        .await
        .map_err(|e| Error::Storage(format!("Raft stopped: {e}")))?;
    if opts.init && !initialized {
        node.raft
            .initialize(first_members(node_id, opts.member.clone()))
            .await
            .map_err(|e| Error::Storage(format!("cannot initialize the cluster: {e}")))?;
        if node.engine.revision() > 0 {
            seed_snapshot(&node).await?;
        }
    }
    let is_member = node
        .metrics()
        .membership_config
        .membership()
        .nodes()
        .any(|(id, _)| *id == node_id);
    if !opts.join.is_empty() && !is_member {
        let joining = node.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            match ask_join(&opts, Some(node_id), Some(history)).await {
                Ok(_) => crate::server::log::event(format_args!(
                    "kvr serve: joined cluster {} as node {node_id}",
                    joining.me.cluster_id
                )),
                // A definite refusal (a conflict, a wrong token, a
                // certificate or TLS mode the cluster refuses) ends the
                // process, as a refusal of the first request does, and
                // takes away what this start made for a node the cluster
                // never had: restarted, it looked like a member.
                Err(e) if e.exit_code() == 3 => {
                    crate::server::log::event(format_args!(
                        "kvr serve: joining failed: {e}; exiting"
                    ));
                    if fresh && joining.engine.store().discard_if_unwritten() {
                        discard_node_files(joining.engine.store().path());
                    }
                    super::exit_on(&e, joining.engine.store().path());
                }
                Err(e) => crate::server::log::event(format_args!("kvr serve: joining failed: {e}")),
            }
        });
    }
    Ok(node)
}

/// A member whose file applied entries but whose Raft log is gone (or
/// holds no vote: moved away, not restored with the file). Started so, it
/// would vote with an empty log and no memory of its vote, and a majority
/// counting it could lack writes the cluster acknowledged: an audit lost
/// one that way, and the members' data diverged for good.
pub(crate) fn log_gone(
    db: &std::path::Path,
    log: &std::path::Path,
    node: NodeId,
    applied: u64,
) -> Error {
    Error::Corrupt(format!(
        "{} is node {node} of its cluster and applied its log up to entry {applied}, but its \
         Raft log {} is missing or holds no vote, so it does not start: with an empty log its \
         vote could elect a leader that lacks writes the cluster acknowledged. Put {} back as \
         it was; or remove the node from its cluster (`kvr cluster remove {node}` through \
         another member), move {} aside, and start it again with --join to come back as a new \
         member with the cluster's data",
        db.display(),
        log.display(),
        log.display(),
        db.display(),
    ))
}

/// Where a raft listener says which node of which cluster it serves, and
/// in which process (no peer check: it tells no more than a refusal does).
pub const HELLO_PATH: &str = "/raft/hello";

/// A restarted member whose advertised raft address is not the one it
/// listens on asks who answers there: another process serving this very
/// node means these files are a copy of a running member's. Started, the
/// copy stood for election as that node: an audit saw it become leader at
/// an address no client knew, while the real node's peers sent clients to
/// the real one, and no write went through until the copy stopped. Where
/// the address leads to this process (a proxy, NAT) or nowhere yet, it
/// starts.
async fn refuse_a_second_process(
    opts: &Options,
    me: &Identity,
    bound: Option<std::net::SocketAddr>,
) -> Result<()> {
    let advertised = &opts.member.raft;
    if leads_here(advertised, bound).await {
        return Ok(());
    }
    let scheme = if opts.peer_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{advertised}");
    let Ok((200, body)) = send_json(
        &base,
        hyper::Method::GET,
        HELLO_PATH,
        b"",
        opts,
        Duration::from_secs(1),
    )
    .await
    else {
        return Ok(());
    };
    let Ok(hello) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(());
    };
    let same_node = hello["cluster_id"].as_str() == Some(me.cluster_id.as_str())
        && hello["node_id"].as_u64() == Some(me.node_id);
    let other_process = hello["process"].as_str() != Some(crate::server::joining::this_process());
    if same_node && other_process {
        return Err(Error::Conflict(format!(
            "node {} of cluster {} already runs at raft address {advertised} (another process \
             answered there): these files are a copy of a running member's, and two processes \
             with one node's files would split its vote, which can leave the cluster with no \
             leader its clients reach. Stop the other process first; to add a node, start one \
             with a new file and --join",
            me.node_id, me.cluster_id
        )));
    }
    Ok(())
}

/// Whether the advertised raft address is the bound one, under another
/// name (`localhost`) or through a wildcard bind (`0.0.0.0:P` advertised
/// as `127.0.0.1:P`): no other process can answer there, and a probe of
/// it would wait its whole second for this one (the review audit saw
/// restarts take a second longer, and a TLS one log a failed handshake).
async fn leads_here(advertised: &str, bound: Option<std::net::SocketAddr>) -> bool {
    let Some(bound) = bound else {
        return false;
    };
    let resolved = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::lookup_host(advertised.to_string()),
    )
    .await;
    let Ok(Ok(addrs)) = resolved else {
        return false;
    };
    addrs.into_iter().any(|a| {
        a == bound
            || (bound.ip().is_unspecified() && a.port() == bound.port() && a.ip().is_loopback())
    })
}

/// A `--join` of a file that is no member but holds data: refused (exit 2;
/// checked by `serve` before it says it listens, and again here).
pub fn refuse_join_with_data(store: &Store, opts: &Options) -> Result<()> {
    if opts.join.is_empty() || opts.init || identity_of(store)?.is_some() {
        return Ok(());
    }
    let stats = store.stats()?;
    if stats.keys > 0 || stats.revision > 0 {
        return Err(Error::invalid(format!(
            "{} holds data ({} key{}): --join needs an empty file (to bring data into a new \
             cluster, use --cluster-init)",
            store.path().display(),
            stats.keys,
            if stats.keys == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// Removes a Raft log directory beside `db` that no member file owns (see
/// the caller), saying so on stderr.
fn discard_stale_log(db: &std::path::Path) -> Result<()> {
    let dir = log_store::dir_of(db);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    std::fs::remove_dir_all(&dir).map_err(|e| {
        Error::io(
            format!(
                "cannot remove {}, the Raft log of a database file that is gone",
                dir.display()
            ),
            e,
        )
    })?;
    crate::server::log::event(format_args!(
        "kvr serve: removed {}: a Raft log left by a database file that is gone ({} is not a \
         cluster member yet)",
        dir.display(),
        db.display()
    ));
    Ok(())
}

/// The Raft log and the `DB.serve` note of a new node's file `db` that was
/// just removed (its join refused): nothing of the node is left.
fn discard_node_files(db: &std::path::Path) {
    let _ = std::fs::remove_dir_all(log_store::dir_of(db));
    let _ = std::fs::remove_file(crate::store::serve_hint_path(db));
}

/// `opts` less the `--join` targets that are this node's own URL: one
/// command line for every member (`--join n1,n2,n3`) names each node
/// itself too, and a join asked of itself waited for its own answer (it
/// serves nothing until it has joined) for two minutes. A new node whose
/// every target is itself is a usage error; a member's file ignores
/// `--join` anyway.
fn without_self(mut opts: Options, store: &Store) -> Result<Options> {
    let before = std::mem::take(&mut opts.join);
    let (own, others): (Vec<String>, Vec<String>) = before
        .into_iter()
        .partition(|u| same_url(u, &opts.member.url));
    if let Some(own) = own.first()
        && others.is_empty()
        && identity_of(store)?.is_none()
    {
        return Err(joins_itself(own));
    }
    opts.join = others;
    Ok(opts)
}

/// Whether two member URLs are the same (as `--server` URLs are read).
pub fn same_url(a: &str, b: &str) -> bool {
    crate::client::normal_url(a).eq_ignore_ascii_case(&crate::client::normal_url(b))
}

/// A new node whose every `--join` target is its own URL `own`.
pub fn joins_itself(own: &str) -> Error {
    Error::invalid(format!(
        "--join {own} is this node's own URL: give the URL of a member of the cluster to join \
         (a new cluster starts with --cluster-init)"
    ))
}

/// A new node whose every `--join` target led back to itself (`url`, the
/// last), under names other than its own URL.
fn reaches_itself(url: &str) -> Error {
    Error::invalid(format!(
        "--join {url} reaches this node itself (its own listener answered, under another name \
         than its URL): give the URL of a member of the cluster to join (a new cluster starts \
         with --cluster-init)"
    ))
}

/// A file that held data before its cluster was made: that data is in no
/// log entry, so snapshot it and purge the log under it; nodes that join
/// then start from the snapshot and get the data.
async fn seed_snapshot(node: &Node) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::Storage(format!(
            "cannot snapshot the data the cluster starts with: {e}"
        ))
    };
    node.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.last_applied.is_some(), "the first entry applied")
        .await
        .map_err(|e| failed(&e))?;
    node.raft
        .trigger()
        .snapshot()
        .await
        .map_err(|e| failed(&e))?;
    let m = node
        .raft
        .wait(Some(Duration::from_secs(60)))
        .metrics(|m| m.snapshot.is_some(), "the first snapshot")
        .await
        .map_err(|e| failed(&e))?;
    if let Some(snap) = m.snapshot {
        node.raft
            .trigger()
            .purge_log(snap.index)
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// A restarted member must come back as its peers know it: at the same
/// raft address (they have no other), and in the same mode (TLS or not).
async fn check_restart(raft: &super::node::Raft, node_id: NodeId, now: &Member) -> Result<()> {
    // From Raft's own state: the metrics may not show the membership yet.
    let known = raft
        .with_raft_state(move |st| {
            st.membership_state
                .effective()
                .membership()
                .get_node(&node_id)
                .cloned()
        })
        .await
        .map_err(|e| Error::Storage(format!("Raft stopped: {e}")))?;
    let Some(known) = known else {
        return Ok(());
    };
    if is_https(&known.url) != is_https(&now.url) {
        return Err(Error::Tls(format!(
            "node {node_id} is a member of a {} cluster (its URL is {}), but now starts with {}: \
             a cluster is all-TLS or all-plain; {}",
            mode(is_https(&known.url)),
            known.url,
            mode(is_https(&now.url)),
            if is_https(&known.url) {
                "give --tls-cert and --tls-key"
            } else {
                "start it without --tls-cert and --tls-key"
            }
        )));
    }
    if known.raft != now.raft {
        return Err(Error::invalid(format!(
            "node {node_id} is a member at raft address {}, which its peers use, but now \
             listens on {}: restart it with --raft-listen {} (or --advertise-raft {} if that \
             address reaches this one)",
            known.raft, now.raft, known.raft, known.raft
        )));
    }
    if known.url != now.url {
        crate::server::log::event(format_args!(
            "kvr serve: warning: node {node_id} is known to its cluster by the URL {}, but now \
             serves {}; clients that ask for the leader are sent to the URL the cluster knows",
            known.url, now.url
        ));
    }
    Ok(())
}

/// Serves the raft listener, over TLS when `tls` is given.
async fn serve_raft(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    node: Arc<Node>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, std::convert::Infallible>(node.handle_raft(req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    if let Some(stream) = accept_peer(&acceptor, stream, peer).await {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            }
        });
    }
}

/// The TLS handshake of a peer on the raft listener. A peer speaking
/// plain HTTP (a member started without TLS) is answered in plain HTTP
/// that this cluster is all-TLS, and both ends say so in their logs.
async fn accept_peer(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    let handshake = async {
        if stream.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            let why = "this raft listener speaks TLS only: a cluster is all-TLS or all-plain, \
                       and this one is all-TLS (start every member with --tls-cert and --tls-key)";
            super::network::log_rarely(
                &peer.ip().to_string(),
                format_args!("kvr serve: refusing plain HTTP from a peer at {peer}: {why}"),
            );
            let mut stream = stream;
            // Read the request first: closing a socket with unread data
            // resets the connection, and the answer would be lost.
            let mut request = [0u8; 4096];
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::io::AsyncReadExt::read(&mut stream, &mut request),
            )
            .await;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
                why.len()
            );
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, answer.as_bytes()).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            return None;
        }
        match acceptor.accept(stream).await {
            Ok(s) => Some(s),
            Err(e) => {
                super::network::log_rarely(
                    &peer.ip().to_string(),
                    format_args!(
                        "kvr serve: the TLS handshake with a peer at {peer} failed: {e} (does \
                         it trust this node's certificate? give its CA with --cacert)"
                    ),
                );
                None
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .ok()
        .flatten()
}

/// Asks the members in `opts.join` (in turn, with backoff, until one
/// answers) to add this node: first for an id (`node_id` None), then to
/// join with it. A definite refusal ends the retries.
/// Asks the `--join` targets to add this node. With `ours` (this node's
/// history bounds), says when the cluster keeps other bounds: this node
/// keeps the cluster's (see `Command::SetHistory`).
async fn ask_join(
    opts: &Options,
    node_id: Option<NodeId>,
    ours: Option<HistoryBounds>,
) -> Result<JoinAnswer> {
    let req = JoinRequest {
        url: opts.member.url.clone(),
        raft: opts.member.raft.clone(),
        node_id,
        learner: opts.learner,
    };
    let body = serde_json::to_vec(&req).map_err(|e| Error::Storage(e.to_string()))?;
    let mut delay = Duration::from_millis(100);
    let mut last = String::new();
    // Until a member answers (SPEC: "retrying with backoff until a member
    // answers"; it gave up after 60 rounds, about 2 minutes, while its
    // seed was down). SIGTERM ends the wait as it ends the server.
    let mut said: Option<std::time::Instant> = None;
    // Targets whose answer came from this node itself, under another name
    // than its own URL (`without_self` drops that one).
    let mut itself: Vec<&str> = Vec::new();
    loop {
        for url in &opts.join {
            if itself.contains(&url.as_str()) {
                continue;
            }
            // A member that is stopped (SIGSTOP) or cut off takes the
            // connection and never answers: the join would wait its whole
            // bound before the next target. One that answers anything, at
            // once, is asked (a refusal there is the join's answer).
            let probe = send_json(
                url,
                hyper::Method::GET,
                "/healthz",
                &[],
                opts,
                JOIN_PROBE_WAIT,
            );
            if let Err(e) = probe.await {
                if answered_by_itself(&e) {
                    itself.push(url);
                    if itself.len() == opts.join.len() {
                        return Err(reaches_itself(url));
                    }
                    crate::server::log::event(format_args!(
                        "kvr serve: --join {url} reaches this node itself; asking the others"
                    ));
                    continue;
                }
                if crate::tls::failure(url, &e).is_none() {
                    last = format!("{url}: {e}");
                    continue;
                }
            }
            match send_json(
                url,
                hyper::Method::POST,
                "/v1/cluster/join",
                &body,
                opts,
                JOIN_WAIT,
            )
            .await
            {
                Ok((200, bytes)) => {
                    if let Some(ours) = ours {
                        warn_history(url, &bytes, ours);
                    }
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| Error::Storage(format!("bad join answer from {url}: {e}")));
                }
                Ok((status @ (401 | 403 | 404 | 409 | 400), bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).to_string();
                    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_string))
                        .unwrap_or(text);
                    // Its error's own prefix, which the error made here
                    // says again (`unauthorized: …`).
                    let message = message
                        .strip_prefix("unauthorized: ")
                        .map_or(message.clone(), str::to_string);
                    let refused = format!("{url} refused to add this node: {message}");
                    // A raft listener's refusal of a request with no
                    // cluster id: the URL is a member's --raft-listen.
                    if status == 403
                        && message.starts_with("this node belongs to cluster")
                        && message.ends_with("not \"\"")
                    {
                        return Err(Error::invalid(format!(
                            "--join {url} is a raft listener (it answered as one), not a member's \
                             URL: give the URL a member serves clients on (its --listen)"
                        )));
                    }
                    return Err(match status {
                        409 => Error::Conflict(refused),
                        401 | 403 => Error::Unauthorized(refused),
                        // A TLS port answering plain HTTP, or a member of
                        // a cluster of the other mode (all-TLS or all-plain).
                        _ if message.contains("HTTPS only") => Error::Tls(format!(
                            "protocol mismatch: {url} speaks HTTPS only and this node plain \
                             HTTP: a cluster is all-TLS or all-plain (give this node \
                             --tls-cert and --tls-key and join an https:// URL)"
                        )),
                        _ if message.contains("all-TLS or all-plain") => {
                            Error::Tls(format!("protocol mismatch: {refused}"))
                        }
                        _ => Error::Conflict(refused),
                    });
                }
                Ok((status, bytes)) => {
                    // The error's message, not its JSON and line end.
                    let said = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_string))
                        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim_end().to_string());
                    last = format!("{url}: HTTP {status}: {said}");
                }
                Err(e) => {
                    // A certificate refused (or TLS and plain HTTP mixed
                    // up) does not mend with retries.
                    if let Some(refused) = crate::tls::failure(url, &e) {
                        return Err(refused);
                    }
                    last = format!("{url}: {e}");
                }
            }
        }
        // Said at the first round, then once a minute.
        if said.is_none_or(|at| at.elapsed() >= JOIN_WAIT_NOTICE) {
            said = Some(std::time::Instant::now());
            crate::server::log::event(format_args!(
                "kvr serve: waiting for a member to add this node ({last})"
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// How often a join that no member has answered says it is still waiting.
const JOIN_WAIT_NOTICE: Duration = Duration::from_secs(60);

/// How long a join request may take (the member waits for this node to
/// catch up before it answers).
const JOIN_WAIT: Duration = Duration::from_secs(120);
/// How long a join target has to answer `/healthz` before the join goes
/// to the next (see [`ask_join`]).
const JOIN_PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long a connection to a join target may take to open.
const JOIN_CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long a restarted member given `--join` looks for the cluster the
/// join targets belong to, in all, before it serves without knowing.
const JOIN_CHECK_WAIT: Duration = Duration::from_secs(2);

/// A member restarted with `--join`: ignored when the targets belong to
/// its own cluster, refused (exit 3) when one answers that it belongs to
/// another. When none answers (the whole cluster restarting, say) the
/// node serves its own cluster, as a restart without `--join` would, and
/// says so.
/// Logs a warning when the join answer in `bytes` (from `url`) names
/// history bounds in force other than `ours`.
fn warn_history(url: &str, bytes: &[u8], ours: HistoryBounds) {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let h = &answer["history"];
    let (Some(events), Some(bytes)) = (h["events"].as_u64(), h["bytes"].as_u64()) else {
        return; // a member of an earlier release
    };
    if (events, bytes) != (ours.events, ours.bytes) {
        crate::server::log::event(format_args!(
            "kvr serve: warning: the cluster at {url} keeps --history {events} \
             --history-bytes {bytes} of watch history, this node's flags say --history {} \
             --history-bytes {}: this node keeps the cluster's, and its own hold for every \
             node only while it leads; give every member the same",
            ours.events, ours.bytes
        ));
    }
}

async fn check_join_cluster(opts: &Options, cluster_id: &str, node_id: NodeId) -> Result<()> {
    let mut unanswered = Vec::new();
    let ask = async {
        // (Not this node's own URL: `without_self` took it out.)
        for url in &opts.join {
            match send_json(
                url,
                hyper::Method::GET,
                "/v1/cluster",
                &[],
                opts,
                JOIN_CHECK_WAIT,
            )
            .await
            {
                Ok((200, bytes)) => {
                    let theirs = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["cluster_id"].as_str().map(str::to_string));
                    match theirs {
                        Some(theirs) if theirs == cluster_id => return Ok(()),
                        Some(theirs) => {
                            return Err(Error::Conflict(format!(
                                "this database is node {node_id} of cluster {cluster_id}, but \
                                 --join {url} is a member of cluster {theirs}: a database \
                                 belongs to one cluster (serve it without --join to rejoin \
                                 {cluster_id}, or join {theirs} with a new --db file)"
                            )));
                        }
                        None => unanswered.push(format!("{url}: no cluster id in its answer")),
                    }
                }
                Ok((status, _)) => unanswered.push(format!("{url}: HTTP {status}")),
                Err(e) => unanswered.push(format!("{url}: {e}")),
            }
        }
        Err(Error::Unavailable {
            message: unanswered.join("; "),
            overloaded: false,
        })
    };
    match tokio::time::timeout(JOIN_CHECK_WAIT, ask).await {
        Ok(Err(Error::Unavailable { message, .. })) => {
            crate::server::log::event(format_args!(
                "kvr serve: warning: node {node_id} of cluster {cluster_id} was given --join, \
                 and no member named there said which cluster it belongs to ({message}); \
                 serving cluster {cluster_id}"
            ));
            Ok(())
        }
        Ok(answer) => answer,
        Err(_) => {
            crate::server::log::event(format_args!(
                "kvr serve: warning: node {node_id} of cluster {cluster_id} was given --join, \
                 and no member named there answered within {JOIN_CHECK_WAIT:?}; serving \
                 cluster {cluster_id}"
            ));
            Ok(())
        }
    }
}

/// Sends `body` as JSON to `base` + `path`, over TLS for an `https://`
/// base, and waits up to `limit` for the answer.
async fn send_json(
    base: &str,
    method: hyper::Method,
    path: &str,
    body: &[u8],
    opts: &Options,
    limit: Duration,
) -> std::io::Result<(u16, Bytes)> {
    let (authority, tls) = match base.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, None),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
            let tls = opts.peer_tls.as_ref().ok_or_else(|| {
                std::io::Error::other(format!(
                    "{base}: an https:// member needs this node to have TLS too"
                ))
            })?;
            (rest, Some(tls))
        }
        _ => {
            return Err(std::io::Error::other(format!(
                "{base}: give an http:// or https:// URL"
            )));
        }
    };
    let authority = authority.trim_end_matches('/').to_string();
    // A host that drops packets would hold the connection attempt for
    // the kernel's SYN retries (about two minutes).
    let mut sender = tokio::time::timeout(
        limit.min(JOIN_CONNECT_WAIT),
        super::network::connect(&authority, base, tls),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no connection within {} s",
                limit.min(JOIN_CONNECT_WAIT).as_secs()
            ),
        )
    })??;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(t) = &opts.cluster_token {
        req = req.header(super::CLUSTER_TOKEN_HEADER, t);
    }
    if let Some(t) = &opts.client_token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(full(body.to_vec()))
        .map_err(std::io::Error::other)?;
    let resp = tokio::time::timeout(limit, sender.send_request(req))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
        .map_err(std::io::Error::other)?;
    // This node's own listener answered: the URL leads back to it.
    let mark = resp.headers().get(crate::server::joining::JOINING_HEADER);
    if mark.is_some_and(|m| m.as_bytes() == crate::server::joining::this_process().as_bytes()) {
        return Err(std::io::Error::other(ITSELF));
    }
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, bytes))
}

/// What [`send_json`] fails with when this node's own listener answered.
const ITSELF: &str = "this node's own listener answered";

/// Whether `e` is [`send_json`]'s [`ITSELF`].
fn answered_by_itself(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string() == ITSELF
}

/// The voters of a membership (for status and tests).
pub fn voters(node: &Node) -> BTreeSet<NodeId> {
    node.metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

#[cfg(test)]
mod tests {
    /// An advertised raft address that is the bound one under another name
    /// is not probed (no other process can answer there); another is.
    #[tokio::test]
    async fn the_bound_address_under_another_name_leads_here() {
        let at = |a: &str| Some(a.parse().unwrap());
        assert!(super::leads_here("localhost:7101", at("127.0.0.1:7101")).await);
        assert!(super::leads_here("127.0.0.1:7101", at("0.0.0.0:7101")).await);
        assert!(super::leads_here("127.0.0.1:7101", at("127.0.0.1:7101")).await);
        assert!(!super::leads_here("127.0.0.1:7102", at("127.0.0.1:7101")).await);
        assert!(!super::leads_here("127.0.0.1:7101", None).await);
    }
}
