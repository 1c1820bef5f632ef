//! TLS in cluster mode (SPEC "TLS"): every node serves its public and raft
//! listeners with a certificate of its own, verifies its peers and `--join`
//! targets against `--cacert`; a cluster is all-TLS or all-plain, and a
//! node the cluster cannot verify (or that cannot verify it) is refused.
//! Certificates come from CAs made at run time.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

#[path = "../common/pki.rs"]
mod pki;

use pki::{Ca, Pki};

/// A Raft snapshot (and a log purge) every 20 entries, so that a node
/// joining after a few writes gets a snapshot streamed over TLS.
const SNAPSHOTS: [(&str, &str); 1] = [("KVR_RAFT_SNAPSHOT_EVERY", "20")];

/// `--tls-cert`, `--tls-key` of `pki`, and `--cacert CA`.
fn tls_args(pki: &Pki, ca: &Path) -> Vec<String> {
    let mut args = pki.serve_args();
    args.push("--cacert".into());
    args.push(ca.display().to_string());
    args
}

/// A TLS member `name` with a certificate of `ca`'s, trusting `trust`.
fn tls_node(dir: &Path, ca: &Ca, trust: &Path, name: &str, extra: &[&str]) -> Node {
    let pki = ca.issue(dir, name, &["localhost", "127.0.0.1"]);
    let mut args = tls_args(&pki, trust);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = spawn(dir, name, &args, &SNAPSHOTS);
    assert!(node.url.starts_with("https://127.0.0.1:"), "{}", node.url);
    node
}

/// `kvr --server URL --cacert CA ARGS`.
fn cli(dir: &Path, ca: &Path, node: &Node, args: &[&str]) -> Output {
    let ca = ca.display().to_string();
    let mut all = vec!["--server", node.url.as_str(), "--cacert", ca.as_str()];
    all.extend_from_slice(args);
    kvr(dir, &all)
}

