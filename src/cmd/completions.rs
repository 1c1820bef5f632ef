//! `kvr completions SHELL`

use crate::cli::{CompletionsArgs, command};

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    // Generated into memory first: `generate` panics on a failed write
    // (`kvr completions bash | head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "kvr", &mut script);
    super::print_out(script)?;
    Ok(())
}
