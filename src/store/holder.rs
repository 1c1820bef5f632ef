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

/// How many times `/proc/locks` is read before the holder is said to be
/// unknown.
const READS_OF_LOCKS: usize = 5;

/// `"kvr tui --db F (pid 1234)"`, or `None` when it cannot be learned.
pub fn of(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    // The kernel hands `/proc/locks` out a page at a time and finds where
    // the next page starts by counting lines: a lock released in between
    // shifts the rest, so one read may skip a line, the holder's too (seen
    // in CI, where many tests hold locks; 3 % of reads with 160 locks
    // coming and going). Reads skip independently, so another finds it.
    let pid = (0..READS_OF_LOCKS).find_map(|_| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        holder_pid(&locks, meta.dev(), meta.ino())
    })?;
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

/// kvr's commands and their aliases: the one argument of a holder's
/// command line shown besides its `--db` (a test keeps this list in step
/// with the CLI's).
pub const COMMANDS: &[&str] = &[
    "put",
    "get",
    "delete",
    "del",
    "rm",
    "range",
    "watch",
    "batch",
    "stats",
    "backup",
    "check",
    "compact",
    "tui",
    "serve",
    "bench",
    "cluster",
    "openapi",
    "completions",
];

/// The command line of `pid`, with the program's directory cut and only
/// its command and `--db` shown: anyone who can open the file reads this
/// message, and the rest of a command line may hold a `--token`, or a
/// value that `kvr put` was given.
fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next()?;
    let program = program.rsplit('/').next().unwrap_or(&program).to_string();
    let mut line = std::iter::once(program)
        .chain(shown(args))
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() > MAX_COMMAND_CHARS {
        line = line.chars().take(MAX_COMMAND_CHARS - 1).collect::<String>() + "…";
    }
    Some(line)
}

/// Of a command line's arguments (the program's left out), those a
/// message may show: `--db F` (or `--db=F`) and the first of
/// [`COMMANDS`], in their order, with one `…` for each run of others.
fn shown(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut shown = Vec::new();
    let mut command_seen = false;
    let mut db_next = false;
    for arg in args {
        let keep = if db_next {
            db_next = false;
            true
        } else if arg == "--db" {
            db_next = true;
            true
        } else if arg.starts_with("--db=") {
            true
        } else if !command_seen && COMMANDS.contains(&arg.as_str()) {
            command_seen = true;
            true
        } else {
            false
        };
        if keep {
            shown.push(arg);
        } else if shown.last().is_none_or(|last| last != "…") {
            shown.push("…".to_string());
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::{COMMANDS, holder_pid, shown};

    fn shown_of(line: &str) -> String {
        shown(line.split(' ').map(String::from)).join(" ")
    }

    /// A holder's token, and a value being put, are never in the message
    /// (an audit found `--token topsecret` in it).
    #[test]
    fn a_command_line_shows_its_command_and_database_only() {
        assert_eq!(
            shown_of("--db tk.redb serve --listen 127.0.0.1:1 --token topsecret --quiet"),
            "--db tk.redb serve …"
        );
        assert_eq!(
            shown_of("--token hunter2 --db lk.redb batch ff2"),
            "… --db lk.redb batch …"
        );
        assert_eq!(shown_of("put password hunter2"), "put …");
        assert_eq!(shown_of("tui --db=F"), "tui --db=F");
        // A key named like a command is not taken for it.
        assert_eq!(shown_of("--db F get put"), "--db F get …");
    }

    /// Every command and alias the CLI has is in [`COMMANDS`], and nothing
    /// else.
    #[test]
    fn the_list_of_commands_is_the_clis() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let mut names: Vec<String> = cli
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .flat_map(|c| {
                std::iter::once(c.get_name().to_string())
                    .chain(c.get_all_aliases().map(String::from))
            })
            .collect();
        let mut listed: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
        names.sort();
        listed.sort();
        assert_eq!(names, listed);
    }

    const LOCKS: &str = "\
1: OFDLCK ADVISORY  WRITE -1 fe:00:10018883 0 4611686018427388799
2: OFDLCK ADVISORY  WRITE -1 fe:00:10018883 4611686018427388928 EOF
3: FLOCK  ADVISORY  WRITE 9379 fe:00:10018883 0 EOF
3: -> FLOCK  ADVISORY  WRITE 9400 fe:00:10018883 0 EOF
4: FLOCK  ADVISORY  WRITE 7655 fe:00:5644962 0 EOF
5: FLOCK  ADVISORY  READ 7655 103:02:77 0 EOF
";

    /// Read while 160 other locks come and go, `/proc/locks` skips a held
    /// lock's line in ~3 % of reads: the holder is still found.
    #[test]
    fn finds_the_holder_while_other_locks_come_and_go() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        if std::fs::metadata("/proc/locks").is_err() {
            return; // no /proc: nothing to find the holder with
        }
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join("held");
        let file = std::fs::File::create(&held).unwrap();
        file.lock().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let churners: Vec<_> = (0..4)
            .map(|t| {
                let files: Vec<_> = (0..40)
                    .map(|i| std::fs::File::create(dir.path().join(format!("{t}-{i}"))).unwrap())
                    .collect();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        files.iter().for_each(|f| f.lock().unwrap());
                        files.iter().for_each(|f| f.unlock().unwrap());
                    }
                })
            })
            .collect();
        let missed = (0..500).filter(|_| super::of(&held).is_none()).count();
        stop.store(true, Ordering::Relaxed);
        churners.into_iter().for_each(|c| c.join().unwrap());
        assert_eq!(missed, 0, "the holder was not found {missed} times of 500");
    }

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
