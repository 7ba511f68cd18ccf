//! Reading into caller buffers, and consumer groups over `offsets.state`.
//!
//! Reads never allocate: the entry's chunk is read with one `pread` into
//! the log's preallocated read buffer and checked against its CRC-32 (the
//! core's read path, `comet_core::platform::read`), then the payload is copied into
//! the caller's buffer, or decoded into it from a zstd frame. A chunk
//! larger than the read buffer streams through it. Only durable entries
//! are readable. A read that meets a damaged chunk fails with an error
//! naming its entries and never skips it.
//!
//! Consumer groups keep a cumulative offset per shard — the next entry to
//! read — in the shard's `offsets.state`, shared with every process (and
//! with the std crate) through the core's CAS slot protocol. Delivery is
//! at-least-once: entries read but not acked are read again after a
//! restart.

use comet_core::platform::group::{GroupLink, resume_point};
use comet_core::platform::read::payload_into;
use comet_core::platform::state::offsets::{MAX_GROUP_LEN, validate_group};
use comet_core::platform::wire::{frame_dict_id, is_frame};
use comet_core::{Counter, SeekTo, ShardId, WireError};

use crate::compress::DictLoadError;
use crate::config::MAX_SHARDS;
use comet_linux::Error;
use std::path::Path;

use crate::log::Log;
use crate::shard::EngineError;

/// An entry read into a caller's buffer: the payload is `buf[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The shard.
    pub shard: ShardId,
    /// Its entry number.
    pub entry: u64,
    /// Its timestamp (ns since the epoch).
    pub timestamp: u64,
    /// Payload bytes written to the caller's buffer.
    pub len: usize,
    /// It was stored as a zstd frame and decoded.
    pub compressed: bool,
}

/// A core error of a read: a chunk over the read buffer is the caller's
/// [`Error::BufferTooSmall`].
fn engine_err(shard: ShardId, dir: &Path) -> impl Fn(EngineError) -> Error + '_ {
    move |source| match source {
        comet_core::Error::Capacity { needed, available, what: "read buffer" } => {
            Error::BufferTooSmall { needed, available }
        }
        source => Error::from_core(shard, dir, source),
    }
}

impl Log {
    /// Reads durable entry `entry` of shard `id` into `buf` (decoding a
    /// compressed payload) without allocating. The payload is
    /// `buf[..returned.len]`. The entry's chunk is checked against its
    /// checksum first (one `pread` per chunk: sequential reads are served
    /// from the checked chunk). Errors: [`Error::BufferTooSmall`],
    /// [`Error::Damaged`] (the chunk fails its checksum), [`Error::Lost`]
    /// (a range recorded as lost), [`Error::Unavailable`] (not durable or
    /// retained), [`Error::Decompress`], [`Error::MissingDictionary`].
    pub fn read_into(&mut self, id: ShardId, entry: u64, buf: &mut [u8]) -> Result<Entry, Error> {
        let i = self.index(id).ok_or(Error::ShardNotOpen(id))?;
        let r = self.read_in(i, entry, buf);
        let s = &self.shards[i];
        match &r {
            Ok(_) => s.bump(Counter::EntriesRead, 1),
            Err(_) => s.bump(Counter::ReadErrors, 1),
        }
        r
    }

    /// Points the read buffer at shard `id` (dropping another shard's data).
    fn reads_of(&mut self, id: ShardId) {
        if self.read_of != Some(id) {
            self.reads.clear();
            self.read_of = Some(id);
        }
    }

