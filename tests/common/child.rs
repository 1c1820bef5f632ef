//! The two things every test crate does with a `kvr` child process: read
//! the URL a server says it listens on, and run a command with bytes on its
//! stdin. Each test crate is compiled on its own, so each includes this
//! file with `#[path]`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

/// The URL a `kvr serve` child (stdout piped) says it listens on: its
/// first line is `listening on URL` (SPEC). Takes the child's stdout.
pub fn listening_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("the child's stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

/// Runs `cmd` with `input` on its stdin and both outputs captured. The
/// input is written from a thread, since a command may exit (or fill its
/// output pipes) before it has read all of it.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    out
}

/// The output of `child` (its outputs piped), killed if it has not ended
/// within `secs`: a command that should stop but waits for ever fails its
/// test instead of hanging it.
pub fn output_within(mut child: Child, secs: u64) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// libfaketime, which shows a process another clock (`LD_PRELOAD` it, and
/// set `FAKETIME`), if installed: `.ci/run` installs it, so in CI it must
/// be; elsewhere a test without it says so and is skipped.
pub fn faketime() -> Option<&'static str> {
    const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    if std::path::Path::new(FAKETIME).exists() {
        return Some(FAKETIME);
    }
    let why = format!("skipped: {FAKETIME} is missing (apt-get install faketime)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("{why}");
    None
}
