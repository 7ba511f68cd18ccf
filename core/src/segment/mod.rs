//! Segments: chunk checksums and the scanner shared by recovery and verify.
//!
//! A segment holds entries back to back (see [`crate::wire`]). Its bytes are
//! covered chunk by chunk: chunk `k` holds entries `k*interval ..
//! (k+1)*interval` of the segment, and its CRC-32 covers exactly their
//! bytes. A chunk is *closed* once it holds `interval` entries; the last
//! chunk may be *open*. The durable head in `comet.state` records the open
//! chunk's CRC and a CRC over the closed chunks' CRCs, so every synced byte
//! of the active segment is covered by O(1) metadata.
//!
//! [`Scanner`] walks a segment through a caller-supplied buffer (no
//! allocation per entry), validating framing with
//! [`classify_entry`], hashing chunks, and
//! stopping at the first byte that is not a complete, valid entry.

use alloc::vec::Vec;

use crate::index::{ChunkRec, SegmentMeta};
use crate::storage::{StorageFile, read_exact_at};
use crate::wire::{EntryStatus, HEADER_LEN, WireError, classify_entry};

/// Running chunk checksums of one segment: the closed chunks' records (end
/// offset and CRC), the open chunk's start and running CRC, and the CRC over
/// the closed chunks' CRCs (the durable head's `closed_hash`).
#[derive(Debug, Clone, Default)]
pub struct ChunkState {
    closed: Vec<ChunkRec>,
    open: Option<(u32, crc32fast::Hasher)>,
    fold: crc32fast::Hasher,
}

impl ChunkState {
    /// The state of a segment whose closed chunks are `closed` (e.g. a
    /// journal checked against a durable head) and whose open chunk, if
    /// any, starts at `open.0` and has the CRC `open.1` so far.
    pub fn resume(closed: &[ChunkRec], open: Option<(u32, u32)>) -> ChunkState {
        // The CRCs in blocks, as `Table::fold_into` does: one hasher call
        // per block, not per 4-byte CRC (open folds the whole journal).
        let mut fold = crc32fast::Hasher::new();
        let mut block = [0u8; crate::index::table::FOLD_BLOCK];
        for group in closed.chunks(crate::index::table::FOLD_BLOCK / 4) {
            for (to, c) in block.chunks_exact_mut(4).zip(group) {
                to.copy_from_slice(&c.crc.to_le_bytes());
            }
            fold.update(&block[..group.len() * 4]);
        }
        ChunkState {
            closed: closed.to_vec(),
            open: open.map(|(start, crc)| (start, crc32fast::Hasher::new_with_initial(crc))),
            fold,
        }
    }

    /// Closes the open chunk (if any) at `offset` and opens a new one there.
    pub fn start_chunk(&mut self, offset: u32) {
        self.close(offset);
        self.open = Some((offset, crc32fast::Hasher::new()));
    }

    /// Hashes `bytes` into the open chunk. Bytes with no open chunk are a
    /// caller bug and are ignored.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some((_, h)) = self.open.as_mut() {
            h.update(bytes);
        }
    }

    /// Closes the open chunk, which ends at `end`, folding its CRC into the
    /// closed hash.
    pub fn close(&mut self, end: u32) {
        if let Some((_, h)) = self.open.take() {
            let crc = h.finalize();
            self.fold.update(&crc.to_le_bytes());
            self.closed.push(ChunkRec { end, crc });
        }
    }

    /// `(open chunk CRC, hash of closed chunk CRCs)` — the head's checksums.
    pub fn head_crcs(&self) -> (u32, u32) {
        (self.open.as_ref().map_or(0, |(_, h)| h.clone().finalize()), self.fold.clone().finalize())
    }

    /// The closed chunks' records, in order.
    pub fn closed(&self) -> &[ChunkRec] {
        &self.closed
    }

    /// The open chunk's start offset, if a chunk is open.
    pub fn open_start(&self) -> Option<u32> {
        self.open.as_ref().map(|(s, _)| *s)
    }

    /// Every chunk's record with the open chunk closed at `end` (the table
    /// of a segment sealed at `end` bytes).
    pub fn table(&self, end: u32) -> Vec<ChunkRec> {
        let mut out = self.closed.clone();
        if let Some((_, h)) = &self.open {
            out.push(ChunkRec { end, crc: h.clone().finalize() });
        }
        out
    }

    /// A restore point (see [`ChunkState::restore`]).
    pub fn mark(&self) -> ChunkMark {
        ChunkMark { len: self.closed.len(), open: self.open.clone(), fold: self.fold.clone() }
    }

    /// Returns to a restore point taken on this state.
    pub fn restore(&mut self, mark: ChunkMark) {
        self.closed.truncate(mark.len);
        self.open = mark.open;
        self.fold = mark.fold;
    }

    /// Closes the open chunk at `end` if the segment's entry count ends a
    /// chunk, so that [`head_crcs`](ChunkState::head_crcs) is canonical (the
    /// form the scanner produces): a chunk is closed exactly when it holds
    /// `interval` entries.
    pub fn settle(&mut self, entries: u64, interval: u32, end: u32) {
        if entries.is_multiple_of(u64::from(interval.max(1))) {
            self.close(end);
        }
    }

    /// Forgets every chunk and checksum but keeps the chunk table's
    /// allocation, so a shard reuses it across rotations.
    pub fn reset(&mut self) {
        self.closed.clear();
        self.open = None;
        self.fold = crc32fast::Hasher::new();
    }

    /// Makes room for `additional` more chunks up front (embedded budgets
    /// preallocate the table at open so appends never grow it).
    pub fn reserve(&mut self, additional: usize) {
        self.closed.reserve(additional);
    }

    /// Chunks the table holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.closed.capacity()
    }

    /// Byte offset where chunk `k` starts.
    pub fn offset(&self, k: usize) -> Option<u32> {
        if k < self.closed.len() {
            return Some(if k == 0 { 0 } else { self.closed[k - 1].end });
        }
        (k == self.closed.len()).then(|| self.open_start()).flatten()
    }

    /// Number of chunks started so far (closed and open).
    pub fn len(&self) -> usize {
        self.closed.len() + usize::from(self.open.is_some())
    }

    /// True before the first chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A restore point of a [`ChunkState`].
