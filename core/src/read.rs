//! The read path, shared by every platform: find an entry's chunk, check
//! the chunk against the checksum on record, walk the chunk's entries.
//!
//! No read returns bytes whose checksum was not verified:
//!
//! * a sealed segment's chunk is checked against its chunk table, which the
//!   manifest record vouches for with a CRC-32 over the table;
//! * an active segment's closed chunk is checked against its journal
//!   record, which the durable head vouches for (its `closed_hash` is a
//!   CRC-32 over the closed chunks' CRCs, see [`ActiveTable`]);
//! * the active segment's open chunk is checked against the head's
//!   `open_crc` over exactly the durable bytes.
//!
//! A check covers the chunk's CRC-32 and its framing (exactly the expected
//! number of valid entries, ending at the chunk's end), so the entries
//! walked afterwards are exactly what was appended. Platforms cache the
//! outcome per chunk and mapping (or per buffer), so a sequential reader
//! checks each chunk once and a random read checks only the chunk it lands
//! in.
//!
//! The platform supplies the bytes: `comet` hands in slices of a memory
//! map (zero-copy), `comet-embedded` a buffer filled with one `pread` per
//! chunk ([`load_chunk`]), or streams a chunk larger than its buffer
//! ([`check_streaming`]).
//!
//! Where an entry's chunk is and when it is checked is decided once, for
//! both ways of reading: [`locate_sealed`], [`read_table_records`],
//! [`SealedChunks`] and [`ActiveChunks`] (in `read/locate.rs`).

mod locate;
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
mod mapped;

pub use locate::{
    ActiveChunks, CheckedChunks, ChunkFault, Sealed, SealedChunks, chunk_in, locate_sealed, read_table_records,
};
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub use mapped::{Found, MappedReader, Mapper};

use alloc::vec::Vec;
use core::ops::Range;

use crate::error::ChunkDamage;
use crate::index::table::TABLE_RECORD;
use crate::index::{ChunkRec, SegmentMeta, Table};
use crate::state::DurableHead;
use crate::storage::{StorageFile, read_exact_at};
use crate::wire::{Decompressor, EntryHeader, EntryStatus, HEADER_LEN, WireError, classify_entry, is_frame};

/// Where a chunk lies and what its bytes must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkPos {
    /// Base entry of the segment.
    pub segment: u64,
    /// Index of the chunk in the segment.
    pub index: u32,
    /// First entry of the chunk.
    pub first: u64,
    /// Entries in the chunk.
    pub entries: u32,
    /// Byte offset of the chunk in the segment.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
}

impl ChunkPos {
    /// Chunk `k` of sealed segment `seg`, from its chunk table (checked
    /// against `seg` by the caller, see [`SegmentMeta::check_table`]).
    pub fn sealed(seg: &SegmentMeta, interval: u32, table: &Table<'_>, k: u32) -> Option<ChunkPos> {
        let rec = table.get(k as usize)?;
        let (start, end) = table.range(k as usize)?;
        let entries = seg.chunk_entries(k, interval);
        Some(ChunkPos {
            segment: seg.base,
            index: k,
            first: entries.start,
            entries: u32::try_from(entries.end - entries.start).ok()?,
            start,
            end,
            crc: rec.crc,
        })
    }

    /// Chunk `k` of the active segment `head` describes, from the closed
    /// chunks' records `closed` (at least `head.entries / interval` of them,
    /// checked against the head, see [`ActiveTable`]); the open chunk
    /// comes from the head itself.
    pub fn active(head: &DurableHead, interval: u32, closed: &Table<'_>, k: u32) -> Option<ChunkPos> {
        let step = u64::from(interval.max(1));
        let n_closed = head.entries / step;
        let first = head.base.checked_add(u64::from(k).checked_mul(step)?)?;
        if u64::from(k) < n_closed {
            let rec = closed.get(k as usize)?;
            let (start, end) = closed.range(k as usize)?;
            return Some(ChunkPos { segment: head.base, index: k, first, entries: interval, start, end, crc: rec.crc });
        }
        let open = head.entries % step;
        if u64::from(k) != n_closed || open == 0 {
            return None;
        }
        let start = match usize::try_from(n_closed).ok()?.checked_sub(1) {
            Some(last) => u64::from(closed.get(last)?.end),
            None => 0,
        };
        Some(ChunkPos {
            segment: head.base,
            index: k,
            first,
            entries: u32::try_from(open).ok()?,
            start,
            end: head.bytes,
            crc: head.open_crc,
        })
    }

    /// The chunk's entry numbers.
    pub fn entry_range(&self) -> Range<u64> {
        self.first..self.first + u64::from(self.entries)
    }

