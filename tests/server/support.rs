//! Test helpers: the real `kvr` binary in a temp dir with `KVR_*` cleared,
//! a real server on 127.0.0.1:0 killed on drop, and HTTP clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const KVR: &str = env!("CARGO_BIN_EXE_kvr");

/// A `kvr` command with a clean environment, run in `dir`.
pub fn kvr_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(KVR);
    cmd.env_clear().current_dir(dir);
    // Flushes every 2 s of writes (30 s by default), so that the kill -9
    // cycles, disk-full and memory tests see flushes within their runs.
    cmd.env("KVR_FLUSH_AGE_MS", "2000");
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Runs `kvr ARGS` with `stdin`, returning its output.
pub fn kvr(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    crate::child::output_with_stdin(kvr_cmd(dir).args(args), stdin)
}

/// A running `kvr serve`, killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub dir: PathBuf,
}

impl Server {
    /// `kvr --db DIR/db.redb serve --listen 127.0.0.1:0 --quiet EXTRA...`
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Self::start_env(dir, extra, &[])
    }

    pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["--quiet"];
        args.extend_from_slice(extra);
        Self::spawn(dir, &args, env, Stdio::inherit())
    }

    /// Without `--quiet` (a log line per request), stderr to `log`.
    pub fn start_logging_to(dir: &Path, log: &Path) -> Server {
        let log = std::fs::File::create(log).unwrap();
        Self::spawn(dir, &[], &[], Stdio::from(log))
    }

    /// `kvr --db DIR/NAME serve --listen 127.0.0.1:0 --quiet`.
    pub fn spawn_on(dir: &Path, name: &str) -> Server {
        Self::spawn_db(dir, name, &["--quiet"], &[], Stdio::inherit())
    }

    /// `kvr --db DIR/db.redb serve --listen 127.0.0.1:0 EXTRA...` with `env`
    /// and stderr to `stderr`.
    pub fn spawn(dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        Self::spawn_db(dir, "db.redb", extra, env, stderr)
    }

    fn spawn_db(
        dir: &Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
        let db = dir.join(name);
        let mut cmd = kvr_cmd(dir);
        cmd.arg("--db").arg(&db).arg("serve");
        // A given address (a restart on the same port) replaces port 0.
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().unwrap();
        let url = crate::child::listening_url(&mut child);
        let addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        Server {
            child,
            url,
            addr,

            dir: dir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(Duration::from_secs(15))
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the server, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// `kvr --server URL ARGS`.
    pub fn cli(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut all = vec!["--server", self.url.as_str()];
        all.extend_from_slice(args);
        kvr(&self.dir, &all, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Polls `done` every 50 ms for up to 20 s; fails naming `what`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An HTTP agent that returns every status as a response.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

pub fn reply(resp: ureq::http::Response<ureq::Body>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body
        .into_with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A request with optional headers and body, answered as a [`Reply`].
/// The value of the unlabelled family `name` in the server's `/metrics`.
/// The value of the sample named exactly `name` (no labels) in a
/// `/metrics` text, as a float (`metric` fetches and reads integers).
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
        .parse()
        .unwrap()
}

pub fn metric(url: &str, name: &str) -> u64 {
    let text = http("GET", &format!("{url}/metrics"), &[], None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    http_with(&agent(), method, url, headers, body)
}

/// [`http`] through `agent`, which keeps its connection for the next
/// request: for loops of many requests (a new connection for each GET of
/// a 5,000-key check made it most of a test's time).
pub fn http_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = match body {
        Some(b) => agent.run(req.body(b.to_vec()).unwrap()),
        None => agent.run(req.body(()).unwrap()),
    };
    reply(resp.unwrap())
}

/// `POST /v1/batch` of `lines` (JSON lines), which must succeed.
pub fn post_batch(url: &str, lines: &str) {
    let r = http(
        "POST",
        &format!("{url}/v1/batch"),
        &[],
        Some(lines.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Writes raw bytes to `addr` and returns what comes back (until the
/// server closes or 5 s pass).
pub fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts that `raw` (a whole response read off a socket) is a refusal
/// of a request the HTTP parser could not take, answered as every error is
/// (SPEC "Errors"): `status`, the `bad_request` code in a JSON body, the
/// revision, and the connection closed.
pub fn assert_parser_refusal(raw: &str, status: u16) {
    assert!(raw.starts_with(&format!("HTTP/1.1 {status} ")), "{raw}");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{raw}"));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{raw}"
    );
    assert!(head.contains("\r\nconnection: close"), "{raw}");
    let revision = head
        .lines()
        .find_map(|l| l.strip_prefix("x-kvr-revision: "))
        .unwrap_or_else(|| panic!("no x-kvr-revision: {raw}"));
    assert!(revision.parse::<u64>().is_ok(), "{raw}");
    assert_dated(raw);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(json["error"], "bad_request", "{raw}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{raw}"
    );
}

/// Asserts that a raw response's head carries a `Date` of now (within a
/// minute), as every answer of a server with a clock must (RFC 9110).
pub fn assert_dated(raw: &str) {
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let date = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("date").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no date header: {raw}"));
    let at = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("{e}: {raw}"));
    let now = std::time::SystemTime::now();
    let off = now
        .duration_since(at)
        .or_else(|_| at.duration_since(now))
        .unwrap();
    assert!(off.as_secs() < 60, "date {date} is not now: {raw}");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A request written on a raw socket, each `(name, value)` on its own
/// header line (so a header may be sent on several lines, which HTTP
/// client libraries may merge), answered as a [`Reply`]. The server's
/// response must have a `Content-Length` body (or none).
pub fn raw_http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let mut map = ureq::http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        map.append(
            ureq::http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            ureq::http::HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    Reply {
        status,
        headers: map,
        body: out[split + 4..].to_vec(),
    }
}

/// Reads from `c` until `needle` has arrived; panics if the server
/// closes first.
pub fn read_until(c: &mut TcpStream, needle: &[u8]) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = match c.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            read => read.unwrap(),
        };
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}
