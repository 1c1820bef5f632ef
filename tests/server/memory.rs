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
                    // Read whole, so the agent keeps its connection.
                    assert_eq!(reply(r.unwrap()).status, 200);
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

/// A write flood with a small memory-table budget: the tables never hold
/// more than the budget (writes wait for flushes, the queue fills, and new
/// writes get 503 `overloaded` rather than memory growing), every answer is
/// 200 or that 503, and every acknowledged write is there afterwards.
#[test]
fn a_write_flood_stays_within_the_memtable_budget() {
    assert_eq!(write_flood(&[]), 0);
}

/// The same with the flush thread at nice 19: it falls behind such a flood
/// and hands over to its helper, and the budget still holds.
#[test]
fn a_write_flood_stays_within_the_budget_with_a_nicer_flush() {
    let handed = write_flood(&[("KVR_FLUSH_NICE", "19")]);
    assert!(handed >= 1, "{handed}");
}

/// 384 MB of batches from 4 clients into a 16 MiB memory budget: every
/// acknowledged line is there, refusals are 503 `overloaded`, and the
/// peak RSS stays bounded. Returns the flushes handed to the helper.
fn write_flood(env: &[(&str, &str)]) -> u64 {
    const MEMTABLE_MIB: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(
        dir.path(),
        &[
            "--cache-mib",
            &CACHE_MIB.to_string(),
            "--memtable-mib",
            &MEMTABLE_MIB.to_string(),
            "--queue-size",
            "8",
        ],
        env,
    );
    const CLIENTS: u64 = 4;
    // 2,000 lines of 2 KB: 4 MB a request; 24 a client, 384 MB in all, so
    // that memory growing with what was written would be far past the bound.
    const REQUESTS: u64 = 24;
    const REQUEST_MIB: u64 = 4;
    let value = "f".repeat(2000);
    let handles: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let url = s.url.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut acked = Vec::new();
                let mut rejected = 0;
                for n in 0..REQUESTS {
                    let body: String = (0..2000u64)
                        .map(|i| format!("{{\"key\":\"t{t}:{n}:{i}\",\"value\":\"{value}\"}}\n"))
                        .collect();
                    let r = reply(
                        agent
                            .post(format!("{url}/v1/batch"))
                            .send(body.as_bytes())
                            .unwrap(),
                    );
                    match r.status {
                        200 => acked.push(format!("t{t}:{n}:1999")),
                        503 => {
                            assert_eq!(r.code(), "overloaded");
                            rejected += 1;
                        }
                        other => panic!("status {other}: {}", r.text()),
                    }
                }
                (acked, rejected)
            })
        })
        .collect();
    let mut acked = Vec::new();
    let mut rejected = 0;
    for h in handles {
        let (a, r) = h.join().unwrap();
        acked.extend(a);
        rejected += r;
    }
    let peak = peak_kib(s.pid());
    let stalls = metric(&s.url, "kvr_write_stalls_total");
    eprintln!(
        "write flood: {} batches acknowledged, {rejected} refused with 503, {stalls} write \
         stalls; peak RSS {peak} KiB",
        acked.len(),
    );
    // 384 MB through a 16 MiB budget: writers waited for the flush (23 of
    // 96 batches in a local run), and /metrics says so.
    assert!(stalls > 0, "no write stall counted");
    for k in &acked {
        let r = http("GET", &format!("{}/v1/kv/{k}", s.url), &[], None);
        assert_eq!(r.status, 200, "acknowledged {k} is missing");
    }
    // The budget, the cache, the largest group in flight (64 MiB at most),
    // each client's request being read and parsed (its body and its
    // operations), and the margin. (With 12 requests a client, one CI run
    // peaked at 206 MB, 5 MB past the bound without the requests in it;
    // local runs 146-184 MB. With 24 requests a client: alone 210-225 MB,
    // and 252 MB once in a fresh-clone CI run with the other tests in
    // parallel, so 40 MiB more room here. On 2026-12-02 six runs each of
    // two builds a day apart, alone, peaked at 236-267 and 236-279 MB, and
    // a CI run at 276 MB: 64 MiB more room. Memory that grew with what was
    // written would still be past it, at 384 MB of values.)
    let in_flight = CLIENTS * 2 * REQUEST_MIB;
    let bound = (MEMTABLE_MIB + CACHE_MIB + 64 + in_flight + 64) * 1024 + MARGIN_KIB;
    assert!(peak < bound, "peak RSS {peak} KiB, bound {bound} KiB");
    metric(&s.url, "kvr_flush_handovers_total")
}

