//! A full disk under `kvr serve`: writes get 507 `insufficient_storage`
//! (also a batch that needs a new log segment), reads and `/healthz` keep
//! working, nothing acknowledged is lost or damaged, writes succeed again
//! once space is freed, also with the server's own log on that disk, and a
//! server started on a full disk (no room for
//! its log) exits 3 saying the disk is full. After a `kill -9` on a full
//! disk, recovery exits 3 "disk full" until space is freed, then finds
//! every acknowledged write.
//!
//! Runs on a small tmpfs this test mounts; where mounting is not permitted
//! it says so and skips.

use crate::support::*;

use crate::tmpfs::SmallFs;

fn put(url: &str, key: &str, value: &[u8]) -> Reply {
    http("PUT", &format!("{url}/v1/kv/{key}"), &[], Some(value))
}

/// A batch of about 18 MiB: more than a log segment holds.
fn big_batch() -> Vec<u8> {
    let value = "b".repeat(60_000);
    (0..300)
        .map(|i| format!("{{\"key\":\"big{i}\",\"value\":\"{value}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn full_disk_gives_507_reads_keep_working_and_writes_resume() {
    let tmp = tempfile::tempdir().unwrap();
    // Room for what freeing the filler must allow: the acked puts (up to the
    // 32 MiB of log segments made before the disk filled) flushed with their
    // history copies, plus a new segment for the big batch. With 128 MiB the
    // freed space was just short of that when the disk filled before the
    // first flush, and the server rightly kept answering 507.
    let Some(fs) = SmallFs::mount_or_skip(&tmp.path().join("small"), "256m") else {
        return;
    };
    // Its log on the full disk too: a failed log line must not take the
    // writer down (eprintln! panics when stderr cannot be written).
    let mut s = Server::start_logging_to(&fs.dir, &fs.dir.join("serve.log"));
    let u = s.url.clone();
    assert_eq!(put(&u, "keep", b"safe").status, 200);
    let filler = fs.fill();
    let value = vec![7u8; 200_000];
    let mut acked = Vec::new();
    let full = loop {
        assert!(acked.len() < 200, "the disk never filled up");
        let key = format!("k{}", acked.len());
        let r = put(&u, &key, &value);
        if r.status != 200 {
            break r;
        }
        acked.push(key);
    };
    assert_eq!(full.status, 507, "{}", full.text());
    assert_eq!(full.code(), "insufficient_storage");
    let r = http("POST", &format!("{u}/v1/batch"), &[], Some(&big_batch()));
    assert_eq!(
        r.status,
        507,
        "a new log segment on a full disk: {}",
        r.text()
    );
    eprintln!(
        "disk full after {} puts of 200 kB: {}; big batch: {}",
        acked.len(),
        full.text(),
        r.text()
    );
    // Reads and health keep working.
    assert_eq!(http("GET", &format!("{u}/healthz"), &[], None).status, 200);
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/keep"), &[], None).body,
        b"safe"
    );
    for key in &acked {
        assert_eq!(
            http("GET", &format!("{u}/v1/kv/{key}"), &[], None).body,
            value
        );
    }
    // Space freed: writes work again, in the same process.
    std::fs::remove_file(&filler).unwrap();
    let r = put(&u, "after", b"freed");
    assert_eq!(r.status, 200, "after freeing space: {}", r.text());
    // The log the failed flushes kept goes once a flush retry succeeds
    // (every second); until then a batch needing a new segment may still
    // get 507 "retry", as the message says.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let r = loop {
        let r = http("POST", &format!("{u}/v1/batch"), &[], Some(&big_batch()));
        if r.status != 507 || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(r.status, 200, "big batch after freeing space: {}", r.text());
    assert_eq!(s.terminate().code(), Some(0));
    // Nothing damaged: a fresh process finds everything.
    let s = Server::start(&fs.dir, &[]);
    for key in &acked {
        assert_eq!(
            http("GET", &format!("{}/v1/kv/{key}", s.url), &[], None).body,
            value
        );
    }
    assert_eq!(
        http("GET", &format!("{}/v1/kv/keep", s.url), &[], None).body,
        b"safe"
    );
    assert_eq!(
        http("GET", &format!("{}/v1/kv/after", s.url), &[], None).body,
        b"freed"
    );
    assert_eq!(
        http("GET", &format!("{}/v1/kv/big299", s.url), &[], None).status,
        200
    );
}

/// Lines of the server's log at `log` that say a freeze failed.
fn freeze_failures(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("cannot start a new log segment"))
        .count()
}

