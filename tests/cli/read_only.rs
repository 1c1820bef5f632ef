//! Read commands with `--db` (`get`, `range`, `stats`, `backup`) open the
//! file read-only: they write nothing to it and work on a file the user
//! may only read (`src/store/read_only.rs`).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::util::{Env, KVR, parse_lines};

/// The file's bytes and modification time.
fn fingerprint(path: &Path) -> (Vec<u8>, i64, i64) {
    let meta = std::fs::metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// Every read command, each checked for its output.
fn read_everything(env: &Env, kvr: impl Fn(&[&str]) -> super::util::Run) {
    let got = kvr(&["get", "a"]).ok();
    assert_eq!(got.out.stdout, b"1");
    let lines = parse_lines(&kvr(&["range"]).ok().stdout_text());
    let keys: Vec<_> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(
        kvr(&["range", "--count"]).ok().stdout_text(),
        "{\"count\":2}\n"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&kvr(&["stats"]).ok().stdout_text()).unwrap();
    assert_eq!(
        (stats["keys"].as_u64(), stats["revision"].as_u64()),
        (Some(2), Some(3))
    );
    let dest = env.path("out").join("copy.redb");
    kvr(&["backup", dest.to_str().unwrap()]).ok();
    let copy = env
        .kvr_bare(["--db", dest.to_str().unwrap(), "get", "b"])
        .ok();
    assert_eq!(copy.out.stdout, b"2");
}

fn three_writes(env: &Env) {
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    env.kvr(["put", "gone", "x", "--ttl", "1"]).ok();
}

/// Before, redb's open and close for writing rewrote the header (and
/// trimmed the file) on every `kvr get`: backup tools and `make` saw a
/// changed file that no command had changed.
#[test]
fn read_commands_leave_the_file_as_it_was() {
    let env = Env::new();
    three_writes(&env);
    std::fs::create_dir(env.path("out")).unwrap();
    // The key with a TTL expires: reads skip it, and none of them deletes it.
    std::thread::sleep(Duration::from_millis(1100));
    let before = fingerprint(&env.db());
    read_everything(&env, |args| env.kvr(args));
    let after = fingerprint(&env.db());
    assert!(before.0 == after.0, "the file's bytes changed");
    assert_eq!((before.1, before.2), (after.1, after.2), "mtime changed");
    // A write still sweeps the expired key.
    env.kvr(["put", "c", "3"]).ok();
    assert_eq!(env.stats()["keys"], 3);
}

/// As `sqlite3` does, reads work on a file and directory the user may only
/// read (another user's file, a read-only mount or snapshot); a write is
/// refused with the system's reason and changes nothing.
#[test]
fn read_commands_work_on_a_file_that_may_only_be_read() {
    let env = Env::new();
    three_writes(&env);
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = fingerprint(&env.db());
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root may write anything: run as nobody then.
    let as_reader = |args: &[&str]| {
        let mut run = env.kvr(args);
        if is_root() {
            run.cmd.uid(65534).gid(65534);
        }
        run
    };
    read_everything(&env, as_reader);
    writes_are_refused(&env.db(), as_reader, "this user may only read it");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(fingerprint(&env.db()) == before, "the file changed");
}

/// Every write command on a file that may not be written: refused with
/// exit 3, naming the file and `why` (not "cannot open F"), unless the
/// file refuses it as it stands: then the real problem is said (a bad
/// line, a failed condition, a missing key), as on a writable file.
fn writes_are_refused(db: &Path, kvr: impl Fn(&[&str]) -> super::util::Run, why: &str) {
    let db = db.display();
    let cannot = format!("kvr: error: cannot write {db}: {why} (get, range, stats and backup");
    for args in [
        &["put", "a", "9"][..],
        &["put", "a", "9", "--if-revision", "1"],
        &["delete", "a"],
        &["delete", "--prefix", "a"],
        &["compact"],
    ] {
        let refused = kvr(args).code(3);
        assert!(
            refused.stderr_text().starts_with(&cannot),
            "{args:?}: {}",
            refused.report()
        );
    }
    let good = "{\"key\":\"c\",\"value\":\"3\"}\n";
    let refused = kvr(&["batch"]).stdin(good).code(3);
    assert!(
        refused.stderr_text().starts_with(&cannot),
        "{}",
        refused.report()
    );
    kvr(&["put", "a", "9", "--if-revision", "7"])
        .code(4)
        .stderr_has("precondition failed");
    kvr(&["delete", "zz"]).code(1).stderr_has("not found");
    kvr(&["batch"])
        .stdin("{\"key\":\"c\"}\n")
        .code(2)
        .stderr_has("line 1");
    kvr(&["batch"])
        .stdin("{\"key\":\"a\",\"value\":\"9\",\"if_revision\":7}\n")
        .code(4)
        .stderr_has("precondition failed");
}

/// The same on a read-only mount (a bind mount remounted read-only; needs
/// root, skipped elsewhere): the reason is the file system, for root too.
#[test]
fn writes_on_a_read_only_mount_say_so_and_reads_work() {
    let env = Env::new();
    three_writes(&env);
    std::fs::create_dir(env.path("out")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let Some(mount) = ReadOnlyMount::of(env.dir.path(), &env.path("ro")) else {
        eprintln!("skipped: cannot make a read-only bind mount here (needs root)");
        return;
    };
    let before = fingerprint(&env.db());
    let db = mount.at.join("test.redb");
    let on_mount = |args: &[&str]| {
        let mut run = env.kvr_bare(["--db", db.to_str().unwrap()]);
        run.cmd.args(args);
        run
    };
    read_everything(&env, on_mount);
    writes_are_refused(&db, on_mount, "it is on a read-only file system");
    drop(mount);
    assert!(fingerprint(&env.db()) == before, "the file changed");
}

/// A directory bind-mounted read-only at `at`, unmounted on drop.
struct ReadOnlyMount {
    at: std::path::PathBuf,
}

impl ReadOnlyMount {
    fn of(dir: &Path, at: &Path) -> Option<ReadOnlyMount> {
        std::fs::create_dir_all(at).unwrap();
        let run = |args: &[&std::ffi::OsStr]| {
            std::process::Command::new("mount")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !run(&["--bind".as_ref(), dir.as_os_str(), at.as_os_str()]) {
            return None;
        }
        let mount = ReadOnlyMount {
            at: at.to_path_buf(),
        };
        run(&["-o".as_ref(), "remount,bind,ro".as_ref(), at.as_os_str()]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.at).status();
    }
}

/// A batch of deletes of keys the file does not hold changes nothing
/// (each a no-op that takes no revision) and leaves the file's bytes and
/// modification time as they were; it opened the file for writing, which
/// rewrote redb's header.
#[test]
fn a_batch_of_deletes_of_absent_keys_leaves_the_file_as_it_was() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    let before = fingerprint(&env.db());
    let absent = "{\"op\":\"delete\",\"key\":\"x\"}\n{\"op\":\"delete\",\"key\":\"y\"}\n";
    let done = env.kvr(["batch"]).stdin(absent).ok();
    assert!(
        done.stderr_text().contains("applied 0"),
        "{}",
        done.report()
    );
    assert!(fingerprint(&env.db()) == before, "the file changed");
    assert_eq!(env.stats()["revision"], 1);
    // A delete of a key it holds among them writes, as ever.
    env.kvr(["batch"])
        .stdin("{\"op\":\"delete\",\"key\":\"x\"}\n{\"op\":\"delete\",\"key\":\"a\"}\n")
        .ok();
    assert_eq!(env.stats()["revision"], 2);
    assert_eq!(env.stats()["keys"], 0);
}

/// A `batch` refused before it writes anything (a bad line, a failed
/// `if_revision`) leaves the file's bytes and modification time as they
/// were: the file is opened for writing only once the first part of the
/// input has been read and checked. Before, the open for writing that came
/// first rewrote redb's header (and trimmed the file) on every refusal.
#[test]
fn a_refused_batch_leaves_the_file_as_it_was() {
    let env = Env::new();
    three_writes(&env);
    // The key with a TTL expires: the sweep a write would commit first
    // must not be committed by a refused batch either.
    std::thread::sleep(Duration::from_millis(1100));
    let input = env.path("input.jsonl");
    let before = fingerprint(&env.db());
    let refusals: [(&str, &[&str], i32, &str); 6] = [
        (
            "{\"key\":\"c\",\"value\":\"3\"}\nnot json\n",
            &[],
            2,
            "line 2",
        ),
        ("{\"key\":\"c\"}\n", &[], 2, "needs a value"),
        (
            "{\"key\":\"a\",\"value\":\"9\",\"if_revision\":7}\n",
            &[],
            4,
            "precondition failed",
        ),
        (
            "{\"key\":\"a\",\"value\":\"9\",\"if_revision\":7}\n",
            &["--chunk-size", "1"],
            4,
            "precondition failed",
        ),
        // The bad line is named before the failed condition.
        (
            "{\"key\":\"a\",\"value\":\"9\",\"if_revision\":7}\n{\"key\":1}\n",
            &[],
            2,
            "line 2",
        ),
        ("", &[], 0, "applied 0 puts"),
    ];
    for (lines, flags, code, says) in refusals {
        let from_stdin = env.kvr(["batch"].iter().chain(flags)).stdin(lines);
        let done = from_stdin.code(code);
        assert!(done.stderr_text().contains(says), "{}", done.report());
        std::fs::write(&input, lines).unwrap();
        let file = input.to_str().unwrap();
        let done = env.kvr(["batch", file].iter().chain(flags)).code(code);
        assert!(done.stderr_text().contains(says), "{}", done.report());
        // An empty input with expired keys commits the sweep: the last.
        if code != 0 {
            assert!(
                fingerprint(&env.db()) == before,
                "{lines:?}: the file changed"
            );
        }
    }
    assert_eq!(env.stats()["revision"], 4, "the sweep alone was applied");
    env.kvr(["batch"])
        .stdin("{\"key\":\"c\",\"value\":\"3\"}\n")
        .ok();
    assert_eq!(env.kvr(["get", "c"]).ok().out.stdout, b"3");
    assert_eq!(env.kvr(["get", "a"]).ok().out.stdout, b"1");
}

/// `delete --prefix` or `--range` that matches no key, or a `batch` of no
/// operations (and nothing has
/// expired, which a write command deletes first) writes nothing: exit 0,
/// `{"deleted":0,…}`, and the file's bytes and modification time as they
/// were, also on a file the user may only read. Before, it opened the file
/// for writing (redb rewrote its header), and on a read-only file failed.
#[test]
fn a_write_of_nothing_leaves_the_file_as_it_was() {
    let env = Env::new();
    env.kvr(["put", "a:1", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    let before = fingerprint(&env.db());
    let nothing = |kvr: &dyn Fn(&[&str]) -> super::util::Run| {
        for args in [
            &["delete", "--prefix", "zz", "--json"][..],
            &["delete", "--range", "c", "d", "--json"],
        ] {
            let done = kvr(args).ok();
            assert_eq!(done.stdout_text(), "{\"deleted\":0,\"revision\":2}\n");
        }
    };
    nothing(&|args| env.kvr(args));
    assert!(fingerprint(&env.db()) == before, "the file changed");
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let as_reader = |args: &[&str]| {
        let mut run = env.kvr(args);
        if is_root() {
            run.cmd.uid(65534).gid(65534);
        }
        run
    };
    nothing(&as_reader);
    // So is a batch of no operations (empty, or blank lines only).
    for input in ["", "\n\n"] {
        env.kvr(["batch"]).stdin(input).ok();
        as_reader(&["batch"])
            .stdin(input)
            .ok()
            .stderr_has("applied 0 puts");
    }
    // One that matches is a write, refused with the reason.
    as_reader(&["delete", "--prefix", "a:"])
        .code(3)
        .stderr_has("this user may only read it");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(fingerprint(&env.db()) == before, "the file changed");
    // Writable again, the delete that matches is applied.
    env.kvr(["delete", "--prefix", "a:"]).ok();
    assert_eq!(env.stats()["keys"], 1);
}

/// A read command that must first replay a crashed server's log into a file
/// it may only read says so, and leaves both; with write access the next
/// one replays it and sees the write.
#[test]
fn a_log_to_replay_into_a_file_that_may_only_be_read_is_named() {
    let mut env = Env::served();
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "a", "2"]).ok();
    env.crash_server(); // the writes are in the log only
    let log = env.path("test.redb.wal");
    assert!(log.is_dir());
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut get = env.kvr(["get", "a"]);
    if is_root() {
        get.cmd.uid(65534).gid(65534);
    }
    let refused = get.code(3);
    let text = refused.stderr_text();
    assert!(text.contains("to replay the log"), "{text}");
    assert!(text.contains("test.redb.wal"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(log.is_dir(), "the log is kept");
    assert_eq!(env.kvr(["get", "a"]).ok().out.stdout, b"2");
    assert!(!log.exists(), "replayed and removed");
}

/// A `range` whose output nobody reads yet: once it has written its first
/// byte it holds the file open, blocked on the full pipe (2.5 MB to write).
fn blocked_reader(env: &Env, as_nobody: bool) -> std::process::Child {
    let mut holder = env.kvr(["--lock-timeout", "20", "range"]).cmd;
    if as_nobody && is_root() {
        holder.uid(65534).gid(65534);
    }
    let mut holder = holder.stdout(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 1];
    holder
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    holder
}

/// The rest of the blocked reader's output: all 20,000 lines.
fn finish(mut holder: std::process::Child) {
    let mut out = vec![b'{'];
    holder.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(holder.wait().unwrap().success());
    assert_eq!(parse_lines(&String::from_utf8(out).unwrap()).len(), 20_000);
}

fn twenty_thousand_keys(env: &Env) {
    let lines: String = (0..20_000)
        .map(|i| {
            format!(
                "{{\"key\":\"k{i:05}\",\"value\":\"{}\"}}\n",
                "v".repeat(100)
            )
        })
        .collect();
    env.kvr(["batch"]).stdin(lines).ok();
}

/// One process at a time owns a database file (SPEC), a read command too:
/// another reader or a writer gets "in use", or waits with --lock-timeout.
#[test]
fn a_reader_owns_the_file_as_a_writer_does() {
    let env = Env::new();
    twenty_thousand_keys(&env);
    let holder = blocked_reader(&env, false);
    for args in [
        &["get", "k00007"][..],
        &["put", "k00007", "new"],
        &["stats"],
    ] {
        let busy = env.kvr(args).code(3);
        assert!(busy.stderr_text().contains("in use"), "{}", busy.report());
        assert!(
            busy.stderr_text()
                .contains(&format!("(pid {})", holder.id())),
            "{}",
            busy.report()
        );
    }
    let writer = std::thread::spawn({
        let db = env.db();
        move || {
            std::process::Command::new(KVR)
                .arg("--db")
                .arg(&db)
                .args(["--lock-timeout", "20", "put", "k00007", "new"])
                .output()
                .unwrap()
                .status
                .code()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    finish(holder);
    assert_eq!(writer.join().unwrap(), Some(0));
    assert_eq!(env.kvr(["get", "k00007"]).ok().out.stdout, b"new");
}

/// A file that may only be read can only be locked shared: its readers
/// share it, and a process that may write it (root here) still waits for
/// them.
#[test]
fn readers_of_a_file_that_may_only_be_read_share_it() {
    let env = Env::new();
    twenty_thousand_keys(&env);
    let before = fingerprint(&env.db());
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let holder = blocked_reader(&env, true);
    let mut get = env.kvr(["get", "k00007"]);
    if is_root() {
        get.cmd.uid(65534).gid(65534);
    }
    assert_eq!(get.ok().out.stdout, "v".repeat(100).as_bytes());
    if is_root() {
        let busy = env.kvr(["put", "k00007", "new"]).code(3);
        assert!(busy.stderr_text().contains("in use"), "{}", busy.report());
    }
    finish(holder);
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(fingerprint(&env.db()) == before, "the file changed");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}
