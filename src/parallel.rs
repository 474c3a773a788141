//! Independent jobs made side by side on the machine's cores, their results kept in the
//! jobs' order: what a run computes the same way whatever the number of cores.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads at most, however many cores: the work done side by side after the read takes tens
/// of milliseconds, and each thread holds its job's output (a rendered part, a piece of a
/// list) until the jobs of its batch are done.
const MOST: usize = 8;

/// How many jobs run at once: one per core the machine gives this process, up to [`MOST`].
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MOST))
}

/// `f` of each job, in the jobs' order, on up to [`threads`] threads (this one among them).
/// Each job is taken by the first thread free, so that a long job does not hold the others
/// back; with one job or one core, nothing is spawned, and with no thread to be had, this one
/// does every job.
pub(crate) fn map_in_order<T: Send, R: Send>(jobs: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = threads().min(jobs.len());
    if workers <= 1 {
        return jobs.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<(Option<T>, Option<R>)>> = (jobs.into_iter())
        .map(|job| Mutex::new((Some(job), None)))
        .collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
            let job = lock(slot).0.take();
            if let Some(job) = job {
                let result = f(job);
                lock(slot).1 = Some(result);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            // A thread the system refuses (a limit on tasks, no memory for a stack) is not
            // waited for: the jobs go to the threads there are, this one at least.
            let spawned = std::thread::Builder::new().spawn_scoped(scope, work);
            if spawned.is_err() {
                break;
            }
        }
        work();
    });
    (slots.into_iter())
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).1)
        .collect()
}

/// A slot's lock: a job that panicked leaves nothing half-written in it (the panic goes on
/// to the caller when the threads are joined). For any lock over one value set whole.
pub(crate) fn lock<S>(slot: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Side by side or one after another, the same results in the same order: the plain
        /// map is the reference.
        #[test]
        fn results_come_in_the_jobs_order(jobs in proptest::collection::vec(0u64..1_000_000, 0..64)) {
            let slow = |n: u64| {
                // Jobs of uneven length, so that threads finish out of order.
                let mut x = n;
                for _ in 0..(n % 997) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                (n, x)
            };
            let plain: Vec<_> = jobs.iter().map(|&n| slow(n)).collect();
            prop_assert_eq!(map_in_order(jobs, slow), plain);
        }
    }

    #[test]
    fn a_job_that_panics_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            map_in_order((0..8).collect(), |n: u32| {
                assert!(n != 5, "job 5 fails");
                n
            })
        });
        assert!(caught.is_err());
    }
}
