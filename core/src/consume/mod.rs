//! What a consumer of comet names on any platform, and the parts of
//! reading that do not depend on how bytes reach memory:
//!
//! * [`MessageId`] and [`Appended`]: where entries live;
//! * [`ProcessedMarks`]: per-shard marks for effectively-once handlers;
//! * [`ReadBatch`]: a multi-shard read's messages *and* the shards that
//!   stopped at an error, taken together;
//! * [`Entries`]: a range of one shard, read in batches by any
//!   [`BatchRead`];
//! * the `process` loop (module `process`): batches, retries with
//!   backoff, the poison-batch policy and worker assignment, over a
//!   platform's [`GroupSource`].
//!
//! The platforms supply the readers (maps or `pread`), the offsets table
//! (shared memory), the clock and the waiting; the rules here are the
//! same for all of them.

mod message;
mod process;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::{Bound, Range, RangeBounds};

use crate::{NameError, ShardId};

pub use message::{LentBatch, LentEntry, Mapping, Message};
pub use process::{
    BatchCallback, BatchInfo, Flow, GroupSource, HandlerError, PoisonAction, PoisonBatch, PoisonCallback,
    ProcessOptions, ProcessSummary, ReadErrorCallback, Shards, process,
};

/// Where an entry lives: shard and entry number. Displays as
/// `<shard>-<entry>`, like the Go package's `MessageID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The shard.
    pub shard: ShardId,
    /// The entry number within the shard.
    pub entry: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.shard.get(), self.entry)
    }
}

impl core::str::FromStr for MessageId {
    type Err = NameError;

    /// Parses `<shard>-<entry>` strictly (decimal digits only; a shard
    /// id above 9999 or an entry above `u64::MAX` is
    /// [`NameError::BadShardDigits`] too).
    fn from_str(s: &str) -> Result<MessageId, NameError> {
        let bad = NameError::BadShardDigits;
        let (a, b) = s.split_once('-').ok_or(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad);
        }
        let shard = a.parse::<u32>().ok().and_then(ShardId::new).ok_or(bad)?;
        let entry = b.parse::<u64>().map_err(|_| bad)?;
        Ok(MessageId { shard, entry })
    }
}

/// A message that knows its id (what acks and [`ProcessedMarks`] need).
pub trait Identified {
    /// The message's shard and entry number.
    fn id(&self) -> MessageId;
}

impl Identified for MessageId {
    fn id(&self) -> MessageId {
        *self
    }
}

/// The entries one append produced: consecutive numbers in one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The shard.
    pub shard: ShardId,
    /// Their entry numbers.
    pub entries: Range<u64>,
}

impl Appended {
    /// The message ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.entries.clone().map(|entry| MessageId { shard: self.shard, entry })
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        usize::try_from(self.entries.end - self.entries.start).unwrap_or(usize::MAX)
    }

    /// True for an empty append.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Per-shard high-water marks of processed entries, for handlers that need
/// effectively-once processing on top of at-least-once delivery: store
/// [`encode`](ProcessedMarks::encode)d marks in the same transaction as the
/// handler's side effects, and skip messages for which
/// [`is_new`](ProcessedMarks::is_new) is false after a redelivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessedMarks {
    next: BTreeMap<ShardId, u64>,
}

impl ProcessedMarks {
    /// Empty marks.
    pub fn new() -> ProcessedMarks {
        ProcessedMarks::default()
    }

    /// True if `id` was not marked processed yet.
    pub fn is_new(&self, id: MessageId) -> bool {
        self.next.get(&id.shard).is_none_or(|&n| id.entry >= n)
    }

    /// Marks `id` (and everything before it in its shard) processed.
    pub fn mark(&mut self, id: MessageId) {
        let n = self.next.entry(id.shard).or_insert(0);
        *n = (*n).max(id.entry.saturating_add(1));
    }

