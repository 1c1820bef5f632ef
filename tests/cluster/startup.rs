//! Starting a member: what `serve` prints and what it refuses once it
//! knows which cluster its file and its `--join` targets belong to.

use super::*;

/// `kvr --db NAME.redb serve --listen LISTEN --raft-listen RAFT ARGS`,
/// to its end (at most `secs`).
fn serve_to_end(dir: &Path, name: &str, (listen, raft): (&str, &str), args: &[&str]) -> Output {
    let mut cmd = kvr_cmd(dir);
    cmd.args(member_args(name, listen, raft)).args(args);
    super::tls::run(cmd, 30)
}

#[test]
fn join_on_a_member_of_another_cluster_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Cluster A: a1 and a2; cluster B: b1.
    let a1 = spawn(dir, "a1", &["--cluster-init"], &[]);
    let mut a2 = spawn(dir, "a2", &["--join", &a1.url], &[]);
    wait_for(30, "two voters", || voters(&a1) == 2);
    let b1 = spawn(dir, "b1", &["--cluster-init"], &[]);
    let (a_id, b_id) = (
        status_of(&a1)["cluster_id"].clone(),
        status_of(&b1)["cluster_id"].clone(),
    );
    let a_id = a_id.as_str().unwrap().to_string();
    let b_id = b_id.as_str().unwrap().to_string();
    assert_ne!(a_id, b_id);
    assert_eq!(sigterm(&mut a2).code(), Some(0));
    let listen = a2.url.trim_start_matches("http://").to_string();
    let raft = a2.raft.clone();

    // Node 2 of A asked to join B: refused, naming both clusters.
    let out = serve_to_end(dir, "a2", (&listen, &raft), &["--join", &b1.url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&a_id) && err.contains(&b_id), "{err}");
    assert!(err.contains("node 2"), "{err}");
    assert_eq!(status_of(&b1)["nodes"].as_array().unwrap().len(), 1);

    // No target answers (a whole cluster restarting, say): it serves its
    // own cluster and says it could not check.
    let node = spawn_at(
        dir,
        "a2",
        (&listen, &raft),
        &["--join", "http://127.0.0.1:1"],
        &[],
    );
    wait_for(30, "a2 ready", || {
        http(&node.url, "GET", "/readyz", b"").0 == 200
    });
    assert_eq!(status_of(&node)["cluster_id"], a_id.as_str());
    assert!(
        stderr_of(dir, "a2").contains("no member named there"),
        "{}",
        stderr_of(dir, "a2")
    );
    drop(node);

    // --join naming its own cluster is ignored.
    let node = spawn_at(dir, "a2", (&listen, &raft), &["--join", &a1.url], &[]);
    wait_for(30, "a2 ready", || {
        http(&node.url, "GET", "/readyz", b"").0 == 200
    });
    assert_eq!(status_of(&node)["node_id"], 2);
    assert!(put(dir, &node, "k", "v").status.success());
    // And says so, as a restart with --cluster-init does.
    let said = stderr_of(dir, "a2");
    assert!(
        said.contains("kvr serve: --join ignored: ")
            && said.contains("a2.redb is node 2 of cluster"),
        "{said}"
    );
    drop(node);
    let node = spawn_at(dir, "a2", (&listen, &raft), &["--cluster-init"], &[]);
    assert_eq!(status_of(&node)["node_id"], 2);
    let said = stderr_of(dir, "a2");
    assert!(
        said.contains("kvr serve: --cluster-init ignored: "),
        "{said}"
    );
}

#[test]
fn the_raft_line_names_the_bound_address_not_the_advertised_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = spawn(
        dir,
        "n1",
        &[
            "--cluster-init",
            "--advertise-raft",
            "127.0.0.1:5555",
            "--advertise-url",
            "http://127.0.0.1:5556",
        ],
        &[],
    );
    assert_ne!(node.raft, "127.0.0.1:5555");
    assert!(
        TcpStream::connect(&node.raft).is_ok(),
        "nothing listens on {}",
        node.raft
    );
    // The membership keeps the advertised address.
    assert_eq!(status_of(&node)["nodes"][0]["raft"], "127.0.0.1:5555");
}

