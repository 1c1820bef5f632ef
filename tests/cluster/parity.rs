//! A three-node cluster answers the CLI as one server does: the random
//! command sequences of `common/cli_parity.rs`, sent to a standalone
//! `kvr serve` and through a follower of a cluster (which forwards the
//! writes and gets a read index for the reads), give the same stdout,
//! stderr and exit codes (SPEC "Cluster mode": preconditions, revisions
//! and idempotency behave exactly as on one node).

use std::io::BufRead;
use std::process::Stdio;

use proptest::prelude::*;

use super::*;
use crate::cli_parity;

/// A cluster whose leader stays put: these tests compare answers, and an
/// election (a test machine busy for half a second misses heartbeats at
/// the default timeouts) would answer some requests with 503.
fn steady_three(dir: &Path) -> Vec<Node> {
    three_with(dir, &STEADY, &[])
}

/// See [`steady_three`].
const STEADY: [&str; 4] = [
    "--heartbeat-ms",
    "200",
    "--election-timeout-ms",
    "3000-6000",
];

/// Every change event from revision 1 to `upto`, as `kvr watch` prints
/// them through `url` (expiry times hidden: the clocks moved), and what
/// it said on stderr (for a failure's message). A watch that ends before
/// `upto` (exit 5: no leader within its 3 s, as after a leader's `kill -9`
/// with these election timeouts of 3 to 6 s) is started again, for up to
/// 30 s.
fn history(dir: &Path, url: &str, upto: u64) -> (Vec<String>, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (events, reached, said) = watch_once(dir, url, upto);
        if reached || std::time::Instant::now() > deadline {
            return (events, said);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One `kvr watch --from-revision 1`: its events up to `upto`, whether it
/// got that far, and its exit status and stderr.
fn watch_once(dir: &Path, url: &str, upto: u64) -> (Vec<String>, bool, String) {
    let mut child = kvr_cmd(dir)
        .args([
            "--server",
            url,
            // A progress line at least every second (--timeout / 3), so the
            // last one comes soon after the retained events.
            "--timeout",
            "3",
            "watch",
            "--from-revision",
            "1",
            "--progress",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = Vec::new();
    let mut reached = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        match v["progress_revision"].as_u64() {
            Some(at) if at >= upto => {
                reached = true;
                break;
            }
            Some(_) => {}
            None => events.push(cli_parity::normalize(line.as_bytes())),
        }
    }
    let _ = child.kill();
    let status = child.wait();
    let mut said = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut said);
    }
    (events, reached, format!("{status:?}: {said}"))
}

proptest! {
    #![proptest_config(cli_parity::config(1))]

    /// The CLI talks to a follower first (then the leader). Now and then
    /// a member is restarted (SIGTERM, or `kill -9`): first that follower,
    /// then whichever node leads, and so on in turn; a write meanwhile
    /// goes down the list, to the leader the answers name, and through
    /// elections (the CLI retries within `--timeout`).
    #[test]
    fn a_cluster_answers_random_commands_as_one_server_does(
        items in proptest::collection::vec(cli_parity::item(), 40..80)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut nodes = steady_three(dir);
        let leader = leader_index(&nodes);
        let follower = (leader + 1) % 3;
        let list = format!("{},{}", nodes[follower].url, nodes[leader].url);
        let alone = standalone(dir, "alone.redb");
        let mut restarts = 0;
        let mut restart = |kill: bool| {
            let target = if restarts % 2 == 0 {
                follower
            } else {
                // After the last leader was killed, the next may take a
                // moment to be elected.
                wait_for(30, "a leader", || {
                    nodes.iter().any(|n| status_of(n)["state"] == "leader")
                });
                leader_index(&nodes)
            };
            restarts += 1;
            let node = &mut nodes[target];
            if kill {
                let _ = node.child.kill();
                let _ = node.child.wait();
            } else {
                let status = sigterm(node);
                assert!(status.success(), "{status:?}: {}", stderr_of(dir, &node.name));
            }
            let listen = node.url.trim_start_matches("http://").to_string();
            let (name, raft) = (node.name.clone(), node.raft.clone());
            *node = spawn_at(dir, &name, (&listen, &raft), &STEADY, &[]);
        };
        cli_parity::same_answers(
            dir,
            &["--server", &alone.url],
            &["--server", &list],
            &items,
            &mut restart,
        )?;
        // And the change feeds are the same, event for event.
        let stats = kvr(dir, &["--server", &alone.url, "stats"]);
        let revision = serde_json::from_slice::<serde_json::Value>(&stats.stdout).unwrap()
            ["revision"]
            .as_u64()
            .unwrap();
        let (one, said) = history(dir, &alone.url, revision);
        prop_assert_eq!(one.len() as u64, revision, "{}", said);
        let (cluster, said) = history(dir, &list, revision);
        prop_assert_eq!(one, cluster, "kvr watch through the cluster: {}", said);
        // And backups of both hold the same keys, values, revisions and
        // expiries, at the same revision.
        let mut contents = Vec::new();
        for (server, dest) in [(&alone.url, "one.backup"), (&list, "cluster.backup")] {
            let out = kvr(dir, &["--server", server, "backup", "--json", dest]);
            prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let lines = kvr(dir, &["--db", dest, "range"]);
            prop_assert!(lines.status.success());
            contents.push((
                made["revision"].clone(),
                made["keys"].clone(),
                cli_parity::normalize(&lines.stdout),
            ));
        }
        prop_assert_eq!(&contents[0].0, &serde_json::json!(revision));
        prop_assert_eq!(&contents[0], &contents[1]);
    }
}

/// One HTTP request of [`http_requests`].
#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A key as a request target carries it: percent-encoded bytes, with `/`
/// left as it is (SPEC "HTTP API").
fn encoded(key: &[u8]) -> String {
    key.iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const HTTP_KEYS: &[&[u8]] = &[
    b"a", b"b", b"k1", b"a/b", b"..", b"a b", b"a+b", b"a?x", b"\xff", b"p:1", b"p:2", b"",
];
const HTTP_VALUES: &[&[u8]] = &[b"v", b"", b"\x00\xff", b"{\"a\":1}"];

fn http_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(HTTP_KEYS).prop_map(<[u8]>::to_vec)
}

/// The key in the path, or as `?key=` (which clients use for `..`).
fn target(key: &[u8], query_form: bool, more: &str) -> String {
    match (query_form, more.is_empty()) {
        (true, _) => format!("/v1/kv?key={}{more}", encoded(key).replace('/', "%2F")),
        (false, true) => format!("/v1/kv/{}", encoded(key)),
        (false, false) => format!("/v1/kv/{}?{}", encoded(key), &more[1..]),
    }
}

fn condition() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    prop_oneof![
        6 => Just(Vec::new()),
        2 => (0..6u8).prop_map(|n| vec![("if-match", format!("\"{n}\""))]),
        1 => Just(vec![("if-match", "*".to_string())]),
        1 => Just(vec![("if-none-match", "*".to_string())]),
    ]
}

