//! Sources for the tests that need more than one handle on a store, or a
//! source that fails the way a dead server does.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::{Kv, LocalKv, Visit};
use crate::types::{Applied, Entry, RangeQuery, Stats};

/// The real local store, shared with the test so that it can write "as
/// someone else" while the browser has the store open.
pub struct Shared(pub Arc<LocalKv>);

impl Kv for Shared {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.0.get(key)
    }
    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        self.0.put(key, value, if_revision)
    }
    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        self.0.delete(key, if_revision)
    }
    fn batch(&self, input: crate::kv::BatchInput) -> Result<Applied> {
        self.0.batch(input)
    }
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        self.0.range(query, visit)
    }
    fn stats(&self) -> Result<Stats> {
        self.0.stats()
    }
    fn source(&self) -> String {
        self.0.source()
    }
}

/// A server that stopped answering: every call waits `delay`, then fails
/// the way the HTTP client reports an unreachable server.
pub struct Down {
    pub delay: Duration,
}

impl Down {
    fn fail<T>(&self) -> Result<T> {
        std::thread::sleep(self.delay);
        Err(Error::Unavailable {
            message: "cannot reach http://127.0.0.1:9: connection refused".into(),
            overloaded: false,
        })
    }
}

impl Kv for Down {
    fn get(&self, _: &[u8]) -> Result<Option<Entry>> {
        self.fail()
    }
    fn put(&self, _: &[u8], _: Vec<u8>, _: Option<u64>) -> Result<u64> {
        self.fail()
    }
    fn delete(&self, _: &[u8], _: Option<u64>) -> Result<u64> {
        self.fail()
    }
    fn batch(&self, _: crate::kv::BatchInput) -> Result<Applied> {
        self.fail()
    }
    fn range(&self, _: &RangeQuery, _: &mut Visit<'_>) -> Result<()> {
        self.fail()
    }
    fn stats(&self) -> Result<Stats> {
        self.fail()
    }
    fn source(&self) -> String {
        "http://127.0.0.1:9".into()
    }
}

/// A source with a bug: reading a value panics.
pub struct Buggy(pub LocalKv);

impl Kv for Buggy {
    fn get(&self, _: &[u8]) -> Result<Option<Entry>> {
        panic!("bug in get")
    }
    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        self.0.put(key, value, if_revision)
    }
    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        self.0.delete(key, if_revision)
    }
    fn batch(&self, input: crate::kv::BatchInput) -> Result<Applied> {
        self.0.batch(input)
    }
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        self.0.range(query, visit)
    }
    fn stats(&self) -> Result<Stats> {
        self.0.stats()
    }
    fn source(&self) -> String {
        self.0.source()
    }
}

/// A store that reads but cannot write, as a server that went away
/// between reading a value and saving it.
pub struct NoWrites(pub LocalKv);

impl NoWrites {
    fn fail<T>(&self) -> Result<T> {
        Err(Error::Unavailable {
            message: "cannot reach http://127.0.0.1:9: connection refused".into(),
            overloaded: false,
        })
    }
}

impl Kv for NoWrites {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.0.get(key)
    }
    fn put(&self, _: &[u8], _: Vec<u8>, _: Option<u64>) -> Result<u64> {
        self.fail()
    }
    fn delete(&self, _: &[u8], _: Option<u64>) -> Result<u64> {
        self.fail()
    }
    fn batch(&self, _: crate::kv::BatchInput) -> Result<Applied> {
        self.fail()
    }
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        self.0.range(query, visit)
    }
    fn stats(&self) -> Result<Stats> {
        self.0.stats()
    }
    fn source(&self) -> String {
        self.0.source()
    }
}

/// The real store, until the flag is set: then every call fails as an
/// unreachable server's do.
pub struct Switch(pub LocalKv, pub Arc<std::sync::atomic::AtomicBool>);

impl Switch {
    fn up(&self) -> Result<()> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable {
                message: "cannot reach http://127.0.0.1:9: connection refused".into(),
                overloaded: false,
            });
        }
        Ok(())
    }
}

impl Kv for Switch {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.up()?;
        self.0.get(key)
    }
    fn put(&self, key: &[u8], value: Vec<u8>, if_revision: Option<u64>) -> Result<u64> {
        self.up()?;
        self.0.put(key, value, if_revision)
    }
    fn delete(&self, key: &[u8], if_revision: Option<u64>) -> Result<u64> {
        self.up()?;
        self.0.delete(key, if_revision)
    }
    fn batch(&self, input: crate::kv::BatchInput) -> Result<Applied> {
        self.up()?;
        self.0.batch(input)
    }
    fn range(&self, query: &RangeQuery, visit: &mut Visit<'_>) -> Result<()> {
        self.up()?;
        self.0.range(query, visit)
    }
    fn stats(&self) -> Result<Stats> {
        self.up()?;
        self.0.stats()
    }
    fn source(&self) -> String {
        self.0.source()
    }
}