#[derive(Debug, Clone)]
pub struct ChunkMark {
    len: usize,
    open: Option<(u32, crc32fast::Hasher)>,
    fold: crc32fast::Hasher,
}

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Reached the limit exactly at an entry boundary.
    Clean,
    /// An all-zero header (a zero-filled tail).
    ZeroFill,
    /// A partial header before the limit.
    TornHeader,
    /// A header whose payload runs past the limit.
    TornPayload,
    /// A malformed header.
    Invalid(WireError),
}

impl ScanEnd {
    /// True for the outcomes a crash can leave behind (zero fill, torn
    /// header or payload) as opposed to malformed data.
    pub fn is_torn(&self) -> bool {
        matches!(self, ScanEnd::ZeroFill | ScanEnd::TornHeader | ScanEnd::TornPayload)
    }
}

/// Walks a segment entry by entry, keeping counts, timestamps and chunk
/// checksums.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Base entry of the segment.
    pub base: u64,
    /// Entries per chunk.
    pub interval: u32,
    /// Largest valid stored payload.
    pub max_entry: u32,
    /// Byte offset of the next entry.
    pub pos: u64,
    /// Entries scanned.
    pub entries: u64,
    /// Smallest timestamp seen (0 if none).
    pub first_ts: u64,
    /// Largest timestamp seen (0 if none).
    pub last_ts: u64,
    /// Chunk checksums.
    pub chunks: ChunkState,
}

impl Scanner {
    /// A scanner at the start of a segment.
    pub fn new(base: u64, interval: u32, max_entry: u32) -> Scanner {
        Scanner {
            base,
            interval: interval.max(1),
            max_entry,
            pos: 0,
            entries: 0,
            first_ts: 0,
            last_ts: 0,
            chunks: ChunkState::default(),
        }
    }

    /// The segment as scanned so far, sealed here: its manifest record
    /// and its chunk table.
    pub fn seal(&self) -> (SegmentMeta, Vec<ChunkRec>) {
        seal(self.base, self.entries, self.pos, (self.first_ts, self.last_ts), &self.chunks)
    }

