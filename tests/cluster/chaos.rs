//! Chaos with a linearizability check: clients put, put conditionally,
//! delete, batch (puts of two keys in one request, a put in each key's
//! history at consecutive revisions) and read (linearizably) a few keys
//! through every node of a
//! three-node cluster while the test injects one fault at a time: kill -9
//! and restart of the leader, of a follower or of every member at once
//! (what a power cut of the whole cluster leaves of the processes),
//! SIGSTOP/SIGCONT pauses of
//! either, and network partitions (the leader isolated from the majority,
//! a follower isolated, one leader-follower link cut, a one-way cut where
//! the leader hears nothing), then heals them. A five-node cluster gets
//! the same, and faults that take two members out at once: the leader
//! and a follower cut off from the other three, two followers killed
//! together.
//! Every operation's call, return and result is recorded, and each key's
//! history must be linearizable (`linearizable.rs`); 503 `unavailable`
//! counts as not applied, `outcome_unknown` and timeouts as maybe applied
//! until resolved: every write carries an `Idempotency-Key`, and a client
//! whose write's outcome is unknown sends it again with the same key
//! (through the next node, as the CLI does) until the cluster answers with
//! the outcome it recorded; the operation then spans from its first call
//! to that answer. Left unknown, such writes stay open to the end of the
//! history, and the checker's search grows with them (a 240 s run did not
//! finish its check in 5 minutes); resolved, they also check that a
//! repeated write is not applied twice.
//! A node cut off from the majority must not decide anything while it is
//! cut off (only 503 or no answer). At the end every node must hold the
//! same data at the same revision, and no node's revision may have gone
//! backwards. `KVR_CHAOS_SECS` (default 15: one cycle of its nine
//! faults) sets the length.
//!
//! Partitions need network namespaces (`netns.rs`), so root: elsewhere the
//! test says so and runs without them, unless `CI=true`, where it fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::linearizable::{Event, Op, Out, linearizable};
use super::netns::Net;
use super::{Node, spawn_at, status_of, voters, wait_for};

const KEYS: u32 = 4;
const CLIENTS: usize = 4;
/// Faster elections than the defaults, so the run sees many of them.
const RAFT_FLAGS: [&str; 4] = ["--heartbeat-ms", "50", "--election-timeout-ms", "200-400"];

/// A response: status, `ETag` revision, `X-Kvr-Revision`, body.
struct Answer {
    status: u16,
    etag: Option<u64>,
    revision: Option<u64>,
    body: Vec<u8>,
}

/// One request with a deadline; `Err(sent)`: whether it may have arrived.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Answer, bool> {
    request_within(addr, method, path, headers, body, Duration::from_secs(2))
}

/// [`request`] whose answer may take up to `wait`.
fn request_within(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    wait: Duration,
) -> Result<Answer, bool> {
    let sock: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_millis(500)).map_err(|_| false)?;
    s.set_read_timeout(Some(wait)).ok();
    s.set_write_timeout(Some(Duration::from_secs(2))).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|_| true)?;
    s.write_all(body).map_err(|_| true)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|_| true)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(true)?;
    let text = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(true)?;
    let mut etag = None;
    let mut revision = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "etag" => etag = v.trim().trim_matches('"').parse().ok(),
                "x-kvr-revision" => revision = v.trim().parse().ok(),
                _ => {}
            }
        }
    }
    Ok(Answer {
        status,
        etag,
        revision,
        body: raw[split + 4..].to_vec(),
    })
}

fn code_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn written_revision(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?["revision"].as_u64()
}

/// How a node answered one request (for the check of cut-off nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    /// 200, 412 or 404 `not_found`: the cluster decided.
    Decided,
    Unavailable,
    OutcomeUnknown,
    Other(u16),
    /// No answer in time, or the connection failed.
    Nothing,
}

fn answered(result: &Result<Answer, bool>) -> Answered {
    match result {
        Err(_) => Answered::Nothing,
        Ok(a) => match (a.status, code_of(&a.body).as_str()) {
            (200 | 412, _) | (404, "not_found") => Answered::Decided,
            (503, "unavailable") => Answered::Unavailable,
            (503, "outcome_unknown") => Answered::OutcomeUnknown,
            (s, _) => Answered::Other(s),
        },
    }
}

/// Shared by clients: the history, and per node the revisions seen.
#[derive(Default)]
struct Record {
    events: BTreeMap<u32, Vec<Event>>,
    /// node index -> (call, return, X-Kvr-Revision).
    seen: BTreeMap<usize, Vec<(u64, u64, u64)>>,
    /// Every request: (node index, call, return, answer).
    answers: Vec<(usize, u64, u64, Answered)>,
    ops: usize,
    /// Stale reads answered 200 or 404 (their revisions are in `seen`).
    stale_reads: usize,
    /// Writes whose outcome was unknown, then resolved by sending them
    /// again with their idempotency key.
    resolved: usize,
}

impl Record {
    /// Notes one answer of `node` to a request that was not a stale read.
    fn answer(&mut self, node: usize, call: u64, ret: u64, result: &Result<Answer, bool>) {
        self.answers.push((node, call, ret, answered(result)));
        // Every answer carries the node's revision (refusals and 503s
        // too), and none may be below one it gave before.
        if let Ok(Answer {
            revision: Some(rev),
            ..
        }) = result
        {
            self.seen.entry(node).or_default().push((call, ret, *rev));
        }
    }
}

