//! Idempotency keys and watch history in a cluster: a write repeated with
//! its `Idempotency-Key` through another node, after a failover, and on a
//! leader that got its state from a snapshot, gets its first outcome and
//! is not applied twice; the snapshot also carried the watch history.

use super::*;

/// [`http_headers`] with the body read as JSON (null when it is not).
pub(super) fn http_with(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let (status, _, body) = http_headers(url, method, path, headers, body);
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// The first `n` lines of a watch stream.
fn watch_lines(url: &str, path: &str, n: usize) -> Vec<serde_json::Value> {
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut out = Vec::new();
    while out.len() < n {
        line.clear();
        reader.read_line(&mut line).unwrap();
        // Chunked: size lines are hex, data lines JSON.
        if line.starts_with('{') {
            out.push(serde_json::from_str(line.trim()).unwrap());
        }
    }
    out
}

#[test]
fn repeats_get_the_first_outcome_through_failover_and_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A snapshot (and a log purge) every 50 entries: joiners get one.
    let env = [("KVR_RAFT_SNAPSHOT_EVERY", "50")];
    let n1 = spawn(dir, "n1", &["--cluster-init"], &env);
    let once = [("Idempotency-Key", "once")];
    let (code, first) = http_with(&n1.url, "PUT", "/v1/kv/a", &once, b"1");
    assert_eq!((code, first["revision"].as_u64()), (200, Some(1)));
    let cond = [("Idempotency-Key", "cond"), ("If-Match", "\"9\"")];
    let (code, failed) = http_with(&n1.url, "PUT", "/v1/kv/a", &cond, b"x");
    assert_eq!((code, failed["revision"].as_u64()), (412, Some(1)));
    for i in 0..120 {
        let (code, _, _) = http(&n1.url, "PUT", &format!("/v1/kv/k{i:03}"), b"v");
        assert_eq!(code, 200);
    }
    // The snapshot and the purge after it run in the background.
    let purged = dir.join("n1.redb.raft").join("purged");
    wait_for(15, "the log purged after a snapshot", || purged.exists());
    let n2 = spawn(dir, "n2", &["--join", &n1.url], &env);
    let n3 = spawn(
        dir,
        "n3",
        &["--join", &format!("{},{}", n1.url, n2.url)],
        &env,
    );
    wait_for(30, "three voters", || voters(&n1) == 3);
    let revision = revision_of(&n1, false);
    wait_for(15, "n2 to catch up", || revision_of(&n2, true) == revision);

    // Through a follower (forwarded to the leader): the first outcomes.
    assert_eq!(
        http_with(&n2.url, "PUT", "/v1/kv/a", &once, b"1"),
        (200, first.clone())
    );
    assert_eq!(
        http_with(&n3.url, "PUT", "/v1/kv/a", &cond, b"x"),
        (412, failed.clone())
    );
    let (code, reused) = http_with(&n3.url, "PUT", "/v1/kv/a", &once, b"2");
    assert_eq!(
        (code, reused["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // n2 installed a snapshot: it kept the history from revision 1 (the
    // same oldest revision as n1) and the idempotency records. Made the
    // leader, it decides repeats from its own state.
    let lines = watch_lines(&n2.url, "/v1/watch?from_revision=1&consistency=stale", 2);
    assert_eq!(lines[0]["progress_revision"].as_u64(), Some(0));
    assert_eq!(
        (lines[1]["revision"].as_u64(), lines[1]["key"].as_str()),
        (Some(1), Some("a"))
    );
    let n2_id = status_of(&n2)["node_id"].as_u64().unwrap().to_string();
    let out = kvr(
        dir,
        &["--server", &n1.url, "cluster", "transfer-leader", &n2_id],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(15, "n2 to lead", || status_of(&n2)["state"] == "leader");
    drop(n1); // kill -9 the old leader
    assert_eq!(
        http_with(&n3.url, "PUT", "/v1/kv/a", &once, b"1"),
        (200, first)
    );
    assert_eq!(
        http_with(&n2.url, "PUT", "/v1/kv/a", &cond, b"x"),
        (412, failed)
    );
    // Nothing was applied twice.
    assert_eq!(revision_of(&n2, false), revision);
    assert_eq!(get(dir, &n3, "a").stdout, b"1");
}
