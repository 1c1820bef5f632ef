//! `batch` when things go wrong: over-long lines, error columns, a server
//! that cuts a batch off, signals into an existing file, and files left
//! not closed cleanly.

use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::util::Env;

/// A JSON error inside a string `value` is placed by its column in the
/// line, not in the value.
#[test]
fn invalid_json_column_counts_from_the_start_of_the_line() {
    for env in [Env::new(), Env::served()] {
        env.kvr(["put", "pre", "1"]).ok();
        let before = env.snapshot();
        // The lone surrogate `\ud800` is at columns 32-37; serde_json notices
        // it at the quote after it, column 38.
        env.kvr(["batch"])
            .stdin("{\"key\":\"aaaaaaaaaa\",\"value\":\"xx\\ud800\"}\n")
            .code(2)
            .stderr_has(
                "kvr: error: line 1: invalid JSON at column 38: unexpected end of hex escape (a \
                 lone surrogate escape such as \\ud800 is no text",
            );
        env.kvr(["batch"])
            .stdin("\n{\"key\":\"a\",\"value\":\"\\ud800\"}\n")
            .code(2)
            .stderr_has("kvr: error: line 2: invalid JSON at column 27: ");
        assert_eq!(env.snapshot(), before);
    }
}

/// Writes `head`, then `fill` bytes of `a`, then `tail` into `child`'s
/// stdin on a thread, counting what the child took; the count is final
/// once the thread ends (the child exited or everything was written).
fn feed(
    child: &mut Child,
    head: &str,
    fill: u64,
    tail: &str,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let mut pipe = child.stdin.take().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    let (head, tail) = (head.to_string(), tail.to_string());
    let thread = std::thread::spawn(move || {
        let block = vec![b'a'; 1 << 20];
        if pipe.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut left = fill;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if pipe.write_all(&block[..n]).is_err() {
                return;
            }
            count.fetch_add(n as u64, Ordering::SeqCst);
            left -= n as u64;
        }
        let _ = pipe.write_all(tail.as_bytes());
    });
    (written, thread)
}

/// The longest line `--db batch` reads: a 16 MiB value and a 4,096-byte
/// key, every byte `\uXXXX`-escaped, and 64 KiB more.
const MAX_LINE: u64 = ((16 << 20) + 4096) * 6 + (64 << 10);

/// A line longer than any valid line is refused once that much of it is
/// read, naming its line, in bounded memory: never read whole.
#[test]
fn an_over_long_line_is_refused_without_reading_it_whole() {
    let env = Env::new();
    env.kvr(["put", "pre", "1"]).ok();
    let before = env.snapshot();
    let fill = 3 * MAX_LINE;
    let mut child = spawn_piped(&env, &["batch"]);
    let head = "{\"key\":\"ok\",\"value\":\"v\"}\n{\"key\":\"a\",\"value\":\"";
    let (written, feeder) = feed(&mut child, head, fill, "\"}\n");
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "kvr: error: line 2: the line is longer than {MAX_LINE} bytes, more than any valid \
             line (a value of at most 16777216 bytes and a key, fully escaped) can be; is the \
             input JSON lines, one object per line?\n"
        )
    );
    // What it took is the limit and what pipes and buffers hold, not the line.
    let taken = written.load(Ordering::SeqCst);
    assert!(
        taken < MAX_LINE + (8 << 20),
        "read {taken} bytes of the line"
    );
    assert_eq!(env.snapshot(), before);
    // The same with --chunk-size, whose parts are held in memory.
    let mut child = spawn_piped(&env, &["batch", "--chunk-size", "10"]);
    let (written, feeder) = feed(&mut child, "{\"key\":\"a\",\"value\":\"", fill, "\"}\n");
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kvr: error: line 1: the line is longer than {MAX_LINE} bytes"
        )),
        "{stderr}"
    );
    let taken = written.load(Ordering::SeqCst);
    assert!(
        taken < MAX_LINE + (8 << 20),
        "read {taken} bytes of the line"
    );
    assert_eq!(env.snapshot(), before);
}

