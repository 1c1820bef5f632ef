//! `kvr completions SHELL`

use crate::cli::{CompletionsArgs, command};

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    clap_complete::generate(
        args.shell,
        &mut command(),
        "kvr",
        &mut std::io::stdout().lock(),
    );
    Ok(())
}
