//! `kvr bench` runs, reports, and touches only what it was given.

use crate::support::*;

fn report(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_on_the_engine_ignores_kvr_db() {
    let dir = tempfile::tempdir().unwrap();
    let out = kvr_cmd(dir.path())
        .env("KVR_DB", "mine.redb")
        .args([
            "bench",
            "--workload",
            "put",
            "--requests",
            "300",
            "--clients",
            "4",
            "--json",
        ])
        .output()
        .unwrap();
    let r = report(&out);
    assert_eq!(r["ok"], 300);
    for field in [
        "ops_per_sec",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
    ] {
        assert!(r[field].as_f64().unwrap() > 0.0, "{field}: {r}");
    }
    assert_eq!(r["errors_total"], 0);
    assert!(!dir.path().join("mine.redb").exists(), "KVR_DB was touched");
    // With --db it uses (and keeps) that file.
    let r = report(&kvr(
        dir.path(),
        &[
            "--db",
            "given.redb",
            "bench",
            "--workload",
            "batch",
            "--batch-size",
            "10",
            "--requests",
            "20",
            "--json",
        ],
        b"",
    ));
    assert_eq!(r["ok"], 20);
    let stats = kvr(dir.path(), &["--db", "given.redb", "stats"], b"");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["keys"].as_u64().unwrap() > 0);
}

#[test]
fn bench_against_a_server_writes_only_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.cli(&["put", "user:1", "alice"], b"");
    for workload in ["mixed", "get", "range", "healthz"] {
        let out = s.cli(
            &[
                "bench",
                "--workload",
                workload,
                "--prefill",
                "50",
                "--keyspace",
                "50",
                "--range-size",
                "5",
                "--requests",
                "200",
                "--clients",
                "8",
                "--json",
            ],
            b"",
        );
        let r = report(&out);
        assert_eq!(
            (r["ok"].as_u64(), r["errors_total"].as_u64()),
            (Some(200), Some(0)),
            "{r}"
        );
    }
    let keys = stdout(&s.cli(&["range", "--keys-only"], b""));
    for line in keys.lines() {
        assert!(
            line.contains("\"kvr-bench/") || line == "{\"key\":\"user:1\"}",
            "unexpected key {line}"
        );
    }
    assert_eq!(stdout(&s.cli(&["get", "user:1"], b"")), "alice");
    // The human report names ops/s and the percentiles.
    let out = s.cli(&["bench", "--workload", "healthz", "--requests", "50"], b"");
    let text = stdout(&out);
    assert!(text.contains("ops/s") && text.contains("p99.9"), "{text}");
}
