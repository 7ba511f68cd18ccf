//! The manifest (`index.bin`): the shard's sealed segments.
//!
//! A segment is cut into *chunks* of `interval` entries (the last one may be
//! shorter). Every chunk's end offset and CRC-32 live in the segment's chunk
//! table (`log-<base>.chunks`, see [`table`]); the manifest keeps one
//! fixed-size record per sealed segment, with a CRC-32 over its chunk
//! table, and the chunks recorded as lost. So
//!
//! * locating entry `n` is a binary search over segments plus one division
//!   (`(n - base) / interval`) and at most `interval - 1` header hops inside
//!   one chunk;
//! * a reader checks the one chunk it reads, and damage costs that chunk;
//! * opening after a clean close reads O(segments) bytes, and a rotation
//!   rewrites O(segments) bytes.
//!
//! The manifest is rewritten (temp file, fsync, rename, directory fsync) on
//! rotation, retention and repair — never on a sync or a close, whose only
//! metadata writes are the durable head in `comet.state` and the active
//! segment's chunk-table journal.
//!
//! Byte layout (all LE; diagram in `docs/FORMAT.md`):
//!
//! ```text
//! header, 40 bytes
//!   0 magic "CMTI"   4 version u32 = 2   8 interval u32   12 flags u32 = 0
//!  16 first retained entry u64          24 generation u64
//!  32 sealed segment count u32          36 reserved u32 = 0
//! segment record, 56 bytes + 4 per lost chunk, in entry order
//!   0 base u64   8 entries u64   16 bytes u64   24 first ts u64   32 last ts u64
//!  40 chunk count u32   44 crc32 of the chunk table's records u32
//!  48 lost chunk count u32   52 reserved u32 = 0
//!  56 lost chunk indices u32 x count, strictly increasing, < chunk count
//! trailer: crc32 u32 of every preceding byte
//! ```
//!
//! Version 1 (earlier comet builds) kept every chunk table inline and an
//! optional snapshot of the active segment; [`Manifest::decode`] still
//! reads it (the tables come back in [`Manifest::legacy_tables`]) so that a
//! writer can migrate it.

use alloc::vec::Vec;
use core::ops::Range;

use crate::wire::{WireError, le};

pub mod table;
pub use table::{ChunkRec, Table};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "index.bin";
/// Temporary name used while rewriting the manifest.
pub const MANIFEST_TMP: &str = "index.bin.tmp";
/// Magic bytes.
pub const MANIFEST_MAGIC: [u8; 4] = *b"CMTI";
/// Current version.
pub const MANIFEST_VERSION: u32 = 2;
/// The version with inline chunk tables, still decoded for migration.
pub const MANIFEST_VERSION_1: u32 = 1;

const HEADER: usize = 40;
const RECORD: usize = 56;
const RECORD_V1: usize = 48;
const FLAG_ACTIVE_V1: u32 = 1;

/// A sealed segment's summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentMeta {
    /// Entry number of its first entry (also in its file name).
    pub base: u64,
    /// Number of entries.
    pub entries: u64,
    /// Length in bytes.
    pub bytes: u64,
    /// Smallest entry timestamp (0 if empty).
    pub first_ts: u64,
    /// Largest entry timestamp (0 if empty).
    pub last_ts: u64,
    /// Chunks: `ceil(entries / interval)`.
    pub chunks: u32,
    /// CRC-32 over the records of its chunk table.
    pub table_crc: u32,
    /// Chunks recorded as lost (damaged and set aside), strictly increasing.
    pub lost: Vec<u32>,
}

impl SegmentMeta {
    /// One past its last entry number.
    pub fn end(&self) -> u64 {
        self.base + self.entries
    }

    /// True if `entry` is in this segment.
    pub fn contains(&self, entry: u64) -> bool {
        entry >= self.base && entry < self.end()
    }