/// A batch far over the server's `--max-batch-bytes` is cut off while it
/// is sent (its 413 is lost with the connection); the error still names
/// the limit, and nothing is written.
#[test]
fn a_batch_cut_off_by_the_server_names_its_limit() {
    let env = Env::served_with(&["--max-batch-bytes", "1048576"]);
    env.kvr(["put", "pre", "1"]).ok();
    let before = env.snapshot();
    let input: String = (0..40_000)
        .map(|i| {
            format!(
                "{{\"key\":\"k{i:06}\",\"value\":\"{}\"}}\n",
                "v".repeat(800)
            )
        })
        .collect();
    for _ in 0..3 {
        env.kvr(["batch"]).stdin(input.clone()).code(2).stderr_has(
            "the batch body is over the server's limit of 1048576 bytes; nothing was written",
        );
    }
    assert_eq!(env.snapshot(), before);
    // The limits the client asked for.
    let url = env.server_url().unwrap().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /v1/limits HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"max_key_bytes": 4096, "max_value_bytes": 16777216,
                           "max_batch_ops": 100000, "max_batch_bytes": 1048576})
    );
}

/// A value over the server's limit that goes without `Expect:
/// 100-continue` (under 1 MiB) is cut off as a batch is, and the close
/// reached the client as a broken pipe or as a reset, which it took for
/// "the outcome is unknown": 6 of 20 such puts exited 3, "cut the request
/// off". Each is now named as the server's refusal, exit 2, and nothing
/// is written.
#[test]
fn a_value_over_the_servers_limit_is_named_however_it_is_cut_off() {
    let env = Env::served_with(&["--max-value-bytes", "100000"]);
    env.kvr(["put", "pre", "1"]).ok();
    let before = env.snapshot();
    for _ in 0..10 {
        env.kvr(["put", "big"])
            .stdin("v".repeat(900_000))
            .code(2)
            .stderr_has(
                "refused the value: the value is over the server's limit of 100000 bytes \
                 (--max-value-bytes); nothing was written",
            );
    }
    assert_eq!(env.snapshot(), before);
}

/// A line alone over the server's limit on a batch request is named, with
/// no advice to send the input in parts, which cannot help; `kvr put` is
/// offered only for a line its value limit surely takes (an audit followed
/// the advice for a line of 70 MB, and `put` refused it too); nothing is
/// written. With `--chunk-size` it is said of the part, and the parts
/// before it stay applied.
#[test]
fn a_line_alone_over_the_servers_batch_limit_is_named() {
    let env = Env::served_with(&["--max-batch-bytes", "1048576"]);
    env.kvr(["put", "pre", "1"]).ok();
    let before = env.snapshot();
    let input = format!(
        "{{\"key\":\"a\",\"value\":\"1\"}}\n{{\"key\":\"big\",\"value\":\"{}\"}}\n",
        "v".repeat(2 << 20)
    );
    env.kvr(["batch"]).stdin(input.clone()).code(2).stderr_has(
        "refused the batch: line 2 alone is over the server's limit of 1048576 bytes on a batch \
         request, so no --chunk-size can send it; nothing was written; write its key with kvr \
         put (a single value may take up to 16777216 bytes, serve --max-value-bytes), or have \
         the server's limit raised",
    );
    assert_eq!(env.snapshot(), before);
    // Exit 3, as for any part refused after others were applied.
    env.kvr(["batch", "--chunk-size", "1"])
        .stdin(input.clone())
        .code(3)
        .stderr_has("the input from line 2 on was not applied; line 1 was applied")
        .stderr_has(
            "refused the batch: line 2 alone is over the server's limit of 1048576 bytes on a \
             batch request, so no --chunk-size can send it; this part of 1 line was not \
             applied; write its key with kvr put",
        );
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
    env.kvr(["get", "big"]).code(1);
    // The same line where a value may not take it either: no `kvr put`.
    let env = Env::served_with(&[
        "--max-batch-bytes",
        "1048576",
        "--max-value-bytes",
        "1048576",
    ]);
    let before = env.snapshot();
    let said = env.kvr(["batch"]).stdin(input).code(2).stderr_has(
        "line 2 alone is over the server's limit of 1048576 bytes on a batch request, so no \
         --chunk-size can send it; nothing was written; have the server's limits raised (a \
         value may take up to 1048576 bytes, serve --max-value-bytes)",
    );
    assert!(!said.stderr_text().contains("kvr put"), "{}", said.report());
    assert_eq!(env.snapshot(), before);
}

