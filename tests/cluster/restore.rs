//! A member's file after a `kill -9`, opened with `--db`: what it applied
//! is in its Raft log, not yet flushed, and every command sees it (SPEC:
//! reads work on a stopped member's file; the restore procedure after a
//! cluster lost its majority backs a survivor up with `--db`).

use super::*;

/// The bytes of every Raft log file of member `name`, by file name.
fn raft_log_files(dir: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> =
        std::fs::read_dir(dir.join(format!("{name}.redb.raft")))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
    files.sort();
    files
}

#[test]
fn a_killed_members_file_holds_what_it_applied_and_restores_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nodes = three(dir, &[]);
    let leader = &nodes[leader_index(&nodes)];
    for i in 0..30 {
        assert_ok(&put(dir, leader, &format!("k{i:02}"), &format!("v{i}")));
    }
    let lines: String = (30..40)
        .map(|i| format!("{{\"key\":\"k{i:02}\",\"value\":\"v{i}\"}}\n"))
        .collect();
    assert_ok(&kvr_with_input(
        dir,
        &["--server", &leader.url, "batch"],
        &lines,
    ));
    assert_ok(&kvr(dir, &["--server", &leader.url, "delete", "k05"]));
    let revision = revision_of(leader, false);
    assert_eq!(revision, 41);
    // Every member applied every write; then all three die at once, long
    // before a flush (every 30 s): the files hold none of the writes.
    for n in &nodes {
        wait_for(15, "every member to apply every write", || {
            revision_of(n, true) == revision
        });
    }
    let addrs = addresses(&nodes);
    drop(nodes);
    let log_before = raft_log_files(dir, "n2");

    // `kvr check` changes nothing, and says what the log holds beyond it.
    let file_before = std::fs::read(dir.join("n1.redb")).unwrap();
    let out = kvr(dir, &["--db", "n1.redb", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("n1.redb.raft holds") && err.contains("that n1.redb does not hold yet"),
        "{err}"
    );
    assert!(std::fs::read(dir.join("n1.redb")).unwrap() == file_before);

    // Reads of a survivor's file see every write, in a read-only open.
    let out = kvr(dir, &["--db", "n2.redb", "get", "k39"]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"v39");
    assert_eq!(
        kvr(dir, &["--db", "n2.redb", "get", "k05"]).status.code(),
        Some(1)
    );
    let out = kvr(dir, &["--db", "n2.redb", "stats"]);
    assert_ok(&out);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (stats["keys"].as_u64(), stats["revision"].as_u64()),
        (Some(39), Some(41))
    );
    // Writes are still refused, and the Raft log is as the node left it.
    let out = kvr(dir, &["--db", "n2.redb", "put", "x", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(raft_log_files(dir, "n2"), log_before);

    // The restore procedure from another survivor: backup, then a new
    // cluster on the backup, which holds every write.
    let out = kvr(dir, &["--db", "n3.redb", "backup", "new.redb"]);
    assert_ok(&out);
    let restored = spawn(dir, "new", &["--cluster-init"], &[]);
    assert_eq!(revision_of(&restored, false), revision);
    let out = kvr(dir, &["--server", &restored.url, "range", "--count"]);
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"count":39}"#
    );
    assert_eq!(get(dir, &restored, "k17").stdout, b"v17");

    // The members whose files the commands brought up to date start
    // again as members: a majority, the same data, and writes go on.
    let back: Vec<Node> = ["n1", "n2"]
        .iter()
        .zip(&addrs)
        .map(|(name, (listen, raft))| spawn_at(dir, name, (listen, raft), &[], &[]))
        .collect();
    wait_for(30, "a leader among the restarted members", || {
        back.iter().any(|n| status_of(n)["state"] == "leader")
    });
    let leader = &back[leader_index(&back)];
    assert_eq!(revision_of(leader, false), revision);
    assert_ok(&put(dir, leader, "after", "1"));
    for n in &back {
        wait_for(15, "both members to apply the new write", || {
            restarted_revision(n) == Some(revision + 1)
        });
        assert_eq!(get(dir, n, "k39").stdout, b"v39");
    }
}

