//! Finding an entry's chunk and checking it once: the decisions every
//! reader makes the same way, whether it reads through `pread` (the
//! engine's read path, [`crate::shard`], which `comet-embedded` reads
//! through) or over a segment's whole bytes (`comet`'s memory maps):
//!
//! * where a sealed entry lives, or that it is lost and which range
//!   ([`locate_sealed`]);
//! * the records of a chunk-table file behind its header check
//!   ([`read_table_records`]), for a sealed segment's table and the active
//!   segment's journal alike;
//! * a sealed segment's chunks, each checked once over a set of its bytes
//!   ([`SealedChunks`]);
//! * the active segment's chunks ([`ActiveChunks`]): the journal's records
//!   accepted when they reproduce the durable head, else the table rebuilt
//!   from the bytes; a chunk failing its check against journal-derived
//!   bounds triggers one rebuild before it is reported as damage.

use alloc::vec::Vec;
use core::ops::Range;

use super::{ActiveTable, ChunkPos, MARK_STRIDE, check_chunk_marking, marks_per_chunk, sealed_table};
use crate::error::{ChunkDamage, Corruption, Error, FileKind};
use crate::index::table::{TABLE_HEADER, TABLE_RECORD, parse_table_header};
use crate::index::{Manifest, SegmentMeta, Table};
use crate::state::DurableHead;
use crate::storage::{StorageFile, read_exact_at};
use crate::wire::WireError;

/// Where a sealed entry lives, per a manifest ([`locate_sealed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed<'m> {
    /// Chunk `chunk` of sealed segment `seg`.
    At {
        /// The segment's record.
        seg: &'m SegmentMeta,
        /// The chunk's index in the segment.
        chunk: u32,
    },
    /// The entry lies in this lost range: a gap between sealed segments
    /// (a lost or set-aside segment) or chunks recorded as lost, merged
    /// with lost neighbours ([`Manifest::lost_range`]); a lost chunk the
    /// manifest has no range for is lost on its own.
    Lost(Range<u64>),
    /// Neither sealed nor lost: retained away, or not below the active
    /// segment's base.
    Unavailable,
}

/// Where entry `entry` lives among `manifest`'s sealed segments, with
/// `active_base` the first entry of the active segment.
pub fn locate_sealed(manifest: &Manifest, entry: u64, active_base: u64) -> Sealed<'_> {
    let Some(seg) = manifest.find_sealed(entry) else {
        return manifest.lost_range(entry, active_base).map_or(Sealed::Unavailable, Sealed::Lost);
    };
    let Some(chunk) = seg.chunk_of(entry, manifest.interval) else {
        return Sealed::Unavailable;
    };
    if seg.is_lost(chunk) {
        let range =
            manifest.lost_range(entry, active_base).unwrap_or_else(|| seg.chunk_entries(chunk, manifest.interval));
        return Sealed::Lost(range);
    }
    Sealed::At { seg, chunk }
}

/// Reads records `first..first + count` of a chunk-table file (a sealed
/// segment's table, or the active segment's journal) into `out`, once its
/// header names segment `base` and `interval`. `Ok(false)`, with `out`
/// empty, if the header does not (or the file is shorter than one);
/// `Ok(true)` with the records the file holds (fewer than `count` if it
/// ends early: the caller's check decides). Reads no more than the file
/// holds, whatever `count` claims.
pub fn read_table_records<F: StorageFile>(
    file: &F,
    base: u64,
    interval: u32,
    first: usize,
    count: usize,
    out: &mut Vec<u8>,
) -> Result<bool, F::Error> {
    out.clear();
    let mut h = [0u8; TABLE_HEADER];
    let n = read_exact_at(file, 0, &mut h)?;
    if !matches!(parse_table_header(&h[..n]), Ok((b, i)) if b == base && i == interval) {
        return Ok(false);
    }
    let from = (TABLE_HEADER as u64).saturating_add((first as u64).saturating_mul(TABLE_RECORD as u64));
    let held = file.len()?.saturating_sub(from);
    let want = held.min((count as u64).saturating_mul(TABLE_RECORD as u64));
    out.resize(usize::try_from(want).unwrap_or(0), 0);
    let got = read_exact_at(file, from, out)?;
    out.truncate(got);
    Ok(true)
}

