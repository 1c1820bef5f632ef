//! `kvr range [START [END]]`: JSON lines, streamed from one snapshot.

use std::io::{BufWriter, Write};

use super::arg_bytes;
use crate::cli::RangeArgs;
use crate::error::Error;
use crate::jsonl;
use crate::kv::Kv;
use crate::types::RangeQuery;

/// stdout buffer: large enough that a write syscall carries hundreds of lines.
const OUT_BUFFER_BYTES: usize = 256 << 10;

pub fn run(kv: &dyn Kv, args: RangeArgs) -> anyhow::Result<()> {
    let query = RangeQuery {
        start: args.start.map(arg_bytes),
        end: args.end.map(arg_bytes),
        prefix: args.prefix.map(arg_bytes),
        limit: args.limit,
        reverse: args.reverse,
        keys_only: args.keys_only,
    };
    query.validate()?;
    let mut out = BufWriter::with_capacity(OUT_BUFFER_BYTES, std::io::stdout().lock());
    kv.range(&query, &mut |key, entry| {
        jsonl::write_line(&mut out, key, entry)?;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(())
}
