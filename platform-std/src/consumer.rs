//! Consumer groups: cumulative offsets in `offsets.state`, shared by every
//! process; reads that never skip; acks that never move backwards; the
//! `process` loop with bounded retries and a poison-batch policy.
//!
//! Delivery is **at-least-once**: an entry is delivered again if the
//! consumer dies (or its handler fails) after reading it and before its ack
//! lands. Handlers that need effectively-once processing can record
//! progress with [`ProcessedMarks`] in the same transaction as their side
//! effects.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use comet_core::platform::consume::{GroupSource, process};
use comet_core::platform::group::{AckRangeError, GroupLink, ack_highs, check_ack_range, resume_point};
use comet_core::platform::shm::{self, OffsetsTable};
use comet_core::platform::state::offsets::validate_group;
use comet_core::{Counter, FileKind, ShardId};

use crate::client::{Client, now_ns};
use crate::reader::{LentBatch, Message, MessageId, Reader};
use comet_core::GroupStats;
use comet_linux::SharedWords;
use comet_linux::{Error, Result};

/// Maps a shard's `offsets.state` for acks and seeks (`create`: created
/// fully written if missing or empty), or read-only for lookups (`None` if
/// missing or empty: no group has acked yet). A file of the wrong size is
/// [`Error::Corrupt`] for this shard only; its writer or `repair` salvages
/// it.
pub(crate) fn map_offsets(dir: &Path, shard: ShardId, create: bool) -> Result<Option<SharedWords>> {
    let Some(storage) = crate::shard::open_dir(dir)? else {
        return Ok(None);
    };
    let r = if create {
        comet_linux::map_offsets_write(&storage).map(Some)
    } else {
        comet_linux::map_offsets_read(&storage)
    };
    r.map_err(|e| Error::state_file(shard, dir, FileKind::Offsets, e))
}

/// [`map_offsets`] for lookups.
pub(crate) fn map_offsets_read(dir: &Path, shard: ShardId) -> Result<Option<SharedWords>> {
    map_offsets(dir, shard, false)
}

/// The table for acks and seeks (initialising or upgrading it).
fn table<'a>(shard: ShardId, words: &'a SharedWords) -> Result<OffsetsTable<'a>> {
    let w = words.writable().ok_or(Error::ReadOnly)?;
    OffsetsTable::open(w, std::thread::yield_now).map_err(|source| Error::Offsets { shard, source })
}

/// Every group of a shard with its offset and lag against `durable_end`.
pub(crate) fn group_stats(dir: &Path, shard: ShardId, durable_end: u64) -> Result<Vec<GroupStats>> {
    let Some(words) = map_offsets_read(dir, shard)? else {
        return Ok(Vec::new());
    };
    match OffsetsTable::open_read(words.words(), std::thread::yield_now) {
        Ok(Some(table)) => Ok(GroupStats::collect(&table, durable_end)),
        Ok(None) => Ok(Vec::new()),
        Err(source) => Err(Error::Offsets { shard, source }),
    }
}

/// The lowest offset any group holds in a shard (retention's low-water
/// mark: `comet_core::platform::shm::low_water`), or `None` if no group
/// has acked anything there. Offsets that do not check out are an error.
pub(crate) fn low_water(dir: &Path, shard: ShardId) -> Result<Option<u64>> {
    let Some(words) = map_offsets_read(dir, shard)? else {
        return Ok(None);
    };
    shm::low_water(words.words(), std::thread::yield_now).map_err(|source| Error::Offsets { shard, source })
}

/// Where [`Consumer::seek`] moves a group's offset (the core's rule:
/// [`comet_core::SeekTo`]).
pub use comet_core::SeekTo;

