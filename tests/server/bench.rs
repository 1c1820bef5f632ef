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
    // A batch request writes --batch-size keys: both rates are reported.
    let (requests, keys) = (
        r["ops_per_sec"].as_f64().unwrap(),
        r["keys_per_sec"].as_f64().unwrap(),
    );
    assert!((keys - 10.0 * requests).abs() < 1e-6 * keys, "{r}");
    let out = kvr(
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
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("20 ok, 0 errors, ") && stdout(&out).contains(" requests/s, "),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(" keys/s\n"), "{}", stdout(&out));
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

/// Values bench cannot use are usage errors before anything is sent (they
/// ran and failed, exit 3, or measured nothing, exit 0).
#[test]
fn bench_refuses_sizes_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    for (args, said) in [
        (&["--key-size", "5000"][..], "--key-size must be 11 to 4096"),
        (&["--key-size", "5"], "--key-size must be 11 to 4096"),
        (
            &["--workload", "range", "--range-size", "20000"],
            "--range-size must be at most 10000",
        ),
        (&["--requests", "0"], "--requests must be at least 1"),
        // More clients than a machine's memory holds (100,000 took 23 GB).
        (&["--clients", "10001"], "--clients must be 1 to 10000"),
        // Keys longer than --key-size: kvr-bench/ and 5 hex digits for the
        // default keyspace of 100,000 (they came out 12 to 15 bytes).
        (
            &["--key-size", "11", "--requests", "5"],
            "--key-size 11 is too short for 100000 keys",
        ),
        (
            &["--keyspace", "16", "--prefill", "17", "--key-size", "11"],
            "--key-size 12 or more",
        ),
    ] {
        let out = s.cli(&[&["bench"][..], args].concat(), b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
    }
    let stats = http("GET", &format!("{}/v1/stats", s.url), &[], None).json();
    assert_eq!(stats["revision"], 0);
}

/// What the server would refuse on every request is said before the run
/// (a wrong token ran the whole duration counting 401s, exit 3 only at
/// its end; a value over the server's limit counted 413s): exit 3 for the
/// token, 2 for sizes, nothing written.
#[test]
fn bench_checks_the_token_and_the_servers_limits_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            "--token",
            "sekrit",
            "--max-value-bytes",
            "1000",
            "--max-batch-bytes",
            "50000",
            "--max-batch-ops",
            "3",
        ],
    );
    let with = |token: &str, args: &[&str]| {
        s.cli(
            &[&["--token", token, "bench", "--duration", "30"][..], args].concat(),
            b"",
        )
    };
    for (token, args, code, said) in [
        (
            "wrong",
            &[][..],
            3,
            "unauthorized: the server did not accept the token; check --token",
        ),
        (
            "sekrit",
            &["--value-size", "1001"],
            2,
            "--value-size 1001 is over the server's limit of 1000 bytes (its serve \
             --max-value-bytes)",
        ),
        (
            "sekrit",
            &[
                "--workload",
                "get",
                "--prefill",
                "10",
                "--value-size",
                "1001",
            ],
            2,
            "over the server's limit of 1000 bytes",
        ),
        (
            "sekrit",
            &["--workload", "batch", "--batch-size", "1000"],
            2,
            "--batch-size 1000 of --value-size 100 makes requests of about",
        ),
        (
            "sekrit",
            &["--workload", "batch", "--batch-size", "5"],
            2,
            "--batch-size 5 is over the server's limit of 3 operations per batch (its serve \
             --max-batch-ops)",
        ),
    ] {
        let out = with(token, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        assert!(stderr(&out).contains("nothing was measured") || code == 2);
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
    }
    let auth = [("authorization", "Bearer sekrit")];
    let stats = http("GET", &format!("{}/v1/stats", s.url), &auth, None).json();
    assert_eq!(stats["revision"], 0);
    // Without a token, /healthz is all it may measure; with one, a run
    // within the limits goes on.
    let out = s.cli(&["bench", "--workload", "healthz", "--requests", "20"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with(
        "sekrit",
        &["--value-size", "1000", "--requests", "20", "--json"],
    );
    assert_eq!(report(&out)["ok"], 20);
}

/// `cmd bench`, a put run of 30 s with `--json`, started with its output
/// piped.
fn long_put_run(cmd: &mut std::process::Command) -> std::process::Child {
    cmd.args([
        "bench",
        "--workload",
        "put",
        "--clients",
        "2",
        "--duration",
        "30",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

/// A server that goes away during a run fails the run (exit 5) within
/// about a second, instead of figures measured against nothing and exit 0.
#[test]
fn bench_fails_when_the_server_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let bench = long_put_run(kvr_cmd(dir.path()).args(["--server", &s.url]));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.kill9();
    let started = std::time::Instant::now();
    let out = bench.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "bench went on for {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the server could not be reached for"),
        "{}",
        stderr(&out)
    );
}

/// SIGINT, SIGTERM or SIGHUP stop a run early: the figures so far are
/// printed, exit 3 says it was interrupted, and the temporary database of
/// a local run is removed (the process died, leaving it and its log).
#[test]
fn an_interrupted_bench_reports_and_leaves_no_files() {
    for signal in ["INT", "TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let child = long_put_run(kvr_cmd(dir.path()).env("TMPDIR", &tmp));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        crate::support::signal(child.id(), signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{signal}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("interrupted (SIG{signal}): the run stopped early")),
            "{}",
            stderr(&out)
        );
        let figures: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(figures["ok"].as_u64().unwrap() > 0, "{figures}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left {left:?}");
    }
}

/// A signal during `--prefill` stops it too (the prefill ran before the
/// signals were caught: the process died with no word, leaving its
/// temporary database and log): exit 3 saying how far it got, no files.
#[test]
fn a_bench_interrupted_in_its_prefill_says_so_and_leaves_no_files() {
    for signal in ["INT", "TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let child = kvr_cmd(dir.path())
            .env("TMPDIR", &tmp)
            .args(["bench", "--workload", "get", "--duration", "1"])
            .args(["--prefill", "10000000", "--keyspace", "10000000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its temporary file is there: the prefill has begun.
        let started = std::time::Instant::now();
        while std::fs::read_dir(&tmp).unwrap().next().is_none() {
            if started.elapsed().as_secs() > 20 {
                panic!("no temporary file in 20 s: {:?}", child.wait_with_output());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        crate::support::signal(child.id(), signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{signal}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "kvr: error: interrupted (SIG{signal}) during the prefill, after "
            )) && err.contains("of 10000000 keys; nothing was measured"),
            "{signal}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{signal}: {}", stdout(&out));
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left {left:?}");
    }
}