/// A line counts with its newline: one of exactly the server's limit and
/// its newline is named as a line no part can send, not answered with
/// `--chunk-size` advice (found by an audit). In a later part it is named
/// by its line in the whole input.
#[test]
fn a_line_alone_over_the_limit_is_named_with_its_newline_and_in_later_parts() {
    let env = Env::served_with(&["--max-batch-bytes", "2000"]);
    let head = "{\"key\":\"big\",\"value\":\"";
    let big = format!("{head}{}\"}}", "x".repeat(2000 - head.len() - 2));
    assert_eq!(big.len(), 2000);
    let before = env.snapshot();
    for args in [&["batch"][..], &["batch", "--chunk-size", "1"]] {
        env.kvr(args).stdin(format!("{big}\n")).code(2).stderr_has(
            "refused the batch: line 1 alone is over the server's limit of 2000 bytes on a \
             batch request, so no --chunk-size can send it",
        );
        assert_eq!(env.snapshot(), before);
    }
    // Without its newline the same line fits.
    env.kvr(["batch"]).stdin(big.clone()).ok();
    env.kvr(["delete", "big"]).ok();
    let line = |k: u32| format!("{{\"key\":\"k{k}\",\"value\":\"v\"}}\n");
    let input = format!("{}{}{}{big}\n{}", line(1), line(2), line(3), line(5));
    env.kvr(["batch", "--chunk-size", "2"])
        .stdin(input)
        .code(3)
        .stderr_has("the input from line 3 on was not applied; lines 1-2 were applied")
        .stderr_has(
            "refused the batch: line 4 alone is over the server's limit of 2000 bytes on a \
             batch request, so no --chunk-size can send it; this part of 2 lines was not \
             applied; write its key with kvr put",
        );
    env.kvr(["get", "k2"]).ok();
    env.kvr(["get", "k3"]).code(1);
}

/// `lines` lines of 50-byte values: many runs of a 16 MiB cache.
fn big_input(lines: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        writeln!(
            out,
            "{{\"key\":\"k{i:09}\",\"value\":\"{}\"}}",
            "v".repeat(50)
        )
        .unwrap();
    }
    out
}

/// Starts `kvr ARGS` on `env` with stdin and stderr piped.
fn spawn_piped(env: &Env, args: &[&str]) -> Child {
    env.kvr(args)
        .cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `kvr --cache-mib 16 batch` (runs of 4 MiB) on `env`'s file with
/// `input` on stdin and stdin kept open: the batch is under way until it
/// is stopped. Returns once the input was taken in.
fn batch_under_way(env: &Env, input: Vec<u8>) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = spawn_piped(env, &["--cache-mib", "16", "batch"]);
    let mut pipe = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
        let _ = tx.send(());
        // Kept open: the batch waits for more.
        std::thread::sleep(Duration::from_secs(60));
    });
    rx.recv_timeout(Duration::from_secs(120)).unwrap();
    // Runs sorted and written into the open transaction.
    std::thread::sleep(Duration::from_millis(1500));
    (child, feeder)
}

fn kill(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// SIGINT or SIGTERM of a batch into an existing file: exit 3 with a
/// message, the data as it was, the file closed cleanly (`check` is ok)
/// and not left larger by the batch's pages.
#[test]
fn an_interrupted_batch_into_an_existing_file_leaves_it_as_it_was() {
    let env = Env::new();
    env.kvr(["put", "pre", "1"]).ok();
    let before = env.snapshot();
    let size = std::fs::metadata(env.db()).unwrap().len();
    let input = big_input(400_000);
    for signal in ["INT", "TERM"] {
        let (child, _feeder) = batch_under_way(&env, input.clone());
        let started = Instant::now();
        kill(&child, signal);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "SIG{signal}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "kvr: error: interrupted (SIG{signal}): the batch was not applied; {} is as \
                 it was\n",
                env.db().display()
            )
        );
        assert!(started.elapsed() < Duration::from_secs(20), "slow to stop");
        env.kvr(["check"])
            .ok()
            .stdout_has("ok: 1 keys, revision 1\n");
        let now = std::fs::metadata(env.db()).unwrap().len();
        assert!(
            now <= size + (1 << 20),
            "SIG{signal}: {size} bytes before, {now} after"
        );
        assert_eq!(env.snapshot(), before);
    }
}

