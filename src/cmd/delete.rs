//! `kvr delete KEY`

use super::{arg_bytes, print_revision};
use crate::cli::DeleteArgs;
use crate::error::Error;
use crate::kv::Kv;

pub fn run(kv: &dyn Kv, args: DeleteArgs) -> anyhow::Result<()> {
    if args.if_revision == Some(0) {
        return Err(Error::invalid(
            "--if-revision 0 means \"absent\", and an absent key cannot be deleted; give the key's revision",
        )
        .into());
    }
    let revision = kv.delete(&arg_bytes(args.key), args.if_revision)?;
    if args.json {
        print_revision(revision)?;
    }
    Ok(())
}