/// SIGTERM or SIGINT while a node waits for a member to add it (none
/// answers its `--join`): it stops with exit 0 within 5 s, as every node
/// does (SPEC), instead of dying of the signal; started again, it waits
/// again.
#[test]
fn a_node_waiting_to_join_stops_on_sigterm_with_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for signal in ["-TERM", "-INT"] {
        let node = spawn(dir, "j1", &["--join", "http://127.0.0.1:1"], &[]);
        wait_for(10, "the join to wait", || {
            stderr_of(dir, "j1").contains("waiting for a member to add this node")
        });
        // Meanwhile its listener answers (it left connections unread, so
        // a health check hung until the join ended): the process is
        // there, it is not ready, and it serves nothing yet.
        let (code, _, body) = http(&node.url, "GET", "/healthz", b"");
        assert_eq!((code, body.as_slice()), (200, &b"ok"[..]));
        let (code, _, body) = http(&node.url, "GET", "/readyz", b"");
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("no member has added this node yet"), "{body}");
        let (code, headers, body) = http(&node.url, "PUT", "/v1/kv/k", b"v");
        assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("\"unavailable\""));
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        let mut node = node;
        let pid = node.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = node.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{signal}: still running after 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = stderr_of(dir, "j1");
        assert_eq!(status.code(), Some(0), "{signal}: {status:?}; {err}");
        assert!(
            err.contains("stopping before this node joined its cluster"),
            "{err}"
        );
        // The file it created for the join goes with it.
        assert!(
            !dir.join("j1.redb").exists(),
            "{signal}: the new file stayed"
        );
    }
}

/// A member's database file deleted with its Raft log left beside it
/// (`NAME.redb.raft`): a new node on that path starts from its own file,
/// not from the log of the node that is gone. Both `--cluster-init` and
/// `--join` took the old log: a new cluster held the old one's data and
/// membership (members that were not there, so no leader and no write),
/// and a joiner of another cluster replayed its old cluster's writes; so
/// did any command on a new standalone file there (`kvr --db`).
#[test]
fn a_raft_log_left_by_a_deleted_file_is_not_taken_by_a_new_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    three_killed_after_a_write(dir, "old-key", "old");
    let left = dir.join("n3.redb.raft");
    assert!(left.join("vote").exists());

    // A standalone file made on the path: the old log is not applied to
    // it (it took the old node's writes), and `check` says whose it is.
    std::fs::remove_file(dir.join("n3.redb")).unwrap();
    assert_ok(&kvr(dir, &["--db", "n3.redb", "put", "alone-key", "v"]));
    let stats = kvr(dir, &["--db", "n3.redb", "stats"]);
    assert_ok(&stats);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (stats["keys"].as_u64(), stats["revision"].as_u64()),
        (Some(1), Some(1))
    );
    let check = kvr(dir, &["--db", "n3.redb", "check"]);
    assert_ok(&check);
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("not its own"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A new cluster on the path: its own data only, itself its only
    // member, and it takes writes.
    std::fs::remove_file(dir.join("n3.redb")).unwrap();
    let mut fresh = spawn(dir, "n3", &["--cluster-init"], &[]);
    let status = status_of(&fresh);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(revision_of(&fresh, false), 0);
    assert_ok(&put(dir, &fresh, "new-key", "new"));
    assert_eq!(get(dir, &fresh, "old-key").status.code(), Some(1));
    assert!(
        stderr_of(dir, "n3").contains("removed"),
        "{}",
        stderr_of(dir, "n3")
    );
    fresh.child.kill().unwrap();
    fresh.child.wait().unwrap();

    // A joiner of another cluster: that cluster's data only.
    let other = spawn(dir, "m1", &["--cluster-init"], &[]);
    assert_ok(&put(dir, &other, "other-key", "other"));
    std::fs::remove_file(dir.join("n3.redb")).unwrap();
    let joiner = spawn(dir, "n3", &["--join", &other.url], &[]);
    wait_for(20, "the joiner to be ready", || {
        http(&joiner.url, "GET", "/readyz", b"").0 == 200
    });
    assert_eq!(get(dir, &joiner, "other-key").stdout, b"other");
    assert_eq!(get(dir, &joiner, "new-key").status.code(), Some(1));
    assert_eq!(
        revision_of(&joiner, true),
        revision_of(&other, false),
        "the joiner replayed writes of another cluster"
    );
}

/// Three members that applied the write KEY=VALUE, then all killed
/// (`kill -9`); their addresses, to start them again on.
fn three_killed_after_a_write(dir: &Path, key: &str, value: &str) -> Vec<(String, String)> {
    let mut nodes = three(dir, &[]);
    assert_ok(&put(dir, &nodes[0], key, value));
    let revision = revision_of(&nodes[0], false);
    wait_for(10, "node 3 to apply the write", || {
        revision_of(&nodes[2], true) == revision
    });
    let places = addresses(&nodes);
    for node in &mut nodes {
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }
    places
}

