//! The manifest (`index.bin`): sealed segments with their checkpoint chunks.
//!
//! A segment is cut into *chunks* of `interval` entries (the last one may be
//! shorter). For every chunk the manifest keeps its byte offset and the
//! CRC-32 of its bytes, so
//!
//! * locating entry `n` is a binary search over segments plus one division
//!   (`(n - base) / interval`) and at most `interval - 1` header hops;
//! * `verify` checks every byte and reports damage by entry range.
//!
//! The manifest is rewritten (temp file, fsync, rename, directory fsync) on
//! rotation, retention and clean close — never on a plain sync, whose only
//! metadata write is the durable head in `comet.state`.
//!
//! Byte layout (all LE; diagram in `docs/FORMAT.md`):
//!
//! ```text
//! header, 40 bytes
//!   0 magic "CMTI"   4 version u32 = 1   8 interval u32   12 flags u32 (bit 0: active snapshot)
//!  16 first retained entry u64          24 generation u64
//!  32 sealed segment count u32          36 reserved u32 = 0
//! segment record, 48 bytes + 8 per chunk (sealed ones, then the snapshot if flagged)
//!   0 base u64   8 entries u64   16 bytes u64   24 first ts u64   32 last ts u64
//!  40 chunk count u32   44 reserved u32 = 0
//!  48 chunks: (offset u32, crc32 u32) x count
//! trailer: crc32 u32 of every preceding byte
//! ```

use alloc::vec::Vec;

use crate::wire::{WireError, le};

mod go;
pub use go::{GoFile, GoIndex};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "index.bin";
/// Temporary name used while rewriting the manifest.
pub const MANIFEST_TMP: &str = "index.bin.tmp";
/// Magic bytes.
pub const MANIFEST_MAGIC: [u8; 4] = *b"CMTI";
/// The Go package's index magic as stored (`TMOC`).
pub const GO_INDEX_MAGIC: [u8; 4] = *b"TMOC";
/// Current version.
pub const MANIFEST_VERSION: u32 = 1;

const HEADER: usize = 40;
const RECORD: usize = 48;
const FLAG_ACTIVE: u32 = 1;

/// One checkpoint chunk: where it starts in its segment and the CRC-32 of its
/// bytes (up to the next chunk or the segment end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chunk {
    /// Byte offset of the chunk's first entry in the segment.
    pub offset: u32,
    /// CRC-32 of the chunk's bytes.
    pub crc: u32,
}

/// A segment's summary and checkpoints.
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
    /// Chunks: `ceil(entries / interval)` of them.
    pub chunks: Vec<Chunk>,
}

impl SegmentMeta {
    /// An empty segment starting at `base`.
    pub fn empty(base: u64) -> SegmentMeta {
        SegmentMeta { base, ..SegmentMeta::default() }
    }

    /// One past its last entry number.
    pub fn end(&self) -> u64 {
        self.base + self.entries
    }

    /// True if `entry` is in this segment.
    pub fn contains(&self, entry: u64) -> bool {
        entry >= self.base && entry < self.end()
    }

    /// For `entry` in this segment: the chunk's index, its first entry and
    /// its byte offset.
    pub fn chunk_for(&self, entry: u64, interval: u32) -> Option<(usize, u64, u64)> {
        if !self.contains(entry) || interval == 0 {
            return None;
        }
        let k = usize::try_from((entry - self.base) / u64::from(interval)).ok()?;
        let chunk = self.chunks.get(k)?;
        Some((k, self.base + k as u64 * u64::from(interval), u64::from(chunk.offset)))
    }

    /// Byte range of chunk `k`.
    pub fn chunk_range(&self, k: usize) -> Option<(u64, u64)> {
        let start = u64::from(self.chunks.get(k)?.offset);
        let end = self.chunks.get(k + 1).map_or(self.bytes, |c| u64::from(c.offset));
        Some((start, end))
    }

    /// Entry range of chunk `k`.
    pub fn chunk_entries(&self, k: usize, interval: u32) -> (u64, u64) {
        let first = self.base + k as u64 * u64::from(interval);
        (first, (first + u64::from(interval)).min(self.end()))
    }