/// Why a chunk cannot be served: [`Error::Corrupt`] for a chunk table that
/// does not hold the chunk, [`Error::Damaged`] for its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFault {
    /// The segment's chunk table (or journal) is wrong.
    Corrupt(Corruption),
    /// The chunk's bytes fail their check.
    Damaged(ChunkDamage),
}

impl<E> From<ChunkFault> for Error<E> {
    fn from(f: ChunkFault) -> Self {
        match f {
            ChunkFault::Corrupt(c) => Error::Corrupt(c),
            ChunkFault::Damaged(d) => Error::Damaged(d),
        }
    }
}

/// The corruption of segment `base`'s chunk table (or journal) at
/// `offset`.
fn table_corrupt(base: u64, offset: u64, error: WireError) -> Corruption {
    Corruption { file: FileKind::ChunkTable { base }, offset, error }
}

/// A table that has no chunk `k` although the segment's entries say it
/// must.
fn no_chunk(base: u64) -> ChunkFault {
    ChunkFault::Corrupt(table_corrupt(base, 0, WireError::InvalidField { offset: 0 }))
}

/// The bytes of chunk `pos` in `segment` (a segment's bytes from offset 0;
/// empty if they are shorter, never the case for a chunk that passed its
/// check).
pub fn chunk_in<'a>(segment: &'a [u8], pos: &ChunkPos) -> &'a [u8] {
    let (a, b) = (usize::try_from(pos.start).unwrap_or(usize::MAX), usize::try_from(pos.end).unwrap_or(usize::MAX));
    segment.get(a..b).unwrap_or_default()
}

/// Checks chunk `pos` in `segment` (bytes from offset 0): bytes shorter
/// than the chunk (a truncated file) are damage, like any failed check.
/// Writes the chunk's marks into `marks` (see [`check_chunk_marking`]).
fn check_in(segment: &[u8], pos: &ChunkPos, max_stored: u32, marks: &mut [u32]) -> Result<(), ChunkDamage> {
    let (a, b) = (usize::try_from(pos.start).unwrap_or(usize::MAX), usize::try_from(pos.end).unwrap_or(usize::MAX));
    check_chunk_marking(segment.get(a..b.min(segment.len())).unwrap_or_default(), pos, max_stored, marks)
}

/// The chunks of a segment checked against their CRC in one set of the
/// segment's bytes: a bit per chunk, and for each checked chunk its
/// [marks](check_chunk_marking) (every [`MARK_STRIDE`]-th entry's offset,
/// 4 bytes per mark: 48 bytes per 100-entry chunk), so a random read
/// walks from the nearest mark, not from the chunk's start.
#[derive(Debug, Clone)]
pub struct CheckedChunks {
    bits: Vec<u64>,
    marks: Vec<u32>,
    per: usize,
}

impl CheckedChunks {
    /// Nothing checked yet, in a segment of `interval` entries per chunk.
    pub fn new(interval: u32) -> CheckedChunks {
        CheckedChunks { bits: Vec::new(), marks: Vec::new(), per: marks_per_chunk(interval) }
    }

