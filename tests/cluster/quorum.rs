//! A node cut off from its majority (the others `kill -9`ed): a write it
//! proposed is answered `outcome_unknown` within a bound, new writes are
//! `unavailable` at once, `/readyz` says why it is not ready, and SIGTERM
//! still ends it within 5 s.

use super::*;

/// Three members with node 1 leading.
fn led_by_node_1(dir: &Path) -> Vec<Node> {
    led_by_node_1_with(dir, &[])
}

/// [`led_by_node_1`] with `flags` given to every member.
fn led_by_node_1_with(dir: &Path, flags: &[&str]) -> Vec<Node> {
    let nodes = three_with(dir, flags, &[]);
    wait_for(10, "node 1 to lead", || {
        status_of(&nodes[0])["leader"]["id"] == 1
    });
    // A first write commits: the leader's history bounds (which go into
    // the log before any write) are in, so a later write is the only
    // entry it proposes.
    let (code, _, body) = http(&nodes[0].url, "PUT", "/v1/kv/first", b"v");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    nodes
}

/// Kills (SIGKILL) a member and waits for it.
fn kill9(node: &mut Node) {
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

/// Sends `sig` (`-STOP`, `-CONT`) to each of `nodes`.
fn signal(nodes: &[Node], sig: &str) {
    for node in nodes {
        let pid = node.child.id().to_string();
        let sent = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(sent.success(), "kill {sig} {pid}");
    }
}

fn put_with_key(
    url: &str,
    key: &str,
    idempotency_key: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http_headers(
        url,
        "PUT",
        &format!("/v1/kv/{key}"),
        &[("idempotency-key", idempotency_key)],
        b"x",
    )
}

/// [`put_with_key`], which must be taken (200).
fn put_taken(url: &str, key: &str, idempotency_key: &str) {
    let (code, _, body) = put_with_key(url, key, idempotency_key);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    v["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_leader_that_loses_its_majority_answers_outcome_unknown_and_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1_with(dir, &LONG_ELECTIONS);
    assert_eq!(http(&nodes[0].url, "GET", "/readyz", b"").0, 200);
    kill9(&mut nodes[1]);
    kill9(&mut nodes[2]);
    let n1 = &nodes[0];

    // Proposed (the lease still holds), never committed: its fate is
    // unknown, and the client is told so within the bound (11 s with
    // these election timeouts), not left hanging.
    let started = Instant::now();
    let (code, headers, body) = put_with_key(&n1.url, "hung", "hung-1");
    let took = started.elapsed();
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "outcome_unknown");
    assert!(header(&headers, "retry-after").is_some(), "{headers:?}");
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    // And how to learn the outcome.
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with(kvr::idempotency::RESEND_HINT),
        "{v}"
    );

    // No majority has answered for longer than the election timeout: not
    // ready, with a reason.
    let (code, _, body) = http(&n1.url, "GET", "/readyz", b"");
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "unavailable");
    assert!(v["message"].as_str().unwrap().contains("majority"), "{v}");

    // A new write is refused at once, never proposed.
    let started = Instant::now();
    let (code, headers, body) = put_with_key(&n1.url, "later", "later-1");
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "unavailable");
    assert!(header(&headers, "retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Through the CLI with every member's URL: what the member that
    // answered said (not applied) is the error, not the last member that
    // could not be reached.
    let list = format!("{},{},{}", n1.url, nodes[1].url, nodes[2].url);
    let out = kvr(
        dir,
        &["--server", &list, "--timeout", "3", "put", "cli", "x"],
    );
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the request was not applied") && !err.contains("cannot reach"),
        "{err}"
    );

    // The majority back: ready again, and the unknown write, sent again
    // with its key, is applied once.
    let addr = |n: &Node| n.url.trim_start_matches("http://").to_string();
    let (l2, r2) = (addr(&nodes[1]), nodes[1].raft.clone());
    let _n2 = spawn_at(dir, "n2", (&l2, &r2), &LONG_ELECTIONS, &[]);
    wait_for(30, "node 1 ready again", || {
        http(&n1.url, "GET", "/readyz", b"").0 == 200
    });
    put_taken(&n1.url, "hung", "hung-1");
    let (code, _, body) = http(&n1.url, "GET", "/v1/kv/hung", b"");
    assert_eq!((code, body.as_slice()), (200, &b"x"[..]));
}