/// A write as sent, to send again with the same idempotency key.
struct Sent<'a> {
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
    body: &'a [u8],
}

impl Sent<'_> {
    fn send(&self, addr: &str) -> Result<Answer, bool> {
        request(addr, self.method, self.path, &self.headers, self.body)
    }
}

/// What a write's answer says of its outcome (`None`: never applied;
/// `Some(Unknown)`: maybe).
fn write_outcome(result: &Result<Answer, bool>) -> Option<Out> {
    match result {
        Err(false) => None,
        Err(true) => Some(Out::Unknown),
        Ok(a) => match (a.status, code_of(&a.body).as_str()) {
            (200, _) => written_revision(&a.body).map(Out::Written),
            (412, _) => Some(Out::Refused),
            (404, "not_found") => Some(Out::Absent),
            (503, "outcome_unknown") => Some(Out::Unknown),
            (422, code) => panic!("a write sent again with its idempotency key got 422 {code}"),
            // unavailable, overloaded, removed: never applied.
            _ => None,
        },
    }
}

/// Sends `write`, whose outcome is unknown, again with the same
/// idempotency key through one node after another until one answers with
/// its outcome (what the cluster recorded when it applied the write, or
/// the outcome of applying it now), or `until`. Returns that answer and
/// when it came.
fn resolve(
    write: &Sent<'_>,
    addrs: &[String],
    first: usize,
    now: &impl Fn() -> u64,
    until: Instant,
    record: &Mutex<Record>,
) -> Option<(Answer, u64)> {
    let mut node = first;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        node = (node + 1) % addrs.len();
        let call = now();
        let result = write.send(&addrs[node]);
        let ret = now();
        record.lock().unwrap().answer(node, call, ret, &result);
        if let Ok(a) = result
            && matches!(a.status, 200 | 404 | 412)
        {
            return Some((a, ret));
        }
    }
    None
}

/// One client's loop until `stop`; writes whose outcome is unknown are
/// resolved (see [`resolve`]) until `resolve_until`.
fn client(
    id: usize,
    addrs: Arc<Vec<String>>,
    start: Instant,
    (stop, resolve_until): (Arc<AtomicBool>, Instant),
    record: Arc<Mutex<Record>>,
) {
    let now = || start.elapsed().as_nanos() as u64;
    let mut n: u32 = 0;
    // The last revision this client saw per key (for conditional puts).
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = (n.wrapping_mul(7) + id as u32) % KEYS;
        let node = (n as usize + id) % addrs.len();
        let path = format!("/v1/kv/key{key}");
        // A value unique across clients and operations, and so the
        // write's idempotency key.
        let value = (id as u32) << 24 | n;
        let idempotency = ("idempotency-key", format!("chaos-{value}"));
        if n % 6 == 5 {
            batch(
                &addrs,
                node,
                key,
                value,
                (&now, resolve_until),
                &record,
                &mut last,
            );
            continue;
        }
        let op = match n % 5 {
            0 | 1 => Op::Put(value),
            2 => Op::Cas(value, *last.get(&key).unwrap_or(&0)),
            3 => Op::Delete,
            _ => Op::Get,
        };
        let body = match op {
            Op::Put(v) | Op::Cas(v, _) => v.to_string().into_bytes(),
            _ => Vec::new(),
        };
        let write = match op {
            Op::Put(_) => Some(("PUT", None)),
            Op::Cas(_, 0) => Some(("PUT", Some(("if-none-match", "*".to_string())))),
            Op::Cas(_, e) => Some(("PUT", Some(("if-match", format!("\"{e}\""))))),
            Op::Delete => Some(("DELETE", None)),
            Op::Get => None,
        }
        .map(|(method, cond)| Sent {
            method,
            path: &path,
            headers: cond.into_iter().chain([idempotency.clone()]).collect(),
            body: &body,
        });
        let stale = op == Op::Get && n % 10 == 4;
        let stale_path = format!("{path}?consistency=stale");
        let call = now();
        let result = match &write {
            Some(w) => w.send(&addrs[node]),
            // Every other read is stale: not linearizable, so not in the
            // history, but its revision counts toward the node's.
            None if stale => request(&addrs[node], "GET", &stale_path, &[], b""),
            None => request(&addrs[node], "GET", &path, &[], b""),
        };
        let mut ret = now();
        let mut out = match (&write, &result) {
            _ if stale => None,
            (Some(_), _) => write_outcome(&result),
            (None, Ok(a)) => match a.status {
                200 => {
                    let v = String::from_utf8_lossy(&a.body).parse().ok();
                    v.zip(a.etag).map(|(v, r)| Out::Read(Some((v, r))))
                }
                404 if code_of(&a.body) == "not_found" => Some(Out::Read(None)),
                _ => None,
            },
            // A read that failed is left out.
            (None, Err(_)) => None,
        };
        {
            let mut rec = record.lock().unwrap();
            // A stale read is answered by a cut-off node too (it is meant
            // to be): not one of the answers a cut-off node must not give.
            if !stale {
                rec.answer(node, call, ret, &result);
            } else if let Ok(a) = &result {
                if matches!(a.status, 200 | 404) {
                    rec.stale_reads += 1;
                }
                if let Some(rev) = a.revision {
                    rec.seen.entry(node).or_default().push((call, ret, rev));
                }
            }
        }
        if out == Some(Out::Unknown)
            && let Some(w) = &write
            && let Some((a, at)) = resolve(w, &addrs, node, &now, resolve_until, &record)
        {
            (out, ret) = (write_outcome(&Ok(a)), at);
            record.lock().unwrap().resolved += 1;
        }
        if let Some(Out::Written(r) | Out::Read(Some((_, r)))) = out {
            last.insert(key, r);
        }
        if let Some(out) = out {
            let ret = if out == Out::Unknown { u64::MAX } else { ret };
            let mut rec = record.lock().unwrap();
            rec.events
                .entry(key)
                .or_default()
                .push(Event { call, ret, op, out });
            rec.ops += 1;
        }
    }
}

