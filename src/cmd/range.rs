//! `kvr range [START [END]]`: JSON lines, streamed from one snapshot.

use std::io::{BufWriter, Write};

use super::{arg_bytes, bound_arg};
use crate::cli::RangeArgs;
use crate::error::{Error, Result};
use crate::jsonl;
use crate::kv::Kv;
use crate::types::RangeQuery;

/// stdout buffer: large enough that a write syscall carries hundreds of lines.
const OUT_BUFFER_BYTES: usize = 256 << 10;

pub fn run(open: impl FnOnce() -> Result<Box<dyn Kv>>, args: RangeArgs) -> anyhow::Result<()> {
    let query = RangeQuery {
        start: bound_arg(args.start),
        end: bound_arg(args.end),
        prefix: args.prefix.map(arg_bytes),
        limit: args.limit,
        reverse: args.reverse,
        // A count needs no values: over --server they are not sent.
        keys_only: args.keys_only || args.count,
    };
    query.validate()?;
    let kv = open()?;
    if args.count {
        return print_count(&*kv, &query);
    }
    let mut out = BufWriter::with_capacity(OUT_BUFFER_BYTES, std::io::stdout().lock());
    kv.range(&query, &mut |key, entry| {
        jsonl::write_line(&mut out, key, entry)?;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(())
}

/// `--count`: visits the keys (keys only) and prints `{"count":n}`.
fn print_count(kv: &dyn Kv, query: &RangeQuery) -> anyhow::Result<()> {
    let mut count: u64 = 0;
    kv.range(query, &mut |_, _| {
        count += 1;
        Ok(true)
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{{\"count\":{count}}}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(())
}