    fn read_in(&mut self, i: usize, entry: u64, buf: &mut [u8]) -> Result<Entry, Error> {
        let id = self.shards[i].id;
        self.reads_of(id);
        let s = &*self.shards[i];
        let (header, stored) = s.engine.read_stored(entry, &mut self.reads).map_err(engine_err(id, s.dir.path()))?;
        if is_frame(stored)
            && let Ok(Some(dict)) = frame_dict_id(stored)
        {
            self.decoder.ensure_dict(id, dict, s.engine.storage()).map_err(|e| match e {
                DictLoadError::Missing => Error::MissingDictionary { shard: id, entry, id: dict },
                DictLoadError::Engine(source) => Error::from_core(id, s.dir.path(), source),
            })?;
        }
        let available = buf.len() as u64;
        let (len, compressed) = payload_into(stored, buf, &mut self.decoder).map_err(|error| match error {
            WireError::OutputTooSmall { needed } => Error::BufferTooSmall { needed, available },
            error => Error::Decompress {
                shard: id,
                entry,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            },
        })?;
        Ok(Entry { shard: id, entry, timestamp: header.timestamp, len, compressed })
    }

    /// The stored offset (next entry to read) of `group` on shard `id`, or
    /// `None` if the group never acked there. Never claims a slot.
    pub fn group_offset(&self, id: ShardId, group: &str) -> Result<Option<u64>, Error> {
        let s = self.shard(id)?;
        let t = s.offsets()?;
        t.get(group).map(|o| o.map(|o| o.offset)).map_err(|source| Error::Offsets { shard: id, source })
    }

    /// Where `group` resumes on shard `id`: its stored offset, raised to the
    /// first retained entry (retention may have removed what it skipped).
    pub fn resume_point(&self, id: ShardId, group: &str) -> Result<u64, Error> {
        let first = self.first_entry(id)?;
        Ok(resume_point(self.group_offset(id, group)?, first))
    }

    /// Acknowledges that `group` processed every entry of shard `id` below
    /// `next`, capped at the durable end (an ack cannot skip entries not
    /// written yet). Offsets never move backwards; returns the stored
    /// offset.
    pub fn ack(&self, id: ShardId, group: &str, next: u64) -> Result<u64, Error> {
        let s = self.shard(id)?;
        let words = s.offsets.writable().ok_or(Error::ShardNotOpen(id))?;
        let mut link = GroupLink::default();
        let next = link.cap(next, || Ok::<_, Error>(s.engine.durable_end()))?;
        let stored = link
            .advance(words, group, next, crate::now_ns(), std::thread::yield_now)
            .map_err(|source| Error::Offsets { shard: id, source })?;
        s.bump(Counter::Acks, 1);
        Ok(stored)
    }

    /// Moves `group`'s offset on shard `id` to entry `next`, backwards if
    /// need be (replay): [`seek`](Log::seek) to [`SeekTo::Entry`], so the
    /// target is clamped to the retained range and moved past a lost range
    /// as there. Returns the entry the group now points at.
    pub fn reset_offset(&self, id: ShardId, group: &str, next: u64) -> Result<u64, Error> {
        let s = self.shard(id)?;
        let target = s.engine.readable_from(next);
        s.offsets()?.set(group, target, crate::now_ns()).map_err(|source| Error::Offsets { shard: id, source })?;
        Ok(target)
    }

    /// Moves `group`'s offset on shard `id` (backwards too: replay) and
    /// returns the entry it now points at: the target clamped to the
    /// retained range, and past any lost range it falls in (entries
    /// recovery reported missing), so the group can read on — the std
    /// crate's `Consumer::seek`. A [`SeekTo::Time`] target reads O(log n)
    /// entries through the log's read buffer: a damaged chunk on the way
    /// is its error ([`Error::Damaged`]), as is an entry larger than the
    /// buffer ([`Error::BufferTooSmall`]).
    pub fn seek(&mut self, id: ShardId, group: &str, to: SeekTo) -> Result<u64, Error> {
        let i = self.index(id).ok_or(Error::ShardNotOpen(id))?;
        self.reads_of(id);
        let s = &*self.shards[i];
        let (first, end) = (s.engine.first_entry(), s.engine.durable_end());
        let target = to
            .target(first, end, |ts| s.engine.seek_time(ts, &mut self.reads))
            .map_err(engine_err(id, s.dir.path()))?;
        self.reset_offset(id, group, target)
    }

