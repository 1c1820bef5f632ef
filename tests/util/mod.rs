//! Test harness: runs the real `kvr` binary in its own temp dir with the
//! user's `KVR_*` environment cleared, and shows the command, both outputs and
//! the status when an expectation fails.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const KVR: &str = env!("CARGO_BIN_EXE_kvr");

#[path = "../common/pki.rs"]
pub mod pki;

#[path = "../common/child.rs"]
mod child;
pub use child::{listening_url, output_with_stdin};

/// A temp dir with a database path in it, reached directly (`--db`) or
/// through a `kvr serve` on that database (`--server`).
pub struct Env {
    // Fields drop in order: the server stops before its directory goes.
    server: Option<Served>,
    pub dir: tempfile::TempDir,
}

/// A `kvr serve` child, stopped with SIGTERM (and waited for) on drop.
struct Served {
    child: std::process::Child,
    url: String,
    /// The CA clients give as `--cacert`, when the server speaks HTTPS.
    cacert: Option<PathBuf>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // A server a test stopped (SIGSTOP) takes the TERM once continued.
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
        let _ = self.child.wait();
    }
}

/// A server stopped by [`Env::stop_server`]: continued on drop.
pub struct StoppedServer(u32);

impl Drop for StoppedServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

impl Env {
    /// Commands go to the database file with `--db`.
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            server: None,
        }
    }

    /// Commands go to a `kvr serve` on the database with `--server`.
    pub fn served() -> Env {
        Self::serve(false, &[])
    }

    /// As [`Env::served`], with more `serve` flags (such as limits).
    pub fn served_with(serve_flags: &[&str]) -> Env {
        Self::serve(false, serve_flags)
    }

    /// Commands go to a `kvr serve --tls-cert … --tls-key …` on the
    /// database with `--server https://… --cacert CA` (a CA made for it).
    pub fn served_tls() -> Env {
        Self::serve(true, &[])
    }

    fn serve(tls: bool, serve_flags: &[&str]) -> Env {
        let mut env = Env::new();
        let pki = tls.then(|| pki::Pki::new(env.dir.path(), "test"));
        let mut cmd = bare_command(env.dir.path());
        cmd.arg("--db")
            .arg(env.db())
            .args(["serve", "--listen", "127.0.0.1:0", "--quiet"])
            .args(serve_flags)
            .args(pki.iter().flat_map(pki::Pki::serve_args))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let url = listening_url(&mut child);
        assert_eq!(url.starts_with("https://"), tls, "{url}");
        env.server = Some(Served {
            child,
            url,
            cacert: pki.map(|p| p.ca),
        });
        env
    }

    /// A fresh environment of the same kind as this one.
    pub fn new_like(&self) -> Env {
        if let Some(s) = &self.server {
            Env::serve(s.cacert.is_some(), &[])
        } else {
            Env::new()
        }
    }

    /// Kills the server with SIGKILL, as a crash would; commands go to the
    /// file with `--db` from then on.
    pub fn crash_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.child.kill().unwrap();
            s.child.wait().unwrap();
        }
    }

    /// Stops the server with SIGSTOP, as a server that stopped answering
    /// (it accepts connections, as its socket listens, and answers none);
    /// it goes on when the returned guard is dropped.
    pub fn stop_server(&self) -> StoppedServer {
        let pid = self.server.as_ref().expect("a served Env").child.id();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -STOP {pid}");
        StoppedServer(pid)
    }

    pub fn is_served(&self) -> bool {
        self.server.is_some()
    }

    /// The URL of the server of [`Env::served`].
    pub fn server_url(&self) -> Option<&str> {
        self.server.as_ref().map(|s| s.url.as_str())
    }

    /// The CA of [`Env::served_tls`]'s certificate.
    pub fn cacert(&self) -> Option<&Path> {
        self.server.as_ref().and_then(|s| s.cacert.as_deref())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The default database of [`Env::kvr`].
    pub fn db(&self) -> PathBuf {
        self.path("test.redb")
    }

    /// `kvr --db DB ARGS...`, or `kvr --server URL ARGS...` when served.
    pub fn kvr<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = bare_command(self.dir.path());
        match &self.server {
            Some(s) => cmd.arg("--server").arg(&s.url),
            None => cmd.arg("--db").arg(self.db()),
        };
        if let Some(ca) = self.server.as_ref().and_then(|s| s.cacert.as_ref()) {
            cmd.arg("--cacert").arg(ca);
        }
        cmd.args(args);
        Run {
            cmd,
            stdin: None,
            stdin_file: None,
        }
    }

    /// `kvr ARGS...` with no `--db` (the current dir is the temp dir).
    pub fn kvr_bare<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = bare_command(self.dir.path());
        cmd.args(args);
        Run {
            cmd,
            stdin: None,
            stdin_file: None,
        }
    }

    /// Every key, value and revision, plus stats: what "the data" is when a
    /// test checks that a rejected command changed nothing.
    pub fn snapshot(&self) -> (String, String) {
        let range = self.kvr(["range"]).ok().stdout_text();
        let stats = self.kvr(["stats"]).ok().stdout_text();
        let mut stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        // The file may grow or shrink without any data change.
        stats.as_object_mut().unwrap().remove("file_bytes");
        (range, stats.to_string())
    }

    /// Range output parsed into JSON values.
    /// The database file's bytes when commands open it with `--db` (a
    /// refused write leaves them as they are); `None` when served.
    pub fn file_if_local(&self) -> Option<Vec<u8>> {
        (!self.is_served()).then(|| std::fs::read(self.db()).unwrap())
    }

    pub fn range_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut full = vec!["range"];
        full.extend_from_slice(args);
        parse_lines(&self.kvr(full).ok().stdout_text())
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.kvr(["stats"]).ok().stdout_text()).unwrap()
    }

    /// Polls `kvr stats` until the revision is at least `revision`, failing
    /// with `what` after `within`: for what a server does on its own time
    /// (a sweep, a batch's parts), which a fixed sleep on a loaded machine
    /// could miss.
    pub fn wait_for_revision(&self, revision: u64, within: std::time::Duration, what: &str) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let now = self.stats()["revision"].as_u64().unwrap();
            if now >= revision {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} within {within:?}: revision {now}, not {revision}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