#[test]
fn sigterm_on_a_leader_without_a_majority_answers_and_exits_within_5s() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1_with(dir, &LONG_ELECTIONS);
    let proposed = metric(&nodes[0], "kvr_raft_last_log_index");
    kill9(&mut nodes[1]);
    kill9(&mut nodes[2]);
    // A write in flight (proposed while the lease holds), then SIGTERM:
    // once the write is in the leader's log, not after a fixed sleep (a
    // loaded machine could send the signal before the request was read).
    let url = nodes[0].url.clone();
    let writer = std::thread::spawn(move || {
        let answer = put_with_key(&url, "in-flight", "in-flight-1");
        (answer, Instant::now())
    });
    wait_for(10, "the write proposed", || {
        metric(&nodes[0], "kvr_raft_last_log_index") > proposed
    });
    let signalled = Instant::now();
    let status = sigterm(&mut nodes[0]);
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", stderr_of(dir, "n1"));
    assert!(
        exited < Duration::from_secs(5),
        "exited {exited:?} after SIGTERM; {}",
        stderr_of(dir, "n1")
    );
    let ((code, _, body), answered) = writer.join().unwrap();
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "outcome_unknown");
    // Up to 2 s for entries in flight to commit, then the answer.
    let after = answered.saturating_duration_since(signalled);
    assert!(
        after < Duration::from_secs(3),
        "answered {after:?} after SIGTERM"
    );
}

#[test]
fn a_follower_that_no_longer_hears_a_leader_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1(dir);
    assert_eq!(http(&nodes[2].url, "GET", "/readyz", b"").0, 200);
    kill9(&mut nodes[0]);
    kill9(&mut nodes[1]);
    // Node 3 cannot win an election alone; within a few election timeouts
    // it must stop calling itself ready.
    wait_for(30, "node 3 not ready", || {
        http(&nodes[2].url, "GET", "/readyz", b"").0 == 503
    });
    let (_, _, body) = http(&nodes[2].url, "GET", "/readyz", b"");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "unavailable", "{v}");
    // Its status and /metrics say the same: no leader it hears from (the
    // status went on naming the dead one).
    assert!(
        status_of(&nodes[2])["leader"].is_null(),
        "{}",
        status_of(&nodes[2])
    );
    assert_eq!(metric(&nodes[2], "kvr_raft_has_leader"), 0);
    assert_eq!(metric(&nodes[2], "kvr_raft_is_leader"), 0);
}

/// README: a write sent to a follower is answered at most half a second
/// after the leader's own bound (7 s with the default election timeouts),
/// also when the leader does not answer at all (here: paused by SIGSTOP
/// after it took the write); the follower used to wait 10 s. Sent again
/// with its key once the leader is back, the write is applied once.
#[test]
fn a_follower_gives_up_on_a_paused_leader_within_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    // Through the follower once, so its way to the leader is open.
    put_taken(&nodes[1].url, "warm", "warm-1");
    let pause = |sig: &str| signal(&nodes[..1], sig);
    pause("-STOP");
    let started = Instant::now();
    let (code, _, body) = put_with_key(&nodes[1].url, "paused", "paused-1");
    let took = started.elapsed();
    pause("-CONT");
    // Unknown (the leader may have proposed it) or, had the follower
    // already turned to a new leader, applied; never a hang past the bound.
    // On a loaded machine the request may reach the follower after it
    // counted the leader silent or began an election: then it is refused
    // at once, never forwarded (`unavailable`, also right).
    assert!(
        code == 200
            || (code == 503 && ["outcome_unknown", "unavailable"].contains(&&*error_code(&body))),
        "{code} {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        took < Duration::from_millis(9_500),
        "answered after {took:?}"
    );
    // Sent again as a client does: until it is taken (right after the
    // pause the follower may still count the leader silent, or an
    // election may run: 503 `unavailable`, not applied).
    let mut body = Vec::new();
    wait_for(20, "the write sent again to be taken", || {
        let (code, _, answer) = put_with_key(&nodes[1].url, "paused", "paused-1");
        body = answer;
        assert!(
            code == 200 || (code == 503 && error_code(&body) == "unavailable"),
            "{code} {}",
            String::from_utf8_lossy(&body)
        );
        code == 200
    });
    let revision = |body: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["revision"].as_u64()
    };
    let first = revision(&body);
    let (code, _, again) = put_with_key(&nodes[2].url, "paused", "paused-1");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&again));
    assert_eq!(revision(&again), first, "applied once");
    let (code, _, value) = http(&nodes[2].url, "GET", "/v1/kv/paused", b"");
    assert_eq!((code, value.as_slice()), (200, &b"x"[..]));
}

