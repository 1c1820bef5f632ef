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

/// `kvr serve` on its own, killed when dropped.
struct Standalone {
    child: Child,
    url: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn standalone(dir: &Path) -> Standalone {
    let mut child = kvr_cmd(dir)
        .args([
            "--db",
            "alone.redb",
            "serve",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    Standalone { child, url }
}

proptest! {
    #![proptest_config(cli_parity::config(1))]

    #[test]
    fn a_cluster_answers_random_commands_as_one_server_does(
        steps in proptest::collection::vec(cli_parity::step(), 40..80)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let nodes = three(dir, &[]);
        let leader = leader_index(&nodes);
        let follower = &nodes[(leader + 1) % 3];
        let alone = standalone(dir);
        cli_parity::same_answers(
            dir,
            &["--server", &alone.url],
            &["--server", &follower.url],
            &steps,
        )?;
    }
}
