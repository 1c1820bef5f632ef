//! `kvr put KEY [VALUE]`

use std::io::Read;

use super::{arg_bytes, print_revision};
use crate::cli::PutArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;

/// Checks the key and reads the value before opening the database, so a
/// rejected put creates no file and nobody waits for the lock while a value
/// is typed. `local_limit`: the value limit of a local file; `None` with
/// `--server`, where the server's `--max-value-bytes` decides and a value
/// from stdin is streamed to it (see `Client::put_stream`).
///
/// `open` opens the data source for a put of the key at the condition (it
/// may refuse the put first, `cmd::refused_by_file`).
pub fn run(
    open: impl FnOnce(&[u8], Option<u64>) -> Result<Box<dyn Kv>>,
    args: PutArgs,
    local_limit: Option<usize>,
) -> anyhow::Result<()> {
    let key = arg_bytes(args.key);
    crate::limits::check_key(&key, None)?;
    let open = || open(&key, args.if_revision);
    let revision = match (args.value, local_limit) {
        (Some(v), _) => open()?.put_ttl(&key, arg_bytes(v), args.if_revision, args.ttl)?,
        (None, Some(limit)) => {
            let value = read_stdin_value(limit)?;
            open()?.put_ttl(&key, value, args.if_revision, args.ttl)?
        }
        (None, None) => {
            super::check_stdin(VALUE_STDIN)?;
            let size = stdin_file_size();
            let mut stdin = std::io::stdin().lock();
            open()?.put_stream(&key, &mut stdin, size, args.if_revision, args.ttl)?
        }
    };
    if args.json {
        print_revision(revision, "put")?;
    }
    Ok(())
}

/// What `put` says about stdin (see [`super::check_stdin`]).
const VALUE_STDIN: super::StdinUse = super::StdinUse {
    reading: "kvr: reading the value from stdin until Ctrl-D (end of input)",
    closed: "stdin is closed (or not open for reading), so there is no value to read; give \
             VALUE as an argument, or redirect stdin from the value (`< FILE`; `< /dev/null` \
             for an empty value)",
    directory: "stdin is a directory: give VALUE as an argument, or redirect stdin from a \
                file that holds the value (`< FILE`)",
};

/// Reads stdin to EOF, refusing (without buffering all of it) more than
/// `limit` bytes.
fn read_stdin_value(limit: usize) -> Result<Vec<u8>> {
    super::check_stdin(VALUE_STDIN)?;
    let mut value = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut value)
        .map_err(|e| Error::io("cannot read the value from stdin", e))?;
    if value.len() > limit {
        return Err(Error::invalid(format!(
            "the value on stdin is over the limit of {limit} bytes"
        )));
    }
    Ok(value)
}

/// The bytes left to read in stdin when it is a regular file (`< FILE`),
/// so that a streamed value can be sent with its length and a server
/// refuses one over its limit before it is sent.
fn stdin_file_size() -> Option<u64> {
    let stdin = std::io::stdin();
    let stat = rustix::fs::fstat(&stdin).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let at = rustix::fs::seek(&stdin, rustix::fs::SeekFrom::Current(0)).ok()?;
    u64::try_from(stat.st_size).ok()?.checked_sub(at)
}
