//! Reading entries through the [`Storage`] trait: the core read path
//! ([`crate::read`]) with `pread` into a buffer, for platforms without
//! memory maps (`comet-embedded`), the simulator and tools.
//!
//! A [`ReadBuf`] holds the last checked chunk, the last sealed segment's
//! open file and its chunk table, so sequential reads cost one `pread` per
//! chunk and the chunk's CRC is checked once per fill.

use alloc::vec;
use alloc::vec::Vec;

use super::Shard;
use crate::error::{ChunkDamage, Corruption, Error, FileKind, IoOp};
use crate::index::table::{TABLE_HEADER, TABLE_RECORD};
use crate::index::{SegmentMeta, Table};
use crate::naming::{chunk_table_file_name, segment_file_name};
use crate::read::{ChunkEntries, ChunkPos, Sealed, check_streaming, load_chunk, locate_sealed, read_table_records};
use crate::state::HeadStore;
use crate::storage::{Context, OpenMode, Storage, read_exact_at};
use crate::wire::{Compressor, EntryHeader, WireError};

/// An entry read from a segment: its header (`len` is the stored length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// The header.
    pub header: EntryHeader,
}

/// What a [`ReadBuf`] remembers about the last chunk it read.
#[derive(Debug, Clone, Copy)]
enum Held {
    Nothing,
    /// `chunk[..len]` holds this chunk, checked.
    Chunk(ChunkPos, usize),
    /// This chunk (too large for the buffer) was streamed and checked;
    /// `chunk[..len]` holds its bytes from segment offset `base` on, and
    /// entry `next` starts at byte `at` (where the next sequential read
    /// picks up without walking from the chunk's start).
    Window {
        pos: ChunkPos,
        base: u64,
        len: usize,
        next: u64,
        at: u64,
    },
}

/// Buffers of a reader over [`Storage`]: the last checked chunk, the last
/// sealed segment's file and its checked chunk table.
#[derive(Debug)]
pub struct ReadBuf<F> {
    chunk: Vec<u8>,
    held: Held,
    /// May `chunk` grow to hold a chunk (else larger chunks stream).
    grow: bool,
    /// Records of the last sealed segment's chunk table, checked.
    table: Vec<u8>,
    table_cap: usize,
    table_of: Option<u64>,
    file: Option<(u64, F)>,
}

impl<F> ReadBuf<F> {
    /// Fixed buffers allocated now: chunks up to `chunk_bytes` are read
    /// whole (larger ones are checked as they stream through the buffer,
    /// then served from buffer-sized windows), chunk tables up to
    /// `table_records` records are held (larger ones fail with
    /// [`Error::Capacity`]).
    pub fn fixed(chunk_bytes: usize, table_records: usize) -> ReadBuf<F> {
        ReadBuf {
            chunk: vec![0u8; chunk_bytes.max(crate::wire::HEADER_LEN)],
            held: Held::Nothing,
            grow: false,
            table: Vec::with_capacity(table_records * 8),
            table_cap: table_records * 8,
            table_of: None,
            file: None,
        }
    }

    /// Buffers that grow to whatever chunk or table is read.
    pub fn growing() -> ReadBuf<F> {
        ReadBuf {
            chunk: Vec::new(),
            held: Held::Nothing,
            grow: true,
            table: Vec::new(),
            table_cap: usize::MAX,
            table_of: None,
            file: None,
        }
    }

    /// Forgets everything about segments below `first` (deleted by
    /// retention: a kept handle would pin their space).
    pub fn forget_below(&mut self, first: u64) {
        if self.file.as_ref().is_some_and(|(b, _)| *b < first) {
            self.file = None;
        }
        if self.table_of.is_some_and(|b| b < first) {
            self.table_of = None;
        }
        self.held = Held::Nothing;
    }

    /// Forgets everything (e.g. before reading another shard with the same
    /// buffers).
    pub fn clear(&mut self) {
        self.held = Held::Nothing;
        self.table_of = None;
        self.file = None;
    }

    /// Bytes allocated.
    pub fn heap_bytes(&self) -> usize {
        self.chunk.capacity() + self.table.capacity()
    }
}

