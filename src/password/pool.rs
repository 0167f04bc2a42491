//! The threads password hashing runs on ([`HashingThreads`]): by default threads of the
//! hasher's own, scheduled below everything else in the process, so that a flood of logins
//! cannot starve the async runtime that serves every other request.
//!
//! ```
//! use tower_jwt_auth::password::HashingThreads;
//! use tower_jwt_auth::password::PasswordHasher;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The default: a thread per permit, started on first use, at idle priority on Linux.
//! let hasher = PasswordHasher::builder()
//!     .params(1024, 1, 1)? // test parameters; keep the defaults in production
//!     .threads(HashingThreads::IdlePriority)
//!     .build()?;
//! let hash = hasher.hash("correct horse battery staple").await?;
//! assert!(hasher.verify("correct horse battery staple", &hash).await?.is_match());
//!
//! // Tokio's blocking pool instead, at the priority of the rest of the process.
//! let on_tokio = PasswordHasher::builder()
//!     .params(1024, 1, 1)?
//!     .threads(HashingThreads::BlockingPool)
//!     .build()?;
//! assert!(on_tokio.verify("correct horse battery staple", &hash).await?.is_match());
//! # Ok(()) }
//! ```
//!
//! Why idle priority: argon2 is memory-hard CPU work of tens of milliseconds per call. With as
//! many hashing threads busy as the machine has cores, a request that needs a few microseconds
//! of CPU waits for the OS scheduler to take a core away from a hash, which under Linux's
//! EEVDF scheduler can mean a full time slice (milliseconds). A `SCHED_IDLE` thread is
//! preempted at once by any ordinary thread that wakes, so the runtime keeps its latency while
//! the hashes use whatever CPU is left. The load test (`examples/loadgen`) measured both.
//!
//! The cost: hashes only progress when nothing else in the machine wants the CPU. Under a
//! sustained full load from other work, logins slow down (and, past the hasher's queue, get
//! 503 with `Retry-After`) rather than the rest of the service. A service whose main job is
//! logins and that shares its machine with other busy processes may prefer
//! [`HashingThreads::NormalPriority`].

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Where [`PasswordHasher`](crate::password::PasswordHasher) runs argon2 (and bcrypt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashingThreads {
    /// Threads of the hasher's own, one per concurrent hash, started on first use and ended
    /// when the last clone of the hasher is dropped; on Linux they run under the `SCHED_IDLE`
    /// policy, so any other thread that becomes runnable takes the CPU from them at once. The
    /// default. Elsewhere they run at normal priority.
    #[default]
    IdlePriority,
    /// Threads of the hasher's own, at the priority of the rest of the process.
    NormalPriority,
    /// Tokio's blocking pool (`spawn_blocking`), shared with the application's blocking work.
    BlockingPool,
}

/// A unit of hashing work; it sends its own result.
pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The hasher's own threads, started on first use.
pub(super) struct Pool {
    threads: usize,
    idle: bool,
    /// `None` once starting the threads failed (the error was logged; every call then fails).
    jobs: OnceLock<Option<Sender<Job>>>,
}

impl Pool {
    pub(super) fn new(threads: usize, idle: bool) -> Self {
        Self {
            threads,
            idle,
            jobs: OnceLock::new(),
        }
    }

    /// Hands `job` to a thread of the pool. The caller holds one of as many permits as the pool
    /// has threads, so a job never waits here for a thread. `Err` when the threads could not be
    /// started.
    pub(super) fn run(&self, job: Job) -> Result<(), ()> {
        let jobs = self.jobs.get_or_init(|| self.start());
        match jobs {
            Some(jobs) => jobs.send(job).map_err(|_| ()),
            None => Err(()),
        }
    }

    fn start(&self) -> Option<Sender<Job>> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..self.threads {
            let receiver = Arc::clone(&receiver);
            let idle = self.idle;
            let started = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || serve(&receiver, idle));
            if let Err(error) = started {
                tracing::error!(
                    target: crate::telemetry::TARGET_PASSWORD,
                    %error,
                    "could not start a password hashing thread; logins fail until restart"
                );
                // The threads already started end when the sender is dropped here.
                return None;
            }
        }
        Some(sender)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .field("idle", &self.idle)
            .field("started", &self.jobs.get().is_some())
            .finish()
    }
}