    /// Keeps only the messages not yet processed.
    pub fn filter<'s, 'm: 's, M: Identified>(&'s self, messages: &'m [M]) -> impl Iterator<Item = &'m M> + 's {
        messages.iter().filter(|m| self.is_new(m.id()))
    }

    /// Encodes as `shard=next` pairs separated by commas, by shard.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (shard, n) in &self.next {
            let sep = if s.is_empty() { "" } else { "," };
            s += &alloc::format!("{sep}{}={n}", shard.get());
        }
        s
    }

    /// Decodes what [`encode`](ProcessedMarks::encode) produced.
    pub fn decode(s: &str) -> Option<ProcessedMarks> {
        let mut m = ProcessedMarks::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('=')?;
            let shard = ShardId::new(a.parse().ok()?)?;
            m.next.insert(shard, b.parse().ok()?);
        }
        Some(m)
    }
}

/// What a multi-shard read returned: messages, and the shards whose read
/// stopped at an error.
///
/// The messages are not reachable without the errors: take both with
/// [`into_result`](ReadBatch::into_result) (any error makes it `Err`,
/// which carries the messages read before it) or
/// [`into_parts`](ReadBatch::into_parts). A shard that stopped at an
/// error stops there on every read until its offset is moved (the
/// failing entry is never skipped), so a caller that dropped the errors
/// would wait on that shard forever without knowing why.
#[derive(Debug)]
#[must_use = "a read may have stopped at errors: take them with `into_result` or `into_parts`"]
pub struct ReadBatch<M, E> {
    messages: Vec<M>,
    errors: Vec<(ShardId, E)>,
}

impl<M, E> Default for ReadBatch<M, E> {
    fn default() -> Self {
        ReadBatch { messages: Vec::new(), errors: Vec::new() }
    }
}

impl<M, E> ReadBatch<M, E> {
    /// Reads up to `max` messages across `shards` with `read_shard(shard,
    /// at most, out)`, starting at shard `*rotate % shards.len()` (and
    /// moving `rotate` on) so that no shard starves. A shard whose read
    /// fails keeps the messages it added and its error; the others are
    /// read on.
    pub fn read_rotating(
        shards: &[ShardId],
        rotate: &mut usize,
        max: usize,
        mut read_shard: impl FnMut(ShardId, usize, &mut Vec<M>) -> Result<usize, E>,
    ) -> ReadBatch<M, E> {
        let mut batch = ReadBatch::default();
        if shards.is_empty() {
            return batch;
        }
        let start = *rotate % shards.len();
        *rotate = rotate.wrapping_add(1);
        for k in 0..shards.len() {
            let left = max.saturating_sub(batch.messages.len());
            if left == 0 {
                break;
            }
            let shard = shards[(start + k) % shards.len()];
            if let Err(e) = read_shard(shard, left, &mut batch.messages) {
                batch.errors.push((shard, e));
            }
        }
        batch
    }

    /// The messages if every shard read without error; otherwise the
    /// error, which holds the messages read before it too.
    pub fn into_result(self) -> Result<Vec<M>, ReadBatchError<M, E>> {
        if self.errors.is_empty() {
            Ok(self.messages)
        } else {
            Err(ReadBatchError { messages: self.messages, errors: self.errors })
        }
    }

    /// The messages — grouped by shard, each shard's in entry order — and
    /// the shards whose read stopped at an error. A failing shard's
    /// messages before its error are among the messages (they can be
    /// handled and acked); its failing entry is never skipped.
    pub fn into_parts(self) -> (Vec<M>, Vec<(ShardId, E)>) {
        (self.messages, self.errors)
    }

    /// The shards whose read stopped at an error, with the errors.
    pub fn errors(&self) -> &[(ShardId, E)] {
        &self.errors
    }

    /// True if no shard's read stopped at an error.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A multi-shard read in which at least one shard stopped at an error
/// ([`ReadBatch::into_result`]). Holds every shard's error and the
/// messages read before (from the failing shards and the others), which
/// may still be handled and acked.
///
/// Its message names the shards; [`source`](core::error::Error::source) is
/// the first shard's error.
#[derive(Debug)]
pub struct ReadBatchError<M, E> {
    messages: Vec<M>,
    errors: Vec<(ShardId, E)>,
}

impl<M, E> ReadBatchError<M, E> {
    /// The messages read before the errors (and from the shards that had
    /// none).
    pub fn messages(&self) -> &[M] {
        &self.messages
    }

    /// Each failing shard with its error (at least one).
    pub fn errors(&self) -> &[(ShardId, E)] {
        &self.errors
    }