/// A leader whose followers are paused (SIGSTOP: as if cut off) takes no
/// writes once its lease is gone, and no longer names itself in
/// `X-Kvr-Leader` (it sent clients to itself for as long as the cut
/// lasted); it names itself again once they are back.
#[test]
fn a_leader_cut_off_from_its_majority_names_no_leader() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    let (code, headers, _) = http(&nodes[0].url, "GET", "/v1/stats", b"");
    assert_eq!(code, 200);
    assert_eq!(
        header(&headers, "x-kvr-leader"),
        Some(nodes[0].url.as_str())
    );
    let signal = |sig: &str| signal(&nodes[1..], sig);
    signal("-STOP");
    // Longer than the maximum election timeout (1 s by default).
    std::thread::sleep(Duration::from_millis(1500));
    let (code, headers, body) = put_with_key(&nodes[0].url, "cut", "cut-1");
    assert_eq!(
        (code, error_code(&body)),
        (503, "unavailable".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(header(&headers, "x-kvr-leader"), None);
    signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, headers, _) = http(&nodes[0].url, "GET", "/v1/stats?consistency=stale", b"");
        assert_eq!(code, 200);
        if header(&headers, "x-kvr-leader").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no leader named after the cut");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SPEC: without a reachable leader, writes and linearizable reads get
/// 503 `unavailable` (never proposed). A follower whose leader and the
/// other follower are paused (SIGSTOP: hung, or cut off) answers at once,
/// once it has heard nothing from the leader for longer than an election
/// takes, instead of forwarding each request and waiting out its bound
/// (7.5 s) to answer `outcome_unknown`; a read is never `outcome_unknown`.
/// Nothing it refused is applied once the others are back.
#[test]
fn a_follower_cut_off_from_a_silent_leader_answers_unavailable_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    let (code, headers, body) = put_with_key(&nodes[2].url, "warm", "warm-1");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&headers, "x-kvr-leader"),
        Some(nodes[0].url.as_str())
    );
    let signal = |sig: &str| signal(&nodes[..2], sig);
    signal("-STOP");
    // Longer than the maximum election timeout (1 s by default).
    std::thread::sleep(Duration::from_millis(1500));
    for attempt in 0..3 {
        let started = Instant::now();
        let (code, headers, body) = put_with_key(&nodes[2].url, "refused", &format!("r-{attempt}"));
        let took = started.elapsed();
        // Nor is the client sent to the silent leader.
        assert_eq!(header(&headers, "x-kvr-leader"), None);
        assert_eq!(
            (code, error_code(&body)),
            (503, "unavailable".to_string()),
            "{}",
            String::from_utf8_lossy(&body)
        );
        // At once: well under the 7.5 s of a forward waited out (3 s, not
        // 1 s, for a loaded machine's pauses).
        assert!(took < Duration::from_secs(3), "answered after {took:?}");
    }
    let started = Instant::now();
    let (code, _, body) = http(&nodes[2].url, "GET", "/v1/kv/warm", b"");
    assert_eq!(
        (code, error_code(&body)),
        (503, "unavailable".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    signal("-CONT");
    wait_for(20, "a write through node 3", || {
        put_with_key(&nodes[2].url, "after", "after-1").0 == 200
    });
    assert_eq!(http(&nodes[2].url, "GET", "/v1/kv/refused", b"").0, 404);
}

/// A member restarted alone after the whole cluster died knows the leader
/// of its last term from its saved vote; once an election timeout has
/// passed without a word from it, that leader is no longer named: not in
/// `X-Kvr-Leader` (clients were sent to a dead node), the status or
/// `kvr_raft_has_leader`, which said so while `/readyz` said otherwise.
/// Its refusals count the leader's silence from its start, not through
/// the seconds it was down.
#[test]
fn a_member_restarted_alone_names_no_leader_it_has_not_heard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1(dir);
    put_taken(&nodes[0].url, "before", "before-1");
    // Node 3 has heard from its leader: it knows it from its vote.
    wait_for(10, "node 3 to hear from node 1", || {
        status_of(&nodes[2])["leader"]["id"] == 1
    });
    for node in &mut nodes {
        kill9(node);
    }
    let addrs = (
        nodes[2].url.trim_start_matches("http://").to_string(),
        nodes[2].raft.clone(),
    );
    // Down for a while: its silence counts from its start, not from the
    // last word it had before.
    std::thread::sleep(Duration::from_secs(4));
    let spawned = Instant::now();
    let alone = spawn_at(dir, "n3", (&addrs.0, &addrs.1), &[], &[]);
    // Longer than the maximum election timeout (1 s by default).
    std::thread::sleep(Duration::from_millis(1500));
    let (code, headers, body) = http(&alone.url, "GET", "/v1/cluster", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "x-kvr-leader"), None);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(status["leader"].is_null(), "{status}");
    assert_eq!(metric(&alone, "kvr_raft_has_leader"), 0);
    assert_eq!(http(&alone.url, "GET", "/readyz", b"").0, 503);
    // A write is refused at once, never proposed, and sends the client
    // nowhere.
    let started = Instant::now();
    let (code, headers, body) = put_with_key(&alone.url, "refused", "refused-1");
    assert_eq!(
        (code, error_code(&body)),
        (503, "unavailable".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(header(&headers, "x-kvr-leader"), None);
    assert!(started.elapsed() < Duration::from_secs(3));
    let said = String::from_utf8_lossy(&body);
    let quiet_ms: u128 = said
        .split("no word from the cluster leader for ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        (1000..=spawned.elapsed().as_millis()).contains(&quiet_ms),
        "silent for {quiet_ms} ms, started {} ms ago: {said}",
        spawned.elapsed().as_millis()
    );
}

/// SPEC: stale reads are always answered locally, and a node's
/// `X-Kvr-Revision` never goes backwards across its restarts. A member
/// restarted alone after a `kill -9` of the whole cluster answers them at
/// once, at the revision it had: its unsynced commit index survives in the
/// page cache, and its boot record says no reboot came between
/// (`src/cluster/boot.rs`). It used to answer 503 until it heard from a
/// leader. Where a reboot came between (the record names another boot, as
/// after a power loss) it cannot know, and still waits for a leader. After
/// a clean stop (SIGTERM) its records are synced and trusted in any boot.
#[test]
fn a_member_restarted_alone_answers_stale_reads_unless_a_reboot_came_between() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1(dir);
    put_taken(&nodes[0].url, "before", "before-1");
    let revision = revision_of(&nodes[0], false);
    wait_for(10, "node 3 to apply the write", || {
        revision_of(&nodes[2], true) == revision
    });
    let record = dir.join("n3.redb.raft").join("boot");
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let this_boot = format!("boot {}\n", this_boot.trim());
    wait_for(10, "node 3 to record its boot", || {
        std::fs::read_to_string(&record).ok().as_deref() == Some(this_boot.as_str())
    });
    let addrs = addresses(&nodes);
    for node in &mut nodes {
        kill9(node);
    }
    let stale_read = |node: &Node| {
        let (code, headers, body) = http(&node.url, "GET", "/v1/kv/before?consistency=stale", b"");
        let served = header(&headers, "x-kvr-revision").map(|r| r.parse::<u64>().unwrap());
        (code, served, body)
    };
    let alone = |name: &str| spawn_at(dir, name, (&addrs[2].0, &addrs[2].1), &[], &[]);

    // Killed in this boot: answered at once, at the revision it had.
    let mut n3 = alone("n3");
    let (code, served, body) = stale_read(&n3);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"x");
    assert_eq!(served, Some(revision));
    assert_eq!(revision_of(&n3, true), revision);
    // Not ready: it has not heard from a leader.
    assert_eq!(http(&n3.url, "GET", "/readyz", b"").0, 503);
    kill9(&mut n3);

    // As after a reboot: its unsynced records may be older than what it
    // served, so it answers no stale read before a leader's read index.
    std::fs::write(&record, "boot another-boot\n").unwrap();
    let mut n3 = alone("n3");
    let (code, _, body) = stale_read(&n3);
    assert_eq!(
        (code, error_code(&body)),
        (503, "unavailable".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Killed again before it caught up: still not trusted.
    kill9(&mut n3);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        "boot another-boot\n"
    );
    let mut n3 = alone("n3");
    assert_eq!(stale_read(&n3).0, 503);

    // With its cluster back it catches up and records this boot; a clean
    // stop then records `clean`, which any boot trusts.
    let n1 = spawn_at(dir, "n1", (&addrs[0].0, &addrs[0].1), &[], &[]);
    let n2 = spawn_at(dir, "n2", (&addrs[1].0, &addrs[1].1), &[], &[]);
    wait_for(20, "node 3 to catch up", || stale_read(&n3).0 == 200);
    wait_for(10, "node 3 to record its boot", || {
        std::fs::read_to_string(&record).ok().as_deref() == Some(this_boot.as_str())
    });
    assert!(sigterm(&mut n3).success());
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "clean\n");
    drop((n1, n2));
    let n3 = alone("n3");
    let (code, served, body) = stale_read(&n3);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(served, Some(revision));
    // Replaced at the start: a power loss from now on must not find it.
    assert_eq!(std::fs::read_to_string(&record).unwrap(), this_boot);
}

