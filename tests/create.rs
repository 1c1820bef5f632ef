//! Creating a database file (SPEC: only put, batch, serve and bench create
//! one): atomic creation, checked at every sync boundary on the simulated
//! disk; unfinished creations treated as absent and replaced, files with data
//! never; nothing written means nothing created; `serve` creates only after
//! binding; an "in use" error names the holder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;
mod util;

use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kvr::store::{Store, StoreOptions, create};
use redb::{BackendError, StorageBackend};
use sim::{Disk, SimDisk};
use util::Env;

fn opts() -> StoreOptions {
    StoreOptions {
        cache_bytes: 16 << 20,
        ..StoreOptions::default()
    }
}

// ---------------------------------------------------------------------------
// The simulated disk: a power loss at every sync boundary.

/// A [`SimDisk`] whose power goes at sync number `cut + 1`: that sync and
/// everything after it fail, and what was written since sync `cut` is then
/// kept, dropped or torn by [`SimDisk::after_power_loss`].
#[derive(Debug, Clone)]
struct PowerCut {
    disk: SimDisk,
    syncs_left: Arc<AtomicU32>,
}

impl PowerCut {
    fn new(cut: u32) -> PowerCut {
        PowerCut {
            disk: SimDisk::default(),
            syncs_left: Arc::new(AtomicU32::new(cut)),
        }
    }

    fn dead(&self) -> bool {
        self.syncs_left.load(Ordering::SeqCst) == u32::MAX
    }

    fn check(&self) -> std::io::Result<()> {
        if self.dead() {
            return Err(std::io::Error::other("power lost"));
        }
        Ok(())
    }

    /// The disk images a power loss at this point can leave: every unsynced
    /// write dropped, every one kept, and random mixes with torn sectors.
    fn images(&self) -> Vec<Vec<u8>> {
        let d = self.disk.0.lock().unwrap();
        let mut out = vec![d.durable.clone(), d.current.clone()];
        drop(d);
        for seed in 1..=16 {
            out.push(
                self.disk
                    .after_power_loss(seed)
                    .0
                    .lock()
                    .unwrap()
                    .current
                    .clone(),
            );
        }
        out
    }
}

impl StorageBackend for PowerCut {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.disk.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.disk.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check()?;
        self.disk.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        if self.syncs_left.load(Ordering::SeqCst) == 0 {
            self.syncs_left.store(u32::MAX, Ordering::SeqCst);
            return Err(std::io::Error::other("power lost"));
        }
        self.syncs_left.fetch_sub(1, Ordering::SeqCst);
        self.disk.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.disk.write(offset, data)
    }
    fn try_lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.disk.try_lock_range(a, b)
    }
    fn try_lock_shared_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.disk.try_lock_shared_range(a, b)
    }
    fn lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.disk.lock_range(a, b)
    }
    fn lock_shared_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.disk.lock_shared_range(a, b)
    }
    fn unlock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<(), BackendError> {
        self.disk.unlock_range(a, b)
    }
    fn query_lock_range(&self, a: Bound<u64>, b: Bound<u64>) -> Result<bool, BackendError> {
        self.disk.query_lock_range(a, b)
    }
}

fn disk_of(bytes: &[u8]) -> SimDisk {
    SimDisk(Arc::new(Mutex::new(Disk {
        durable: bytes.to_vec(),
        current: bytes.to_vec(),
        ..Disk::default()
    })))
}

/// What a crash image is to kvr: an unfinished creation (absent), or a
/// database that opens as an empty kvr one. Anything else fails the test.
fn classify(image: &[u8]) -> &'static str {
    if create::unfinished(image) {
        return "unfinished";
    }
    let store = Store::open_with_backend(disk_of(image), &opts())
        .unwrap_or_else(|e| panic!("a crash image neither unfinished nor openable: {e}"));
    let stats = store.stats().unwrap();
    assert_eq!((stats.keys, stats.revision), (0, 0));
    "empty database"
}

/// How many syncs a clean run of `build` does.
fn syncs_of(build: impl Fn(PowerCut) -> kvr::Result<()>) -> u32 {
    let cut = PowerCut::new(u32::MAX - 1);
    build(cut.clone()).unwrap();
    u32::MAX - 1 - cut.syncs_left.load(Ordering::SeqCst)
}

