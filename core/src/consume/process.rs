//! The `process` loop: read a batch across the assigned shards, hand it to
//! the handler, retry a failing batch with backoff, settle a batch that
//! failed every retry by the poison policy, ack, and wait for more — over
//! any platform's [`GroupSource`] (its reads, acks, clock and waiting).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use super::{Identified, ReadBatch};
use crate::{ConfigError, ShardId};

/// What the handler tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Ack (if auto-ack) and keep going.
    Continue,
    /// Ack (if auto-ack) this batch, then return.
    Stop,
}

/// What to do with a batch that failed every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonAction {
    /// Start another round of retries.
    Retry,
    /// Ack it and go on (the callback has recorded it somewhere).
    Skip,
    /// Return the platform's handler error without acking.
    Stop,
}

/// A handler error.
pub type HandlerError = Box<dyn core::error::Error + Send + Sync>;

/// A batch that failed every retry.
#[derive(Debug)]
pub struct PoisonBatch<'a, M> {
    /// Its messages.
    pub messages: &'a [M],
    /// The last error.
    pub error: &'a HandlerError,
    /// Attempts made.
    pub attempts: u32,
}

/// Reported after every non-empty batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Messages in the batch.
    pub size: usize,
    /// Time from the read to the end of handling.
    pub elapsed: Duration,
    /// Handler calls made.
    pub attempts: u32,
    /// Whether it was acked.
    pub acked: bool,
}

/// Which shards a `process` loop reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shards {
    /// Every shard directory, rediscovered while running.
    All,
    /// These shards.
    Only(Vec<ShardId>),
}

/// Decides the fate of a poison batch.
pub type PoisonCallback<'a, M> = Box<dyn FnMut(&PoisonBatch<'_, M>) -> PoisonAction + 'a>;
/// Observes every batch.
pub type BatchCallback<'a> = Box<dyn FnMut(&BatchInfo) + 'a>;
/// Observes read errors.
pub type ReadErrorCallback<'a, E> = Box<dyn FnMut(ShardId, &E) + 'a>;

/// Options of the `process` loop, for messages `M` and errors `E`.
pub struct ProcessOptions<'a, M, E> {
    /// Most messages per handler call (default 100).
    pub batch_size: usize,
    /// Longest wait for new data before polling again (default 100 ms;
    /// syncs in this process wake the loop at once).
    pub poll_interval: Duration,
    /// Shards to read (default all).
    pub shards: Shards,
    /// `Some((i, n))`: this is worker `i` of `n` and reads only shards with
    /// `shard % n == i` ([`shard_member`](crate::shard_member), the rule
    /// that also assigns shards to processes).
    pub worker: Option<(u32, u32)>,
    /// Ack each batch after the handler succeeds (default true).
    pub auto_ack: bool,
    /// Handler retries after the first failure (default 3).
    pub max_retries: u32,
    /// First retry delay; doubles per retry up to 1 s (default 10 ms).
    pub retry_backoff: Duration,
    /// Decides what happens to a batch that failed every retry (default:
    /// stop with an error).
    pub on_poison: Option<PoisonCallback<'a, M>>,
    /// Called after every non-empty batch.
    pub on_batch: Option<BatchCallback<'a>>,
    /// Called when a shard read fails (the loop retries it later).
    pub on_read_error: Option<ReadErrorCallback<'a, E>>,
    /// How often to look for new shard directories (default 1 s).
    pub discover_every: Duration,
    /// Return once no shard has new data (default false: run until stopped).
    pub until_idle: bool,
    /// Return when set (checked between batches and while waiting).
    pub stop: Option<Arc<AtomicBool>>,
}

impl<M, E> Default for ProcessOptions<'_, M, E> {
    fn default() -> Self {
        ProcessOptions {
            batch_size: 100,
            poll_interval: Duration::from_millis(100),
            shards: Shards::All,
            worker: None,
            auto_ack: true,
            max_retries: 3,
            retry_backoff: Duration::from_millis(10),
            on_poison: None,
            on_batch: None,
            on_read_error: None,
            discover_every: Duration::from_secs(1),
            until_idle: false,
            stop: None,
        }
    }
}

impl<M, E> fmt::Debug for ProcessOptions<'_, M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessOptions")
            .field("batch_size", &self.batch_size)
            .field("shards", &self.shards)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl<M, E> ProcessOptions<'_, M, E> {
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::Acquire))
    }
}

/// What a `process` run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSummary {
    /// Batches handled.
    pub batches: u64,
    /// Messages handled (acked or skipped).
    pub messages: u64,
    /// Handler retries.
    pub retries: u64,
    /// Poison batches skipped.
    pub skipped: u64,
}

/// A consumer-group member as the `process` loop drives it: a platform's
/// reads, acks, shard list, waiting and clock.
pub trait GroupSource {
    /// One message read back.
    type Message: Identified;
    /// The platform's error (a bad `worker` option is a [`ConfigError`]).
    type Error: From<ConfigError>;

    /// Every shard on disk, sorted.
    fn all_shards(&mut self) -> Result<Vec<ShardId>, Self::Error>;

    /// Up to `max` messages across `shards` from the group's offsets
    /// (rotating the first shard, as [`ReadBatch::read_rotating`]).
    fn read(&mut self, shards: &[ShardId], max: usize) -> ReadBatch<Self::Message, Self::Error>;

    /// Acks `messages`: per shard, up to and including its highest one.
    fn ack(&mut self, messages: &[Self::Message]) -> Result<(), Self::Error>;

    /// Blocks until one of `shards` has data past the group's offset,
    /// `stopped()` is true, or `timeout` passes.
    fn wait(&mut self, shards: &[ShardId], timeout: Duration, stopped: &dyn Fn() -> bool) -> Result<(), Self::Error>;