/// A live table due by age on a full disk, with no spare log segment left:
/// the freeze fails and is retried once a second (with no pause between
/// tries the writer spun a core and wrote gigabytes of the same error line
/// within minutes), writes and reads go on meanwhile, and once space is
/// freed the table is flushed and nothing is lost.
#[test]
fn a_freeze_without_room_for_a_log_segment_is_retried_once_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&tmp.path().join("small"), "64m") else {
        return;
    };
    // The server's own log elsewhere, so that it can be read in full.
    let log = tmp.path().join("serve.log");
    let mut s = Server::spawn(
        &fs.dir,
        &[],
        &[("KVR_FLUSH_AGE_MS", "100")],
        std::process::Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let u = s.url.clone();
    assert_eq!(put(&u, "keep", b"safe").status, 200);
    let filler = fs.fill();
    // The first freeze takes the spare segment made before the disk
    // filled; a later one finds no room for a new one.
    let mut acked = Vec::new();
    wait_until("a freeze that fails for want of room", || {
        let key = format!("k{}", acked.len());
        if put(&u, &key, b"small").status == 200 {
            acked.push(key);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        freeze_failures(&log) > 0
    });
    let before = freeze_failures(&log);
    let watched = std::time::Instant::now();
    while watched.elapsed() < std::time::Duration::from_secs(3) {
        let key = format!("k{}", acked.len());
        let r = put(&u, &key, b"small");
        assert_eq!(r.status, 200, "a write while freezes fail: {}", r.text());
        acked.push(key);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let tries = freeze_failures(&log) - before;
    assert!(
        (1..=5).contains(&tries),
        "{tries} failed freezes logged in 3 s: one a second expected"
    );
    // Space freed: a retry freezes the table, a flush writes it.
    std::fs::remove_file(&filler).unwrap();
    let failed = freeze_failures(&log);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        freeze_failures(&log) <= failed + 1,
        "freezes still failing after space was freed"
    );
    for key in &acked {
        assert_eq!(
            http("GET", &format!("{u}/v1/kv/{key}"), &[], None).body,
            b"small"
        );
    }
    assert_eq!(s.terminate().code(), Some(0));
    // Every line of the log, the engine's errors too, has its timestamp
    // (SPEC; the flush thread's lines had none).
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        let b = line.as_bytes();
        let stamped =
            b.len() > 25 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z' && b[24] == b' ';
        assert!(stamped, "a line without a timestamp: {line:?}");
    }
    let s = Server::start(&fs.dir, &[]);
    for key in acked.iter().chain(["keep".to_string()].iter()) {
        let r = http("GET", &format!("{}/v1/kv/{key}", s.url), &[], None);
        assert_eq!(r.status, 200, "{key} after a restart");
    }
}

#[test]
fn serve_on_a_full_disk_exits_3_disk_full() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&tmp.path().join("small"), "24m") else {
        return;
    };
    let out = kvr(&fs.dir, &["--db", "db.redb", "put", "k", "v"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs.fill();
    let out = kvr(
        &fs.dir,
        &["--db", "db.redb", "serve", "--listen", "127.0.0.1:0"],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("disk full"), "{}", stderr(&out));
    // How much room it needs: freeing less left it refusing (audit finding).
    assert!(
        stderr(&out).contains("(a log segment takes 16 MiB of free space)"),
        "{}",
        stderr(&out)
    );
    let out = kvr(&fs.dir, &["--db", "db.redb", "get", "k"], b"");
    assert_eq!(stdout(&out), "v");
}

#[test]
fn kill_9_on_a_full_disk_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&tmp.path().join("small"), "128m") else {
        return;
    };
    let mut s = Server::start(&fs.dir, &[]);
    let filler = fs.fill();
    let value = vec![3u8; 200_000];
    let mut acked = Vec::new();
    while acked.len() < 200 {
        let key = format!("k{}", acked.len());
        if put(&s.url, &key, &value).status != 200 {
            break;
        }
        acked.push(key);
    }
    s.kill9();
    // Recovery needs room for its checkpoint: a clear error, nothing lost.
    let out = kvr(&fs.dir, &["--db", "db.redb", "stats"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("disk full"), "{}", stderr(&out));
    // The command's error says it, once: not in the server's words too.
    assert!(!stderr(&out).contains("kvr serve"), "{}", stderr(&out));
    std::fs::remove_file(&filler).unwrap();
    let s = Server::start(&fs.dir, &[]);
    for key in &acked {
        assert_eq!(
            http("GET", &format!("{}/v1/kv/{key}", s.url), &[], None).body,
            value
        );
    }
    eprintln!(
        "kill -9 on a full disk: {} acknowledged puts all found",
        acked.len()
    );
}