/// kvr's creation of the temporary file, cut at every sync boundary: each
/// image is an unfinished creation or a complete empty database. A clean
/// run leaves nothing unsynced, so what is renamed into place is exactly
/// what a power loss keeps.
#[test]
fn build_empty_survives_a_power_loss_at_every_sync() {
    let build = |disk: PowerCut| create::build_empty(disk, &opts());
    let syncs = syncs_of(build);
    assert!(
        syncs >= 3,
        "redb's two creation syncs and kvr's commit: {syncs}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for cut in 0..syncs {
        let disk = PowerCut::new(cut);
        assert!(build(disk.clone()).is_err(), "sync {cut} must fail");
        for image in disk.images() {
            seen.insert(classify(&image));
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["empty database", "unfinished"]
    );
    eprintln!(
        "{syncs} sync boundaries, {} images each",
        PowerCut::new(0).images().len()
    );
    let clean = PowerCut::new(u32::MAX - 1);
    build(clean.clone()).unwrap();
    let d = clean.disk.0.lock().unwrap();
    assert!(d.pending.is_empty(), "written after the last sync");
    assert_eq!(classify(&d.durable), "empty database");
}

/// redb's own in-place creation, the defect of issue 9: whatever a power
/// loss leaves is something kvr recognises, so no crash image is a file
/// that no command can open.
#[test]
fn every_crash_image_of_redbs_in_place_creation_is_recognised() {
    let create_in_place = |disk: PowerCut| Store::open_with_backend(disk, &opts()).map(drop);
    let syncs = syncs_of(create_in_place);
    let mut unfinished = 0;
    for cut in 0..syncs {
        let disk = PowerCut::new(cut);
        // The last sync is redb's at close, whose failure it does not report.
        let _ = create_in_place(disk.clone());
        for image in disk.images() {
            unfinished += usize::from(classify(&image) == "unfinished");
        }
    }
    // Between redb's two syncs: the header is there without its magic.
    let disk = PowerCut::new(1);
    let _ = create_in_place(disk.clone());
    let image = disk.disk.0.lock().unwrap().durable.clone();
    assert!(image.len() > 320 && image[..9].iter().all(|&b| b == 0));
    assert!(image[9..320].iter().any(|&b| b != 0));
    assert!(create::unfinished(&image));
    assert!(unfinished > 0);
}

/// The file a power loss between redb's two creation syncs leaves: its
/// header without the magic number, then zeros.
fn zero_header_image() -> Vec<u8> {
    let disk = PowerCut::new(1);
    let _ = Store::open_with_backend(disk.clone(), &opts());
    let image = disk.disk.0.lock().unwrap().durable.clone();
    assert!(create::unfinished(&image));
    image
}

// ---------------------------------------------------------------------------
// Unfinished creations through the real binary.

fn reads_say_missing_and_leave_it(env: &Env, bytes: &[u8]) {
    for args in [
        vec!["get", "k"],
        vec!["stats"],
        vec!["range"],
        vec!["delete", "k"],
        vec!["tui"],
    ] {
        let first = env.kvr(args).code(1).stderr_text();
        assert_eq!(
            first.lines().next().unwrap(),
            format!(
                "kvr: error: {} does not exist as a database: the file there is one whose \
                 creation never finished (empty or partly written; put or batch creates the \
                 database in it)",
                env.db().display()
            )
        );
    }
    assert_eq!(std::fs::read(env.db()).unwrap(), bytes, "a read changed it");
}

fn creating_replaces_it(env: &Env) {
    env.kvr(["put", "k", "v"])
        .ok()
        .stderr_has("replaced")
        .stderr_has("no data was in it");
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v");
    assert_eq!(env.stats()["revision"], 1);
    assert!(!create::temp_path(&env.db()).exists());
}

#[test]
fn an_empty_file_is_absent_to_reads_and_replaced_by_put() {
    let env = Env::new();
    std::fs::write(env.db(), b"").unwrap();
    reads_say_missing_and_leave_it(&env, b"");
    creating_replaces_it(&env);
}

/// `check` on an empty file lists it as a problem (exit 3), as any file
/// that holds no sound database: a backup truncated to nothing is damaged,
/// not missing. So is an unfinished creation's zeroed header. The files
/// stay as they were.
#[test]
fn check_says_an_empty_file_is_a_problem() {
    let env = Env::new();
    std::fs::write(env.db(), b"").unwrap();
    let done = env.kvr(["check"]).code(3);
    assert_eq!(
        done.stdout_text(),
        "problem: file: it is empty (0 bytes): no database was ever written to it (its \
         creation never finished, or it was truncated)\n"
    );
    assert_eq!(
        done.stderr_text().lines().next().unwrap(),
        format!(
            "kvr: error: check found 1 problem in {db} (listed on stdout); restore a backup of \
             it, or copy what can still be read (kvr --db {db} range | kvr --db NEW batch)",
            db = env.db().display()
        )
    );
    assert_eq!(std::fs::read(env.db()).unwrap(), b"", "check changed it");
    assert!(!create::temp_path(&env.db()).exists());
    // So is a file of redb's header without its magic number, then zeros.
    std::fs::write(env.db(), zero_header_image()).unwrap();
    let done = env.kvr(["check"]).code(3);
    assert_eq!(
        done.stdout_text(),
        "problem: file: it holds no database: no magic number where the header starts, and \
         nothing but zeros after it (its creation never finished, or it was zeroed)\n"
    );
    assert_eq!(std::fs::read(env.db()).unwrap(), zero_header_image());
    // A missing file is still not there at all (exit 1).
    std::fs::remove_file(env.db()).unwrap();
    env.kvr(["check"]).code(1).stderr_has(&format!(
        "kvr: error: {} does not exist",
        env.db().display()
    ));
}

#[test]
fn a_zero_header_file_is_absent_to_reads_and_replaced_by_batch() {
    let env = Env::new();
    let image = zero_header_image();
    std::fs::write(env.db(), &image).unwrap();
    reads_say_missing_and_leave_it(&env, &image);
    env.kvr(["check"])
        .code(3)
        .stdout_has("it holds no database");
    assert_eq!(std::fs::read(env.db()).unwrap(), image);
    env.kvr(["batch"])
        .stdin("{\"key\":\"k\",\"value\":\"v\"}\n")
        .ok()
        .stderr_has("replaced");
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v");
}

#[test]
fn serve_replaces_an_unfinished_file() {
    let env = Env::new();
    std::fs::write(env.db(), zero_header_image()).unwrap();
    let (mut child, url, mut stderr) = serve(&env.db(), "127.0.0.1:0");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (line1, line2) = (stderr_line(&mut stderr), stderr_line(&mut stderr));
    assert!(line1.contains("replaced"), "{line1}");
    assert!(line2.contains("0 keys, revision 0, new file"), "{line2}");
    stop(&mut child, &url);
}

/// Files that fail to open and might hold data: every command fails loudly
/// and the bytes stay as they were.
#[test]
fn a_file_that_might_hold_data_is_never_replaced() {
    let env = Env::new();
    env.kvr(["put", "k", "v"]).ok();
    let mut real = std::fs::read(env.db()).unwrap();
    real[..9].fill(0); // a real database with its magic number gone
    let mut header_and_a_page = zero_header_image();
    header_and_a_page[40_000] = 1;
    let cases: [(&str, Vec<u8>); 4] = [
        ("a kvr database without its magic", real),
        ("a zero header with a written page", header_and_a_page),
        ("text", b"hello\n".to_vec()),
        ("one non-zero byte", vec![1]),
    ];
    for (what, bytes) in cases {
        std::fs::write(env.db(), &bytes).unwrap();
        for (args, code) in [
            (vec!["put", "k", "w"], 3),
            (vec!["get", "k"], 3),
            (vec!["stats"], 3),
        ] {
            let done = env.kvr(&args).code(code);
            assert!(!done.stderr_text().contains("replaced"), "{what}");
            if what == "text" {
                done.stderr_has("it is not a kvr database (it does not start as a redb file does)");
            }
        }
        env.kvr(["batch"])
            .stdin("{\"key\":\"a\",\"value\":\"b\"}\n")
            .code(3);
        assert_eq!(
            std::fs::read(env.db()).unwrap(),
            bytes,
            "{what} was changed"
        );
        assert!(!create::temp_path(&env.db()).exists(), "{what}");
    }
}

/// A device or pipe given as the database is refused in plain words by
/// every command, at once (a pipe is never opened: that would wait for a
/// writer), and is left as it was.
#[test]
fn a_device_or_pipe_is_not_a_database() {
    let env = Env::new();
    let pipe = env.path("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [std::path::PathBuf::from("/dev/null"), pipe.clone()] {
        let db = path.to_str().unwrap();
        let commands = [
            vec!["put", "k", "v"],
            vec!["get", "k"],
            vec!["stats"],
            vec!["check"],
            vec!["compact"],
        ];
        for args in commands {
            let mut run = env.kvr_bare(["--db", db]);
            run.cmd.args(&args);
            run.code(3).stderr_has(&format!(
                "cannot open {db}: it is not a regular file (a device, pipe or socket cannot hold a database)"
            ));
        }
    }
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    for args in [vec!["put", "k", "v"], vec!["get", "k"], vec!["check"]] {
        let mut run = env.kvr_bare(["--db", dir.to_str().unwrap()]);
        run.cmd.args(&args);
        run.code(3).stderr_has(&format!(
            "cannot open {}: it is a directory (give the database file's path)",
            dir.display()
        ));
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // A file of length 0 that is not empty when read.
    env.kvr_bare(["--db", "/proc/version", "get", "k"])
        .code(3)
        .stderr_has("cannot open /proc/version: it is not a kvr database (its length is 0");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&pipe).unwrap().file_type().is_fifo());
    assert!(!create::temp_path(&pipe).exists());
}

