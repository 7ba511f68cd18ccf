//! The optional helper thread: calls [`Log::tick`] periodically for
//! applications without a main loop. Nothing starts it implicitly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::log::Log;
use comet_linux::Error;

/// A running helper thread; [`Helper::stop`] (or drop) ends it.
#[derive(Debug)]
pub struct Helper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a thread that locks `log` every `period` and calls
/// [`Log::tick`] with the current time. Tick errors are passed to
/// `on_error` (the thread keeps running).
pub fn spawn_helper(
    log: Arc<Mutex<Log>>,
    period: Duration,
    mut on_error: impl FnMut(Error) + Send + 'static,
) -> Result<Helper, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("comet-tick".into())
        .stack_size(64 << 10)
        .spawn(move || {
            while !flag.load(Ordering::Acquire) {
                std::thread::park_timeout(period);
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let mut l = log.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = l.tick(crate::now_ns()) {
                    on_error(e);
                }
            }
        })
        .map_err(|source| Error::Spawn { thread: "comet-tick", source })?;
    Ok(Helper { stop, thread: Some(thread) })
}

impl Helper {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.halt();
    }
}