/// SPEC: "writes resume within 3 s of the leader's death". A leader that
/// hangs (SIGSTOP) with writes forwarded to it in flight: once the
/// survivors have elected a new leader, the other survivor forwards new
/// writes and confirms new reads there at once; they used to queue behind
/// the rounds in flight to the hung leader until those gave up (7.5 s).
/// The writes in flight are answered, and sent again with their key they
/// are applied once.
#[test]
fn a_hung_leader_does_not_hold_the_requests_behind_those_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    for node in &nodes[1..] {
        // Each follower's way to the leader is open.
        let key = format!("warm-{}", node.name);
        put_taken(&node.url, &key, &key);
    }
    let signal = |sig: &str| signal(&nodes[..1], sig);
    signal("-STOP");
    let in_flight: Vec<_> = nodes[1..]
        .iter()
        .flat_map(|node| (0..4).map(move |i| (node.url.clone(), format!("hung-{}-{i}", node.name))))
        .map(|(url, key)| {
            std::thread::spawn(move || {
                let (code, _, body) = put_with_key(&url, &key, &key);
                (key, code, body)
            })
        })
        .collect();
    let survivor_leader = || {
        let id = status_of(&nodes[1])["leader"]["id"].as_u64();
        (id == status_of(&nodes[2])["leader"]["id"].as_u64())
            .then_some(id)
            .flatten()
    };
    wait_for(10, "a new leader", || {
        survivor_leader().is_some_and(|id| id != 1)
    });
    let leader = survivor_leader().unwrap();
    let (new_leader, follower) = if status_of(&nodes[1])["node_id"] == leader {
        (&nodes[1], &nodes[2])
    } else {
        (&nodes[2], &nodes[1])
    };
    let started = Instant::now();
    put_taken(&follower.url, "fresh", "fresh-1");
    for node in [follower, new_leader] {
        let (code, _, body) = http(&node.url, "GET", "/v1/kv/fresh", b"");
        assert_eq!((code, body.as_slice()), (200, &b"x"[..]));
    }
    let took = started.elapsed();
    // Well under the 7.5 s a write forwarded to the hung leader would
    // wait (6 s, not 3 s, for a loaded machine's fsyncs and pauses).
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
    signal("-CONT");
    for handle in in_flight {
        let (key, code, body) = handle.join().unwrap();
        // Applied; unknown (sent to the hung leader); or refused before it
        // was sent, the leader being silent by then.
        let answered = code == 200
            || (code == 503 && ["outcome_unknown", "unavailable"].contains(&&*error_code(&body)));
        assert!(answered, "{key}: {code} {}", String::from_utf8_lossy(&body));
        let (again, _, body_again) = put_with_key(&new_leader.url, &key, &key);
        assert_eq!(again, 200, "{}", String::from_utf8_lossy(&body_again));
        if code == 200 {
            assert_eq!(body, body_again, "{key} applied once");
        }
    }
}