    /// True if chunk `k` was checked.
    pub fn get(&self, k: u32) -> bool {
        self.bits.get(k as usize / 64).is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

    /// Records chunk `k` as checked.
    pub fn set(&mut self, k: u32) {
        let i = k as usize / 64;
        if self.bits.len() <= i {
            self.bits.resize(i + 1, 0);
        }
        self.bits[i] |= 1 << (k % 64);
    }

    /// Checks chunk `k` at `pos` in `segment` and records it, with its
    /// marks.
    fn check(&mut self, k: u32, segment: &[u8], pos: &ChunkPos, max_stored: u32) -> Result<(), ChunkDamage> {
        let at = k as usize * self.per;
        if self.marks.len() < at + self.per {
            self.marks.resize(at + self.per, 0);
        }
        let marks = self.marks.get_mut(at..at + self.per).unwrap_or_default();
        check_in(segment, pos, max_stored, marks)?;
        self.set(k);
        Ok(())
    }

    /// Where to start walking to `entry` in checked chunk `k` at `pos`:
    /// `(byte offset within the chunk, the entry starting there)`, from
    /// the nearest mark at or before `entry`, or the chunk's start.
    pub fn start_for(&self, k: u32, pos: &ChunkPos, entry: u64) -> (usize, u64) {
        let j64 = entry.saturating_sub(pos.first) / u64::from(MARK_STRIDE);
        let j = usize::try_from(j64).unwrap_or(usize::MAX);
        if j == 0 || j > self.per || !self.get(k) {
            return (0, pos.first);
        }
        match self.marks.get(k as usize * self.per + j - 1) {
            // 0 is no mark (entry 0 of the chunk starts there, never a
            // later one); u32::MAX an offset that did not fit.
            Some(&at) if at != 0 && at != u32::MAX => (at as usize, pos.first + j64 * u64::from(MARK_STRIDE)),
            _ => (0, pos.first),
        }
    }
}

/// A sealed segment's checked chunk table and the chunks checked so far,
/// for a reader holding the segment's bytes (each chunk is checked once
/// per [`SealedChunks`], so keep one per set of bytes).
#[derive(Debug, Clone)]
pub struct SealedChunks {
    table: Vec<u8>,
    checked: CheckedChunks,
}

impl SealedChunks {
    /// The chunks of sealed segment `seg`: its table from the records of
    /// its table file (`file`, see [`read_table_records`]) or, when they
    /// are missing or do not match the manifest record, rebuilt from the
    /// segment's bytes (`segment`), see [`sealed_table`]. A table that
    /// cannot be had either way is corruption of the chunk table.
    pub fn load(
        seg: &SegmentMeta,
        interval: u32,
        file: Option<&[u8]>,
        segment: &[u8],
        max_stored: u32,
    ) -> Result<SealedChunks, Corruption> {
        let table = sealed_table(seg, interval, file, segment, max_stored)
            .map_err(|e| table_corrupt(seg.base, TABLE_HEADER as u64, e))?;
        Ok(SealedChunks { table, checked: CheckedChunks::new(interval) })
    }

    /// The checked table.
    pub fn table(&self) -> Table<'_> {
        Table::new(&self.table)
    }

    /// Chunk `k` of `seg` (the segment this was loaded for), checked in
    /// `segment` (its bytes from offset 0) unless it was before.
    pub fn chunk(
        &mut self,
        seg: &SegmentMeta,
        interval: u32,
        k: u32,
        segment: &[u8],
        max_stored: u32,
    ) -> Result<ChunkPos, ChunkFault> {
        let pos = ChunkPos::sealed(seg, interval, &self.table(), k).ok_or_else(|| no_chunk(seg.base))?;
        if !self.checked.get(k) {
            self.checked.check(k, segment, &pos, max_stored).map_err(ChunkFault::Damaged)?;
        }
        Ok(pos)
    }

    /// Where to start walking to `entry` in chunk `k` at `pos`, returned by
    /// [`chunk`](SealedChunks::chunk): see [`CheckedChunks::start_for`].
    pub fn start_for(&self, k: u32, pos: &ChunkPos, entry: u64) -> (usize, u64) {
        self.checked.start_for(k, pos, entry)
    }
}

/// The active segment's chunks as a reader holding its bytes knows them:
/// the closed chunks' table ([`ActiveTable`]) and the chunks checked so
/// far in one growing set of the segment's bytes (keep one per segment).
#[derive(Debug, Clone)]
pub struct ActiveChunks {
    table: ActiveTable,
    checked: CheckedChunks,
    /// The open chunk, checked up to this end (it grows with each sync).
    open_checked: Option<(u32, u64)>,
    /// The table was rebuilt from the bytes after a chunk failed against
    /// the journal's bounds (which the head does not cover).
    rebuilt: bool,
}

impl ActiveChunks {
    /// Nothing known yet of the active segment starting at `base`.
    pub fn new(base: u64, interval: u32) -> ActiveChunks {
        ActiveChunks {
            table: ActiveTable::new(base, interval),
            checked: CheckedChunks::new(interval),
            open_checked: None,
            rebuilt: false,
        }
    }