/// Creators on one missing file take turns: each write lands, in one file.
#[test]
fn concurrent_first_writes_all_land_in_one_file() {
    let env = Env::new();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = env
                .kvr(["--lock-timeout", "60", "put", &format!("k{i}"), "v"])
                .cmd;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.stats()["keys"], 4);
    assert_eq!(env.stats()["revision"], 4);
    assert!(!create::temp_path(&env.db()).exists());
}

#[test]
fn a_leftover_temporary_file_is_reused() {
    let env = Env::new();
    let temp = create::temp_path(&env.db());
    std::fs::write(&temp, zero_header_image()).unwrap();
    env.kvr(["get", "k"]).code(1).stderr_has("does not exist");
    env.kvr(["put", "k", "v"]).ok();
    assert!(!temp.exists());
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v");
}

// ---------------------------------------------------------------------------
// Nothing written, nothing created.

fn no_files_in(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_failed_first_write_creates_no_file() {
    let env = Env::new();
    env.kvr(["batch"])
        .stdin("{\"key\":\"a\",\"value\":\"1\"}\nnot json\n")
        .code(2)
        .stderr_has("line 2");
    env.kvr(["batch"])
        .stdin("{\"key\":\"a\",\"value\":\"1\",\"if_revision\":3}\n")
        .code(4);
    env.kvr(["put", "--if-revision", "2", "k", "v"]).code(4);
    env.kvr(["put", "k"])
        .stdin(vec![b'x'; (16 << 20) + 1])
        .code(2);
    // Deleting an absent key in a batch writes nothing either.
    env.kvr(["batch"])
        .stdin("{\"op\":\"delete\",\"key\":\"a\"}\n")
        .ok();
    no_files_in(env.dir.path());
    env.kvr(["get", "a"]).code(1).stderr_has("does not exist");
}

/// `kvr ARGS` (a batch) into a new file that has read `lines` from a pipe it
/// keeps open: the batch is under way, nothing committed (or, with
/// `--chunk-size 1`, each line committed as it comes).
fn batch_left_open(env: &Env, args: &[&str], lines: &str) -> std::process::Child {
    let mut cmd = env.kvr(args).cmd;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write as _;
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    child
}

/// Waits until `ready` holds, or fails after 30 s.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// SPEC `batch`: "A failed batch never leaves a new, empty database file
/// behind" — also when it is killed with SIGKILL, which no handler sees:
/// the file is built under `DB.creating` and takes its name at the commit.
#[test]
fn a_batch_killed_before_its_commit_leaves_no_database() {
    let env = Env::new();
    let mut batch = batch_left_open(&env, &["batch"], "{\"key\":\"a\",\"value\":\"1\"}\n");
    let pid = batch.id();
    let temp = create::temp_path(&env.db());
    // Until the batch commits, there is no database, and readers say who
    // is making it.
    wait_until("the batch holds DB.creating", || {
        env.kvr(["get", "a"])
            .output()
            .stderr_text()
            .contains("is creating it")
    });
    env.kvr(["get", "a"]).code(1).stderr_has(&format!(
        "does not exist yet: kvr --db {} batch (pid {pid}) is creating it, and it appears \
         when that command commits",
        env.db().display()
    ));
    assert!(!env.db().exists());
    // Another creator waits its turn (here: none, so it is told who).
    env.kvr(["put", "b", "2"])
        .code(3)
        .stderr_has(&format!("batch (pid {pid})"));
    batch.kill().unwrap();
    batch.wait().unwrap();
    assert!(!env.db().exists(), "a killed batch left a database");
    // Readers say what the kill left, and what to do with it.
    let size = std::fs::metadata(&temp).unwrap().len();
    env.kvr(["get", "a"]).code(1).stderr_has(&format!(
        "does not exist ({} beside it, {size} bytes, was left by a creation that was killed: \
         the next put or batch reuses it; remove it to free the space)",
        temp.display()
    ));
    assert!(!env.kvr(["get", "a"]).output().stderr_text().contains("yet"));
    // What the kill left is reused by the next creation, and goes with it.
    assert!(temp.exists());
    env.kvr(["put", "b", "2"]).ok();
    assert!(!temp.exists());
    assert_eq!(env.range_json(&[]).len(), 1);
    assert_eq!(env.kvr(["get", "b"]).ok().out.stdout, b"2");
}

/// With `--chunk-size` each part is a batch of its own: the first commit
/// publishes the file, and a kill after it keeps what was committed.
#[test]
fn a_chunked_batch_publishes_the_file_with_its_first_part() {
    let env = Env::new();
    let mut batch = batch_left_open(
        &env,
        &["batch", "--chunk-size", "1"],
        "{\"key\":\"a\",\"value\":\"1\"}\n",
    );
    wait_until("the first part is committed", || env.db().exists());
    batch.kill().unwrap();
    batch.wait().unwrap();
    assert_eq!(env.kvr(["get", "a"]).ok().out.stdout, b"1");
    assert_eq!(env.stats()["revision"], 1);
    assert!(!create::temp_path(&env.db()).exists());
}

/// A batch that waits for another process creating the same database,
/// and is stopped by SIGINT or SIGTERM while it waits, removes nothing and
/// says nothing was done: it removed that process's `DB.creating`, or DB
/// once published, with the other process's acknowledged writes (found by
/// an audit: 6,000 puts lost; puts exiting 0 whose keys were gone).
#[test]
fn a_batch_stopped_while_it_waits_for_another_creator_removes_nothing() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let env = Env::new();
        // Its first part (of two lines) is begun: it holds `DB.creating`.
        let mut holder = batch_left_open(
            &env,
            &["batch", "--chunk-size", "2"],
            "{\"key\":\"a\",\"value\":\"1\"}\n",
        );
        let temp = create::temp_path(&env.db());
        wait_until("the holder creates the file", || temp.exists());
        let mut waiter = env.kvr(["--lock-timeout", "30", "batch"]).cmd;
        waiter
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut waiter = waiter.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = waiter.stdin.take().unwrap();
            stdin
                .write_all(b"{\"key\":\"w\",\"value\":\"1\"}\n")
                .unwrap();
        }
        // Waiting for the holder by now.
        std::thread::sleep(std::time::Duration::from_millis(700));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(waiter.id() as i32).unwrap(),
            rustix::process::Signal::from_named_raw(signal).unwrap(),
        )
        .unwrap();
        let out = waiter.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.starts_with("kvr: error: interrupted (SIG"), "{err}");
        assert!(!err.contains("removed"), "{err}");
        assert!(temp.exists(), "the other process's DB.creating was removed");
        // The holder goes on and ends well; its writes are there.
        {
            use std::io::Write;
            let stdin = holder.stdin.as_mut().unwrap();
            stdin
                .write_all(b"{\"key\":\"b\",\"value\":\"2\"}\n")
                .unwrap();
        }
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
        assert_eq!(env.kvr(["get", "a"]).ok().out.stdout, b"1");
        assert_eq!(env.kvr(["get", "b"]).ok().out.stdout, b"2");
        env.kvr(["get", "w"]).code(1);
    }
}