    /// Scans entries from `self.pos` while they end at or before `limit`,
    /// reading through `buf` (at least [`HEADER_LEN`] bytes; larger is
    /// faster). Stops at `limit` or at the first invalid position, which is
    /// then `self.pos`.
    pub fn run<F: StorageFile>(&mut self, file: &F, limit: u64, buf: &mut [u8]) -> Result<ScanEnd, F::Error> {
        let interval = u64::from(self.interval);
        // The window buf[..win_len] holds file bytes starting at win_start.
        let mut win_start = self.pos;
        let mut win_len = 0usize;
        // Bytes [hashed, self.pos) are whole entries of the open chunk not
        // hashed yet; they lie in the window. They are hashed in one call
        // per span (at a chunk boundary, before the window moves, at the
        // end) rather than per entry, so verification runs at CRC speed.
        let mut hashed = self.pos;
        let end = loop {
            if self.pos >= limit {
                break ScanEnd::Clean;
            }
            let remaining = limit - self.pos;
            let in_win = |pos: u64, len: usize, ws: u64, wl: usize| pos >= ws && pos + len as u64 <= ws + wl as u64;
            let want = HEADER_LEN.min(usize::try_from(remaining).unwrap_or(HEADER_LEN));
            if !in_win(self.pos, want, win_start, win_len) {
                self.hash_pending(buf, win_start, &mut hashed);
                win_start = self.pos;
                let n = buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                win_len = read_exact_at(file, win_start, &mut buf[..n])?;
            }
            let off = usize::try_from(self.pos - win_start).unwrap_or(0);
            let head_end = (off + HEADER_LEN).min(win_len);
            let status = classify_entry(&buf[off..head_end], remaining.min((win_len - off) as u64), self.max_entry);
            // A header fully present but a payload beyond the window: judge
            // the payload against the limit, not the window.
            let status = match status {
                EntryStatus::TornPayload(h) if head_end - off == HEADER_LEN && h.total_len() <= remaining => {
                    EntryStatus::Valid(h)
                }
                other => other,
            };
            let header = match status {
                EntryStatus::Valid(h) => h,
                EntryStatus::End => break ScanEnd::ZeroFill,
                EntryStatus::TornHeader => break ScanEnd::TornHeader,
                EntryStatus::TornPayload(_) => break ScanEnd::TornPayload,
                EntryStatus::Invalid(e) => break ScanEnd::Invalid(e),
            };
            // The entry's number must exist (a segment named near u64::MAX).
            if self.base.checked_add(self.entries + 1).is_none() {
                break ScanEnd::Invalid(WireError::TooLarge { len: self.entries + 1, max: u64::MAX - self.base });
            }
            let total = header.total_len();
            if self.entries.is_multiple_of(interval) {
                self.hash_pending(buf, win_start, &mut hashed);
                self.chunks.start_chunk(offset32(self.pos));
            }
            let have = (win_len - off).min(usize::try_from(total).unwrap_or(usize::MAX));
            if (have as u64) < total {
                // The entry runs past the window: hash what is pending and
                // what the window holds, then the rest as it is read.
                self.hash_pending(buf, win_start, &mut hashed);
                self.chunks.update(&buf[off..off + have]);
                let mut done = have as u64;
                while done < total {
                    let at = self.pos + done;
                    let n = buf.len().min(usize::try_from(total - done).unwrap_or(usize::MAX));
                    let got = read_exact_at(file, at, &mut buf[..n])?;
                    if got == 0 {
                        // The file shrank under us: treat as torn.
                        return Ok(ScanEnd::TornPayload);
                    }
                    self.chunks.update(&buf[..got]);
                    done += got as u64;
                    win_start = at;
                    win_len = got;
                }
                hashed = self.pos + total;
            }
            self.pos += total;
            self.entries += 1;
            if self.first_ts == 0 || header.timestamp < self.first_ts {
                self.first_ts = header.timestamp;
            }
            self.last_ts = self.last_ts.max(header.timestamp);
            if self.entries.is_multiple_of(interval) {
                self.hash_pending(buf, win_start, &mut hashed);
                self.chunks.close(offset32(self.pos));
            }
        };
        self.hash_pending(buf, win_start, &mut hashed);
        Ok(end)
    }

    /// Hashes the scanned bytes `[*hashed, self.pos)`, which the window
    /// starting at file offset `win_start` holds, into the open chunk.
    fn hash_pending(&mut self, buf: &[u8], win_start: u64, hashed: &mut u64) {
        if self.pos > *hashed {
            let from = usize::try_from(*hashed - win_start).unwrap_or(usize::MAX);
            let to = usize::try_from(self.pos - win_start).unwrap_or(usize::MAX);
            let span = buf.get(from..to);
            debug_assert!(span.is_some(), "pending bytes outside the window");
            if let Some(span) = span {
                self.chunks.update(span);
            }
            *hashed = self.pos;
        }
    }
}

pub use crate::num::offset32;

/// The manifest record and chunk table of a segment of `entries` entries
/// and `bytes` bytes, timestamps `ts` (first, last) and chunk state
/// `chunks`, sealed as it is.
pub fn seal(base: u64, entries: u64, bytes: u64, ts: (u64, u64), chunks: &ChunkState) -> (SegmentMeta, Vec<ChunkRec>) {
    let table = chunks.table(offset32(bytes));
    let mut recs = Vec::with_capacity(table.len() * crate::index::table::TABLE_RECORD);
    for r in &table {
        recs.extend_from_slice(&r.to_bytes());
    }
    let meta = SegmentMeta {
        base,
        entries,
        bytes,
        // A first timestamp read from an unverified header (a damaged first
        // chunk) must not make the record invalid.
        first_ts: ts.0.min(ts.1),
        last_ts: ts.1,
        chunks: crate::num::index32(table.len()),
        table_crc: crc32fast::hash(&recs),
        lost: Vec::new(),
    };
    (meta, table)
}

#[cfg(test)]
mod tests;