    /// The segment's base entry.
    pub fn base(&self) -> u64 {
        self.table.base()
    }

    /// The closed chunks' table.
    pub fn table(&self) -> &ActiveTable {
        &self.table
    }

    /// Makes the table cover `head`'s closed chunks: the records `journal`
    /// holds beyond those accepted, if they reproduce the head (see
    /// [`ActiveTable::accept`]); otherwise (no journal, a wrong or short
    /// one, one that cannot be read) the table rebuilt from `segment`, the
    /// segment's bytes (at least the head's), which must reproduce the
    /// head, else the journal is reported corrupt.
    pub fn cover<F: StorageFile>(
        &mut self,
        head: &DurableHead,
        journal: Option<&F>,
        segment: &[u8],
        max_stored: u32,
    ) -> Result<(), Corruption> {
        let want = self.table.missing(head);
        if want == 0 {
            return Ok(());
        }
        let (base, interval) = (self.table.base(), self.table.interval());
        let mut more = Vec::new();
        let read = journal.is_some_and(|j| {
            read_table_records(j, base, interval, self.table.len(), want, &mut more).unwrap_or(false)
                && Some(more.len()) == want.checked_mul(TABLE_RECORD)
        });
        if !(read && self.table.accept(head, &more).is_ok()) {
            let mut rebuilt = ActiveTable::new(base, interval);
            rebuilt.rebuild(head, segment, max_stored).map_err(|e| table_corrupt(base, TABLE_HEADER as u64, e))?;
            self.table = rebuilt;
        }
        Ok(())
    }

    /// Chunk `k` of the active segment `head` describes (after
    /// [`cover`](ActiveChunks::cover) for `head`), checked in `segment`
    /// (the segment's bytes, at least the head's) unless it was before. A
    /// chunk failing its check is damage only once the table was rebuilt
    /// from the bytes: the first failure rebuilds it (the journal's end
    /// offsets are not covered by the head, so bytes that reproduce the
    /// head on their own prove the journal wrong, not the data) and checks
    /// again.
    pub fn chunk(
        &mut self,
        head: &DurableHead,
        k: u32,
        segment: &[u8],
        max_stored: u32,
    ) -> Result<ChunkPos, ChunkFault> {
        let interval = self.table.interval();
        loop {
            let pos = ChunkPos::active(head, interval, &self.table.table(), k).ok_or_else(|| no_chunk(head.base))?;
            let is_open = pos.end == head.bytes && !head.entries.is_multiple_of(u64::from(interval));
            let done = if is_open { self.open_checked == Some((k, pos.end)) } else { self.checked.get(k) };
            if done {
                return Ok(pos);
            }
            let checked = if is_open {
                check_in(segment, &pos, max_stored, &mut [])
            } else {
                self.checked.check(k, segment, &pos, max_stored)
            };
            if let Err(damage) = checked {
                let mut rebuilt = ActiveTable::new(head.base, interval);
                if self.rebuilt || rebuilt.rebuild(head, segment, max_stored).is_err() {
                    return Err(ChunkFault::Damaged(damage));
                }
                self.table = rebuilt;
                self.rebuilt = true;
                self.checked = CheckedChunks::new(interval);
                self.open_checked = None;
                continue;
            }
            if is_open {
                self.open_checked = Some((k, pos.end));
            }
            return Ok(pos);
        }
    }