    /// The chunk holding `entry` (which must be in this segment).
    pub fn chunk_of(&self, entry: u64, interval: u32) -> Option<u32> {
        if !self.contains(entry) || interval == 0 {
            return None;
        }
        u32::try_from((entry - self.base) / u64::from(interval)).ok()
    }

    /// Entry range of chunk `k`.
    pub fn chunk_entries(&self, k: u32, interval: u32) -> Range<u64> {
        let first = self.base.saturating_add(u64::from(k).saturating_mul(u64::from(interval)));
        first.min(self.end())..first.saturating_add(u64::from(interval)).min(self.end())
    }

    /// True if chunk `k` is recorded as lost.
    pub fn is_lost(&self, k: u32) -> bool {
        self.lost.binary_search(&k).is_ok()
    }

    /// Checks the invariants: chunk count, `bytes` large enough for the
    /// headers and below 4 GiB, sane timestamps, lost chunks in range and
    /// strictly increasing.
    pub fn validate(&self, interval: u32) -> Result<(), WireError> {
        let expect = self.entries.div_ceil(u64::from(interval.max(1)));
        if u64::from(self.chunks) != expect || interval == 0 {
            return Err(WireError::InvalidField { offset: 40 });
        }
        if self.bytes < self.entries.saturating_mul(12) || self.bytes > u64::from(u32::MAX) {
            return Err(WireError::InvalidField { offset: 16 });
        }
        if self.base.checked_add(self.entries).is_none() {
            return Err(WireError::InvalidField { offset: 8 });
        }
        if self.first_ts > self.last_ts {
            return Err(WireError::InvalidField { offset: 24 });
        }
        let increasing = self.lost.windows(2).all(|w| w[0] < w[1]);
        if !increasing || self.lost.last().is_some_and(|&k| k >= self.chunks) {
            return Err(WireError::InvalidField { offset: 48 });
        }
        Ok(())
    }

    /// Checks a chunk table against this record: its record count, its
    /// CRC and the shape of its end offsets.
    pub fn check_table(&self, table: &Table<'_>) -> Result<(), WireError> {
        if table.len() as u64 != u64::from(self.chunks) {
            return Err(WireError::Truncated {
                needed: u64::from(self.chunks) * table::TABLE_RECORD as u64,
                available: table.as_bytes().len() as u64,
            });
        }
        let actual = table.crc();
        if actual != self.table_crc {
            return Err(WireError::ChecksumMismatch { expected: self.table_crc, actual });
        }
        table.check_ends(self.bytes)?;
        if self.chunks > 0 && table.get(table.len() - 1).map(|r| u64::from(r.end)) != Some(self.bytes) {
            return Err(WireError::InvalidField { offset: 0 });
        }
        Ok(())
    }
}

/// The manifest of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Entries per chunk.
    pub interval: u32,
    /// First retained entry: everything below was deleted by retention.
    pub first_entry: u64,
    /// Incremented on every rewrite.
    pub generation: u64,
    /// Sealed segments, ordered by base, non-overlapping.
    pub sealed: Vec<SegmentMeta>,
    /// For a version 1 manifest, the inline chunk table of each sealed
    /// segment (same order); empty for version 2. Never encoded.
    pub legacy_tables: Vec<Vec<ChunkRec>>,
}

impl Manifest {
    /// An empty manifest.
    pub fn new(interval: u32) -> Manifest {
        Manifest { interval, first_entry: 0, generation: 0, sealed: Vec::new(), legacy_tables: Vec::new() }
    }

    /// One past the last sealed entry (or `first_entry` if none).
    pub fn sealed_end(&self) -> u64 {
        self.sealed.last().map_or(self.first_entry, SegmentMeta::end)
    }

    /// The index of the sealed segment holding `entry`.
    pub fn find_sealed_index(&self, entry: u64) -> Option<usize> {
        let i = self.sealed.partition_point(|s| s.base <= entry).checked_sub(1)?;
        self.sealed.get(i)?.contains(entry).then_some(i)
    }

