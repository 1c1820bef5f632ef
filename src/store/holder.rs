//! Who holds a database file: for the "in use" error, so that a user
//! learns it is their own `kvr tui` in another terminal, or a server.
//!
//! redb locks the file with byte-range locks and, on Linux, also with the
//! whole-file `flock` of its earlier versions. The kernel lists every lock
//! in `/proc/locks`, one per line:
//!
//! ```text
//! 3: FLOCK  ADVISORY  WRITE 9379 fe:00:10018883 0 EOF
//! ```
//!
//! (id, kind, mode, access, pid, `MAJOR:MINOR:INODE` in hex, hex, decimal,
//! range). Byte-range locks of the open-file-description kind show pid -1,
//! so the `flock` line is the one that names the process. The name comes
//! from `/proc/PID/cmdline`. Nothing is written to find it, so no stale file
//! can ever name a process that is gone; where `/proc` is missing or the
//! lock cannot be matched the error simply names no process.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The longest command line quoted in a message.
const MAX_COMMAND_CHARS: usize = 80;

/// `"kvr tui --db F (pid 1234)"`, or `None` when it cannot be learned.
pub fn of(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_pid(&locks, meta.dev(), meta.ino())?;
    let command = command_of(pid);
    Some(match command {
        Some(c) => format!("{c} (pid {pid})"),
        None => format!("pid {pid}"),
    })
}

/// The pid of a lock on the file `dev`/`ino` in the text of `/proc/locks`,
/// preferring a write lock.
pub fn holder_pid(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let id = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let mut found = None;
    for line in locks.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(access), Some(pid), Some(file)) = (fields.get(3), fields.get(4), fields.get(5))
        else {
            continue;
        };
        // A blocked waiter's line has a `->` after the id: it holds nothing.
        if fields.get(1) == Some(&"->") || *file != id {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue; // -1: an open-file-description lock names no process
        };
        if *access == "WRITE" {
            return Some(pid);
        }
        found.get_or_insert(pid);
    }
    found
}

/// The command line of `pid`, shortened, with the program's directory cut.
fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next()?;
    let program = program.rsplit('/').next().unwrap_or(&program).to_string();
    let mut line = std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() > MAX_COMMAND_CHARS {
        line = line.chars().take(MAX_COMMAND_CHARS - 1).collect::<String>() + "…";
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::holder_pid;

    const LOCKS: &str = "\
1: OFDLCK ADVISORY  WRITE -1 fe:00:10018883 0 4611686018427388799
2: OFDLCK ADVISORY  WRITE -1 fe:00:10018883 4611686018427388928 EOF
3: FLOCK  ADVISORY  WRITE 9379 fe:00:10018883 0 EOF
3: -> FLOCK  ADVISORY  WRITE 9400 fe:00:10018883 0 EOF
4: FLOCK  ADVISORY  WRITE 7655 fe:00:5644962 0 EOF
5: FLOCK  ADVISORY  READ 7655 103:02:77 0 EOF
";

    #[test]
    fn finds_the_flock_holder_not_the_waiter_nor_other_files() {
        let dev = rustix::fs::makedev(0xfe, 0);
        assert_eq!(holder_pid(LOCKS, dev, 10018883), Some(9379));
        assert_eq!(holder_pid(LOCKS, dev, 5644962), Some(7655));
        assert_eq!(holder_pid(LOCKS, dev, 1), None);
        assert_eq!(
            holder_pid(LOCKS, rustix::fs::makedev(0x103, 2), 77),
            Some(7655)
        );
    }
}
