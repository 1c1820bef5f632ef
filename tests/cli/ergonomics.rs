//! Findings of a CLI audit held to ripgrep's and sqlite3's bar: each test
//! failed before its fix.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use super::util::{Env, parse_lines};

/// A stale variable in a shell profile (`KVR_TIMEOUT=abc`) does not break
/// the commands that use no option: `source <(kvr completions bash)` in the
/// same profile printed nothing, exit 2. Other commands still refuse it,
/// naming the variable. `--token-file` beats `KVR_TOKEN` as `--token`
/// does: a bad variable beside it was refused.
#[test]
fn stale_variables_do_not_break_completions_and_a_token_file_beats_kvr_token() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    for (var, value) in [
        ("KVR_TIMEOUT", "abc"),
        ("KVR_LOCK_TIMEOUT", "abc"),
        ("KVR_CACHE_MIB", "abc"),
        ("KVR_TOKEN", "bad\u{1}"),
    ] {
        let done = env.kvr_bare(["completions", "bash"]).env(var, value).ok();
        assert!(
            done.stdout_text().contains("complete -F"),
            "{var}: {}",
            done.report()
        );
        let done = env.kvr_bare(["openapi"]).env(var, value).ok();
        assert!(
            done.stdout_text().starts_with('{'),
            "{var}: {}",
            done.report()
        );
    }
    env.kvr(["get", "a"])
        .env("KVR_TIMEOUT", "abc")
        .code(2)
        .stderr_has("in the environment variable KVR_TIMEOUT");
    // The token file's token is the one sent; the variable is not read.
    std::fs::write(env.path("tf"), "sekret\n").unwrap();
    let done = env
        .kvr_bare([
            "--server",
            "http://127.0.0.1:9",
            "--token-file",
            "tf",
            "get",
            "a",
        ])
        .env("KVR_TOKEN", "bad\u{1}")
        .code(5);
    assert!(
        !done.stderr_text().contains("control character"),
        "{}",
        done.report()
    );
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
}

/// A file of a newer format is not called damaged (which sends the user
/// to a backup of a healthy file), and a truncated one says so rather than
/// "failed to fill whole buffer". Neither is changed.
#[test]
fn a_newer_format_and_a_truncated_file_say_what_they_are() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    let bytes = std::fs::read(env.db()).unwrap();
    // The format version byte of both commit slots of redb's header.
    let mut newer = bytes.clone();
    assert_eq!((newer[0x40], newer[0xc0]), (3, 3), "redb's header moved");
    newer[0x40] = 4;
    newer[0xc0] = 4;
    std::fs::write(env.path("newer.redb"), &newer).unwrap();
    for args in [&["get", "a"][..], &["put", "c", "3"], &["stats"]] {
        let mut all = vec!["--db", "newer.redb"];
        all.extend_from_slice(args);
        let done = env.kvr_bare(all).code(3);
        let text = done.stderr_text();
        assert!(
            text.contains("written by a newer release of kvr") && !text.contains("damaged"),
            "{}",
            done.report()
        );
    }
    assert!(std::fs::read(env.path("newer.redb")).unwrap() == newer);
    std::fs::write(env.path("cut.redb"), &bytes[..100]).unwrap();
    env.kvr_bare(["--db", "cut.redb", "get", "a"])
        .code(3)
        .stderr_has(
            "kvr: error: cut.redb is damaged: the file ends inside a page or its header (it was \
             truncated, or a copy of it stopped short;",
        )
        .stderr_has("; kvr --db cut.redb check tells what is wrong; restore a backup of it\n");
    assert_eq!(std::fs::read(env.path("cut.redb")).unwrap(), &bytes[..100]);
    // Cut after its header (whose pages then reach past the end): it gave
    // redb's words, "File truncated below stored layout", and no way out
    // (found by an audit).
    let after_header = &bytes[..bytes.len() / 2];
    std::fs::write(env.path("half.redb"), after_header).unwrap();
    for args in [&["get", "a"][..], &["put", "c", "3"], &["stats"]] {
        let mut all = vec!["--db", "half.redb"];
        all.extend_from_slice(args);
        env.kvr_bare(all)
            .code(3)
            .stderr_has(
                "kvr: error: half.redb is damaged: the file ends before its last page (it was \
                 truncated, or a copy of it stopped short; file_len=",
            )
            .stderr_has("; kvr --db half.redb check tells what is wrong; restore a backup of it");
    }
    assert!(std::fs::read(env.path("half.redb")).unwrap() == after_header);
}

/// A file the user may not even read: one plain "cannot read" line, as
/// `put` gives (it read "cannot open F to open it (…: Permission denied):
/// Permission denied"). A loop of links is not "does not exist".
#[test]
fn unreadable_files_and_link_loops_are_said_plainly() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o000)).unwrap();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    for args in [&["get", "a"][..], &["range"], &["stats"]] {
        let mut run = env.kvr(args);
        if root {
            run.cmd.uid(65534).gid(65534);
        }
        let done = run.code(3);
        let first = done.stderr_text().lines().next().unwrap_or("").to_string();
        assert!(
            first.ends_with("cannot read test.redb: Permission denied (os error 13)")
                || first.contains(&format!(
                    "cannot read {}: Permission denied (os error 13)",
                    env.db().display()
                )),
            "{}",
            done.report()
        );
    }
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
    std::os::unix::fs::symlink("loop2", env.path("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", env.path("loop2")).unwrap();
    env.kvr_bare(["--db", "loop1", "get", "a"])
        .code(3)
        .stderr_has("cannot open loop1: Too many levels of symbolic links");
}