/// A database that was there before is kept, empty or not, whatever fails.
#[test]
fn a_failed_write_keeps_an_existing_empty_database() {
    let env = Env::new();
    env.kvr(["put", "k", "v"]).ok();
    env.kvr(["delete", "k"]).ok();
    let before = env.snapshot();
    env.kvr(["batch"]).stdin("nope\n").code(2);
    env.kvr(["put", "--if-revision", "9", "k", "v"]).code(4);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_missing_directory_is_named() {
    let env = Env::new();
    let db = env.path("no-such-dir/x.redb");
    let dir = env.path("no-such-dir");
    let expected = format!(
        "kvr: error: cannot create {}: the directory {} does not exist",
        db.display(),
        dir.display()
    );
    let put = env
        .kvr_bare(["--db", db.to_str().unwrap(), "put", "a", "b"])
        .code(1);
    assert_eq!(put.stderr_text().lines().next().unwrap(), expected);
    let batch = env
        .kvr_bare(["--db", db.to_str().unwrap(), "batch"])
        .stdin("{\"key\":\"a\",\"value\":\"1\"}\n")
        .code(1);
    assert_eq!(batch.stderr_text().lines().next().unwrap(), expected);
    assert!(!dir.exists());
}

/// A `--db` that is a symbolic link to a file not there yet creates that
/// file, through a chain of links and relative ones too (as `sqlite3` or a
/// shell's `>` would), and the link stays a link; an unfinished file behind
/// a link is replaced in place, not the link. A link into a missing
/// directory names that directory and creates nothing.
#[test]
fn a_link_to_a_missing_file_creates_that_file() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    std::fs::create_dir(env.path("data")).unwrap();
    let kvr_at = |link: &str| {
        let path = env.path(link);
        move |args: &[&str]| {
            let mut all = vec!["--db", path.to_str().unwrap()];
            all.extend_from_slice(args);
            all.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        }
    };
    let is_link = |name: &str| {
        std::fs::symlink_metadata(env.path(name))
            .unwrap()
            .file_type()
            .is_symlink()
    };
    // put through a relative link; batch through a chain of two (the
    // second one absolute).
    symlink("data/a.redb", env.path("a.redb")).unwrap();
    env.kvr_bare(kvr_at("a.redb")(&["put", "k", "1"])).ok();
    symlink(env.path("data/b.redb"), env.path("data/hop")).unwrap();
    symlink("data/hop", env.path("b.redb")).unwrap();
    env.kvr_bare(kvr_at("b.redb")(&["batch"]))
        .stdin("{\"key\":\"k\",\"value\":\"2\"}\n")
        .ok();
    for (link, target, value) in [
        ("a.redb", "data/a.redb", "1"),
        ("b.redb", "data/b.redb", "2"),
    ] {
        assert!(is_link(link), "{link} was replaced");
        assert!(std::fs::metadata(env.path(target)).unwrap().is_file());
        for db in [link, target] {
            let got = env.kvr_bare(kvr_at(db)(&["get", "k"])).ok();
            assert_eq!(got.out.stdout, value.as_bytes(), "{db}");
        }
        assert!(!create::temp_path(&env.path(link)).exists());
        assert!(!env.path(&format!("{target}.creating")).exists());
    }
    // An unfinished (empty) file behind a link: filled in place.
    std::fs::write(env.path("data/c.redb"), b"").unwrap();
    symlink("data/c.redb", env.path("c.redb")).unwrap();
    env.kvr_bare(kvr_at("c.redb")(&["put", "k", "3"]))
        .ok()
        .stderr_has("replaced");
    assert!(is_link("c.redb"));
    let got = env.kvr_bare(kvr_at("data/c.redb")(&["get", "k"])).ok();
    assert_eq!(got.out.stdout, b"3");
    // Into a missing directory: named, nothing created, the link kept.
    symlink("nowhere/d.redb", env.path("d.redb")).unwrap();
    let put = env.kvr_bare(kvr_at("d.redb")(&["put", "k", "4"])).code(1);
    assert_eq!(
        put.stderr_text().lines().next().unwrap(),
        format!(
            "kvr: error: cannot create {}: the directory {} does not exist",
            env.path("nowhere/d.redb").display(),
            env.path("nowhere").display()
        )
    );
    assert!(is_link("d.redb"));
    assert!(!env.path("nowhere").exists());
}