    /// The chunk's length in bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True for a chunk of no bytes (never for a chunk of a valid table).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The damage report for a problem at segment byte `offset`.
    pub fn damage(&self, offset: u64, error: WireError) -> ChunkDamage {
        ChunkDamage {
            segment: self.segment,
            chunk: self.index,
            first: self.first,
            end: self.first + u64::from(self.entries),
            offset,
            error,
        }
    }
}

/// Checks a chunk's bytes (exactly `pos.start..pos.end` of its segment):
/// their CRC-32, then that they hold exactly `pos.entries` valid entries
/// ending at the chunk's end.
pub fn check_chunk(bytes: &[u8], pos: &ChunkPos, max_stored: u32) -> Result<(), ChunkDamage> {
    check_chunk_marking(bytes, pos, max_stored, &mut [])
}

/// Entries between two [marks](check_chunk_marking) of a checked chunk:
/// finding an entry from the nearest mark hops over 3.5 headers on
/// average instead of half a chunk's.
pub const MARK_STRIDE: u32 = 8;

/// How many marks a chunk of `interval` entries has: one at every
/// [`MARK_STRIDE`]-th entry after its first (which starts the chunk).
pub fn marks_per_chunk(interval: u32) -> usize {
    (interval.saturating_sub(1) / MARK_STRIDE) as usize
}

/// [`check_chunk`], also writing into `marks` the byte offset within the
/// chunk of entry `MARK_STRIDE * (j + 1)` at `marks[j]` (as many as
/// `marks` holds and the chunk has; the rest are left alone), so a reader
/// can start its walk to an entry near it. The walk the framing check
/// makes anyway finds them.
pub fn check_chunk_marking(
    bytes: &[u8],
    pos: &ChunkPos,
    max_stored: u32,
    marks: &mut [u32],
) -> Result<(), ChunkDamage> {
    if bytes.len() as u64 != pos.len() {
        let e = WireError::Truncated { needed: pos.len(), available: bytes.len() as u64 };
        return Err(pos.damage(pos.start + bytes.len() as u64, e));
    }
    let actual = crc32fast::hash(bytes);
    if actual != pos.crc {
        return Err(pos.damage(pos.start, WireError::ChecksumMismatch { expected: pos.crc, actual }));
    }
    check_framing(bytes, pos, max_stored, marks)
}

/// The framing half of [`check_chunk`], recording marks as
/// [`check_chunk_marking`] describes.
fn check_framing(bytes: &[u8], pos: &ChunkPos, max_stored: u32, marks: &mut [u32]) -> Result<(), ChunkDamage> {
    let mut at = 0usize;
    for i in 0..pos.entries {
        if i > 0
            && i % MARK_STRIDE == 0
            && let Some(m) = marks.get_mut((i / MARK_STRIDE - 1) as usize)
        {
            *m = crate::num::at32(at);
        }
        let rest = bytes.get(at..).unwrap_or_default();
        let head = rest.get(..HEADER_LEN).unwrap_or(rest);
        match classify_entry(head, rest.len() as u64, max_stored) {
            EntryStatus::Valid(h) => at += HEADER_LEN + h.len as usize,
            EntryStatus::Invalid(e) => return Err(pos.damage(pos.start + at as u64, e)),
            _ => {
                let e = WireError::Truncated { needed: HEADER_LEN as u64, available: rest.len() as u64 };
                return Err(pos.damage(pos.start + at as u64, e));
            }
        }
    }
    if at != bytes.len() {
        let e = WireError::InvalidField { offset: crate::num::at32(at) };
        return Err(pos.damage(pos.start + at as u64, e));
    }
    Ok(())
}

/// One entry inside a checked chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// Its entry number.
    pub entry: u64,
    /// Its timestamp.
    pub timestamp: u64,
    /// The stored payload (raw bytes, or a zstd frame).
    pub stored: &'a [u8],
    /// Byte offset of the entry's header within the chunk.
    pub at: usize,
}

/// The entries of a checked chunk, in order (see [`check_chunk`]). Stops
/// early, without panicking, on bytes that were not checked.
#[derive(Debug, Clone)]
pub struct ChunkEntries<'a> {
    bytes: &'a [u8],
    at: usize,
    entry: u64,
}

