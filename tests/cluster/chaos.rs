//! Chaos with a linearizability check: clients put, put conditionally,
//! delete and read (linearizably) a few keys through every node of a
//! three-node cluster while the test kills (SIGKILL) and restarts nodes
//! and pauses them (SIGSTOP/SIGCONT). Every operation's call, return and
//! result is recorded, and each key's history must be linearizable
//! (`linearizable.rs`). At the end every node must hold the same data at
//! the same revision, and no node's revision may have gone backwards.
//! `KVR_CHAOS_SECS` (default 12) sets the length.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::linearizable::{Event, Op, Out, linearizable};
use super::{Node, spawn, spawn_at, voters, wait_for};

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
    let sock: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_millis(500)).map_err(|_| false)?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
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

/// Shared by clients: the history, and per node the revisions seen.
#[derive(Default)]
struct Record {
    events: BTreeMap<u32, Vec<Event>>,
    /// node index -> (call, return, X-Kvr-Revision).
    seen: BTreeMap<usize, Vec<(u64, u64, u64)>>,
    ops: usize,
}

/// One client's loop until `stop`.
fn client(
    id: usize,
    addrs: Arc<Vec<String>>,
    start: Instant,
    stop: Arc<AtomicBool>,
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
        let addr = &addrs[node];
        let path = format!("/v1/kv/key{key}");
        // A value unique across clients and operations.
        let value = (id as u32) << 24 | n;
        let op = match n % 5 {
            0 | 1 => Op::Put(value),
            2 => Op::Cas(value, *last.get(&key).unwrap_or(&0)),
            3 => Op::Delete,
            _ => Op::Get,
        };
        let call = now();
        let result = match op {
            Op::Put(v) => request(addr, "PUT", &path, &[], v.to_string().as_bytes()),
            Op::Cas(v, e) => {
                let cond = if e == 0 {
                    ("if-none-match", "*".to_string())
                } else {
                    ("if-match", format!("\"{e}\""))
                };
                request(addr, "PUT", &path, &[cond], v.to_string().as_bytes())
            }
            Op::Delete => request(addr, "DELETE", &path, &[], b""),
            Op::Get => request(addr, "GET", &path, &[], b""),
        };
        let ret = now();
        let out = match (&op, &result) {
            (_, Err(false)) => None,
            (Op::Get, Err(true)) => None,
            (_, Err(true)) => Some(Out::Unknown),
            (Op::Get, Ok(a)) => match a.status {
                200 => {
                    let v = String::from_utf8_lossy(&a.body).parse().ok();
                    v.zip(a.etag).map(|(v, r)| Out::Read(Some((v, r))))
                }
                404 if code_of(&a.body) == "not_found" => Some(Out::Read(None)),
                _ => None,
            },
            (_, Ok(a)) => match (a.status, code_of(&a.body).as_str()) {
                (200, _) => written_revision(&a.body).map(Out::Written),
                (412, _) => Some(Out::Refused),
                (404, "not_found") => Some(Out::Absent),
                (503, "outcome_unknown") => Some(Out::Unknown),
                // unavailable, overloaded, removed: never applied.
                _ => None,
            },
        };
        if let Some(Out::Written(r) | Out::Read(Some((_, r)))) = out {
            last.insert(key, r);
        }
        let mut rec = record.lock().unwrap();
        if let Ok(Answer {
            status: 200,
            revision: Some(rev),
            ..
        }) = &result
        {
            rec.seen.entry(node).or_default().push((call, ret, *rev));
        }
        if let Some(out) = out {
            let ret = if out == Out::Unknown { u64::MAX } else { ret };
            rec.events
                .entry(key)
                .or_default()
                .push(Event { call, ret, op, out });
            rec.ops += 1;
        }
    }
}

