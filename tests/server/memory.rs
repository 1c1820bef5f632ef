//! Memory stays bounded on a database larger than the page cache:
//! `kvr serve --cache-mib 16` over a file of about 10x that size (167 MB), read and
//! written at random keys by several clients. The peak resident set
//! (VmHWM) must stay under the cache plus [`MARGIN_KIB`]; the measured
//! figures are in NOTES-prove.md, this only catches memory that grows
//! with the file.

use std::time::Duration;

use crate::support::*;

const CACHE_MIB: u64 = 16;
/// Room beyond the cache for the runtime, the allocator, buffers and
/// connections: measured peaks were far below (see NOTES-prove.md).
const MARGIN_KIB: u64 = 100 * 1024;
const KEYS: u64 = 120_000;
/// Requests per client thread, a bound on the test's time.
const REQUESTS: u64 = 1_500;

fn key(i: u64) -> String {
    format!("k{i:08}")
}

fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn resident_memory_stays_bounded_on_a_file_larger_than_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let value = "v".repeat(1000);
    let lines: String = (0..KEYS)
        .map(|i| format!("{{\"key\":\"{}\",\"value\":\"{value}\"}}\n", key(i)))
        .collect();
    let out = kvr(dir.path(), &["--db", "db.redb", "batch"], lines.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = std::fs::metadata(dir.path().join("db.redb")).unwrap().len();
    assert!(file > 6 * (CACHE_MIB << 20), "file of {file} bytes");
    let s = Server::start(dir.path(), &["--cache-mib", &CACHE_MIB.to_string()]);
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut x = t * 7919 + 1;
                for n in 0..REQUESTS {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = key((x >> 33) % KEYS);
                    let r = if n % 4 == 0 {
                        agent
                            .put(format!("{url}/v1/kv/{k}"))
                            .send(&b"w".repeat(1000)[..])
                    } else {
                        agent.get(format!("{url}/v1/kv/{k}")).call()
                    };
                    assert_eq!(r.unwrap().status(), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let peak = peak_kib(s.pid());
    eprintln!("file {file} bytes, cache {CACHE_MIB} MiB: peak RSS {peak} KiB");
    assert!(
        peak < CACHE_MIB * 1024 + MARGIN_KIB,
        "peak RSS {peak} KiB with a {CACHE_MIB} MiB cache"
    );
}
