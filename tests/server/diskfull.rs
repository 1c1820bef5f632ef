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
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), "256m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
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

#[test]
fn serve_on_a_full_disk_exits_3_disk_full() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), "24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
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
    let out = kvr(&fs.dir, &["--db", "db.redb", "get", "k"], b"");
    assert_eq!(stdout(&out), "v");
}

#[test]
fn kill_9_on_a_full_disk_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), "128m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
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