fn secs() -> u64 {
    std::env::var("KVR_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn addr_of(node: &Node) -> String {
    node.url.trim_start_matches("http://").to_string()
}

fn restart(dir: &Path, node: &mut Node) {
    let (listen, raft, name) = (addr_of(node), node.raft.clone(), node.name.clone());
    let _ = node.child.kill();
    let _ = node.child.wait();
    *node = spawn_at(dir, &name, (&listen, &raft), &RAFT_FLAGS, &[]);
}

fn signal(node: &Node, sig: &str) {
    let pid = node.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args([sig, &pid])
        .status();
}

#[test]
fn chaos_history_is_linearizable_and_nodes_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut init: Vec<&str> = vec!["--cluster-init"];
    init.extend_from_slice(&RAFT_FLAGS);
    let n1 = spawn(dir, "n1", &init, &[]);
    let mut nodes = vec![n1];
    for name in ["n2", "n3"] {
        let mut args = vec!["--join", nodes[0].url.as_str()];
        args.extend_from_slice(&RAFT_FLAGS);
        let n = spawn(dir, name, &args, &[]);
        nodes.push(n);
    }
    wait_for(30, "three voters", || voters(&nodes[0]) == 3);
    let addrs: Arc<Vec<String>> = Arc::new(nodes.iter().map(addr_of).collect());
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (a, s, r) = (addrs.clone(), stop.clone(), record.clone());
            std::thread::spawn(move || client(id, a, start, s, r))
        })
        .collect();

    // The nemesis: one fault at a time, so a majority is mostly up.
    let until = Instant::now() + Duration::from_secs(secs());
    let mut faults = BTreeMap::<&str, usize>::new();
    let mut round = 0usize;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(700));
        round += 1;
        let victim = round % nodes.len();
        if round.is_multiple_of(2) {
            restart(dir, &mut nodes[victim]);
            *faults.entry("kill -9 and restart").or_default() += 1;
        } else {
            signal(&nodes[victim], "-STOP");
            std::thread::sleep(Duration::from_millis(900));
            signal(&nodes[victim], "-CONT");
            *faults.entry("SIGSTOP 0.9 s").or_default() += 1;
        }
    }
    // Heal, let the clients run on a healthy cluster a little, stop.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

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
    wait_for(20, "the nodes to converge", || {
        let revs: Vec<u64> = nodes.iter().map(|n| super::revision_of(n, true)).collect();
        revs.iter().all(|r| *r == revs[0]) && super::revision_of(&nodes[0], false) == revs[0]
    });
    let first = dump(&nodes[0]);
    for n in &nodes[1..] {
        assert_eq!(dump(n), first, "{} differs from n1", n.name);
    }

    // Each key's history, with a final linearizable read through each node.
    let rec = record.lock().unwrap();
    let mut events = rec.events.clone();
    let t = start.elapsed().as_nanos() as u64;
    for key in 0..KEYS {
        for (i, node) in nodes.iter().enumerate() {
            let a = request(&addr_of(node), "GET", &format!("/v1/kv/key{key}"), &[], b"")
                .unwrap_or_else(|_| panic!("final read through {}", node.name));
            let out = match a.status {
                200 => Out::Read(Some((
                    String::from_utf8_lossy(&a.body).parse().unwrap(),
                    a.etag.unwrap(),
                ))),
                404 => Out::Read(None),
                s => panic!("final read: {s}"),
            };
            let at = t + 10 * (key as u64 * 3 + i as u64 + 1);
            events.entry(key).or_default().push(Event {
                call: at,
                ret: at + 1,
                op: Op::Get,
                out,
            });
        }
    }
    let mut violations = Vec::new();
    for (key, h) in &events {
        if !linearizable(h) {
            violations.push(*key);
        }
    }
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
        "chaos: {} s, {} operations checked ({acked} acknowledged writes, {unknown} with \
         unknown outcome), faults {faults:?}, linearizability violations {}, revisions going \
         backwards {backwards}",
        secs(),
        rec.ops,
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "keys with a non-linearizable history: {violations:?}"
    );
    assert_eq!(backwards, 0);
    assert!(acked > 20, "too few writes went through: {acked}");
}
