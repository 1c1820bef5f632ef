//! `kvr backup`, `kvr check`, `kvr compact` through the real binary and a
//! real server.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// The database as a model: key -> (value, revision).
type Model = BTreeMap<String, (String, u64)>;

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = kvr(dir, args, b"");
    assert!(out.status.success(), "kvr {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `kvr --db FILE range` as a model.
fn contents(dir: &Path, db: &str) -> Model {
    run_ok(dir, &["--db", db, "range"])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = v["key"].as_str().unwrap().to_string();
            let value = v["value"].as_str().unwrap().to_string();
            (key, (value, v["revision"].as_u64().unwrap()))
        })
        .collect()
}

fn stats(dir: &Path, db: &str) -> serde_json::Value {
    serde_json::from_str(&run_ok(dir, &["--db", db, "stats"])).unwrap()
}

/// `n` keys `pre/NNNNNN` with values of `size` bytes, as one batch at
/// revisions 1..=n (line i takes revision i).
fn preload(n: usize, size: usize) -> (Vec<u8>, Model) {
    let mut input = Vec::new();
    let mut model = Model::new();
    for i in 0..n {
        let key = format!("pre/{i:06}");
        let value = format!("{i:0size$}");
        input
            .extend_from_slice(format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}\n").as_bytes());
        model.insert(key, (value, i as u64 + 1));
    }
    (input, model)
}

/// An acknowledged write: revision, key, value (`None`: a delete).
type Acked = Arc<Mutex<Vec<(u64, String, Option<String>)>>>;

/// Puts and deletes from `threads` clients until `stop`; every write that
/// succeeds is recorded with its revision.
fn writers(
    url: &str,
    threads: usize,
    stop: &Arc<AtomicBool>,
    acked: &Acked,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (url, stop, acked) = (url.to_string(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    // Overwrite preloaded keys, add new ones, delete some.
                    let (key, delete) = match i % 3 {
                        0 => (format!("pre/{:06}", (i * 7919 + t as u64) % 2000), false),
                        1 => (format!("new/{t}/{i}"), false),
                        _ => (format!("pre/{:06}", (i * 104_729 + t as u64) % 2000), true),
                    };
                    let url = format!("{url}/v1/kv/{key}");
                    let value = format!("t{t}-{i}");
                    let resp = if delete {
                        agent.delete(&url).call()
                    } else {
                        agent.put(&url).send(value.as_bytes())
                    };
                    let r = reply(resp.unwrap());
                    if r.status == 200 {
                        let rev = r.json()["revision"].as_u64().unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push((rev, key, (!delete).then_some(value)));
                    } else {
                        // Missing key (404) or overloaded (503): no revision taken.
                        assert!(
                            r.status == 404 || r.status == 503,
                            "{} {}",
                            r.status,
                            r.text()
                        );
                    }
                }
            })
        })
        .collect()
}

