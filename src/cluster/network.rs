//! Node-to-node traffic on `--raft-listen`: HTTP/1.1, postcard bodies.
//!
//! Every request is `POST /raft/KIND` with `x-kvr-cluster` (the cluster
//! id), `x-kvr-from` and `x-kvr-to` (node ids) and, when the cluster has a
//! token, `authorization: Bearer TOKEN`; a receiver answers 403 to any
//! mismatch. The answer is `Result<T, String>` in postcard. openraft asks
//! for separate clients for appends, heartbeats and snapshots, and each
//! [`Peer`] keeps its own connection, so a big append never delays a
//! heartbeat. A snapshot is streamed (the state machine's snapshot stream)
//! and written to a temporary file on the receiver before it is installed.
//!
//! **TLS.** A node with `--tls-cert` serves its raft listener with that
//! certificate too, and connects to peers over TLS, verifying each by the
//! host of its advertised raft address against `--cacert` plus the
//! system's roots (as any kvr client does). A cluster is all-TLS or
//! all-plain ([`Identity::tls`] is set on every member or on none).
//! A certificate a node refuses is said in its log, once a while per peer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::state_machine::SnapshotData;
use super::types::{Member, NodeId, TypeConfig};

pub type Body = BoxBody<Bytes, io::Error>;
/// A kept connection to a peer's raft listener.
pub type Conn = SendRequest<Body>;

/// Who this node is on the wire.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: NodeId,
    /// The shared secret of node-to-node traffic, if any.
    pub token: Option<String>,
    /// TLS towards peers (set iff this node serves TLS).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The peers' clocks as their raft answers tell them.
    pub clocks: Arc<super::clock::PeerClocks>,
}

pub const H_CLUSTER: &str = "x-kvr-cluster";
pub const H_FROM: &str = "x-kvr-from";
pub const H_TO: &str = "x-kvr-to";
pub const H_SNAPSHOT: &str = "x-kvr-snapshot";
/// A raft answer's header: the answering member's clock (Unix ms), which
/// the asking one compares with its own (`compare_clocks`).
pub const H_TIME: &str = "x-kvr-time-ms";

/// How far two members' clocks may differ before it is logged: SPEC asks
/// them to agree within about a second, since expiry goes by the clock of
/// whichever member leads.
const CLOCKS_APART_MS: u64 = 1000;

/// Makes a [`Peer`] per target and purpose.
pub struct Network {
    pub me: Arc<Identity>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            me: self.me.clone(),
            target,
            addr: node.raft.clone(),
            conn: None,
            appends_timed_out: 0,
        }
    }
}

/// The connection to one peer for one purpose.
pub struct Peer {
    me: Arc<Identity>,
    target: NodeId,
    addr: String,
    conn: Option<SendRequest<Body>>,
    /// Appends to this peer that timed out in a row: each doubles the time
    /// the next is given (see [`Peer::rpc`]).
    appends_timed_out: u32,
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes a peer's `Result<T, String>` answer.
pub fn decode_answer<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    let answer: Result<T, String> =
        postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    answer.map_err(io::Error::other)
}

/// Opens an HTTP/1.1 connection to `addr` (`HOST:PORT`), over TLS
/// verified by HOST when `tls` is given. `what` names the peer in a TLS
/// failure's log line: `raft ADDR`, or the URL of a member's HTTP API.
pub async fn connect(
    addr: &str,
    what: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> io::Result<SendRequest<Body>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => handshake(stream).await,
        Some(config) => {
            let name = crate::tls::server_name(addr)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .inspect_err(|e| log_tls_failure(addr, what, e))?;
            handshake(stream).await
        }
    }
}

/// The HTTP/1.1 handshake; the connection is driven by a task of its own.
async fn handshake<S>(stream: S) -> io::Result<SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// How often the same peer's TLS failure is logged again.
pub const TLS_LOG_EVERY: Duration = Duration::from_secs(30);

/// Says in the log that the TLS handshake with `addr` failed (a peer
/// whose certificate is not trusted, or a peer that speaks plain HTTP),
/// at most once per [`TLS_LOG_EVERY`] per address: Raft retries every
/// heartbeat.
pub fn log_tls_failure(addr: &str, what: &str, e: &io::Error) {
    let Some(failure) = crate::tls::failure(what, e) else {
        return;
    };
    log_rarely(
        addr,
        format_args!(
            "kvr serve: refusing the peer at {addr}: {failure}; every member of a cluster \
             needs a certificate its peers verify (--tls-cert, signed by a CA in --cacert or \
             the system's roots), or none of them TLS"
        ),
    );
}

