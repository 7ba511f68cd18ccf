//! Chunk tables: `log-<base>.chunks`, one per segment.
//!
//! A segment is cut into chunks of `interval` entries; its chunk table
//! lists, for every chunk, where it ends and the CRC-32 of its bytes. The
//! table of a sealed segment is complete and immutable, and the manifest
//! record vouches for it with a CRC-32 over its records. The table of the
//! active segment is a journal: the writer appends a record whenever a
//! chunk closes, before it publishes a durable head that covers the chunk,
//! and the head's `closed_hash` (a CRC-32 over the closed chunks' CRCs)
//! vouches for its first `head.entries / interval` records. Either way a
//! reader can check one chunk without reading the rest of the segment.
//!
//! ```text
//! header, 24 bytes
//!   0 magic "CMTK"   4 version u32 = 1   8 segment base entry u64
//!  16 interval u32   20 crc32 of bytes 0..20
//! records from byte 24, 8 bytes each, one per chunk in order
//!   0 end offset u32 (chunk k spans [end of chunk k-1 (0 for k = 0), end))
//!   4 crc32 of the chunk's bytes u32
//! ```
//!
//! Records are validated when used: ends strictly increase and stay within
//! the bytes the manifest record or durable head names.

use crate::wire::{WireError, le};

/// Magic bytes of a chunk table.
pub const TABLE_MAGIC: [u8; 4] = *b"CMTK";
/// Current version.
pub const TABLE_VERSION: u32 = 1;
/// Size of the header in bytes.
pub const TABLE_HEADER: usize = 24;
/// Size of one record in bytes.
pub const TABLE_RECORD: usize = 8;

/// One chunk: where it ends in its segment and the CRC-32 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ChunkRec {
    /// Byte offset one past the chunk's last byte.
    pub end: u32,
    /// CRC-32 of the chunk's bytes.
    pub crc: u32,
}

impl ChunkRec {
    /// The 8-byte record.
    pub fn to_bytes(&self) -> [u8; TABLE_RECORD] {
        let mut b = [0u8; TABLE_RECORD];
        b[..4].copy_from_slice(&self.end.to_le_bytes());
        b[4..].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Decodes one 8-byte record (`None` if `b` is shorter).
    pub fn parse(b: &[u8]) -> Option<ChunkRec> {
        Some(ChunkRec { end: le::u32_at(b, 0)?, crc: le::u32_at(b, 4)? })
    }
}

/// The header of the chunk table of segment `base`.
pub fn table_header(base: u64, interval: u32) -> [u8; TABLE_HEADER] {
    let mut h = [0u8; TABLE_HEADER];
    h[..4].copy_from_slice(&TABLE_MAGIC);
    le::put_u32(&mut h, 4, TABLE_VERSION);
    le::put_u64(&mut h, 8, base);
    le::put_u32(&mut h, 16, interval);
    let crc = crc32fast::hash(&h[..20]);
    le::put_u32(&mut h, 20, crc);
    h
}

/// Checks a table header; returns `(segment base, interval)`.
pub fn parse_table_header(h: &[u8]) -> Result<(u64, u32), WireError> {
    if h.len() < TABLE_HEADER {
        return Err(WireError::Truncated { needed: TABLE_HEADER as u64, available: h.len() as u64 });
    }
    le::magic_version(h, &TABLE_MAGIC, TABLE_VERSION..=TABLE_VERSION)?;
    let expected = le::u32_at(h, 20).unwrap_or(0);
    let actual = crc32fast::hash(&h[..20]);
    if expected != actual && !cfg!(fuzzing) {
        return Err(WireError::ChecksumMismatch { expected, actual });
    }
    let interval = le::u32_at(h, 16).unwrap_or(0);
    if interval == 0 {
        return Err(WireError::InvalidField { offset: 16 });
    }
    Ok((le::u64_at(h, 8).unwrap_or(0), interval))
}

/// Bytes of chunk CRCs [`Table::fold_into`] hands the hasher at a time.
pub const FOLD_BLOCK: usize = 256;

/// Encoded records viewed in place (no allocation): what a platform reads
/// from a table file, or builds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table<'a> {
    recs: &'a [u8],
}

impl<'a> Table<'a> {
    /// The whole records of `bytes` (a trailing partial record is ignored:
    /// a journal may be cut mid-record by a crash).
    pub fn new(bytes: &'a [u8]) -> Table<'a> {
        let n = bytes.len() / TABLE_RECORD * TABLE_RECORD;
        Table { recs: &bytes[..n] }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.recs.len() / TABLE_RECORD
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Record `k`.
    pub fn get(&self, k: usize) -> Option<ChunkRec> {
        let at = k.checked_mul(TABLE_RECORD)?;
        ChunkRec::parse(self.recs.get(at..at + TABLE_RECORD)?)
    }

    /// Byte range `[start, end)` of chunk `k`.
    pub fn range(&self, k: usize) -> Option<(u64, u64)> {
        let end = self.get(k)?.end;
        let start = if k == 0 { 0 } else { self.get(k - 1)?.end };
        Some((u64::from(start), u64::from(end)))
    }

    /// The first `n` records.
    pub fn prefix(&self, n: usize) -> Table<'a> {
        let n = n.min(self.len());
        Table { recs: &self.recs[..n * TABLE_RECORD] }
    }

    /// The encoded records.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.recs
    }

