//! Ends the process when work that nothing can stop from outside runs past its time: a
//! template's render, which Tera gives no way to interrupt. An operator's template with one
//! loop inside another over large ranges renders for hours, its output growing in memory, and
//! a run that never ends holds the lock: every later run gives way to it, and no report goes
//! out while cron says nothing. Watched work past its patience ends the process with a
//! configuration error (78) that names it; what the run recorded before stays, as after a
//! kill (the state is made to survive one).

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::parallel::lock;

/// Work being watched: what to say if it runs past `until`.
struct Watched {
    id: u64,
    until: Instant,
    said: String,
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

/// Watches the work that follows until the returned [`Watch`] is dropped: past `patience`,
/// the process says `said()` on stderr and ends with the configuration error's status.
pub(crate) fn watch(patience: Duration, said: impl FnOnce() -> String) -> Watch {
    let Some(dog) = DOG.get_or_init(start) else {
        return Watch(None);
    };
    let mut held = lock(&dog.watched);
    let id = held.0;
    held.0 += 1;
    held.1.push(Watched {
        id,
        until: Instant::now() + patience,
        said: said(),
    });
    dog.wake.notify_one();
    Watch(Some(id))
}

impl Drop for Watch {
    fn drop(&mut self) {
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

/// Sleeps until the earliest time watched work must end by, and ends the process if it has
/// not.
fn keep(dog: &'static Dog) {
    let mut held = lock(&dog.watched);
    loop {
        let now = Instant::now();
        if let Some(late) = held.1.iter().find(|w| w.until <= now) {
            crate::output::tell(format_args!("abuse-mailer: {}", late.said));
            std::process::exit(i32::from(crate::error::EXIT_CONFIG));
        }
        held = match held.1.iter().map(|w| w.until).min() {
            Some(until) => {
                (dog.wake.wait_timeout(held, until - now))
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
