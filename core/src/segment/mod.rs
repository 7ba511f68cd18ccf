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

use crate::index::{Chunk, SegmentMeta};
use crate::storage::{StorageFile, read_exact_at};
use crate::wire::{EntryStatus, HEADER_LEN, WireError, classify_entry};

/// Running chunk checksums of one segment.
#[derive(Debug, Clone, Default)]
pub struct ChunkState {
    chunks: Vec<Chunk>,
    open: Option<crc32fast::Hasher>,
    closed: crc32fast::Hasher,
}

impl ChunkState {
    /// Rebuilds the state of a segment from its recorded chunks (e.g. the
    /// manifest's snapshot). The last chunk is open if `entries` is not a
    /// multiple of `interval`.
    pub fn resume(meta: &SegmentMeta, interval: u32) -> ChunkState {
        let mut st = ChunkState { chunks: meta.chunks.clone(), open: None, closed: crc32fast::Hasher::new() };
        let open = !meta.entries.is_multiple_of(u64::from(interval.max(1)));
        let n_closed = st.chunks.len() - usize::from(open && !st.chunks.is_empty());
        for c in &st.chunks[..n_closed] {
            st.closed.update(&c.crc.to_le_bytes());
        }
        if open && let Some(last) = st.chunks.last() {
            st.open = Some(crc32fast::Hasher::new_with_initial(last.crc));
        }
        st
    }

    /// Closes the open chunk (if any) and opens a new one at `offset`.
    pub fn start_chunk(&mut self, offset: u32) {
        self.close();
        self.chunks.push(Chunk { offset, crc: 0 });
        self.open = Some(crc32fast::Hasher::new());
    }

    /// Hashes `bytes` into the open chunk. Bytes with no open chunk are a
    /// caller bug and are ignored.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = self.open.as_mut() {
            h.update(bytes);
        }
    }

    /// Closes the open chunk, folding its CRC into the closed hash.
    pub fn close(&mut self) {
        if let Some(h) = self.open.take() {
            let crc = h.finalize();
            if let Some(last) = self.chunks.last_mut() {
                last.crc = crc;
            }
            self.closed.update(&crc.to_le_bytes());
        }
    }

    /// `(open chunk CRC, hash of closed chunk CRCs)` — the head's checksums.
    pub fn head_crcs(&self) -> (u32, u32) {
        (self.open.as_ref().map_or(0, |h| h.clone().finalize()), self.closed.clone().finalize())
    }

    /// All chunks, with the open chunk's CRC as of now.
    pub fn chunks(&self) -> Vec<Chunk> {
        let mut out = self.chunks.clone();
        if let (Some(h), Some(last)) = (self.open.as_ref(), out.last_mut()) {
            last.crc = h.clone().finalize();
        }
        out
    }

    /// A restore point (see [`ChunkState::restore`]).
    pub fn mark(&self) -> ChunkMark {
        ChunkMark { len: self.chunks.len(), open: self.open.clone(), closed: self.closed.clone() }
    }

    /// Returns to a restore point taken on this state.
    pub fn restore(&mut self, mark: ChunkMark) {
        self.chunks.truncate(mark.len);
        self.open = mark.open;
        self.closed = mark.closed;
    }

    /// Closes the open chunk if the segment's entry count ends a chunk, so
    /// that [`head_crcs`](ChunkState::head_crcs) is canonical (the form the
    /// scanner produces): a chunk is closed exactly when it holds
    /// `interval` entries.
    pub fn settle(&mut self, entries: u64, interval: u32) {
        if entries.is_multiple_of(u64::from(interval.max(1))) {
            self.close();
        }
    }

    /// Forgets every chunk and checksum but keeps the chunk table's
    /// allocation, so a shard reuses it across rotations.
    pub fn reset(&mut self) {
        self.chunks.clear();
        self.open = None;
        self.closed = crc32fast::Hasher::new();
    }

    /// Makes room for `additional` more chunks up front (embedded budgets
    /// preallocate the table at open so appends never grow it).
    pub fn reserve(&mut self, additional: usize) {
        self.chunks.reserve(additional);
    }

    /// Chunks the table holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.chunks.capacity()
    }

    /// Byte offset of chunk `k`.
    pub fn offset(&self, k: usize) -> Option<u32> {
        self.chunks.get(k).map(|c| c.offset)
    }

    /// Number of chunks started so far.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True before the first chunk.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// A restore point of a [`ChunkState`].
#[derive(Debug, Clone)]
pub struct ChunkMark {
    len: usize,
    open: Option<crc32fast::Hasher>,
    closed: crc32fast::Hasher,
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

    /// A scanner positioned after the entries `meta` records.
    pub fn resume(meta: &SegmentMeta, interval: u32, max_entry: u32) -> Scanner {
        Scanner {
            base: meta.base,
            interval: interval.max(1),
            max_entry,
            pos: meta.bytes,
            entries: meta.entries,
            first_ts: meta.first_ts,
            last_ts: meta.last_ts,
            chunks: ChunkState::resume(meta, interval),
        }
    }

    /// The segment summary as scanned so far.
    pub fn meta(&self) -> SegmentMeta {
        SegmentMeta {
            base: self.base,
            entries: self.entries,
            bytes: self.pos,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            chunks: self.chunks.chunks(),
        }
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
                #[allow(clippy::cast_possible_truncation)]
                self.chunks.start_chunk(self.pos.min(u64::from(u32::MAX)) as u32);
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
                self.chunks.close();
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

/// A problem `verify_segment` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentDamage {
    /// Chunk `chunk` (entries `first..end`) does not match its checksum.
    Checksum {
        /// Chunk index.
        chunk: usize,
        /// First entry of the chunk.
        first: u64,
        /// One past its last entry.
        end: u64,
    },
    /// The framing breaks at `offset` (entry `entry`), before the recorded end.
    Framing {
        /// Entry number where the scan stopped.
        entry: u64,
        /// Byte offset.
        offset: u64,
        /// What was found.
        end: ScanEnd,
    },
    /// The file is shorter or longer than recorded.
    Length {
        /// Recorded length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
}

/// Checks a sealed segment against its manifest record: length, framing of
/// every entry, and every chunk checksum. Returns the problems found (empty
/// when the segment is intact).
pub fn verify_segment<F: StorageFile>(
    file: &F,
    meta: &SegmentMeta,
    interval: u32,
    max_entry: u32,
    buf: &mut [u8],
) -> Result<Vec<SegmentDamage>, F::Error> {
    let mut out = Vec::new();
    let len = file.len()?;
    if len != meta.bytes {
        out.push(SegmentDamage::Length { expected: meta.bytes, actual: len });
    }
    let mut sc = Scanner::new(meta.base, interval, max_entry);
    let end = sc.run(file, meta.bytes.min(len), buf)?;
    if end != ScanEnd::Clean || sc.entries != meta.entries {
        out.push(SegmentDamage::Framing { entry: sc.base + sc.entries, offset: sc.pos, end });
    }
    let got = sc.chunks.chunks();
    for (k, want) in meta.chunks.iter().enumerate() {
        if got.get(k) != Some(want) {
            let (first, end) = meta.chunk_entries(k, interval);
            out.push(SegmentDamage::Checksum { chunk: k, first, end });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