    /// The sealed segment holding `entry`.
    pub fn find_sealed(&self, entry: u64) -> Option<&SegmentMeta> {
        self.find_sealed_index(entry).map(|i| &self.sealed[i])
    }

    /// The lost range around `entry`, an entry below `active_base` (the
    /// first entry of the active segment): a gap between sealed segments
    /// (a lost or quarantined segment) or a run of chunks recorded as lost,
    /// merged with lost neighbours. `None` if `entry` is readable, retained
    /// away or not below `active_base`.
    pub fn lost_range(&self, entry: u64, active_base: u64) -> Option<Range<u64>> {
        if entry < self.first_entry || entry >= active_base {
            return None;
        }
        let mut run: Option<Range<u64>> = None;
        let mut found = None;
        let mut push = |r: Range<u64>, run: &mut Option<Range<u64>>| {
            if r.is_empty() {
                return;
            }
            match run {
                Some(cur) if cur.end == r.start => cur.end = r.end,
                _ => {
                    if let Some(done) = run.take()
                        && done.contains(&entry)
                    {
                        found = Some(done);
                    }
                    *run = Some(r);
                }
            }
        };
        let mut prev = self.first_entry;
        for s in &self.sealed {
            push(prev..s.base.max(prev), &mut run);
            for &k in &s.lost {
                push(s.chunk_entries(k, self.interval), &mut run);
            }
            prev = s.end().max(prev);
        }
        push(prev..active_base.max(prev), &mut run);
        if let Some(done) = run
            && done.contains(&entry)
        {
            found = Some(done);
        }
        found
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER + self.sealed.iter().map(|s| RECORD + 4 * s.lost.len()).sum::<usize>() + 4
    }

