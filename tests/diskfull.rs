//! A full disk: writes fail with exit 3 "disk full", reads keep working,
//! nothing is corrupted, and writes succeed again once space is freed.
//!
//! Runs on a small tmpfs this test mounts; where mounting is not permitted
//! (not root, no CAP_SYS_ADMIN) it says so and skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/tmpfs.rs"]
mod tmpfs;
mod util;

use tmpfs::SmallFs;
use util::Env;

#[test]
fn full_disk_fails_writes_cleanly_and_recovers() {
    let env = Env::new();
    let Some(fs) = SmallFs::mount_or_skip(&env.path("small"), "3m") else {
        return;
    };
    let db = fs.dir.join("db.redb");
    let filler = fs.dir.join("filler");
    std::fs::write(&filler, vec![0u8; 1_000_000]).unwrap();
    let kvr = |args: &[&str]| {
        let mut run = env.kvr_bare(["--db", db.to_str().unwrap()]);
        run.cmd.args(args);
        run
    };
    let value = |i: u8| vec![i; 200_000];

    let mut stored = 0u8;
    let file_len = || std::fs::metadata(&db).map_or(0, |m| m.len());
    let mut len_before;
    let failed = loop {
        assert!(stored < 40, "the disk never filled up");
        len_before = file_len();
        let done = kvr(&["put", &format!("k{stored}")])
            .stdin(value(stored))
            .output();
        if done.out.status.code() != Some(0) {
            break done;
        }
        stored += 1;
    };
    assert_eq!(failed.out.status.code(), Some(3), "{}", failed.report());
    let first = failed.stderr_text();
    assert!(
        first.starts_with("kvr: error: disk full"),
        "{}",
        failed.report()
    );
    assert!(stored > 0);
    // The failed put leaves the file at its length and closed cleanly:
    // redb had grown it (by doubling) for the commit that failed, and left
    // it so, not closed cleanly, until the next open.
    assert!(
        file_len() <= len_before,
        "the file grew from {len_before} to {} bytes",
        file_len()
    );
    let check = kvr(&["check"]).ok();
    assert!(
        !check.stderr_text().contains("not closed cleanly"),
        "{}",
        check.report()
    );

    // Reads work, and everything acknowledged is intact.
    let stats: serde_json::Value =
        serde_json::from_str(&kvr(&["stats"]).ok().stdout_text()).unwrap();
    assert_eq!(stats["keys"], u64::from(stored));
    assert_eq!(stats["revision"], u64::from(stored));
    for i in 0..stored {
        assert_eq!(kvr(&["get", &format!("k{i}")]).ok().out.stdout, value(i));
    }
    // A batch on the full disk fails whole.
    let lines: String = (0..50)
        .map(|i| {
            format!(
                "{{\"key\":\"b{i}\",\"value\":\"{}\"}}\n",
                "x".repeat(50_000)
            )
        })
        .collect();
    kvr(&["batch"]).stdin(lines.clone()).code(3);
    let keys = kvr(&["range", "--keys-only"]).ok().stdout_text();
    assert_eq!(keys.lines().count(), usize::from(stored));

    // Free space: writes work again.
    std::fs::remove_file(&filler).unwrap();
    kvr(&["put", "after"]).stdin(value(99)).ok();
    assert_eq!(kvr(&["get", "after"]).ok().out.stdout, value(99));
    for i in 0..stored {
        assert_eq!(kvr(&["get", &format!("k{i}")]).ok().out.stdout, value(i));
    }

    // In parts, the disk fills after some were applied: the error says
    // which, and that the rest was not applied ("not sent", as of a
    // server, was said of a file: found by an audit).
    let done = kvr(&["batch", "--chunk-size", "5"]).stdin(lines).code(3);
    let text = done.stderr_text();
    assert!(
        text.contains("failed and the input after them was not applied; lines 1-")
            && text.contains("disk full"),
        "{}",
        done.report()
    );
    drop(fs);
}

/// `serve` on a disk too full for its log's first segment fails (exit 3,
/// disk full) and leaves no new, empty database file or log directory
/// behind, as a failed first write does not (found by an audit).
#[test]
fn serve_on_a_full_disk_leaves_no_new_file_behind() {
    let env = Env::new();
    let Some(fs) = SmallFs::mount_or_skip(&env.path("small"), "3m") else {
        return;
    };
    let db = fs.dir.join("db.redb");
    let mut run = env.kvr_bare(["--db", db.to_str().unwrap()]);
    run.cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--quiet"]);
    let done = run.code(3);
    assert!(
        done.stderr_text().contains("disk full"),
        "{}",
        done.report()
    );
    let left: Vec<_> = std::fs::read_dir(&fs.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