/// `k000`.. puts of lines `range` of an input.
fn lines_of_puts(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| format!("{{\"key\":\"k{i:03}\",\"value\":\"v{i}\"}}\n"))
        .collect()
}

/// Starts `kvr batch --chunk-size 100` on `env` and gives it `input`, then
/// sends nothing more with its stdin kept open (returned), as a stalled
/// producer does. Returns once it has applied the parts it can: through a
/// server, once the server is at `revision` (what those parts make it);
/// with `--db` (whose file the batch holds) or with no part to apply, a
/// while after it took in all of `input`.
///
/// (A fixed 2 s from the spawn had to cover the start of a debug `kvr`
/// too, and on a loaded machine did not always: the signal then found
/// fewer parts applied, or no handlers installed yet.)
fn chunked_batch_waiting(
    env: &Env,
    input: &str,
    revision: Option<u64>,
) -> (Child, std::process::ChildStdin) {
    let mut child = env
        .kvr(["batch", "--json", "--chunk-size", "100"])
        .cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    match revision {
        Some(revision) if env.is_served() => {
            env.wait_for_revision(
                revision,
                Duration::from_secs(30),
                "the batch's parts were not applied",
            );
        }
        _ => {
            // The batch reads its input whole (a buffer of 1 MiB) once it
            // has started: then the pipe is empty. What is left is to
            // install its signal handlers and commit two parts of 100
            // short lines, which takes milliseconds, given 3 s.
            let deadline = Instant::now() + Duration::from_secs(30);
            while rustix::io::ioctl_fionread(&stdin).unwrap() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the batch did not read its input within 30 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(3000));
        }
    }
    (child, stdin)
}