/// `--memtable-mib 0` is a usage error that creates nothing; a served
/// write is flushed into the file by age (`kvr_flushes_total` counts it,
/// and the memory tables are empty again), and survives a restart.
#[test]
fn memtable_flag_and_flush_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = kvr(
        dir.path(),
        &[
            "--db",
            "db.redb",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--memtable-mib",
            "0",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--memtable-mib must be at least 1"));
    assert!(!dir.path().join("db.redb").exists());

    let mut s = Server::start(dir.path(), &["--memtable-mib", "16"]);
    assert_eq!(put(&s.url, "k", b"v").status, 200);
    // Each family described (`# TYPE`) and its value.
    let described = |name: &str| -> u64 {
        let text = http("GET", &format!("{}/metrics", s.url), &[], None).text();
        assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
        metric(&s.url, name)
    };
    // The flush age is 2 s here (support.rs); look for up to 30 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while described("kvr_flushes_total") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(described("kvr_flushes_total"), 1);
    // The flush took some time, counted in seconds (a float).
    let text = http("GET", &format!("{}/metrics", s.url), &[], None).text();
    assert!(
        text.contains("# TYPE kvr_flush_seconds_total counter"),
        "{text}"
    );
    let flush_seconds = sample(&text, "kvr_flush_seconds_total");
    assert!(
        flush_seconds > 0.0 && flush_seconds < 30.0,
        "{flush_seconds}"
    );
    assert_eq!(described("kvr_memtable_bytes"), 0);
    assert_eq!(described("kvr_memtables_frozen"), 0);
    // At the server's own priority (no `KVR_FLUSH_NICE`) nothing is handed
    // over.
    assert_eq!(described("kvr_flush_handovers_total"), 0);
    assert_eq!(described("kvr_writes_rejected_total"), 0);
    // One put into 16 MiB: no write waited for room.
    assert_eq!(described("kvr_write_stalls_total"), 0);
    assert_eq!(described("kvr_write_stall_seconds_total"), 0);
    assert_eq!(s.terminate().code(), Some(0));
    let s = Server::start(dir.path(), &[]);
    let r = http("GET", &format!("{}/v1/kv/k", s.url), &[], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]));
}

/// GETs of keys the file holds are answered from the row cache once read
/// (`kvr_row_cache_bytes` grows), and still follow every later write once
/// it is flushed: a new value, a delete, a put of a key read as absent.
#[test]
fn gets_from_the_row_cache_follow_flushed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let get = |key: &str| {
        let r = http("GET", &format!("{}/v1/kv/{key}", s.url), &[], None);
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    // The flush age is 2 s here (support.rs).
    let flushed = |n: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while metric(&s.url, "kvr_flushes_total") < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(metric(&s.url, "kvr_flushes_total"), n);
    };
    assert_eq!(put(&s.url, "a", b"1").status, 200);
    assert_eq!(put(&s.url, "b", b"1").status, 200);
    flushed(1);
    assert_eq!(metric(&s.url, "kvr_row_cache_bytes"), 0);
    for _ in 0..3 {
        assert_eq!(get("a"), (200, "1".into()));
        assert_eq!(get("b"), (200, "1".into()));
        assert_eq!(get("c").0, 404);
    }
    assert!(metric(&s.url, "kvr_row_cache_bytes") > 0);
    assert_eq!(put(&s.url, "a", b"2").status, 200);
    let r = http("DELETE", &format!("{}/v1/kv/b", s.url), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(put(&s.url, "c", b"new").status, 200);
    flushed(2);
    for _ in 0..3 {
        assert_eq!(get("a"), (200, "2".into()));
        assert_eq!(get("b").0, 404);
        assert_eq!(get("c"), (200, "new".into()));
    }
    let text = http("GET", &format!("{}/metrics", s.url), &[], None).text();
    for family in ["kvr_row_cache_lookups_total", "kvr_row_cache_hits_total"] {
        assert!(text.contains(&format!("# TYPE {family} counter")), "{text}");
    }
}