fn http_request() -> impl Strategy<Value = Request> {
    let kv = (
        proptest::sample::select(&["PUT", "GET", "HEAD", "DELETE"][..]),
        http_key(),
        proptest::bool::weighted(0.2),
        condition(),
        proptest::option::weighted(0.1, proptest::sample::select(&["3600", "0", "x"][..])),
        proptest::option::weighted(0.2, 0..6u8),
        proptest::sample::select(HTTP_VALUES),
    )
        .prop_map(|(method, key, query_form, cond, ttl, seen, value)| {
            let mut headers = Vec::new();
            let mut more = String::new();
            match method {
                "PUT" => {
                    headers = cond;
                    if let Some(ttl) = ttl {
                        more = format!("&ttl={ttl}");
                    }
                }
                "DELETE" => headers = cond.into_iter().filter(|(h, _)| *h == "if-match").collect(),
                _ => {
                    if let Some(n) = seen {
                        headers.push(("if-none-match", format!("\"{n}\"")));
                    }
                }
            }
            let body = if method == "PUT" {
                value.to_vec()
            } else {
                Vec::new()
            };
            Request {
                method,
                path: target(&key, query_form, &more),
                headers,
                body,
            }
        });
    let range = (
        proptest::option::weighted(0.3, http_key()),
        proptest::option::weighted(0.2, http_key()),
        proptest::option::weighted(0.3, proptest::sample::select(&["p:", "a", "k", ""][..])),
        proptest::option::weighted(
            0.4,
            proptest::sample::select(&["1", "2", "0", "10001", "x"][..]),
        ),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(start, end, prefix, limit, reverse, keys_only, unknown)| {
            let mut q = Vec::new();
            if let Some(s) = start {
                q.push(format!("start={}", encoded(&s).replace('/', "%2F")));
            }
            if let Some(e) = end {
                q.push(format!("end={}", encoded(&e).replace('/', "%2F")));
            }
            if let Some(p) = prefix {
                q.push(format!("prefix={p}"));
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            if reverse {
                q.push("reverse=true".into());
            }
            if keys_only {
                q.push("keys_only=true".into());
            }
            if unknown {
                q.push("colour=red".into());
            }
            Request {
                method: "GET",
                path: format!("/v1/range?{}", q.join("&")),
                headers: Vec::new(),
                body: Vec::new(),
            }
        });
    let batch = proptest::collection::vec(
        proptest::sample::select(
            &[
                r#"{"key":"a","value":"1"}"#,
                r#"{"key":"p:1","value":{"n": 2.50}}"#,
                r#"{"op":"delete","key":"b"}"#,
                r#"{"key":"b","value":"x","if_revision":0}"#,
                r#"{"key":"k1","value":"x","if_revision":3}"#,
                r#"{"key":"c","value":"x","ttl":3600}"#,
                r#"{"key":"d","value":"x","expires_at_ms":1}"#,
                r#"{"key":"","value":"x"}"#,
                r#"{"key":"e"}"#,
                "not json",
                "",
            ][..],
        ),
        0..5,
    )
    .prop_map(|lines| Request {
        method: "POST",
        path: "/v1/batch".into(),
        headers: Vec::new(),
        body: lines.join("\n").into_bytes(),
    });
    let other = proptest::sample::select(
        &[
            ("DELETE", "/v1/range?prefix=p%3A"),
            ("DELETE", "/v1/range"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/nothing"),
            ("PATCH", "/v1/kv/a"),
            ("GET", "/v1/kv/a?colour=red"),
        ][..],
    )
    .prop_map(|(method, path)| Request {
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
    });
    let request = prop_oneof![8 => kv, 4 => range, 3 => batch, 1 => other];
    // Now and then a write under one of a few idempotency keys: a repeat
    // gets the first outcome, another request under the key a 422.
    (request, proptest::option::weighted(0.15, 0..3u8)).prop_map(|(mut r, idem)| {
        if let Some(n) = idem
            && matches!(r.method, "PUT" | "DELETE" | "POST")
        {
            r.headers.push(("idempotency-key", format!("idem-{n}")));
        }
        r
    })
}

/// What two servers may answer differently: the node headers, dates,
/// expiry times (the clock moved) and file sizes.
fn comparable(
    (status, headers, body): (u16, Vec<(String, String)>, Vec<u8>),
) -> (u16, Vec<(String, String)>, String) {
    let kept = [
        "etag",
        "x-kvr-revision",
        "content-type",
        "x-kvr-expires-at",
        "allow",
    ];
    let mut headers: Vec<_> = headers
        .into_iter()
        .filter(|(name, _)| kept.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = if name == "x-kvr-expires-at" {
                "N".into()
            } else {
                value
            };
            (name, value)
        })
        .collect();
    headers.sort();
    (status, headers, cli_parity::normalize(&body))
}

proptest! {
    #![proptest_config(cli_parity::config(1))]

    /// Services that talk HTTP to a follower get what one server answers:
    /// statuses, bodies, ETags and revisions, for writes the follower
    /// forwards to the leader and reads it answers after a read index.
    #[test]
    fn a_follower_answers_random_http_requests_as_one_server_does(
        requests in proptest::collection::vec(http_request(), 60..120)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let nodes = steady_three(dir);
        let leader = leader_index(&nodes);
        let follower = &nodes[(leader + 1) % 3];
        let alone = standalone(dir, "alone.redb");
        for (i, first) in requests.iter().enumerate() {
            // A range page with a cursor is followed by the next page.
            let mut next = Some(first.clone());
            while let Some(r) = next.take() {
                let headers: Vec<(&str, &str)> =
                    r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let one = comparable(http_headers(&alone.url, r.method, &r.path, &headers, &r.body));
                let cluster =
                    comparable(http_headers(&follower.url, r.method, &r.path, &headers, &r.body));
                prop_assert_eq!(
                    &one,
                    &cluster,
                    "request {} of {}: {} {} {:?} {:?}",
                    i + 1,
                    requests.len(),
                    r.method,
                    r.path,
                    r.headers,
                    String::from_utf8_lossy(&r.body)
                );
                if r.path.starts_with("/v1/range?") && one.0 == 200 {
                    // (The body is normalized, not JSON any more where it
                    // had an expiry; a cursor is base64url.)
                    let cursor = one.2.rsplit_once("\"cursor\":\"").and_then(|(_, rest)| rest.split_once('"'));
                    if let Some((cursor, _)) = cursor {
                        next = Some(Request {
                            method: "GET",
                            path: format!("/v1/range?cursor={cursor}"),
                            headers: Vec::new(),
                            body: Vec::new(),
                        });
                    }
                }
            }
        }
    }
}

/// A follower answered a write with the leader's revision and applied it
/// a moment later; a refusal it sent meanwhile carried its own, older
/// revision, so its `X-Kvr-Revision` went backwards (found by the test
/// above). Each write here is followed at once by bad requests, and by a
/// stale read, which finds the write (the follower answers once it has
/// applied it).
#[test]
fn a_followers_revision_never_goes_backwards_after_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = steady_three(tmp.path());
    let leader = leader_index(&nodes);
    let follower = &nodes[(leader + 1) % 3];
    let revision = |headers: &[(String, String)]| -> u64 {
        header(headers, "x-kvr-revision").unwrap().parse().unwrap()
    };
    for i in 0..30 {
        let (code, headers, body) = http(&follower.url, "PUT", &format!("/v1/kv/k{i}"), b"v");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let written = revision(&headers);
        for (method, path, body) in [
            ("POST", "/v1/batch", &b"not json"[..]),
            ("GET", "/v1/kv/a?colour=red", b""),
            ("GET", "/v1/nothing", b""),
        ] {
            let (code, headers, _) = http(&follower.url, method, path, body);
            assert!(code == 400 || code == 404, "{method} {path}: {code}");
            assert!(
                revision(&headers) >= written,
                "{method} {path} after a write at {written}: X-Kvr-Revision {}",
                revision(&headers)
            );
        }
        let stale = format!("/v1/kv/k{i}?consistency=stale");
        let (code, headers, body) = http(&follower.url, "GET", &stale, b"");
        assert_eq!((code, &body[..]), (200, &b"v"[..]), "stale read of k{i}");
        assert!(revision(&headers) >= written);
        // A write through the leader, then a conditional write through the
        // follower that fails on it: the 412 names the key's revision, and
        // its header is not older than that.
        let leader = &nodes[leader];
        let path = format!("/v1/kv/l{i}");
        let (code, headers, _) = http(&leader.url, "PUT", &path, b"v");
        assert_eq!(code, 200);
        let written = revision(&headers);
        let (code, headers, body) =
            http_headers(&follower.url, "PUT", &path, &[("if-none-match", "*")], b"w");
        assert_eq!(code, 412, "{}", String::from_utf8_lossy(&body));
        let named = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["revision"]
            .as_u64()
            .unwrap();
        assert_eq!(named, written);
        assert!(
            revision(&headers) >= named,
            "a 412 naming revision {named}: X-Kvr-Revision {}",
            revision(&headers)
        );
    }
}

/// A member restarted and sent SIGTERM the moment its listening lines are
/// out exits 0 (SPEC: every node, within 5 s of SIGTERM, in every case);
/// it was killed by the signal, its handlers not yet installed (found by
/// the restarts of the test above).
#[test]
fn a_member_stopped_right_after_it_starts_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = steady_three(dir);
    let leader = leader_index(&nodes);
    let node = &mut nodes[(leader + 1) % 3];
    for round in 0..6 {
        let listen = node.url.trim_start_matches("http://").to_string();
        let (name, raft) = (node.name.clone(), node.raft.clone());
        let status = sigterm(node);
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
        *node = spawn_at(dir, &name, (&listen, &raft), &STEADY, &[]);
    }
}