/// `lines` JSON lines putting keys `p00000`.. with 1 kB values of `tag`.
fn small_batch(from: usize, n: usize, tag: char) -> Vec<u8> {
    let value = tag.to_string().repeat(1000);
    (from..from + n)
        .map(|i| format!("{{\"key\":\"p{i:05}\",\"value\":\"{value}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Keys `p{gone}`.. up to `p{n}` hold `tag`'s value, those below `gone` are
/// absent, and the count says so.
fn all_there(url: &str, gone: usize, n: usize, tag: char) {
    let value = tag.to_string().repeat(1000).into_bytes();
    // One agent: a connection per GET made these checks most of the test.
    let agent = agent();
    for i in 0..n {
        let r = http_with(&agent, "GET", &format!("{url}/v1/kv/p{i:05}"), &[], None);
        if i < gone {
            assert_eq!(r.status, 404, "p{i:05}");
        } else {
            assert_eq!((r.status, &r.body), (200, &value), "p{i:05}");
        }
    }
    let stats = http("GET", &format!("{url}/v1/stats"), &[], None).json();
    assert_eq!(stats["keys"], (n - gone) as u64, "{stats}");
}

/// A full disk in the middle of a flush in parts (`KVR_FLUSH_PART_KEYS`,
/// a real file on a real tmpfs): the parts written stay, the server reopens
/// the file at the last one and goes on serving every acknowledged write
/// with an exact key count; once space is freed the flush goes on from
/// where it stopped; after `kill -9` a restart finds everything.
#[test]
fn a_full_disk_between_the_parts_of_a_flush_loses_and_miscounts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&tmp.path().join("small"), "96m") else {
        return;
    };
    let env = [("KVR_FLUSH_PART_KEYS", "100")];
    let mut s = Server::start_env(&fs.dir, &["--history", "0"], &env);
    let u = s.url.clone();
    let batch = |body: Vec<u8>| {
        let r = http("POST", &format!("{u}/v1/batch"), &[], Some(&body));
        assert_eq!(r.status, 200, "{}", r.text());
    };
    // 3,000 keys flushed; then the first 100 deleted (the first part of
    // the next flush: it changes the file's key count), the rest rewritten
    // and 1,000 more put; the disk fills before that flush (by age, 2 s).
    for from in (0..3000).step_by(1000) {
        batch(small_batch(from, 1000, 'a'));
    }
    wait_until("no flush", || metric(&u, "kvr_flushes_total") > 0);
    let (flushes, parts) = (
        metric(&u, "kvr_flushes_total"),
        metric(&u, "kvr_flush_parts_total"),
    );
    let deletes = (0..100).map(|i| format!("{{\"op\":\"delete\",\"key\":\"p{i:05}\"}}\n"));
    batch(deletes.collect::<String>().into_bytes());
    batch(small_batch(100, 900, 'b'));
    for from in (1000..4000).step_by(1000) {
        batch(small_batch(from, 1000, 'b'));
    }
    // Full but for 128 KiB: the flush writes a part or a few, then fails.
    let filler = fs.fill();
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap();
        f.set_len(f.metadata().unwrap().len() - (128 << 10))
            .unwrap();
    }
    wait_until("no part written", || {
        metric(&u, "kvr_flush_parts_total") > parts
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let written = metric(&u, "kvr_flush_parts_total") - parts;
    assert_eq!(
        metric(&u, "kvr_flushes_total"),
        flushes,
        "the flush got through"
    );
    eprintln!("full disk after {written} parts of a flush");
    all_there(&u, 100, 4000, 'b');
    // What a `kill -9` now would leave, copied off the full disk: the
    // parts written hold records ahead of the file's counters, which the
    // log covers. `kvr check` passes (no counter is beyond what the log
    // accounts for) and says what the next open replays; that open then
    // counts exactly.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("db.redb.wal")).unwrap();
    std::fs::copy(fs.dir.join("db.redb"), copy.join("db.redb")).unwrap();
    for entry in std::fs::read_dir(fs.dir.join("db.redb.wal")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            copy.join("db.redb.wal").join(entry.file_name()),
        )
        .unwrap();
    }
    let check = kvr(&copy, &["--db", "db.redb", "check"], b"");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(
        stderr(&check).contains("its write-ahead log db.redb.wal holds"),
        "{}",
        stderr(&check)
    );
    let stats = kvr(&copy, &["--db", "db.redb", "stats"], b"");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["keys"], 3900, "{stats}");
    // Space freed: the flush goes on from its last part and gets through.
    std::fs::remove_file(&filler).unwrap();
    wait_until("no flush after freeing space", || {
        metric(&u, "kvr_flushes_total") > flushes
    });
    all_there(&u, 100, 4000, 'b');
    batch(small_batch(0, 4500, 'c'));
    s.kill9();
    let s = Server::start_env(&fs.dir, &["--history", "0"], &env);
    all_there(&s.url, 0, 4500, 'c');
}