/// Flips a byte in the payload of the `nth` record of member `name`'s
/// first Raft log segment (records: u32 length, u32 checksum, payload).
fn damage_raft_record(dir: &Path, name: &str, nth: usize) {
    let log = dir.join(format!("{name}.redb.raft"));
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let mut at = 0;
    for _ in 0..nth {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    bytes[at + 8 + len / 2] ^= 0x10;
    std::fs::write(&segments[0], bytes).unwrap();
}

/// A member whose Raft log holds a damaged record followed by records it
/// had synced (a disk fault, not a crash) does not start: cutting the log
/// there would drop entries it acknowledged. The way out its message gives
/// (remove it, move its files aside, join again) brings it back.
#[test]
fn a_member_with_a_damaged_raft_log_refuses_to_start_and_rejoins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (nodes, (listen, raft), id) = n2_stopped_after_writes(dir, 20);
    damage_raft_record(dir, "n2", 5);
    let log_before = raft_log_files(dir, "n2");

    let out = restart_n2_to_end(dir, (&listen, &raft));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("n2.redb.raft is damaged") && err.contains("kvr cluster remove"),
        "{err}"
    );
    // `kvr check` finds it, and changes nothing.
    let out = kvr(dir, &["--db", "n2.redb", "check"]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("problem: raft log") && said.contains("is damaged"),
        "{said}"
    );
    // After a clean stop its file holds every write it applied, which
    // reads need no log for; the log is left as it was.
    let out = kvr(dir, &["--db", "n2.redb", "get", "k01"]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"v1");
    assert_eq!(raft_log_files(dir, "n2"), log_before);

    // The other two go on; then the way out the message gives.
    let servers = format!("{},{}", nodes[0].url, nodes[2].url);
    let out = kvr(dir, &["--server", &servers, "put", "after", "1"]);
    assert_ok(&out);
    let out = kvr(
        dir,
        &["--server", &servers, "cluster", "remove", &id.to_string()],
    );
    assert_ok(&out);
    std::fs::rename(dir.join("n2.redb"), dir.join("old.redb")).unwrap();
    std::fs::rename(dir.join("n2.redb.raft"), dir.join("old.redb.raft")).unwrap();
    let back = spawn(dir, "n2", &["--join", &servers], &[]);
    let revision = revision_of(&nodes[0], false);
    wait_for(30, "the new member to catch up", || {
        revision_of(&back, true) == revision
    });
    assert_ne!(status_of(&back)["node_id"].as_u64(), Some(id));
    assert_eq!(get(dir, &back, "k01").stdout, b"v1");
    assert_eq!(get(dir, &back, "after").stdout, b"1");
}

/// A member whose Raft log directory is gone (only its database file was
/// kept or restored) does not start: with an empty log and no vote it
/// could elect a leader that lacks acknowledged writes (an audit lost one
/// that way). Its file and the missing directory are left as they were.
#[test]
fn a_member_whose_raft_log_is_gone_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (nodes, (listen, raft), id) = n2_stopped_after_writes(dir, 10);
    std::fs::rename(dir.join("n2.redb.raft"), dir.join("kept.raft")).unwrap();
    let range = || kvr(dir, &["--db", "n2.redb", "range"]).stdout;
    let data_before = range();
    assert!(!data_before.is_empty());

    let out = restart_n2_to_end(dir, (&listen, &raft));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("is node {id} of its cluster"))
            && err.contains("n2.redb.raft is missing or holds no vote")
            && err.contains(&format!("kvr cluster remove {id}")),
        "{err}"
    );
    assert!(
        !dir.join("n2.redb.raft").exists(),
        "a refused start made a log"
    );
    assert!(range() == data_before, "a refused start changed the data");
    // `kvr check` says so too (it said nothing of the missing log), and
    // changes nothing.
    let out = kvr(dir, &["--db", "n2.redb", "check"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("problem: raft log")
            && said.contains("n2.redb.raft is missing or holds no vote")
            && said.contains(&format!("kvr cluster remove {id}")),
        "{said}"
    );
    assert!(!dir.join("n2.redb.raft").exists(), "check made a log");

    // Put back as it was, the log lets it start and catch up.
    std::fs::rename(dir.join("kept.raft"), dir.join("n2.redb.raft")).unwrap();
    assert_ok(&kvr(dir, &["--db", "n2.redb", "check"]));
    let servers = format!("{},{}", nodes[0].url, nodes[2].url);
    assert_ok(&kvr(dir, &["--server", &servers, "put", "after", "1"]));
    let back = spawn_at(dir, "n2", (&listen, &raft), &[], &[]);
    let revision = revision_of(&nodes[0], false);
    wait_for(30, "the member to catch up", || {
        revision_of(&back, true) == revision
    });
    assert_eq!(get(dir, &back, "after").stdout, b"1");
}

/// Three members, `writes` keys written and applied on node 2, which is
/// then stopped cleanly: the nodes, node 2's addresses and its id.
fn n2_stopped_after_writes(dir: &Path, writes: usize) -> (Vec<Node>, (String, String), u64) {
    let mut nodes = three(dir, &[]);
    for i in 0..writes {
        assert_ok(&put(dir, &nodes[0], &format!("k{i:02}"), &format!("v{i}")));
    }
    let revision = revision_of(&nodes[0], false);
    wait_for(15, "node 2 to apply every write", || {
        revision_of(&nodes[1], true) == revision
    });
    let addresses = (
        nodes[1].url.trim_start_matches("http://").to_string(),
        nodes[1].raft.clone(),
    );
    let id = status_of(&nodes[1])["node_id"].as_u64().unwrap();
    assert_eq!(sigterm(&mut nodes[1]).code(), Some(0));
    (nodes, addresses, id)
}

/// Node 2 started again on its addresses, run to its end (at most 30 s).
fn restart_n2_to_end(dir: &Path, (listen, raft): (&str, &str)) -> Output {
    let mut restart = kvr_cmd(dir);
    restart.args(member_args("n2", listen, raft)).arg("--quiet");
    super::tls::run(restart, 30)
}