    /// Where to start walking to `entry` in chunk `k` at `pos`, returned by
    /// [`chunk`](ActiveChunks::chunk): from a mark in a closed chunk (see
    /// [`CheckedChunks::start_for`]), from its start in the open one.
    pub fn start_for(&self, k: u32, pos: &ChunkPos, entry: u64) -> (usize, u64) {
        self.checked.start_for(k, pos, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChunkRec;
    use crate::index::table::table_header;
    use crate::sim::MemDir;
    use crate::storage::{OpenMode, Storage};
    use crate::wire::EntryHeader;
    use alloc::format;
    use alloc::vec;

    const MAX: u32 = 1 << 20;

    /// `n` entries from `base` in chunks of `interval`: bytes and table.
    fn segment(base: u64, n: u64, interval: u32) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut recs, mut start) = (Vec::new(), Vec::new(), 0);
        for i in 0..n {
            let payload = format!("e{}", base + i).into_bytes();
            data.extend_from_slice(&EntryHeader { len: payload.len() as u32, timestamp: base + i }.to_bytes());
            data.extend_from_slice(&payload);
            if (i + 1) % u64::from(interval) == 0 || i + 1 == n {
                let crc = crc32fast::hash(&data[start..]);
                recs.extend_from_slice(&ChunkRec { end: data.len() as u32, crc }.to_bytes());
                start = data.len();
            }
        }
        (data, recs)
    }

    fn meta(base: u64, n: u64, data: &[u8], recs: &[u8], lost: Vec<u32>) -> SegmentMeta {
        SegmentMeta {
            base,
            entries: n,
            bytes: data.len() as u64,
            first_ts: base,
            last_ts: base + n - 1,
            chunks: (recs.len() / TABLE_RECORD) as u32,
            table_crc: crc32fast::hash(recs),
            lost,
        }
    }

    fn table_file(base: u64, interval: u32, recs: &[u8]) -> Vec<u8> {
        let mut f = table_header(base, interval).to_vec();
        f.extend_from_slice(recs);
        f
    }

    /// The head of an active segment holding `data` (table `recs`, the
    /// last record the open chunk's when `n` is not a multiple).
    fn head(base: u64, n: u64, interval: u32, data: &[u8], recs: &[u8]) -> DurableHead {
        let closed = (n / u64::from(interval)) as usize;
        let t = Table::new(&recs[..closed * TABLE_RECORD]);
        let open_from = closed.checked_sub(1).map_or(0, |k| t.get(k).unwrap().end as usize);
        let open_crc = if open_from < data.len() { crc32fast::hash(&data[open_from..]) } else { 0 };
        DurableHead {
            base,
            entries: n,
            bytes: data.len() as u64,
            open_crc,
            closed_hash: t.fold(),
            last_ts: base + n - 1,
            clean: false,
            interval,
        }
    }

    #[test]
    fn sealed_entries_are_found_or_lost_with_their_range() {
        let (d0, r0) = segment(0, 10, 5);
        let (d1, r1) = segment(20, 10, 5);
        let (d2, r2) = segment(30, 10, 5);
        let mut m = Manifest::new(5);
        // 0..10 with chunk 1 (5..10) lost; 10..20 a lost segment; 20..30;
        // 30..40 with chunk 0 (30..35) lost; active from 40.
        m.sealed =
            vec![meta(0, 10, &d0, &r0, vec![1]), meta(20, 10, &d1, &r1, vec![]), meta(30, 10, &d2, &r2, vec![0])];
        assert!(matches!(locate_sealed(&m, 3, 40), Sealed::At { seg, chunk: 0 } if seg.base == 0));
        assert_eq!(locate_sealed(&m, 7, 40), Sealed::Lost(5..20), "a lost chunk, merged with the gap after it");
        assert_eq!(locate_sealed(&m, 15, 40), Sealed::Lost(5..20), "a lost range between segments");
        assert!(matches!(locate_sealed(&m, 25, 40), Sealed::At { seg, chunk: 1 } if seg.base == 20));
        assert_eq!(locate_sealed(&m, 31, 40), Sealed::Lost(30..35));
        assert!(matches!(locate_sealed(&m, 35, 40), Sealed::At { seg, chunk: 1 } if seg.base == 30));
        assert_eq!(locate_sealed(&m, 40, 40), Sealed::Unavailable, "the active segment's");
        assert_eq!(locate_sealed(&m, 45, 50), Sealed::Lost(40..50), "a gap before the active base");
        m.first_entry = 20;
        m.sealed.remove(0);
        assert_eq!(locate_sealed(&m, 3, 40), Sealed::Unavailable, "retained away");
        // A lost chunk the manifest has no range for (beyond its first
        // entry) is lost on its own.
        m.first_entry = 36;
        assert_eq!(locate_sealed(&m, 31, 40), Sealed::Lost(30..35));
    }