/// What a multi-shard read ([`Consumer::read`]) returned: messages, and
/// the shards whose read stopped at an error (the core's
/// [`comet_core::ReadBatch`]).
///
/// ```
/// # use comet::{Client, Config, Consumer, ShardId};
/// # let dir = tempfile::tempdir()?;
/// # let client = Client::open(dir.path(), Config::default())?;
/// # client.append("events:v1:shard:0001", &[b"a", b"b"])?;
/// # client.sync()?;
/// let mut consumer = Consumer::new(&client, "indexer")?;
/// let shards = client.shards()?;
/// let messages = consumer.read(&shards, 100).into_result()?;
/// for m in &messages {
///     // handle m
/// }
/// consumer.ack_batch(&messages)?;
/// # assert_eq!(messages.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ReadBatch = comet_core::ReadBatch<Message, Error>;

/// A multi-shard read in which at least one shard stopped at an error
/// ([`ReadBatch::into_result`]; the core's [`comet_core::ReadBatchError`]).
pub type ReadBatchError = comet_core::ReadBatchError<Message, Error>;

/// What a consumer keeps per shard: its reader, and what acks re-use
/// instead of looking it up again.
struct Link {
    reader: Reader,
    /// The shard's `offsets.state` mapping.
    offsets: Option<Arc<SharedWords>>,
    /// The group's slot in it and the durable end last seen (acks up to
    /// it need no head read).
    group: GroupLink,
    /// The shard's `comet.state` mapping (for the counters).
    state: Option<Arc<SharedWords>>,
    /// Highest entry this instance returned (for `ack_range`).
    read_high: Option<u64>,
}

/// A consumer group member.
pub struct Consumer {
    client: Client,
    group: String,
    links: Vec<Link>,
    /// Index + 1 into `links` per shard id (0: not linked yet). Shard ids
    /// are dense and below 10,000.
    by_shard: Vec<u32>,
    rotate: usize,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("group", &self.group).finish_non_exhaustive()
    }
}

impl Consumer {
    /// A member of `group` (1..=47 bytes, no NUL) reading through `client`.
    pub fn new(client: &Client, group: &str) -> Result<Consumer> {
        validate_group(group).map_err(Error::InvalidGroup)?;
        Ok(Consumer {
            client: client.clone(),
            group: group.to_string(),
            links: Vec::new(),
            by_shard: Vec::new(),
            rotate: 0,
        })
    }

    /// The group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The index of `shard`'s link if it has one (the ack's fast path: no
    /// `Result` to return through memory).
    #[inline]
    fn linked(&self, shard: ShardId) -> Option<usize> {
        match self.by_shard.get(shard.get() as usize) {
            Some(&i) if i != 0 => Some(i as usize - 1),
            _ => None,
        }
    }

    /// The index of `shard`'s link, creating it (and its reader) if need be.
    fn link_index(&mut self, shard: ShardId) -> Result<usize> {
        if let Some(i) = self.linked(shard) {
            return Ok(i);
        }
        let k = shard.get() as usize;
        let reader = self.client.reader(shard)?;
        self.links.push(Link { reader, offsets: None, group: GroupLink::default(), state: None, read_high: None });
        if self.by_shard.len() <= k {
            self.by_shard.resize(k + 1, 0);
        }
        self.by_shard[k] = u32::try_from(self.links.len()).map_err(|_| Error::Closed)?;
        Ok(self.links.len() - 1)
    }

    fn link(&mut self, shard: ShardId) -> Result<&mut Link> {
        let i = self.link_index(shard)?;
        Ok(&mut self.links[i])
    }

    fn reader(&mut self, shard: ShardId) -> Result<&mut Reader> {
        Ok(&mut self.link(shard)?.reader)
    }

    /// The shard's `offsets.state`: mapped read-only for lookups, read-write
    /// (created if need be) for acks and seeks (`create`).
    fn words(&mut self, shard: ShardId, create: bool) -> Result<Option<Arc<SharedWords>>> {
        let i = self.link_index(shard)?;
        if let Some(w) = &self.links[i].offsets
            && (!create || w.writable().is_some())
        {
            return Ok(Some(w.clone()));
        }
        // A Go-written shard is refused before its offsets are looked at.
        self.client.shard_state(shard)?;
        let dir = self.client.shard_dir(shard);
        if create && !dir.exists() {
            let (first, end) = self.links[i].reader.bounds()?;
            return Err(Error::Unavailable { shard, entry: 0, first, end });
        }
        let w = map_offsets(&dir, shard, create)?;
        let Some(w) = w else {
            return Ok(None);
        };
        let w = Arc::new(w);
        self.links[i].offsets = Some(w.clone());
        Ok(Some(w))
    }

