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
    assert!(
        (before + 2000..=after + 2000).contains(&at),
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