#[test]
fn backup_under_write_load_equals_the_database_at_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (input, mut model) = preload(20_000, 100);
    let out = s.cli(&["batch"], &input);
    assert!(out.status.success(), "{}", stderr(&out));

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let handles = writers(&s.url, 3, &stop, &acked);
    // Writes are under way before the backup starts ...
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = s.cli(&["backup", "b.redb", "--json"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let before_stop = acked.lock().unwrap().len();
    // ... and go on after it.
    while acked.lock().unwrap().len() < before_stop + 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let revision = summary["revision"].as_u64().unwrap();

    // The model at the backup's revision: the preload, then every
    // acknowledged write up to it, in revision order.
    let mut acked = acked.lock().unwrap().clone();
    acked.sort();
    let revisions: Vec<u64> = acked.iter().map(|a| a.0).collect();
    let expected: Vec<u64> = (20_001..20_001 + acked.len() as u64).collect();
    assert_eq!(
        revisions, expected,
        "every revision acknowledged exactly once"
    );
    assert!(
        revision > 20_000 && revision < *revisions.last().unwrap(),
        "{revision}"
    );
    for (rev, key, value) in acked.iter().filter(|a| a.0 <= revision) {
        match value {
            Some(v) => model.insert(key.clone(), (v.clone(), *rev)),
            None => model.remove(key),
        };
    }
    assert_eq!(summary["keys"].as_u64().unwrap(), model.len() as u64);
    let bytes = std::fs::metadata(dir.path().join("b.redb")).unwrap().len();
    assert_eq!(summary["bytes"].as_u64().unwrap(), bytes);
    let copy = contents(dir.path(), "b.redb");
    assert!(
        copy == model,
        "the backup differs from the model at revision {revision}"
    );
    let st = stats(dir.path(), "b.redb");
    assert_eq!(st["revision"].as_u64().unwrap(), revision);
    assert_eq!(st["keys"].as_u64().unwrap(), model.len() as u64);
    assert!(run_ok(dir.path(), &["--db", "b.redb", "check"]).starts_with("ok: "));

    // The backup is a database: it serves reads and writes, going on from its revision.
    let put = run_ok(
        dir.path(),
        &["--db", "b.redb", "put", "--json", "after", "x"],
    );
    assert_eq!(put.trim(), format!("{{\"revision\":{}}}", revision + 1));
    assert_eq!(run_ok(dir.path(), &["--db", "b.redb", "get", "after"]), "x");
    let b = Server::spawn_on(dir.path(), "b.redb");
    let r = http("GET", &format!("{}/v1/kv/pre/000001", b.url), &[], None);
    let expected = model.get("pre/000001").map(|(v, _)| v.as_str());
    match expected {
        Some(v) => assert_eq!(r.text(), v),
        None => assert_eq!(r.status, 404),
    }
    let w = http("PUT", &format!("{}/v1/kv/served", b.url), &[], Some(b"y"));
    assert_eq!(w.json()["revision"].as_u64().unwrap(), revision + 2);
}

#[test]
fn backup_from_a_file_equals_it_and_refuses_an_existing_dest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, _) = preload(3000, 50);
    let out = kvr(d, &["--db", "db.redb", "batch"], &input);
    assert!(out.status.success());
    run_ok(d, &["--db", "db.redb", "delete", "pre/000007"]);
    let binary = kvr(
        d,
        &["--db", "db.redb", "batch"],
        b"{\"key_b64\":\"/wA=\",\"value_b64\":\"AP8=\"}\n",
    );
    assert!(binary.status.success());
    let out = kvr(d, &["--db", "db.redb", "backup", "b.redb", "--json"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing on stderr but the summary (no word about its temporary file).
    assert_eq!(stderr(&out), "", "--json prints the summary on stdout only");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // It holds all the data: only its owner may read it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("b.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(summary["revision"], 3002);
    assert_eq!(summary["keys"], 3000);
    let range = |db| run_ok(d, &["--db", db, "range"]);
    assert_eq!(range("b.redb"), range("db.redb"));
    assert_eq!(stats(d, "b.redb")["revision"], 3002);

    // An existing DEST is refused (exit 2) and left as it was.
    std::fs::write(d.join("taken"), b"precious").unwrap();
    let out = kvr(d, &["--db", "db.redb", "backup", "taken"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("taken")).unwrap(), b"precious");
    // --force replaces it.
    run_ok(d, &["--db", "db.redb", "backup", "taken", "--force"]);
    assert_eq!(range("taken"), range("db.redb"));
    // DEST may not be the database itself, even with --force.
    let before = std::fs::read(d.join("db.redb")).unwrap();
    let out = kvr(d, &["--db", "db.redb", "backup", "db.redb", "--force"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("db.redb")).unwrap(), before);
    // A DEST in a missing directory: exit 1 naming it, as for put.
    let out = kvr(d, &["--db", "db.redb", "backup", "no/such/b.redb"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("kvr: error:") && stderr(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
    // A missing database: exit 1, no DEST.
    let out = kvr(d, &["--db", "none.redb", "backup", "c.redb"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!d.join("c.redb").exists() && !d.join("none.redb").exists());
    assert_eq!(leftovers(d), Vec::<String>::new());
}

/// `backup --force` replaces a file only: a named pipe (whose open to
/// lock it waited for a writer for ever, holding the source's lock), a
/// device (`--force /dev/null` replaced the node with a regular file) and
/// a directory (refused by the rename only after the whole copy) are exit
/// 2 before anything is copied, and left as they were.
#[test]
fn backup_force_replaces_only_a_file() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, &["--db", "db.redb", "put", "k", "v"]);
    let pipe = d.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    assert!(made.unwrap().success());
    std::fs::create_dir(d.join("folder")).unwrap();
    std::os::unix::fs::symlink("/dev/null", d.join("null")).unwrap();
    // Without --force too: the message does not send the user to a
    // --force that would not help.
    let cases = [
        ("pipe", "is not a regular file"),
        ("null", "is not a regular file"),
        ("folder", "is a directory"),
    ];
    for ((dest, says), force) in cases.iter().flat_map(|c| [(c, true), (c, false)]) {
        let mut args = vec!["--db", "db.redb", "backup", dest];
        if force {
            args.insert(3, "--force");
        }
        let mut child = kvr_cmd(d)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("backup --force {dest} did not end in 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{dest}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("kvr: error: DEST {dest} {says}"))
                && err.contains("name a file"),
            "{dest}: {err}"
        );
        assert_eq!(leftovers(d), Vec::<String>::new(), "{dest}");
    }
    assert!(std::fs::metadata(&pipe).unwrap().file_type().is_fifo());
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(d.join("folder").is_dir());
    // The source is neither changed nor left locked.
    assert_eq!(run_ok(d, &["--db", "db.redb", "get", "k"]), "v");
}

#[test]
fn backup_with_db_of_a_served_file_suggests_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    assert!(s.cli(&["put", "k", "v"], b"").status.success());
    let out = kvr(dir.path(), &["--db", "db.redb", "backup", "b.redb"], b"");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(&format!("--server {}", s.url)),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("b.redb").exists());
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    // And through the server, an unknown parameter is a 400 naming it.
    let r = http("GET", &format!("{}/v1/backup?limit=1", s.url), &[], None);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("limit"), "{}", r.text());
    let r = http("GET", &format!("{}/v1/backup", s.url), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("1"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-kvr-backup")
    );
}

/// A backup never replaces a database file a server holds: the server
/// would go on writing to the replaced file, and what it acknowledged
/// after the backup would be gone once it stops (audit finding). Nor one
/// with a write-ahead log still to replay.
#[test]
fn backup_force_refuses_a_dest_a_server_holds_or_with_a_log_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s = Server::start(d, &[]);
    assert!(s.cli(&["put", "a", "1"], b"").status.success());
    run_ok(d, &["--db", "other.redb", "put", "s", "1"]);
    let served = d.join("db.redb");
    for args in [
        vec!["--server", s.url.as_str(), "backup", "--force"],
        vec!["--db", "other.redb", "backup", "--force"],
    ] {
        let mut args = args.clone();
        args.push(served.to_str().unwrap());
        let out = kvr(d, &args, b"");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("kvr: error: DEST ")
                && stderr(&out).contains("is a database in use by")
                && stderr(&out).contains("serve"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(d), Vec::<String>::new());
    }
    // The server's file is still the one it writes: a write acknowledged
    // now is there after it stops.
    assert!(s.cli(&["put", "b", "2"], b"").status.success());
    assert!(s.terminate().success());
    assert_eq!(run_ok(d, &["--db", "db.redb", "get", "b"]), "2");
    assert_eq!(stats(d, "db.redb")["revision"], 2);

    // A DEST whose server was killed: its log holds writes the file does
    // not, and would be replayed onto the backup.
    let mut s = Server::start(d, &[]);
    assert!(s.cli(&["put", "c", "3"], b"").status.success());
    s.kill9();
    let out = kvr(
        d,
        &[
            "--db",
            "other.redb",
            "backup",
            "--force",
            served.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("write-ahead log"), "{}", stderr(&out));
    assert_eq!(run_ok(d, &["--db", "db.redb", "get", "c"]), "3");
    // Once the log is replayed, the backup may replace it.
    run_ok(d, &["--db", "other.redb", "backup", "--force", "db.redb"]);
    assert_eq!(contents(d, "db.redb"), contents(d, "other.redb"));
}

/// Temporary backup files left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".kvr-backup"))
        .collect()
}

