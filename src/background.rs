//! Background threads run nicer than the ones that answer requests.
//!
//! The access log (and, with `KVR_FLUSH_NICE`, the flush) does work no
//! request waits for. Where it competes for a core with the HTTP workers
//! and the writer, those should win: a request held by a worker that a
//! flush preempted waits a whole time slice. Linux gives each thread its
//! own nice value, so this lowers the calling thread's priority only
//! (RocksDB does the same for its compactions:
//! `Env::LowerThreadPoolCPUPriority`). Not the flush by default: a nice
//! thread holding a lock a request thread needs holds that thread up
//! until it gets a core again (`engine::flush::FLUSH_NICE`).

/// Makes the calling thread `by` nicer than it is (at most 19). Best
/// effort: where it fails the thread only competes harder.
pub fn run_nicer(by: i32) {
    if by <= 0 {
        return;
    }
    let me = Some(rustix::thread::gettid());
    if let Ok(now) = rustix::process::getpriority_process(me) {
        let _ = rustix::process::setpriority_process(me, (now + by).min(19));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_runs_nicer_and_the_others_do_not() {
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = nice();
        let inside = std::thread::spawn(move || {
            super::run_nicer(3);
            nice()
        })
        .join()
        .unwrap();
        assert_eq!(inside, (before + 3).min(19));
        assert_eq!(nice(), before);
    }
}
