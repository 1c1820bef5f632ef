//! `kvr delete KEY`

use super::{arg_bytes, print_revision};
use crate::cli::DeleteArgs;
use crate::error::{Error, Result};
use crate::kv::Kv;

pub fn run(open: impl FnOnce() -> Result<Box<dyn Kv>>, args: DeleteArgs) -> anyhow::Result<()> {
    if args.if_revision == Some(0) {
        return Err(Error::invalid(
            "--if-revision 0 means \"absent\", and an absent key cannot be deleted; give the key's revision",
        )
        .into());
    }
    let key = arg_bytes(args.key);
    if key.is_empty() {
        crate::limits::check_key(&key, None)?;
    }
    let revision = open()?.delete(&key, args.if_revision)?;
    if args.json {
        print_revision(revision)?;
    }
    Ok(())
}