    /// Durable entries `group` has not acked on shard `id`.
    pub fn lag(&self, id: ShardId, group: &str) -> Result<u64, Error> {
        let (first, end) = (self.first_entry(id)?, self.durable_end(id)?);
        Ok(comet_core::platform::group::lag(self.group_offset(id, group)?, first, end))
    }
}

/// A consumer group reading through a [`Log`], one cursor per shard.
///
/// `next` returns entries from the group's stored offset on; `ack` stores
/// the position after the last entry returned. Entries returned but not
/// acked are returned again by a new consumer (at-least-once).
#[derive(Debug, Clone)]
pub struct Consumer {
    group: heapless::String<MAX_GROUP_LEN>,
    cursors: heapless::Vec<(ShardId, u64), MAX_SHARDS>,
}

impl Consumer {
    /// A consumer of `group` (1..=47 bytes, no NUL).
    pub fn new(group: &str) -> Result<Consumer, Error> {
        validate_group(group).map_err(Error::InvalidGroup)?;
        let mut name = heapless::String::new();
        name.push_str(group).map_err(|_| Error::InvalidGroup(comet_core::NameError::Empty))?;
        Ok(Consumer { group: name, cursors: heapless::Vec::new() })
    }

    /// The group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn cursor(&mut self, log: &Log, id: ShardId) -> Result<&mut u64, Error> {
        let pos = match self.cursors.iter().position(|(s, _)| *s == id) {
            Some(i) => i,
            None => {
                let start = log.resume_point(id, &self.group)?;
                self.cursors
                    .push((id, start))
                    .map_err(|_| Error::TooManyShards { max: u16::try_from(MAX_SHARDS).unwrap_or(u16::MAX) })?;
                self.cursors.len() - 1
            }
        };
        Ok(&mut self.cursors[pos].1)
    }

    /// The next unread durable entry of shard `id`, copied into `buf`, or
    /// `None` when the group has caught up. An unreadable entry is an error
    /// and is returned again by the next call (never skipped).
    pub fn next(&mut self, log: &mut Log, id: ShardId, buf: &mut [u8]) -> Result<Option<Entry>, Error> {
        let first = log.first_entry(id)?;
        let end = log.durable_end(id)?;
        let cur = self.cursor(log, id)?;
        *cur = (*cur).max(first);
        if *cur >= end {
            return Ok(None);
        }
        let at = *cur;
        let e = log.read_into(id, at, buf)?;
        if let Some(c) = self.cursors.iter_mut().find(|(s, _)| *s == id) {
            c.1 = at + 1;
        }
        Ok(Some(e))
    }

    /// Acks every entry of shard `id` returned so far; returns the stored
    /// offset.
    pub fn ack(&mut self, log: &Log, id: ShardId) -> Result<u64, Error> {
        let group = self.group.clone();
        let at = *self.cursor(log, id)?;
        log.ack(id, &group, at)
    }

    /// Forgets the cursor of shard `id`: the next read resumes at the stored
    /// offset (redelivering what was read but not acked).
    pub fn rewind(&mut self, id: ShardId) {
        self.cursors.retain(|(s, _)| *s != id);
    }

    /// Moves the group (stored offset and cursor) to `entry` on shard `id`
    /// ([`Log::reset_offset`]); returns the entry it now points at.
    pub fn seek(&mut self, log: &Log, id: ShardId, entry: u64) -> Result<u64, Error> {
        let at = log.reset_offset(id, &self.group, entry)?;
        self.rewind(id);
        Ok(at)
    }

    /// Moves the group (stored offset and cursor) on shard `id` to the
    /// start, the end, an entry, `n` entries before the end or a time
    /// ([`Log::seek`]); returns the entry it now points at.
    pub fn seek_to(&mut self, log: &mut Log, id: ShardId, to: SeekTo) -> Result<u64, Error> {
        let at = log.seek(id, &self.group, to)?;
        self.rewind(id);
        Ok(at)
    }

    /// Durable entries of shard `id` the group has not acked.
    pub fn lag(&self, log: &Log, id: ShardId) -> Result<u64, Error> {
        log.lag(id, &self.group)
    }
}