/// A batch through node `node`: puts of `key` and the next key in one
/// request, all or nothing, at consecutive revisions; in each key's
/// history it is a put (so each key's history stays checkable on its
/// own).
fn batch(
    addrs: &[String],
    node: usize,
    key: u32,
    value: u32,
    (now, resolve_until): (&impl Fn() -> u64, Instant),
    record: &Mutex<Record>,
    last: &mut BTreeMap<u32, u64>,
) {
    let key2 = (key + 1) % KEYS;
    let body = format!(
        "{{\"key\":\"key{key}\",\"value\":\"{value}\"}}\n{{\"key\":\"key{key2}\",\"value\":\"{value}\"}}\n"
    );
    let write = Sent {
        method: "POST",
        path: "/v1/batch",
        headers: vec![("idempotency-key", format!("chaos-{value}"))],
        body: body.as_bytes(),
    };
    let outcome = |result: &Result<Answer, bool>| match result {
        Err(false) => None,
        Err(true) => Some([Out::Unknown, Out::Unknown]),
        Ok(a) => match (a.status, code_of(&a.body).as_str()) {
            (200, _) => written_revision(&a.body).map(|r| [Out::Written(r - 1), Out::Written(r)]),
            (503, "outcome_unknown") => Some([Out::Unknown, Out::Unknown]),
            (422, code) => panic!("a batch sent again with its idempotency key got 422 {code}"),
            // unavailable, overloaded, removed: never applied.
            _ => None,
        },
    };
    let call = now();
    let result = write.send(&addrs[node]);
    let mut ret = now();
    let mut outs = outcome(&result);
    record.lock().unwrap().answer(node, call, ret, &result);
    if outs.is_some_and(|o| o[0] == Out::Unknown)
        && let Some((a, at)) = resolve(&write, addrs, node, now, resolve_until, record)
    {
        (outs, ret) = (outcome(&Ok(a)), at);
        record.lock().unwrap().resolved += 1;
    }
    let mut rec = record.lock().unwrap();
    for (k, out) in [key, key2].into_iter().zip(outs.into_iter().flatten()) {
        if let Out::Written(r) = out {
            last.insert(k, r);
        }
        let ret = if out == Out::Unknown { u64::MAX } else { ret };
        rec.events.entry(k).or_default().push(Event {
            call,
            ret,
            op: Op::Put(value),
            out,
        });
        rec.ops += 1;
    }
}

fn secs() -> u64 {
    std::env::var("KVR_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
}

fn addr_of(node: &Node) -> String {
    node.url.trim_start_matches("http://").to_string()
}

fn signal(node: &Node, sig: &str) {
    let pid = node.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args([sig, &pid])
        .status();
}

/// The cluster's shared secret when the nodes are not on loopback.
const CLUSTER_TOKEN: &str = "chaos-cluster-token";

/// The three members, and the network that can partition them (where
/// root allows).
struct Cluster {
    dir: PathBuf,
    /// Declared before `net`, so dropped first: the nodes leave their
    /// namespaces before these go.
    nodes: Vec<Node>,
    net: Option<Net>,
    /// Each member's node id.
    ids: Vec<u64>,
    /// The heartbeat and election timeouts every member gets.
    raft_flags: &'static [&'static str],
}

/// Timeouts that a loaded machine's pauses do not trip, for tests that
/// need the leader's term to stay or a live follower to count as
/// answering: with [`RAFT_FLAGS`], a leader not scheduled for 200 ms lets
/// the followers elect another (the term rises for a reason not under
/// test), and a follower that missed 200 ms of heartbeats does not count
/// as answering, so a membership change is refused.
const STEADY_FLAGS: [&str; 4] = [
    "--heartbeat-ms",
    "100",
    "--election-timeout-ms",
    "2000-3000",
];

impl Cluster {
    fn start(dir: &Path, net: Option<Net>) -> Cluster {
        Cluster::start_n(dir, net, 3)
    }

    /// `n` members (3 or 5).
    fn start_n(dir: &Path, net: Option<Net>, n: usize) -> Cluster {
        Cluster::start_with(dir, net, n, &RAFT_FLAGS)
    }