impl<'a> ChunkEntries<'a> {
    /// The entries of `bytes`, a checked chunk whose first entry is `first`.
    pub fn new(bytes: &'a [u8], first: u64) -> ChunkEntries<'a> {
        ChunkEntries { bytes, at: 0, entry: first }
    }

    /// Resumes at byte `at` of the chunk, where entry `entry` starts (a
    /// position an earlier [`EntryView`] reported).
    pub fn resume(bytes: &'a [u8], at: usize, entry: u64) -> ChunkEntries<'a> {
        ChunkEntries { bytes, at, entry }
    }

    /// The number of the entry the next call returns.
    pub fn next_entry(&self) -> u64 {
        self.entry
    }

    /// Byte offset in the chunk of the entry the next call returns.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Skips to entry `target` (hopping over headers only); false if the
    /// chunk ends first.
    pub fn skip_to(&mut self, target: u64) -> bool {
        while self.entry < target {
            let Some(len) = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk::<4>) else {
                return false;
            };
            self.at = self.at.saturating_add(HEADER_LEN + u32::from_le_bytes(*len) as usize);
            self.entry += 1;
        }
        self.at < self.bytes.len()
    }
}

impl<'a> Iterator for ChunkEntries<'a> {
    type Item = EntryView<'a>;

    fn next(&mut self) -> Option<EntryView<'a>> {
        let head = self.bytes.get(self.at..self.at.checked_add(HEADER_LEN)?)?;
        let h = EntryHeader::parse(head).ok()?;
        let start = self.at + HEADER_LEN;
        let stored = self.bytes.get(start..start.checked_add(h.len as usize)?)?;
        let view = EntryView { entry: self.entry, timestamp: h.timestamp, stored, at: self.at };
        self.at = start + stored.len();
        self.entry += 1;
        Some(view)
    }
}

/// The closed chunks of an active segment as a reader knows them: records
/// taken from the segment's journal (or rebuilt from its bytes) and
/// accepted only when their CRCs fold to a durable head's `closed_hash`.
#[derive(Debug, Clone)]
pub struct ActiveTable {
    base: u64,
    interval: u32,
    recs: Vec<u8>,
    fold: crc32fast::Hasher,
}

impl ActiveTable {
    /// An empty table for the active segment starting at `base`.
    pub fn new(base: u64, interval: u32) -> ActiveTable {
        ActiveTable { base, interval: interval.max(1), recs: Vec::new(), fold: crc32fast::Hasher::new() }
    }

    /// The segment's base entry.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Entries per chunk.
    pub fn interval(&self) -> u32 {
        self.interval
    }

    /// The accepted records.
    pub fn table(&self) -> Table<'_> {
        Table::new(&self.recs)
    }

    /// Records accepted so far.
    pub fn len(&self) -> usize {
        self.recs.len() / TABLE_RECORD
    }

    /// True before any record was accepted.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// How many more records `head` needs (its closed chunks beyond those
    /// accepted).
    pub fn missing(&self, head: &DurableHead) -> usize {
        let want = usize::try_from(head.entries / u64::from(self.interval)).unwrap_or(usize::MAX);
        want.saturating_sub(self.len())
    }

    /// Accepts `more` (the journal's records from index
    /// [`len`](ActiveTable::len) on; extra ones are ignored) so that the
    /// table covers `head`: their ends must increase and stay within the
    /// head's bytes, and the CRCs of all accepted records must fold to the
    /// head's `closed_hash`. On error nothing is accepted.
    pub fn accept(&mut self, head: &DurableHead, more: &[u8]) -> Result<(), WireError> {
        if head.base != self.base {
            return Err(WireError::InvalidField { offset: 8 });
        }
        // No entries, no bytes (the engine never publishes anything else).
        if head.entries == 0 && head.bytes != 0 {
            return Err(WireError::InvalidField { offset: 24 });
        }
        let need = self.missing(head);
        let have = self.len();
        let take = need
            .checked_mul(TABLE_RECORD)
            .filter(|&n| n <= more.len())
            .ok_or(WireError::Truncated { needed: (need * TABLE_RECORD) as u64, available: more.len() as u64 })?;
        let new = Table::new(&more[..take]);
        let mut prev = self.table().get(have.wrapping_sub(1)).map_or(0, |r| u64::from(r.end));
        for (k, rec) in new.as_bytes().chunks_exact(TABLE_RECORD).enumerate() {
            let end = ChunkRec::parse(rec).map_or(0, |r| u64::from(r.end));
            if end <= prev || end > head.bytes {
                let at = crate::index::table::TABLE_HEADER + (have + k) * TABLE_RECORD;
                return Err(WireError::InvalidField { offset: crate::num::at32(at) });
            }
            prev = end;
        }
        let mut fold = self.fold.clone();
        new.fold_into(&mut fold);
        // All chunks closed: the last one ends at the head's bytes.
        let whole = head.entries.is_multiple_of(u64::from(self.interval));
        if whole && head.entries > 0 && prev != head.bytes {
            return Err(WireError::InvalidField { offset: 0 });
        }
        let actual = fold.clone().finalize();
        if actual != head.closed_hash {
            return Err(WireError::ChecksumMismatch { expected: head.closed_hash, actual });
        }
        self.recs.extend_from_slice(new.as_bytes());
        self.fold = fold;
        Ok(())
    }

    /// Rebuilds the table from the segment's bytes (`segment`, at least the
    /// head's bytes) when the journal cannot vouch for them (missing,
    /// damaged, or written by an older comet): the framing and chunk CRCs
    /// of `[0, head.bytes)` must reproduce the head exactly.
    pub fn rebuild(&mut self, head: &DurableHead, segment: &[u8], max_stored: u32) -> Result<(), WireError> {
        let bytes = usize::try_from(head.bytes)
            .ok()
            .and_then(|n| segment.get(..n))
            .ok_or(WireError::Truncated { needed: head.bytes, available: segment.len() as u64 })?;
        let t = scan_table(bytes, self.interval, max_stored)?;
        let mut fold = crc32fast::Hasher::new();
        Table::new(&t.closed).fold_into(&mut fold);
        let closed = fold.clone().finalize();
        if t.entries != head.entries || closed != head.closed_hash || t.open_crc != head.open_crc {
            return Err(WireError::ChecksumMismatch { expected: head.closed_hash, actual: closed });
        }
        self.recs = t.closed;
        self.fold = fold;
        Ok(())
    }
}

