//! Expiry in a cluster (SPEC "Expiry (TTL)"): a `ttl` sent to a follower
//! becomes one absolute expiry, by the leader's clock, the same on every
//! node; a batch line whose expiry has passed is skipped everywhere; the
//! leader's sweeper expires the key on every node.

use super::idempotency::http_with;
use super::*;

fn expires_at(node: &Node, key: &str) -> Option<u64> {
    let (code, headers, _) = http(
        &node.url,
        "GET",
        &format!("/v1/kv/{key}?consistency=stale"),
        b"",
    );
    assert_eq!(code, 200);
    header(&headers, "x-kvr-expires-at").map(|v| v.parse().unwrap())
}

#[test]
fn a_ttl_becomes_one_expiry_on_every_node_and_expires_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = three(dir, &[]);
    let follower = nodes
        .iter()
        .find(|n| status_of(n)["state"] == "follower")
        .unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (code, put) = http_with(&follower.url, "PUT", "/v1/kv/session?ttl=2", &[], b"s");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(code, 200);
    let revision = put["revision"].as_u64().unwrap();
    wait_for(15, "every node to apply the put", || {
        nodes.iter().all(|n| revision_of(n, true) >= revision)
    });
    let at = expires_at(&nodes[0], "session").unwrap();
    // The cluster's time is the median of the voters' clocks, each peer's
    // estimated from its last answer (`cluster/clock.rs`): a few
    // milliseconds off this test's reading of its own (a CI run saw it
    // 1 ms before `before`).
    const SLACK: u64 = 50;
    assert!(
        (before + 2000 - SLACK..=after + 2000 + SLACK).contains(&at),
        "{before} {at} {after}"
    );
    for n in &nodes {
        assert_eq!(expires_at(n, "session"), Some(at));
    }
    // A batch line whose expiry has passed is skipped on every node; the
    // other line is applied.
    let lines = format!(
        "{{\"key\":\"old\",\"value\":\"x\",\"expires_at_ms\":{}}}\n{{\"key\":\"new\",\"value\":\"y\"}}\n",
        before - 1000
    );
    let (code, batch) = http_with(&follower.url, "POST", "/v1/batch", &[], lines.as_bytes());
    assert_eq!((code, batch["applied"].as_u64()), (200, Some(1)));
    let revision = batch["revision"].as_u64().unwrap();
    wait_for(15, "every node to apply the batch", || {
        nodes.iter().all(|n| revision_of(n, true) >= revision)
    });
    for n in &nodes {
        let (code, _, _) = http(&n.url, "GET", "/v1/kv/old?consistency=stale", b"");
        assert_eq!(code, 404);
    }
    // The leader's sweeper deletes it; every node applies the same delete.
    wait_for(20, "the key to expire on every node", || {
        nodes.iter().all(|n| {
            let (code, _, _) = http(&n.url, "GET", "/v1/kv/session?consistency=stale", b"");
            code == 404
        })
    });
    let revisions: Vec<u64> = nodes.iter().map(|n| revision_of(n, true)).collect();
    assert!(
        revisions.iter().all(|r| *r == revisions[0]),
        "{revisions:?}"
    );
    // Every answer carries the revision applied there, also on a node no
    // write went through, and on answers that are not reads.
    for n in &nodes {
        for path in ["/v1/cluster", "/v1/kv/absent?consistency=stale"] {
            let (_, headers, _) = http(&n.url, "GET", path, b"");
            let seen: u64 = header(&headers, "x-kvr-revision").unwrap().parse().unwrap();
            assert_eq!(seen, revisions[0], "{path}");
        }
    }
}