    /// The group's next entry in `shard`: its stored offset, raised to the
    /// first retained entry (entries retention deleted cannot be read).
    pub fn offset(&mut self, shard: ShardId) -> Result<u64> {
        let stored = self.stored(shard)?;
        let (first, _) = self.reader(shard)?.bounds()?;
        Ok(resume_point(stored, first))
    }

    /// Counts the acks of link `i` that its fast path noted (see
    /// [`GroupLink`]'s *Counting*): in the group's slot and in the shard's
    /// `Acks` counter.
    fn publish(&mut self, i: usize) {
        let link = &mut self.links[i];
        if link.group.uncounted() == 0 {
            return;
        }
        let Some(words) = link.offsets.as_ref().and_then(|w| w.writable()) else { return };
        let n = link.group.publish(words);
        let shard = link.reader.shard();
        self.count(i, shard, Counter::Acks, n);
    }

    /// The group's stored offset in `shard` (`None`: it never acked or
    /// seeked there), through the cached slot when it still holds the group.
    /// Counts the acks noted since the last count first.
    fn stored(&mut self, shard: ShardId) -> Result<Option<u64>> {
        let i = self.link_index(shard)?;
        self.publish(i);
        let w = match &self.links[i].offsets {
            Some(w) => w.clone(),
            None => match self.words(shard, false)? {
                Some(w) => w,
                None => return Ok(None),
            },
        };
        self.links[i]
            .group
            .stored(w.words(), &self.group, std::thread::yield_now)
            .map_err(|source| Error::Offsets { shard, source })
    }

    /// Durable entries of `shard` the group has not acked.
    pub fn lag(&mut self, shard: ShardId) -> Result<u64> {
        let stored = self.stored(shard)?;
        let (first, end) = self.reader(shard)?.bounds()?;
        Ok(comet_core::platform::group::lag(stored, first, end))
    }

    /// Adds `n` to a counter of `shard`'s `comet.state`.
    fn count(&mut self, i: usize, shard: ShardId, counter: Counter, n: u64) {
        // Counters live in `comet.state`, written only by the shard's
        // writer (D-21): count only when this client writes the shard.
        if self.links[i].state.is_none() {
            self.links[i].state = self.client.shard_writer_state(shard);
        }
        if let Some(words) = self.links[i].state.as_ref().and_then(|s| s.writable()) {
            comet_core::platform::shm::add_counter(words, counter, n);
        }
    }

    /// Reads up to `max` messages of one shard from the group's offset.
    /// Does not move the offset: without an ack the same messages come
    /// again. Stops at an unreadable entry with its error; messages before
    /// it are left in `out`.
    pub fn read_shard(&mut self, shard: ShardId, max: usize, out: &mut Vec<Message>) -> Result<usize> {
        let before = out.len();
        self.read_with(shard, |r, from| (r.read_batch(from, max, out), out.len() - before))
    }