/// The first GET that reads the file starts the row cache's warm-up: the
/// file's keys are cached in the background (`kvr_row_cache_warmed_total`)
/// but for those a memory table holds, and GETs answered from the entries
/// are exact; writes alone start nothing.
#[test]
fn the_first_get_warms_the_row_cache_with_the_files_keys() {
    const KEYS: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..KEYS)
        .map(|i| format!("{{\"key\":\"k{i:05}\",\"value\":\"v{i}\"}}\n"))
        .collect();
    let loaded = kvr(dir.path(), &["--db", "db.redb", "batch"], lines.as_bytes());
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    let s = Server::start(dir.path(), &[]);
    for i in 0..10 {
        assert_eq!(put(&s.url, &format!("k{i:05}"), b"new").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(metric(&s.url, "kvr_row_cache_warmed_total"), 0);
    let r = http("GET", &format!("{}/v1/kv/k04999", s.url), &[], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v4999"[..]));
    // All but the key that GET cached itself and the ten the memory table
    // holds (unless a flush wrote them before the warm-up came by).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric(&s.url, "kvr_row_cache_warmed_total") < KEYS - 11
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let warmed = metric(&s.url, "kvr_row_cache_warmed_total");
    assert!((KEYS - 11..KEYS).contains(&warmed), "{warmed}");
    let agent = agent();
    for i in 0..KEYS {
        let r = http_with(
            &agent,
            "GET",
            &format!("{}/v1/kv/k{i:05}", s.url),
            &[],
            None,
        );
        let want = if i < 10 {
            "new".to_string()
        } else {
            format!("v{i}")
        };
        assert_eq!((r.status, r.text()), (200, want), "k{i:05}");
    }
    let text = http("GET", &format!("{}/metrics", s.url), &[], None).text();
    assert!(
        text.contains("# TYPE kvr_row_cache_warmed_total counter"),
        "{text}"
    );
}

/// Writes `lines` (JSON lines) through `kvr batch` against the server.
fn load(s: &Server, lines: &str) {
    let out = s.cli(&["batch"], lines.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn put(url: &str, key: &str, value: &[u8]) -> Reply {
    http("PUT", &format!("{url}/v1/kv/{key}"), &[], Some(value))
}

/// Rewriting every key again and again keeps the file at about two copies
/// of the tree (the one readers see and the one a flush writes): the pages
/// a flush replaces are reused by the next. Before, each wait spanned two
/// flushes and the file doubled once more (34 MB here instead of 17 MB).
#[test]
fn rewriting_every_key_keeps_the_file_at_two_copies_of_the_tree() {
    const KEYS: usize = 8_000;
    const VALUE: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["--memtable-mib", "16", "--history", "0"]);
    let flushes = || metric(&s.url, "kvr_flushes_total");
    // Each round's ~9 MiB of memory-table bytes is past the 8 MiB a table
    // is flushed at: every round rewrites most of the tree's pages.
    for round in 0..16u8 {
        let before = flushes();
        let value = char::from(b'a' + round).to_string().repeat(VALUE);
        for chunk in 0..KEYS / 1000 {
            let lines: String = (chunk * 1000..(chunk + 1) * 1000)
                .map(|i| format!("{{\"key\":\"k{i:05}\",\"value\":\"{value}\"}}\n"))
                .collect();
            post_batch(&s.url, &lines);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while flushes() == before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(flushes() > before, "round {round} flushed nothing");
    }
    let data = (KEYS * VALUE) as u64;
    let file = std::fs::metadata(dir.path().join("db.redb")).unwrap().len();
    assert!(
        file <= data * 5 / 2,
        "{file} bytes of file for {data} bytes of values"
    );
    assert_eq!(s.terminate().code(), Some(0));
    let r = http_get_after_restart(dir.path(), "k07999");
    assert_eq!(r, "p".repeat(VALUE));
}

fn http_get_after_restart(dir: &std::path::Path, key: &str) -> String {
    let s = Server::start(dir, &[]);
    let r = http("GET", &format!("{}/v1/kv/{key}", s.url), &[], None);
    assert_eq!(r.status, 200);
    r.text()
}

/// Opens a PUT of `key` announcing `len` bytes and sends `sent` of them,
/// once the server holds room for the body in its budget: the PUT asks
/// `Expect: 100-continue`, and the server's `100 Continue` comes when it
/// reads the body, which it does only after taking that room. (A fixed
/// 300 ms sleep stood for this, too short when a loaded machine held the
/// server back: the request meant to find the budget full found room.)
fn open_put(addr: &str, key: &str, len: usize, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "PUT /v1/kv/{key} HTTP/1.1\r\nHost: kvr\r\nContent-Length: {len}\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let answer = read_until(&mut c, b"\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 100 Continue\r\n"), "{answer}");
    c.write_all(&vec![b'v'; sent]).unwrap();
    c
}

/// Request bodies being read or handled take room from `--max-body-mib`:
/// once it is taken, another large write gets 503 `overloaded` at once,
/// before its body is read, and writes nothing; when room is back, the
/// same write goes through. (Before, only `--max-connections` × the value
/// limit bounded them: 40 concurrent 16 MiB PUTs took a server configured
/// for 32 MiB to 1.5 GB.)
#[test]
fn request_bodies_share_a_bounded_budget() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let limit = "600000";
    let s = budget_server(dir.path(), "1", limit, limit);
    // Two bodies of 500,000 bytes take 977 of the 1,024 KiB: their
    // clients send half and wait.
    let len = 500_000;
    let mut first = open_put(&s.addr, "a", len, len / 2);
    let mut second = open_put(&s.addr, "b", len, len / 2);
    let before = metric(&s.url, "kvr_writes_rejected_total");
    let value = vec![b'c'; len];
    let r = http("PUT", &format!("{}/v1/kv/c", s.url), &[], Some(&value));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "overloaded");
    assert!(r.text().contains("--max-body-mib"), "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(metric(&s.url, "kvr_writes_rejected_total"), before + 1);
    // A small write still fits.
    let r = http("PUT", &format!("{}/v1/kv/small", s.url), &[], Some(b"x"));
    assert_eq!(r.status, 200, "{}", r.text());
    // The first two finish; their room is given back.
    for c in [&mut first, &mut second] {
        c.write_all(&vec![b'v'; len - len / 2]).unwrap();
        let answer = read_until(c, b"\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(
        http("GET", &format!("{}/v1/kv/c", s.url), &[], None).status,
        404
    );
    let r = http("PUT", &format!("{}/v1/kv/c", s.url), &[], Some(&value));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http("GET", &format!("{}/v1/kv/a", s.url), &[], None);
    assert_eq!(r.text().len(), len);
}

/// A request with `Expect: 100-continue` that the body budget has no room
/// for is answered 503 at once, without `100 Continue`: its client then
/// does not upload the body for nothing. (Before, the refusal read and
/// dropped the body first, and reading it sent the 100; found by an
/// audit.)
#[test]
fn a_full_body_budget_refuses_an_expect_continue_before_its_body() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let limit = "1000000";
    let s = budget_server(dir.path(), "1", limit, limit);
    let _hold = open_put(&s.addr, "hold", 900_000, 1000);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"PUT /v1/kv/second HTTP/1.1\r\nHost: kvr\r\nContent-Length: 900000\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("--max-body-mib"), "{answer}");
    let r = http("GET", &format!("{}/v1/kv/second", s.url), &[], None);
    assert_eq!(r.status, 404, "{}", r.text());
    let stats = http("GET", &format!("{}/v1/stats", s.url), &[], None).json();
    assert_eq!(stats["revision"], 0, "{stats}");
}

/// Threads of the server process.
fn threads(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Streams their clients do not read (an NDJSON range, a backup) hold no
/// thread and little memory: each waits with the chunk read ahead for it,
/// its snapshot and the kernel's socket buffer, while a few stream readers
/// serve them all. Before, each one parked a thread of the blocking pool
/// that kept ~4.4 MB of freed chunks (100 unread ranges: 444 MB and 99
/// threads more). Other clients are served meanwhile; read afterwards,
/// every stream is whole.
#[test]
fn unread_streams_hold_no_thread_and_little_memory() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let lines: String = (0..50_000)
        .map(|i| format!("{{\"key\":\"{}\",\"value\":\"{:0>100}\"}}\n", key(i), i))
        .collect();
    load(&s, &lines);
    let (threads_before, rss_before) = (threads(&s), s.rss_kib());
    let mut streams = Vec::new();
    for i in 0..60 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        let path = match i % 2 {
            0 => "/v1/range?prefix=k",
            _ => "/v1/backup",
        };
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n\
             Connection: close\r\n\r\n"
        )
        .unwrap();
        streams.push(c);
    }
    // Long enough for every stream to fill what the socket takes.
    std::thread::sleep(Duration::from_secs(3));
    let (threads_after, rss_after) = (threads(&s), s.rss_kib());
    assert!(
        threads_after <= threads_before + 8,
        "{threads_before} threads before 60 unread streams, {threads_after} with them"
    );
    // About 1 MB each measured, against 4.4 MB each when a thread held
    // each stream.
    assert!(
        rss_after < rss_before + 60 * 2048,
        "{rss_before} KiB resident before 60 unread streams, {rss_after} KiB with them"
    );
    let out = s.cli(&["get", &key(7)], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read now, a range stream holds every line, its last one the last key.
    let mut whole = Vec::new();
    streams
        .swap_remove(0)
        .read_to_end(&mut whole)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&whole);
    let body_lines = text.lines().filter(|l| l.starts_with("{\"key\"")).count();
    assert_eq!(body_lines, 50_000, "{}", &text[..200.min(text.len())]);
    assert!(text.contains(&format!("{{\"key\":\"{}\"", key(49_999))));
}

/// Streams their clients do not read take the room of their chunk from
/// the response budget (`--max-body-mib`) before it is read, so together
/// they hold about the budget: before, each also held a chunk read ahead
/// for it, outside the budget, and 500 unread ranges took 575 MB past a
/// budget of about 200 MB (found by an audit). Closed, they give it back.
#[test]
fn unread_streams_hold_the_response_budget_and_no_more() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = budget_server(dir.path(), "4", "1048576", "4194304");
    let lines: String = (0..50_000)
        .map(|i| format!("{{\"key\":\"{}\",\"value\":\"{:0>100}\"}}\n", key(i), i))
        .collect();
    let out = s.cli(&["batch", "--chunk-size", "20000"], lines.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = |n: usize| -> Vec<std::net::TcpStream> {
        (0..n)
            .map(|_| {
                // The buffer set before connecting: after, the window offered
                // is the default's, and the kernel takes chunks for the client.
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .unwrap();
                socket.set_recv_buffer_size(4096).unwrap();
                let addr: std::net::SocketAddr = s.addr.parse().unwrap();
                socket.connect(&addr.into()).unwrap();
                let mut c: std::net::TcpStream = socket.into();
                write!(
                    c,
                    "GET /v1/range?prefix=k HTTP/1.1\r\nHost: x\r\n\
                     Accept: application/x-ndjson\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                c
            })
            .collect()
    };
    // 20 fill the 4 MiB budget (a chunk's room is 288 KiB); 40 more then
    // cost only what a connection and its snapshot take besides.
    let mut streams = open(20);
    std::thread::sleep(Duration::from_secs(3));
    let rss_full = s.rss_kib();
    streams.extend(open(40));
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = s.rss_kib();
    let each = rss_after.saturating_sub(rss_full) / 40;
    // About 100 KiB each measured (a debug build); 205 before, when each
    // also held a chunk read ahead.
    assert!(
        each < 160,
        "{rss_full} KiB resident with 20 unread streams, {rss_after} KiB with 60: {each} KiB each"
    );
    // Small answers take no room: served meanwhile.
    let out = s.cli(&["get", &key(7)], b"");
    assert!(out.status.success());
    // Closed, the streams give their room back: a stream read now is whole.
    drop(streams);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "GET /v1/range?prefix=k HTTP/1.1\r\nHost: x\r\n\
         Accept: application/x-ndjson\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut whole = Vec::new();
    c.read_to_end(&mut whole).unwrap();
    let text = String::from_utf8_lossy(&whole);
    let body_lines = text.lines().filter(|l| l.starts_with("{\"key\"")).count();
    assert_eq!(body_lines, 50_000, "{}", &text[..200.min(text.len())]);
}

/// Pages of large values asked for by clients that read nothing take the
/// room of the response budget as they are built, so that those with no
/// room are refused (503 `overloaded`) before they are built whole: built
/// first and held after, 200 such pages took 3.7 GB past a 64 MiB budget
/// before the refusals came (found by an audit). Read later, a page is
/// whole.
#[test]
fn unread_pages_of_large_values_are_refused_before_they_are_built() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = budget_server(dir.path(), "4", "1048576", "8388608");
    // 64 values of 60 KiB: a page of all of them is 3.8 MiB.
    let lines: String = (0..64)
        .map(|i| {
            format!(
                "{{\"key\":\"{}\",\"value\":\"{}\"}}\n",
                key(i),
                "x".repeat(60 << 10)
            )
        })
        .collect();
    load(&s, &lines);
    let before = peak_kib(s.pid());
    let clients: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let addr: std::net::SocketAddr = s.addr.parse().unwrap();
            socket.connect(&addr.into()).unwrap();
            let mut c: std::net::TcpStream = socket.into();
            write!(
                c,
                "GET /v1/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            c
        })
        .collect();
    // Each is answered: a page held for its client, or a refusal.
    let (mut statuses, mut held) = (Vec::new(), Vec::new());
    for mut c in clients {
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        statuses.push(String::from_utf8_lossy(&head[9..12]).into_owned());
        if &head[9..12] != b"503" {
            held.push(c); // unread until the test ends
        }
    }
    let peak = peak_kib(s.pid());
    let refused = statuses.iter().filter(|s| *s == "503").count();
    assert!(refused >= 90, "{statuses:?}");
    // 100 pages of 3.8 MiB built whole would be 380 MiB (more with their
    // buffers' growth); within the budget, the 4 MiB held and what each
    // builder holds past its room.
    assert!(
        peak < before + 120 * 1024,
        "{before} KiB resident at the peak before, {peak} KiB after 100 unread pages"
    );
    drop(held);
}