/// Starts `kvr --db DB backup out.redb` on a database of ~40 MB and
/// returns it once its temporary file has grown past 1 MiB: midway.
fn backup_midway(dir: &Path) -> std::process::Child {
    let (input, _) = preload(40_000, 1000);
    let out = kvr(dir, &["--db", "db.redb", "batch"], &input);
    assert!(out.status.success());
    let mut child = kvr_cmd(dir)
        .args(["--db", "db.redb", "backup", "out.redb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A bound against a hang, not a timed assertion.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let grown = std::fs::read_dir(dir).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().ends_with(".kvr-backup")
                && std::fs::metadata(e.path().join("backup.redb")).is_ok_and(|m| m.len() > 1 << 20)
        });
        if grown {
            return child;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the backup never grew");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killing_a_backup_midway_leaves_no_dest() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = backup_midway(dir.path());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!dir.path().join("out.redb").exists());
    // A later backup to the same DEST works.
    run_ok(dir.path(), &["--db", "db.redb", "backup", "out.redb"]);
    assert_eq!(stats(dir.path(), "out.redb")["keys"], 40_000);
}

#[test]
fn sigterm_stops_a_backup_and_removes_its_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = backup_midway(dir.path());
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(!dir.path().join("out.redb").exists());
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

// ---- check ----

/// A database of `n` keys written through the CLI.
fn small_db(dir: &Path, n: usize) {
    let (input, _) = preload(n, 200);
    assert!(
        kvr(dir, &["--db", "db.redb", "batch"], &input)
            .status
            .success()
    );
}

/// Runs `kvr check` on a damaged file: exit 3, stdout names `needle`, and
/// the file's bytes are unchanged.
fn check_fails(dir: &Path, needle: &str) -> String {
    let before = std::fs::read(dir.join("db.redb")).unwrap();
    let out = kvr(dir, &["--db", "db.redb", "check"], b"");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(needle),
        "{needle:?} not in {}",
        stdout(&out)
    );
    // After any notes.
    assert!(
        stderr(&out)
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("kvr: error: check found")),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read(dir.join("db.redb")).unwrap() == before,
        "check changed the file"
    );
    stdout(&out)
}