/// What [`scan_table`] found in a segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedTable {
    /// Records of the closed chunks (`interval` entries each).
    pub closed: Vec<u8>,
    /// CRC-32 of the last, open chunk (0 if there is none).
    pub open_crc: u32,
    /// Entries found.
    pub entries: u64,
}

impl ScannedTable {
    /// Every chunk's records with the open chunk closed at the end (the
    /// table of a sealed segment of exactly these bytes).
    pub fn sealed(&self, bytes: u64) -> Vec<u8> {
        let mut out = self.closed.clone();
        let last = Table::new(&self.closed).get(Table::new(&self.closed).len().wrapping_sub(1)).map_or(0, |r| r.end);
        if u64::from(last) < bytes {
            let end = crate::num::offset32(bytes);
            out.extend_from_slice(&ChunkRec { end, crc: self.open_crc }.to_bytes());
        }
        out
    }
}

/// Computes a segment's chunk table from its bytes (framing from the
/// start; every byte must belong to a valid entry).
pub fn scan_table(bytes: &[u8], interval: u32, max_stored: u32) -> Result<ScannedTable, WireError> {
    let interval = u64::from(interval.max(1));
    let mut closed = Vec::new();
    let (mut at, mut start, mut entries) = (0usize, 0usize, 0u64);
    while at < bytes.len() {
        let rest = &bytes[at..];
        let h = match classify_entry(rest.get(..HEADER_LEN).unwrap_or(rest), rest.len() as u64, max_stored) {
            EntryStatus::Valid(h) => h,
            EntryStatus::Invalid(e) => return Err(e),
            _ => return Err(WireError::Truncated { needed: HEADER_LEN as u64, available: rest.len() as u64 }),
        };
        at += HEADER_LEN + h.len as usize;
        entries += 1;
        if entries.is_multiple_of(interval) {
            let crc = crc32fast::hash(&bytes[start..at]);
            let end = u32::try_from(at).map_err(|_| WireError::TooLarge { len: at as u64, max: u32::MAX.into() })?;
            closed.extend_from_slice(&ChunkRec { end, crc }.to_bytes());
            start = at;
        }
    }
    let open_crc = if start < at { crc32fast::hash(&bytes[start..at]) } else { 0 };
    Ok(ScannedTable { closed, open_crc, entries })
}

/// The checked chunk table of sealed segment `seg`: the records of its
/// table file (`file`, the bytes after the header, as read), or, when they
/// are missing or do not match the manifest record, the table rebuilt
/// from the segment's bytes (`segment`, its first `seg.bytes` at least),
/// which must then reproduce the record's CRC of the table. Either way
/// the result matches `seg` ([`SegmentMeta::check_table`]).
pub fn sealed_table(
    seg: &SegmentMeta,
    interval: u32,
    file: Option<&[u8]>,
    segment: &[u8],
    max_stored: u32,
) -> Result<Vec<u8>, WireError> {
    if let Some(recs) = file {
        let n = usize::try_from(seg.chunks).unwrap_or(usize::MAX).saturating_mul(TABLE_RECORD);
        if let Some(recs) = recs.get(..n)
            && seg.check_table(&Table::new(recs)).is_ok()
        {
            return Ok(recs.to_vec());
        }
    }
    let bytes = usize::try_from(seg.bytes)
        .ok()
        .and_then(|n| segment.get(..n))
        .ok_or(WireError::Truncated { needed: seg.bytes, available: segment.len() as u64 })?;
    let table = scan_table(bytes, interval, max_stored)?.sealed(seg.bytes);
    seg.check_table(&Table::new(&table))?;
    Ok(table)
}

