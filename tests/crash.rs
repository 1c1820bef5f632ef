//! Real crashes: a `kvr batch` child killed with SIGKILL mid-way leaves all of
//! its keys or none, with the revision to match, and the file reopens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::Env;

const LINES: usize = 500_000;

fn batch_input(tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(LINES * 60);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ tag.len() as u64;
    for i in 0..LINES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(out, "{{\"key\":\"{tag}/{x:016x}\",\"value\":\"v{i}\"}}").unwrap();
    }
    out
}

#[test]
fn batch_killed_midway_is_all_or_nothing() {
    let env = Env::new();
    env.kvr(["put", "before", "1"]).ok();
    let mut outcomes = Vec::new();
    // Round 0 runs to the end and gives the batch's duration T; the others are
    // killed at fractions of T: while reading input, while writing the
    // transaction, and around the commit.
    let mut full = Duration::ZERO;
    for (round, fraction) in [
        None,
        Some(0.05),
        Some(0.5),
        Some(0.9),
        Some(0.97),
        Some(1.02),
    ]
    .into_iter()
    .enumerate()
    {
        let tag = format!("r{round}");
        let input = batch_input(&tag);
        let before = env.stats();
        let mut cmd = env.kvr(["batch"]).cmd;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let spawned = Instant::now();
        let status = match fraction {
            None => {
                let status = child.wait().unwrap();
                full = spawned.elapsed();
                assert!(status.success());
                status
            }
            Some(f) => {
                std::thread::sleep(full.mul_f64(f));
                let _ = child.kill();
                child.wait().unwrap()
            }
        };
        let _ = feeder.join();

        let started = Instant::now();
        let stats = env.stats();
        let reopen = started.elapsed();
        let keys = env
            .kvr(["range", "--keys-only", "--prefix", &format!("{tag}/")])
            .ok()
            .stdout_text()
            .lines()
            .count();
        let (b_keys, b_rev) = (
            before["keys"].as_u64().unwrap(),
            before["revision"].as_u64().unwrap(),
        );
        let (keys_now, rev_now) = (
            stats["keys"].as_u64().unwrap(),
            stats["revision"].as_u64().unwrap(),
        );
        if keys == 0 {
            assert_eq!(
                (keys_now, rev_now),
                (b_keys, b_rev),
                "round {round}: partial"
            );
        } else {
            assert_eq!(keys, LINES, "round {round}: a torn batch");
            assert_eq!(keys_now, b_keys + LINES as u64);
            assert_eq!(rev_now, b_rev + LINES as u64);
        }
        assert_eq!(env.kvr(["get", "before"]).ok().out.stdout, b"1");
        outcomes.push((fraction, status.success(), keys == LINES, reopen));
    }
    eprintln!(
        "(kill at fraction of T={full:?}, batch exited ok, batch visible, stats time after crash): {outcomes:?}"
    );
}