/// What to do about a raft request refused with `why` (a peer's check,
/// `Node::check_peer`), to follow it in a log line.
pub fn refusal_hint(why: &str) -> &'static str {
    if why.contains("cluster token") {
        "; every member needs the same --cluster-token (or none), as when it joined"
    } else {
        ""
    }
}

/// Logs `line` unless a line about `key` was logged in the last
/// [`TLS_LOG_EVERY`].
pub fn log_rarely(key: &str, line: std::fmt::Arguments<'_>) {
    static LAST: std::sync::Mutex<Vec<(String, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match last.iter_mut().find(|(k, _)| k == key) {
            Some((_, at)) if now.duration_since(*at) < TLS_LOG_EVERY => return,
            Some((_, at)) => *at = now,
            None => last.push((key.to_string(), now)),
        }
    }
    crate::server::log::event(line);
}

/// Where a request goes: a peer's raft address and id, from this node.
#[derive(Clone, Copy)]
pub struct Dest<'a> {
    pub addr: &'a str,
    pub me: &'a Identity,
    pub target: NodeId,
}

/// Sends one request to a peer's raft listener and reads the whole answer.
/// `Err((sent, error))`: whether the request may have reached the peer.
pub async fn call(
    conn: &mut Option<SendRequest<Body>>,
    to: Dest<'_>,
    kind: &str,
    body: Body,
    extra: Option<(&'static str, String)>,
    timeout: Duration,
) -> Result<Bytes, (bool, io::Error)> {
    let Dest { addr, me, target } = to;
    let attempt = async {
        let mut sender = match conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => connect(addr, &format!("raft {addr}"), me.tls.as_ref())
                .await
                .map_err(|e| (false, e))?,
        };
        sender
            .ready()
            .await
            .map_err(|e| (false, io::Error::other(e)))?;
        let mut req = hyper::Request::post(format!("/raft/{kind}"))
            .header(hyper::header::HOST, addr)
            .header(H_CLUSTER, &me.cluster_id)
            .header(H_FROM, me.node_id.to_string())
            .header(H_TO, target.to_string());
        if let Some(t) = &me.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        }
        let req = req.body(body).map_err(|e| (false, io::Error::other(e)))?;
        let asked = crate::types::now_ms();
        let sent = std::time::Instant::now();
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| (true, io::Error::other(e)))?;
        let peer_ms = resp
            .headers()
            .get(H_TIME)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(peer_ms) = peer_ms {
            let answered = crate::types::now_ms();
            let round_trip = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
            me.clocks.record(target, peer_ms, round_trip);
            compare_clocks(to, peer_ms, asked, answered);
        }
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| (true, io::Error::other(e)))?
            .to_bytes();
        if !status.is_success() {
            let said = String::from_utf8_lossy(&bytes);
            if status == hyper::StatusCode::FORBIDDEN {
                // Otherwise silent: a member restarted with another
                // --cluster-token stayed behind for good, nothing said.
                log_rarely(
                    &format!("refused by {addr}"),
                    format_args!(
                        "kvr serve: node {target} at raft {addr} refuses this node's raft \
                         requests: {said}{}",
                        refusal_hint(&said)
                    ),
                );
            }
            return Err((
                true,
                io::Error::other(format!("{addr} refused: {status} {said}")),
            ));
        }
        *conn = Some(sender);
        Ok(bytes)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err((true, io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
    }
}

/// Logs (every 30 s at most) a peer whose clock, `peer_ms` when it
/// answered a request sent at `asked` and answered by `answered` on this
/// member's clock, is more than [`CLOCKS_APART_MS`] from this one's beyond
/// what the round trip leaves unknown. Expiry goes by the leader's clock,
/// so a member an hour ahead expires every key written under another
/// leader as soon as it leads (found by an audit, where nothing said so).
fn compare_clocks(to: Dest<'_>, peer_ms: u64, asked: u64, answered: u64) {
    let Some((ahead, apart_ms)) = clocks_apart(peer_ms, asked, answered) else {
        return;
    };
    let Dest { addr, me, target } = to;
    let secs = apart_ms as f64 / 1000.0;
    let (way, expiry) = match ahead {
        true => ("ahead of", "early"),
        false => ("behind", "late"),
    };
    log_rarely(
        &format!("clock of node {target}"),
        format_args!(
            "kvr serve: node {target} at raft {addr} has a clock {secs:.1} s {way} this node's \
             (node {}): a write's time, which its TTL's expiry and its Idempotency-Key's window \
             go by, is the median of the voters' clocks, so one clock off is outvoted, but with \
             a majority off keys with a TTL expire {expiry}; keep the members' clocks within a \
             second of each other (NTP)",
            me.node_id
        ),
    );
}

