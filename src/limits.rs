//! The size limits of SPEC "Data model", checked on every path.

use crate::error::{Error, Result};
use crate::jsonl::show_key;

/// Longest key, in bytes. Keys live in redb's branch pages, where long keys
/// cost fan-out; 4 KiB matches etcd's practical advice and one page.
pub const MAX_KEY_BYTES: usize = 4096;

/// Default longest value, in bytes (`serve --max-value-bytes` changes the
/// server's). 16 MiB keeps one value well inside a single batch request and
/// a record inside redb's limits.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 << 20;

/// Longest `?progress=` a watch may ask for: a day. Clients asking for a
/// third of a longer `--timeout` ask for this instead.
pub const MAX_WATCH_PROGRESS_SECS: u64 = 86_400;

/// Checks a key's length (1 to [`MAX_KEY_BYTES`]).
pub fn check_key(key: &[u8], line: Option<u64>) -> Result<()> {
    if key.is_empty() {
        return Err(Error::Invalid {
            line,
            message: "empty key: a key is 1 to 4096 bytes".to_string(),
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Invalid {
            line,
            message: format!(
                "key of {} bytes is over the limit of {MAX_KEY_BYTES} bytes",
                key.len()
            ),
        });
    }
    Ok(())
}

/// Checks a value's length against `max` (see [`DEFAULT_MAX_VALUE_BYTES`]).
pub fn check_value(key: &[u8], len: usize, max: usize, line: Option<u64>) -> Result<()> {
    if len > max {
        return Err(Error::Invalid {
            line,
            message: format!(
                "value of {len} bytes for key {} is over the limit of {max} bytes",
                show_key(key)
            ),
        });
    }
    Ok(())
}
