//! `kvr put KEY [VALUE]`

use std::io::{IsTerminal, Read, Write};

use super::{arg_bytes, print_revision};
use crate::cli::PutArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::limits::DEFAULT_MAX_VALUE_BYTES;

/// Checks the key and reads the value before opening the database, so a
/// rejected put creates no file and nobody waits for the lock while a value
/// is typed.
pub fn run(open: impl FnOnce() -> Result<Box<dyn Kv>>, args: PutArgs) -> anyhow::Result<()> {
    let key = arg_bytes(args.key);
    crate::limits::check_key(&key, None)?;
    let value = match args.value {
        Some(v) => arg_bytes(v),
        None => read_stdin_value()?,
    };
    let revision = open()?.put_ttl(&key, value, args.if_revision, args.ttl)?;
    if args.json {
        print_revision(revision)?;
    }
    Ok(())
}

/// Reads stdin to EOF, refusing (without buffering all of it) more than the
/// value limit.
fn read_stdin_value() -> Result<Vec<u8>> {
    if std::io::stdin().is_terminal() {
        // Otherwise a user who forgot VALUE sees a command that hangs.
        let _ = writeln!(
            std::io::stderr(),
            "kvr: reading the value from stdin until Ctrl-D (end of input)"
        );
    }
    let mut value = Vec::new();
    let limit = DEFAULT_MAX_VALUE_BYTES as u64 + 1;
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_end(&mut value)
        .map_err(|e| Error::io("cannot read the value from stdin", e))?;
    if value.len() > DEFAULT_MAX_VALUE_BYTES {
        return Err(Error::invalid(format!(
            "the value on stdin is over the limit of {DEFAULT_MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(value)
}
