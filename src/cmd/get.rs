//! `kvr get KEY`

use std::io::Write;

use super::arg_bytes;
use crate::cli::GetArgs;
use crate::error::{Error, Result};
use crate::jsonl::{self, show_key};
use crate::kv::Kv;

pub fn run(open: impl FnOnce() -> Result<Box<dyn Kv>>, args: GetArgs) -> anyhow::Result<()> {
    let key = arg_bytes(args.key);
    // An empty or over-long key is a usage error (exit 2) as for put, not
    // "not found".
    crate::limits::check_key(&key, None)?;
    let entry = open()?.get(&key)?.ok_or_else(|| Error::KeyNotFound {
        key: show_key(&key),
    })?;
    let mut out = std::io::stdout().lock();
    let written: Result<()> = if args.json {
        let item = crate::types::Item {
            value: &entry.value,
            revision: entry.revision,
            expires_at_ms: entry.expires_at_ms,
        };
        jsonl::write_line(&mut out, &key, Some(item))
    } else {
        out.write_all(&entry.value)
            .map_err(|e| Error::io("cannot write output", e))
    };
    written?;
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(())
}
