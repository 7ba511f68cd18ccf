//! A background thread that runs a task after a wait, again and again,
//! until it is stopped: `comet`'s flusher and retention threads and
//! `comet-embedded`'s optional helper. Waking it runs the task at once;
//! stopping it wakes it, and it ends without running the task again.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;

#[derive(Debug, Default)]
struct Shared {
    /// (stop, woken)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, (bool, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running background thread; [`Ticker::stop`] (or drop) ends it.
#[derive(Debug)]
pub struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts thread `name` (with a stack of `stack` bytes, or the default):
    /// it waits `first` (or until [woken](Ticker::wake)), then runs `task`,
    /// which returns how long to wait before it runs again, or `None` to
    /// end the thread.
    pub fn spawn(
        name: &'static str,
        stack: Option<usize>,
        first: Duration,
        mut task: impl FnMut() -> Option<Duration> + Send + 'static,
    ) -> Result<Ticker, Error> {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let mut builder = std::thread::Builder::new().name(name.into());
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes);
        }
        let thread = builder
            .spawn(move || {
                let mut wait = first;
                loop {
                    // `None`: a wait too long for the clock, until woken.
                    let deadline = Instant::now().checked_add(wait);
                    let mut g = s.state();
                    while !g.0 && !g.1 {
                        let left = match deadline {
                            Some(d) => d.saturating_duration_since(Instant::now()),
                            None => Duration::from_secs(3600),
                        };
                        if left.is_zero() {
                            break;
                        }
                        g = s.cv.wait_timeout(g, left).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
                    }
                    g.1 = false;
                    if g.0 {
                        return;
                    }
                    drop(g);
                    match task() {
                        Some(next) => wait = next,
                        None => return,
                    }
                }
            })
            .map_err(|source| Error::Spawn { thread: name, source })?;
        Ok(Ticker { shared, thread: Some(thread) })
    }

    /// Runs the task at once (after the run in progress, if any).
    pub fn wake(&self) {
        self.shared.state().1 = true;
        self.shared.cv.notify_one();
    }

    /// Ends the thread and waits for it, unless called from the thread
    /// itself (its task dropped what owns the ticker): then it ends after
    /// the task returns.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.state().0 = true;
        self.shared.cv.notify_one();
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn runs_after_each_wait_wakes_early_and_stops_promptly() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&runs);
        let t = Ticker::spawn("test-tick", Some(64 << 10), Duration::from_millis(1), move || {
            r.fetch_add(1, Ordering::SeqCst);
            Some(Duration::from_secs(3600))
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "never ran after its first wait");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The next wait is an hour: only a wake runs it again.
        t.wake();
        while runs.load(Ordering::SeqCst) == 1 {
            assert!(Instant::now() < deadline, "a wake did not run the task");
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        t.stop();
        assert!(start.elapsed() < Duration::from_secs(5), "stop waited for the hour");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "stopping does not run the task");
    }

    #[test]
    fn a_wait_too_long_for_the_clock_waits_for_a_wake_or_a_stop() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&runs);
        let t = Ticker::spawn("test-max", None, Duration::MAX, move || {
            r.fetch_add(1, Ordering::SeqCst);
            Some(Duration::MAX)
        })
        .unwrap();
        t.wake();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "a wake did not run the task");
            std::thread::sleep(Duration::from_millis(1));
        }
        t.stop();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_task_that_drops_its_own_ticker_ends_it_without_a_deadlock() {
        let slot: Arc<Mutex<Option<Ticker>>> = Arc::default();
        let s = Arc::clone(&slot);
        let done = Arc::new(AtomicU32::new(0));
        let d = Arc::clone(&done);
        let t = Ticker::spawn("test-self", None, Duration::ZERO, move || {
            if let Some(t) = s.lock().unwrap().take() {
                drop(t);
                d.store(1, Ordering::SeqCst);
            }
            Some(Duration::ZERO)
        })
        .unwrap();
        *slot.lock().unwrap() = Some(t);
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the task never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(slot.lock().unwrap().is_none());
    }
}