/// A pool thread: runs jobs until the hasher, and with it the sender, is gone.
fn serve(jobs: &Mutex<Receiver<Job>>, idle: bool) {
    if idle {
        lower_priority();
    }
    loop {
        // The lock is held while waiting, so the waiting threads queue on the mutex instead
        // of on the channel; either way exactly one takes each job.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // A panic in a job (none is known in argon2 or bcrypt) must not end the thread: its
        // result sender is dropped with it, so the caller sees an internal error.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!(
                target: crate::telemetry::TARGET_PASSWORD,
                "password hashing panicked"
            );
        }
    }
}

/// Puts the calling thread under `SCHED_IDLE`. Lowering one's own priority needs no
/// privilege; should it fail all the same, the thread hashes at normal priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let lowered = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if let Err(error) = lowered {
        tracing::warn!(
            target: crate::telemetry::TARGET_PASSWORD,
            ?error,
            "could not give a password hashing thread idle priority; it hashes at normal priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduling policy of a thread of this process (field 41 of its `stat`).
    #[cfg(target_os = "linux")]
    fn policy_of(tid: &str) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The command name, in parentheses, may hold spaces: count fields after it.
        let after = &stat[stat.rfind(')')? + 2..];
        after.split(' ').nth(38)?.parse().ok()
    }

    #[cfg(target_os = "linux")]
    fn threads_named(prefix: &str) -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|entry| {
                let tid = entry.ok()?.file_name().into_string().ok()?;
                let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
                comm.trim().starts_with(prefix).then_some(tid)
            })
            .collect()
    }

    fn run_and_wait(pool: &Pool, job: impl FnOnce() -> u64 + Send + 'static) -> Option<u64> {
        let (sender, receiver) = mpsc::channel();
        pool.run(Box::new(move || {
            let _ = sender.send(job());
        }))
        .ok()?;
        receiver.recv().ok()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_threads_run_under_sched_idle_and_end_with_the_pool() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        // Other tests' pools may run at the same time in this process: tell them apart by the
        // thread each job reports.
        let tid = || {
            std::fs::read_link("/proc/thread-self")
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        let idle = Pool::new(2, true);
        let normal = Pool::new(1, false);
        let idle_tid = run_and_wait(&idle, move || tid().parse().unwrap()).unwrap();
        let normal_tid = run_and_wait(&normal, move || tid().parse().unwrap()).unwrap();
        assert_eq!(policy_of(&idle_tid.to_string()), Some(SCHED_IDLE));
        assert_eq!(policy_of(&normal_tid.to_string()), Some(SCHED_OTHER));
        assert!(threads_named("password-hash-").contains(&idle_tid.to_string()));

        // Dropping the pool ends its threads once they see the channel closed.
        drop(idle);
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            policy_of(&idle_tid.to_string()).is_none()
        });
        assert!(gone, "thread {idle_tid} outlived its pool");
    }

    #[test]
    fn a_panicking_job_leaves_the_thread_serving() {
        let pool = Pool::new(1, false);
        let (sender, receiver) = mpsc::channel::<u64>();
        pool.run(Box::new(move || {
            let _keep = sender;
            panic!("a job panicked");
        }))
        .unwrap();
        // The result channel closes without a value: the caller's view of the panic.
        assert!(receiver.recv().is_err());
        assert_eq!(run_and_wait(&pool, || 7), Some(7));
    }

    #[test]
    fn threads_start_on_first_use() {
        let pool = Pool::new(3, true);
        assert!(pool.jobs.get().is_none());
        assert_eq!(run_and_wait(&pool, || 1), Some(1));
        assert!(pool.jobs.get().is_some_and(Option::is_some));
    }
}