/// The open file of sealed segment `base`, kept in `slot`.
fn sealed_file<'a, S: Storage>(
    storage: &S,
    base: u64,
    slot: &'a mut Option<(u64, S::File)>,
) -> Result<&'a S::File, Error<S::Error>> {
    if slot.as_ref().is_none_or(|(b, _)| *b != base) {
        *slot = None;
        let name = segment_file_name(base);
        let f = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
        *slot = Some((base, f));
    }
    match slot {
        Some((_, f)) => Ok(f),
        None => Err(Error::Capacity { what: "open segment", needed: 1, available: 0 }),
    }
}

/// The stored payload of `entry` in a checked chunk's bytes.
fn serve<'a, E>(bytes: &'a [u8], pos: &ChunkPos, entry: u64) -> Result<(EntryHeader, &'a [u8]), Error<E>> {
    let mut it = ChunkEntries::new(bytes, pos.first);
    it.skip_to(entry);
    let Some(e) = it.next() else {
        return Err(damaged(pos.damage(pos.start, WireError::Truncated { needed: 1, available: 0 })));
    };
    let len = crate::num::len32(e.stored.len());
    Ok((EntryHeader { len, timestamp: e.timestamp }, e.stored))
}

fn damaged<E>(d: ChunkDamage) -> Error<E> {
    Error::Damaged(d)
}

/// Reads and checks the chunk table of sealed segment `seg` into `rb`.
/// A missing or damaged table file is rebuilt from the segment's bytes,
/// which are then checked as a whole against the manifest's CRC of the
/// table (so a damaged table alone costs a scan, not data).
fn load_table<S: Storage>(
    storage: &S,
    seg: &SegmentMeta,
    interval: u32,
    max_stored: u32,
    rb: &mut ReadBuf<S::File>,
) -> Result<(), Error<S::Error>> {
    if rb.table_of == Some(seg.base) {
        return Ok(());
    }
    rb.table_of = None;
    let want = usize::try_from(seg.chunks).unwrap_or(usize::MAX).saturating_mul(TABLE_RECORD);
    if want > rb.table_cap {
        return Err(Error::Capacity {
            what: "chunk table buffer",
            needed: want as u64,
            available: rb.table_cap as u64,
        });
    }
    let name = chunk_table_file_name(seg.base);
    let corrupt = |offset: u64, error: WireError| {
        Error::Corrupt(Corruption { file: FileKind::ChunkTable { base: seg.base }, offset, error })
    };
    let from_file = match storage.open(&name, OpenMode::Read) {
        Ok(file) => {
            read_table_records(&file, seg.base, interval, 0, want / TABLE_RECORD, &mut rb.table)
                .ctx(IoOp::Read, &name)?
                && seg.check_table(&Table::new(&rb.table)).is_ok()
        }
        Err(e) if crate::storage::StorageError::kind(&e) == crate::storage::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::storage(IoOp::Open, &name, e)),
    };
    if !from_file {
        let seg_name = segment_file_name(seg.base);
        let file = sealed_file(storage, seg.base, &mut rb.file)?;
        let mut scan = crate::segment::Scanner::new(seg.base, interval, max_stored);
        let mut buf = [0u8; 4096];
        scan.run(file, seg.bytes, &mut buf).ctx(IoOp::Read, &seg_name)?;
        let (_, table) = scan.seal();
        rb.table.clear();
        rb.table.extend(table.iter().flat_map(crate::index::ChunkRec::to_bytes));
        seg.check_table(&Table::new(&rb.table)).map_err(|e| corrupt(TABLE_HEADER as u64, e))?;
    }
    rb.table_of = Some(seg.base);
    Ok(())
}