    /// `n` members, each with `raft_flags` (heartbeat and election
    /// timeouts).
    fn start_with(
        dir: &Path,
        net: Option<Net>,
        n: usize,
        raft_flags: &'static [&'static str],
    ) -> Cluster {
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            nodes: Vec::new(),
            net,
            ids: Vec::new(),
            raft_flags,
        };
        for i in 0..n {
            let join = c.nodes.first().map(|n| n.url.clone());
            let args = match &join {
                None => vec!["--cluster-init"],
                Some(url) => vec!["--join", url.as_str()],
            };
            let node = c.spawn(i, &args, None);
            c.nodes.push(node);
        }
        wait_for(60, &format!("{n} voters"), || voters(&c.nodes[0]) == n);
        c.ids = c
            .nodes
            .iter()
            .map(|n| status_of(n)["node_id"].as_u64().unwrap())
            .collect();
        c
    }

    /// Member `i`, on its former addresses `at` when it restarts.
    fn spawn(&self, i: usize, extra: &[&str], at: Option<(String, String)>) -> Node {
        let name = format!("n{}", i + 1);
        let mut args = extra.to_vec();
        args.extend_from_slice(self.raft_flags);
        match &self.net {
            None => {
                let any = "127.0.0.1:0".to_string();
                let (listen, raft) = at.unwrap_or((any.clone(), any));
                spawn_at(&self.dir, &name, (&listen, &raft), &args, &[])
            }
            Some(net) => {
                // Off loopback the raft traffic needs a cluster token, and
                // the API an explicit opt-out of client tokens.
                args.extend_from_slice(&[
                    "--cluster-token",
                    CLUSTER_TOKEN,
                    "--allow-unauthenticated",
                ]);
                let any = format!("{}:0", net.host(i));
                let (listen, raft) = at.unwrap_or((any.clone(), any));
                net.spawn(&self.dir, &name, i, (&listen, &raft), &args)
            }
        }
    }

    /// kill -9, then start it again with no cluster flag.
    fn restart(&mut self, i: usize) {
        self.restart_all(&[i]);
    }

    /// kill -9 of each of `members` (all down at once), then each started
    /// again with no cluster flag.
    fn restart_all(&mut self, members: &[usize]) {
        let mut at = Vec::new();
        for &i in members {
            at.push((addr_of(&self.nodes[i]), self.nodes[i].raft.clone()));
            let _ = self.nodes[i].child.kill();
            let _ = self.nodes[i].child.wait();
        }
        for (&i, at) in members.iter().zip(at) {
            self.nodes[i] = self.spawn(i, &[], Some(at));
        }
    }

    /// Each member's view: (its state, its term, the leader it knows).
    fn views(&self) -> Vec<Option<(String, u64, Option<u64>)>> {
        self.nodes
            .iter()
            .map(|n| {
                let a = request(&addr_of(n), "GET", "/v1/cluster", &[], b"").ok()?;
                let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
                Some((
                    v["state"].as_str()?.to_string(),
                    v["term"].as_u64()?,
                    v["leader"]["id"].as_u64(),
                ))
            })
            .collect()
    }

    /// The leader once every member follows it (waits a while, without
    /// failing: liveness is not what this test checks), else whichever
    /// member leads in the highest term.
    fn settled_leader(&self) -> Option<usize> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let views = self.views();
            let leader_of = |v: &Option<(String, u64, Option<u64>)>| v.as_ref().and_then(|v| v.2);
            if let Some(id) = leader_of(&views[0])
                && views.iter().all(|v| leader_of(v) == Some(id))
                && let Some(i) = self.ids.iter().position(|x| *x == id)
                && views[i].as_ref().is_some_and(|v| v.0 == "leader")
            {
                return Some(i);
            }
            if Instant::now() > until {
                return views
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.as_ref().filter(|v| v.0 == "leader").map(|v| (v.1, i)))
                    .max()
                    .map(|(_, i)| i);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The nemesis's faults, in the order it injects them (one cycle fits in
/// the short default run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    IsolateLeader,
    KillFollower,
    LeaderHearsNothing,
    PauseLeader,
    CutLeaderLink,
    KillLeader,
    /// Every member killed at once (as a power cut of the whole cluster
    /// leaves the processes) and restarted: nothing acknowledged may be
    /// lost.
    KillAll,
    IsolateFollower,
    PauseFollower,
    /// Five members only: the leader and a follower cut off from the
    /// other three, a majority that elects its own leader.
    IsolateLeaderAndFollower,
    /// Five members only: two followers down at once, then restarted.
    KillTwoFollowers,
}

impl Fault {
    const ALL: [Fault; 9] = [
        Fault::IsolateLeader,
        Fault::KillFollower,
        Fault::LeaderHearsNothing,
        Fault::PauseLeader,
        Fault::CutLeaderLink,
        Fault::KillLeader,
        Fault::KillAll,
        Fault::IsolateFollower,
        Fault::PauseFollower,
    ];

    /// The faults for a cluster of `members`, in order: those that take
    /// two members out first where five can spare them.
    fn schedule(members: usize) -> Vec<Fault> {
        let pairs = [Fault::IsolateLeaderAndFollower, Fault::KillTwoFollowers];
        let pairs = if members >= 5 { &pairs[..] } else { &[] };
        pairs.iter().chain(&Fault::ALL).copied().collect()
    }