/// Watchers whose clients read nothing, behind on writes of 1 MB values,
/// hold about their outboxes' bound, also once the stream has to be read
/// back from the stored history. A watcher read a page of 1,024 stored
/// events whole: 100 unread watchers and 300 writes of 1 MB took the
/// server past 9 GB (found by an audit). The small receive buffer keeps
/// the kernel from taking a value's worth for the client.
#[test]
fn unread_watchers_behind_on_large_values_stay_within_their_bound() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            "--idle-timeout",
            "2",
            "--cache-mib",
            "32",
            "--memtable-mib",
            "16",
        ],
    );
    let rss_before = s.rss_kib();
    let mut watchers = Vec::new();
    // More than the outboxes' bound takes (64 MiB at 1 MiB each): under
    // that pressure stalled streams end, and the others read on.
    for _ in 0..100 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        small_receive_buffer(&c);
        write!(c, "GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        watchers.push(c);
    }
    // (Under the outbox's bound of 1 MiB, so that a stream reads on.)
    let value = vec![b'B'; 1_000_000];
    for i in 0..80 {
        assert_eq!(put(&s.url, &format!("w{i}"), &value).status, 200);
    }
    // Past the idle timeout, while the stream tasks read on.
    let mut peak = 0;
    for _ in 0..50 {
        peak = peak.max(s.rss_kib());
        std::thread::sleep(Duration::from_millis(100));
    }
    // 2.7 GB resident at the peak before (this test, a debug build).
    assert!(
        peak < rss_before + 600 * 1024,
        "{rss_before} KiB resident before, {peak} KiB at the peak"
    );
    // The server still answers.
    assert_eq!(
        http("GET", &format!("{}/v1/kv/w0", s.url), &[], None).status,
        200
    );
    drop(watchers);
}