    /// [`read_shard`](Consumer::read_shard) into a [`LentBatch`] (cleared
    /// first), whose payloads are lent from the mappings instead of
    /// reference-counted per message ([`Reader::read_lent`]). Ack it with
    /// [`ack_up_to`](Consumer::ack_up_to) of its
    /// [`last_id`](LentBatch::last_id).
    ///
    /// ```
    /// # use comet::{Client, Config, Consumer, LentBatch};
    /// # let dir = tempfile::tempdir()?;
    /// # let client = Client::open(dir.path(), Config::default())?;
    /// # let shard = client.append("events:v1:shard:0001", &[b"a", b"b"])?.shard;
    /// # client.sync()?;
    /// let mut consumer = Consumer::new(&client, "indexer")?;
    /// let mut batch = LentBatch::new();
    /// consumer.read_shard_lent(shard, 100, &mut batch)?;
    /// for e in batch.iter() {
    ///     // handle e.data
    /// }
    /// if let Some(last) = batch.last_id() {
    ///     consumer.ack_up_to(last)?;
    /// }
    /// # assert_eq!(consumer.offset(shard)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_shard_lent(&mut self, shard: ShardId, max: usize, out: &mut LentBatch) -> Result<usize> {
        self.read_with(shard, |r, from| (r.read_lent(from, max, out), out.len()))
    }

    /// A read of `shard` from the group's offset by `read(reader, from)`,
    /// which returns its result and how many messages it added.
    fn read_with(
        &mut self,
        shard: ShardId,
        read: impl FnOnce(&mut Reader, u64) -> (Result<usize>, usize),
    ) -> Result<usize> {
        let from = self.offset(shard)?;
        let i = self.link_index(shard)?;
        let (r, n) = read(&mut self.links[i].reader, from);
        if n > 0 {
            let last = from + n as u64 - 1;
            let high = &mut self.links[i].read_high;
            *high = Some(high.map_or(last, |h| h.max(last)));
            self.count(i, shard, Counter::EntriesRead, n as u64);
        }
        r.map(|_| n)
    }

    /// Reads up to `max` messages across `shards`, starting with a different
    /// shard each call so that no shard starves. A failing shard does not
    /// fail the others: its error comes back in the [`ReadBatch`], beside
    /// the messages.
    pub fn read(&mut self, shards: &[ShardId], max: usize) -> ReadBatch {
        let mut rotate = self.rotate;
        let batch =
            ReadBatch::read_rotating(shards, &mut rotate, max, |shard, left, out| self.read_shard(shard, left, out));
        self.rotate = rotate;
        batch
    }

    /// Acknowledges `ids`: per shard, the offset becomes the highest id + 1
    /// (cumulative: everything below is acknowledged too), capped at the
    /// durable end, and never moves backwards.
    ///
    /// The offset is in the shard's `offsets.state` (seen by every process,
    /// kept by a crash) when the call returns. The ack *counts* — the
    /// `acks` counter of the shard's metrics and the group's update count
    /// ([`GroupStats`]) — are published later, at most 1 ms of the ack
    /// clock after the ack: by a later ack, or earlier by this consumer's
    /// next read, [`lag`](Consumer::lag), [`offset`](Consumer::offset),
    /// [`seek`](Consumer::seek), [`groups`](Consumer::groups), or its drop
    /// (docs/DECISIONS.md D-53).
    pub fn ack(&mut self, ids: &[MessageId]) -> Result<()> {
        if let [id] = ids {
            return self.ack_up_to(*id);
        }
        self.ack_ids(ids.iter().copied())
    }

    /// Acknowledges every entry of `id.shard` up to and including
    /// `id.entry` (offsets are cumulative): the group's offset there becomes
    /// `id.entry + 1`, capped at the durable end; it never moves backwards,
    /// so acking an older id does nothing.
    pub fn ack_up_to(&mut self, id: MessageId) -> Result<()> {
        self.advance(id.shard, id.entry.saturating_add(1))
    }

    /// [`ack_up_to`](Consumer::ack_up_to) the message's id: everything of
    /// its shard up to and including it.
    pub fn ack_through(&mut self, message: &Message) -> Result<()> {
        self.ack_up_to(message.id)
    }

    /// Acknowledges a batch as read (from [`read`](Consumer::read),
    /// [`read_shard`](Consumer::read_shard) or [`tail`](Consumer::tail)):
    /// per shard, up to and including its highest message, as
    /// [`ack_up_to`](Consumer::ack_up_to) does. The messages may come from
    /// any number of shards, in any order.
    pub fn ack_batch(&mut self, messages: &[Message]) -> Result<()> {
        self.ack_ids(messages.iter().map(|m| m.id))
    }

    fn ack_ids(&mut self, ids: impl Iterator<Item = MessageId>) -> Result<()> {
        ack_highs(ids.map(|id| (id.shard, id.entry)), |shard, to| self.advance(shard, to))
    }

    /// Acknowledges `range` of `shard`. The range must start at or below the
    /// group's offset (offsets cannot represent holes) and end at or below
    /// the durable end.
    pub fn ack_range(&mut self, shard: ShardId, range: std::ops::Range<u64>) -> Result<()> {
        let off = self.offset(shard)?;
        let (first, end) = self.reader(shard)?.bounds()?;
        check_ack_range(&range, off, end).map_err(|e| match e {
            AckRangeError::Gap { offset, start } => Error::AckGap { shard, offset, start },
            AckRangeError::PastEnd { entry } => Error::Unavailable { shard, entry, first, end },
        })?;
        self.advance(shard, range.end)
    }

    /// Raises the group's offset in `shard` to `to`, capped at the durable
    /// end. The fast path is a `fetch_max` at the cached slot.
    fn advance(&mut self, shard: ShardId, to: u64) -> Result<()> {
        let i = match self.linked(shard) {
            Some(i) => i,
            None => self.link_index(shard)?,
        };
        let link = &mut self.links[i];
        let to = link.group.cap(to, || Ok::<_, Error>(link.reader.head()?.map_or(0, |h| h.end())))?;
        // The last-ack time needs no more than the coarse clock (the slot
        // keeps the maximum, so it never goes backwards).
        let now = comet_linux::coarse_now_ns();
        // Only through a writable mapping (lookups map read-only). The fast
        // path stores the offset now and counts the ack later (`publish`).
        let fast = link.offsets.as_ref().and_then(|w| w.writable()).and_then(|w| link.group.advance_cached(w, to, now));
        let counted = match fast {
            Some(n) => n,
            None => {
                let w = self.words(shard, true)?.ok_or(Error::Closed)?;
                let words = w.writable().ok_or(Error::ReadOnly)?;
                self.links[i]
                    .group
                    .advance(words, &self.group, to, now, std::thread::yield_now)
                    .map_err(|source| Error::Offsets { shard, source })?;
                1
            }
        };
        if counted > 0 {
            self.count(i, shard, Counter::Acks, counted);
        }
        Ok(())
    }

    /// Moves the group's offset (backwards too: replay). Returns the entry
    /// it now points at: the target clamped to the retained range, and past
    /// any lost range it falls in (entries recovery reported missing), so a
    /// group moved there can read on.
    pub fn seek(&mut self, shard: ShardId, to: SeekTo) -> Result<u64> {
        let i = self.link_index(shard)?;
        self.publish(i);
        let reader = self.reader(shard)?;
        let (first, end) = reader.bounds()?;
        let target = to.target(first, end, |ts| reader.seek_time(ts))?;
        let target = reader.readable_from(target)?;
        let w = self.words(shard, true)?.ok_or(Error::Closed)?;
        table(shard, &w)?.set(&self.group, target, now_ns()).map_err(|source| Error::Offsets { shard, source })?;
        self.link(shard)?.read_high = None;
        Ok(target)
    }

    /// [`seek`](Consumer::seek) to an entry number.
    pub fn reset_offset(&mut self, shard: ShardId, entry: u64) -> Result<u64> {
        self.seek(shard, SeekTo::Entry(entry))
    }

    /// Blocks until `shard` has an entry for the group or `timeout` passes,
    /// then reads up to `max` messages. Wakes as soon as a sync in this
    /// process makes data durable; writers in other processes are seen
    /// within `storage.flush_interval` (at most 100 ms) of their sync.
    pub fn tail(&mut self, shard: ShardId, max: usize, timeout: Duration) -> Result<Vec<Message>> {
        let off = self.offset(shard)?;
        let mut out = Vec::new();
        if self.client.wait_for(shard, off, timeout)? {
            self.read_shard(shard, max, &mut out)?;
        }
        Ok(out)
    }

    /// The stored slot of every group that acked (or seeked) in `shard`.
    /// A group that never did is not listed: it reads from the first
    /// retained entry, and [`lag`](Consumer::lag) (or
    /// [`ShardStats::group_lag`](crate::ShardStats::group_lag)) counts
    /// everything retained as its lag.
    pub fn groups(&mut self, shard: ShardId) -> Result<Vec<GroupStats>> {
        let i = self.link_index(shard)?;
        self.publish(i);
        let (_, end) = self.reader(shard)?.bounds()?;
        group_stats(&self.client.shard_dir(shard), shard, end)
    }
}