    fn partition(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader
                | Fault::IsolateFollower
                | Fault::CutLeaderLink
                | Fault::LeaderHearsNothing
                | Fault::IsolateLeaderAndFollower
        )
    }

    fn name(self) -> &'static str {
        match self {
            Fault::IsolateLeader => "leader isolated from the majority",
            Fault::KillFollower => "kill -9 of a follower and restart",
            Fault::PauseLeader => "SIGSTOP of the leader 0.9 s",
            Fault::CutLeaderLink => "one leader-follower link cut 1.5 s",
            Fault::KillLeader => "kill -9 of the leader and restart",
            Fault::KillAll => "kill -9 of every member at once and restart",
            Fault::IsolateFollower => "follower isolated 1.2 s",
            Fault::PauseFollower => "SIGSTOP of a follower 0.9 s",
            Fault::LeaderHearsNothing => "one-way cut: the leader hears nothing 1.5 s",
            Fault::IsolateLeaderAndFollower => {
                "the leader and a follower isolated from the other three"
            }
            Fault::KillTwoFollowers => "kill -9 of two followers at once and restart",
        }
    }
}

/// Three network namespaces for partitions (see [`namespaces`]).
fn three_namespaces(what: &str, more: &str) -> Option<Net> {
    namespaces(3, what, more)
}

/// `n` network namespaces for partitions, or `None` where they cannot be
/// made (not root, no `ip`): then `what` is said SKIPPED (with `more`),
/// except on CI, which must run them.
fn namespaces(n: usize, what: &str, more: &str) -> Option<Net> {
    match Net::new(n) {
        Ok(net) => Some(net),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "network partitions need network namespaces (root and iproute2): {why}"
            );
            let more = if more.is_empty() {
                String::new()
            } else {
                format!("; {more}")
            };
            eprintln!("{what}: SKIPPED: {why}{more}");
            None
        }
    }
}

#[test]
fn chaos_history_is_linearizable_and_nodes_agree() {
    chaos(3, secs());
}