const KV: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

#[test]
fn check_passes_a_good_file_and_leaves_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 500);
    run_ok(dir.path(), &["--db", "db.redb", "delete", "pre/000003"]);
    let before = std::fs::read(dir.path().join("db.redb")).unwrap();
    let out = run_ok(dir.path(), &["--db", "db.redb", "check"]);
    assert_eq!(out, "ok: 499 keys, revision 501\n");
    let out = run_ok(dir.path(), &["--db", "db.redb", "check", "--json"]);
    // In the README's order, not sorted.
    assert_eq!(
        out,
        "{\"ok\":true,\"keys\":499,\"revision\":501,\"expired\":0}\n"
    );
    assert!(std::fs::read(dir.path().join("db.redb")).unwrap() == before);
    // A file that does not exist: exit 1. With --server: exit 2.
    let out = kvr(dir.path(), &["--db", "none.redb", "check"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("none.redb").exists());
    let out = kvr(
        dir.path(),
        &["--server", "http://127.0.0.1:9", "check"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = kvr(
        dir.path(),
        &["--server", "http://127.0.0.1:9", "compact"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A backup from a server that cannot be reached: exit 5, no DEST, no leftovers.
    let out = kvr(
        dir.path(),
        &["--server", "http://127.0.0.1:9", "backup", "x.redb"],
        b"",
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(!dir.path().join("x.redb").exists());
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn check_reports_a_flipped_byte_in_a_page() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 2000);
    // Flip a byte inside a stored value (a leaf page of table kv).
    let path = dir.path().join("db.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let value = format!("{:0200}", 1234);
    let at = bytes
        .windows(value.len())
        .position(|w| w == value.as_bytes())
        .expect("the value is in the file");
    bytes[at + 100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    check_fails(dir.path(), "problem: ");
}

#[test]
fn a_damaged_page_that_makes_redb_panic_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 500);
    // Zeros over the page at 4096: redb opens the file and reaches an
    // `unreachable!` (every command exited 101, `check` too).
    let path = dir.path().join("db.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096..4608].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let out = check_fails(
        dir.path(),
        "problem: file: the storage engine stopped reading it",
    );
    assert!(out.contains("the file is damaged"), "{out}");
    for args in [&["stats"][..], &["get", "pre/000001"], &["put", "k", "v"]] {
        let out = kvr(dir.path(), &[&["--db", "db.redb"][..], args].concat(), b"");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.starts_with("kvr: error: storage error: the storage engine (redb) stopped")
                && text.contains("db.redb may be damaged: kvr --db db.redb check tells")
                && !text.contains("panicked"),
            "{args:?}: {text}"
        );
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "{args:?} changed the file"
        );
    }
}

#[test]
fn a_damaged_page_met_while_serving_fails_those_requests_not_the_server() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 10_000);
    // Zeros over the leaf that holds pre/007500: the server opens the
    // file, and redb panics (`unreachable!`) where a read meets the page.
    let path = dir.path().join("db.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(10).position(|w| w == b"pre/007500").unwrap() / 4096 * 4096;
    bytes[at..at + 4096].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    if cfg!(debug_assertions) {
        // redb's debug build checks every page when it opens a file (the
        // release build reads a page when it is needed): the server stops
        // at start, with the same message as any command.
        let out = kvr(
            dir.path(),
            &["--db", "db.redb", "serve", "--listen", "127.0.0.1:0"],
            b"",
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("db.redb may be damaged: kvr --db db.redb check tells"),
            "{}",
            stderr(&out)
        );
        return;
    }
    let log = dir.path().join("serve.log");
    let server = Server::spawn(
        dir.path(),
        &["--quiet"],
        &[],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    // A stream over it breaks off, and the CLI says so: never a short
    // result with exit 0 (it was: the stream ended as if complete).
    let out = server.cli(&["range", "--keys-only"], b"");
    let printed = stdout(&out).lines().count();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{printed} keys, {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("broke off"), "{}", stderr(&out));
    assert!(printed < 10_000, "{printed}");
    let out = server.cli(&["backup", "copy.redb"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!dir.path().join("copy.redb").exists());
    // A page over it: 500 `internal`, answered (the connection was dropped).
    let r = http(
        "GET",
        &format!("{}/v1/range?limit=10000&keys_only=true", server.url),
        &[],
        None,
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("\"error\":\"internal\""), "{}", r.text());
    // The server goes on: the keys before the damage read as ever.
    let r = http(
        "GET",
        &format!("{}/v1/kv/pre/000001", server.url),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("{:0200}", 1));
    drop(server);
    // Its log says what failed, where, and what tells, without a backtrace.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("range stream failed: storage error: the storage engine (redb) stopped")
            && text.contains("backup stream failed: storage error")
            && text.contains("db.redb may be damaged: kvr --db ")
            && !text.contains("panicked"),
        "{text}"
    );
}

#[test]
fn check_reports_counters_that_disagree_with_the_data() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 100);
    {
        let db = redb::Database::open(dir.path().join("db.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut meta = w.open_table(META).unwrap();
            meta.insert("keys", 99).unwrap();
            meta.insert("revision", 50).unwrap();
        }
        w.commit().unwrap();
    }
    let out = check_fails(
        dir.path(),
        "the keys counter says 99, but table kv holds 100 keys",
    );
    assert!(
        out.contains("the revision counter 50 is below revision 100 of key \"pre/000099\""),
        "{out}"
    );
    // With a log left by a crashed server, counters trail the records a
    // flush in parts committed before its last part (a LazyFS power-loss
    // run found check reporting that), by what the log holds beyond the
    // revision counter and no more. This log holds nothing: the same
    // problems, said to be beyond what it accounts for.
    let log = dir.path().join("db.redb.wal");
    std::fs::create_dir(&log).unwrap();
    let out = check_fails(
        dir.path(),
        "the keys counter says 99, but table kv holds 100 keys, more than the log left can \
         account for (it holds 0 operations)",
    );
    assert!(
        out.contains(
            "the revision counter 50 is below revision 100 of key \"pre/000099\", more than \
             the log left can account for (it reaches revision 50)"
        ),
        "{out}"
    );
    std::fs::remove_dir(&log).unwrap();
    check_fails(dir.path(), "the keys counter says 99");
    // --json: the same problems in one object, the same exit 3.
    let out = kvr(dir.path(), &["--db", "db.redb", "check", "--json"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(
        problems.iter().any(|p| p["where"] == "table meta"
            && p["what"] == "the keys counter says 99, but table kv holds 100 keys"),
        "{report}"
    );
    assert!(stderr(&out).starts_with("kvr: error: check found 2 problems"));
}

#[test]
fn check_reports_a_record_that_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 10);
    {
        let db = redb::Database::open(dir.path().join("db.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut kv = w.open_table(KV).unwrap();
            kv.insert(b"pre/000004".as_slice(), b"\x07junk".as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    check_fails(
        dir.path(),
        "problem: table kv, key \"pre/000004\": record does not decode",
    );
}

#[test]
fn check_reports_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    small_db(dir.path(), 2000);
    let path = dir.path().join("db.redb");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    check_fails(dir.path(), "problem: ");
}

/// What `kill -9` leaves (a file not closed cleanly, the log of the
/// writes since the last flush) is not damage: the check reads the log
/// through as its replay will, passes, says on stderr what the next open
/// will do, and changes neither the file nor the log.
#[test]
fn a_check_after_a_crash_reads_the_log_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    for (k, v) in [("k", "v"), ("l", "w"), ("k", "x")] {
        assert!(s.cli(&["put", k, v], b"").status.success());
    }
    // While served: in use, exit 3.
    let out = kvr(dir.path(), &["--db", "db.redb", "check"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    // A crash leaves the log: the file holds none of the writes yet.
    s.kill9();
    let log = dir.path().join("db.redb.wal");
    let files = |dir: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let (db_before, log_before) = (files(dir.path()), files(&log));
    assert!(!log_before.is_empty());
    for args in [&["check"][..], &["check", "--json"]] {
        let out = kvr(dir.path(), &[&["--db", "db.redb"][..], args].concat(), b"");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let want = match args.len() {
            1 => "ok: 0 keys, revision 0\n",
            _ => "{\"ok\":true,\"keys\":0,\"revision\":0,\"expired\":0}\n",
        };
        assert_eq!(stdout(&out), want);
        let err = stderr(&out);
        assert!(
            err.contains("kvr: note: db.redb was not closed cleanly")
                && err.contains(
                    "kvr: note: a server did not stop cleanly: its write-ahead log \
                     db.redb.wal holds 3 requests after revision 0, up to revision 3 at most"
                ),
            "{err}"
        );
    }
    assert!(files(dir.path()) == db_before, "the file is left alone");
    assert!(files(&log) == log_before, "the log is left alone");
    // Any command replays it; then the check passes with nothing to say.
    assert_eq!(run_ok(dir.path(), &["--db", "db.redb", "get", "k"]), "x");
    let out = kvr(dir.path(), &["--db", "db.redb", "check"], b"");
    assert_eq!(stdout(&out), "ok: 2 keys, revision 3\n");
    assert_eq!(stderr(&out), "");
}

/// A log the replay would refuse is a problem: here the file was put back
/// from a copy older than the log's first write, so revision 2 is in
/// neither. The check says so (exit 3) as the next open will.
#[test]
fn a_check_finds_a_log_that_does_not_continue_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    let older = dir.path().join("older.redb");
    let mut s = Server::start(dir.path(), &[]);
    assert!(s.cli(&["put", "a", "1"], b"").status.success());
    s.terminate();
    std::fs::copy(&db, &older).unwrap();
    let mut s = Server::start(dir.path(), &[]);
    assert!(s.cli(&["put", "b", "2"], b"").status.success());
    s.terminate();
    let mut s = Server::start(dir.path(), &[]);
    assert!(s.cli(&["put", "c", "3"], b"").status.success());
    s.kill9();
    std::fs::rename(&older, &db).unwrap();
    let out = check_fails(dir.path(), "problem: log db.redb.wal: ");
    assert!(
        out.contains("has a record at revision 3 where 2 was expected"),
        "{out}"
    );
    // The open refuses it alike, and the file keeps what it held.
    let out = kvr(dir.path(), &["--db", "db.redb", "get", "c"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has a record at revision 3 where 2 was expected"),
        "{}",
        stderr(&out)
    );
    std::fs::rename(dir.path().join("db.redb.wal"), dir.path().join("aside.wal")).unwrap();
    assert_eq!(run_ok(dir.path(), &["--db", "db.redb", "get", "a"]), "1");
}

// ---- compact ----

/// After a crash, the size before is the file's once the open has
/// replayed the log into it: it said the file's size before the replay, so
/// a compaction seemed to grow the file and give back what it had not
/// (found by an audit).
#[test]
fn compact_after_a_crash_counts_from_the_replayed_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let value = "v".repeat(1000);
    let lines: String = (0..3000)
        .map(|i| format!("{{\"key\":\"k{i:05}\",\"value\":\"{value}\"}}\n"))
        .collect();
    assert!(s.cli(&["batch"], lines.as_bytes()).status.success());
    s.kill9();
    let crashed = std::fs::metadata(dir.path().join("db.redb")).unwrap().len();
    let out = run_ok(dir.path(), &["--db", "db.redb", "compact", "--json"]);
    let sizes: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (before, after) = (
        sizes["before"].as_u64().unwrap(),
        sizes["after"].as_u64().unwrap(),
    );
    assert!(before > crashed + 3_000_000, "{out} (crashed: {crashed})");
    assert!(after <= before, "{out}");
    assert_eq!(
        run_ok(dir.path(), &["--db", "db.redb", "range", "--count"]),
        "{\"count\":3000}\n"
    );
}

#[test]
fn compact_shrinks_a_file_with_many_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, _) = preload(20_000, 500);
    assert!(
        kvr(d, &["--db", "db.redb", "batch"], &input)
            .status
            .success()
    );
    let deletes: String = (0..20_000)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("{{\"op\":\"delete\",\"key\":\"pre/{i:06}\"}}\n"))
        .collect();
    assert!(
        kvr(d, &["--db", "db.redb", "batch"], deletes.as_bytes())
            .status
            .success()
    );
    let range_before = run_ok(d, &["--db", "db.redb", "range"]);
    let before = std::fs::metadata(d.join("db.redb")).unwrap().len();
    let out = run_ok(d, &["--db", "db.redb", "compact"]);
    let after = std::fs::metadata(d.join("db.redb")).unwrap().len();
    assert!(after < before / 2, "{before} -> {after}");
    // What was given back in its unit: a small file's halving read "0.0
    // MB given back" (found by an audit).
    let given = kvr::units::human_bytes((before - after) as usize);
    assert!(
        out.contains(&format!(
            "{before} bytes before, {after} bytes after ({given} given back)"
        )),
        "{out}"
    );
    assert_eq!(run_ok(d, &["--db", "db.redb", "range"]), range_before);
    // The size compact reports is the one the next commands see: no growth
    // at the first open after it.
    assert_eq!(stats(d, "db.redb")["file_bytes"], after);
    assert_eq!(std::fs::metadata(d.join("db.redb")).unwrap().len(), after);
    assert_eq!(
        run_ok(d, &["--db", "db.redb", "check"]),
        "ok: 2000 keys, revision 38000\n"
    );
    // --json: the sizes alone; a compacted file has nothing to give back.
    let out = run_ok(d, &["--db", "db.redb", "compact", "--json"]);
    let sizes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sizes["before"], after, "{out}");
    assert!(sizes["after"].as_u64().unwrap() <= after, "{out}");
    assert_eq!(run_ok(d, &["--db", "db.redb", "range"]), range_before);
    // On a file a server holds: exit 3, the file unchanged.
    let _server = Server::start(d, &[]);
    let bytes = std::fs::read(d.join("db.redb")).unwrap();
    let out = kvr(d, &["--db", "db.redb", "compact"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Not "--server": compact refuses it; the holder has to stop.
    assert!(
        stderr(&out).contains("stop that process first") && !stderr(&out).contains("--server"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(d.join("db.redb")).unwrap() == bytes);
}

/// A stand-in server that answers `/healthz` probes, and each of the first
/// `backups` `GET /v1/backup` requests with `head` and then only the first
/// half of `body` (chunked, no final chunk), closing the connection. Then
/// it stops listening, as a server that was killed. Returns its URL and
/// the count of backups it began.
fn breaking_backup_server(
    head: String,
    body: Vec<u8>,
    backups: usize,
) -> (String, std::thread::JoinHandle<usize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut begun = 0;
        while begun < backups {
            let (mut c, _) = listener.accept().unwrap();
            // Requests on this connection until it is closed or broken.
            loop {
                let seen = read_head(&mut c);
                if seen.starts_with(b"GET /healthz") {
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
                    continue;
                }
                if seen.starts_with(b"GET /v1/backup") {
                    begun += 1;
                    let half = &body[..body.len() / 2];
                    let _ = c.write_all(head.as_bytes());
                    let _ = c.write_all(format!("{:x}\r\n", half.len()).as_bytes());
                    let _ = c.write_all(half);
                    let _ = c.write_all(b"\r\n");
                }
                break;
            }
        }
        begun
    });
    (url, handle)
}

/// A request's head read off `c`, byte by byte (the body, if any, stays
/// unread), up to its blank line or the connection's end.
fn read_head(c: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    seen
}

/// A server on a store of `keys` keys, the model of its data, and its
/// backup stream, whole: the head to send it again with (chunked), and
/// its body, for stand-ins that break it off or stall it.
fn served_backup(d: &Path, keys: usize) -> (Server, Model, String, Vec<u8>) {
    let (input, model) = preload(keys, 100);
    assert!(
        kvr(d, &["--db", "db.redb", "batch"], &input)
            .status
            .success()
    );
    let server = Server::start(d, &[]);
    let resp = agent()
        .get(format!("{}/v1/backup", server.url))
        .call()
        .unwrap();
    let revision = resp.headers()["x-kvr-revision"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.into_body().read_to_vec().unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-kvr-backup\r\nx-kvr-revision: \
         {revision}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    (server, model, head, body)
}

/// A server that answers `/healthz` and sends the head and first half of
/// `body` for each `/v1/backup`, then stalls (the connection held open,
/// nothing more sent) until the client goes; it keeps listening until a
/// `GET /stop`. Returns its URL and its backups begun when it stops.
fn stalling_backup_server(head: String, body: Vec<u8>) -> (String, std::thread::JoinHandle<usize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let begun = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for c in listener.incoming() {
            let mut c = c.unwrap();
            let seen = read_head(&mut c);
            if seen.starts_with(b"GET /stop") {
                break;
            }
            let (head, body, begun) = (head.clone(), body.clone(), begun.clone());
            std::thread::spawn(move || {
                if seen.starts_with(b"GET /v1/backup") {
                    begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let half = &body[..body.len() / 2];
                    let _ = c.write_all(head.as_bytes());
                    let _ = c.write_all(format!("{:x}\r\n", half.len()).as_bytes());
                    let _ = c.write_all(half);
                    // Held until the client closes it.
                    let _ = c.read_to_end(&mut Vec::new());
                } else {
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    );
                }
            });
        }
        begun.load(std::sync::atomic::Ordering::SeqCst)
    });
    (url, handle)
}

