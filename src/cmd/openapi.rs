//! `kvr openapi`: the OpenAPI document of the HTTP API, for offline use.
//! Opens no database.

use std::io::Write;

use crate::error::Error;

pub fn run() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(crate::openapi::DOCUMENT.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(())
}