    /// Encodes the manifest (version 2).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.encoded_len());
        let r: Result<(), core::convert::Infallible> =
            encode_parts(self.interval, self.first_entry, self.generation, &self.sealed, &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            });
        let Ok(()) = r;
    }

    /// The interval field of a manifest's header, if the bytes start with a
    /// manifest header of a known version naming a non-zero interval
    /// (whatever the rest holds: a hint for rebuilding a rejected manifest).
    pub fn header_interval(bytes: &[u8]) -> Option<u32> {
        let version = le::u32_at(bytes, 4)?;
        if bytes.get(..4)? != MANIFEST_MAGIC || !(version == MANIFEST_VERSION || version == MANIFEST_VERSION_1) {
            return None;
        }
        le::u32_at(bytes, 8).filter(|&i| i > 0)
    }

    /// Decodes and validates a manifest (version 2, or version 1 with its
    /// tables in [`legacy_tables`](Manifest::legacy_tables)). Never panics;
    /// every structural problem is a [`WireError`] whose `InvalidField`
    /// offset is the byte position in the file. Allocation is bounded by
    /// the input's length.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, WireError> {
        Manifest::decode_reserving(bytes, 0)
    }

    /// [`decode`](Manifest::decode), reserving room for at least
    /// `capacity` sealed segments at once (a writer with a bounded
    /// manifest reserves it whole at open, so rotations never grow it).
    pub fn decode_reserving(bytes: &[u8], capacity: usize) -> Result<Manifest, WireError> {
        let trunc = |needed: usize| WireError::Truncated { needed: needed as u64, available: bytes.len() as u64 };
        if bytes.len() < HEADER + 4 {
            return Err(trunc(HEADER + 4));
        }
        let version = le::magic_version(bytes, &MANIFEST_MAGIC, MANIFEST_VERSION_1..=MANIFEST_VERSION)?;
        let u32_at = |at| le::u32_at(bytes, at).ok_or(trunc(at + 4));
        let u64_at = |at| le::u64_at(bytes, at).ok_or(trunc(at + 8));
        let body = bytes.len() - 4;
        let expected = u32_at(body)?;
        let actual = crc32fast::hash(&bytes[..body]);
        if expected != actual && !cfg!(fuzzing) {
            return Err(WireError::ChecksumMismatch { expected, actual });
        }
        let interval = u32_at(8)?;
        let flags = u32_at(12)?;
        if interval == 0 {
            return Err(WireError::InvalidField { offset: 8 });
        }
        let allowed = if version == MANIFEST_VERSION_1 { FLAG_ACTIVE_V1 } else { 0 };
        if flags & !allowed != 0 {
            return Err(WireError::InvalidField { offset: 12 });
        }
        let first_entry = u64_at(16)?;
        let generation = u64_at(24)?;
        let count = u32_at(32)? as usize;
        let min_record = if version == MANIFEST_VERSION_1 { RECORD_V1 } else { RECORD };
        // Each record takes at least `min_record` bytes: bound allocations by input.
        if count > body / min_record {
            return Err(WireError::InvalidField { offset: 32 });
        }
        let mut m = Manifest::new(interval);
        m.first_entry = first_entry;
        m.generation = generation;
        m.sealed.reserve_exact(count.max(capacity));
        let mut at = HEADER;
        if version == MANIFEST_VERSION_1 {
            let records = count + usize::from(flags & FLAG_ACTIVE_V1 != 0);
            for i in 0..records {
                let (seg, table, end) = decode_v1_record(bytes, at, body, interval)?;
                // The version 1 snapshot of the active segment is dropped:
                // the active segment is recovered from the files.
                if i < count {
                    m.sealed.push(seg);
                    m.legacy_tables.push(table);
                }
                at = end;
            }
        } else {
            for _ in 0..count {
                let rec_at = at;
                if at + RECORD > body {
                    return Err(trunc(at + RECORD + 4));
                }
                let n = u32_at(at + 48)? as usize;
                let end = n.checked_mul(4).and_then(|c| c.checked_add(at + RECORD)).ok_or(trunc(usize::MAX))?;
                if end > body {
                    return Err(trunc(end + 4));
                }
                let lost =
                    bytes[at + RECORD..end].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                let seg = SegmentMeta {
                    base: u64_at(at)?,
                    entries: u64_at(at + 8)?,
                    bytes: u64_at(at + 16)?,
                    first_ts: u64_at(at + 24)?,
                    last_ts: u64_at(at + 32)?,
                    chunks: u32_at(at + 40)?,
                    table_crc: u32_at(at + 44)?,
                    lost: lost.collect(),
                };
                if u32_at(at + 52)? != 0 {
                    return Err(field_at(rec_at, 52));
                }
                seg.validate(interval).map_err(|e| relocate(e, rec_at))?;
                m.sealed.push(seg);
                at = end;
            }
        }
        if at != body {
            return Err(WireError::InvalidField { offset: crate::num::at32(at) });
        }
        m.check_order()?;
        Ok(m)
    }

    /// Segments must be ordered and non-overlapping, starting at or after
    /// `first_entry`.
    fn check_order(&self) -> Result<(), WireError> {
        let mut next = self.first_entry;
        for s in &self.sealed {
            if s.base < next {
                return Err(WireError::InvalidField { offset: 32 });
            }
            next = s.end();
        }
        Ok(())
    }
}

