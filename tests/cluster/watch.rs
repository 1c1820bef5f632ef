//! `kvr watch` through a failover (SPEC "Watch", issue 13): a watch on the
//! whole server list, connected to the leader, which is killed with
//! `kill -9` while writes go on through the survivors: it resumes on
//! another node and prints every event once, in order, no gap.

use super::*;

#[test]
fn cli_watch_follows_a_failover_without_dups_or_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = three(dir, &[]);
    // The leader first: the watch connects to it.
    let leader = leader_index(&nodes);
    let leader = nodes.remove(leader);
    let list = format!("{},{},{}", leader.url, nodes[0].url, nodes[1].url);
    let mut watch = kvr_cmd(dir)
        .args([
            "--server",
            &list,
            "--timeout",
            "3",
            "watch",
            "--from-revision",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut revisions = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let r = v["revision"].as_u64().unwrap();
            assert_eq!(v["key"], format!("k{r:03}"));
            revisions.push(r);
            if r == 60 {
                break;
            }
        }
        revisions
    });
    let put_range = |node: &Node, from: u64, to: u64| {
        for i in from..=to {
            let out = put(dir, node, &format!("k{i:03}"), "v");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    put_range(&leader, 1, 30);
    wait_for(15, "the followers to apply 30", || {
        nodes.iter().all(|n| revision_of(n, true) >= 30)
    });
    drop(leader); // kill -9
    // The CLI rides out the election (it retries until --timeout).
    put_range(&nodes[0], 31, 60);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the watch did not print revision 60"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(reader.join().unwrap(), (1..=60).collect::<Vec<u64>>());
}

/// SPEC "Watch": a node without a leader for longer than the maximum
/// election timeout ends its watches with
/// `{"error":"unavailable","next_revision":N}`, so clients resume on
/// another node (it never did: the stream stayed open on a node cut off
/// from the cluster).
#[test]
fn a_watch_on_a_node_left_without_a_leader_ends_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut nodes = three(dir, &[]);
    let leader = leader_index(&nodes);
    let follower = (leader + 1) % 3;
    assert!(put(dir, &nodes[leader], "a", "1").status.success());
    // A plain HTTP/1.1 stream, read to its end (chunk sizes and all).
    let addr = nodes[follower]
        .url
        .trim_start_matches("http://")
        .to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /v1/watch?progress=1 HTTP/1.1\r\nHost: kvr\r\n\r\n")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        for line in BufReader::new(conn).lines().map_while(|l| l.ok()) {
            if Instant::now() > deadline {
                break;
            }
            if line.starts_with('{') {
                let end = line.contains("\"error\"");
                lines.push(line);
                if end {
                    break;
                }
            }
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(500));
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != follower {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
    // The server ends the stream by itself (without it, the reader gives
    // up after 20 s and the last line is a progress line).
    let lines = lines.join().unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["error"], "unavailable", "{lines:?}");
    assert_eq!(last["next_revision"], 2, "{lines:?}");
}
