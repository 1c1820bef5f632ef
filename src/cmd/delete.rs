//! `kvr delete KEY`, `kvr delete --prefix P`, `kvr delete --range START END`

use super::{arg_bytes, bound_arg, print_revision};
use crate::cli::DeleteArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::types::RangeQuery;

/// `open` opens the data source, for a delete of this key at this
/// condition when given (it may refuse that delete first,
/// `cmd::refused_by_file`).
pub fn run(
    open: impl FnOnce(Option<(&[u8], Option<u64>)>) -> Result<Box<dyn Kv>>,
    args: DeleteArgs,
) -> anyhow::Result<()> {
    let Some(key) = args.key else {
        return delete_range(|| open(None), args.prefix, args.range, args.json);
    };
    if args.if_revision == Some(0) {
        return Err(Error::invalid(
            "--if-revision 0 means \"absent\", and an absent key cannot be deleted; give the key's revision",
        )
        .into());
    }
    let key = arg_bytes(key);
    // As `get` and `put` check it, and a server does (SPEC: key limits hold
    // on every path).
    crate::limits::check_key(&key, None)?;
    let revision = open(Some((&key, args.if_revision)))?.delete(&key, args.if_revision)?;
    if args.json {
        print_revision(revision, "delete")?;
    }
    Ok(())
}

fn delete_range(
    open: impl FnOnce() -> Result<Box<dyn Kv>>,
    prefix: Option<std::ffi::OsString>,
    range: Option<Vec<std::ffi::OsString>>,
    json: bool,
) -> anyhow::Result<()> {
    let mut query = RangeQuery {
        prefix: prefix.map(arg_bytes),
        ..RangeQuery::default()
    };
    if let Some(mut bounds) = range {
        query.end = bound_arg(bounds.pop());
        query.start = bound_arg(bounds.pop());
        if query.start.is_none() && query.end.is_none() {
            // Never "delete everything" by two empty variables.
            return Err(Error::invalid(
                "delete --range needs a non-empty START or END (delete --prefix '' deletes \
                 every key)",
            )
            .into());
        }
    }
    query.validate()?;
    let applied = open()?.delete_range(&query)?;
    if json {
        let line = serde_json::json!({"deleted": applied.deletes, "revision": applied.revision});
        super::print_after_write(
            format!("{line}\n"),
            &format!(
                "the range delete was applied ({} keys deleted, revision {})",
                applied.deletes, applied.revision
            ),
        )?;
    }
    Ok(())
}