/// Waits for `child` to exit, at most `limit`, else kills it and fails: a
/// batch that does not stop on a signal fails the test, not hangs it.
fn wait_stopped(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            panic!("not stopped within {limit:?} of the signal: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// SIGINT or SIGTERM of `batch --chunk-size` after two parts were
/// committed, while the producer sends nothing: the batch stops between
/// parts at once, exit 3, naming the lines and parts applied and the line
/// from which nothing was (`--json`: what they applied, on stdout);
/// exactly those parts' keys are there, the rest of
/// the data as it was, and the file closed cleanly. Into a new file, an
/// existing one, and through a server (where the client's exit and message
/// are the point).
#[test]
fn an_interrupted_chunked_batch_stops_between_parts() {
    let cases = [(false, false), (false, true), (true, true)];
    for (served, existing) in cases {
        // What the data must be: `pre` if it was there, and lines 1-200.
        let expected = Env::new();
        if existing {
            expected.kvr(["put", "pre", "1"]).ok();
        }
        expected
            .kvr(["batch", "--chunk-size", "100"])
            .stdin(lines_of_puts(0..200))
            .ok();
        let revision = 200 + u64::from(existing);
        for signal in ["INT", "TERM"] {
            let env = if served { Env::served() } else { Env::new() };
            if existing {
                env.kvr(["put", "pre", "1"]).ok();
            }
            let (child, stdin) =
                chunked_batch_waiting(&env, &lines_of_puts(0..230), Some(revision));
            kill(&child, signal);
            let out = wait_stopped(child, Duration::from_secs(10));
            drop(stdin);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let case = format!("SIG{signal}, served {served}, existing {existing}: {stderr}");
            assert_eq!(out.status.code(), Some(3), "{case}");
            assert_eq!(
                stderr,
                format!(
                    "kvr: error: interrupted (SIG{signal}): the input from line 201 on was not \
                     applied; lines 1-200 were applied, in 2 parts (revision {revision})\n"
                ),
                "{case}"
            );
            // `--json`: what the committed parts applied.
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("{{\"applied\":200,\"revision\":{revision},\"puts\":200,\"deletes\":0}}\n"),
                "{case}"
            );
            if !served {
                env.kvr(["check"])
                    .ok()
                    .stdout_has(&format!("ok: {} keys, revision {revision}\n", revision));
            }
            assert_eq!(env.snapshot(), expected.snapshot(), "{case}");
        }
    }
}

/// The same before the first part was committed: nothing applied, a new
/// file removed, an existing one as it was.
#[test]
fn an_interrupted_chunked_batch_before_its_first_part_applies_nothing() {
    for (served, existing, signal) in [
        (false, false, "INT"),
        (false, true, "TERM"),
        (true, true, "INT"),
    ] {
        let env = if served { Env::served() } else { Env::new() };
        if existing {
            env.kvr(["put", "pre", "1"]).ok();
        }
        let before = existing.then(|| env.snapshot());
        let (child, stdin) = chunked_batch_waiting(&env, &lines_of_puts(0..30), None);
        kill(&child, signal);
        let out = wait_stopped(child, Duration::from_secs(10));
        drop(stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let left = match (served, existing) {
            (true, _) => String::new(),
            (false, true) => format!("; {} is as it was", env.db().display()),
            (false, false) => "; the new database file was removed".to_string(),
        };
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert_eq!(
            stderr,
            format!("kvr: error: interrupted (SIG{signal}): the batch was not applied{left}\n")
        );
        assert!(out.stdout.is_empty(), "nothing was applied: {stderr}");
        match before {
            Some(before) => assert_eq!(env.snapshot(), before),
            None => assert!(!env.db().exists(), "the new file was left"),
        }
        if !served && existing {
            env.kvr(["check"])
                .ok()
                .stdout_has("ok: 1 keys, revision 1\n");
        }
    }
}

/// A file a crash left not closed cleanly is repaired by the first command
/// that opens it, a read included (README "Reads write nothing"), as
/// `kvr check` says.
#[test]
fn a_read_repairs_a_file_not_closed_cleanly() {
    let env = Env::new();
    env.kvr(["put", "pre", "1"]).ok();
    let (child, _feeder) = batch_under_way(&env, big_input(200_000));
    kill(&child, "KILL");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None);
    // The check runs on the repair, made in memory: the file as the next
    // open leaves it (the batch's first commit, at most). It leaves the
    // file as it is, however often it runs, and says so each time.
    let killed = std::fs::read(env.db()).unwrap();
    for _ in 0..2 {
        env.kvr(["check"])
            .ok()
            .stdout_has("ok: 1 keys, revision 1\n")
            .stderr_has(
                "was not closed cleanly (its writer crashed or was killed): the next kvr \
                 command that opens it repairs it; this check ran on that repair, made in \
                 memory only\n",
            );
        assert!(std::fs::read(env.db()).unwrap() == killed);
    }
    assert_eq!(env.kvr(["get", "pre"]).ok().stdout_text(), "1");
    let done = env
        .kvr(["check"])
        .ok()
        .stdout_has("ok: 1 keys, revision 1\n");
    assert_eq!(done.stderr_text(), "");
    assert_eq!(
        env.kvr(["range", "--count"]).ok().stdout_text(),
        "{\"count\":1}\n"
    );
}

/// SIGINT or SIGTERM while the batch waits for its producer's first byte
/// (a read the signal does not end): exit 3 at once, nothing applied, no
/// new file, an existing file and a server unchanged; with and without
/// `--chunk-size`, from stdin and from a FILE that is a pipe. (It used to die of the signal without a word, or, with
/// its handlers installed, wait for input that never came.)
#[test]
fn a_batch_interrupted_before_any_input_arrives_applies_nothing() {
    for (served, existing, chunked, signal, file) in [
        (false, false, true, "INT", "-"),
        (false, true, false, "TERM", "-"),
        (true, true, false, "INT", "-"),
        (true, true, true, "TERM", "-"),
        // FILE a pipe (as `kvr batch <(producer)` gives it): waited on
        // as stdin is.
        (false, false, false, "INT", "/dev/stdin"),
        (true, true, true, "TERM", "/dev/stdin"),
    ] {
        let env = if served { Env::served() } else { Env::new() };
        if existing {
            env.kvr(["put", "pre", "1"]).ok();
        }
        let before = existing.then(|| env.snapshot());
        let args: &[&str] = if chunked {
            &["batch", "--chunk-size", "10", file]
        } else {
            &["batch", file]
        };
        let mut child = spawn_piped(&env, args);
        let stdin = child.stdin.take().unwrap();
        wait_for_handlers(&child);
        kill(&child, signal);
        let out = wait_stopped(child, Duration::from_secs(10));
        drop(stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.ends_with(&format!(
                "kvr: error: interrupted (SIG{signal}) before any input arrived: nothing was applied\n"
            )),
            "{stderr}"
        );
        match before {
            Some(before) => assert_eq!(env.snapshot(), before),
            None => assert!(!env.db().exists(), "a new file was made"),
        }
    }
}

/// Waits until `child` (a `kvr batch`) has installed its SIGINT and
/// SIGTERM handlers: `interrupt::Guard` starts its thread, `kvr-interrupt`,
/// once both are registered. A fixed 500 ms stood for this, which a debug
/// `kvr` on a loaded machine could take just to start: the signal then
/// killed it. Gives up after 10 s and lets the caller's checks say what the
/// signal did (a batch that never installs them dies of it: the bug).
fn wait_for_handlers(child: &Child) {
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let installed = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.trim_end() == "kvr-interrupt")
            });
        if installed {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines a `batch --chunk-size` error says were applied: N of "lines
/// 1-N were applied", 0 when it names none.
fn lines_applied(stderr: &str) -> u64 {
    let Some(at) = stderr.find("lines 1-") else {
        return 0;
    };
    let digits: String = stderr[at + 8..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// Two signals in quick succession while a large `batch --chunk-size` is
/// being written (parts of 50,000 lines, each written in runs of a 16 MiB
/// cache), into a new file and an existing one: the second stops it at
/// once, exit 3, naming the lines applied in the parts committed before;
/// the file is left not closed cleanly and recovered by the next command
/// that opens it, and then holds exactly those lines (all of those parts,
/// none of the later ones). The second signal comes 2 ms after the first
/// (the first's abort and clean close take longer; with 20 ms a release
/// build had closed the file by then, every time). The first comes after
/// a delay that is bisected until some parts were committed and the batch
/// was still writing; every outcome on the way (the first signal alone stopping it
/// between parts, say) must match the data too.
#[test]
fn a_second_signal_stops_a_chunked_batch_at_once() {
    const PART: u64 = 50_000;
    const LINES: u64 = 12 * PART;
    for (existing, first, second) in [(false, "INT", "INT"), (true, "TERM", "INT")] {
        let mut delay = Duration::from_millis(1500);
        // The delays known to be too early (no part committed yet) and
        // too late (finished): the next try is between them.
        let mut early = Duration::ZERO;
        let mut late: Option<Duration> = None;
        let later = |early: Duration, late: Option<Duration>| match late {
            Some(late) => (early + late) / 2,
            None => early + Duration::from_millis(1000),
        };
        let mut stopped_at_once = false;
        for attempt in 0..12 {
            let env = Env::new();
            let pre = u64::from(existing);
            if existing {
                env.kvr(["put", "pre", "1"]).ok();
            }
            let input = env.path("in.jsonl");
            std::fs::write(&input, big_input(LINES)).unwrap();
            let part = PART.to_string();
            let args = [
                "--cache-mib",
                "16",
                "batch",
                "--chunk-size",
                &part,
                input.to_str().unwrap(),
            ];
            let child = spawn_piped(&env, &args);
            // Either may find it gone: finished before the first, or
            // stopped by it (between parts) before the second.
            let signal = |name: &str| {
                let _ = std::process::Command::new("kill")
                    .args([&format!("-{name}"), &child.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
            };
            std::thread::sleep(delay);
            signal(first);
            std::thread::sleep(Duration::from_millis(2));
            signal(second);
            let out = wait_stopped(child, Duration::from_secs(60));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let case = format!("existing {existing}, attempt {attempt}, {delay:?}: {stderr}");
            // Shown if the search fails: what each try came to.
            eprintln!("{:?} {case}", out.status.code());
            if out.status.success() {
                // Finished before the signals: try earlier.
                late = Some(delay);
                delay = (early + delay) / 2;
                continue;
            }
            assert_eq!(out.status.code(), Some(3), "{case}");
            let lines = lines_applied(&stderr);
            assert_eq!(lines % PART, 0, "{case}");
            let db = env.db().display().to_string();
            let at_once = stderr.starts_with("kvr: error: interrupted again");
            if at_once && stderr.ends_with("the new database file was removed\n") {
                // Both signals before the first part's commit, both taken
                // at once (a loaded machine): nothing applied, and the new
                // file gone with its name in the making (it was left as
                // `DB.creating`, and the message named DB as recovered).
                assert_eq!(lines, 0, "{case}");
                assert!(!existing, "{case}");
                assert!(!env.db().exists(), "{case}");
                let creating = format!("{}.creating", env.db().display());
                assert!(!std::path::Path::new(&creating).exists(), "{case}");
                early = delay;
                delay = later(early, late);
                continue;
            }
            if at_once {
                let applied = match lines {
                    0 => "nothing of the batch's current part was applied".to_string(),
                    PART => format!(
                        "lines 1-{lines} were applied, in 1 part, nothing of the part after them"
                    ),
                    _ => format!(
                        "lines 1-{lines} were applied, in {} parts, nothing of the part after them",
                        lines / PART
                    ),
                };
                // Both pending when the signal thread wakes (a loaded
                // machine): they are read in signal-number order, so the
                // one named "again" may be the first sent.
                let said = |name: &str| {
                    format!(
                        "kvr: error: interrupted again (SIG{name}): stopped at once; {applied}, \
                         and {db} is recovered when it is next opened\n"
                    )
                };
                assert!(stderr == said(second) || stderr == said(first), "{case}");
                // Not closed cleanly, unless the second signal came just
                // after the batch had closed it; sound either way.
                let check = env.kvr(["check"]).ok();
                let note = check.stderr_text();
                assert!(
                    note.is_empty() || note.contains("was not closed cleanly"),
                    "{note}"
                );
                // A command with write access that changes nothing recovers it.
                env.kvr(["delete", "--prefix", "nothing-here"]).ok();
            } else if lines == 0 && !existing {
                // Stopped before its first part: the new file removed.
                assert!(
                    stderr.contains("the new database file was removed"),
                    "{case}"
                );
                assert!(!env.db().exists(), "{case}");
                early = delay;
                delay = later(early, late);
                continue;
            } else {
                assert!(
                    stderr.starts_with(&format!("kvr: error: interrupted (SIG{first})")),
                    "{case}"
                );
            }
            let keys = lines + pre;
            env.kvr(["check"])
                .ok()
                .stdout_has(&format!("ok: {keys} keys, revision {keys}\n"));
            // Exactly the first `lines` lines: keys k0.. below k{lines}, none
            // from there on, each with its value.
            let count = |start: &str, end: &str| {
                let done = env.kvr(["range", "--count", start, end]).ok();
                serde_json::from_str::<serde_json::Value>(&done.stdout_text()).unwrap()["count"]
                    .as_u64()
                    .unwrap()
            };
            let boundary = format!("k{lines:09}");
            assert_eq!(count("k", &boundary), lines, "{case}");
            assert_eq!(count(&boundary, "l"), 0, "{case}");
            if lines > 0 {
                let last = env.range_json(&["--reverse", "--limit", "1", "k", "l"]);
                assert_eq!(last[0]["key"], format!("k{:09}", lines - 1), "{case}");
                assert_eq!(last[0]["value"], "v".repeat(50), "{case}");
                assert_eq!(last[0]["revision"], keys, "{case}");
            }
            if existing {
                assert_eq!(env.kvr(["get", "pre"]).ok().stdout_text(), "1");
            }
            if at_once && lines > 0 {
                stopped_at_once = true;
                break;
            }
            if lines == 0 {
                early = delay;
                delay = later(early, late);
            }
        }
        assert!(
            stopped_at_once,
            "existing {existing}: never stopped at once after a part was committed"
        );
    }
}

/// Whether `strace` runs here with fault injection (it needs ptrace).
pub(super) fn strace_works() -> bool {
    std::process::Command::new("strace")
        .args([
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "inject=fdatasync:delay_enter=1",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How many commits the trace of `strace -e trace=fdatasync,pwrite64`
/// shows past their commit point: the commit's pages written, an
/// fdatasync, then the write of redb's header (magic `redb\x1a\n`), which
/// makes the commit take effect when the file is next opened, even if the
/// process ends before the syncs after it. (Opening and closing write the
/// header after other syncs, not after pages.)
fn commit_points(trace: &str) -> usize {
    let header = |l: &str| l.contains("pwrite64(") && l.contains("\"redb\\32\\n");
    let lines: Vec<&str> = trace.lines().collect();
    lines
        .windows(3)
        .filter(|w| {
            w[0].contains("pwrite64(")
                && !header(w[0])
                && w[1].contains("fdatasync(")
                && header(w[2])
        })
        .count()
}

/// A second signal while a commit is under way waits for it to end, so
/// that what it says was applied is what the file holds: with
/// `--chunk-size`, a part past its commit point is named with the parts
/// before; without, the batch is said to be applied. Every fdatasync is
/// slowed down (strace's fault injection) and the two signals come just
/// after the header of the commit was written, while its last syncs wait.
/// (The second signal used to end the process at once with the text set
/// before that commit: "lines 1-20000 were applied, in 1 part", or
/// "nothing ... was applied", while the next open found the part, or the
/// batch, applied.) Skipped where strace cannot run.
#[test]
fn a_second_signal_during_a_commit_names_what_it_applied() {
    if !strace_works() {
        eprintln!("skipped: strace with fault injection is not available here");
        return;
    }
    const PART: u64 = 20_000;
    for chunked in [true, false] {
        let env = Env::new();
        env.kvr(["put", "pre", "1"]).ok();
        let input = env.path("in.jsonl");
        std::fs::write(&input, big_input(3 * PART)).unwrap();
        let trace = env.path("trace");
        let mut cmd = std::process::Command::new("strace");
        cmd.args(["-f", "-o"])
            .arg(&trace)
            .args(["-e", "trace=fdatasync,pwrite64"])
            .args(["-e", "inject=fdatasync:delay_enter=300000"])
            .arg(super::util::KVR)
            .arg("--db")
            .arg(env.db())
            .args(["--cache-mib", "16", "batch"]);
        if chunked {
            cmd.args(["--chunk-size", &PART.to_string()]);
        }
        let child = cmd
            .arg(&input)
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The second commit with --chunk-size: one part before it.
        let wanted = if chunked { 2 } else { 1 };
        let deadline = Instant::now() + Duration::from_secs(120);
        let text = loop {
            let text = std::fs::read_to_string(&trace).unwrap_or_default();
            if commit_points(&text) >= wanted {
                break text;
            }
            assert!(Instant::now() < deadline, "no commit seen");
            std::thread::sleep(Duration::from_millis(5));
        };
        // The traced process: the main thread, which writes the file (the
        // trace may begin with the end of threads that parsed the input
        // before the file was opened for writing).
        let pid = text
            .lines()
            .find(|l| l.contains("pwrite64("))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_string();
        for _ in 0..2 {
            let sent = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap();
            assert!(sent.success());
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = wait_stopped(child, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // strace's own lines aside.
        let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("kvr:")).collect();
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let db = env.db().display().to_string();
        let says = |applied: &str| {
            format!(
                "kvr: error: interrupted again (SIGINT): stopped at once; {applied}, and {db} \
                 is recovered when it is next opened"
            )
        };
        // With --chunk-size the signals land in the second commit, or (when
        // strace's lines come late) in the third: either way the message
        // must name the parts the file holds.
        let candidates: Vec<(String, u64)> = match chunked {
            true => (2..=3)
                .map(|parts| {
                    let applied = format!(
                        "lines 1-{} were applied, in {parts} parts, nothing of the part after them",
                        parts * PART
                    );
                    (says(&applied), parts * PART)
                })
                .collect(),
            false => vec![(
                says("the batch was applied (its commit had ended)"),
                3 * PART,
            )],
        };
        let Some(lines) = candidates
            .iter()
            .find(|(text, _)| said == [text.as_str()])
            .map(|(_, lines)| *lines)
        else {
            panic!("expected one of {candidates:?}; {stderr}");
        };
        let keys = lines + 1;
        assert_eq!(
            env.kvr(["range", "--count"]).ok().stdout_text(),
            format!("{{\"count\":{keys}}}\n")
        );
        env.kvr(["check"])
            .ok()
            .stdout_has(&format!("ok: {keys} keys, revision {keys}\n"));
    }
}
