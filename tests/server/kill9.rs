//! Real `kill -9` cycles: `kvr serve` takes concurrent PUTs and batches
//! from several client threads and is SIGKILLed at a random moment, over
//! several cycles on a growing file, then restarted. Every acknowledged
//! write must be there with its value and revision, every batch (answered
//! or not) must be all there or all absent, and the revision never goes
//! below the highest acknowledged one. Before each restart the server
//! is also killed once 0 to 150 ms after it starts, often while it is
//! replaying the log.
//!
//! `KVR_KILL_CYCLES` sets the number of cycles (default 5); the counts are
//! printed (`--nocapture`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// Lines per batch request.
const BATCH_LINES: usize = 5;
/// Client threads writing during each cycle.
const THREADS: usize = 4;

/// What the clients sent and what was answered.
#[derive(Debug, Default)]
struct Log {
    /// Acknowledged PUTs: key -> revision.
    puts: BTreeMap<String, u64>,
    /// Every batch sent: its keys and, when acknowledged, its last revision.
    batches: Vec<(Vec<String>, Option<u64>)>,
}

/// The value a key is written with: derived from the key, a few KB, so
/// that the file grows from cycle to cycle and any value can be checked.
fn value_of(key: &str) -> Vec<u8> {
    let n = 200 + key.len() * 97 % 3000;
    key.bytes().cycle().take(n).collect()
}