/// SIGTERM on a follower whose leader hangs: linearizable reads waiting
/// for the leader's read index are answered 503 `unavailable` (they were
/// cut without a response when the node's drain ran out), or 200 when the
/// other two elected a leader meanwhile, and the node exits 0 within 5 s.
#[test]
fn sigterm_on_a_follower_answers_the_reads_waiting_for_a_hung_leader() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = led_by_node_1(dir);
    put_taken(&nodes[1].url, "k", "k-1");
    signal(&nodes[..1], "-STOP");
    let readers: Vec<_> = ["/v1/kv/k", "/v1/stats"]
        .into_iter()
        .map(|path| {
            let url = nodes[1].url.clone();
            std::thread::spawn(move || http(&url, "GET", path, b""))
        })
        .collect();
    // Both readers connected (and the scrape's connection), then a moment
    // for their requests to be read: a loaded machine could take longer
    // than a fixed sleep to accept them, and a connection not yet read is
    // closed by the stop without an answer.
    wait_for(10, "both reads taken", || {
        metric(&nodes[1], "kvr_connections_open") >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let status = sigterm(&mut nodes[1]);
    let exited = signalled.elapsed();
    signal(&nodes[..1], "-CONT");
    assert_eq!(status.code(), Some(0), "{}", stderr_of(dir, "n2"));
    assert!(
        exited < Duration::from_secs(5),
        "exited {exited:?} after SIGTERM"
    );
    for (path, reader) in ["/v1/kv/k", "/v1/stats"].into_iter().zip(readers) {
        let (code, _, body) = reader.join().expect("an answer, not a cut connection");
        let text = String::from_utf8_lossy(&body);
        if code == 200 {
            // The other two elected a leader while this node drained (a
            // loaded machine stretches the drain past an election
            // timeout), and its read index served the read: a right
            // answer too.
            let right = match path {
                "/v1/kv/k" => text == "k-1",
                _ => serde_json::from_slice::<serde_json::Value>(&body).unwrap()["revision"] == 2,
            };
            assert!(right, "{path}: {text}");
        } else {
            assert_eq!(
                (code, error_code(&body)),
                (503, "unavailable".to_string()),
                "{path}: {text}"
            );
        }
    }
}

/// A leader that is stopped (`kill -STOP`: it still accepts connections)
/// is passed over by the CLI's retries: a follower answers the first try
/// (`outcome_unknown` or `unavailable`: it could not reach the leader),
/// and a retry sent to the stopped leader waited for the whole
/// `--timeout` (exit 5 after 15 s) while the other two elected a leader
/// and took writes within seconds. Now a member must answer `/healthz`
/// within a second before a retry goes to it.
#[test]
fn a_stopped_leader_is_passed_over_by_the_clis_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    signal(&nodes[..1], "-STOP");
    let list = format!("{},{},{}", nodes[1].url, nodes[2].url, nodes[0].url);
    let put = kvr(
        dir,
        &["--server", &list, "--timeout", "15", "put", "after", "stop"],
    );
    let get = kvr(dir, &["--server", &list, "--timeout", "15", "get", "after"]);
    signal(&nodes[..1], "-CONT");
    assert_ok(&put);
    assert_ok(&get);
    assert_eq!(get.stdout, b"stop");
}