    /// CRC-32 over the encoded records (what a manifest record stores).
    pub fn crc(&self) -> u32 {
        crc32fast::hash(self.recs)
    }

    /// CRC-32 over the records' chunk CRCs (LE, in order): what a durable
    /// head stores as `closed_hash` for its closed chunks.
    pub fn fold(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        self.fold_into(&mut h);
        h.finalize()
    }

    /// Feeds the records' chunk CRCs (LE, in order) to `h`, as
    /// [`fold`](Table::fold) does. The CRCs are gathered into blocks of
    /// `FOLD_BLOCK` (256) bytes first: one hasher call per block instead of one
    /// per 4-byte CRC lets crc32fast use its wide kernel (a fresh reader of
    /// a large active segment, and recovery, fold every journal record).
    pub fn fold_into(&self, h: &mut crc32fast::Hasher) {
        let mut block = [0u8; FOLD_BLOCK];
        let mut held = 0;
        for rec in self.recs.chunks_exact(TABLE_RECORD) {
            block[held..held + 4].copy_from_slice(&rec[4..8]);
            held += 4;
            if held == FOLD_BLOCK {
                h.update(&block);
                held = 0;
            }
        }
        h.update(&block[..held]);
    }

    /// Checks the records' shape: ends strictly increase from above 0 and
    /// stay at or below `limit`.
    pub fn check_ends(&self, limit: u64) -> Result<(), WireError> {
        let mut prev = 0u64;
        for k in 0..self.len() {
            let end = u64::from(self.get(k).map_or(0, |r| r.end));
            if end <= prev || end > limit {
                let at = TABLE_HEADER + k * TABLE_RECORD;
                return Err(WireError::InvalidField { offset: crate::num::at32(at) });
            }
            prev = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn table(recs: &[(u32, u32)]) -> Vec<u8> {
        recs.iter().flat_map(|&(end, crc)| ChunkRec { end, crc }.to_bytes()).collect()
    }

    #[test]
    fn header_roundtrip_and_every_flip_rejected() {
        let h = table_header(600, 100);
        assert_eq!(parse_table_header(&h), Ok((600, 100)));
        for byte in 0..TABLE_HEADER {
            let mut bad = h;
            bad[byte] ^= 4;
            assert!(parse_table_header(&bad).is_err(), "flip at {byte}");
        }
        assert!(parse_table_header(&h[..23]).is_err());
    }

    #[test]
    fn ranges_crcs_and_shape() {
        let bytes = table(&[(10, 1), (25, 2), (40, 3)]);
        let t = Table::new(&bytes);
        assert_eq!(t.len(), 3);
        assert_eq!(t.range(0), Some((0, 10)));
        assert_eq!(t.range(2), Some((25, 40)));
        assert_eq!(t.range(3), None);
        assert_eq!(t.crc(), crc32fast::hash(&bytes));
        let mut h = crc32fast::Hasher::new();
        for c in [1u32, 2, 3] {
            h.update(&c.to_le_bytes());
        }
        assert_eq!(t.fold(), h.finalize());
        assert!(t.check_ends(40).is_ok());
        assert!(t.check_ends(39).is_err());
        let bad = table(&[(10, 1), (10, 2)]);
        assert!(Table::new(&bad).check_ends(100).is_err());
        let zero = table(&[(0, 1)]);
        assert!(Table::new(&zero).check_ends(100).is_err());
        // The blocked fold equals the CRC-by-CRC one at every length
        // around the block size.
        for n in [0usize, 1, 63, 64, 65, 127, 128, 129, 300] {
            let recs: Vec<(u32, u32)> =
                (0..n).map(|k| (k as u32 + 1, (k as u32).wrapping_mul(0x9E37_79B9) ^ 0x5A5A)).collect();
            let bytes = table(&recs);
            let mut h = crc32fast::Hasher::new();
            for &(_, c) in &recs {
                h.update(&c.to_le_bytes());
            }
            assert_eq!(Table::new(&bytes).fold(), h.finalize(), "{n} records");
        }
        // a torn last record is ignored
        assert_eq!(Table::new(&bytes[..20]).len(), 2);
        assert_eq!(t.prefix(2).len(), 2);
    }
}