fn client(url: String, tag: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) && i < 100_000 {
        i += 1;
        if i % 3 == 0 {
            let keys: Vec<String> = (0..BATCH_LINES)
                .map(|j| format!("{tag}-b{i}-{j}"))
                .collect();
            let body: String = keys
                .iter()
                .map(|k| {
                    let v = String::from_utf8(value_of(k)).unwrap();
                    format!("{{\"key\":\"{k}\",\"value\":\"{v}\"}}\n")
                })
                .collect();
            let slot = {
                let mut log = log.lock().unwrap();
                log.batches.push((keys, None));
                log.batches.len() - 1
            };
            if let Ok(r) = agent.post(format!("{url}/v1/batch")).send(body.as_bytes())
                && r.status() == 200
            {
                let rev = reply(r).json()["revision"].as_u64().unwrap();
                log.lock().unwrap().batches[slot].1 = Some(rev);
            }
        } else {
            let key = format!("{tag}-p{i}");
            match agent
                .put(format!("{url}/v1/kv/{key}"))
                .send(&value_of(&key)[..])
            {
                Ok(r) if r.status() == 200 => {
                    let rev = reply(r).json()["revision"].as_u64().unwrap();
                    log.lock().unwrap().puts.insert(key, rev);
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// Every key with its value and revision, read through the range API.
fn everything(url: &str) -> BTreeMap<String, (Vec<u8>, u64)> {
    let mut all = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page = format!("{url}/v1/range?limit=10000");
        if let Some(c) = &cursor {
            page.push_str(&format!("&cursor={c}"));
        }
        let r = http("GET", &page, &[], None).json();
        for item in r["items"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap().to_string();
            let value = item["value"].as_str().unwrap().as_bytes().to_vec();
            all.insert(key, (value, item["revision"].as_u64().unwrap()));
        }
        match r["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

/// Checks the restarted server against the log; returns (acknowledged
/// writes checked, lost, torn batches).
fn verify(url: &str, log: &Log) -> (usize, usize, usize) {
    let all = everything(url);
    let (mut checked, mut lost, mut torn) = (0, 0, 0);
    for (key, rev) in &log.puts {
        checked += 1;
        if all.get(key) != Some(&(value_of(key), *rev)) {
            eprintln!(
                "lost: {key} at revision {rev}: found {:?}",
                all.get(key).map(|e| e.1)
            );
            lost += 1;
        }
    }
    for (keys, acked) in &log.batches {
        let found: Vec<_> = keys
            .iter()
            .filter_map(|k| all.get(k).map(|e| (k, e)))
            .collect();
        if !found.is_empty() && found.len() != keys.len() {
            eprintln!(
                "torn batch {keys:?}: {} of {} present",
                found.len(),
                keys.len()
            );
            torn += 1;
        }
        for (k, (value, _)) in &found {
            assert_eq!(*value, value_of(k), "{k} has a wrong value");
        }
        if let Some(last) = acked {
            checked += keys.len();
            let want: Vec<u64> = (last + 1 - keys.len() as u64..=*last).collect();
            let got: Vec<u64> = keys
                .iter()
                .filter_map(|k| all.get(k).map(|e| e.1))
                .collect();
            if got != want {
                eprintln!("acknowledged batch {keys:?}: revisions {got:?}, not {want:?}");
                lost += keys.len() - got.len().min(keys.len());
            }
        }
    }
    let revision = http("GET", &format!("{url}/v1/stats"), &[], None).json()["revision"]
        .as_u64()
        .unwrap();
    let max_acked = log
        .puts
        .values()
        .chain(log.batches.iter().filter_map(|b| b.1.as_ref()));
    assert!(
        max_acked.max().is_none_or(|m| revision >= *m),
        "the revision went backwards"
    );
    (checked, lost, torn)
}

/// A pseudo-random number in `0..n` (no dependency for one number).
fn random_below(n: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t ^ (t >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

/// Starts the server on the crashed database and SIGKILLs it 0 to 150 ms
/// later: often in the middle of replaying the log, which the next start
/// must then do again.
fn kill_while_recovering(dir: &std::path::Path) {
    let mut child = kvr_cmd(dir)
        .args([
            "--db",
            "db.redb",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(random_below(150)));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn acknowledged_writes_survive_kill_9_cycles() {
    let cycles: usize = std::env::var("KVR_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let mut totals = (0, 0, 0);
    for cycle in 0..cycles {
        if cycle > 0 {
            kill_while_recovering(dir.path());
        }
        let mut s = Server::start(dir.path(), &[]);
        if cycle > 0 {
            let found = verify(&s.url, &log.lock().unwrap());
            totals = (totals.0 + found.0, totals.1 + found.1, totals.2 + found.2);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (url, stop, log) = (s.url.clone(), stop.clone(), log.clone());
                std::thread::spawn(move || client(url, format!("c{cycle}t{t}"), stop, log))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + random_below(1200)));
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
    }
    let s = Server::start(dir.path(), &[]);
    let found = verify(&s.url, &log.lock().unwrap());
    totals = (totals.0 + found.0, totals.1 + found.1, totals.2 + found.2);
    let file = std::fs::metadata(dir.path().join("db.redb")).unwrap().len();
    let log = log.lock().unwrap();
    eprintln!(
        "{cycles} kill -9 cycles: {} checks of acknowledged writes (each one rechecked after \
         every later restart; {} puts and {} batches acknowledged in all, {} batches sent), \
         {} lost, {} torn batches; file {file} bytes",
        totals.0,
        log.puts.len(),
        log.batches.iter().filter(|b| b.1.is_some()).count(),
        log.batches.len(),
        totals.1,
        totals.2
    );
    assert!(!log.puts.is_empty(), "no write was acknowledged");
    assert_eq!((totals.1, totals.2), (0, 0), "lost writes or torn batches");
}

/// Every file in `dir`, with its bytes.
fn files_in(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Runs each command in `d` (a batch gets one line on stdin): each must
/// exit 3 saying `refusal`, and leave `d/db.redb.wal` byte for byte as it
/// was.
fn refused_by_each(d: &std::path::Path, commands: &[&[&str]], refusal: &str) {
    let wal = d.join("db.redb.wal");
    let before = files_in(&wal);
    for args in commands {
        let out = kvr(d, args, b"{\"key\":\"new\",\"value\":\"v\"}\n");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(refusal), "{args:?}: {}", stderr(&out));
        assert_eq!(files_in(&wal), before, "{args:?} changed the log");
    }
}

/// A server on `d/db.redb` killed (`kill -9`) after five acknowledged
/// PUTs (`k0`..`k4`), which its write-ahead log alone holds.
fn crash_after_five_writes(d: &std::path::Path) {
    let mut s = Server::start(d, &[]);
    for i in 0..5 {
        let k = format!("k{i}");
        assert_eq!(
            http("PUT", &format!("{}/v1/kv/{k}", s.url), &[], Some(b"v")).status,
            200
        );
    }
    s.kill9();
}

/// A server killed (`kill -9`) before its first flush, then its database
/// file moved away with its write-ahead log left behind: a new file at
/// that path is refused (exit 3, saying what to do) by the commands that
/// would create one, `serve` included, and nothing changes. It used to
/// replay the log into a new file, which then held the writes since the
/// old file's last flush and none of those before. Put back, the file
/// recovers every write.
#[test]
fn a_write_ahead_log_left_by_a_missing_database_is_not_made_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crash_after_five_writes(d);
    let wal = d.join("db.redb.wal");
    assert!(wal.is_dir());
    std::fs::rename(d.join("db.redb"), d.join("moved.redb")).unwrap();
    refused_by_each(
        d,
        &[
            &["--db", "db.redb", "put", "new", "v"][..],
            &["--db", "db.redb", "batch"][..],
            &["--db", "db.redb", "serve", "--listen", "127.0.0.1:0"][..],
        ],
        "write-ahead log of a database file that is gone",
    );
    assert!(!d.join("db.redb").exists(), "a new file was made");
    // Put back, the file and its log are the database again.
    std::fs::rename(d.join("moved.redb"), d.join("db.redb")).unwrap();
    let out = kvr(d, &["--db", "db.redb", "stats"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["keys"], 5, "{stats}");
}

/// A crashed server's log is tied to its file by the database id in each
/// segment's header: another database file put at its name (`cp
/// other.redb db.redb`, a restore of the wrong file) is not given that
/// log's writes. Every command refuses, exit 3, and changes nothing; the
/// log still replays into the file it came from. A log an older kvr wrote
/// (no id in its header) is replayed as before.
#[test]
fn a_write_ahead_log_is_never_replayed_into_another_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crash_after_five_writes(d);
    let wal = d.join("db.redb.wal");
    assert!(wal.is_dir());
    let out = kvr(d, &["--db", "other.redb", "put", "x", "y"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::rename(d.join("db.redb"), d.join("crashed.redb")).unwrap();
    std::fs::copy(d.join("other.redb"), d.join("db.redb")).unwrap();
    let bytes = std::fs::read(d.join("db.redb")).unwrap();
    let modified = std::fs::metadata(d.join("db.redb"))
        .unwrap()
        .modified()
        .unwrap();
    refused_by_each(
        d,
        &[
            &["--db", "db.redb", "stats"][..],
            &["--db", "db.redb", "get", "x"][..],
            &["--db", "db.redb", "range"][..],
            &["--db", "db.redb", "put", "new", "v"][..],
            &["--db", "db.redb", "batch"][..],
            &["--db", "db.redb", "serve", "--listen", "127.0.0.1:0"][..],
        ],
        "is the write-ahead log of another database",
    );
    let out = kvr(d, &["--db", "db.redb", "check"], b"");
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("write-ahead log of another database"),
        "{said}"
    );
    // Refused before the file was opened for writing, which rewrites its
    // header and trims its end (it did, while saying nothing changed).
    assert!(std::fs::read(d.join("db.redb")).unwrap() == bytes);
    assert_eq!(
        std::fs::metadata(d.join("db.redb"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    // Moved aside, the file is the other database, untouched.
    std::fs::rename(&wal, d.join("crashed.redb.wal")).unwrap();
    let out = kvr(d, &["--db", "db.redb", "range"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["key"], "x");
    assert_eq!(lines[0]["revision"], 1);
    // Beside the file it came from, the log replays, also when an older
    // kvr wrote it (its headers hold no id).
    for entry in std::fs::read_dir(d.join("crashed.redb.wal")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let mut bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..8], b"KVRWAL01");
            assert_ne!(bytes[8..16], [0; 8], "a new log names its database");
            bytes[8..16].fill(0);
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let out = kvr(d, &["--db", "crashed.redb", "stats"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["keys"], 5, "{stats}");
    assert_eq!(stats["revision"], 5, "{stats}");
    assert!(!d.join("crashed.redb.wal").exists());
}

/// The database ids of a file (`meta`'s `database_id`, `None` in a file an
/// older kvr made) and of each segment of its log (0: an older kvr's).
fn database_ids(db: &std::path::Path) -> (Option<u64>, Vec<u64>) {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let file = {
        let rdb = redb::Database::open(db).unwrap();
        let rtx = redb::ReadableDatabase::begin_read(&rdb).unwrap();
        let meta = rtx.open_table(META).unwrap();
        meta.get("database_id").unwrap().map(|g| g.value())
    };
    let mut name = db.as_os_str().to_owned();
    name.push(".wal");
    let mut segments: Vec<(String, u64)> = std::fs::read_dir(std::path::PathBuf::from(name))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .map(|p| {
                    let bytes = std::fs::read(&p).unwrap();
                    let id = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                    (p.display().to_string(), id)
                })
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    (file, segments.into_iter().map(|(_, id)| id).collect())
}

/// Removes a file's database id, as in a file an older kvr made.
fn forget_database_id(db: &std::path::Path) {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let rdb = redb::Database::open(db).unwrap();
    let wtx = rdb.begin_write().unwrap();
    wtx.open_table(META).unwrap().remove("database_id").unwrap();
    wtx.commit().unwrap();
}

/// A file an older kvr made has no database id: its first server gives it
/// one, durably, before its log's first segment names it. A log that
/// names a database is never replayed into a file with no id (another
/// file, put in its place).
#[test]
fn an_older_file_gets_its_database_id_from_its_first_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db.redb");
    let out = kvr(d, &["--db", "db.redb", "put", "old", "v"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (made, _) = database_ids(&db);
    assert!(made.is_some_and(|id| id != 0), "a new file has an id");
    let out = kvr(d, &["--db", "db.redb", "compact"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(database_ids(&db).0, made, "compaction keeps the id");
    forget_database_id(&db);
    assert_eq!(database_ids(&db), (None, vec![]));
    let mut s = Server::start(d, &[]);
    assert_eq!(
        http("PUT", &format!("{}/v1/kv/new", s.url), &[], Some(b"v")).status,
        200
    );
    s.kill9();
    let (id, segments) = database_ids(&db);
    let id = id.expect("the server gave the file an id");
    assert_ne!(Some(id), made, "drawn anew");
    assert!(
        !segments.is_empty() && segments.iter().all(|&s| s == id),
        "{segments:?}"
    );
    // Its id gone again, the file is not the one the log names.
    forget_database_id(&db);
    let out = kvr(d, &["--db", "db.redb", "stats"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(no id: made by an older kvr)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(database_ids(&db).1, segments, "the log is unchanged");
}