/// Whether a peer's clock is ahead, and by how much, when it is more than
/// [`CLOCKS_APART_MS`] from this one's beyond the round trip's doubt.
fn clocks_apart(peer_ms: u64, asked: u64, answered: u64) -> Option<(bool, u64)> {
    // The peer read its clock between `asked` and `answered`.
    let (early, late) = (asked.min(answered), asked.max(answered));
    let apart = if peer_ms > late {
        (true, peer_ms - late)
    } else if peer_ms < early {
        (false, early - peer_ms)
    } else {
        return None;
    };
    (apart.1 > CLOCKS_APART_MS).then_some(apart)
}

/// The rate an append's entries are assumed to cross the network and reach
/// the follower's disk at, at worst (see [`Peer::rpc`]).
const APPEND_BYTES_PER_SEC: f64 = 8.0 * 1024.0 * 1024.0;
/// The most doublings of an append's time after timeouts in a row (×8).
const APPEND_MAX_DOUBLINGS: u32 = 3;

impl Peer {
    /// Sends one RPC within openraft's time for it (`soft_ttl`, from the
    /// heartbeat interval). An append that carries entries is given their
    /// size at [`APPEND_BYTES_PER_SEC`] on top, doubled after each such
    /// append to this peer that timed out (at most
    /// [`APPEND_MAX_DOUBLINGS`] times; the first that succeeds resets it).
    /// A follower behind by tens of MiB gets them in appends of up to 300
    /// entries, and one of 30 MiB that timed out at the heartbeat's 75 ms
    /// was sent again from the same entry for ever: that follower never
    /// caught up. Heartbeats (appends without entries) and votes keep
    /// openraft's time, so a peer that stops answering is given up on, and
    /// a new connection tried, as soon as before.
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        kind: &str,
        req: &Req,
        option: &RPCOption,
        carries_entries: bool,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let timeout = if carries_entries {
            let transfer = Duration::from_secs_f64(body.len() as f64 / APPEND_BYTES_PER_SEC);
            (option.soft_ttl() + transfer)
                .saturating_mul(1 << self.appends_timed_out.min(APPEND_MAX_DOUBLINGS))
        } else {
            option.soft_ttl()
        };
        let answer = call(
            &mut self.conn,
            Dest {
                addr: &self.addr,
                me: &self.me,
                target: self.target,
            },
            kind,
            full(body),
            None,
            timeout,
        )
        .await;
        if carries_entries {
            match &answer {
                Err((_, e)) if e.kind() == io::ErrorKind::TimedOut => self.appends_timed_out += 1,
                _ => self.appends_timed_out = 0,
            }
        }
        let bytes = answer.map_err(|(_, e)| RPCError::Unreachable(Unreachable::new(&e)))?;
        decode_answer(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let carries_entries = !rpc.entries.is_empty();
        self.rpc("append", &rpc, &option, carries_entries).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("vote", &rpc, &option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("pre-vote", &rpc, &option, false).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("transfer-leader", &req, &option, false).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let SnapshotData::Pinned(pinned) = snapshot.snapshot else {
            return Err(StreamingError::Network(NetworkError::new(
                &io::Error::other("only a built snapshot can be sent"),
            )));
        };
        let head = encode(&(vote, snapshot.meta.clone()))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let head = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, head);
        // The snapshot is written by a blocking thread into a bounded
        // channel that is the request body: constant memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
        tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::new(),
            };
            let r = pinned.write_to(&mut out);
            let r = r
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|()| out.flush_buf());
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|item| (item.map(hyper::body::Frame::data), rx))
        });
        let body = BodyExt::boxed(StreamBody::new(stream));
        let mut conn = None;
        let send = call(
            &mut conn,
            Dest {
                addr: &self.addr,
                me: &self.me,
                target: self.target,
            },
            "snapshot",
            body,
            Some((H_SNAPSHOT, head)),
            Duration::from_secs(3600),
        );
        let bytes = tokio::select! {
            r = send => r.map_err(|(_, e)| StreamingError::Unreachable(Unreachable::new(&e)))?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        decode_answer(&bytes).map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}

/// A `Write` into a body channel, in 256 KiB chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer went away"))
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_apart_only_beyond_a_second_and_the_round_trip() {
        // Read within the round trip: no telling.
        assert_eq!(clocks_apart(5_000, 4_000, 6_000), None);
        // A second and less beyond it: within what SPEC allows.
        assert_eq!(clocks_apart(7_000, 4_000, 6_000), None);
        assert_eq!(clocks_apart(7_001, 4_000, 6_000), Some((true, 1_001)));
        assert_eq!(clocks_apart(3_600_000, 100, 120), Some((true, 3_599_880)));
        assert_eq!(
            clocks_apart(100, 3_600_000, 3_600_010),
            Some((false, 3_599_900))
        );
        assert_eq!(clocks_apart(2_999, 4_000, 6_000), Some((false, 1_001)));
    }
}
