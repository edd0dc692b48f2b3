//! The evaluation pool: a few low-priority threads where decisions that may be expensive are
//! evaluated, so that they never hold the runtime threads that answer every other request.
//!
//! The decision module sends a decision here when its tenant's conditions may cost more than a
//! cheap decision does (see `decision::INLINE_COST`) or when it may walk the relation index.
//! At most one job per thread runs at a time; others wait asynchronously for a thread, up to
//! [`QUEUE_WAIT`], and are then refused (the caller denies). The threads run at the lowest
//! scheduling priority of the normal class, so on a saturated machine they take only the time
//! the runtime does not need: an expensive tenant slows its own decisions, not the others'.
//!
//! This module only runs closures; it knows nothing about policies or requests.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

/// How long a job waits for a free thread before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every thread stayed busy for [`QUEUE_WAIT`].
    #[error(
        "every evaluation thread stayed busy for {} s; the decision was not evaluated",
        QUEUE_WAIT.as_secs()
    )]
    Busy,
    /// The pool is shutting down or a thread failed.
    #[error("the evaluation pool is not running")]
    Stopped,
}

/// A pool of evaluation threads.
pub struct EvaluationPool {
    jobs: Mutex<Option<Sender<Job>>>,
    free: Semaphore,
    threads: usize,
}

impl std::fmt::Debug for EvaluationPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvaluationPool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl EvaluationPool {
    /// Starts `threads` threads (at least one).
    pub fn start(threads: usize) -> Result<EvaluationPool, std::io::Error> {
        let threads = threads.max(1);
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("portcullis-eval-{index}"))
                .spawn(move || work(&receiver))?;
        }
        Ok(EvaluationPool {
            jobs: Mutex::new(Some(sender)),
            free: Semaphore::new(threads),
            threads,
        })
    }

    /// Runs `job` on a pool thread and returns its result, waiting (asynchronously) for a free
    /// thread up to [`QUEUE_WAIT`].
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _free = tokio::time::timeout(QUEUE_WAIT, self.free.acquire())
            .await
            .map_err(|_| PoolError::Busy)?
            .map_err(|_| PoolError::Stopped)?;
        let (sender, receiver) = oneshot::channel();
        let boxed: Job = Box::new(move || {
            let _ = sender.send(job());
        });
        {
            let jobs = self.jobs.lock().map_err(|_| PoolError::Stopped)?;
            let jobs = jobs.as_ref().ok_or(PoolError::Stopped)?;
            jobs.send(boxed).map_err(|_| PoolError::Stopped)?;
        }
        receiver.await.map_err(|_| PoolError::Stopped)
    }

    /// Lets the threads finish what they hold and end.
    pub fn stop(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            // A job that panics loses only its own answer (its caller is told the pool
            // stopped and denies); the thread goes on.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Lowers the calling thread to the lowest priority of the normal scheduling class (nice 19,
/// batch): it still runs on a busy machine, but after everything of normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        if let Err(error) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        ) {
            tracing::debug!(?error, "cannot lower the evaluation thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_off_the_runtime_and_answer() {
        let pool = EvaluationPool::start(2).unwrap();
        let caller = std::thread::current().id();
        let (ran_on, answer) = pool
            .run(|| (std::thread::current().id(), 6 * 7))
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(answer, 42);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_job_does_not_block_the_runtime() {
        let pool = Arc::new(EvaluationPool::start(1).unwrap());
        let slow = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(|| std::thread::sleep(Duration::from_millis(300)))
                    .await
            })
        };
        // The runtime's only thread keeps running other tasks meanwhile.
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_millis(200));
        slow.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stopped_pool_refuses() {
        let pool = EvaluationPool::start(1).unwrap();
        pool.stop();
        assert_eq!(pool.run(|| 1).await, Err(PoolError::Stopped));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_job_loses_only_its_answer() {
        let pool = EvaluationPool::start(1).unwrap();
        #[allow(clippy::panic, reason = "the panic is what is tested")]
        let failed = pool.run(|| -> u32 { panic!("boom") }).await;
        assert_eq!(failed, Err(PoolError::Stopped));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