/// A member whose clock is an hour ahead is named in the log of the one
/// that asks it (the leader, with every heartbeat), and it names the
/// others: expiry goes by the leader's clock, so when it leads every key
/// with a TTL written under another leader expires an hour early, and
/// nothing said so (found by an audit). Members within a second of each
/// other say nothing. Needs libfaketime (`.ci/run` installs it).
#[test]
fn a_member_whose_clock_is_an_hour_off_is_logged() {
    let Some(faketime) = crate::child::faketime() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let n1 = spawn(dir, "n1", &["--cluster-init"], &[]);
    // Its monotonic clock is left alone: openraft's timers run on it.
    let ahead = [
        ("LD_PRELOAD", faketime),
        ("FAKETIME", "+1h"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let n2 = spawn(dir, "n2", &["--join", &n1.url], &ahead);
    wait_for(30, "two voters", || voters(&n1) == 2);
    wait_for(30, "node 1 to name node 2's clock", || {
        stderr_of(dir, "n1").contains("kvr serve: node 2 at raft ")
    });
    let said = stderr_of(dir, "n1");
    let line = said
        .lines()
        .find(|l| l.contains("kvr serve: node 2 at raft "))
        .unwrap();
    assert!(
        line.contains("has a clock 3")
            && line.contains(" s ahead of this node's (node 1): a write's time")
            && line.contains("is the median of the voters' clocks")
            && line.contains("keep the members' clocks within a second of each other (NTP)"),
        "{line}"
    );
    // Node 2, forwarding a write to the leader, sees node 1 behind.
    let (code, _, body) = http(&n2.url, "PUT", "/v1/kv/k", b"v");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    wait_for(30, "node 2 to name node 1's clock", || {
        stderr_of(dir, "n2").contains("kvr serve: node 1 at raft ")
    });
    assert!(
        stderr_of(dir, "n2").contains(" s behind this node's (node 2)"),
        "{}",
        stderr_of(dir, "n2")
    );
    // Clocks that agree are not named.
    let n3 = spawn(dir, "n3", &["--join", &n1.url], &[]);
    wait_for(30, "three voters", || voters(&n1) == 3);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        !stderr_of(dir, "n1").contains("node 3 at raft"),
        "{}",
        stderr_of(dir, "n1")
    );
    drop(n3);
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A leader whose clock is 15 minutes ahead stamps its writes with the
/// time of the majority of the voters' clocks, not its own: a write
/// repeated with its Idempotency-Key after leadership moved there is not
/// applied again (it was: the record looked 15 minutes old, past its
/// 10-minute window; found by an audit), a key with a TTL written before
/// is not expired early, and a new TTL is counted from the real time.
/// Needs libfaketime (`.ci/run` installs it).
#[test]
fn a_leader_whose_clock_is_off_is_outvoted_by_the_others() {
    let Some(faketime) = crate::child::faketime() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let n1 = spawn(dir, "n1", &["--cluster-init"], &[]);
    let ahead = [
        ("LD_PRELOAD", faketime),
        ("FAKETIME", "+15m"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let n2 = spawn(dir, "n2", &["--join", &n1.url], &ahead);
    wait_for(30, "two voters", || voters(&n1) == 2);
    let n3 = spawn(dir, "n3", &["--join", &n1.url], &[]);
    wait_for(30, "three voters", || voters(&n1) == 3);

    let key = [("Idempotency-Key", "retried-after-failover")];
    let (code, first) = http_with(&n1.url, "PUT", "/v1/kv/once", &key, b"v");
    assert_eq!(code, 200, "{first}");
    let (code, kept) = http_with(&n1.url, "PUT", "/v1/kv/session?ttl=120", &[], b"s");
    assert_eq!(code, 200, "{kept}");
    let out = kvr(
        dir,
        &["--server", &n1.url, "cluster", "transfer-leader", "2"],
    );
    assert_ok(&out);
    wait_for(30, "node 2 to lead", || status_of(&n2)["state"] == "leader");

    majority_time_holds(&n2, [&n1, &n2, &n3], &key, &first);
}

/// The leader's own clock stepping 15 minutes on while it leads (NTP, a VM
/// resumed) is outvoted at once by the others' clocks, carried on from
/// their last readings: a write repeated with its Idempotency-Key is not
/// applied again, a new TTL counts from the real time, and keys with a TTL
/// written before are not swept early. The first version of the median
/// kept offsets from the leader's wall clock and held any time it had
/// given: a step froze the cluster 15 minutes ahead (an audit). Needs
/// libfaketime.
#[test]
fn the_leaders_clock_stepping_on_moves_no_write() {
    let Some(faketime) = crate::child::faketime() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = dir.join("n1-clock");
    std::fs::write(&clock, "+0s\n").unwrap();
    let clock_file = clock.display().to_string();
    let stepping = [
        ("LD_PRELOAD", faketime),
        ("FAKETIME_TIMESTAMP_FILE", clock_file.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let n1 = spawn(dir, "n1", &["--cluster-init"], &stepping);
    let n2 = spawn(dir, "n2", &["--join", &n1.url], &[]);
    wait_for(30, "two voters", || voters(&n1) == 2);
    let n3 = spawn(dir, "n3", &["--join", &n1.url], &[]);
    wait_for(30, "three voters", || voters(&n1) == 3);
    assert_eq!(status_of(&n1)["state"], "leader");

    let key = [("Idempotency-Key", "repeated-after-a-step")];
    let (code, first) = http_with(&n1.url, "PUT", "/v1/kv/once", &key, b"v");
    assert_eq!(code, 200, "{first}");
    let (code, kept) = http_with(&n1.url, "PUT", "/v1/kv/session?ttl=60", &[], b"s");
    assert_eq!(code, 200, "{kept}");
    std::fs::write(&clock, "+15m\n").unwrap();
    // Writes at once, before the peers' clocks are read again.
    for i in 0..5 {
        let (code, put) = http_with(
            &n1.url,
            "PUT",
            &format!("/v1/kv/right-after-{i}"),
            &[],
            b"w",
        );
        assert_eq!(code, 200, "{put}");
    }
    std::thread::sleep(std::time::Duration::from_secs(1));

    majority_time_holds(&n1, [&n1, &n2, &n3], &key, &first);
}

/// Through `leader`, whose clock is 15 minutes off: the write made first
/// with Idempotency-Key `key` (answered `first`), repeated, gets that
/// answer again and is not applied; a new TTL of 60 s counts from the real
/// time on every node; and the key `session`, written with a TTL of a
/// minute or more before, is not swept in the next 3 s.
fn majority_time_holds(
    leader: &Node,
    nodes: [&Node; 3],
    key: &[(&str, &str)],
    first: &serde_json::Value,
) {
    let (code, again) = http_with(&leader.url, "PUT", "/v1/kv/once", key, b"v");
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["revision"], first["revision"]);
    let before = unix_ms();
    let (code, put) = http_with(&leader.url, "PUT", "/v1/kv/fresh?ttl=60", &[], b"f");
    let after = unix_ms();
    assert_eq!(code, 200, "{put}");
    let revision = put["revision"].as_u64().unwrap();
    wait_for(15, "every node to apply the put", || {
        nodes.iter().all(|n| revision_of(n, true) >= revision)
    });
    // A peer's clock is read at the middle of a raft round trip, so the
    // median may be off the client's by up to half a round trip: under a
    // loaded CI machine, more than the put took (a flake). A second's slack
    // still tells it from the leader's 15 minutes.
    for n in nodes {
        let at = expires_at(n, "fresh").unwrap();
        assert!(
            (before + 59_000..=after + 61_000).contains(&at),
            "{before} {at} {after}"
        );
    }
    // The leader's own clock says the key expired long ago: its sweeper
    // goes by the majority's, and the revision stays.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, _, _) = http(&leader.url, "GET", "/v1/kv/session", b"");
    assert_eq!(code, 200, "a key with a minute or more to live was swept");
    assert_eq!(revision_of(leader, false), revision);
}
