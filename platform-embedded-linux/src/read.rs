//! Reading into caller buffers, and consumer groups over `offsets.state`.
//!
//! Reads never allocate: the stored payload is copied with `pread` into the
//! caller's buffer; a zstd frame is moved to the log's preallocated read
//! scratch and decoded back into the caller's buffer. Only durable entries
//! are readable. A read that meets a damaged entry fails with an error
//! naming it and never skips it.
//!
//! Consumer groups keep a cumulative offset per shard — the next entry to
//! read — in the shard's `offsets.state`, shared with every process (and
//! with the std crate) through the core's CAS slot protocol. Delivery is
//! at-least-once: entries read but not acked are read again after a
//! restart.

use comet_core::ShardId;
use comet_core::shard::{EntryLocation, read_entry_into};
use comet_core::state::Counter;
use comet_core::state::offsets::{MAX_GROUP_LEN, validate_group};
use comet_core::storage::{OpenMode, Storage};
use comet_core::wire::{Decompressor, is_frame, segment_file_name};

use crate::config::MAX_SHARDS;
use crate::error::{EngineError, Error};
use crate::log::Log;
use crate::shard::OpenShard;

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

fn engine_err(shard: ShardId) -> impl Fn(EngineError) -> Error {
    move |source| match source {
        comet_core::Error::Capacity { needed, available, .. } => Error::BufferTooSmall { needed, available },
        source => Error::Engine { shard, source },
    }
}

/// Reads the stored payload of `entry` into `out`, keeping the sealed
/// segment's file open for the next read.
fn read_stored(
    s: &mut OpenShard,
    loc: &EntryLocation,
    entry: u64,
    out: &mut [u8],
) -> Result<comet_core::shard::EntryRef, EngineError> {
    let go =
        |file: &_, out: &mut [u8]| read_entry_into(file, loc.base, loc.from, entry, loc.limit, loc.max_stored, out);
    if loc.active {
        return go(s.engine.active_file(), out);
    }
    if s.reader.as_ref().is_none_or(|(base, _)| *base != loc.base) {
        s.reader = None;
        let name = segment_file_name(loc.base);
        let f = s.engine.storage().open(&name, OpenMode::Read).map_err(|e| comet_core::Error::Storage {
            op: comet_core::error::IoOp::Open,
            file: name,
            source: e,
        })?;
        s.reader = Some((loc.base, f));
    }
    match &s.reader {
        Some((_, f)) => go(f, out),
        None => Err(comet_core::Error::EntryUnavailable {
            entry,
            first: s.engine.first_entry(),
            end: s.engine.durable_end(),
        }),
    }
}

impl Log {
    /// Reads durable entry `entry` of shard `id` into `buf` (decoding a
    /// compressed payload) without allocating. The payload is
    /// `buf[..returned.len]`. Errors: [`Error::BufferTooSmall`],
    /// [`Error::Engine`] with `EntryUnavailable` (not durable, retained or
    /// present) or `Corrupt`, [`Error::Decompress`].
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

    fn read_in(&mut self, i: usize, entry: u64, buf: &mut [u8]) -> Result<Entry, Error> {
        let s = &mut *self.shards[i];
        let id = s.id;
        let loc = s.engine.locate(entry).map_err(engine_err(id))?;
        let stored = match read_stored(s, &loc, entry, buf) {
            Ok(r) => (r, false),
            // A payload with the zstd magic is stored in a raw frame a few
            // bytes longer than itself: read it into the scratch instead.
            Err(comet_core::Error::Capacity { .. }) => {
                let r = read_stored(s, &loc, entry, &mut self.read_buf).map_err(engine_err(id))?;
                (r, true)
            }
            Err(e) => return Err(engine_err(id)(e)),
        };
        let (r, in_scratch) = stored;
        let n = r.header.len as usize;
        let frame: &[u8] = if in_scratch {
            if !is_frame(&self.read_buf[..n]) {
                return Err(Error::BufferTooSmall { needed: n as u64, available: buf.len() as u64 });
            }
            &self.read_buf[..n]
        } else if is_frame(&buf[..n]) {
            let Some(dst) = self.read_buf.get_mut(..n) else {
                return Err(Error::BufferTooSmall { needed: n as u64, available: self.read_buf.len() as u64 });
            };
            dst.copy_from_slice(&buf[..n]);
            &self.read_buf[..n]
        } else {
            return Ok(Entry { shard: id, entry, timestamp: r.header.timestamp, len: n, compressed: false });
        };
        let len = self.decoder.decompress(frame, buf).map_err(|error| match error {
            comet_core::wire::WireError::OutputTooSmall { needed } => {
                Error::BufferTooSmall { needed, available: buf.len() as u64 }
            }
            error => Error::Decompress { shard: id, entry, error },
        })?;
        Ok(Entry { shard: id, entry, timestamp: r.header.timestamp, len, compressed: true })
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
        Ok(self.group_offset(id, group)?.unwrap_or(first).max(first))
    }

    /// Acknowledges that `group` processed every entry of shard `id` below
    /// `next`. Offsets never move backwards; returns the stored offset.
    pub fn ack(&self, id: ShardId, group: &str, next: u64) -> Result<u64, Error> {
        let s = self.shard(id)?;
        let t = s.offsets()?;
        let stored = t.advance(group, next, crate::now_ns()).map_err(|source| Error::Offsets { shard: id, source })?;
        s.bump(Counter::Acks, 1);
        Ok(stored)
    }

    /// Sets `group`'s offset on shard `id` to `next`, backwards if need be
    /// (replay).
    pub fn reset_offset(&self, id: ShardId, group: &str, next: u64) -> Result<(), Error> {
        let s = self.shard(id)?;
        s.offsets()?.set(group, next, crate::now_ns()).map_err(|source| Error::Offsets { shard: id, source })
    }

    /// Durable entries `group` has not acked on shard `id`.
    pub fn lag(&self, id: ShardId, group: &str) -> Result<u64, Error> {
        let end = self.durable_end(id)?;
        Ok(end.saturating_sub(self.resume_point(id, group)?))
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
        validate_group(group).map_err(Error::Group)?;
        let mut name = heapless::String::new();
        name.push_str(group).map_err(|_| Error::Group(comet_core::NameError::Empty))?;
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

    /// Moves the group (stored offset and cursor) to `entry` on shard `id`.
    pub fn seek(&mut self, log: &Log, id: ShardId, entry: u64) -> Result<(), Error> {
        log.reset_offset(id, &self.group, entry)?;
        self.rewind(id);
        Ok(())
    }

    /// Durable entries of shard `id` the group has not acked.
    pub fn lag(&self, log: &Log, id: ShardId) -> Result<u64, Error> {
        log.lag(id, &self.group)
    }
}