fn cluster_status(dir: &Path, ca: &Path, node: &Node) -> serde_json::Value {
    let out = cli(dir, ca, node, &["cluster", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn voter_count(status: &serde_json::Value) -> usize {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["voter"] == true)
        .count()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs `cmd` to its end (killed and failed after `secs`).
pub(super) fn run(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `kvr --db NAME.redb serve --listen 127.0.0.1:0 --raft-listen RAFT ARGS`,
/// to its end.
fn serve_to_end(dir: &Path, name: &str, raft: &str, args: &[String]) -> Output {
    let mut cmd = kvr_cmd(dir);
    cmd.args(member_args(name, "127.0.0.1:0", raft)).args(args);
    run(cmd, 120)
}

fn assert_refused(out: &Output, code: i32, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    // The error's own line, whoever refused (SPEC).
    assert!(err.lines().any(|l| l.starts_with("kvr: error: ")), "{err}");
    for s in says {
        assert!(err.contains(s), "{s:?} not in: {err}");
    }
}

/// Sends plain HTTP to `addr`; the answer as text.
fn plain_request(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!("POST /raft/vote HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

#[test]
fn three_tls_nodes_replicate_forward_and_fail_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new(dir, "cluster");
    let n1 = tls_node(dir, &ca, &ca.ca, "n1", &["--cluster-init"]);
    let n2 = tls_node(dir, &ca, &ca.ca, "n2", &["--join", &n1.url]);
    // Enough writes for the log to be purged under a snapshot: the third
    // node gets its state as a snapshot streamed over TLS.
    for i in 0..60 {
        ok(&cli(
            dir,
            &ca.ca,
            &n1,
            &["put", &format!("s{i:02}"), &i.to_string()],
        ));
    }
    wait_for(60, "a purge of the log", || {
        dir.join("n1.redb.raft").join("purged").exists()
    });
    let join3 = format!("{},{}", n1.url, n2.url);
    let n3 = tls_node(dir, &ca, &ca.ca, "n3", &["--join", &join3]);
    wait_for(60, "three voters", || {
        voter_count(&cluster_status(dir, &ca.ca, &n1)) == 3
    });
    let out = cli(
        dir,
        &ca.ca,
        &n3,
        &["--consistency", "stale", "range", "--count"],
    );
    assert_eq!(ok(&out).trim(), "{\"count\":60}");
    assert_eq!(ok(&cli(dir, &ca.ca, &n3, &["get", "s42"])), "42");
    let status = cluster_status(dir, &ca.ca, &n1);
    assert_eq!(status["state"], "leader");
    for n in status["nodes"].as_array().unwrap() {
        assert!(n["url"].as_str().unwrap().starts_with("https://"), "{n}");
    }
    // The raft listeners speak TLS only.
    for n in [&n1, &n2, &n3] {
        let answer = plain_request(&n.raft);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("all-TLS"), "{answer}");
    }

    // Writes through followers are forwarded to the leader; linearizable
    // reads through followers get the leader's read index.
    ok(&cli(dir, &ca.ca, &n3, &["put", "a", "1"]));
    ok(&cli(dir, &ca.ca, &n2, &["put", "b", "2"]));
    for n in [&n2, &n3] {
        assert_eq!(ok(&cli(dir, &ca.ca, n, &["get", "a"])), "1", "{}", n.name);
        assert_eq!(ok(&cli(dir, &ca.ca, n, &["get", "b"])), "2", "{}", n.name);
    }

    // The leader dies: writes resume through a survivor.
    let mut n1 = n1;
    n1.child.kill().unwrap();
    n1.child.wait().unwrap();
    wait_for(30, "a write after the leader died", || {
        cli(dir, &ca.ca, &n2, &["put", "c", "3"]).status.success()
    });
    let leader = cluster_status(dir, &ca.ca, &n3)["leader"]["id"]
        .as_u64()
        .unwrap();
    assert_ne!(leader, 1);
    ok(&cli(dir, &ca.ca, &n3, &["put", "d", "4"]));
    for n in [&n2, &n3] {
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
            assert_eq!(ok(&cli(dir, &ca.ca, n, &["get", k])), v, "{} {k}", n.name);
        }
    }

    // Restarted on another raft port, or without TLS, node 1 is refused:
    // its peers know it by its raft address, and the cluster is all-TLS.
    let n1_pki = Pki {
        ca: ca.ca.clone(),
        cert: dir.join("n1-cert.pem"),
        key: dir.join("n1-key.pem"),
    };
    let out = serve_to_end(dir, "n1", "127.0.0.1:0", &tls_args(&n1_pki, &ca.ca));
    assert_refused(&out, 2, &["node 1 is a member at raft address", &n1.raft]);
    let out = serve_to_end(dir, "n1", &n1.raft, &[]);
    assert_refused(&out, 3, &["all-TLS or all-plain", "--tls-cert"]);

    // Restarted as it was, it catches up.
    let listen = n1.url.trim_start_matches("https://").to_string();
    let raft = n1.raft.clone();
    drop(n1);
    let args = tls_args(&n1_pki, &ca.ca);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let back = spawn_at(dir, "n1", (&listen, &raft), &args, &SNAPSHOTS);
    wait_for(30, "the restarted node to catch up", || {
        cli(dir, &ca.ca, &back, &["get", "d"]).stdout == b"4"
    });
    assert_eq!(cluster_status(dir, &ca.ca, &back)["node_id"], 1);
}

/// The data of the cluster `node` serves: every key and the revision.
fn data_of(dir: &Path, ca: &Path, node: &Node) -> (String, u64) {
    let range = ok(&cli(dir, ca, node, &["range"]));
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&cli(dir, ca, node, &["stats"]))).unwrap();
    (range, stats["revision"].as_u64().unwrap())
}

#[test]
fn a_mismatched_join_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new(dir, "cluster");
    let t1 = tls_node(dir, &ca, &ca.ca, "t1", &["--cluster-init"]);
    ok(&cli(dir, &ca.ca, &t1, &["put", "k", "v"]));
    let p1 = spawn(dir, "p1", &["--cluster-init"], &[]);
    assert!(put(dir, &p1, "k", "plain").status.success());
    let tls_before = data_of(dir, &ca.ca, &t1);
    let plain_before = data_of(dir, &ca.ca, &p1);

    // A plain node asked to join a TLS member, by its https:// URL or by
    // its address with http://.
    let out = serve_to_end(dir, "p2", "127.0.0.1:0", &["--join".into(), t1.url.clone()]);
    assert_refused(&out, 3, &["all-TLS or all-plain", "--tls-cert"]);
    assert!(!dir.join("p2.redb").exists(), "refused before any file");
    let as_http = t1.url.replace("https://", "http://");
    let out = serve_to_end(dir, "p3", "127.0.0.1:0", &["--join".into(), as_http]);
    assert_refused(&out, 3, &["protocol mismatch", "HTTPS only"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("unauthorized"));

    // A TLS node asked to join a plain member, by its http:// URL or by
    // its address with https://.
    let pki = ca.issue(dir, "t2", &["127.0.0.1"]);
    let mut args = tls_args(&pki, &ca.ca);
    args.extend(["--join".to_string(), p1.url.clone()]);
    let out = serve_to_end(dir, "t2", "127.0.0.1:0", &args);
    assert_refused(&out, 3, &["all-TLS or all-plain", "a plain http:// URL"]);
    assert!(!dir.join("t2.redb").exists(), "refused before any file");
    let mut args = tls_args(&pki, &ca.ca);
    args.extend(["--join".to_string(), p1.url.replace("http://", "https://")]);
    let out = serve_to_end(dir, "t3", "127.0.0.1:0", &args);
    assert_refused(&out, 3, &["does not speak TLS"]);

    // A TLS node cannot advertise an http:// URL (a usage error).
    let mut args = tls_args(&pki, &ca.ca);
    args.extend([
        "--cluster-init".to_string(),
        "--advertise-url".to_string(),
        "http://127.0.0.1:1".to_string(),
    ]);
    let out = serve_to_end(dir, "t4", "127.0.0.1:0", &args);
    assert_refused(&out, 2, &["--advertise-url", "https://"]);

    // The members check too: a plain cluster refuses a join request from
    // an https:// node (sent by hand here).
    let join =
        br#"{"url":"https://127.0.0.1:1","raft":"127.0.0.1:2","node_id":null,"learner":false}"#;
    let (code, _, body) = http(&p1.url, "POST", "/v1/cluster/join", join);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("all-TLS or all-plain"), "{body}");

    // Neither cluster changed.
    assert_eq!(
        cluster_status(dir, &ca.ca, &t1)["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(status_of(&p1)["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(data_of(dir, &ca.ca, &t1), tls_before);
    assert_eq!(data_of(dir, &ca.ca, &p1), plain_before);
    assert_eq!(ok(&cli(dir, &ca.ca, &t1, &["get", "k"])), "v");
}

#[test]
fn a_node_of_another_ca_cannot_join() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new(dir, "cluster");
    let other = Ca::new(dir, "other");
    let n1 = tls_node(dir, &ca, &ca.ca, "n1", &["--cluster-init"]);
    ok(&cli(dir, &ca.ca, &n1, &["put", "k", "v"]));
    let before = data_of(dir, &ca.ca, &n1);

    // Its certificate is signed by a CA the cluster does not trust (it
    // trusts the cluster's): the leader cannot verify it and refuses.
    let pki = other.issue(dir, "x", &["localhost", "127.0.0.1"]);
    let mut args = tls_args(&pki, &ca.ca);
    args.extend(["--join".to_string(), n1.url.clone()]);
    let out = serve_to_end(dir, "x", "127.0.0.1:0", &args);
    assert_refused(
        &out,
        3,
        &[
            "node 2 cannot be added",
            "could not be verified",
            // The advice is for the joiner's certificate or the members'
            // trust, not the joiner's own --cacert.
            "give the joining node a certificate one of them signed",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("give that CA with --cacert PEM"));
    let log = stderr_of(dir, "n1");
    assert!(
        log.contains("refusing the peer at") && log.contains("could not be verified"),
        "{log}"
    );
    // Nothing of the node it was to be is left (its file, Raft log and
    // URL note): started again, that file passed for a member.
    let left = |name: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&format!("{name}.redb")))
            .collect()
    };
    assert_eq!(left("x"), Vec::<String>::new());

    // Its certificate is the cluster CA's, but it trusts another CA only:
    // it cannot verify the member it asks.
    let pki = ca.issue(dir, "y", &["localhost", "127.0.0.1"]);
    let mut args = tls_args(&pki, &other.ca);
    args.extend(["--join".to_string(), n1.url.clone()]);
    let out = serve_to_end(dir, "y", "127.0.0.1:0", &args);
    assert_refused(&out, 3, &["could not be verified", "--cacert"]);
    // Its log names the member by the URL it asked (not as a raft address).
    let asked = n1.url.trim_start_matches("https://");
    let logged = format!(
        "refusing the peer at {asked}: the certificate of kvr server at {} could not be verified",
        n1.url
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&logged),
        "{logged}"
    );
    assert_eq!(left("y"), Vec::<String>::new());

    // Its certificate is the cluster CA's but names another host than the
    // address it advertises: the advice is for the joining node's
    // certificate or address (a client's "use a URL with a name …" was
    // no help to it, found by an audit).
    let pki = ca.issue(dir, "z", &["wrong.example.com"]);
    let mut args = tls_args(&pki, &ca.ca);
    args.extend(["--join".to_string(), n1.url.clone()]);
    let out = serve_to_end(dir, "z", "127.0.0.1:0", &args);
    assert_refused(
        &out,
        3,
        &[
            "could not be verified",
            "not valid for the joining node's advertised address",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("use a URL with a name"));
    assert_eq!(left("z"), Vec::<String>::new());

    let status = cluster_status(dir, &ca.ca, &n1);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(data_of(dir, &ca.ca, &n1), before);
    ok(&cli(dir, &ca.ca, &n1, &["put", "k2", "v2"]));
}