/// A stream that stalls sends the backup on to the next server of the
/// list: the staller still answers, and was asked again for each restart
/// until they ran out (found by an audit; exit 5 though the next server
/// was up).
#[test]
fn a_backup_whose_stream_stalls_moves_on_through_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, model, head, body) = served_backup(d, 2000);
    let (staller, fake) = stalling_backup_server(head, body);
    let list = format!("{staller},{}", server.url);
    let out = kvr(
        d,
        &[
            "--timeout",
            "2",
            "--server",
            &list,
            "backup",
            "b.redb",
            "--json",
        ],
        b"",
    );
    let _ = agent().get(format!("{staller}/stop")).call();
    assert_eq!(fake.join().unwrap(), 1, "the staller was asked again");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("stalled") && err.matches("starting again").count() == 1,
        "{err}"
    );
    let done: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(done["keys"], 2000);
    assert_eq!(contents(d, "b.redb"), model);
    assert_eq!(leftovers(d), Vec::<String>::new());
}

/// A backup through a `--server` list whose stream breaks off midway (its
/// server killed, a failover) starts again through the list and writes the
/// whole copy, from the server that answers (audit finding: it exited 3
/// though the next server was up). The restarts are bounded, once per
/// server of the list: a list whose streams all break fails, exit 3,
/// leaving no DEST. One server alone is not asked again (as for `range`).
#[test]
fn a_backup_whose_stream_breaks_starts_again_through_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, model, head, body) = served_backup(d, 5000);
    assert!(head.contains("x-kvr-revision: 5000\r\n"), "{head}");
    assert!(body.len() > 500_000, "{}", body.len());

    // The first server breaks off; the second is the real one.
    let (broken, fake) = breaking_backup_server(head.clone(), body.clone(), 1);
    let list = format!("{broken},{}", server.url);
    let out = kvr(d, &["--server", &list, "backup", "b.redb", "--json"], b"");
    assert_eq!(fake.join().unwrap(), 1);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the backup stream from kvr server at {broken} broke off"
        )) && err.contains("starting again through the --server list"),
        "{err}"
    );
    let done: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(done["revision"], 5000);
    assert_eq!(done["keys"], 5000);
    assert_eq!(contents(d, "b.redb"), model);
    assert_eq!(leftovers(d), Vec::<String>::new());

    // Every stream breaks: two servers, two restarts, three streams begun;
    // then the error, and no DEST.
    let (broken, fake) = breaking_backup_server(head.clone(), body.clone(), 3);
    let list = format!("{broken},{broken}");
    let out = kvr(d, &["--server", &list, "backup", "c.redb"], b"");
    assert_eq!(fake.join().unwrap(), 3);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("starting again").count(),
        2,
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("broke off"), "{}", stderr(&out));
    assert!(!d.join("c.redb").exists());
    assert_eq!(leftovers(d), Vec::<String>::new());

    // One server: its broken stream is the answer.
    let (broken, fake) = breaking_backup_server(head, body, 1);
    let out = kvr(d, &["--server", &broken, "backup", "c.redb"], b"");
    assert_eq!(fake.join().unwrap(), 1);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!stderr(&out).contains("starting again"), "{}", stderr(&out));
    assert!(!d.join("c.redb").exists());
}

