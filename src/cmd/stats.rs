//! `kvr stats`

use crate::error::Error;
use crate::kv::Kv;

pub fn run(kv: &dyn Kv) -> anyhow::Result<()> {
    let stats = kv.stats()?;
    let text = serde_json::to_string(&stats).map_err(|e| Error::Storage(e.to_string()))?;
    super::print_out(format!("{text}\n"))?;
    Ok(())
}