pub fn parse_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn bare_command(dir: &Path) -> Command {
    let mut cmd = Command::new(KVR);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVR_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A command about to run.
pub struct Run {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
    /// Stdin opened from a path as it is (`< PATH`), a directory too.
    stdin_file: Option<std::fs::File>,
}

impl Run {
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.stdin = Some(bytes.into());
        self
    }

    /// Stdin redirected from `path` (`< PATH`), which may be a directory.
    pub fn stdin_from(mut self, path: &Path) -> Run {
        self.stdin_file = Some(std::fs::File::open(path).unwrap());
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }

    pub fn output(mut self) -> Done {
        let stdin = match self.stdin_file.take() {
            Some(file) => Stdio::from(file),
            None => Stdio::null(),
        };
        let out = match self.stdin.take() {
            Some(bytes) => output_with_stdin(&mut self.cmd, &bytes),
            None => self
                .cmd
                .stdin(stdin)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .unwrap(),
        };
        Done {
            desc: format!("{:?}", self.cmd),
            out,
        }
    }

    /// Runs and expects exit 0.
    pub fn ok(self) -> Done {
        self.code(0)
    }

    /// Runs and expects this exit code.
    pub fn code(self, code: i32) -> Done {
        let done = self.output();
        assert_eq!(done.out.status.code(), Some(code), "{}", done.report());
        if code != 0 {
            let first = done.stderr_text().lines().next().unwrap_or("").to_string();
            assert!(
                first.starts_with("kvr: error:"),
                "first stderr line must start with 'kvr: error:'\n{}",
                done.report()
            );
        }
        done
    }
}

/// A finished command.
pub struct Done {
    desc: String,
    pub out: Output,
}

impl Done {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.out.stdout.clone()).unwrap()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\nstdout: {}\nstderr: {}",
            self.desc,
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            self.stderr_text()
        )
    }

    /// Asserts stderr contains `needle`.
    pub fn stdout_has(self, needle: &str) -> Done {
        assert!(
            self.stdout_text().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.report()
        );
        self
    }

    pub fn stderr_has(self, needle: &str) -> Done {
        assert!(
            self.stderr_text().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.report()
        );
        self
    }
}