impl Drop for Consumer {
    /// Counts the acks noted and not counted yet (see [`GroupLink`]'s
    /// *Counting*).
    fn drop(&mut self) {
        for i in 0..self.links.len() {
            self.publish(i);
        }
    }
}

/// A batch that failed every retry (the core's [`comet_core::PoisonBatch`]).
pub type PoisonBatch<'a> = comet_core::PoisonBatch<'a, Message>;
/// Decides the fate of a poison batch.
pub type PoisonCallback<'a> = comet_core::PoisonCallback<'a, Message>;
/// Observes read errors.
pub type ReadErrorCallback<'a> = comet_core::ReadErrorCallback<'a, Error>;
/// Options of [`Consumer::process`] (the core's
/// [`comet_core::ProcessOptions`], whose fields and defaults it documents).
pub type ProcessOptions<'a> = comet_core::ProcessOptions<'a, Message, Error>;
pub use comet_core::{
    BatchCallback, BatchInfo, Flow, HandlerError, PoisonAction, ProcessSummary, ProcessedMarks, Shards,
};

/// The consumer as the core's `process` loop drives it.
struct Source<'c>(&'c mut Consumer);

impl GroupSource for Source<'_> {
    type Message = Message;
    type Error = Error;

    fn all_shards(&mut self) -> Result<Vec<ShardId>> {
        self.0.client.shards()
    }

    fn read(&mut self, shards: &[ShardId], max: usize) -> ReadBatch {
        self.0.read(shards, max)
    }

    fn ack(&mut self, messages: &[Message]) -> Result<()> {
        self.0.ack_batch(messages)
    }

    /// Waits on this client's syncs, polling every `poll_interval` (at
    /// most 100 ms) for writers in other processes.
    fn wait(&mut self, shards: &[ShardId], timeout: Duration, stopped: &dyn Fn() -> bool) -> Result<()> {
        let mut offsets = Vec::with_capacity(shards.len());
        for &s in shards {
            offsets.push((s, self.0.offset(s)?));
        }
        let client = &self.0.client;
        let poll = timeout.clamp(Duration::from_millis(1), Duration::from_millis(100));
        client.inner_any().wait_until(timeout, poll, || {
            stopped() || offsets.iter().any(|&(s, off)| client.durable_len(s).is_ok_and(|end| end > off))
        });
        Ok(())
    }

    fn now(&self) -> Duration {
        EPOCH.get_or_init(Instant::now).elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }

    fn poisoned(attempts: u32, source: HandlerError) -> Error {
        Error::Handler { attempts, source }
    }

    fn read_failed(&mut self, shard: ShardId, e: &Error) {
        tracing::warn!(shard = %shard, error = %e.chain(), group = %self.0.group, "read stopped at an unreadable entry");
    }

    fn handler_failed(&mut self, attempt: u32, e: &HandlerError) {
        tracing::debug!(error = %crate::ErrorChain(&**e), attempt, "handler failed");
    }
}

/// The origin of [`Source::now`]'s monotonic clock.
static EPOCH: OnceLock<Instant> = OnceLock::new();

impl Consumer {
    /// Runs `handler` over batches until it returns [`Flow::Stop`], the
    /// stop flag is set, `until_idle` finds nothing new, or a poison batch
    /// stops the loop ([`Error::Handler`]). The loop is the core's
    /// [`comet_core::platform::consume::process`].
    pub fn process<F>(&mut self, handler: F, opts: ProcessOptions<'_>) -> Result<ProcessSummary>
    where
        F: FnMut(&[Message]) -> std::result::Result<Flow, HandlerError>,
    {
        process(&mut Source(self), handler, opts)
    }
}