/// Five members: the same, with faults that take two of them out at once
/// (a minority that holds the leader, two followers killed together).
/// `KVR_CHAOS5_SECS` (default 20: one cycle of its eleven faults) sets its
/// length.
#[test]
fn chaos_of_five_members_is_linearizable_and_nodes_agree() {
    let secs = std::env::var("KVR_CHAOS5_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    chaos(5, secs);
}

/// The chaos run against `members` members for `secs` seconds.
fn chaos(members: usize, secs: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = namespaces(
        members,
        "chaos: network partitions",
        "they need root (network namespaces) and iproute2's `ip` (CI runs them); kills and \
         pauses only",
    );
    let mut cluster = Cluster::start_n(dir, net, members);
    let addrs: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(addr_of).collect());
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (a, s, r) = (addrs.clone(), stop.clone(), record.clone());
            // Past the run and the final settling, with time to spare.
            let resolve_until = start + Duration::from_secs(secs + 40);
            std::thread::spawn(move || client(id, a, start, (s, resolve_until), r))
        })
        .collect();

    // The nemesis: one fault at a time, each from a cluster that has
    // settled on a leader, so a majority is mostly up.
    let schedule: Vec<Fault> = Fault::schedule(members)
        .into_iter()
        .filter(|f| cluster.net.is_some() || !f.partition())
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut faults = BTreeMap::<&str, usize>::new();
    // (isolated node, from, to): when it was cut off from the majority.
    let mut isolated: Vec<(usize, u64, u64)> = Vec::new();
    // Isolated leaders that still said they led after the majority moved on.
    let mut old_leader_claims = 0;
    let mut round = 0usize;
    while Instant::now() < until {
        let leader = cluster.settled_leader().unwrap_or(round % members);
        std::thread::sleep(Duration::from_millis(300));
        let fault = schedule[round % schedule.len()];
        // Go round the followers from one cycle to the next; `second` is
        // another one, for the faults that take two members out.
        let others: Vec<usize> = (1..members).map(|d| (leader + d) % members).collect();
        let cycle = round / schedule.len();
        let follower = others[cycle % others.len()];
        let second = others[(cycle + 1) % others.len()];
        round += 1;
        match fault {
            Fault::KillLeader => cluster.restart(leader),
            Fault::KillFollower => cluster.restart(follower),
            Fault::KillTwoFollowers => cluster.restart_all(&[follower, second]),
            Fault::KillAll => cluster.restart_all(&(0..members).collect::<Vec<_>>()),
            Fault::PauseLeader | Fault::PauseFollower => {
                let victim = &cluster.nodes[if fault == Fault::PauseLeader {
                    leader
                } else {
                    follower
                }];
                signal(victim, "-STOP");
                std::thread::sleep(Duration::from_millis(900));
                signal(victim, "-CONT");
            }
            Fault::IsolateLeader
            | Fault::IsolateFollower
            | Fault::LeaderHearsNothing
            | Fault::IsolateLeaderAndFollower => {
                let cut: Vec<usize> = match fault {
                    Fault::IsolateFollower => vec![follower],
                    Fault::IsolateLeaderAndFollower => vec![leader, follower],
                    _ => vec![leader],
                };
                let rest: Vec<usize> = (0..members).filter(|i| !cut.contains(i)).collect();
                let net = cluster.net.as_mut().unwrap();
                if fault == Fault::LeaderHearsNothing {
                    // What it sends still arrives (as long as its
                    // connections last): it is cut off all the same.
                    net.drop_packets(&rest, &cut);
                } else {
                    net.cut(&cut, &rest);
                }
                let from = now();
                if fault == Fault::LeaderHearsNothing {
                    std::thread::sleep(Duration::from_millis(1500));
                } else if matches!(
                    fault,
                    Fault::IsolateLeader | Fault::IsolateLeaderAndFollower
                ) {
                    // The majority elects another leader (which proves the
                    // cut), and the old one stays cut off a while longer.
                    let old = cluster.ids[leader];
                    wait_for(10, "the majority to elect a new leader", || {
                        let views = cluster.views();
                        let leader_of = |i: usize| views[i].as_ref().and_then(|v| v.2);
                        leader_of(rest[0]).is_some_and(|l| l != old)
                            && rest.iter().all(|&i| leader_of(i) == leader_of(rest[0]))
                    });
                    std::thread::sleep(Duration::from_millis(1000));
                    if cluster.views()[leader]
                        .as_ref()
                        .is_some_and(|v| v.0 == "leader")
                    {
                        old_leader_claims += 1;
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(1200));
                }
                // One linearizable read through each cut-off member for
                // sure (the clients' may all miss the window), checked
                // with theirs below.
                for &node in &cut {
                    let call = now();
                    let probe = request(
                        &addr_of(&cluster.nodes[node]),
                        "GET",
                        "/v1/kv/key0",
                        &[],
                        b"",
                    );
                    let ret = now();
                    record
                        .lock()
                        .unwrap()
                        .answers
                        .push((node, call, ret, answered(&probe)));
                }
                let to = now();
                cluster.net.as_mut().unwrap().heal();
                isolated.extend(cut.iter().map(|&node| (node, from, to)));
            }
            Fault::CutLeaderLink => {
                let net = cluster.net.as_mut().unwrap();
                net.cut(&[leader], &[follower]);
                std::thread::sleep(Duration::from_millis(1500));
                net.heal();
            }
        }
        *faults.entry(fault.name()).or_default() += 1;
    }
    // Healed: let the clients run on a healthy cluster a little, stop.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let nodes = &cluster.nodes;

    // Every node converges on the same data at the same revision.
    let dump = |node: &Node| {
        let out = super::kvr(
            dir,
            &["--server", &node.url, "range", "--consistency", "stale"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // (Through `request`: a 503 or a timeout here means "not yet".)
    let revision_at = |node: &Node, stale: bool| {
        let path = if stale {
            "/v1/stats?consistency=stale"
        } else {
            "/v1/stats"
        };
        let a = request(&addr_of(node), "GET", path, &[], b"").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
        (a.status == 200).then(|| v["revision"].as_u64()).flatten()
    };
    wait_for(20, "the nodes to converge", || {
        let revs: Vec<Option<u64>> = nodes.iter().map(|n| revision_at(n, true)).collect();
        revs[0].is_some()
            && revs.iter().all(|r| *r == revs[0])
            && revision_at(&nodes[0], false) == revs[0]
    });
    let first = dump(&nodes[0]);
    for n in &nodes[1..] {
        assert_eq!(dump(n), first, "{} differs from n1", n.name);
    }

    // Each key's history, with a final linearizable read through each node.
    let rec = record.lock().unwrap();
    let mut events = rec.events.clone();
    // (A 503 here is retried, and reported: the cluster is healthy by now.)
    let mut final_retries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for key in 0..KEYS {
        for node in nodes {
            let (call, a) = loop {
                let call = now();
                let what =
                    match request(&addr_of(node), "GET", &format!("/v1/kv/key{key}"), &[], b"") {
                        Ok(a) if a.status != 503 => break (call, a),
                        Ok(a) => format!("503 {}", code_of(&a.body)),
                        Err(_) => "no answer".to_string(),
                    };
                assert!(
                    Instant::now() < deadline,
                    "final read of key{key} through {}: {what}",
                    node.name
                );
                final_retries.push(format!("{} {:.1} s: {what}", node.name, call as f64 / 1e9));
                std::thread::sleep(Duration::from_millis(100));
            };
            let out = match a.status {
                200 => Out::Read(Some((
                    String::from_utf8_lossy(&a.body).parse().unwrap(),
                    a.etag.unwrap(),
                ))),
                404 => Out::Read(None),
                s => panic!("final read: {s}"),
            };
            events.entry(key).or_default().push(Event {
                call,
                ret: now(),
                op: Op::Get,
                out,
            });
        }
    }
    let checking = Instant::now();
    let mut violations = Vec::new();
    for (key, h) in &events {
        if !linearizable(h) {
            // The whole history, for a post-mortem.
            let path =
                std::env::temp_dir().join(format!("kvr-chaos-{}-key{key}.txt", std::process::id()));
            let mut h = h.clone();
            h.sort_by_key(|e| e.call);
            let text: String = h.iter().map(|e| format!("{e:?}\n")).collect();
            std::fs::write(&path, text).unwrap();
            eprintln!("key{key}: not linearizable; history in {}", path.display());
            violations.push(*key);
        }
    }
    let checked_in = checking.elapsed().as_secs_f64();
    // Revisions never go backwards on a node: a request that started after
    // another ended sees at least its revision.
    let mut backwards = 0;
    for seen in rec.seen.values() {
        for a in seen {
            for b in seen {
                if a.1 < b.0 && b.2 < a.2 {
                    backwards += 1;
                }
            }
        }
    }
    // A node cut off from the majority decides nothing: what was asked of
    // it after the cut and answered before the heal is 503 or no answer.
    // (Tallied by answer; "after the heal": asked while cut off, answered
    // once healed, which may be anything.)
    let mut cut_off = BTreeMap::<String, usize>::new();
    let mut wrong_cut_off = Vec::new();
    for &(node, from, to) in &isolated {
        for a in &rec.answers {
            if a.0 != node || a.1 < from || a.1 > to {
                continue;
            }
            let kind = if a.2 > to {
                "after the heal".to_string()
            } else {
                format!("{:?}", a.3)
            };
            *cut_off.entry(kind).or_default() += 1;
            if a.2 <= to
                && !matches!(
                    a.3,
                    Answered::Unavailable | Answered::OutcomeUnknown | Answered::Nothing
                )
            {
                wrong_cut_off.push(*a);
            }
        }
    }
    let mut all_answers = BTreeMap::<String, usize>::new();
    for a in &rec.answers {
        *all_answers.entry(format!("{:?}", a.3)).or_default() += 1;
    }
    let unknown = events
        .values()
        .flatten()
        .filter(|e| e.out == Out::Unknown)
        .count();
    let acked = events
        .values()
        .flatten()
        .filter(|e| matches!(e.out, Out::Written(_)))
        .count();
    eprintln!(
        "chaos: {members} members, {} s, {} operations checked ({acked} acknowledged writes, {} whose outcome was \
         unknown then resolved, {unknown} left unknown; answers {all_answers:?}), faults {faults:?}, answers of cut-off nodes {cut_off:?} (isolated leaders \
         still claiming to lead 1 s after the majority elected another: \
         {old_leader_claims}), linearizability violations {} (checked in {checked_in:.1} s), \
         revisions going backwards on a node {backwards} (of {} answers, {} of them stale reads), \
         final reads retried {final_retries:?}",
        secs,
        rec.ops,
        rec.resolved,
        violations.len(),
        rec.seen.values().map(Vec::len).sum::<usize>(),
        rec.stale_reads,
    );
    assert!(
        violations.is_empty(),
        "keys with a non-linearizable history: {violations:?}"
    );
    assert_eq!(backwards, 0);
    assert!(
        wrong_cut_off.is_empty(),
        "a node cut off from the majority answered other than 503 (node, call, return, \
         answer): {wrong_cut_off:?}"
    );
    assert!(acked > 20, "too few writes went through: {acked}");
}

/// SPEC: "Pre-vote is on, so a node returning from a partition does not
/// depose a healthy leader." A follower cut off for several election
/// timeouts asks for pre-votes, gets none, and keeps its term; back, it
/// follows the same leader in the same term (audit finding: without
/// pre-vote it came back at term 7 and forced an election).
#[test]
fn a_follower_back_from_a_partition_does_not_depose_the_leader() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(net) = three_namespaces("pre-vote", "") else {
        return;
    };
    let mut cluster = Cluster::start_with(tmp.path(), Some(net), 3, &STEADY_FLAGS);
    let leader = cluster.settled_leader().expect("a leader");
    let term = cluster.views()[leader].as_ref().unwrap().1;
    let follower = (leader + 1) % 3;
    let rest: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    let net = cluster.net.as_mut().unwrap();
    net.cut(&[follower], &rest);
    // At least two election timeouts of the cut-off node (STEADY_FLAGS).
    std::thread::sleep(Duration::from_secs(7));
    let cut_off = cluster.views()[follower].clone().unwrap();
    assert_eq!(cut_off.1, term, "the cut-off node's term rose: {cut_off:?}");
    cluster.net.as_mut().unwrap().heal();
    wait_for(15, "the node to follow again", || {
        cluster.views()[follower]
            .as_ref()
            .is_some_and(|v| v.2 == Some(cluster.ids[leader]))
    });
    std::thread::sleep(Duration::from_secs(2));
    for (i, v) in cluster.views().into_iter().enumerate() {
        let v = v.unwrap();
        assert_eq!(v.1, term, "node {i} is at another term: {v:?}");
        assert_eq!(v.2, Some(cluster.ids[leader]), "node {i}: {v:?}");
    }
}

/// SPEC: a removed node exits 3. One removed while a partition cut it off
/// gets neither the entry that removes it nor the leader's word (that
/// call fails during the cut); back, it hears no leader, asks its peers,
/// learns it and exits 3, instead of waiting for a leader for ever.
#[test]
fn a_follower_removed_while_cut_off_exits_3_once_back() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(net) = three_namespaces("removed while cut off", "") else {
        return;
    };
    let mut cluster = Cluster::start_with(tmp.path(), Some(net), 3, &STEADY_FLAGS);
    let leader = cluster.settled_leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let rest: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    cluster.net.as_mut().unwrap().cut(&[follower], &rest);
    // The leader sees it silent (past the minimum election timeout of
    // STEADY_FLAGS).
    std::thread::sleep(Duration::from_secs(3));
    let id = cluster.ids[follower];
    let answer = request(
        &addr_of(&cluster.nodes[leader]),
        "POST",
        &format!("/v1/cluster/remove?id={id}"),
        &[],
        b"",
    )
    .unwrap_or_else(|_| panic!("the leader did not answer the removal"));
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // Still cut off, it is still running: nothing told it.
    std::thread::sleep(Duration::from_secs(1));
    assert!(cluster.nodes[follower].child.try_wait().unwrap().is_none());
    cluster.net.as_mut().unwrap().heal();
    let mut exited = None;
    wait_for(20, "the removed node to exit", || {
        exited = cluster.nodes[follower].child.try_wait().unwrap();
        exited.is_some()
    });
    assert_eq!(exited.and_then(|s| s.code()), Some(3));
    let said = super::stderr_of(&cluster.dir, &cluster.nodes[follower].name);
    assert!(
        said.contains(&format!("node {id} was removed from cluster")),
        "{said}"
    );
    assert_eq!(voters(&cluster.nodes[leader]), 2);
}