/// `backup` to `newdir/` (a directory's name) or through a file
/// (`afile/x.redb`) says what is wrong with DEST, before copying anything:
/// they read "cannot rename the backup" and "the directory afile does
/// not exist".
#[test]
fn backup_says_what_is_wrong_with_dest() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["backup", "newdir/"])
        .code(2)
        .stderr_has("DEST newdir/ ends in '/' as a directory does");
    std::fs::write(env.path("afile"), "x").unwrap();
    env.kvr(["backup", "afile/x.redb"])
        .code(3)
        .stderr_has("cannot create afile/x.redb: Not a directory");
    assert!(!env.path("newdir").exists());
    assert_eq!(std::fs::read(env.path("afile")).unwrap(), b"x");
    let left: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".kvr-backup"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Help and version fail on a full stdout as every command's output does
/// (they exited 0 having printed nothing), and stay quiet on a closed one.
#[test]
fn help_and_version_fail_on_a_full_stdout() {
    let env = Env::new();
    for args in [
        &["--help"][..],
        &["-V"],
        &["help", "put"],
        &["put", "--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut run = env.kvr_bare(args);
        run.cmd.stdout(full);
        let out = run
            .cmd
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .starts_with("kvr: error: disk full: cannot write output"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let done = env.kvr_bare(args).ok();
        assert!(!done.out.stdout.is_empty(), "{args:?}");
    }
}

/// A key or value that is a negative number is data, as SPEC's "a VALUE
/// argument is always literal" says (`put k -5` was an unknown flag); a
/// word starting with `-` still needs `--`. `range --json` is accepted as
/// `stats --json` is.
#[test]
fn negative_numbers_are_keys_and_values_and_range_takes_json() {
    let env = Env::new();
    env.kvr(["put", "k", "-5"]).ok();
    env.kvr(["put", "-1", "-2.5"]).ok();
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "-5");
    assert_eq!(env.kvr(["get", "-1"]).ok().stdout_text(), "-2.5");
    let lines = env.range_json(&["-1", "-2"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["key"], "-1");
    env.kvr(["put", "k", "-x"]).code(2);
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "-5");
    let done = env.kvr(["range", "--json"]).ok();
    assert_eq!(done.stdout_text(), env.kvr(["range"]).ok().stdout_text());
    env.kvr(["delete", "-1"]).ok();
    env.kvr(["get", "-1"]).code(1);
}

/// Every word Rust reads as a number is data too, not only the ones
/// clap's negative numbers know (`-5`, `-5.`, `-1e5`): `-.5`, `-1E-5`,
/// `-inf`, `-Infinity` and `-NaN` were unexpected arguments (found by an
/// audit). A flag after such a word is still a flag, and an option's value
/// is not moved: `--ttl -.5` stays refused.
#[test]
fn every_negative_number_is_data() {
    let env = Env::new();
    let words = [
        "-.5",
        "-1E-5",
        "-1e-5",
        "-inf",
        "-Infinity",
        "-NaN",
        "-5.",
        "-1e5",
    ];
    for (i, word) in words.iter().enumerate() {
        let done = env.kvr(["put", word, word, "--json"]).ok();
        assert_eq!(parse_lines(&done.stdout_text())[0]["revision"], i + 1);
        assert_eq!(env.kvr(["get", word]).ok().stdout_text(), *word);
    }
    let lines = env.range_json(&["-.5", "-.6"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["key"], "-.5");
    let before = env.snapshot();
    env.kvr(["put", "k", "--ttl", "-.5"]).code(2);
    env.kvr(["put", "k", "-.5x"]).code(2);
    assert_eq!(env.snapshot(), before);
    env.kvr(["rm", "-inf", "--json"]).ok();
    env.kvr(["get", "-inf"]).code(1);
    // A file named as the command is (`--db put put k -.5`): the command
    // is the word after it, not the file's name (found by a review audit).
    env.kvr_bare(["--db", "put", "put", "k", "-.5"]).ok();
    let got = env.kvr_bare(["--db", "put", "get", "k"]).ok();
    assert_eq!(got.stdout_text(), "-.5");
    assert!(env.path("put").exists());
}

/// `--timeout` and `--lock-timeout` take the units `--ttl` takes (`30s`
/// was "invalid float literal"), and a word that is no number says what
/// is expected. Lines that are not UTF-8 point to the `_b64` forms.
#[test]
fn timeouts_take_units_and_bad_bytes_point_to_b64() {
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["--lock-timeout", "2s", "get", "a"]).ok();
    env.kvr(["--timeout", "1.5m", "--lock-timeout", "0.5", "get", "a"])
        .ok();
    env.kvr(["get", "a"]).env("KVR_LOCK_TIMEOUT", "1m").ok();
    env.kvr(["--lock-timeout", "abc", "get", "a"])
        .code(2)
        .stderr_has("\"abc\" is not a number of seconds such as 30, 0.5, 30s or 5m");
    env.kvr(["--timeout", "30x", "get", "a"])
        .code(2)
        .stderr_has("unknown unit \"x\"");
    let before = env.snapshot();
    env.kvr(["batch"])
        .stdin(&b"{\"key\":\"b\",\"value\":\"2\"}\n{\"key\":\"a\xff\",\"value\":\"x\"}\n"[..])
        .code(2)
        .stderr_has("line 2: ")
        .stderr_has("give other bytes as key_b64 / value_b64");
    assert_eq!(env.snapshot(), before);
}
