//! Ends the process when work that nothing can stop from outside runs past its time: a
//! template's render, which Tera gives no way to interrupt. An operator's template with one
//! loop inside another over large ranges renders for hours, its output growing in memory, and
//! a run that never ends holds the lock: every later run gives way to it, and no report goes
//! out while cron says nothing. Watched work past its patience (the time its thread worked,
//! not the time the process was stopped or waited) ends the process with a configuration
//! error (78) that names it; what the run recorded before stays, as after a kill (the state
//! is made to survive one). Nothing here bounds the memory such work takes meanwhile (a
//! template's text is bounded where it is rendered). Work is watched only where nothing is
//! being sent or recorded: a message the server accepted is recorded before any render that
//! could end the process.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::parallel::lock;

/// Work being watched: what to say if it works past its patience.
struct Watched {
    id: u64,
    spent: Spent,
    patience: Duration,
    said: String,
}

/// How the time watched work spent is told.
enum Spent {
    /// The working thread's own processor time, from what it was when the watch began: a
    /// process stopped (`SIGSTOP`, a virtual machine paused) or waiting on a disk spends
    /// none, and is not taken for work that never ends.
    #[cfg(target_os = "linux")]
    Working(libc::clockid_t, Duration),
    /// Time on the clock, where a thread's own time cannot be read.
    Waited(Instant),
}

impl Spent {
    /// The time watched so far from the calling thread.
    fn begin() -> Spent {
        #[cfg(target_os = "linux")]
        {
            let mut clock: libc::clockid_t = 0;
            // SAFETY: the calling thread's handle is valid while it runs, and `clock` is a
            // place of the type the call writes.
            let found = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
            if found == 0
                && let Some(now) = thread_time(clock)
            {
                return Spent::Working(clock, now);
            }
        }
        Spent::Waited(Instant::now())
    }

    /// The time spent so far; `None` if it cannot be read.
    fn so_far(&self) -> Option<Duration> {
        match self {
            #[cfg(target_os = "linux")]
            Spent::Working(clock, from) => thread_time(*clock).map(|t| t.saturating_sub(*from)),
            Spent::Waited(from) => Some(from.elapsed()),
        }
    }
}

/// The processor time a thread of this process has used, by its clock.
#[cfg(target_os = "linux")]
fn thread_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut at = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `at` is a place of the type the call writes; a clock that is no longer valid
    // (its thread gone) is an error, not a fault.
    let read = unsafe { libc::clock_gettime(clock, &mut at) };
    let secs = u64::try_from(at.tv_sec).ok()?;
    let nanos = u32::try_from(at.tv_nsec).ok()?;
    (read == 0).then(|| Duration::new(secs, nanos))
}

/// The watched work, and the watchdog's wake-up call.
struct Dog {
    /// The next id, and the work watched now.
    watched: Mutex<(u64, Vec<Watched>)>,
    wake: Condvar,
}

/// The one watchdog, started with the first watch; `None` when its thread could not be
/// started (work then goes unwatched, as before there was one).
static DOG: OnceLock<Option<&'static Dog>> = OnceLock::new();

/// A watch on work under way, ended when dropped.
pub(crate) struct Watch(Option<u64>);

/// Watches the work the calling thread does until the returned [`Watch`] is dropped: once it
/// has worked for `patience`, the process says `said()` on stderr and ends with the
/// configuration error's status.
pub(crate) fn watch(patience: Duration, said: impl FnOnce() -> String) -> Watch {
    let Some(dog) = DOG.get_or_init(start) else {
        return Watch(None);
    };
    let spent = Spent::begin();
    let mut held = lock(&dog.watched);
    let id = held.0;
    held.0 += 1;
    held.1.push(Watched {
        id,
        spent,
        patience,
        said: said(),
    });
    dog.wake.notify_one();
    Watch(Some(id))
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Under the lock the watchdog reads a thread's time by: the thread is there.
        if let (Some(id), Some(Some(dog))) = (self.0, DOG.get()) {
            lock(&dog.watched).1.retain(|w| w.id != id);
        }
    }
}

/// Starts the watchdog's thread.
fn start() -> Option<&'static Dog> {
    let dog: &'static Dog = Box::leak(Box::new(Dog {
        watched: Mutex::new((0, Vec::new())),
        wake: Condvar::new(),
    }));
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || keep(dog))
        .ok()
        .map(|_| dog)
}

/// Sleeps until the earliest time watched work could have worked its patience (no thread
/// works faster than the clock), and ends the process if it has.
fn keep(dog: &'static Dog) {
    let mut held = lock(&dog.watched);
    loop {
        let mut sleep: Option<Duration> = None;
        for w in &held.1 {
            let spent = w.spent.so_far().unwrap_or_default();
            if spent >= w.patience {
                crate::output::tell(format_args!("abuse-mailer: {}", w.said));
                std::process::exit(i32::from(crate::error::EXIT_CONFIG));
            }
            let left = w.patience - spent;
            sleep = Some(sleep.map_or(left, |s| s.min(left)));
        }
        held = match sleep {
            Some(left) => {
                (dog.wake.wait_timeout(held, left))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => dog.wake.wait(held).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time a watched thread does not work (stopped, paused, waiting) is not counted: a
    /// machine paused for longer than the patience did not find a template that never ends.
    #[test]
    #[cfg(target_os = "linux")]
    fn time_a_thread_does_not_work_is_not_counted() {
        let spent = Spent::begin();
        assert!(matches!(spent, Spent::Working(..)));
        std::thread::sleep(Duration::from_millis(300));
        let idle = spent.so_far().unwrap();
        assert!(idle < Duration::from_millis(100), "{idle:?}");
        // Work is counted: the time moves while the thread works (however slowly, on a busy
        // machine).
        let from = Instant::now();
        while spent.so_far().unwrap() < idle + Duration::from_millis(50) {
            assert!(from.elapsed() < Duration::from_secs(60), "no work counted");
        }
    }

    /// Work that ends in time leaves nothing watched, however many watches ran at once.
    #[test]
    fn work_done_in_time_is_watched_no_more() {
        let watches: Vec<Watch> = (0..3)
            .map(|i| watch(Duration::from_secs(3600), || format!("work {i}")))
            .collect();
        let dog = DOG.get().copied().flatten().expect("a watchdog");
        assert!(lock(&dog.watched).1.len() >= 3);
        let ids: Vec<u64> = watches.iter().filter_map(|w| w.0).collect();
        drop(watches);
        assert!(!(lock(&dog.watched).1.iter()).any(|w| ids.contains(&w.id)));
    }
}