/// Reads chunk `pos` of `file` into `buf` (which must hold it) and checks
/// it: one `pread` (looped over short reads). `Ok(Ok(n))`: `buf[..n]` is
/// the checked chunk.
pub fn load_chunk<F: StorageFile>(
    file: &F,
    pos: &ChunkPos,
    max_stored: u32,
    buf: &mut [u8],
) -> Result<Result<usize, ChunkDamage>, F::Error> {
    let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
    let Some(dst) = buf.get_mut(..n) else {
        let e = WireError::TooLarge { len: pos.len(), max: buf.len() as u64 };
        return Ok(Err(pos.damage(pos.start, e)));
    };
    let got = read_exact_at(file, pos.start, dst)?;
    Ok(check_chunk(&dst[..got], pos, max_stored).map(|()| n))
}

/// `x - base` for a position `x` known to lie within a buffer that starts
/// at `base` (so the difference fits the buffer's `usize` length).
pub(crate) fn within(x: u64, base: u64) -> usize {
    usize::try_from(x - base).unwrap_or(usize::MAX)
}

/// Checks chunk `pos` of `file` without holding it whole, for chunks
/// larger than a platform's read buffer: the chunk streams through `buf`
/// in reads of `buf.len()` bytes (at least [`HEADER_LEN`]), every byte
/// hashed and every entry's framing checked on the way (exactly
/// `pos.entries` valid entries, ending at `pos.end`). `Ok(Ok(at))`: the
/// chunk checks out and entry `target` (in it) starts at byte `at`. A
/// chunk of `n` bytes costs `ceil(n / buf.len())` reads.
pub fn check_streaming<F: StorageFile>(
    file: &F,
    pos: &ChunkPos,
    max_stored: u32,
    target: u64,
    buf: &mut [u8],
) -> Result<Result<u64, ChunkDamage>, F::Error> {
    let mut h = crc32fast::Hasher::new();
    let end_entry = pos.first + u64::from(pos.entries);
    let (mut entry, mut next_hdr, mut found) = (pos.first, pos.start, None);
    let mut head = [0u8; HEADER_LEN];
    let mut at = pos.start;
    while at < pos.end {
        let want = usize::try_from(pos.end - at).unwrap_or(usize::MAX).min(buf.len().max(1));
        let got = read_exact_at(file, at, &mut buf[..want])?;
        if got < want {
            let e = WireError::Truncated { needed: (want - got) as u64, available: 0 };
            return Ok(Err(pos.damage(at + got as u64, e)));
        }
        h.update(&buf[..got]);
        let win_end = at + got as u64;
        // Walk the headers that start (or end) in this window; a header
        // split across two windows is put together in `head`.
        while entry < end_entry && next_hdr < win_end {
            let from = next_hdr.max(at);
            let to = (next_hdr + HEADER_LEN as u64).min(win_end);
            let (a, b) = (within(from, at), within(to, at));
            let (x, y) = (within(from, next_hdr), within(to, next_hdr));
            head[x..y].copy_from_slice(&buf[a..b]);
            if y < HEADER_LEN {
                break;
            }
            let header = match classify_entry(&head, pos.end - next_hdr, max_stored) {
                EntryStatus::Valid(x) => x,
                EntryStatus::Invalid(e) => return Ok(Err(pos.damage(next_hdr, e))),
                _ => {
                    let e = WireError::Truncated { needed: HEADER_LEN as u64, available: pos.end - next_hdr };
                    return Ok(Err(pos.damage(next_hdr, e)));
                }
            };
            if entry == target {
                found = Some(next_hdr);
            }
            next_hdr += (HEADER_LEN as u64) + u64::from(header.len);
            entry += 1;
        }
        at = win_end;
    }
    if entry != end_entry || next_hdr != pos.end {
        let e = WireError::InvalidField { offset: crate::num::at32(next_hdr - pos.start) };
        return Ok(Err(pos.damage(next_hdr.min(pos.end), e)));
    }
    let actual = h.finalize();
    if actual != pos.crc {
        return Ok(Err(pos.damage(pos.start, WireError::ChecksumMismatch { expected: pos.crc, actual })));
    }
    Ok(found.ok_or_else(|| pos.damage(pos.start, WireError::InvalidField { offset: 0 })))
}