/// The same with the stopped leader first in `--server`: the first try
/// went to it and waited out the whole `--timeout` (exit 5). The first
/// server a command asks, when it has others, must answer `/healthz`
/// within a second first.
#[test]
fn a_stopped_member_first_in_the_list_is_passed_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    signal(&nodes[..1], "-STOP");
    let list = format!("{},{},{}", nodes[0].url, nodes[1].url, nodes[2].url);
    let put = kvr(
        dir,
        &["--server", &list, "--timeout", "15", "put", "first", "stop"],
    );
    let get = kvr(dir, &["--server", &list, "--timeout", "15", "get", "first"]);
    signal(&nodes[..1], "-CONT");
    assert_ok(&put);
    assert_ok(&get);
    assert_eq!(get.stdout, b"stop");
}

/// The same with a `--timeout` shorter than the election takes: the
/// command may end before a new leader answers, but then it names the
/// refusals it met (not applied), not "cannot reach any kvr server" of
/// members that answered (found by an audit: the last round's probe of
/// the stopped member took what was left, and the others were passed
/// over too); and it keeps to `--timeout` (it ran 1-2 s past it).
#[test]
fn a_short_timeout_past_a_stopped_first_member_names_the_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    signal(&nodes[..1], "-STOP");
    std::thread::sleep(Duration::from_millis(200));
    let list = format!("{},{},{}", nodes[0].url, nodes[1].url, nodes[2].url);
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let started = std::time::Instant::now();
        let put = kvr(
            dir,
            &[
                "--server",
                &list,
                "--timeout",
                "2",
                "put",
                &format!("short{i}"),
                "v",
            ],
        );
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&put.stderr).to_string();
        assert!(!err.contains("cannot reach any"), "{err}");
        assert!(matches!(put.status.code(), Some(0 | 5)), "{err}");
        assert!(took < Duration::from_millis(2900), "{took:?}: {err}");
        outcomes.push((put.status.code(), err));
    }
    signal(&nodes[..1], "-CONT");
    eprintln!("{outcomes:?}");
}