/// The bytes of each file in `dir`, by name.
fn files_of(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// A Raft log records whose it is (`DB.raft/member`): another member's
/// file copied over a member's (`cp n2.redb n3.redb`, a restore of the
/// wrong file) took `n3.redb.raft` as its own, and started as node 2 with
/// node 3's log and votes. Every command refuses now, exit 3, changing
/// nothing; the log still serves the file it came from. A log from before
/// the record (an older kvr's) is taken and recorded.
#[test]
fn a_raft_log_is_not_taken_by_another_members_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let places = three_killed_after_a_write(dir, "k", "v");
    let log = dir.join("n3.redb.raft");
    assert!(
        log.join("member").exists(),
        "a member records its log's owner"
    );
    std::fs::rename(dir.join("n3.redb"), dir.join("n3-own.redb")).unwrap();
    std::fs::copy(dir.join("n2.redb"), dir.join("n3.redb")).unwrap();
    let before = files_of(&log);
    let refusal = "is the Raft log of node 3 of cluster";
    for args in [
        &["--db", "n3.redb", "stats"][..],
        &["--db", "n3.redb", "get", "k"][..],
        &["--db", "n3.redb", "put", "x", "y"][..],
    ] {
        let out = kvr(dir, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(refusal), "{args:?}: {said}");
        assert_eq!(files_of(&log), before, "{args:?} changed the log");
    }
    let (listen, raft) = &places[2];
    let args = member_args("n3", listen, raft);
    let out = kvr(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(refusal), "{said}");
    assert_eq!(files_of(&log), before, "serve changed the log");
    let check = kvr(dir, &["--db", "n3.redb", "check"]);
    assert_eq!(check.status.code(), Some(3));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains(refusal), "{said}");

    // Its own file back, with the log's record gone (an older kvr's log):
    // the node starts, catches up, and records the log's owner again.
    std::fs::rename(dir.join("n3-own.redb"), dir.join("n3.redb")).unwrap();
    std::fs::remove_file(log.join("member")).unwrap();
    let mut restarted = Vec::new();
    for (i, name) in ["n1", "n2", "n3"].iter().enumerate() {
        let (listen, raft) = &places[i];
        restarted.push(spawn_at(dir, name, (listen, raft), &[], &[]));
    }
    wait_for(20, "node 3 to be ready", || {
        http(&restarted[2].url, "GET", "/readyz", b"").0 == 200
    });
    assert_eq!(get(dir, &restarted[2], "k").stdout, b"v");
    assert!(log.join("member").exists());
}

/// A copy of a running member's files, started elsewhere with the real
/// node's raft address advertised, is refused before it stands for
/// election (exit 3): an audit saw such a copy become a leader no client
/// reached while the cluster took no writes. The cluster goes on. It
/// prints no listening line (it printed both before it was refused).
#[test]
fn a_copy_of_a_running_members_files_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = three(dir, &[]);
    assert_ok(&put(dir, &nodes[0], "k", "v"));
    let (listen, raft) = (
        nodes[2].url.trim_start_matches("http://").to_string(),
        nodes[2].raft.clone(),
    );
    assert_eq!(sigterm(&mut nodes[2]).code(), Some(0));
    std::fs::copy(dir.join("n3.redb"), dir.join("c3.redb")).unwrap();
    std::fs::create_dir(dir.join("c3.redb.raft")).unwrap();
    for f in std::fs::read_dir(dir.join("n3.redb.raft")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join("c3.redb.raft").join(f.file_name())).unwrap();
    }
    nodes[2] = spawn_at(dir, "n3", (&listen, &raft), &[], &[]);
    wait_for(15, "node 3 to be back", || {
        revision_of(&nodes[2], true) == revision_of(&nodes[0], false)
    });

    let out = serve_to_end(
        dir,
        "c3",
        ("127.0.0.1:0", "127.0.0.1:0"),
        &["--advertise-raft", &raft, "--quiet"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("already runs at raft address {raft}"))
            && err.contains("copy of a running member"),
        "{err}"
    );
    // Nothing told a script it serves: the listening lines come only
    // after the start-up checks (they came first).
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("listening"), "{said}");
    assert_ok(&put(dir, &nodes[0], "after", "1"));
    assert_eq!(get(dir, &nodes[2], "k").stdout, b"v");
}

/// `--join` given a member's raft address instead of its URL says so (exit
/// 2): it said `unauthorized: … this node belongs to cluster C, not ""`
/// (found by an audit). Nothing is left of the new file.
#[test]
fn a_join_at_a_raft_listener_says_to_give_the_members_url() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a1 = spawn(dir, "a1", &["--cluster-init"], &[]);
    let raft_url = format!("http://{}", a1.raft);
    let out = serve_to_end(
        dir,
        "n2",
        ("127.0.0.1:0", "127.0.0.1:0"),
        &["--join", &raft_url, "--quiet"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--join {raft_url} is a raft listener"))
            && err.contains("its --listen"),
        "{err}"
    );
    assert!(!dir.join("n2.redb").exists());
    assert_eq!(voters(&a1), 1);
}