/// What a probe of [`seek_time`] found at an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The entry's timestamp.
    Stamped(u64),
    /// The entry lies in a lost range ending (exclusive) here.
    LostUntil(u64),
}

/// The first entry of `first..end` stamped at or after `ts` (timestamps
/// never decrease within a shard), or `end`. Entries of a lost range count
/// as stamped like the first entry after it, so a time inside such a range
/// finds that entry. `probe` reads one entry's timestamp; O(log n) probes.
pub fn seek_time<E>(first: u64, end: u64, ts: u64, mut probe: impl FnMut(u64) -> Result<Probe, E>) -> Result<u64, E> {
    let readable = |e: u64, probe: &mut dyn FnMut(u64) -> Result<Probe, E>| -> Result<(u64, Option<u64>), E> {
        let mut e = e;
        while e < end {
            match probe(e)? {
                Probe::Stamped(t) => return Ok((e, Some(t))),
                Probe::LostUntil(next) => e = next.max(e + 1),
            }
        }
        Ok((end, None))
    };
    let (mut lo, mut hi) = (first, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match readable(mid, &mut probe)? {
            (at, Some(t)) if t < ts => lo = at + 1,
            _ => hi = mid,
        }
    }
    Ok(readable(lo, &mut probe)?.0.min(end))
}

/// The first entry at or after `entry` not in a lost range, clamped to
/// `first..=end` (where a seek moves a consumer group, so that it can read
/// on). `lost` names the lost range an entry lies in, if any.
pub fn readable_from(first: u64, end: u64, entry: u64, mut lost: impl FnMut(u64) -> Option<Range<u64>>) -> u64 {
    let mut e = entry.clamp(first, end);
    while e < end
        && let Some(r) = lost(e)
    {
        e = r.end.max(e + 1);
    }
    e.min(end)
}