    /// Checks the invariants: chunk count and monotone offsets within the
    /// segment, `bytes` large enough for the headers, sane timestamps.
    pub fn validate(&self, interval: u32) -> Result<(), WireError> {
        let expect = self.entries.div_ceil(u64::from(interval.max(1)));
        if self.chunks.len() as u64 != expect || interval == 0 {
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
        // Offsets start at 0, strictly increase and stay below `bytes`
        // (so checking the last one bounds them all).
        let first_ok = self.chunks.first().is_none_or(|c| c.offset == 0);
        let last_ok = self.chunks.last().is_none_or(|c| u64::from(c.offset) < self.bytes);
        if !first_ok || !last_ok || !self.chunks.windows(2).all(|w| w[0].offset < w[1].offset) {
            return Err(WireError::InvalidField { offset: 48 });
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
    /// The active segment as of the last clean close, if recorded.
    pub active: Option<SegmentMeta>,
}

impl Manifest {
    /// An empty manifest.
    pub fn new(interval: u32) -> Manifest {
        Manifest { interval, first_entry: 0, generation: 0, sealed: Vec::new(), active: None }
    }

    /// One past the last sealed entry (or `first_entry` if none).
    pub fn sealed_end(&self) -> u64 {
        self.sealed.last().map_or(self.first_entry, SegmentMeta::end)
    }

    /// The sealed segment holding `entry`.
    pub fn find_sealed(&self, entry: u64) -> Option<&SegmentMeta> {
        let i = self.sealed.partition_point(|s| s.base <= entry);
        let seg = self.sealed.get(i.checked_sub(1)?)?;
        seg.contains(entry).then_some(seg)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        let recs = self.sealed.iter().chain(self.active.iter());
        HEADER + recs.map(|s| RECORD + 8 * s.chunks.len()).sum::<usize>() + 4
    }

    /// Encodes the manifest.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.encoded_len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&self.interval.to_le_bytes());
        let flags = if self.active.is_some() { FLAG_ACTIVE } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.first_entry.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        #[allow(clippy::cast_possible_truncation)]
        out.extend_from_slice(&(self.sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for s in self.sealed.iter().chain(self.active.iter()) {
            for v in [s.base, s.entries, s.bytes, s.first_ts, s.last_ts] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            #[allow(clippy::cast_possible_truncation)]
            out.extend_from_slice(&(s.chunks.len() as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            for c in &s.chunks {
                out.extend_from_slice(&c.offset.to_le_bytes());
                out.extend_from_slice(&c.crc.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(out);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// The interval field of a manifest's header, if the bytes start with a
    /// manifest header of this version naming a non-zero interval (whatever
    /// the rest holds: a hint for rebuilding a rejected manifest).
    pub fn header_interval(bytes: &[u8]) -> Option<u32> {
        if bytes.get(..4)? != MANIFEST_MAGIC || le::u32_at(bytes, 4)? != MANIFEST_VERSION {
            return None;
        }
        le::u32_at(bytes, 8).filter(|&i| i > 0)
    }

    /// Decodes and validates a manifest. Never panics; every structural
    /// problem is a [`WireError`] whose `InvalidField` offset is the byte
    /// position in the file.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, WireError> {
        let trunc = |needed: usize| WireError::Truncated { needed: needed as u64, available: bytes.len() as u64 };
        if bytes.len() < HEADER + 4 {
            return Err(trunc(HEADER + 4));
        }
        if bytes[..4] != MANIFEST_MAGIC {
            return Err(WireError::BadMagic);
        }
        let u32_at = |at| le::u32_at(bytes, at).ok_or(trunc(at + 4));
        let u64_at = |at| le::u64_at(bytes, at).ok_or(trunc(at + 8));
        let version = u32_at(4)?;
        if version != MANIFEST_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
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
        if flags & !FLAG_ACTIVE != 0 {
            return Err(WireError::InvalidField { offset: 12 });
        }
        let first_entry = u64_at(16)?;
        let generation = u64_at(24)?;
        let count = u32_at(32)? as usize;
        // Each record takes at least RECORD bytes: bound allocations by input.
        if count > body / RECORD {
            return Err(WireError::InvalidField { offset: 32 });
        }
        let records = count + usize::from(flags & FLAG_ACTIVE != 0);
        let mut at = HEADER;
        let mut segs = Vec::with_capacity(records);
        for _ in 0..records {
            let rec_at = at;
            if at + RECORD > body {
                return Err(trunc(at + RECORD + 4));
            }
            let n = u32_at(at + 40)? as usize;
            let end = n.checked_mul(8).and_then(|c| c.checked_add(at + RECORD)).ok_or(trunc(usize::MAX))?;
            if end > body {
                return Err(trunc(end + 4));
            }
            // One pass over the table (`end <= body` was checked above).
            let chunks: Vec<Chunk> = bytes[at + RECORD..end]
                .chunks_exact(8)
                .map(|c| Chunk {
                    offset: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    crc: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect();
            let seg = SegmentMeta {
                base: u64_at(at)?,
                entries: u64_at(at + 8)?,
                bytes: u64_at(at + 16)?,
                first_ts: u64_at(at + 24)?,
                last_ts: u64_at(at + 32)?,
                chunks,
            };
            seg.validate(interval).map_err(|e| match e {
                WireError::InvalidField { offset } => {
                    WireError::InvalidField { offset: u32::try_from(rec_at).unwrap_or(u32::MAX).saturating_add(offset) }
                }
                other => other,
            })?;
            segs.push(seg);
            at = end;
        }
        if at != body {
            return Err(WireError::InvalidField { offset: u32::try_from(at).unwrap_or(u32::MAX) });
        }
        let active = if flags & FLAG_ACTIVE != 0 { segs.pop() } else { None };
        let m = Manifest { interval, first_entry, generation, sealed: segs, active };
        m.check_order()?;
        Ok(m)
    }

    /// Segments must be ordered and non-overlapping, starting at or after
    /// `first_entry`; the snapshot must follow the last sealed segment.
    fn check_order(&self) -> Result<(), WireError> {
        let mut next = self.first_entry;
        for s in self.sealed.iter().chain(self.active.iter()) {
            if s.base < next {
                return Err(WireError::InvalidField { offset: 32 });
            }
            next = s.end();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