/// A read that fails on the file (here: the file cut short under the
/// server, then put back) latches redb's "previous I/O error", after which
/// it refuses every read until the file is reopened. The server reopens it
/// once requests fail, at most every second, and reads answer again once
/// the file can be read, without a restart and with no write to flush: a
/// server that only read stayed failing until it was restarted (an audit,
/// with a fault-injecting file system). `/readyz` meanwhile says why when
/// a reopen itself failed.
#[test]
fn reads_recover_after_the_file_could_not_be_read_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let value = "r".repeat(4000);
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"key\":\"k{i:05}\",\"value\":\"{value}\"}}\n"))
        .collect();
    let out = kvr(dir.path(), &["--db", "db.redb", "batch"], lines.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.path().join("db.redb");
    let whole = std::fs::read(&path).unwrap();
    let s = Server::start(dir.path(), &["--cache-mib", "16"]);
    let get = |i: u32| http("GET", &format!("{}/v1/kv/k{i:05}", s.url), &[], None);
    assert_eq!(get(7).status, 200);

    // The file cut to a tenth under the server: reads of what no cache
    // holds fail.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(whole.len() as u64 / 10).unwrap();
    let failed = (0..20_000).step_by(97).any(|i| get(i).status == 500);
    assert!(failed, "no read failed on the cut file");
    // The file back as it was (the same inode).
    std::os::unix::fs::FileExt::write_all_at(&file, &whole, 0).unwrap();
    file.sync_all().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failing: Vec<u32> = (0..20_000)
            .step_by(97)
            .filter(|&i| get(i).status != 200)
            .collect();
        if failing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads still fail after the file was put back: {failing:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in (0..20_000).step_by(997) {
        let r = get(i);
        assert_eq!((r.status, r.body.len()), (200, 4000), "k{i:05}");
    }
    let ready = http("GET", &format!("{}/readyz", s.url), &[], None);
    assert_eq!(ready.status, 200, "{}", ready.text());
    // And it takes writes.
    let put = http("PUT", &format!("{}/v1/kv/after", s.url), &[], Some(b"w"));
    assert_eq!(put.status, 200, "{}", put.text());
}