/// A write through `follower` while `leader` cannot reach its raft port
/// (`port`), so the follower never applies it: the revision it answered.
/// The follower stops forwarding once its leader has been silent for an
/// election timeout (RAFT_FLAGS: 200-400 ms), so the write goes right
/// after the cut, and again after a heal if that was too late.
fn write_through_cut_follower(
    cluster: &mut Cluster,
    (leader, follower, port): (usize, usize, u16),
    key: &str,
) -> u64 {
    for _ in 0..10 {
        cluster
            .net
            .as_mut()
            .unwrap()
            .drop_port(leader, follower, port);
        let path = format!("/v1/kv/{key}");
        let put = request(&addr_of(&cluster.nodes[follower]), "PUT", &path, &[], b"v");
        if let Ok(a) = put
            && a.status == 200
        {
            return written_revision(&a.body).unwrap();
        }
        cluster.net.as_mut().unwrap().heal();
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no write through the follower was acknowledged");
}

/// SPEC: a node's `X-Kvr-Revision` never goes backwards across its
/// restarts. A follower answers a forwarded write with the revision the
/// leader gave it, before it has applied the entry. Here the leader
/// cannot send it anything (its raft port is cut one way), so it never
/// applies it; killed with `kill -9` and started again, it still answers
/// a refusal with that revision (it answered with its older applied one
/// before `DB.raft/answered` was kept), and catches up once the cut heals.
/// A stale read through it waits until it has applied the write it
/// answered (it answered at once, without the write, before).
#[test]
fn a_follower_answers_no_revision_below_a_write_it_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(net) = three_namespaces("answered revision across kill -9", "") else {
        return;
    };
    let mut cluster = Cluster::start(tmp.path(), Some(net));
    let leader = cluster.settled_leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let raft_port: u16 = cluster.nodes[follower]
        .raft
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let cut = (leader, follower, raft_port);
    let applied_at = |cluster: &Cluster| {
        let a = request(
            &addr_of(&cluster.nodes[follower]),
            "GET",
            "/v1/cluster",
            &[],
            b"",
        )
        .unwrap_or_else(|_| panic!("the follower did not answer"));
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        v["revision"].as_u64().unwrap()
    };
    let refusal = |cluster: &Cluster| {
        let a = request(
            &addr_of(&cluster.nodes[follower]),
            "GET",
            "/v1/nope",
            &[],
            b"",
        )
        .unwrap_or_else(|_| panic!("the follower did not answer"));
        assert_eq!(a.status, 404, "{}", String::from_utf8_lossy(&a.body));
        a.revision.expect("no X-Kvr-Revision")
    };

    let revision = write_through_cut_follower(&mut cluster, cut, "before-kill");
    assert!(
        applied_at(&cluster) < revision,
        "the follower applied the write: the cut did not hold"
    );
    assert!(refusal(&cluster) >= revision);
    cluster.restart(follower);
    assert!(
        applied_at(&cluster) < revision,
        "the restarted follower applied the write: the cut did not hold"
    );
    let after = refusal(&cluster);
    assert!(
        after >= revision,
        "answered {after} after a restart, {revision} before it"
    );
    cluster.net.as_mut().unwrap().heal();
    wait_for(20, "the follower to apply the write", || {
        applied_at(&cluster) >= revision
    });
    assert!(refusal(&cluster) >= revision);

    // A stale read right after a write it answered, the cut healed half
    // a second later: it waits for the write (up to the forward bound,
    // 6.3 s with RAFT_FLAGS; a loaded machine may take more than the 2 s
    // of the other requests to catch up).
    let revision = write_through_cut_follower(&mut cluster, cut, "stale");
    let addr = addr_of(&cluster.nodes[follower]);
    let read = std::thread::spawn(move || {
        let wait = Duration::from_secs(10);
        request_within(
            &addr,
            "GET",
            "/v1/kv/stale?consistency=stale",
            &[],
            b"",
            wait,
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    cluster.net.as_mut().unwrap().heal();
    let a = read
        .join()
        .unwrap()
        .unwrap_or_else(|_| panic!("the stale read was not answered"));
    let body = String::from_utf8_lossy(&a.body);
    assert_eq!((a.status, &*body), (200, "v"));
    assert!(a.revision.unwrap() >= revision);
}