/// Watchers that read nothing fall behind concurrent writers of 64 KiB
/// values into the stored history, and read it back a page at a time on
/// the server's page readers, two threads per core: the rest wait their
/// turn without a thread. On tokio's blocking pool each took a thread of
/// its own: 700 such watchers took a release build to 239 threads and
/// 1.9 GB (and it took half the writes it takes now; found by an audit).
#[test]
fn unread_watchers_behind_concurrent_writers_take_no_thread_each() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--cache-mib", "64", "--memtable-mib", "16"]);
    let before = threads(&s);
    let watchers: Vec<std::net::TcpStream> = (0..300).map(|_| unread_watch(&s, "")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut most, mut puts) = (0, 0);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (url, stop) = (&s.url, &stop);
                scope.spawn(move || {
                    let value = vec![b'w'; 64 << 10];
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        assert_eq!(put(url, &format!("w{w}_{}", n % 200), &value).status, 200);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for _ in 0..60 {
            most = most.max(threads(&s));
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        puts = writers.into_iter().map(|w| w.join().unwrap()).sum::<u64>();
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let pool = (2 * cores).max(4);
    let report = format!(
        "{before} threads before 300 unread watchers, at most {most} with them and {puts} \
         writes of 64 KiB"
    );
    println!("{report}");
    // The page readers, and one or two for other work (the sweeper).
    assert!(most <= before + pool + 2, "{report}");
    assert_eq!(
        http("GET", &format!("{}/v1/kv/w0_0", s.url), &[], None).status,
        200
    );
    drop(watchers);
}

/// Watchers whose clients read nothing take the room of a page from the
/// bound of all watchers' outboxes (`KVR_WATCH_MEMORY`, 4 MiB here) before
/// they read it, and keep it until the connection has written the lines;
/// under pressure a stalled one ends `lagging`, and is cut off if it then
/// takes nothing of the rest of a request it began (1 MB values here) for
/// a second: 200 of them cost the bound and their connections. Before,
/// the bound was checked, not taken, and the page hyper was given left
/// it: each unread watcher held about two pages (release builds: 400 of
/// them took a server from 62 to 808 MB; 186 MB now).
#[test]
fn unread_watchers_hold_the_watch_memory_bound_and_no_more() {
    const WATCHERS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    // A page each (a page stops at 1 MiB of values here).
    let value = vec![b'W'; 1_000_000];
    for i in 0..8 {
        assert_eq!(put(&s.url, &format!("w{i}"), &value).status, 200);
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = s.rss_kib();
    let watchers: Vec<std::net::TcpStream> = (0..WATCHERS)
        .map(|_| unread_watch(&s, "from_revision=1"))
        .collect();
    // The watchers end and are cut off in turn, each in a second or two,
    // as room frees up.
    let most = most_resident(&s, 6);
    let each = most.saturating_sub(before) / WATCHERS;
    let report = format!(
        "{before} KiB resident before {WATCHERS} unread watchers, at most {most} KiB with them: {each} KiB each"
    );
    println!("{report}");
    assert!(each < 600, "{report}");
    // The server still answers, and once the watchers go, a watch of the
    // same events gets them all.
    assert_eq!(
        http("GET", &format!("{}/v1/kv/w0", s.url), &[], None).status,
        200
    );
    drop(watchers);
    let out = s.cli(&["get", "w7"], b"");
    assert!(out.status.success());
}

/// Watchers whose clients read nothing, inside one batch of 40 MB (forty
/// 1 MB values), each hold about a page and their own bound (1 MiB), not
/// the batch: the memory tables gave a watcher a whole request as one
/// page, so each held the batch (release builds, ten watchers inside a
/// batch of 40 MB: 208 to 700 MB resident; 232 MB now). Each watches its
/// own range, so that no two share a page. The default bound of all
/// watchers (64 MiB) is not reached.
#[test]
fn unread_watchers_inside_a_large_batch_hold_a_page_not_the_batch() {
    const WATCHERS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let value = "B".repeat(1_000_000);
    let body: String = (0..40)
        .map(|i| format!("{{\"key\":\"b{i:02}\",\"value\":\"{value}\"}}\n"))
        .collect();
    let r = http(
        "POST",
        &format!("{}/v1/batch", s.url),
        &[],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(body);
    std::thread::sleep(Duration::from_secs(1));
    let before = s.rss_kib();
    let watchers: Vec<std::net::TcpStream> = (0..WATCHERS)
        .map(|i| unread_watch(&s, &format!("from_revision=1&start=a{i}")))
        .collect();
    let most = most_resident(&s, 5);
    let each = most.saturating_sub(before) / WATCHERS;
    let report = format!(
        "{before} KiB resident before {WATCHERS} unread watchers inside a 40 MB batch, at most {most} KiB with them: {each} KiB each"
    );
    println!("{report}");
    // (Debug builds: 5 MB each, 43 MB before.)
    assert!(each < 20_000, "{report}");
    assert_eq!(
        http("GET", &format!("{}/v1/kv/b39", s.url), &[], None).status,
        200
    );
    drop(watchers);
}

/// A watch whose client reads nothing, through a socket with a 4 KiB
/// receive buffer set before connecting (see
/// `unread_streams_hold_the_response_budget_and_no_more`).
fn unread_watch(s: &Server, query: &str) -> std::net::TcpStream {
    use std::io::Write;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = s.addr.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut c: std::net::TcpStream = socket.into();
    write!(c, "GET /v1/watch?{query} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c
}

/// The server's most resident memory, sampled each second for `seconds`.
fn most_resident(s: &Server, seconds: u64) -> u64 {
    (0..seconds)
        .map(|_| {
            std::thread::sleep(Duration::from_secs(1));
            s.rss_kib()
        })
        .max()
        .unwrap_or(0)
}

/// A 4 KiB receive buffer (which also stops the kernel growing it).
fn small_receive_buffer(c: &std::net::TcpStream) {
    socket2::SockRef::from(c)
        .set_recv_buffer_size(4096)
        .unwrap();
}

/// Large answers clients do not take hold room in a server-wide budget
/// (`--max-body-mib`): past it, a GET or a page of large values is 503
/// `overloaded` at once, and memory stays near the budget. Each unread
/// answer held its value until `--idle-timeout`, so 300 clients reading
/// nothing took 9.8 GB (found by an audit). Once the clients go, answers
/// come again, streams included.
#[test]
fn large_answers_nobody_reads_share_a_bounded_budget() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-body-mib", "64"]);
    let value = vec![b'L'; 15_000_000];
    for i in 0..3 {
        assert_eq!(put(&s.url, &format!("v{i}"), &value).status, 200);
    }
    // Flushed (the tests' servers flush after 2 s), so that each answer
    // is a copy read from the file, not the memory table's own bytes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric(&s.url, "kvr_memtable_bytes") > 0 {
        assert!(std::time::Instant::now() < deadline, "never flushed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_before = s.rss_kib();
    let mut unread = Vec::new();
    for i in 0..40 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        small_receive_buffer(&c);
        write!(c, "GET /v1/kv/v{} HTTP/1.1\r\nHost: x\r\n\r\n", i % 3).unwrap();
        unread.push(c);
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_with = s.rss_kib();
    // 64 MiB of budget: 600 MB held before.
    assert!(
        rss_with < rss_before + 150 * 1024,
        "{rss_before} KiB resident before 40 unread answers of 15 MB, {rss_with} KiB with them"
    );
    let get = http("GET", &format!("{}/v1/kv/v0", s.url), &[], None);
    assert_eq!(get.status, 503, "{} bytes", get.body.len());
    assert!(get.header("retry-after").is_some());
    let v = get.json();
    assert_eq!(v["error"], "overloaded");
    assert!(
        v["message"].as_str().unwrap().contains(
            "the answers it holds for clients that have not taken them yet take its memory \
             for them (64 MiB, --max-body-mib)"
        ),
        "{v}"
    );
    let page = http("GET", &format!("{}/v1/range?prefix=v", s.url), &[], None);
    assert_eq!(page.status, 503);
    // Small answers are not held back.
    assert_eq!(
        http("GET", &format!("{}/v1/stats", s.url), &[], None).status,
        200
    );
    drop(unread);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let get = http("GET", &format!("{}/v1/kv/v1", s.url), &[], None);
        if get.status == 200 {
            assert_eq!(get.body.len(), value.len());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {}", get.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    // A stream of them, read, is whole.
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "GET /v1/range?prefix=v HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut whole = Vec::new();
    c.read_to_end(&mut whole).unwrap();
    let text = String::from_utf8_lossy(&whole);
    assert_eq!(text.matches("{\"key\":\"v").count(), 3);
    assert!(text.ends_with("0\r\n\r\n"), "{}", &text[text.len() - 40..]);
}

/// SPEC's default batch limit (64 MiB) holds whatever the memory tables'
/// budget: an earlier default capped it at that budget, which refused
/// batches the contract allows on a small host (an audit: a largest
/// value's line could not be restored). A batch larger than the budget
/// goes in whole, and a `--max-batch-bytes` given is taken as given.
#[test]
fn the_default_batch_limit_is_spec_s_whatever_the_memory_budget() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..2_000)
        .map(|i| {
            format!(
                "{{\"key\":\"b{i:05}\",\"value\":\"{}\"}}\n",
                "x".repeat(1_000)
            )
        })
        .collect();
    assert!(lines.len() > 1 << 20 && lines.len() < 4 << 20);
    let s = Server::start(dir.path(), &["--memtable-mib", "1"]);
    let limits = http("GET", &format!("{}/v1/limits", s.url), &[], None).text();
    assert!(limits.contains("\"max_batch_bytes\":67108864"), "{limits}");
    post_batch(&s.url, &lines);
    assert_eq!(metric(&s.url, "kvr_keys"), 2_000);
    drop(s);

    let s = Server::start(
        dir.path(),
        &["--memtable-mib", "1", "--max-batch-bytes", "1048576"],
    );
    // Announced with `Expect: 100-continue`, refused before the body is
    // sent (a client still writing a refused body may see its connection
    // closed before it reads the 413).
    let more = lines.replace("\"b", "\"c");
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        more.len()
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-batch-bytes"), "{answer}");
    assert_eq!(metric(&s.url, "kvr_keys"), 2_000);
}

/// Streams whose chunks are larger than the room a stream takes before it
/// reads one (values of 1 MiB) wait for their whole room holding none:
/// holding their first room while they waited, six such streams on a
/// 2 MiB budget waited for each other for good, and every large answer
/// after them was 503 (found by an audit). All complete, and large
/// values are served again after them.
#[test]
fn concurrent_streams_of_large_values_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let s = budget_server(dir.path(), "2", "1048576", "1048576");
    let value = vec![b'a'; 1 << 20];
    for k in ["a", "b", "c", "d"] {
        let r = http("PUT", &format!("{}/v1/kv/{k}", s.url), &[], Some(&value));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let streams: Vec<_> = (0..6)
        .map(|_| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let r = http(
                    "GET",
                    &format!("{url}/v1/range"),
                    &[("Accept", "application/x-ndjson")],
                    None,
                );
                (r.status, r.text().lines().count())
            })
        })
        .collect();
    for stream in streams {
        assert_eq!(stream.join().unwrap(), (200, 4));
    }
    let r = http("GET", &format!("{}/v1/kv/a", s.url), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A server whose request and answer budget is `--max-body-mib MIB`, with
/// the value and batch limits below it (`value`, `batch` bytes).
fn budget_server(dir: &std::path::Path, mib: &str, value: &str, batch: &str) -> Server {
    Server::start(
        dir,
        &[
            "--max-body-mib",
            mib,
            "--max-value-bytes",
            value,
            "--max-batch-bytes",
            batch,
        ],
    )
}
