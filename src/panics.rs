//! The storage engine's panics on a damaged file, turned into errors.
//!
//! redb panics (`unreachable!`, an index out of bounds) on some damaged
//! pages instead of returning an error: zeros over the page at 4096 of a
//! file made every command exit 101 with a Rust backtrace hint, `kvr
//! check` included. [`contain`] runs a step with a panic caught and
//! returned as its message, and the hook [`install`] sets keeps the default
//! report (`thread 'main' panicked at …`) off stderr for the storage
//! engine's panics it catches; every other panic is reported as before.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;

thread_local! {
    /// Whether [`contain`] runs on this thread (nested runs count).
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
    /// The last contained panic of this thread: message and place.
    static LAST: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// A panic [`contain`] caught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caught {
    /// Its message and where it was raised, `MESSAGE (at FILE:LINE)`.
    pub text: String,
    /// Raised in the storage engine (redb): the file it read is damaged,
    /// or redb has a bug; either way no kvr bug to report.
    pub in_storage_engine: bool,
}

impl Caught {
    /// The error a caught panic is reported as. The storage engine's says
    /// that `file` may be damaged and what tells (`check`: how to run
    /// `kvr check` on it where the caller is); a panic of kvr's own code
    /// is an internal error (its report is already on stderr).
    pub fn into_error(self, file: &Path, check: &str) -> Error {
        if !self.in_storage_engine {
            return Error::Internal(format!(
                "{} (a bug in kvr: please report it with the lines above)",
                self.text
            ));
        }
        Error::Storage(format!(
            "the storage engine (redb) stopped on an internal error: {}; {} may be damaged: \
             {check} tells; if it is, restore a backup",
            self.text,
            file.display()
        ))
    }

    /// [`Caught::into_error`] in a server, which holds `file`: the check
    /// runs with the server stopped.
    pub fn into_served_error(self, file: &Path) -> Error {
        let check = format!(
            "kvr --db {} check (with the server stopped)",
            file.display()
        );
        self.into_error(file, &check)
    }
}

/// Sets the panic hook (once, at start, before any thread): panics
/// [`contain`] catches are recorded for it instead of printed.
pub fn install() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if CONTAINING.get() == 0 {
            return default(info);
        }
        // `redb-4.6.0/src/…`, without the registry's path before it.
        let place = info
            .location()
            .map(|l| {
                let file = l.file();
                let short = file.find("redb-").map_or(file, |at| &file[at..]);
                format!(" (at {short}:{})", l.line())
            })
            .unwrap_or_default();
        let message = crate::error::panic_text(info.payload());
        let in_storage_engine = info
            .location()
            .is_some_and(|l| l.file().contains("/redb-") || l.file().starts_with("redb-"));
        // A kvr bug is reported as ever, with its backtrace hint.
        if !in_storage_engine {
            default(info);
        }
        LAST.set(Some(Caught {
            text: format!("{message}{place}"),
            in_storage_engine,
        }));
    }));
}

/// Runs `step`; a panic in it is returned as what was caught.
pub fn contain<T>(step: impl FnOnce() -> T) -> Result<T, Caught> {
    CONTAINING.set(CONTAINING.get() + 1);
    let result = panic::catch_unwind(AssertUnwindSafe(step));
    CONTAINING.set(CONTAINING.get() - 1);
    result.map_err(|payload| {
        // Without the hook (a library user, a test) only the message is known.
        LAST.take().unwrap_or_else(|| Caught {
            text: crate::error::panic_text(&*payload),
            in_storage_engine: false,
        })
    })
}

pin_project_lite::pin_project! {
    /// A future whose polls run under [`contain`]: see [`contain_async`].
    pub struct Contained<F> {
        #[pin]
        future: F,
    }
}

/// Runs `future`; a panic in any of its polls is returned as what was
/// caught (the future is not polled again). For a server's request: a
/// damaged page met by a read is that request's error, not a dropped
/// connection and a backtrace in the log. (A struct, not an `async fn`:
/// the future stays where it is, not moved into a second one.)
pub fn contain_async<F: Future>(future: F) -> Contained<F> {
    Contained { future }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, Caught>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match contain(|| future.poll(cx)) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(caught) => Poll::Ready(Err(caught)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_returned_with_its_message() {
        let caught = contain(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert!(caught.text.starts_with("boom 7"), "{caught:?}");
        assert!(!caught.in_storage_engine);
        assert_eq!(contain(|| 5), Ok(5));
    }
}
