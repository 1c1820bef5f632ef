pub fn run(_g: &crate::cli::Global, _a: crate::cli::BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
