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