/// Streams the version 2 encoding of a manifest with these fields and
/// sealed records to `sink`, piece by piece (the header, each record, each
/// lost list, the trailer), without allocating: a writer can put a
/// manifest of any size on disk through a small fixed buffer, and encode
/// one that differs from its in-memory manifest (retention skips the
/// records it is deleting) without copying it.
pub fn encode_parts<E>(
    interval: u32,
    first_entry: u64,
    generation: u64,
    sealed: &[SegmentMeta],
    sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut crc = crc32fast::Hasher::new();
    {
        let mut put = |b: &[u8]| -> Result<(), E> {
            crc.update(b);
            sink(b)
        };
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&MANIFEST_MAGIC);
        le::put_u32(&mut h, 4, MANIFEST_VERSION);
        le::put_u32(&mut h, 8, interval);
        le::put_u64(&mut h, 16, first_entry);
        le::put_u64(&mut h, 24, generation);
        le::put_u32(&mut h, 32, crate::num::index32(sealed.len()));
        put(&h)?;
        for s in sealed {
            let mut r = [0u8; RECORD];
            for (i, v) in [s.base, s.entries, s.bytes, s.first_ts, s.last_ts].into_iter().enumerate() {
                le::put_u64(&mut r, 8 * i, v);
            }
            le::put_u32(&mut r, 40, s.chunks);
            le::put_u32(&mut r, 44, s.table_crc);
            le::put_u32(&mut r, 48, crate::num::index32(s.lost.len()));
            put(&r)?;
            for k in &s.lost {
                put(&k.to_le_bytes())?;
            }
        }
    }
    sink(&crc.finalize().to_le_bytes())
}

fn field_at(rec_at: usize, offset: u32) -> WireError {
    WireError::InvalidField { offset: crate::num::at32(rec_at).saturating_add(offset) }
}

fn relocate(e: WireError, rec_at: usize) -> WireError {
    match e {
        WireError::InvalidField { offset } => field_at(rec_at, offset),
        other => other,
    }
}

/// One version 1 record at `at`: the segment, its inline chunk table (as
/// end offsets) and where the record ends.
fn decode_v1_record(
    bytes: &[u8],
    at: usize,
    body: usize,
    interval: u32,
) -> Result<(SegmentMeta, Vec<ChunkRec>, usize), WireError> {
    let trunc = |needed: usize| WireError::Truncated { needed: needed as u64, available: bytes.len() as u64 };
    if at + RECORD_V1 > body {
        return Err(trunc(at + RECORD_V1 + 4));
    }
    let u64_at = |o| le::u64_at(bytes, o).ok_or(trunc(o + 8));
    let n = le::u32_at(bytes, at + 40).ok_or(trunc(at + 44))? as usize;
    let end = n.checked_mul(8).and_then(|c| c.checked_add(at + RECORD_V1)).ok_or(trunc(usize::MAX))?;
    if end > body {
        return Err(trunc(end + 4));
    }
    let seg_bytes = u64_at(at + 16)?;
    // v1 stored (start offset, crc); ends are the next start, the last the segment end.
    let starts: Vec<(u32, u32)> = bytes[at + RECORD_V1..end]
        .chunks_exact(8)
        .map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]), u32::from_le_bytes([c[4], c[5], c[6], c[7]])))
        .collect();
    if starts.first().is_some_and(|&(o, _)| o != 0) || !starts.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(field_at(at, 48));
    }
    let last_end = u32::try_from(seg_bytes).map_err(|_| field_at(at, 16))?;
    let table: Vec<ChunkRec> = starts
        .iter()
        .enumerate()
        .map(|(k, &(_, crc))| ChunkRec { end: starts.get(k + 1).map_or(last_end, |s| s.0), crc })
        .collect();
    let mut recs = Vec::with_capacity(table.len() * 8);
    for r in &table {
        recs.extend_from_slice(&r.to_bytes());
    }
    let seg = SegmentMeta {
        base: u64_at(at)?,
        entries: u64_at(at + 8)?,
        bytes: seg_bytes,
        first_ts: u64_at(at + 24)?,
        last_ts: u64_at(at + 32)?,
        chunks: u32::try_from(n).map_err(|_| field_at(at, 40))?,
        table_crc: crc32fast::hash(&recs),
        lost: Vec::new(),
    };
    seg.validate(interval).map_err(|e| relocate(e, at))?;
    if starts.last().is_some_and(|&(o, _)| u64::from(o) >= seg_bytes) {
        return Err(field_at(at, 48));
    }
    Ok((seg, table, end))
}

#[cfg(test)]
mod tests;