// ---------------------------------------------------------------------------
// serve: bind, then create, then say what is served.

/// Starts `kvr --db DB serve --listen ADDR`; returns the child, the URL of
/// its first stdout line and its stderr.
fn serve(
    db: &Path,
    listen: &str,
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStderr>,
) {
    let mut child = Command::new(util::KVR)
        .arg("--db")
        .arg(db)
        .args(["serve", "--quiet", "--listen", listen])
        .env_remove("KVR_DB")
        .env_remove("KVR_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = util::listening_url(&mut child);
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, url, stderr)
}

fn stderr_line(stderr: &mut BufReader<std::process::ChildStderr>) -> String {
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    line
}

/// Stops a server with SIGTERM once it has answered a request (before
/// that, its signal handler may not be installed yet): a clean exit.
fn stop(child: &mut std::process::Child, url: &str) {
    let answered = Command::new(util::KVR)
        .args(["--server", url, "stats"])
        .output()
        .unwrap();
    assert!(answered.status.success());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_names_the_file_and_creates_it_only_after_binding() {
    let env = Env::new();
    let db = env.db();
    let (mut child, url, mut stderr) = serve(&db, "127.0.0.1:0");
    let line = stderr_line(&mut stderr);
    let canonical = std::fs::canonicalize(&db).unwrap();
    // After the line's timestamp (RFC 3339, 24 characters and a space).
    let want = format!(
        "kvr serve: serving {} (0 keys, revision 0, new file) on {url}",
        canonical.display()
    );
    assert!(line.get(25..).unwrap_or("").starts_with(&want), "{line}");
    // The port is taken: exit 3, and no other.redb.
    let other = env.path("other.redb");
    let addr = url.strip_prefix("http://").unwrap();
    let taken = env
        .kvr_bare(["--db", other.to_str().unwrap(), "serve", "--listen", addr])
        .code(3);
    assert!(
        taken.stderr_text().contains("cannot listen"),
        "{}",
        taken.report()
    );
    assert!(!other.exists());
    assert!(!create::temp_path(&other).exists());
    // A flag out of range is a usage error before anything is made: exit
    // 2, no file (`--workers 0` created an empty database first).
    for bad in [
        "--workers",
        "--queue-size",
        "--max-batch-ops",
        "--max-connections",
        "--memtable-mib",
    ] {
        let out = env
            .kvr_bare([
                "--db",
                other.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
                bad,
                "0",
            ])
            .code(2);
        assert!(
            out.stderr_text()
                .contains(&format!("{bad} must be at least 1")),
            "{}",
            out.report()
        );
        assert!(!other.exists(), "{bad} 0 made a file");
    }
    // So is a member URL nothing could reach: a join with it waited for
    // ever ("waiting for a member to add this node").
    for (flag, url) in [
        ("--join", "http://127.0.0.1:99999"),
        ("--advertise-url", "ftp://127.0.0.1:7070"),
    ] {
        let db = other.to_str().unwrap();
        let mut args = vec!["--db", db, "serve", "--listen", "127.0.0.1:0"];
        args.extend(["--raft-listen", "127.0.0.1:0", flag, url]);
        if flag == "--advertise-url" {
            args.push("--cluster-init");
        }
        let out = env.kvr_bare(args).code(2);
        assert!(
            out.stderr_text()
                .starts_with(&format!("kvr: error: {flag} {url}: ")),
            "{}",
            out.report()
        );
        assert!(!other.exists(), "{flag} {url} made a file");
    }
    stop(&mut child, &url);
    // Served again: the keys and revision it has.
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    let (mut child, url, mut stderr) = serve(&db, "127.0.0.1:0");
    let line = stderr_line(&mut stderr);
    let want = format!(
        "kvr serve: serving {} (2 keys, revision 2) on {url}",
        canonical.display()
    );
    assert!(line.get(25..).unwrap_or("").starts_with(&want), "{line}");
    stop(&mut child, &url);
}

// ---------------------------------------------------------------------------
// In use: the holder is named.

#[test]
fn in_use_names_the_holding_process() {
    let env = Env::new();
    env.kvr(["put", "k", "v"]).ok();
    // A batch that has begun reading its stdin holds the database until
    // its input ends (it opens the file on its first bytes, and waits for
    // the lock itself, in case one of our probes holds it at that moment).
    let mut holder = env.kvr(["--lock-timeout", "60", "batch"]).cmd;
    holder.stdin(Stdio::piped()).stderr(Stdio::null());
    let mut child = holder.spawn().unwrap();
    let pid = child.id();
    {
        use std::io::Write as _;
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"{\"key\":\"k1\",\"value\":\"x\"}\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let message = loop {
        let done = env.kvr(["get", "k"]).output();
        // redb takes its byte-range lock (which names no process in
        // /proc/locks) a moment before the whole-file one (which does): a
        // probe in between finds the file in use by "another process".
        if done.out.status.code() == Some(3)
            && !done.stderr_text().contains("in use by another process")
        {
            break done.stderr_text();
        }
        if done.out.status.code() == Some(3) {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder is never named: {}",
                done.report()
            );
            std::thread::yield_now();
            continue;
        }
        // Not yet locked: the holder has not opened the file yet.
        assert_eq!(done.out.status.code(), Some(0), "{}", done.report());
        assert!(child.try_wait().unwrap().is_none(), "the holder exited");
        std::thread::yield_now();
    };
    let first = message.lines().next().unwrap();
    assert!(first.contains("is in use by kvr --db"), "{first}");
    assert!(first.contains(&format!("batch (pid {pid})")), "{first}");
    // A batch lets go when it is done; to share a file is a server's work
    // (SPEC: the error suggests --server).
    assert!(
        first.contains("it lets go of the file when it is done: give this command --lock-timeout"),
        "{first}"
    );
    assert!(
        first.ends_with(
            "to share the file between processes, serve it (kvr serve) and use --server URL"
        ),
        "{first}"
    );
    // Having waited (--lock-timeout) it says so, and does not suggest the
    // flag it was given; check waits as the other commands do.
    for command in [&["get", "k"][..], &["put", "k", "w"], &["check"]] {
        let started = std::time::Instant::now();
        let out = env
            .kvr(["--lock-timeout", "0.3"].iter().chain(command))
            .output();
        assert_eq!(out.out.status.code(), Some(3), "{}", out.report());
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        let text = out.stderr_text();
        assert!(
            text.contains("is still in use by kvr --db ")
                && text.contains(&format!("batch (pid {pid}) after waiting 0.3 s; ")),
            "{text}"
        );
        assert!(!text.contains("give this command --lock-timeout"), "{text}");
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v");
}

/// A name that leaves no room for the files kvr names after a database
/// (`NAME.creating`, `NAME.wal`, `NAME.serve.tmp`) is refused before
/// anything is written, saying how long a name may be. It was refused by
/// the file system at `NAME.creating` as "File name too long" for a name
/// of 253 bytes, which is not (found by an audit).
#[test]
fn a_name_with_no_room_for_its_companions_is_refused_saying_how_long_one_may_be() {
    let env = Env::new();
    // tmpfs and ext4 both take names of up to 255 bytes.
    let long = format!("{}.redb", "a".repeat(241));
    env.kvr_bare(["--db", &long, "put", "k", "v"])
        .code(2)
        .stderr_has(&format!(
            "kvr: error: cannot create {long}: its name is 246 bytes long"
        ))
        .stderr_has("give the database a name of at most 245 bytes");
    env.kvr_bare(["--db", &long, "batch"])
        .stdin("{\"key\":\"k\",\"value\":\"v\"}\n")
        .code(2)
        .stderr_has("at most 245 bytes");
    no_files_in(env.dir.path());
    // The longest name it takes works, for a server too.
    let longest = format!("{}.redb", "a".repeat(240));
    env.kvr_bare(["--db", &longest, "put", "k", "v"]).ok();
    env.kvr_bare(["--db", &longest, "get", "k"])
        .ok()
        .stdout_has("v");
}

/// A redb file of another program, with tables of its own or none, is
/// refused by every command (exit 3, `not a kvr one`) and left byte for
/// byte as it was: a read opened it for writing first, which rewrote its
/// header, and made a file with no tables a kvr database (found by an
/// audit).
#[test]
fn another_programs_redb_file_is_refused_and_left_as_it_is() {
    for tables in [true, false] {
        let env = Env::new();
        {
            let db = redb::Database::create(env.db()).unwrap();
            if tables {
                let w = db.begin_write().unwrap();
                {
                    let users: redb::TableDefinition<u64, u64> =
                        redb::TableDefinition::new("users");
                    w.open_table(users).unwrap().insert(1, 2).unwrap();
                }
                w.commit().unwrap();
            }
        }
        let bytes = std::fs::read(env.db()).unwrap();
        for args in [
            vec!["get", "k"],
            vec!["stats"],
            vec!["range"],
            vec!["put", "k", "v"],
            vec!["delete", "k"],
        ] {
            env.kvr(args)
                .code(3)
                .stderr_has("is a redb database but not a kvr one");
            assert!(
                std::fs::read(env.db()).unwrap() == bytes,
                "changed (tables: {tables})"
            );
        }
    }
}
