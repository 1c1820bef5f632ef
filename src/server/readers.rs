//! Fixed sets of threads that run the server's reads of the store, off
//! the async workers: pages (of a range, of a watcher's stored history,
//! stats) and the chunks of streams. Jobs wait in a queue for a thread
//! (holding no thread while they wait), so a thousand clients asking at
//! once cost a thousand queued jobs, not a thousand threads.
//!
//! A few threads, not tokio's blocking pool (up to 512 threads): each
//! read holds its thread, its page and what the allocator keeps for that
//! thread, and a thread's allocator takes back what others freed only
//! when it allocates again. A few busy threads reuse that memory. On the
//! blocking pool, 200 clients asking at once for range pages of 64 KiB
//! values took 3.7 GB past a 64 MiB budget, 700 watchers that read
//! nothing, falling behind into the stored history, took 239 threads and
//! 1.9 GB, and a parked thread per stream kept ~4.4 MB of freed chunks
//! each (found by audits).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

/// A read to run on one of the threads.
pub type Job = Box<dyn FnOnce() + Send>;

/// A set of reader threads, started on first use.
pub struct Readers {
    name: &'static str,
    /// How many: two per core (at least four) when `None`.
    threads: Option<usize>,
    sender: OnceLock<Mutex<Sender<Job>>>,
}

impl Readers {
    /// Two threads per core (a read may wait for the disk), at least
    /// four, named `name-N` (at most 15 bytes with N, for `top -H`).
    pub const fn new(name: &'static str) -> Readers {
        Readers {
            name,
            threads: None,
            sender: OnceLock::new(),
        }
    }

    /// `threads` threads named `name-N`.
    pub const fn with_threads(name: &'static str, threads: usize) -> Readers {
        Readers {
            name,
            threads: Some(threads),
            sender: OnceLock::new(),
        }
    }

    /// Queues `job` for the next free thread. Sent to threads that live as
    /// long as the process: with none (none could start), the job is
    /// dropped, and whoever waits for its answer is told it did not run.
    pub fn run(&self, job: Job) {
        let sender = self.sender.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads.unwrap_or_else(two_per_core) {
                let rx = rx.clone();
                // A reader that cannot start leaves the others.
                let _ = std::thread::Builder::new()
                    .name(format!("{}-{i}", self.name))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(poisoned) => poisoned.into_inner().recv(),
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
            }
            Mutex::new(tx)
        });
        let _ = sender.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    }
}

fn two_per_core() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (2 * cores).max(4)
}
