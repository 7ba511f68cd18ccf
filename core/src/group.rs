//! Consumer-group rules, decided once for every platform: where a group
//! resumes, its lag, the cumulative advance (capped at the durable end,
//! never backwards) with its cached-slot fast path, what a seek moves the
//! offset to, and how a multi-shard ack is grouped by shard.
//!
//! The offsets themselves live in `offsets.state` ([`OffsetsTable`]); the
//! platforms supply its mapping, the shard's bounds and the clock, and call
//! these rules.

use core::ops::Range;
use core::sync::atomic::AtomicU64;

use crate::state::shm::{GroupSlot, OffsetsError, OffsetsTable};

/// Where a group resumes: its stored offset (`None`: it never acked),
/// raised to the first retained entry (entries retention deleted cannot be
/// read).
pub fn resume_point(stored: Option<u64>, first: u64) -> u64 {
    stored.unwrap_or(0).max(first)
}

/// Durable entries a group has not acked: from its
/// [`resume_point`] to the durable end `end`.
pub fn lag(stored: Option<u64>, first: u64, end: u64) -> u64 {
    end.saturating_sub(resume_point(stored, first))
}

/// Where a seek moves a group's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The first retained entry (replay everything kept).
    Start,
    /// The durable end (skip everything so far).
    End,
    /// A given entry number.
    Entry(u64),
    /// `n` entries before the durable end (replay the last `n`).
    FromEnd(u64),
    /// The first entry with a timestamp at or after this (ns since epoch;
    /// `SeekTo::time`, feature `std`, makes it from a `SystemTime`).
    Time(u64),
}

impl SeekTo {
    /// [`SeekTo::Time`] of a [`SystemTime`](std::time::SystemTime): the
    /// first entry appended at or after `time` (a time before the epoch
    /// is the first retained entry; one past the year 2554 is the end).
    #[cfg(feature = "std")]
    pub fn time(time: std::time::SystemTime) -> SeekTo {
        SeekTo::Time(crate::metrics::unix_ns(time))
    }

    /// The entry this target names in a shard retaining `first..end`,
    /// before it is clamped to the retained range and moved past lost
    /// ranges (the platform's `readable_from`). `by_time` finds the first
    /// entry stamped at or after a time (see [`crate::read::seek_time`]).
    pub fn target<E>(self, first: u64, end: u64, by_time: impl FnOnce(u64) -> Result<u64, E>) -> Result<u64, E> {
        Ok(match self {
            SeekTo::Start => first,
            SeekTo::End => end,
            SeekTo::Entry(n) => n,
            SeekTo::FromEnd(n) => end.saturating_sub(n),
            SeekTo::Time(ts) => by_time(ts)?,
        })
    }
}

/// Why [`check_ack_range`] refused a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckRangeError {
    /// The range starts past the group's offset `offset`: acking it would
    /// leave a hole, which a cumulative offset cannot represent.
    Gap {
        /// The group's offset.
        offset: u64,
        /// The range's start.
        start: u64,
    },
    /// The range ends past the durable end: `entry` (its last) is not
    /// durable yet.
    PastEnd {
        /// The range's last entry.
        entry: u64,
    },
}

/// The rule of an ack of a range: it must start at or below the group's
/// offset `offset` and end at or below the durable end `end`. An empty
/// range past the offset is a gap too.
pub fn check_ack_range(range: &Range<u64>, offset: u64, end: u64) -> Result<(), AckRangeError> {
    if range.start > offset {
        return Err(AckRangeError::Gap { offset, start: range.start });
    }
    if range.end > end {
        return Err(AckRangeError::PastEnd { entry: range.end - 1 });
    }
    Ok(())
}

/// How long acks through the cached slot
/// ([`advance_cached`](GroupLink::advance_cached)) may stay uncounted in
/// the slot's update count (and the platform's `Acks` counter): 1 ms of
/// the ack clock.
pub const ACK_COUNT_DELAY_NS: u64 = 1_000_000;

/// One group's place in one shard's `offsets.state`, kept between calls:
/// its slot (slots never move, so lookups and acks go straight to it and
/// the table is searched again only when the slot's name check fails), the
/// highest durable end seen (it never decreases, so acks up to it need no
/// head read), and the acks of the fast path not counted yet.
///
/// **Counting.** An ack through [`advance_cached`](GroupLink::advance_cached)
/// stores the offset at once (it is in the shared table when the call
/// returns) but only notes the ack; the noted acks are added to the slot's
/// [`updates`](crate::platform::shm::GroupOffset::updates) — and returned
/// for the platform's `Acks` counter — by the first `advance_cached` at
/// least [`ACK_COUNT_DELAY_NS`] after the last count, and by
/// [`publish`](GroupLink::publish), which a platform calls at its other
/// points (its next read, lag, seek, drop). A link dropped without
/// `publish` loses at most the acks of that last millisecond from the
/// counts, never an offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupLink {
    slot: Option<GroupSlot>,
    end: u64,
    /// Acks taken through the cached slot and not counted yet.
    uncounted: u64,
    /// The ack clock when they were last counted.
    counted_at: u64,
}