    /// A monotonic clock (any origin).
    fn now(&self) -> Duration;

    /// Sleeps for `d`.
    fn sleep(&self, d: Duration);

    /// The error that stops the loop on a poison batch.
    fn poisoned(attempts: u32, source: HandlerError) -> Self::Error;

    /// A shard's read stopped at `error` (before `on_read_error` sees it;
    /// a platform logs it here).
    fn read_failed(&mut self, _shard: ShardId, _error: &Self::Error) {}

    /// Handler call `attempt` failed with `error` (a platform logs it here).
    fn handler_failed(&mut self, _attempt: u32, _error: &HandlerError) {}
}

/// Runs `handler` over batches read through `source` until it returns
/// [`Flow::Stop`], the stop flag is set, `until_idle` finds nothing new,
/// or a poison batch stops the loop.
pub fn process<S, F>(
    source: &mut S,
    mut handler: F,
    mut opts: ProcessOptions<'_, S::Message, S::Error>,
) -> Result<ProcessSummary, S::Error>
where
    S: GroupSource,
    F: FnMut(&[S::Message]) -> Result<Flow, HandlerError>,
{
    if let Some((i, n)) = opts.worker
        && (n == 0 || i >= n)
    {
        let max = u64::from(n.saturating_sub(1));
        return Err(ConfigError { field: "process.worker", value: u64::from(i), min: 0, max }.into());
    }
    let mut summary = ProcessSummary::default();
    let mut shards = Vec::new();
    let mut discovered: Option<Duration> = None;
    loop {
        if opts.stopped() {
            return Ok(summary);
        }
        let now = source.now();
        if shards.is_empty() || discovered.is_none_or(|d| now.saturating_sub(d) >= opts.discover_every) {
            shards = assigned(source, &opts)?;
            discovered = Some(now);
        }
        let start = source.now();
        let (messages, errors) = source.read(&shards, opts.batch_size.max(1)).into_parts();
        for (shard, e) in &errors {
            source.read_failed(*shard, e);
            if let Some(cb) = opts.on_read_error.as_mut() {
                cb(*shard, e);
            }
        }
        if messages.is_empty() {
            if opts.until_idle {
                return Ok(summary);
            }
            let stop = opts.stop.clone();
            let stopped = move || stop.as_ref().is_some_and(|s| s.load(Ordering::Acquire));
            source.wait(&shards, opts.poll_interval, &stopped)?;
            continue;
        }
        let (flow, attempts, acked) = handle(source, &mut handler, &messages, &mut opts, &mut summary)?;
        summary.batches += 1;
        if let Some(cb) = opts.on_batch.as_mut() {
            let elapsed = source.now().saturating_sub(start);
            cb(&BatchInfo { size: messages.len(), elapsed, attempts, acked });
        }
        if flow == Flow::Stop {
            return Ok(summary);
        }
    }
}

/// The shards the options assign to this loop.
fn assigned<S: GroupSource>(
    source: &mut S,
    opts: &ProcessOptions<'_, S::Message, S::Error>,
) -> Result<Vec<ShardId>, S::Error> {
    let all = match &opts.shards {
        Shards::All => source.all_shards()?,
        Shards::Only(v) => v.clone(),
    };
    Ok(match opts.worker {
        Some((i, n)) => all.into_iter().filter(|&s| crate::shard_member(s, n) == i).collect(),
        None => all,
    })
}

/// One batch through the handler, its retries and the poison policy:
/// `(flow, handler calls, acked)`.
fn handle<S, F>(
    source: &mut S,
    handler: &mut F,
    messages: &[S::Message],
    opts: &mut ProcessOptions<'_, S::Message, S::Error>,
    summary: &mut ProcessSummary,
) -> Result<(Flow, u32, bool), S::Error>
where
    S: GroupSource,
    F: FnMut(&[S::Message]) -> Result<Flow, HandlerError>,
{
    let mut attempts = 0u32;
    loop {
        let mut last = None;
        for retry in 0..=opts.max_retries {
            attempts = attempts.saturating_add(1);
            match handler(messages) {
                Ok(flow) => {
                    if opts.auto_ack {
                        source.ack(messages)?;
                    }
                    summary.messages += messages.len() as u64;
                    return Ok((flow, attempts, opts.auto_ack));
                }
                Err(e) => {
                    source.handler_failed(attempts, &e);
                    last = Some(e);
                    if retry < opts.max_retries {
                        summary.retries += 1;
                        let delay = opts.retry_backoff.saturating_mul(1 << retry.min(16)).min(Duration::from_secs(1));
                        sleep_unless(source, delay, opts);
                    }
                }
            }
        }
        let error = last.unwrap_or_else(|| "handler failed".into());
        let action = match opts.on_poison.as_mut() {
            Some(cb) => cb(&PoisonBatch { messages, error: &error, attempts }),
            None => PoisonAction::Stop,
        };
        match action {
            PoisonAction::Retry => continue,
            PoisonAction::Skip => {
                source.ack(messages)?;
                summary.skipped += 1;
                summary.messages += messages.len() as u64;
                return Ok((Flow::Continue, attempts, true));
            }
            PoisonAction::Stop => return Err(S::poisoned(attempts, error)),
        }
    }
}

/// Sleeps `d` in steps of at most 10 ms, returning early once the stop
/// flag is set.
fn sleep_unless<S: GroupSource>(source: &S, d: Duration, opts: &ProcessOptions<'_, S::Message, S::Error>) {
    let end = source.now().saturating_add(d);
    loop {
        let now = source.now();
        if now >= end || opts.stopped() {
            return;
        }
        source.sleep((end - now).min(Duration::from_millis(10)));
    }
}