/// A follower stopped (SIGSTOP) while clients send it writes they then
/// give up on: when it runs again, it reads its leader's heartbeats that
/// waited in its sockets, and then those writes. It passed them on, and
/// applied seconds late they overwrote the writes acknowledged meanwhile
/// through the leader (found by an audit: 4 of 6 keys, after a 10 s stop;
/// a 3 s stop did not show it here). A node that stood still for longer
/// than an election timeout passes on no write it read then: each
/// acknowledged value stays.
#[test]
fn writes_that_waited_in_a_stopped_follower_do_not_overwrite_later_ones() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = led_by_node_1(dir);
    let follower = &nodes[1];
    signal(std::slice::from_ref(follower), "-STOP");
    let addr = follower.url.trim_start_matches("http://").to_string();
    // Clients that send a write to the stopped node and give up.
    let mut gave_up = Vec::new();
    for i in 0..6 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        let body = "first";
        write!(
            c,
            "PUT /v1/kv/late{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        gave_up.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(gave_up);
    // Acknowledged through the leader meanwhile.
    for i in 0..6 {
        let (code, _, body) = http(&nodes[0].url, "PUT", &format!("/v1/kv/late{i}"), b"second");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }
    std::thread::sleep(Duration::from_secs(10));
    signal(std::slice::from_ref(follower), "-CONT");
    // Long enough for the waiting writes to have been passed on, if they
    // were going to be.
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..6 {
        let (code, _, body) = http(&nodes[0].url, "GET", &format!("/v1/kv/late{i}"), b"");
        assert_eq!(code, 200);
        assert_eq!(
            String::from_utf8_lossy(&body),
            "second",
            "key late{i}: a write its client gave up on overwrote an acknowledged one"
        );
    }
    // The node serves writes again.
    wait_for(10, "the follower to take writes", || {
        http(&follower.url, "PUT", "/v1/kv/after", b"v").0 == 200
    });
}