    #[test]
    fn table_records_are_read_behind_their_header_and_never_beyond_the_file() {
        let (_, recs) = segment(100, 20, 5);
        let d = MemDir::new();
        let mut out = vec![7u8; 3];
        d.set_file_bytes("t", &table_file(100, 5, &recs));
        let f = d.open("t", OpenMode::Read).unwrap();
        assert_eq!(read_table_records(&f, 100, 5, 0, 4, &mut out), Ok(true));
        assert_eq!(out, recs);
        assert_eq!(read_table_records(&f, 100, 5, 1, 2, &mut out), Ok(true));
        assert_eq!(out, recs[8..24]);
        assert_eq!(read_table_records(&f, 100, 5, 0, 1 << 40, &mut out), Ok(true), "a count the file does not hold");
        assert_eq!(out, recs);
        // Another segment's or interval's table, a torn header.
        assert_eq!(read_table_records(&f, 101, 5, 0, 4, &mut out), Ok(false));
        assert!(out.is_empty());
        assert_eq!(read_table_records(&f, 100, 6, 0, 4, &mut out), Ok(false));
        d.set_file_bytes("t", &table_file(100, 5, &recs)[..TABLE_HEADER - 1]);
        let f = d.open("t", OpenMode::Read).unwrap();
        assert_eq!(read_table_records(&f, 100, 5, 0, 4, &mut out), Ok(false));
        // A truncated table: what is there, which its check then refuses.
        let (data, recs) = segment(100, 20, 5);
        let seg = meta(100, 20, &data, &recs, vec![]);
        d.set_file_bytes("t", &table_file(100, 5, &recs)[..TABLE_HEADER + 20]);
        let f = d.open("t", OpenMode::Read).unwrap();
        assert_eq!(read_table_records(&f, 100, 5, 0, 4, &mut out), Ok(true));
        assert_eq!(out, recs[..20]);
        assert!(seg.check_table(&Table::new(&out)).is_err());
    }

    #[test]
    fn sealed_chunks_come_from_the_file_or_the_bytes_and_damage_is_reported() {
        let (data, recs) = segment(100, 23, 5);
        let seg = meta(100, 23, &data, &recs, vec![]);
        let truncated = &recs[..20];
        for file in [Some(&recs[..]), Some(truncated), None] {
            let mut c = SealedChunks::load(&seg, 5, file, &data, MAX).unwrap();
            assert_eq!(c.table(), Table::new(&recs));
            for k in 0..5 {
                let pos = c.chunk(&seg, 5, k, &data, MAX).unwrap();
                assert_eq!(pos.entry_range(), seg.chunk_entries(k, 5));
            }
            assert_eq!(c.chunk(&seg, 5, 5, &data, MAX), Err(no_chunk(100)));
        }
        // A table neither the file nor the bytes give.
        let mut bad = data.clone();
        bad[3] ^= 1;
        let e = SealedChunks::load(&seg, 5, Some(truncated), &bad, MAX).unwrap_err();
        assert_eq!((e.file, e.offset), (FileKind::ChunkTable { base: 100 }, TABLE_HEADER as u64));
        // A damaged chunk, and bytes shorter than a chunk.
        let mut c = SealedChunks::load(&seg, 5, Some(&recs), &bad, MAX).unwrap();
        let Err(ChunkFault::Damaged(d)) = c.chunk(&seg, 5, 0, &bad, MAX) else { panic!("chunk 0 damaged") };
        assert_eq!((d.segment, d.chunk, d.first, d.end), (100, 0, 100, 105));
        assert!(c.chunk(&seg, 5, 1, &bad, MAX).is_ok());
        let short = &data[..data.len() - 1];
        let Err(ChunkFault::Damaged(d)) = c.chunk(&seg, 5, 4, short, MAX) else { panic!("chunk 4 truncated") };
        assert_eq!((d.first, d.end), (120, 123));
        // Checked once per set of bytes: not again.
        assert!(c.chunk(&seg, 5, 1, &bad[..1], MAX).is_ok());
    }

