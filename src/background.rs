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
//!
//! The flush runs as a batch thread instead ([`run_as_batch`]): at the
//! same share of the CPU, but it does not preempt a request thread when it
//! wakes (after each of its commits' syncs), and the scheduler takes it
//! for the CPU-bound thread it is.

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

/// Makes the calling thread a batch thread (`SCHED_BATCH`): the same share
/// of the CPU as the request threads (so a lock it holds is never held up
/// for long, unlike a nicer thread's), but it never preempts one when it
/// wakes up; the scheduler takes it for CPU-bound. Best effort, Linux only.
#[allow(unsafe_code)]
pub fn run_as_batch() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` for SCHED_BATCH (whose
        // priority must be 0), and pid 0 names the calling thread.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
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

    #[cfg(target_os = "linux")]
    #[test]
    #[allow(unsafe_code)]
    fn a_thread_runs_as_a_batch_thread_and_the_others_do_not() {
        // SAFETY: queries the calling thread's policy only.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        let inside = std::thread::spawn(move || {
            super::run_as_batch();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(inside, libc::SCHED_BATCH);
        // (Vacuous where the tests themselves run as batch threads.)
        assert_eq!(policy(), before);
    }
}
