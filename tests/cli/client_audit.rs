//! Findings of a black-box audit of the client side: a closed stdin is not
//! an empty value, an applied write whose output fails says it was applied,
//! `check` and `compact` on a served file say to stop the server, tokens
//! with control characters, value limits of `--db` and of a server.

use std::process::Stdio;

use super::util::{Env, KVR};

/// `kvr ARGS` with fd 0 closed (`<&-`), in `env`'s dir.
fn with_stdin_closed(env: &Env, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .current_dir(env.dir.path())
        .arg("-c")
        .arg("exec \"$0\" \"$@\" <&-")
        .arg(KVR)
        .args(args)
        .env_remove("KVR_DB")
        .env_remove("KVR_SERVER")
        .output()
        .unwrap()
}

/// `kvr ARGS` with stdout on /dev/full.
fn with_stdout_full(env: &Env, args: &[&str]) -> std::process::Output {
    let mut cmd = env.kvr(args).cmd;
    cmd.stdin(Stdio::null())
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(Stdio::piped());
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn put_with_stdin_closed_is_refused_and_writes_nothing() {
    for env in [Env::new(), Env::served()] {
        let db = env.db().display().to_string();
        let target: Vec<&str> = match env.server_url() {
            Some(url) => vec!["--server", url],
            None => vec!["--db", &db],
        };
        let mut args = target.clone();
        args.extend(["put", "cfg"]);
        let out = with_stdin_closed(&env, &args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.starts_with("kvr: error: stdin is closed"), "{err}");
        if env.is_served() {
            env.kvr(["get", "cfg"]).code(1);
            assert_eq!(env.stats()["revision"], 0);
        } else {
            assert!(!env.db().exists(), "a refused put created the file");
        }
    }
    // `< /dev/null` is still an empty value.
    let env = Env::new();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut cmd = env.kvr(["put", "cfg"]).cmd;
    assert!(cmd.stdin(null).status().unwrap().success());
    assert_eq!(env.kvr(["get", "cfg"]).ok().stdout_text(), "");
    // So is a /dev/null its parent opened read-write (Python's
    // `stdin=subprocess.DEVNULL`, systemd's `StandardInput=null`): the
    // same file as the runtime puts in place of a closed fd 0, but open at
    // the start.
    let null_rw = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap()
    };
    let mut cmd = env.kvr(["put", "empty"]).cmd;
    assert!(cmd.stdin(null_rw()).status().unwrap().success());
    assert_eq!(env.kvr(["get", "empty"]).ok().stdout_text(), "");
    let mut cmd = env.kvr(["batch"]).cmd;
    let out = cmd.stdin(null_rw()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.stats()["keys"], 2);
}