    #[test]
    fn active_chunks_take_the_journal_when_it_reproduces_the_head_else_the_bytes() {
        let (data, recs) = segment(500, 23, 5);
        let h = head(500, 23, 5, &data, &recs);
        let d = MemDir::new();
        let open = |bytes: &[u8]| {
            d.set_file_bytes("j", bytes);
            d.open("j", OpenMode::Read).unwrap()
        };
        let all = |c: &mut ActiveChunks, data: &[u8]| (0..5).map(|k| c.chunk(&h, k, data, MAX)).collect::<Vec<_>>();
        // A journal that agrees with the head.
        let mut c = ActiveChunks::new(500, 5);
        c.cover(&h, Some(&open(&table_file(500, 5, &recs[..32]))), &data, MAX).unwrap();
        assert_eq!(c.table().table(), Table::new(&recs[..32]));
        assert!(all(&mut c, &data).iter().all(Result::is_ok));
        // A journal that disagrees with the head (a flipped CRC), one of
        // another segment, a short one, none: rebuilt from the bytes.
        let mut flipped = recs[..32].to_vec();
        flipped[13] ^= 1;
        for j in [table_file(500, 5, &flipped), table_file(501, 5, &recs[..32]), table_file(500, 5, &recs[..24])] {
            let mut c = ActiveChunks::new(500, 5);
            c.cover(&h, Some(&open(&j)), &data, MAX).unwrap();
            assert_eq!(c.table().table(), Table::new(&recs[..32]));
            assert!(all(&mut c, &data).iter().all(Result::is_ok));
        }
        let mut c = ActiveChunks::new(500, 5);
        c.cover::<crate::sim::MemFile>(&h, None, &data, MAX).unwrap();
        assert_eq!(c.table().table(), Table::new(&recs[..32]));
        // Journal bounds the head does not cover (CRCs right, an end moved):
        // accepted, then the chunk fails, the bytes rebuild the table and
        // every chunk reads.
        let mut moved = recs[..32].to_vec();
        moved[0] -= 1;
        let mut c = ActiveChunks::new(500, 5);
        c.cover(&h, Some(&open(&table_file(500, 5, &moved))), &data, MAX).unwrap();
        assert_eq!(c.table().table(), Table::new(&moved));
        assert!(all(&mut c, &data).iter().all(Result::is_ok));
        assert_eq!(c.table().table(), Table::new(&recs[..32]));
        // Damaged bytes: with the journal the chunk is damage (the rebuild
        // fails); without one the table cannot be had.
        let mut bad = data.clone();
        bad[40] ^= 1;
        let mut c = ActiveChunks::new(500, 5);
        c.cover(&h, Some(&open(&table_file(500, 5, &recs[..32]))), &bad, MAX).unwrap();
        let got = all(&mut c, &bad);
        assert!(matches!(got[0], Err(ChunkFault::Damaged(d)) if (d.first, d.end) == (500, 505)), "{got:?}");
        assert!(got[1..].iter().all(Result::is_ok));
        let e = ActiveChunks::new(500, 5).cover::<crate::sim::MemFile>(&h, None, &bad, MAX).unwrap_err();
        assert_eq!((e.file, e.offset), (FileKind::ChunkTable { base: 500 }, TABLE_HEADER as u64));
        // The open chunk is checked again as the head grows.
        let (more, more_recs) = segment(500, 24, 5);
        let h2 = head(500, 24, 5, &more, &more_recs);
        let mut c = ActiveChunks::new(500, 5);
        c.cover(&h, Some(&open(&table_file(500, 5, &recs[..32]))), &data, MAX).unwrap();
        assert_eq!(c.chunk(&h, 4, &data, MAX).unwrap().entries, 3);
        let mut torn = more.clone();
        let n = torn.len();
        torn[n - 1] ^= 1;
        c.cover::<crate::sim::MemFile>(&h2, None, &torn, MAX).unwrap();
        assert!(matches!(c.chunk(&h2, 4, &torn, MAX), Err(ChunkFault::Damaged(_))));
        assert_eq!(c.chunk(&h2, 4, &more, MAX).unwrap().entries, 4);
    }
}