/// Copies a stored payload into `dst`, decoding it with `decoder` when it
/// is a zstd frame (the wire rule: a stored payload that begins with the
/// magic is a frame, [`is_frame`]). Returns the payload's length and
/// whether it was a frame. A `dst` too small for the payload is
/// [`WireError::OutputTooSmall`] either way; a frame that fails to decode
/// is the decoder's error.
pub fn payload_into(
    stored: &[u8],
    dst: &mut [u8],
    decoder: &mut impl Decompressor,
) -> Result<(usize, bool), WireError> {
    if is_frame(stored) {
        return decoder.decompress(stored, dst).map(|n| (n, true));
    }
    let out = dst.get_mut(..stored.len()).ok_or(WireError::OutputTooSmall { needed: stored.len() as u64 })?;
    out.copy_from_slice(stored);
    Ok((stored.len(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChunkRec;
    use alloc::vec;

    #[test]
    fn payload_into_copies_raw_decodes_frames_and_refuses_a_short_buffer() {
        let mut dst = [0u8; 64];
        assert_eq!(payload_into(b"plain", &mut dst, &mut crate::wire::RawFrameDecoder), Ok((5, false)));
        assert_eq!(&dst[..5], b"plain");
        let mut frame = [0u8; 64];
        let n = crate::wire::write_raw_frame(b"framed", &mut frame).unwrap();
        assert_eq!(payload_into(&frame[..n], &mut dst, &mut crate::wire::RawFrameDecoder), Ok((6, true)));
        assert_eq!(&dst[..6], b"framed");
        let mut short = [0u8; 3];
        for stored in [&b"plain"[..], &frame[..n]] {
            let e = payload_into(stored, &mut short, &mut crate::wire::RawFrameDecoder).unwrap_err();
            assert!(matches!(e, WireError::OutputTooSmall { .. }), "{e:?}");
        }
        assert_eq!(
            payload_into(b"plain", &mut short, &mut crate::wire::RawFrameDecoder),
            Err(WireError::OutputTooSmall { needed: 5 })
        );
    }

    fn entry(ts: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = EntryHeader { len: payload.len() as u32, timestamp: ts }.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// A segment of `n` entries in chunks of `interval`: bytes and table.
    fn segment(n: u64, interval: u32) -> (Vec<u8>, Vec<u8>) {
        let mut data = Vec::new();
        let mut recs = Vec::new();
        let mut start = 0;
        for i in 0..n {
            data.extend_from_slice(&entry(100 + i, format!("e{i}").as_bytes()));
            if (i + 1) % u64::from(interval) == 0 || i + 1 == n {
                let crc = crc32fast::hash(&data[start..]);
                recs.extend_from_slice(&ChunkRec { end: data.len() as u32, crc }.to_bytes());
                start = data.len();
            }
        }
        (data, recs)
    }

    use alloc::format;

    fn meta(n: u64, _interval: u32, data: &[u8], recs: &[u8]) -> SegmentMeta {
        SegmentMeta {
            base: 1000,
            entries: n,
            bytes: data.len() as u64,
            first_ts: 100,
            last_ts: 100 + n - 1,
            chunks: (recs.len() / 8) as u32,
            table_crc: crc32fast::hash(recs),
            lost: Vec::new(),
        }
    }

    #[test]
    fn a_checked_chunk_serves_its_entries_and_a_flip_anywhere_fails_it() {
        let (data, recs) = segment(23, 5);
        let seg = meta(23, 5, &data, &recs);
        let table = Table::new(&recs);
        seg.check_table(&table).unwrap();
        for k in 0..seg.chunks {
            let pos = ChunkPos::sealed(&seg, 5, &table, k).unwrap();
            let bytes = &data[pos.start as usize..pos.end as usize];
            check_chunk(bytes, &pos, 1 << 20).unwrap();
            let got: Vec<_> = ChunkEntries::new(bytes, pos.first).map(|e| (e.entry, e.stored.to_vec())).collect();
            let want: Vec<_> = pos.entry_range().map(|e| (e, format!("e{}", e - 1000).into_bytes())).collect();
            assert_eq!(got, want);
            for i in 0..bytes.len() {
                let mut bad = bytes.to_vec();
                bad[i] ^= 0x40;
                let d = check_chunk(&bad, &pos, 1 << 20).unwrap_err();
                assert_eq!(
                    (d.segment, d.chunk, d.first, d.end),
                    (1000, k, pos.first, pos.first + u64::from(pos.entries))
                );
            }
        }
    }

    #[test]
    fn marks_start_every_walk_at_the_nearest_eighth_entry() {
        let interval = 30;
        let (data, recs) = segment(70, interval);
        let seg = meta(70, interval, &data, &recs);
        let table = Table::new(&recs);
        let mut chunks = SealedChunks::load(&seg, interval, Some(&recs), &data, 1 << 20).unwrap();
        assert_eq!(marks_per_chunk(interval), 3);
        assert_eq!(marks_per_chunk(1), 0);
        assert_eq!(marks_per_chunk(100), 12);
        for k in 0..seg.chunks {
            let pos = ChunkPos::sealed(&seg, interval, &table, k).unwrap();
            let bytes = &data[pos.start as usize..pos.end as usize];
            // Before the check: no marks, every walk from the start.
            assert_eq!(chunks.start_for(k, &pos, pos.first + 20), (0, pos.first));
            let checked = chunks.chunk(&seg, interval, k, &data, 1 << 20).unwrap();
            assert_eq!(checked, pos);
            let at: Vec<usize> = ChunkEntries::new(bytes, pos.first).map(|e| e.at).collect();
            for e in pos.entry_range() {
                let (from_at, from) = chunks.start_for(k, &pos, e);
                let i = (e - pos.first) as usize;
                let mark = i / MARK_STRIDE as usize * MARK_STRIDE as usize;
                assert_eq!((from_at, from), (at[mark], pos.first + mark as u64), "entry {e}");
                let mut it = ChunkEntries::resume(bytes, from_at, from);
                assert!(it.skip_to(e));
                assert_eq!(it.next().unwrap().stored, format!("e{}", e - 1000).as_bytes());
            }
        }
        // A chunk whose check fails records no mark.
        let pos = ChunkPos::sealed(&seg, interval, &table, 0).unwrap();
        let mut bad = data.clone();
        bad[5] ^= 1;
        let mut fresh = SealedChunks::load(&seg, interval, Some(&recs), &data, 1 << 20).unwrap();
        assert!(fresh.chunk(&seg, interval, 0, &bad, 1 << 20).is_err());
        assert_eq!(fresh.start_for(0, &pos, pos.first + 17), (0, pos.first));
    }

    #[test]
    fn active_chunks_come_from_the_journal_and_the_head() {
        let (data, recs) = segment(23, 5);
        let (closed_bytes, open_start) = (&recs[..4 * 8], 4);
        let table = Table::new(closed_bytes);
        let open_from = table.get(open_start - 1).unwrap().end as usize;
        let head = DurableHead {
            base: 1000,
            entries: 23,
            bytes: data.len() as u64,
            open_crc: crc32fast::hash(&data[open_from..]),
            closed_hash: table.fold(),
            last_ts: 122,
            clean: false,
            interval: 5,
        };
        let mut at = ActiveTable::new(1000, 5);
        assert_eq!(at.missing(&head), 4);
        // a wrong record is refused and nothing is taken
        let mut bad = closed_bytes.to_vec();
        bad[13] ^= 1;
        assert!(at.accept(&head, &bad).is_err());
        assert_eq!(at.len(), 0);
        at.accept(&head, &recs).unwrap();
        assert_eq!(at.len(), 4);
        for k in 0..5 {
            let pos = ChunkPos::active(&head, 5, &at.table(), k).unwrap();
            check_chunk(&data[pos.start as usize..pos.end as usize], &pos, 1 << 20).unwrap();
        }
        assert!(ChunkPos::active(&head, 5, &at.table(), 5).is_none());
        let mut rebuilt = ActiveTable::new(1000, 5);
        rebuilt.rebuild(&head, &data, 1 << 20).unwrap();
        assert_eq!(rebuilt.table(), at.table());
        let mut flipped = data.clone();
        flipped[40] ^= 1;
        assert!(ActiveTable::new(1000, 5).rebuild(&head, &flipped, 1 << 20).is_err());
    }

    #[test]
    fn readable_from_clamps_and_steps_over_lost_ranges() {
        let lost = |e: u64| [20..22, 22..25, 40..41].into_iter().find(|r| r.contains(&e));
        assert_eq!(readable_from(5, 50, 0, lost), 5);
        assert_eq!(readable_from(5, 50, 7, lost), 7);
        assert_eq!(readable_from(5, 50, 21, lost), 25, "adjacent ranges are stepped over");
        assert_eq!(readable_from(5, 41, 40, lost), 41);
        assert_eq!(readable_from(5, 50, 99, lost), 50);
        assert_eq!(readable_from(5, 50, 30, |_| Some(0..1)), 50, "a stale range still moves on, up to the end");
    }

    #[test]
    fn seek_time_steps_over_lost_ranges() {
        // entries 0..100 stamped 10*e; 30..50 lost
        let probe = |e: u64| -> Result<Probe, ()> {
            Ok(if (30..50).contains(&e) { Probe::LostUntil(50) } else { Probe::Stamped(10 * e) })
        };
        assert_eq!(seek_time(0, 100, 0, probe), Ok(0));
        assert_eq!(seek_time(0, 100, 105, probe), Ok(11));
        assert_eq!(seek_time(0, 100, 350, probe), Ok(50), "inside the lost range");
        assert_eq!(seek_time(0, 100, 5000, probe), Ok(100));
        assert_eq!(seek_time(40, 100, 0, probe), Ok(50));
    }

    #[test]
    fn streaming_checks_match_loaded_chunks_with_any_buffer_size() {
        use crate::sim::MemDir;
        use crate::storage::{OpenMode, Storage};
        let (data, recs) = segment(23, 5);
        let seg = meta(23, 5, &data, &recs);
        let table = Table::new(&recs);
        let d = MemDir::new();
        d.set_file_bytes("s", &data);
        let f = d.open("s", OpenMode::Read).unwrap();
        for k in 0..table.len() as u32 {
            let pos = ChunkPos::sealed(&seg, 5, &table, k).unwrap();
            let mut big = vec![0u8; 4096];
            let n = load_chunk(&f, &pos, 1 << 20, &mut big).unwrap().unwrap();
            let starts: Vec<u64> = {
                let mut at = pos.start;
                ChunkEntries::new(&big[..n], pos.first)
                    .map(|e| {
                        let here = at;
                        at += (HEADER_LEN + e.stored.len()) as u64;
                        here
                    })
                    .collect()
            };
            // Every buffer size, so headers split across reads at every byte.
            for size in HEADER_LEN..=n + 1 {
                let mut buf = vec![0u8; size];
                for (i, want) in pos.entry_range().zip(&starts) {
                    let got = check_streaming(&f, &pos, 1 << 20, i, &mut buf).unwrap();
                    assert_eq!(got, Ok(*want), "chunk {k} entry {i} buffer {size}");
                }
            }
            // Any flipped byte of the chunk is found, with any buffer size.
            for byte in pos.start..pos.end {
                let mut bad = data.clone();
                bad[byte as usize] ^= 0x40;
                d.set_file_bytes("s", &bad);
                let g = d.open("s", OpenMode::Read).unwrap();
                for size in [HEADER_LEN, 13, 31, 4096] {
                    let mut buf = vec![0u8; size];
                    assert!(check_streaming(&g, &pos, 1 << 20, pos.first, &mut buf).unwrap().is_err(), "byte {byte}");
                }
                assert!(load_chunk(&g, &pos, 1 << 20, &mut big).unwrap().is_err());
            }
            d.set_file_bytes("s", &data);
        }
    }
}