    /// The messages and the errors.
    pub fn into_parts(self) -> (Vec<M>, Vec<(ShardId, E)>) {
        (self.messages, self.errors)
    }
}

impl<M, E> fmt::Display for ReadBatchError<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "the read of {n} {} stopped at an error (", if n == 1 { "shard" } else { "shards" })?;
        for (i, (shard, _)) in self.errors.iter().enumerate() {
            write!(f, "{}{shard}", if i == 0 { "" } else { ", " })?;
        }
        f.write_str(")")
    }
}

impl<M: fmt::Debug, E: core::error::Error + 'static> core::error::Error for ReadBatchError<M, E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.errors.first().map(|(_, e)| e as &(dyn core::error::Error + 'static))
    }
}

/// A reader of one shard that reads entries in batches: what [`Entries`]
/// and on-demand dictionary training read through.
pub trait BatchRead {
    /// One entry read back.
    type Message;
    /// A read's error.
    type Error;

    /// `(first retained entry, one past the last durable entry)`.
    fn bounds(&mut self) -> Result<(u64, u64), Self::Error>;

    /// Reads up to `max` durable entries from `from` into `out`; returns
    /// how many were added. Stops at the durable end, and at an unreadable
    /// entry with its error (the entries before it stay in `out`).
    fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Self::Message>) -> Result<usize, Self::Error>;
}

/// Entries an [`Entries`] reads at a time.
const ITER_BATCH: usize = 256;

/// The entries of a range of one shard, in order, read in batches.
///
/// An unbounded start is the first retained entry; an unbounded end, or
/// one past the durable end, is the durable end as it is when the
/// iteration begins (its first [`next`](Iterator::next)). An unreadable
/// entry (damaged, lost, not retained) yields its error, after the entries
/// before it, and ends the iteration: an entry is never skipped.
pub struct Entries<'a, R: BatchRead> {
    reader: &'a mut R,
    range: (Bound<u64>, Bound<u64>),
    /// Next entry and the end, resolved on the first `next`.
    span: Option<(u64, u64)>,
    batch: alloc::vec::IntoIter<R::Message>,
    /// The error the last batch stopped at, yielded after its messages.
    error: Option<R::Error>,
    done: bool,
}

impl<R: BatchRead> fmt::Debug for Entries<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries").field("span", &self.span).finish_non_exhaustive()
    }
}

impl<'a, R: BatchRead> Entries<'a, R> {
    /// The entries of `reader` whose numbers lie in `range`.
    pub fn new(reader: &'a mut R, range: impl RangeBounds<u64>) -> Entries<'a, R> {
        Entries {
            reader,
            range: (range.start_bound().cloned(), range.end_bound().cloned()),
            span: None,
            batch: Vec::new().into_iter(),
            error: None,
            done: false,
        }
    }

    /// `(first entry, end)` of the range, against the retained and
    /// durable bounds now.
    fn resolve(&mut self) -> Result<(u64, u64), R::Error> {
        let (first, end) = self.reader.bounds()?;
        let from = match self.range.0 {
            Bound::Included(n) => n,
            Bound::Excluded(n) => n.saturating_add(1),
            Bound::Unbounded => first,
        };
        let to = match self.range.1 {
            Bound::Included(n) => n.saturating_add(1),
            Bound::Excluded(n) => n,
            Bound::Unbounded => end,
        };
        Ok((from, to.min(end)))
    }
}

impl<R: BatchRead> Iterator for Entries<'_, R> {
    type Item = Result<R::Message, R::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(m) = self.batch.next() {
                return Some(Ok(m));
            }
            if let Some(e) = self.error.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let (next, end) = match self.span {
                Some(span) => span,
                None => match self.resolve() {
                    Ok(span) => *self.span.insert(span),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            };
            if next >= end {
                self.done = true;
                return None;
            }
            let want = usize::try_from(end - next).unwrap_or(ITER_BATCH).min(ITER_BATCH);
            let mut out = Vec::with_capacity(want);
            let r = self.reader.read_batch(next, want, &mut out);
            self.span = Some((next + out.len() as u64, end));
            match r {
                Err(e) => self.error = Some(e),
                // Nothing more before the durable end.
                Ok(0) => self.done = true,
                Ok(_) => {}
            }
            self.batch = out.into_iter();
        }
    }
}

impl<R: BatchRead> core::iter::FusedIterator for Entries<'_, R> {}
