//! SPEC "Watch: a change feed" on a real server: `GET /v1/watch` with
//! filters, progress lines, history and future revisions, `compacted`;
//! `kvr watch` through a clean restart and a `kill -9` with its output
//! checked for duplicates and gaps; a thousand watchers on one server;
//! stalled watchers under memory pressure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::support::{Server, agent, http, kvr_cmd, post_batch, read_until};

/// An open watch stream, read line by line.
struct Stream {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
}

impl Stream {
    fn open(url: &str, query: &str) -> Stream {
        Stream::open_with(&agent(), url, query)
    }

    fn open_with(agent: &ureq::Agent, url: &str, query: &str) -> Stream {
        let resp = agent.get(format!("{url}/v1/watch?{query}")).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        let reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
        Stream {
            lines: BufReader::new(reader).lines(),
        }
    }

    /// A watch through a socket with a 4 KiB receive buffer, set before it
    /// connects (which also stops the kernel growing it): a client that
    /// reads nothing stalls at once, whatever the machine's TCP settings
    /// (loopback buffers can grow to 32 MB).
    fn open_stalling(addr: &str, query: &str) -> Stream {
        Stream::open_stalling_on(addr, query).0
    }

    /// [`Stream::open_stalling`], with (a handle to) its socket.
    fn open_stalling_on(addr: &str, query: &str) -> (Stream, TcpStream) {
        let mut c = small_buffer_connection(addr);
        let handle = c.try_clone().unwrap();
        write!(c, "GET /v1/watch?{query} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut inner = BufReader::new(c);
        let mut line = String::new();
        inner.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        while line != "\r\n" {
            line.clear();
            inner.read_line(&mut line).unwrap();
        }
        let reader: Box<dyn Read + Send> = Box::new(Chunked {
            inner,
            left: 0,
            done: false,
        });
        let stream = Stream {
            lines: BufReader::new(reader).lines(),
        };
        (stream, handle)
    }

    fn next(&mut self) -> serde_json::Value {
        self.try_next().expect("the stream ended")
    }

    /// The next event, which must be `expected`: progress lines before it
    /// are skipped (a loaded machine can leave `progress` seconds between
    /// two writes), but each must be below `expected`'s revision, which it
    /// may not yet cover.
    fn next_event(&mut self, expected: serde_json::Value) {
        let revision = expected["revision"].as_u64().unwrap();
        loop {
            let line = self.next();
            match line["progress_revision"].as_u64() {
                Some(p) => assert!(p < revision, "{line} before {expected}"),
                None => {
                    assert_eq!(line, expected);
                    return;
                }
            }
        }
    }

    /// The next line, `None` when the stream ended.
    fn try_next(&mut self) -> Option<serde_json::Value> {
        let line = self.lines.next()?.unwrap();
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
    }
}

/// A chunked response body (for [`Stream::open_stalling`]).
struct Chunked {
    inner: BufReader<TcpStream>,
    left: usize,
    done: bool,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            // (The line ending the last chunk's data first.)
            let mut line = String::new();
            while line.trim().is_empty() {
                line.clear();
                if self.inner.read_line(&mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

fn put(s: &Server, key: &str, value: &str) {
    let r = http(
        "PUT",
        &format!("{}/v1/kv/{key}", s.url),
        &[],
        Some(value.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_watch_streams_filtered_events_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put(&s, "z", "before");
    let mut w = Stream::open(&s.url, "prefix=a&progress=1");
    assert_eq!(w.next(), serde_json::json!({"progress_revision":1}));
    put(&s, "a1", "one");
    put(&s, "b", "two");
    let body = b"{\"key\":\"a2\",\"value\":\"x\",\"expires_at_ms\":4102444800000}\n\
                 {\"op\":\"delete\",\"key\":\"a1\"}\n{\"key\":\"b\",\"value\":\"3\"}\n";
    let r = http("POST", &format!("{}/v1/batch", s.url), &[], Some(body));
    assert_eq!(r.status, 200);
    // Progress lines come a second after the last line sent, and writes
    // filtered out (`b`) do not put them off: a test paused that long
    // between two requests sees one between the events.
    w.next_event(serde_json::json!({"revision":2,"op":"put","key":"a1","value":"one"}));
    w.next_event(
        serde_json::json!({"revision":4,"op":"put","key":"a2","value":"x","expires_at_ms":4102444800000u64}),
    );
    w.next_event(serde_json::json!({"revision":5,"op":"delete","key":"a1"}));
    // Nothing more for a second: a progress line covering the batch.
    let started = Instant::now();
    assert_eq!(w.next(), serde_json::json!({"progress_revision":6}));
    assert!(started.elapsed() < Duration::from_secs(3));
    // keys_only and a [start, end) range.
    let mut k = Stream::open(&s.url, "start=a2&end=b&keys_only=true&from_revision=1");
    assert_eq!(k.next(), serde_json::json!({"progress_revision":0}));
    assert_eq!(
        k.next(),
        serde_json::json!({"revision":4,"op":"put","key":"a2","expires_at_ms":4102444800000u64})
    );
}

#[test]
fn history_replays_and_a_future_revision_waits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    for i in 1..=5 {
        put(&s, &format!("k{i}"), "v");
    }
    let mut w = Stream::open(&s.url, "from_revision=2");
    assert_eq!(w.next(), serde_json::json!({"progress_revision":1}));
    for i in 2..=5 {
        assert_eq!(w.next()["revision"], i);
    }
    let mut f = Stream::open(&s.url, "from_revision=8");
    assert_eq!(f.next(), serde_json::json!({"progress_revision":7}));
    for i in 6..=8 {
        put(&s, &format!("k{i}"), "w");
    }
    assert_eq!(f.next()["revision"], 8);
    assert_eq!(w.next()["revision"], 6);
    // Bad parameters are 400s.
    for q in [
        "from_revision=0",
        "progress=0",
        "start=b&end=a",
        "nope=1",
        "from_revision=x",
        "from_revision=18446744073709551616",
        "progress=99999999999999999999",
    ] {
        let r = http("GET", &format!("{}/v1/watch?{q}", s.url), &[], None);
        assert_eq!(r.status, 400, "{q}");
        // The number as sent: one past u64 once read as the largest u64,
        // a watch that waited for ever.
        let message = r.json()["message"].as_str().unwrap().to_string();
        if q.ends_with("9999") || q.ends_with("616") {
            assert!(message.contains(q.split_once('=').unwrap().1), "{message}");
        }
    }
}

#[test]
fn compacted_history_is_410_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--history", "3"]);
    for i in 1..=10 {
        put(&s, &format!("k{i}"), "v");
    }
    let r = http(
        "GET",
        &format!("{}/v1/watch?from_revision=2", s.url),
        &[],
        None,
    );
    assert_eq!(r.status, 410);
    assert_eq!(r.code(), "compacted");
    assert_eq!(r.json()["oldest_revision"], 8);
    assert_eq!(
        r.json()["message"],
        "revision 2 is compacted: the oldest revision the history keeps is 8; watch from 8 \
         or later (or without from_revision)"
    );
    let mut w = Stream::open(&s.url, "from_revision=8");
    assert_eq!(w.next(), serde_json::json!({"progress_revision":7}));
    assert_eq!(w.next()["revision"], 8);
    let out = s.cli(&["watch", "--from-revision", "2"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.starts_with("kvr: error: revision 2 is compacted"),
        "{err}"
    );
    assert!(
        err.contains(
            "oldest revision the history keeps is 8; watch from 8 or later (or \
                      without --from-revision)"
        ),
        "{err}"
    );
    // With --db: a usage error.
    let db = dir.path().join("other.redb");
    let out = kvr_cmd(dir.path())
        .args(["--db", db.to_str().unwrap(), "watch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("watching needs a server"));
    // With KVR_SERVER set too, the flag won: the message says so rather
    // than asking for KVR_SERVER.
    let out = kvr_cmd(dir.path())
        .args(["--db", db.to_str().unwrap(), "watch"])
        .env("KVR_SERVER", &s.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "kvr: error: watching needs a server: --db was given, which overrides KVR_SERVER; \
             leave --db out to watch that server"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The served file: the message names its server.
    let out = kvr_cmd(dir.path())
        .args(["--db", "db.redb", "watch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "kvr: error: watching needs a server: db.redb is served at {url}: use --server \
             {url}; a database file has no change feed\n",
            url = s.url
        )
    );
}

/// The history keeps a request's events whole or not at all: a watch
/// from the oldest revision kept never starts inside a batch.
#[test]
fn the_history_is_trimmed_by_whole_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--history", "3"]);
    post_batch(
        &s.url,
        &(1..=5)
            .map(|i| format!("{{\"key\":\"b{i}\",\"value\":\"v\"}}\n"))
            .collect::<String>(),
    );
    // Three revisions would be 3 to 5, inside the batch: none of it is kept.
    let r = http(
        "GET",
        &format!("{}/v1/watch?from_revision=3", s.url),
        &[],
        None,
    );
    assert_eq!(
        (r.status, r.json()["oldest_revision"].clone()),
        (410, 6.into())
    );
    put(&s, "k6", "v");
    put(&s, "k7", "v");
    let mut w = Stream::open(&s.url, "from_revision=6");
    assert_eq!(w.next()["progress_revision"], 5);
    assert_eq!(w.next()["revision"], 6);
    assert_eq!(w.next()["revision"], 7);
}

/// `kvr watch` as a child printing to a pipe.
/// `kvr watch --from-revision 1`, its stderr to `dir/watch.err`.
fn spawn_watch(dir: &std::path::Path, url: &str) -> Killed {
    let err = std::fs::File::create(dir.join("watch.err")).unwrap();
    Killed(
        kvr_cmd(dir)
            .args([
                "--server",
                url,
                "--timeout",
                "3",
                "watch",
                "--from-revision",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

/// A child killed when dropped (a failed test leaves no watcher behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Puts `from..=to` (key `kN`), each acknowledged.
fn put_range(s: &Server, from: u64, to: u64) {
    for i in from..=to {
        put(s, &format!("k{i:04}"), &format!("v{i}"));
    }
}

/// `kvr watch` follows a server through a clean restart, a `kill -9`
/// whose log a `--db` command replays before the next start, and that
/// start: every revision once, in order. It says on stderr that it lost
/// the server and is reconnecting, and that it did.
#[test]
fn cli_watch_resumes_across_restart_and_kill_9_without_dups_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let addr = s.addr.clone();
    let url = s.url.clone();
    let mut watch = spawn_watch(dir.path(), &url);
    let stdout = watch.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut revisions = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let r = v["revision"].as_u64().unwrap();
            assert_eq!(v["key"], format!("k{r:04}"), "{line}");
            revisions.push(r);
            if r == 150 {
                break;
            }
        }
        revisions
    });
    put_range(&s, 1, 50);
    assert!(s.terminate().success());
    let mut s = Server::start(dir.path(), &["--listen", &addr]);
    put_range(&s, 51, 100);
    s.kill9();
    // A command that opens the file first replays the crashed server's
    // log, with its events (a read is enough: it recovers the file). The
    // history lost every event before, and the watch could not resume.
    let stats = super::support::kvr(dir.path(), &["--db", "db.redb", "stats"], b"");
    assert!(stats.status.success(), "{stats:?}");
    assert!(
        !dir.path().join("db.redb.wal").exists(),
        "the log was not replayed"
    );
    let s = Server::start(dir.path(), &["--listen", &addr]);
    // The whole history is there: a watch from the first revision.
    let mut from_start = Stream::open(&s.url, "from_revision=1");
    assert_eq!(from_start.next()["progress_revision"], 0);
    for r in 1..=100u64 {
        assert_eq!(from_start.next()["revision"], r);
    }
    put_range(&s, 101, 150);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the watch did not print revision 150"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let revisions = reader.join().unwrap();
    assert_eq!(revisions, (1..=150).collect::<Vec<u64>>());
    let said = std::fs::read_to_string(dir.path().join("watch.err")).unwrap();
    assert!(
        said.contains("; reconnecting (from revision ")
            && said.contains("kvr: watch: reconnected: the watch goes on"),
        "{said}"
    );
}

/// A closed stdout ends `kvr watch` with exit 0.
#[test]
fn cli_watch_exits_0_when_stdout_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put_range(&s, 1, 3);
    let mut guard = Killed(
        kvr_cmd(dir.path())
            .args([
                "--server",
                &s.url,
                "watch",
                "--from-revision",
                "1",
                "--progress",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "{\"progress_revision\":0}\n");
    for r in 1..=3 {
        let mut event = String::new();
        out.read_line(&mut event).unwrap();
        assert!(event.contains(&format!("\"revision\":{r},")), "{event}");
    }
    drop(out);
    // No further event or progress line (the next is 10 s away) to write:
    // it notices the closed pipe by itself (before, `kvr watch | head -1`
    // ran until the next matching event, if one ever came).
    let status = exit_within(child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

/// A stdout that fails (a full disk, `> /dev/full`) is an error, exit 3
/// with "disk full", as for `range`: only a reader closing it ends the
/// watch with exit 0 (before, any failed write did, silently).
#[test]
fn cli_watch_fails_when_stdout_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put_range(&s, 1, 3);
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut guard = Killed(
        kvr_cmd(dir.path())
            .args(["--server", &s.url, "watch", "--from-revision", "1"])
            .stdout(full())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = exit_within(&mut guard.0, Duration::from_secs(5));
    let said = stderr_of(&mut guard);
    assert_eq!(status.code(), Some(3), "{said}");
    assert!(said.starts_with("kvr: error: disk full"), "{said}");
}

/// A stdout closed from the start (`kvr watch >&-`) ends the watch at once
/// with exit 0, as one that closes later does (before, Rust's runtime put
/// /dev/null in its place and the watch printed there until killed).
#[test]
fn cli_watch_exits_0_at_once_when_stdout_was_closed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put_range(&s, 1, 3);
    // `kvr ARGS` with fd 1 closed, as a shell's `>&-` leaves it.
    let stdout_closed = |args: &[&str]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.current_dir(dir.path())
            .arg("-c")
            .arg("exec \"$0\" \"$@\" >&-")
            .arg(super::support::KVR)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let mut guard = Killed(
        stdout_closed(&["--server", &s.url, "watch", "--from-revision", "1"])
            .spawn()
            .unwrap(),
    );
    let status = exit_within(&mut guard.0, Duration::from_secs(5));
    let said = stderr_of(&mut guard);
    assert_eq!(status.code(), Some(0), "{said}");
    assert_eq!(said, "");
    // A usage error still says so: the closed stdout is checked last.
    let out = stdout_closed(&["--server", &s.url, "watch", "--from-revision", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from-revision must be 1 or more"),
        "{out:?}"
    );
}

/// A `--timeout` over three days (a third of it over the server's longest
/// progress interval, a day) still watches: the CLI asks for progress
/// every day (before, it exited 2 with "progress must be 1 to 86400").
#[test]
fn cli_watch_with_a_timeout_of_days_asks_for_daily_progress() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put_range(&s, 1, 2);
    let mut guard = Killed(
        kvr_cmd(dir.path())
            .args([
                "--server",
                &s.url,
                "--timeout",
                "300000",
                "watch",
                "--from-revision",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(guard.0.stdout.take().unwrap());
    for r in 1..=2 {
        let mut event = String::new();
        out.read_line(&mut event).unwrap();
        assert!(
            event.contains(&format!("\"revision\":{r},")),
            "{event:?}; stderr: {}",
            if event.is_empty() {
                stderr_of(&mut guard)
            } else {
                String::new()
            }
        );
    }
}

/// What the exited child wrote to its piped stderr.
fn stderr_of(child: &mut Killed) -> String {
    let mut err = String::new();
    let mut pipe = child.0.stderr.take().unwrap();
    pipe.read_to_string(&mut err).unwrap();
    err
}

/// Waits for `child` to exit, failing after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "kvr watch did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A watch that never reaches a server fails as other commands do (exit 5)
/// once `--timeout` has passed, instead of retrying silently for ever; a
/// `--timeout` shorter than the server's shortest progress interval
/// (1 s) × 3 is refused.
#[test]
fn cli_watch_of_an_unreachable_server_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let mut guard = Killed(
        kvr_cmd(dir.path())
            .args(["--server", "http://127.0.0.1:1", "--timeout", "3", "watch"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = exit_within(&mut guard.0, Duration::from_secs(15));
    assert_eq!(status.code(), Some(5));
    let err = stderr_of(&mut guard);
    assert!(err.starts_with("kvr: error: cannot reach"), "{err}");
    // A server that takes the connection and never answers (stopped):
    // exit 5 after --timeout, without the words about a write's outcome
    // that a write's timeout has (a watch is a read).
    let server = Server::start(dir.path(), &[]);
    super::support::signal(server.pid(), "STOP");
    let out = kvr_cmd(dir.path())
        .args(["--server", &server.url, "--timeout", "3", "watch"])
        .output()
        .unwrap();
    super::support::signal(server.pid(), "CONT");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        format!(
            "kvr: error: kvr server at {} did not answer in time (--timeout)\n",
            server.url
        )
    );
    let out = kvr_cmd(dir.path())
        .args(["--server", "http://127.0.0.1:1", "--timeout", "1", "watch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--timeout must be at least 3 s for watch"),
        "{err}"
    );
}

/// A server that stops ends its watch streams with where to resume
/// (before, the chunked body just ended: a raw client could not tell a
/// stop from the end of a stream).
#[test]
fn a_stopping_server_ends_its_watches_with_the_revision_to_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    put_range(&s, 1, 3);
    let mut stream = Stream::open(&s.url, "from_revision=2");
    assert_eq!(stream.next()["progress_revision"], 1);
    assert_eq!(stream.next()["revision"], 2);
    assert_eq!(stream.next()["revision"], 3);
    assert!(s.terminate().success());
    let end = stream.next();
    assert_eq!(end["error"], "unavailable", "{end}");
    assert_eq!(end["next_revision"], 4, "{end}");
    assert!(stream.try_next().is_none(), "a line after the end");
}

/// A watch says why it reconnects in words: a stream that stalled for
/// `--timeout` (a stopped server) and one cut by a killed server, not the
/// HTTP library's "timeout: per read" or "Peer disconnected".
#[test]
fn cli_watch_says_in_words_why_it_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let mut watch = spawn_watch(dir.path(), &s.url);
    let mut out = BufReader::new(watch.0.stdout.take().unwrap());
    let mut line = String::new();
    let mut read_event = |s: &Server, n: u64| {
        put_range(s, n, n);
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.contains(&format!("\"revision\":{n},")), "{line}");
    };
    read_event(&s, 1);
    let said = || std::fs::read_to_string(dir.path().join("watch.err")).unwrap();
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !said().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} in {:?}", said());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    super::support::signal(s.pid(), "STOP");
    wait_for("stalled: nothing came for --timeout; reconnecting (from revision 2)");
    super::support::signal(s.pid(), "CONT");
    read_event(&s, 2);
    wait_for("reconnected: the watch goes on");
    s.kill9();
    wait_for(
        "broke off (the server stopped or the connection was cut); reconnecting (from revision 3)",
    );
    let said = said();
    assert!(
        !said.contains("Peer disconnected") && !said.contains("timeout: per read"),
        "{said}"
    );
}

/// A watch resuming after a break whose events are gone (a `--db` write
/// while the server was stopped records none) says it cannot resume; it
/// does not tell the user to drop a --from-revision they never gave.
#[test]
fn cli_watch_that_cannot_resume_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let addr = s.addr.clone();
    let mut guard = Killed(
        kvr_cmd(dir.path())
            .args(["--server", &s.url, "--timeout", "3", "watch", "--progress"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Its first line (progress at revision 0) says it is watching.
    let mut out = BufReader::new(guard.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "{\"progress_revision\":0}\n");
    put_range(&s, 1, 1);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"revision\":1"), "{line}");
    assert!(s.terminate().success());
    let db = s.dir.join("db.redb");
    let put = kvr_cmd(dir.path())
        .args(["--db", db.to_str().unwrap(), "put", "k0002", "v"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    let _s = Server::start(dir.path(), &["--listen", &addr]);
    let status = exit_within(&mut guard.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    let err = stderr_of(&mut guard);
    assert!(err.contains("cannot resume the watch"), "{err}");
    assert!(!err.contains("--from-revision"), "{err}");
}

/// A watch whose server comes back behind what it saw (a restored backup
/// at the same address) waits, as SPEC says, and says so on stderr.
#[test]
fn cli_watch_behind_a_restarted_server_says_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let addr = s.addr.clone();
    let mut watch = spawn_watch(dir.path(), &s.url);
    let mut out = BufReader::new(watch.0.stdout.take().unwrap());
    put_range(&s, 1, 5);
    let mut line = String::new();
    for _ in 1..=5 {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    assert!(line.contains("\"revision\":5"), "{line}");
    assert!(s.terminate().success());
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("db.redb")
        {
            std::fs::rename(&path, old.join(path.file_name().unwrap())).unwrap();
        }
    }
    let put = super::support::kvr(dir.path(), &["--db", "db.redb", "put", "k0001", "v"], b"");
    assert!(put.status.success(), "{put:?}");
    let _s = Server::start(dir.path(), &["--listen", &addr]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let said = std::fs::read_to_string(dir.path().join("watch.err")).unwrap();
        if said.contains(
            "kvr: watch: the server is at revision 1, behind revision 5 this watch has seen; \
             waiting for revision 6",
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "{said}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A thousand idle watchers: each gets the next event; the memory each
/// costs is printed (README figure).
#[test]
fn a_thousand_watchers_on_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put(&s, "warm", "up");
    let before = s.rss_kib();
    let n = 1000;
    let mut socks: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET /v1/watch?prefix=w HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c
        })
        .collect();
    for c in &mut socks {
        let text = read_until(c, b"\"progress_revision\":1}");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = s.rss_kib();
    println!(
        "{n} idle watchers: RSS {before} KiB -> {after} KiB, {:.1} KiB per watcher",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    let started = Instant::now();
    put(&s, "watched", "!");
    for c in &mut socks {
        read_until(c, b"\"key\":\"watched\",\"value\":\"!\"");
    }
    println!("{n} watchers all got the event in {:?}", started.elapsed());
}

/// Stalled clients under memory pressure (a tiny `KVR_WATCH_MEMORY`): once
/// their connections hold no more, their streams end with `lagging` at a
/// request's end (until the pressure is gone: the last may only fall
/// behind), naming the first revision they did not get, while a
/// reading watcher gets every event and every write is acknowledged; a
/// watch from that revision goes on from it.
#[test]
fn stalled_watchers_end_lagging_between_requests_under_memory_pressure() {
    // Requests of 40 KB, less than a slice: what a stream still holds
    // after its lagging end is no reason to cut it off (see
    // `stalled_watchers_each_under_their_bound_end_lagging_and_a_reader_gets_its_events`).
    const BATCHES: u64 = 250;
    const PER: u64 = 5;
    const TOTAL: u64 = BATCHES * PER;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "262144")]);
    // No global timeout: these streams stay open for the whole test.
    let patient = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent();
    let mut stalled: Vec<Stream> = (0..5)
        .map(|_| Stream::open_stalling(&s.addr, "prefix=s/&from_revision=1"))
        .collect();
    let url = s.url.clone();
    let reading = patient.clone();
    let reader = std::thread::spawn(move || {
        let mut w = Stream::open_with(&reading, &url, "prefix=s/&from_revision=1&progress=1");
        let mut want = 1;
        while want <= TOTAL {
            let line = w.next();
            if line.get("progress_revision").is_some() {
                continue;
            }
            assert_eq!(line["revision"], want, "{line}");
            want += 1;
        }
    });
    // 10 MB of events: far more than a stalled connection's socket
    // buffers take.
    let value = "v".repeat(8000);
    let started = Instant::now();
    for b in 0..BATCHES {
        let mut body = String::new();
        for i in 0..PER {
            body.push_str(&format!(
                "{{\"key\":\"s/{b:03}/{i:03}\",\"value\":\"{value}\"}}\n"
            ));
        }
        let r = http(
            "POST",
            &format!("{}/v1/batch", s.url),
            &[],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    println!(
        "{TOTAL} writes (10 MB) with 5 stalled watchers in {:?}",
        started.elapsed()
    );
    reader.join().unwrap();
    // Room is taken in turn: a stalled watcher may have waited for it
    // behind the reader, and ends only once it has read a page its client
    // does not take, a second later (`STALLED`). Reading it before would
    // make it a reading one.
    std::thread::sleep(Duration::from_secs(3));
    let mut ended = 0;
    for w in &mut stalled {
        assert_eq!(w.next(), serde_json::json!({"progress_revision":0}));
        let mut last = 0;
        let end = loop {
            let line = w
                .try_next()
                .expect("the stream ended without a lagging line");
            match line["revision"].as_u64() {
                Some(r) => {
                    assert_eq!(r, last + 1, "{line}");
                    last = r;
                }
                None => break line,
            }
        };
        if last == TOTAL && end.get("progress_revision").is_some() {
            // Every event: once the others had ended, the bound was no
            // longer under pressure, and a stalled stream falls behind
            // without ending.
            continue;
        }
        ended += 1;
        assert_eq!(end["error"], "lagging", "{end}");
        assert_eq!(end["next_revision"], last + 1, "{end}");
        assert_eq!(last % PER, 0, "the stream ended inside a request");
        assert!(last < TOTAL, "a stalled watcher got every event");
        assert!(w.try_next().is_none(), "lines after lagging");
        // Resuming where it says goes on from there.
        let mut again = Stream::open(&s.url, &format!("prefix=s/&from_revision={}", last + 1));
        assert_eq!(again.next(), serde_json::json!({"progress_revision": last}));
        let first = again.next();
        assert_eq!(first["revision"], last + 1, "{first}");
    }
    assert!(ended > 0, "no stalled stream ended: the bound never filled");
    println!("{ended} of 5 stalled streams ended lagging");
}

/// The bytes the server's kernel holds unsent on its connection to each
/// of `clients` (their local ports), from `/proc/net/tcp`.
fn send_queues(server: &str, clients: &[u16]) -> Vec<u64> {
    let server: std::net::SocketAddr = server.parse().unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap(), 16).unwrap();
    clients
        .iter()
        .map(|&client| {
            table
                .lines()
                .skip(1)
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (port(f[1]) == server.port() && port(f[2]) == client)
                        .then(|| u64::from_str_radix(f[4].split(':').next().unwrap(), 16).unwrap())
                })
                .unwrap_or(0)
        })
        .collect()
}

/// Stalled clients whose outboxes each hold less than a watcher's bound
/// (1 MiB) but together fill the bound of all outboxes
/// (`KVR_WATCH_MEMORY`, 4 MiB) end `lagging`, and a reading watcher gets
/// its events at once. Since lines count until the connection takes them,
/// only a stream whose outbox held a watcher's bound could end: five
/// stalled ones holding less each kept the bound full for good, and a
/// reader opened then got nothing until the idle timeout cut them (about
/// a minute). Now a stream whose connection took nothing for a second
/// ends under pressure whatever its outbox holds. Each stalled stream
/// either ends `lagging`, between requests and naming the first revision
/// it did not get (a watch from there goes on with no gap and no
/// duplicate), or, the bound freed, goes on with every event.
#[test]
fn stalled_watchers_each_under_their_bound_end_lagging_and_a_reader_gets_its_events() {
    const STALLED: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    let (mut stalled, sockets): (Vec<Stream>, Vec<TcpStream>) = (0..STALLED)
        .map(|_| Stream::open_stalling_on(&s.addr, "from_revision=1"))
        .unzip();
    let ports: Vec<u16> = sockets
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    let value = "v".repeat(100_000);
    let mut revision = 0;
    // 100 KB values until the kernel takes no more for the stalled
    // connections (their send queues stayed the same over two puts) ...
    let mut queues = Vec::new();
    let mut same = 0;
    while same < 2 {
        put(&s, &format!("a{revision:03}"), &value);
        revision += 1;
        std::thread::sleep(Duration::from_millis(300));
        let now = send_queues(&s.addr, &ports);
        same = if now == queues && revision > 5 {
            same + 1
        } else {
            0
        };
        queues = now;
        assert!(revision < 300, "the send queues kept growing: {queues:?}");
    }
    // ... then 700 KB more: with those two, less than a watcher's bound in
    // each outbox, more than the bound of all in all of them.
    for i in 0..7 {
        put(&s, &format!("x{i}"), &value);
        revision += 1;
    }
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "{revision} puts; the kernel holds {queues:?} bytes for the stalled connections, then {:?}",
        send_queues(&s.addr, &ports)
    );
    let lines = reading_watcher(&s.url);
    let wait = Duration::from_secs(30);
    let first = lines.recv_timeout(wait).expect("no first line");
    assert_eq!(first, serde_json::json!({"progress_revision": revision}));
    for i in 0..3 {
        put(&s, &format!("b{i}"), "w");
    }
    for i in 0..3 {
        revision += 1;
        let event = next_event(&lines, wait, &format!("b{i}"));
        assert_eq!(
            event,
            serde_json::json!({"revision": revision, "op": "put", "key": format!("b{i}")})
        );
    }
    // The stalled streams, read now.
    for c in &sockets {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    let (mut ended, mut cut) = (0, 0);
    for w in &mut stalled {
        let (last, end) = read_stalled(w, revision);
        match end {
            // Every event: it was not stalled once the bound freed up.
            StalledEnd::Every => continue,
            StalledEnd::Lagging => ended += 1,
            // After its lagging end (see `Outbox::linger`).
            StalledEnd::Cut => cut += 1,
        }
        // Resuming where it says goes on from there, with every event.
        resumes_to(&s.url, last, revision);
    }
    assert!(
        ended + cut > 0,
        "no stalled stream ended: the bound never filled"
    );
    println!("{ended} of {STALLED} stalled streams ended lagging, {cut} were cut off after it");
}

/// Stalled clients inside one large batch (twenty 1 MB values) under a
/// small bound of all outboxes (`KVR_WATCH_MEMORY`, 4 MiB): a stream
/// cannot end inside a request, so each is cut off once its connection
/// took nothing for a second, and a reading watcher opened then gets its
/// events at once. Without the cut, the stalled streams waited for their
/// connections inside the batch, holding the bound: the reader waited
/// for the idle timeout. A stalled client read afterwards finds its
/// stream broken off after events in order from the first, and a watch
/// from the next revision gets the rest of the batch.
#[test]
fn stalled_watchers_inside_a_large_batch_are_cut_off_and_a_reader_gets_its_events() {
    const STALLED: usize = 5;
    const BATCH: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    let (mut stalled, sockets): (Vec<Stream>, Vec<TcpStream>) = (0..STALLED)
        .map(|_| Stream::open_stalling_on(&s.addr, "from_revision=1"))
        .unzip();
    batch_of_large_values(&s, "b", BATCH, &"B".repeat(1_000_000));
    std::thread::sleep(Duration::from_secs(4));
    let started = Instant::now();
    let lines = reading_watcher(&s.url);
    let wait = Duration::from_secs(20);
    let first = lines.recv_timeout(wait).expect("no first line");
    assert_eq!(first, serde_json::json!({"progress_revision": BATCH}));
    put(&s, "after", "x");
    let event = next_event(&lines, wait, "after");
    assert_eq!(
        event,
        serde_json::json!({"revision": BATCH + 1, "op": "put", "key": "after"})
    );
    println!(
        "the reading watcher got its event {:?} after it opened",
        started.elapsed()
    );
    for c in &sockets {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    let mut cut = 0;
    for w in &mut stalled {
        let (last, end) = read_stalled(w, BATCH + 1);
        match end {
            StalledEnd::Every => continue,
            StalledEnd::Lagging => panic!("a stalled stream ended lagging inside the batch"),
            StalledEnd::Cut => cut += 1,
        }
        assert!(last < BATCH, "cut off after the batch, at {last}");
        resumes_to(&s.url, last, BATCH + 1);
    }
    assert!(cut > 0, "no stalled stream was cut off");
    println!("{cut} of {STALLED} stalled streams were cut off inside the batch");
}

/// A client that reads slowly (4 KiB every 200 ms through a 4 KiB receive
/// buffer) is neither ended nor cut off while stalled watchers keep the
/// bound of all outboxes (`KVR_WATCH_MEMORY`, 4 MiB) under pressure (a
/// value of 1 MB every 200 ms): its
/// connection takes a 64 KiB slice only every few seconds, but the kernel
/// holds less for it each time it reads, which counts as taking. Before,
/// such readers were taken for stalled ones and ended or cut off.
#[test]
fn a_slow_reader_is_not_taken_for_a_stalled_one_under_pressure() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    let value = "S".repeat(1_000_000);
    for i in 0..10 {
        put(&s, &format!("s{i}"), &value);
    }
    let stalled: Vec<(Stream, TcpStream)> = (0..20)
        .map(|_| Stream::open_stalling_on(&s.addr, "from_revision=1"))
        .collect();
    // A value of 1 MB every 200 ms keeps the stalled ones' pages coming.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (url, writing, value) = (s.url.clone(), writing.clone(), value.clone());
        std::thread::spawn(move || {
            let mut i = 10;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http(
                    "PUT",
                    &format!("{url}/v1/kv/s{i}"),
                    &[],
                    Some(value.as_bytes()),
                );
                assert_eq!(r.status, 200);
                i += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut slow = small_buffer_connection(&s.addr);
    write!(
        slow,
        "GET /v1/watch?from_revision=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    // Its first page waits for room among the stalled ones (a few
    // seconds: it is behind as they are); the test is how it fares once
    // it reads.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (mut got, mut tail) = (0, Vec::new());
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&tail).contains("\"revision\"") {
        let n = slow.read(&mut buf).expect("the slow reader got no page");
        assert!(
            n > 0,
            "the slow reader's stream ended before its first page"
        );
        tail.extend_from_slice(&buf[..n]);
    }
    got += tail.len();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let n = slow
            .read(&mut buf)
            .expect("the slow reader's connection failed");
        assert!(n > 0, "the slow reader's stream ended after {got} bytes");
        got += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(200);
        tail.drain(..keep);
        let text = String::from_utf8_lossy(&tail);
        assert!(
            !text.contains("lagging"),
            "the slow reader ended lagging: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("the slow reader read {got} bytes in 8 s, its stream still open");
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    drop(stalled);
}

/// A watcher that keeps up gets each new event at once while unread
/// watchers of large values keep the bound of all outboxes
/// (`KVR_WATCH_MEMORY`, 4 MiB) under pressure: a page takes the room its
/// lines need, found before it is rendered, so a few lines fit where
/// stalled watchers each wait for a megabyte. Before, every page took a
/// whole page's room, and each freed page went to whichever watcher woke
/// first: a new watcher waited up to 45 s for its first event.
#[test]
fn a_watcher_that_keeps_up_is_not_held_behind_unread_watchers_of_large_values() {
    const PROBES: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    let stalled: Vec<(Stream, TcpStream)> = (0..60)
        .map(|_| Stream::open_stalling_on(&s.addr, "prefix=big/"))
        .collect();
    // A value of 1 MB every 50 ms keeps the unread ones' pages coming.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (url, writing) = (s.url.clone(), writing.clone());
        let value = "U".repeat(1_000_000);
        std::thread::spawn(move || {
            let mut i = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http(
                    "PUT",
                    &format!("{url}/v1/kv/big/{}", i % 20),
                    &[],
                    Some(value.as_bytes()),
                );
                assert_eq!(r.status, 200);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let lines = reading_watcher(&s.url);
    // Its stream has begun (its first line), so it starts before the
    // first probe: on a loaded machine it could start after it.
    let first = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(first.get("progress_revision").is_some(), "{first}");
    let mut slowest = Duration::ZERO;
    for i in 0..PROBES {
        let key = format!("probe/{i}");
        let putting = Instant::now();
        put(&s, &key, "x");
        // From its acknowledgement: a put may wait behind the 1 MB ones
        // on a loaded machine.
        let (sent, put_took) = (Instant::now(), putting.elapsed());
        let wait = Duration::from_secs(5);
        while next_event(&lines, wait, &key)["key"] != key.as_str() {
            assert!(
                sent.elapsed() < wait,
                "{key} took over {wait:?} from its acknowledgement (after {put_took:?}) to \
                 reach a watcher that keeps up"
            );
        }
        slowest = slowest.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("{PROBES} events each reached a watcher that keeps up within {slowest:?}");
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    drop(stalled);
}

/// A new watch of every key from now, keys only, read on its own thread
/// into a channel: its lines are waited for, not read blocking for good
/// (its stream breaks off when the server stops).
fn reading_watcher(url: &str) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let (tx, lines) = std::sync::mpsc::channel();
    let url = url.to_string();
    std::thread::spawn(move || {
        let patient = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .new_agent();
        let w = Stream::open_with(&patient, &url, "keys_only=true&progress=1");
        for line in w.lines.map_while(Result::ok) {
            let line: serde_json::Value = serde_json::from_str(&line).unwrap();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The next event line from a reading watcher (see [`reading_watcher`]),
/// progress lines skipped, failing after `wait` for `what`.
fn next_event(
    lines: &std::sync::mpsc::Receiver<serde_json::Value>,
    wait: Duration,
    what: &str,
) -> serde_json::Value {
    loop {
        let line = lines.recv_timeout(wait).unwrap_or_else(|e| {
            panic!("the reading watcher waited {wait:?} for {what} ({e}): stalled watchers hold the bound")
        });
        if line.get("progress_revision").is_none() {
            return line;
        }
    }
}

/// One `POST /v1/batch` of `n` puts of `value`, keys `{prefix}00`… (two
/// digits from ten on).
fn batch_of_large_values(s: &Server, prefix: &str, n: u64, value: &str) {
    let width = if n > 10 { 2 } else { 1 };
    let body: String = (0..n)
        .map(|i| format!("{{\"key\":\"{prefix}{i:0width$}\",\"value\":\"{value}\"}}\n"))
        .collect();
    post_batch(&s.url, &body);
}

/// A connection with a 4 KiB receive buffer, set before it connects (which
/// also stops the kernel growing it): a client that reads nothing stalls
/// at once, whatever the machine's TCP settings.
fn small_buffer_connection(addr: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// How a stalled stream, read at last, ended.
#[derive(Debug, PartialEq)]
enum StalledEnd {
    /// It got every event: it was not ended.
    Every,
    /// `lagging`, naming the first revision it did not get.
    Lagging,
    /// Broken off inside the body: cut off (see `Outbox::linger`).
    Cut,
}

/// Reads a stalled watch of every key from revision 1: its events, in
/// order, up to `upto`, or its end. Returns the last revision it got.
fn read_stalled(w: &mut Stream, upto: u64) -> (u64, StalledEnd) {
    assert_eq!(w.next(), serde_json::json!({"progress_revision": 0}));
    let mut last = 0;
    loop {
        let line: serde_json::Value = match w.lines.next() {
            Some(Ok(line)) => serde_json::from_str(&line).unwrap(),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return (last, StalledEnd::Cut);
            }
            other => panic!("the stream ended without an end line: {other:?}"),
        };
        if line.get("progress_revision").is_some() {
            continue;
        }
        let Some(r) = line["revision"].as_u64() else {
            assert_eq!(line["error"], "lagging", "{line}");
            assert_eq!(line["next_revision"], last + 1, "{line}");
            assert!(w.try_next().is_none(), "lines after lagging");
            return (last, StalledEnd::Lagging);
        };
        assert_eq!(r, last + 1, "{}", line["key"]);
        last = r;
        if r == upto {
            return (last, StalledEnd::Every);
        }
    }
}

/// A watch from `last + 1` gets every event up to `upto`, in order.
fn resumes_to(url: &str, mut last: u64, upto: u64) {
    let mut again = Stream::open(url, &format!("keys_only=true&from_revision={}", last + 1));
    assert_eq!(again.next(), serde_json::json!({"progress_revision": last}));
    while last < upto {
        let line = again.next();
        assert_eq!(line["revision"], last + 1, "{line}");
        last += 1;
    }
}

/// Many watchers reading large values through a small bound of all
/// outboxes (`KVR_WATCH_MEMORY`, 4 MiB: room for four pages of 1 MiB) all
/// get every event: a watcher takes a page's room before it reads the
/// page and holds none while it waits for room, so the waits all end, also
/// for a request larger than a page (a batch of 3 MB goes in consecutive
/// chunks). A stream that ends `lagging` under that pressure is resumed
/// where it says, as `kvr watch` does.
#[test]
fn many_watchers_of_large_values_through_a_small_bound_all_get_every_event() {
    const WATCHERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_WATCH_MEMORY", "4194304")]);
    let value = "L".repeat(1_000_000);
    for i in 0..8 {
        put(&s, &format!("l{i}"), &value);
    }
    batch_of_large_values(&s, "b", 3, &value);
    put(&s, "last", "x");
    const LAST: u64 = 12;
    let readers: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let patient = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .new_agent();
                let (mut want, mut resumed) = (1u64, 0);
                while want <= LAST {
                    let mut w = Stream::open_with(&patient, &url, &format!("from_revision={want}"));
                    while want <= LAST {
                        let line = w.next();
                        if line.get("progress_revision").is_some() {
                            continue;
                        }
                        if line["error"] == "lagging" {
                            assert_eq!(line["next_revision"], want, "{line}");
                            resumed += 1;
                            break;
                        }
                        assert_eq!(line["revision"], want, "{}", line["revision"]);
                        want += 1;
                    }
                }
                resumed
            })
        })
        .collect();
    let resumed: Vec<u32> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    println!("{WATCHERS} watchers got every event; lagging ends resumed: {resumed:?}");
}

/// HEAD is answered on `/v1/watch` as on every GET route (it was a 405):
/// the stream's head without the stream, a 410 for a revision no longer
/// kept, a 400 for a bad parameter.
#[test]
fn head_of_a_watch_answers_its_head_without_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--history", "2"]);
    for i in 0..5 {
        put(&s, &format!("k{i}"), "v");
    }
    let r = http("HEAD", &format!("{}/v1/watch", s.url), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("5"));
    assert!(r.body.is_empty());
    let r = http(
        "HEAD",
        &format!("{}/v1/watch?from_revision=1", s.url),
        &[],
        None,
    );
    assert_eq!(r.status, 410);
    let r = http("HEAD", &format!("{}/v1/watch?nope=1", s.url), &[], None);
    assert_eq!(r.status, 400);
    // A GET watch still streams.
    let mut w = Stream::open(&s.url, "");
    assert_eq!(w.next()["progress_revision"], 5);
    put(&s, "k9", "v");
    assert_eq!(w.next()["key"], "k9");
}

/// A watch whose client went away frees its connection within seconds,
/// whatever its progress interval: with `progress=86400` it was held until
/// the next write, a day later, and four such clients filled
/// `--max-connections 4` (audit finding). A client that only shut its
/// sending side (`nc -N`) and reads on keeps its stream.
#[test]
fn a_watch_whose_client_went_away_frees_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-connections", "4"]);
    let watch = |c: &mut TcpStream| {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"GET /v1/watch?progress=86400 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_until(c, b"{\"progress_revision\":0}\n");
    };
    for _ in 0..4 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        watch(&mut c);
        drop(c);
    }
    let started = Instant::now();
    loop {
        let r = http("GET", &format!("{}/v1/stats", s.url), &[], None);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the closed watches still hold the connections"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Shut for sending, reading on: the stream goes on past a check.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    watch(&mut c);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    put(&s, "after", "v");
    read_until(&mut c, b"\"key\":\"after\"");
}
