//! The optional helper thread: calls [`Log::tick`] periodically for
//! applications without a main loop. Nothing starts it implicitly.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::log::Log;
use comet_linux::{Error, Ticker};

/// A running helper thread; [`Helper::stop`] (or drop) ends it.
#[derive(Debug)]
pub struct Helper(Ticker);

/// Starts a thread (`comet-tick`, 64 KiB of stack) that locks `log` every
/// `period` and calls [`Log::tick`] with the current time. Tick errors are
/// passed to `on_error` (the thread keeps running).
pub fn spawn_helper(
    log: Arc<Mutex<Log>>,
    period: Duration,
    mut on_error: impl FnMut(Error) + Send + 'static,
) -> Result<Helper, Error> {
    let ticker = Ticker::spawn("comet-tick", Some(64 << 10), period, move || {
        let mut l = log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = l.tick(crate::now_ns()) {
            on_error(e);
        }
        Some(period)
    })?;
    Ok(Helper(ticker))
}

impl Helper {
    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.0.stop();
    }
}