/// A closed stdin is no batch either: exit 2, nothing written, with an
/// existing file or none, and through a server; `< /dev/null` is still an
/// empty batch.
#[test]
fn batch_with_stdin_closed_is_refused_and_writes_nothing() {
    for env in [Env::new(), Env::served()] {
        let db = env.db().display().to_string();
        let target: Vec<&str> = match env.server_url() {
            Some(url) => vec!["--server", url],
            None => vec!["--db", &db],
        };
        for input in [&[][..], &["-"][..]] {
            let mut args = target.clone();
            args.push("batch");
            args.extend(input);
            let out = with_stdin_closed(&env, &args);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
            let err = text(&out.stderr);
            assert!(err.starts_with("kvr: error: stdin is closed"), "{err}");
            assert!(err.contains("no lines to read"), "{err}");
            if env.is_served() {
                assert_eq!(env.stats()["revision"], 0);
            } else {
                assert!(!env.db().exists(), "a refused batch created the file");
            }
        }
    }
    let env = Env::new();
    env.kvr(["put", "a", "1"]).ok();
    let db = env.db().display().to_string();
    let out = with_stdin_closed(&env, &["--db", &db, "batch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
    assert_eq!(env.stats()["revision"], 1);
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut cmd = env.kvr(["batch"]).cmd;
    assert!(cmd.stdin(null).status().unwrap().success());
    assert_eq!(env.stats()["revision"], 1);
}

#[test]
fn an_applied_write_whose_output_fails_says_it_was_applied() {
    let env = Env::new();
    let check = |args: &[&str], said: &str| {
        let out = with_stdout_full(&env, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        let first = err.lines().last().unwrap_or_default();
        assert!(
            first.starts_with(&format!(
                "kvr: error: {said}; only writing its output failed"
            )),
            "{args:?}: {err}"
        );
        assert!(!err.contains("retry"), "{args:?}: {err}");
    };
    check(
        &["put", "--json", "a", "1"],
        "the put was applied at revision 1",
    );
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
    check(
        &["delete", "--json", "a"],
        "the delete was applied at revision 2",
    );
    env.kvr(["get", "a"]).code(1);
    let out = {
        let mut cmd = env.kvr(["batch", "--json"]).cmd;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"{\"key\":\"b\",\"value\":\"1\"}\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(3));
    // The error is the first line: the summary does not come before it.
    assert!(
        text(&out.stderr).starts_with(
            "kvr: error: the batch was applied at revision 3 (1 operation); only writing its \
             output failed"
        ),
        "{}",
        text(&out.stderr)
    );
    check(
        &["delete", "--json", "--prefix", "b"],
        "the range delete was applied (1 keys deleted, revision 4)",
    );
    env.kvr(["put", "c", "1"]).ok();
    let dest = env.path("copy.redb").display().to_string();
    check(
        &["backup", "--json", &dest],
        &format!("the backup was written to {dest} (1 key at revision 5)"),
    );
    assert_eq!(env.stats()["revision"], 5);
}

/// The "in use" error names the holder by its command and `--db` only:
/// a server's `--token` was printed to whoever touched the file (found by
/// an audit).
#[test]
fn in_use_names_the_holders_command_but_not_its_token() {
    let env = Env::served_with(&["--token", "topsecret"]);
    let db = env.db().display().to_string();
    let done = env
        .kvr_bare(["--db", db.as_str(), "get", "a"])
        .code(3)
        .stderr_has(&format!("is in use by kvr --db {db} serve … (pid "));
    assert!(
        !done.stderr_text().contains("topsecret"),
        "{}",
        done.report()
    );
}

/// A second `serve` of a served file names the server that has it, and
/// does not say to use `--server`, which `serve` refuses (found by an
/// audit). Nothing is started.
#[test]
fn a_second_server_of_a_file_is_told_which_has_it() {
    let env = Env::served();
    let url = env.server_url().unwrap().to_string();
    let db = env.db().display().to_string();
    let done = env
        .kvr_bare(["--db", db.as_str(), "serve", "--listen", "127.0.0.1:0"])
        .code(3)
        .stderr_has(&format!(
            "; it is served at {url} already, and a file has one server: use that one, or \
             serve another file"
        ));
    assert!(
        !done.stderr_text().contains("--server"),
        "{}",
        done.report()
    );
    assert!(done.stdout_text().is_empty());
}

#[test]
fn check_and_compact_of_a_served_file_say_to_stop_the_server() {
    let env = Env::served();
    env.kvr(["put", "a", "1"]).ok();
    let url = env.server_url().unwrap().to_string();
    let db = env.db().display().to_string();
    let before = std::fs::read(env.db()).unwrap().len();
    for command in ["check", "compact"] {
        let done = env
            .kvr_bare(["--db", db.as_str(), command])
            .code(3)
            .stderr_has("is in use by")
            .stderr_has("stop that process first");
        let err = done.stderr_text();
        assert!(!err.contains("use --server"), "{err}");
        if command == "check" {
            assert!(
                err.contains(&format!(
                    "check a backup instead (kvr --server {url} backup COPY, then kvr --db COPY \
                     check)"
                )),
                "{err}"
            );
        }
    }
    assert_eq!(std::fs::read(env.db()).unwrap().len(), before);
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
}

#[test]
fn tokens_with_control_characters_are_usage_errors() {
    let env = Env::served_with(&["--token", "sekrit"]);
    let url = env.server_url().unwrap().to_string();
    // A token file with Windows line endings: the whole "\r\n" goes.
    std::fs::write(env.path("crlf"), "sekrit\r\n").unwrap();
    env.kvr_bare(["--server", &url, "--token-file", "crlf", "put", "a", "1"])
        .ok();
    std::fs::write(env.path("cr-inside"), "sek\rrit\n").unwrap();
    let done = env
        .kvr_bare([
            "--server",
            &url,
            "--token-file",
            "cr-inside",
            "put",
            "b",
            "1",
        ])
        .code(2)
        .stderr_has(
            "kvr: error: the token contains a control character ('\\r' at byte 3), which cannot \
             be sent in an HTTP header; check the token file cr-inside",
        );
    assert!(!done.stderr_text().contains("storage error"));
    env.kvr_bare(["--server", &url, "--token", "a\u{1}b", "put", "b", "1"])
        .code(2)
        .stderr_has("control character ('\\u{1}' at byte 1)")
        .stderr_has("check --token\n");
    // Beyond ASCII: no header carries it, for the client nor for a server
    // (which would start and refuse everyone).
    env.kvr_bare(["--server", &url, "--token", "s\u{e9}krit", "put", "b", "1"])
        .code(2)
        .stderr_has("the token contains '\u{e9}' at byte 1, which is not ASCII")
        .stderr_has("check --token\n");
    let refused = env
        .kvr_bare(["--token", "s\u{e9}krit", "serve", "--listen", "127.0.0.1:0"])
        .code(2)
        .stderr_has("which is not ASCII");
    assert!(refused.stdout_text().is_empty(), "it listened");
    // White space at either end: HTTP strips it from the header, so a
    // server given it refused every client, its own CLI too.
    std::fs::write(env.path("spaced"), " tok5\n").unwrap();
    let refused = env
        .kvr_bare([
            "--token-file",
            "spaced",
            "--db",
            "spaced.redb",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .code(2)
        .stderr_has(
            "kvr: error: the token begins or ends with white space, which HTTP drops from a \
             header, so no client could present it; remove it, and check the token file spaced",
        );
    assert!(refused.stdout_text().is_empty(), "it listened");
    assert!(!env.path("spaced.redb").exists());
    env.kvr_bare(["--server", &url, "--token", "sekrit\t", "put", "b", "1"])
        .code(2)
        .stderr_has("begins or ends with white space")
        .stderr_has("check --token\n");
    let refused = env
        .kvr_bare([
            "--db",
            "member.redb",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--raft-listen",
            "127.0.0.1:0",
            "--cluster-init",
            "--cluster-token",
            "c1 ",
        ])
        .code(2)
        .stderr_has("begins or ends with white space")
        .stderr_has("check --cluster-token");
    assert!(refused.stdout_text().is_empty(), "it listened");
    // Inside, a space is sent as it is.
    env.kvr_bare(["--server", &url, "--token", "a b", "get", "a"])
        .code(3);
    // A stale KVR_TOKEN is a usage error with --db too (as every variable
    // is checked whichever command runs), and nothing is written.
    env.kvr_bare(["--db", "local.redb", "put", "b", "1"])
        .env("KVR_TOKEN", "a\u{1}b")
        .code(2)
        .stderr_has("check KVR_TOKEN\n");
    assert!(!env.path("local.redb").exists());
    let all = env
        .kvr_bare(["--server", &url, "--token", "sekrit", "range"])
        .ok()
        .stdout_text();
    assert_eq!(all.lines().count(), 1, "{all}");
    // Not a kvr server: no "storage error", which is about a database file.
    let done = env
        .kvr_bare([
            "--server",
            &format!("{url}/api"),
            "--token",
            "sekrit",
            "get",
            "a",
        ])
        .code(3);
    let err = done.stderr_text();
    assert!(
        err.starts_with(&format!(
            "kvr: error: {url}/api does not look like a kvr server"
        )),
        "{err}"
    );
    assert!(err.contains("check the --server URL"), "{err}");
}

/// A value of `n` bytes.
fn value(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn put_through_a_server_takes_the_servers_value_limit() {
    const BIG: usize = 20_000_000;
    let env = Env::served_with(&["--max-value-bytes", "33554432"]);
    // Over the client's old fixed 16 MiB, under the server's limit: from a
    // pipe and from a file.
    env.kvr(["put", "big"]).stdin(value(BIG)).ok();
    std::fs::write(env.path("v"), value(BIG)).unwrap();
    let file = std::fs::File::open(env.path("v")).unwrap();
    let mut cmd = env.kvr(["put", "--json", "big2"]).cmd;
    let out = cmd.stdin(file).output().unwrap();
    assert_eq!(
        text(&out.stdout),
        "{\"revision\":2}\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.kvr(["get", "big"]).ok().out.stdout, value(BIG));
    assert_eq!(env.kvr(["get", "big2"]).ok().out.stdout, value(BIG));
    // Over the server's limit: exit 2 naming it, nothing written.
    env.kvr(["put", "huge"])
        .stdin(value(40_000_000))
        .code(2)
        .stderr_has("refused the value: the value is over the server's limit of 33554432 bytes");
    assert_eq!(env.stats()["revision"], 2);
    // The flag for a local file's limit is refused with a server.
    env.kvr(["put", "--max-value-bytes", "100", "x", "1"])
        .code(2)
        .stderr_has("with --server the server's limit");
    assert_eq!(env.stats()["revision"], 2);
}

#[test]
fn a_streamed_value_over_the_servers_limit_is_refused() {
    // Over the client's 64 MiB retry buffer: streamed once.
    let env = Env::served();
    let big = 70 << 20;
    env.kvr(["put", "huge"])
        .stdin(value(big))
        .code(2)
        .stderr_has("over the server's limit");
    std::fs::write(env.path("v"), value(big)).unwrap();
    let file = std::fs::File::open(env.path("v")).unwrap();
    let mut cmd = env.kvr(["put", "huge"]).cmd;
    let out = cmd.stdin(file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the value is over the server's limit of 16777216 bytes"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.stats()["revision"], 0);
}

#[test]
fn max_value_bytes_raises_the_limit_of_a_local_file() {
    const BIG: usize = 20_000_000;
    let src = Env::new();
    let line = format!(
        "{{\"key\":\"big\",\"value\":\"{}\"}}\n",
        String::from_utf8(value(BIG)).unwrap()
    );
    // The default limit, with a hint how to raise it; no file is created.
    src.kvr(["batch"])
        .stdin(line.clone())
        .code(2)
        .stderr_has("over the limit of 16777216 bytes; --max-value-bytes BYTES raises the limit");
    src.kvr(["put", "big"])
        .stdin(value(BIG))
        .code(2)
        .stderr_has("--max-value-bytes BYTES raises the limit");
    assert!(!src.db().exists());
    src.kvr(["batch", "--max-value-bytes", "33554432"])
        .stdin(line)
        .ok();
    src.kvr(["put", "--max-value-bytes", "33554432", "big2"])
        .stdin(value(BIG))
        .ok();
    // `range | batch` copies such values with the flag.
    let dump = src.kvr(["range"]).ok().out.stdout;
    let dst = Env::new();
    dst.kvr(["batch"]).stdin(dump.clone()).code(2);
    assert!(!dst.db().exists());
    dst.kvr(["batch", "--max-value-bytes", "33554432"])
        .stdin(dump.clone())
        .ok();
    assert_eq!(dst.kvr(["range"]).ok().out.stdout, dump);
    // Still a limit.
    dst.kvr(["put", "--max-value-bytes", "10", "small"])
        .stdin(value(11))
        .code(2);
    dst.kvr(["get", "small"]).code(1);
}

/// `--consistency stale` (or `KVR_CONSISTENCY=stale`) reaches the server
/// from every read command, `backup` and `watch` included (SPEC: every
/// read route takes it): seen in the server's access log. (`backup` and
/// `watch` used to drop it, so a stale backup of a node without a leader
/// failed.)
#[test]
fn every_read_command_sends_the_consistency_it_is_given() {
    let env = Env::new();
    let log_path = env.path("serve.log");
    let mut server = std::process::Command::new(KVR)
        .current_dir(env.dir.path())
        .args(["--db", "s.redb", "serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let url = super::util::listening_url(&mut server);
    env.kvr_bare(["--server", &url, "put", "k", "v"]).ok();
    let stale = ["--server", &url, "--consistency", "stale"];
    for args in [
        &["get", "k"][..],
        &["range"],
        &["range", "--count"],
        &["stats"],
        &["backup", "by-flag.redb"],
    ] {
        env.kvr_bare(stale.iter().chain(args)).ok();
    }
    env.kvr_bare(["--server", &url, "backup", "by-env.redb"])
        .env("KVR_CONSISTENCY", "stale")
        .ok();
    let mut watch = std::process::Command::new(KVR)
        .current_dir(env.dir.path())
        .args(stale)
        // Empty bounds are no bounds (as `start=` over HTTP): none is sent.
        .args(["watch", "", ""])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let targets = |log: &str, path: &str| -> Vec<String> {
        log.lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter(|t| t.starts_with(path))
            .map(String::from)
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while targets(&std::fs::read_to_string(&log_path).unwrap(), "/v1/watch").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no watch request logged"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    for (path, requests) in [
        ("/v1/kv/", 1),
        ("/v1/range", 2),
        ("/v1/stats", 1),
        ("/v1/backup", 2),
        ("/v1/watch", 1),
    ] {
        let sent = targets(&log, path);
        // The put is the one kv request without it.
        let sent: Vec<&String> = sent
            .iter()
            .filter(|t| path != "/v1/kv/" || t.contains('?'))
            .collect();
        assert_eq!(sent.len(), requests, "{path}: {sent:?}\n{log}");
        for t in sent {
            assert!(t.contains("consistency=stale"), "{t}\n{log}");
            if path == "/v1/watch" {
                assert!(!t.contains("start=") && !t.contains("end="), "{t}");
            }
        }
    }
}