impl GroupLink {
    /// The group's stored offset (`None`: it never acked or seeked here)
    /// in the table mapped at `words` (read-only is enough; nothing is
    /// written). Reads the cached slot if it still holds the group, else
    /// looks the group up and caches its slot.
    pub fn stored(&mut self, words: &[AtomicU64], group: &str, pause: fn()) -> Result<Option<u64>, OffsetsError> {
        if let Some(o) = self.slot.and_then(|s| s.get(words)) {
            return Ok(o.map(|o| o.offset));
        }
        let Some(t) = OffsetsTable::open_read(words, pause)? else {
            return Ok(None);
        };
        self.slot = t.find_slot(group)?;
        if let Some(o) = self.slot.and_then(|s| s.get(words)) {
            return Ok(o.map(|o| o.offset));
        }
        // A slot without a stored name check (a Go-written table read
        // without upgrading it): the table's own lookup.
        Ok(t.get(group)?.map(|o| o.offset))
    }

    /// `to` capped at the durable end. `durable_end` (a head read) is
    /// called only when `to` is past the highest end seen so far.
    pub fn cap<E>(&mut self, to: u64, durable_end: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        if to > self.end {
            self.end = self.end.max(durable_end()?);
        }
        Ok(to.min(self.end))
    }

    /// `Some(n)` if the cached slot took the advance of the group's offset
    /// to `to` (never lowered) in the table at `words` (a writable
    /// mapping): the fast path, which opens no table. The ack is noted, not
    /// counted (see *Counting* above); `n` is how many acks were counted
    /// now (the platform adds them to its `Acks` counter; usually 0).
    /// `None`: nothing was written, call [`advance`](GroupLink::advance).
    pub fn advance_cached(&mut self, words: &[AtomicU64], to: u64, now_ns: u64) -> Option<u64> {
        self.slot?.advance_uncounted(words, to, now_ns)?;
        self.uncounted += 1;
        if now_ns.wrapping_sub(self.counted_at) < ACK_COUNT_DELAY_NS {
            return Some(0);
        }
        self.counted_at = now_ns;
        Some(self.publish(words))
    }

    /// Counts the noted acks in the slot's update count (through a writable
    /// mapping `words`) and returns how many there were, for the
    /// platform's `Acks` counter. Cheap when there are none.
    pub fn publish(&mut self, words: &[AtomicU64]) -> u64 {
        let n = core::mem::take(&mut self.uncounted);
        if n > 0
            && let Some(slot) = self.slot
        {
            // `false` if the table was replaced under the slot (repair, a
            // new shard): its counts went with it.
            let _ = slot.add_updates(words, n);
        }
        n
    }

    /// Acks noted and not counted yet.
    pub fn uncounted(&self) -> u64 {
        self.uncounted
    }

    /// Raises the group's offset to `to` (never lowers it) in the table
    /// mapped writable at `words` — through the cached slot if it still
    /// holds the group, else by claiming (or finding) its slot, which is
    /// cached. Returns the offset now stored. Cap `to` first
    /// ([`cap`](GroupLink::cap)): an offset past the durable end would
    /// skip entries not written yet.
    pub fn advance(
        &mut self,
        words: &[AtomicU64],
        group: &str,
        to: u64,
        now_ns: u64,
        pause: fn(),
    ) -> Result<u64, OffsetsError> {
        if let Some(stored) = self.slot.and_then(|s| s.advance(words, to, now_ns)) {
            return Ok(stored);
        }
        let t = OffsetsTable::open(words, pause)?;
        let slot = t.slot_of(group)?;
        self.slot = Some(slot);
        match slot.advance(words, to, now_ns) {
            Some(stored) => Ok(stored),
            None => t.advance(group, to, now_ns),
        }
    }
}

/// Distinct shards [`ack_highs`] sorts out without allocating.
pub const ACK_INLINE: usize = 8;

/// Groups acked ids `(shard, entry)` by shard and calls `advance(shard,
/// highest entry + 1)` once per shard (offsets are cumulative), stopping
/// at its first error. One linear pass for up to [`ACK_INLINE`] shards
/// (batches are nearly always one shard, in order); the rest are sorted.
#[cfg(feature = "alloc")]
pub fn ack_highs<E>(
    ids: impl Iterator<Item = (crate::ShardId, u64)>,
    mut advance: impl FnMut(crate::ShardId, u64) -> Result<(), E>,
) -> Result<(), E> {
    let mut high = [(crate::ShardId::MIN, 0u64); ACK_INLINE];
    let mut n = 0;
    let mut spill: alloc::vec::Vec<(crate::ShardId, u64)> = alloc::vec::Vec::new();
    for (shard, entry) in ids {
        if n > 0 && high[n - 1].0 == shard {
            high[n - 1].1 = high[n - 1].1.max(entry);
        } else if let Some(h) = high[..n].iter_mut().find(|h| h.0 == shard) {
            h.1 = h.1.max(entry);
        } else if n < ACK_INLINE {
            high[n] = (shard, entry);
            n += 1;
        } else {
            spill.push((shard, entry));
        }
    }
    for &(shard, h) in &high[..n] {
        advance(shard, h.saturating_add(1))?;
    }
    if !spill.is_empty() {
        // More shards than the inline array: sort the rest by shard.
        spill.sort_unstable_by_key(|&(shard, entry)| (shard, core::cmp::Reverse(entry)));
        let mut last = None;
        for (shard, entry) in spill {
            if last != Some(shard) {
                last = Some(shard);
                advance(shard, entry.saturating_add(1))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