impl<S, H, C> Shard<S, H, C>
where
    S: Storage,
    H: HeadStore<Error = S::Error>,
    C: Compressor,
{
    /// Finds the chunk of durable entry `entry` (loading a sealed
    /// segment's chunk table into `rb`). Entries that are not durable or
    /// retained give [`Error::EntryUnavailable`]; entries in a lost range
    /// [`Error::Lost`].
    pub fn locate(&self, entry: u64, rb: &mut ReadBuf<S::File>) -> Result<ChunkPos, Error<S::Error>> {
        let first = self.first_entry();
        let end = self.durable_end();
        let unavailable = || Error::EntryUnavailable { entry, first, end };
        if entry < first || entry >= end {
            return Err(unavailable());
        }
        let interval = self.interval();
        if entry >= self.base {
            let k = usize::try_from((entry - self.base) / u64::from(interval)).map_err(|_| unavailable())?;
            let closed = self.chunks.closed();
            let step = u64::from(interval);
            if let Some(rec) = closed.get(k) {
                let start = if k == 0 { 0 } else { u64::from(closed[k - 1].end) };
                return Ok(ChunkPos {
                    segment: self.base,
                    index: u32::try_from(k).map_err(|_| unavailable())?,
                    first: self.base + k as u64 * step,
                    entries: interval,
                    start,
                    end: u64::from(rec.end),
                    crc: rec.crc,
                });
            }
            // The open chunk: the durable head covers its synced prefix.
            let d = &self.durable;
            let start = self.chunks.offset(k).ok_or_else(unavailable)?;
            if d.base != self.base || d.entries / step != k as u64 {
                return Err(unavailable());
            }
            return Ok(ChunkPos {
                segment: self.base,
                index: u32::try_from(k).map_err(|_| unavailable())?,
                first: self.base + k as u64 * step,
                entries: u32::try_from(d.entries % step).map_err(|_| unavailable())?,
                start: u64::from(start),
                end: d.bytes,
                crc: d.open_crc,
            });
        }
        let (seg, k) = match locate_sealed(&self.manifest, entry, self.base) {
            Sealed::At { seg, chunk } => (seg, chunk),
            Sealed::Lost(r) => return Err(Error::Lost { entry, start: r.start, end: r.end }),
            Sealed::Unavailable => return Err(unavailable()),
        };
        load_table(&self.storage, seg, interval, self.cfg.max_stored(), rb)?;
        ChunkPos::sealed(seg, interval, &Table::new(&rb.table), k).ok_or_else(unavailable)
    }

    /// Reads durable entry `entry`, checking its chunk first (see
    /// [`crate::platform::read`]), and returns its header and *stored* payload (raw
    /// bytes, or a zstd frame when it starts with the magic), held in `rb`:
    /// [`Error::Damaged`] if the chunk fails its CRC or framing,
    /// [`Error::Lost`] / [`Error::EntryUnavailable`] as
    /// [`locate`](Shard::locate), [`Error::Capacity`] if a payload does not
    /// fit a fixed buffer.
    pub fn read_stored<'a>(
        &self,
        entry: u64,
        rb: &'a mut ReadBuf<S::File>,
    ) -> Result<(EntryHeader, &'a [u8]), Error<S::Error>> {
        let pos = self.locate(entry, rb)?;
        let max_stored = self.cfg.max_stored();
        let name = segment_file_name(pos.segment);
        match rb.held {
            Held::Chunk(p, n) if p == pos => return serve(&rb.chunk[..n], &pos, entry),
            // Checked a moment ago: serve from (or slide) the window.
            Held::Window { pos: p, .. } if p == pos => return self.read_window(pos, entry, rb),
            _ => {}
        }
        rb.held = Held::Nothing;
        let need = usize::try_from(pos.len()).unwrap_or(usize::MAX);
        if need > rb.chunk.len() && rb.grow {
            rb.chunk.resize(need, 0);
        }
        let file =
            if pos.segment == self.base { &self.file } else { sealed_file(&self.storage, pos.segment, &mut rb.file)? };
        if need <= rb.chunk.len() {
            let n = load_chunk(file, &pos, max_stored, &mut rb.chunk).ctx(IoOp::Read, &name)?.map_err(damaged)?;
            rb.held = Held::Chunk(pos, n);
            return serve(&rb.chunk[..n], &pos, entry);
        }
        // Larger than the buffer: check it as it streams through, then
        // serve its entries from buffer-sized windows.
        let at =
            check_streaming(file, &pos, max_stored, entry, &mut rb.chunk).ctx(IoOp::Read, &name)?.map_err(damaged)?;
        rb.held = Held::Window { pos, base: at, len: 0, next: entry, at };
        self.read_window(pos, entry, rb)
    }

    /// Entry `entry` of chunk `pos`, which `rb` holds a window of (checked
    /// as a whole before): walks headers from the window's next entry (or
    /// the chunk's start, for an earlier entry) and slides the window with
    /// one buffer-sized `pread` whenever the entry it needs is not wholly
    /// in it, so a sequential read costs a `pread` per buffer of bytes.
    fn read_window<'a>(
        &self,
        pos: ChunkPos,
        entry: u64,
        rb: &'a mut ReadBuf<S::File>,
    ) -> Result<(EntryHeader, &'a [u8]), Error<S::Error>> {
        let Held::Window { base: mut win, mut len, mut next, mut at, .. } = rb.held else {
            return Err(damaged(pos.damage(pos.start, WireError::InvalidField { offset: 0 })));
        };
        rb.held = Held::Nothing;
        if entry < next {
            (next, at) = (pos.first, pos.start);
        }
        let name = segment_file_name(pos.segment);
        let file =
            if pos.segment == self.base { &self.file } else { sealed_file(&self.storage, pos.segment, &mut rb.file)? };
        let cap = rb.chunk.len();
        let hl = crate::wire::HEADER_LEN as u64;
        loop {
            if next >= pos.first + u64::from(pos.entries) || at >= pos.end {
                return Err(damaged(pos.damage(at.min(pos.end), WireError::Truncated { needed: 1, available: 0 })));
            }
            // The header, then the whole entry, must lie in the window.
            let mut header = None;
            for _ in 0..2 {
                let in_window = at >= win && at + hl <= win + len as u64;
                let parsed = if in_window {
                    let off = crate::read::within(at, win);
                    Some(EntryHeader::parse(&rb.chunk[off..len]).map_err(|e| damaged(pos.damage(at, e)))?)
                } else {
                    None
                };
                if let Some(h) = parsed
                    && at + hl + u64::from(h.len) <= win + len as u64
                {
                    header = Some(h);
                    break;
                }
                if parsed.is_some_and(|h| hl + u64::from(h.len) > cap as u64) {
                    let needed = hl + parsed.map_or(0, |h| u64::from(h.len));
                    return Err(Error::Capacity { what: "read buffer", needed, available: cap as u64 });
                }
                // Slide: one read of a buffer's worth (or up to the chunk's
                // end) from the entry on.
                let want = usize::try_from(pos.end - at).unwrap_or(usize::MAX).min(cap);
                let got = read_exact_at(file, at, &mut rb.chunk[..want]).ctx(IoOp::Read, &name)?;
                if got < want {
                    let e = WireError::Truncated { needed: want as u64, available: got as u64 };
                    return Err(damaged(pos.damage(at + got as u64, e)));
                }
                (win, len) = (at, got);
            }
            let Some(h) = header else {
                return Err(damaged(pos.damage(at, WireError::Truncated { needed: hl, available: 0 })));
            };
            let body = at + hl;
            let end = body + u64::from(h.len);
            if end > pos.end {
                return Err(damaged(pos.damage(at, WireError::Truncated { needed: end - pos.end, available: 0 })));
            }
            if next == entry {
                rb.held = Held::Window { pos, base: win, len, next: entry + 1, at: end };
                let off = crate::read::within(body, win);
                return Ok((h, &rb.chunk[off..off + h.len as usize]));
            }
            (next, at) = (next + 1, end);
        }
    }

    /// Reads durable entry `entry` like [`read_stored`](Shard::read_stored)
    /// and copies its stored payload into `out` (`out[..header.len]`).
    pub fn read_with(
        &self,
        entry: u64,
        rb: &mut ReadBuf<S::File>,
        out: &mut [u8],
    ) -> Result<EntryRef, Error<S::Error>> {
        let (header, stored) = self.read_stored(entry, rb)?;
        let Some(dst) = out.get_mut(..stored.len()) else {
            return Err(Error::Capacity {
                what: "read buffer",
                needed: stored.len() as u64,
                available: out.len() as u64,
            });
        };
        dst.copy_from_slice(stored);
        Ok(EntryRef { header })
    }

    /// Reads durable entry `entry`, appending its *stored* payload to `out`
    /// (a convenience over [`read_with`](Shard::read_with) with growing
    /// buffers, for tests and tools).
    pub fn read(&self, entry: u64, out: &mut Vec<u8>) -> Result<EntryRef, Error<S::Error>> {
        let mut rb = ReadBuf::growing();
        let (header, stored) = self.read_stored(entry, &mut rb)?;
        out.extend_from_slice(stored);
        Ok(EntryRef { header })
    }
}
