//! Lock-free, zero-copy reads of one shard through memory maps.
//!
//! A [`Reader`] never touches writer state: it learns what is durable from
//! the seqlocked head in `comet.state` (shared by every process), finds
//! sealed segments through `index.bin` (reloaded when it changes), and
//! indexes the active segment itself by hopping over entry headers. The
//! same code serves readers in the writer's process and in any other.
//!
//! Payloads of uncompressed entries are borrowed from the mapping
//! ([`Message::data`] points into it); the [`Message`] holds an `Arc` of the
//! mapping, so a remap (when the file grows) never unmaps memory a message
//! still uses. Compressed entries are decompressed into owned bytes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use comet_core::ShardId;
use comet_core::error::{Corruption, FileKind, IoOp};
use comet_core::index::{MANIFEST_FILE, Manifest};
use comet_core::shm;
use comet_core::state::{Counter, DurableHead};
use comet_core::wire::{
    EntryStatus, HEADER_LEN, WireError, classify_entry, is_frame, raw_frame_len, segment_file_name,
};

use crate::error::{Error, Result};
use crate::mmap::{SegmentMap, SharedWords};
use crate::shard::{check_native, map_state_read, read_head_seq};

/// Where an entry lives: shard and entry number. Displays as
/// `<shard>-<entry>`, like the Go package's `MessageID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The shard.
    pub shard: ShardId,
    /// The entry number within the shard.
    pub entry: u64,
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.shard.get(), self.entry)
    }
}

impl std::str::FromStr for MessageId {
    type Err = Error;

    /// Parses `<shard>-<entry>` strictly (decimal digits only).
    fn from_str(s: &str) -> Result<MessageId> {
        let bad = || Error::InvalidStream(comet_core::NameError::BadShardDigits);
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        let shard = a.parse::<u32>().ok().and_then(ShardId::new).ok_or_else(bad)?;
        let entry = b.parse::<u64>().map_err(|_| bad())?;
        Ok(MessageId { shard, entry })
    }
}

#[derive(Debug, Clone)]
enum Payload {
    Mapped { map: Arc<SegmentMap>, start: usize, len: usize },
    Owned(Vec<u8>),
}

/// One entry read back: id, timestamp and payload.
#[derive(Debug, Clone)]
pub struct Message {
    /// Shard and entry number.
    pub id: MessageId,
    /// Append timestamp, ns since the Unix epoch.
    pub timestamp: u64,
    payload: Payload,
}

impl Message {
    /// The payload as appended (decompressed if it was stored compressed).
    pub fn data(&self) -> &[u8] {
        match &self.payload {
            Payload::Mapped { map, start, len } => &map.bytes()[*start..*start + *len],
            Payload::Owned(v) => v,
        }
    }

    /// True if the payload is borrowed from the mapping (no copy was made).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.payload, Payload::Mapped { .. })
    }

    /// The payload as an owned vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self.payload {
            Payload::Owned(v) => v,
            Payload::Mapped { .. } => self.data().to_vec(),
        }
    }
}

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

/// Entries between reader-side checkpoints of the active segment.
/// (A `u32` per 8 entries: 0.5 bytes per indexed entry, e.g. 1.3 MiB for
/// a fully indexed 256 MiB segment of 100-byte entries, built only by
/// random reads; they hop 3.5 entries on average. Measured against 16 and
/// 64 in `benches/benches/reader.rs`: the hops' cache misses dominate.)
const STRIDE: u64 = 8;
/// Sealed segment maps kept open per reader: on 64-bit enough that a
/// shard's sealed segments are rarely unmapped (address space is cheap; an
/// idle reader maps nothing), few on 32-bit.
const SEALED_CACHE: usize = if cfg!(target_pointer_width = "64") { 256 } else { 8 };

struct ActiveView {
    base: u64,
    file: File,
    map: Arc<SegmentMap>,
    mapped: u64,
    /// Byte offset of every STRIDE-th entry indexed so far (as long as
    /// offsets fit 32 bits; entries past the last mark hop from it).
    marks: Vec<u32>,
    /// Entries and bytes indexed so far.
    indexed: (u64, u64),
}

/// Where the next entry is, after a read (sequential reads skip lookups).
#[derive(Clone)]
struct Cursor {
    entry: u64,
    base: u64,
    offset: u64,
    /// For a sealed segment: its map, valid bytes and end entry.
    sealed: Option<(Arc<SegmentMap>, u64, u64)>,
}

struct SealedMap {
    base: u64,
    map: Arc<SegmentMap>,
    used: u64,
    /// Offsets of every STRIDE-th entry within each manifest checkpoint
    /// interval (`per` marks per chunk, 0 = not found yet), filled as
    /// random reads pass them. Allocated zeroed on first use, so only the
    /// pages of chunks actually read become resident.
    sub: Vec<u32>,
}

/// A sealed entry's segment (base, valid bytes, end entry) and checkpoint
/// (first entry, byte offset).
#[derive(Clone, Copy)]
struct SealedPos {
    base: u64,
    bytes: u64,
    end: u64,
    from: u64,
    off: u64,
    /// The checkpoint's index, the segment's number of checkpoints and the
    /// checkpoint interval.
    chunk: usize,
    chunks: usize,
    interval: u32,
}

/// Where `Reader::locate` found an entry.
struct Located {
    base: u64,
    map: Arc<SegmentMap>,
    offset: u64,
    /// Valid bytes of the segment.
    limit: u64,
    /// One past the segment's last entry, for a sealed segment.
    sealed_end: Option<u64>,
}

/// Reads one shard. Cheap to create; keep one per consuming thread.
pub struct Reader {
    shard: ShardId,
    dir: PathBuf,
    state: Option<Arc<SharedWords>>,
    manifest: Option<Arc<Manifest>>,
    manifest_gen: u64,
    max_entry: u32,
    max_stored: u32,
    /// Open sealed maps, sorted by segment base.
    sealed: Vec<SealedMap>,
    /// Most sealed maps kept (least recently used goes first).
    sealed_cap: usize,
    /// Clock of `SealedMap::used`.
    sealed_tick: u64,
    active: Option<ActiveView>,
    cursor: Option<Cursor>,
    remaps: u64,
    /// The last decoded durable head and the seqlock sequence it was
    /// published under: valid while the sequence has not moved.
    head_cache: Option<(u64, DurableHead)>,
    /// The zstd context for compressed entries.
    unzstd: crate::compress::Unzstd,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("shard", &self.shard).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of the shard stored in `dir` (its `shard-NNNN` directory).
    /// Creates nothing; a shard that does not exist yet reads as empty.
    pub fn open(dir: impl Into<PathBuf>, shard: ShardId, max_entry_size: u32) -> Reader {
        Reader {
            shard,
            dir: dir.into(),
            state: None,
            manifest: None,
            manifest_gen: 0,
            max_entry: max_entry_size,
            max_stored: u32::try_from(max_stored(max_entry_size)).unwrap_or(u32::MAX),
            sealed: Vec::new(),
            sealed_cap: SEALED_CACHE,
            sealed_tick: 0,
            active: None,
            cursor: None,
            remaps: 0,
            head_cache: None,
            unzstd: crate::compress::Unzstd::default(),
        }
    }

    pub(crate) fn with_state(mut self, state: Option<Arc<SharedWords>>) -> Reader {
        self.state = state;
        self
    }

    /// The shard this reader reads.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Times a mapping was replaced because its file grew.
    pub fn remaps(&self) -> u64 {
        self.remaps
    }

    fn state(&mut self) -> Result<Option<&Arc<SharedWords>>> {
        if self.state.is_none() {
            check_native(&self.dir, self.shard)?;
            self.state = map_state_read(&self.dir)?.map(Arc::new);
        }
        Ok(self.state.as_ref())
    }

    /// The durable head, or `None` if the shard has no valid state yet.
    ///
    /// Decoded (a CRC-32 over the head line) only when the head's seqlock
    /// sequence moved since the last call; otherwise one atomic load.
    pub fn head(&mut self) -> Result<Option<DurableHead>> {
        if self.state.is_none() && self.state()?.is_none() {
            return Ok(None);
        }
        let Some(state) = self.state.as_ref() else {
            return Ok(None);
        };
        if let Some((seq, head)) = self.head_cache
            && shm::head_seq(state.words()) == seq
        {
            return Ok(Some(head));
        }
        let decoded = read_head_seq(state);
        self.head_cache = decoded.map(|(h, seq)| (seq, h));
        Ok(decoded.map(|(h, _)| h))
    }

    /// Loads `index.bin` if it changed (or `force`).
    fn manifest(&mut self, force: bool) -> Result<()> {
        let gen_now = self.state()?.map_or(0, |s| shm::load_counter(s.words(), Counter::ManifestGeneration));
        if self.manifest.is_none() || force || gen_now != self.manifest_gen {
            let path = self.dir.join(MANIFEST_FILE);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let m = Manifest::decode(&bytes).map_err(|error| Error::Corrupt {
                        shard: self.shard,
                        corruption: Corruption { file: FileKind::Manifest, offset: 0, error },
                    })?;
                    self.manifest = Some(Arc::new(m));
                    self.manifest_gen = gen_now;
                    self.sealed.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(IoOp::Read, path, e)),
            }
        }
        Ok(())
    }

    /// For a sealed `entry`: its segment's base, bytes and end, and the
    /// first entry and byte offset of its checkpoint. `None` if the loaded
    /// manifest has no such segment; `Some(None)` if it has no checkpoint.
    #[allow(clippy::option_option)]
    fn find_sealed(&self, entry: u64) -> Option<Option<SealedPos>> {
        let m = self.manifest.as_ref()?;
        let seg = m.find_sealed(entry)?;
        Some(seg.chunk_for(entry, m.interval).map(|(chunk, from, off)| SealedPos {
            base: seg.base,
            bytes: seg.bytes,
            end: seg.end(),
            from,
            off,
            chunk,
            chunks: seg.chunks.len(),
            interval: m.interval,
        }))
    }

    /// `(first retained entry, one past the last durable entry)`.
    pub fn bounds(&mut self) -> Result<(u64, u64)> {
        let Some(head) = self.head()? else {
            return Ok((0, 0));
        };
        self.manifest(false)?;
        let first = self.manifest.as_ref().map_or(head.base, |m| m.first_entry);
        Ok((first.min(head.end()), head.end()))
    }

    fn unavailable(&mut self, entry: u64, head: Option<&DurableHead>) -> Error {
        let end = head.map_or(0, DurableHead::end);
        let first = self.manifest.as_ref().map_or(0, |m| m.first_entry);
        Error::Unavailable { shard: self.shard, entry, first, end }
    }

    fn open_segment(&self, base: u64) -> Result<File> {
        let path = self.dir.join(segment_file_name(base).as_str());
        File::open(&path).map_err(|e| Error::io(IoOp::Open, path, e))
    }

    fn sealed_map(&mut self, base: u64, bytes: u64) -> Result<Arc<SegmentMap>> {
        self.sealed_tick += 1;
        let at = match self.sealed.binary_search_by_key(&base, |s| s.base) {
            Ok(i) => {
                let hit = &mut self.sealed[i];
                hit.used = self.sealed_tick;
                return Ok(hit.map.clone());
            }
            Err(i) => i,
        };
        let file = self.open_segment(base)?;
        let len = file.metadata().map_err(|e| Error::io(IoOp::Len, &self.dir, e))?.len();
        if len < bytes {
            return Err(corrupt(self.shard, base, len, WireError::Truncated { needed: bytes, available: len }));
        }
        let map = Arc::new(SegmentMap::map(&file, bytes).map_err(|e| Error::io(IoOp::Read, &self.dir, e))?);
        let mut at = at;
        if self.sealed.len() >= self.sealed_cap.max(1) {
            // Evict the least recently used. A message still holding that
            // map keeps it mapped through its own `Arc`.
            let lru = self.sealed.iter().enumerate().min_by_key(|(_, s)| s.used).map_or(0, |(i, _)| i);
            self.sealed.remove(lru);
            if lru < at {
                at -= 1;
            }
        }
        self.sealed.insert(at, SealedMap { base, map: map.clone(), used: self.sealed_tick, sub: Vec::new() });
        Ok(map)
    }

    /// Makes the active view cover `head` (opening or remapping).
    fn active_view(&mut self, head: &DurableHead) -> Result<&mut ActiveView> {
        if self.active.as_ref().is_none_or(|a| a.base != head.base) {
            let file = self.open_segment(head.base)?;
            self.active = None;
            self.cursor = None;
            self.active = Some(ActiveView {
                base: head.base,
                file,
                map: Arc::new(SegmentMap::empty()),
                mapped: 0,
                marks: vec![0u32],
                indexed: (0, 0),
            });
        }
        let Some(view) = self.active.as_mut() else {
            return Err(corrupt(self.shard, head.base, 0, WireError::Truncated { needed: head.bytes, available: 0 }));
        };
        if view.mapped < head.bytes {
            view.map =
                Arc::new(SegmentMap::map(&view.file, head.bytes).map_err(|e| Error::io(IoOp::Read, &self.dir, e))?);
            view.mapped = head.bytes;
            self.remaps += 1;
        }
        Ok(view)
    }

    /// Finds `entry`.
    fn locate(&mut self, entry: u64, head: Option<&DurableHead>) -> Result<Located> {
        let Some(head) = head.filter(|h| entry < h.end()).copied() else {
            return Err(self.unavailable(entry, head));
        };
        if let Some(Cursor { base, offset, sealed: Some((map, limit, end)), .. }) =
            self.cursor.as_ref().filter(|c| c.entry == entry)
            && entry < *end
        {
            return Ok(Located {
                base: *base,
                map: map.clone(),
                offset: *offset,
                limit: *limit,
                sealed_end: Some(*end),
            });
        }
        let (shard, max) = (self.shard, self.max_stored);
        if entry >= head.base {
            let cursor = self.cursor.as_ref().filter(|c| c.entry == entry && c.base == head.base).map(|c| c.offset);
            let limit = head.bytes;
            let view = self.active_view(&head)?;
            let (base, map) = (view.base, view.map.clone());
            if let Some(offset) = cursor {
                return Ok(Located { base, map, offset, limit, sealed_end: None });
            }
            let idx = entry - base;
            // Extend this reader's own checkpoints far enough.
            while view.indexed.0 <= idx && view.indexed.1 < limit {
                let next = step(shard, max, base, map.bytes(), view.indexed.1, limit)?;
                view.indexed = (view.indexed.0 + 1, next);
                if view.indexed.0 % STRIDE == 0
                    && view.indexed.0 / STRIDE == view.marks.len() as u64
                    && let Ok(mark) = u32::try_from(next)
                {
                    view.marks.push(mark);
                }
            }
            let k = usize::try_from(idx / STRIDE).unwrap_or(usize::MAX).min(view.marks.len().saturating_sub(1));
            let Some(&mark) = view.marks.get(k) else {
                return Err(corrupt(
                    shard,
                    base,
                    view.indexed.1,
                    WireError::Truncated { needed: limit, available: view.indexed.1 },
                ));
            };
            let skip = idx - k as u64 * STRIDE;
            let offset = hop(shard, max, base, map.bytes(), u64::from(mark), skip, limit)?;
            return Ok(Located { base, map, offset, limit, sealed_end: None });
        }
        self.manifest(false)?;
        let mut found = self.find_sealed(entry);
        if found.is_none() {
            self.manifest(true)?;
            found = self.find_sealed(entry);
        }
        let Some(Some(pos)) = found else {
            return Err(self.unavailable(entry, Some(&head)));
        };
        let SealedPos { base: seg_base, bytes: seg_bytes, end: seg_end, .. } = pos;
        let map = match self.sealed_map(seg_base, seg_bytes) {
            Ok(m) => m,
            // Retention deleted it after our manifest was loaded.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.manifest(true)?;
                return Err(self.unavailable(entry, Some(&head)));
            }
            Err(e) => return Err(e),
        };
        let (start, skip) = self.sealed_mark(&pos, &map, entry)?;
        let offset = hop(shard, max, seg_base, map.bytes(), start, skip, seg_bytes)?;
        Ok(Located { base: seg_base, map, offset, limit: seg_bytes, sealed_end: Some(seg_end) })
    }

    /// Where to start hopping to sealed `entry` and how many entries to
    /// hop: from the nearest STRIDE mark within its checkpoint interval,
    /// found (and kept) by hopping from the checkpoint, never past `entry`.
    fn sealed_mark(&mut self, pos: &SealedPos, map: &SegmentMap, entry: u64) -> Result<(u64, u64)> {
        let p = entry - pos.from;
        let per = usize::try_from(u64::from(pos.interval.saturating_sub(1)) / STRIDE).unwrap_or(0);
        let q = usize::try_from(p / STRIDE).unwrap_or(usize::MAX);
        let plain = (pos.off, p);
        if q == 0 || q > per {
            return Ok(plain);
        }
        let Ok(i) = self.sealed.binary_search_by_key(&pos.base, |s| s.base) else {
            return Ok(plain);
        };
        let (shard, max) = (self.shard, self.max_stored);
        let s = &mut self.sealed[i];
        if s.sub.is_empty() {
            s.sub = vec![0u32; pos.chunks.saturating_mul(per)];
        }
        let first = pos.chunk * per;
        let Some(marks) = s.sub.get_mut(first..first + q) else {
            return Ok(plain);
        };
        let mut at = pos.off;
        for mark in marks.iter_mut() {
            if *mark == 0 {
                at = hop(shard, max, pos.base, map.bytes(), at, STRIDE, pos.bytes)?;
                let Ok(v) = u32::try_from(at) else {
                    return Ok(plain);
                };
                *mark = v;
            } else {
                at = u64::from(*mark);
            }
        }
        Ok((at, p % STRIDE))
    }

    /// Reads durable entry `entry`.
    pub fn read(&mut self, entry: u64) -> Result<Message> {
        let head = self.head()?;
        self.read_at(entry, head.as_ref())
    }

    fn read_at(&mut self, entry: u64, head: Option<&DurableHead>) -> Result<Message> {
        let Located { base, map, offset: off, limit, sealed_end } = self.locate(entry, head)?;
        let (timestamp, len) = header(self.shard, self.max_stored, base, map.bytes(), off, limit)?;
        let start = usize::try_from(off).unwrap_or(usize::MAX) + HEADER_LEN;
        let len = len as usize;
        let next = off + (HEADER_LEN + len) as u64;
        let sealed = sealed_end.map(|end| (map.clone(), limit, end));
        self.cursor = Some(Cursor { entry: entry + 1, base, offset: next, sealed });
        let id = MessageId { shard: self.shard, entry };
        let stored = &map.bytes()[start..start + len];
        let payload = if is_frame(stored) {
            let data = self.unzstd.decompress(stored, self.max_entry as usize).map_err(|source| Error::Decompress {
                shard: self.shard,
                entry,
                source,
            })?;
            Payload::Owned(data)
        } else {
            Payload::Mapped { map, start, len }
        };
        Ok(Message { id, timestamp, payload })
    }

    /// Reads up to `max` durable entries starting at `from` into `out`.
    /// Returns how many were added. Stops at the durable end; stops at an
    /// unreadable entry with its error (entries before it stay in `out`, and
    /// the entry is never skipped).
    pub fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Message>) -> Result<usize> {
        let head = self.head()?;
        let end = head.map_or(0, |h| h.end());
        let mut n = 0;
        let mut entry = from;
        while n < max && entry < end {
            out.push(self.read_at(entry, head.as_ref())?);
            entry += 1;
            n += 1;
            if let Some(head) = &head {
                self.run(head, &mut entry, end, max - n, out)?;
                n = usize::try_from(entry - from).unwrap_or(max);
            }
        }
        Ok(n)
    }

    /// Reads on from the cursor while the entries are raw and in the
    /// cursor's segment: the same checks as [`read_at`](Reader::read_at)
    /// (each entry's header is validated) without locating each entry
    /// again. Stops before a compressed entry (left to `read_at`) and at
    /// `end` or after `max` entries; `entry` is moved past what was read.
    fn run(&mut self, head: &DurableHead, entry: &mut u64, end: u64, max: usize, out: &mut Vec<Message>) -> Result<()> {
        let Some(c) = self.cursor.as_mut().filter(|c| c.entry == *entry) else {
            return Ok(());
        };
        let (map, limit, seg_end) = match &c.sealed {
            Some((map, limit, seg_end)) => (map.clone(), *limit, *seg_end),
            None => match &self.active {
                Some(v) if v.base == c.base && c.base == head.base && v.mapped >= head.bytes => {
                    (v.map.clone(), head.bytes, head.end())
                }
                _ => return Ok(()),
            },
        };
        let stop = end.min(seg_end).min(entry.saturating_add(max as u64));
        let bytes = map.bytes();
        let mut off = c.offset;
        let mut result = Ok(());
        while *entry < stop {
            let (timestamp, len) = match header(self.shard, self.max_stored, c.base, bytes, off, limit) {
                Ok(h) => h,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let start = usize::try_from(off).unwrap_or(usize::MAX) + HEADER_LEN;
            let len = len as usize;
            let Some(stored) = bytes.get(start..start + len) else {
                break;
            };
            if is_frame(stored) {
                break;
            }
            out.push(Message {
                id: MessageId { shard: self.shard, entry: *entry },
                timestamp,
                payload: Payload::Mapped { map: map.clone(), start, len },
            });
            off += (HEADER_LEN + len) as u64;
            *entry += 1;
        }
        c.entry = *entry;
        c.offset = off;
        result
    }

    /// The first readable entry whose timestamp is at or after `ts_ns`
    /// (entry timestamps never decrease within a shard), or the durable end.
    /// Entries lost to damage (a range recovery reported missing) count as
    /// stamped like the first entry after them, so a time inside such a
    /// range finds the first entry after it.
    pub fn seek_time(&mut self, ts_ns: u64) -> Result<u64> {
        let (first, end) = self.bounds()?;
        // Binary search over entry numbers using reads (O(log n) reads, each
        // an O(1) checkpoint lookup plus a short hop).
        let (mut lo, mut hi) = (first, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let head = self.head()?;
            let probe = self.after_gap(mid, head.as_ref());
            if probe >= end {
                hi = mid;
                continue;
            }
            let at = self.locate(probe, head.as_ref())?;
            let (ts, _) = header(self.shard, self.max_stored, at.base, at.map.bytes(), at.offset, at.limit)?;
            if ts < ts_ns { lo = probe + 1 } else { hi = mid }
        }
        let head = self.head()?;
        Ok(self.after_gap(lo, head.as_ref()).min(end))
    }

    /// The first entry at or after `entry` that is not in a lost range (a
    /// range recovery reported missing), clamped to the retained range
    /// `first..=end`.
    pub fn readable_from(&mut self, entry: u64) -> Result<u64> {
        let (first, end) = self.bounds()?;
        let head = self.head()?;
        Ok(self.after_gap(entry.clamp(first, end), head.as_ref()).min(end))
    }

    /// `entry` if it is not in a lost range, else the first entry after
    /// that range: a range between sealed segments, or between the last
    /// sealed segment and the active one, that no segment holds.
    fn after_gap(&self, entry: u64, head: Option<&DurableHead>) -> u64 {
        let Some(head) = head else { return entry };
        if entry >= head.base {
            return entry;
        }
        let Some(m) = self.manifest.as_ref() else { return entry };
        if entry < m.first_entry || m.find_sealed(entry).is_some() {
            return entry;
        }
        m.sealed.iter().map(|s| s.base).find(|&b| b > entry).unwrap_or(head.base)
    }
}

fn corrupt(shard: ShardId, base: u64, offset: u64, error: WireError) -> Error {
    Error::Corrupt { shard, corruption: Corruption { file: FileKind::Segment { base }, offset, error } }
}

/// Validates the header at `offset` of a segment's `bytes` (valid data ends
/// at `limit`) and returns `(timestamp, stored payload length)`.
fn header(shard: ShardId, max_stored: u32, base: u64, bytes: &[u8], offset: u64, limit: u64) -> Result<(u64, u32)> {
    let at = usize::try_from(offset).unwrap_or(usize::MAX);
    let head = bytes.get(at..bytes.len().min(at.saturating_add(HEADER_LEN))).unwrap_or(&[]);
    let remaining = limit.min(bytes.len() as u64).saturating_sub(offset);
    match classify_entry(head, remaining, max_stored) {
        EntryStatus::Valid(h) => Ok((h.timestamp, h.len)),
        EntryStatus::Invalid(e) => Err(corrupt(shard, base, offset, e)),
        _ => {
            Err(corrupt(shard, base, offset, WireError::Truncated { needed: HEADER_LEN as u64, available: remaining }))
        }
    }
}

/// The offset of the entry after the one at `offset`, from its length
/// field alone (the entry a read returns is validated by [`header`]): the
/// length must be within `max_stored` and the entry within `limit`,
/// otherwise the full check reports what is wrong.
fn step(shard: ShardId, max_stored: u32, base: u64, bytes: &[u8], offset: u64, limit: u64) -> Result<u64> {
    let end = limit.min(bytes.len() as u64);
    let at = usize::try_from(offset).unwrap_or(usize::MAX);
    if let Some(&[a, b, c, d]) = bytes.get(at..at.saturating_add(4)) {
        let len = u32::from_le_bytes([a, b, c, d]);
        let next = offset + HEADER_LEN as u64 + u64::from(len);
        if len <= max_stored && next <= end {
            return Ok(next);
        }
    }
    let (_, len) = header(shard, max_stored, base, bytes, offset, limit)?;
    Ok(offset + HEADER_LEN as u64 + u64::from(len))
}

/// Hops `n` entries forward from `offset` (see [`step`]; this is its loop
/// with the fast path inlined).
fn hop(shard: ShardId, max_stored: u32, base: u64, bytes: &[u8], offset: u64, n: u64, limit: u64) -> Result<u64> {
    let end = limit.min(bytes.len() as u64);
    let max = u64::from(max_stored);
    let mut off = offset;
    for _ in 0..n {
        let len = usize::try_from(off)
            .ok()
            .and_then(|at| bytes.get(at..))
            .and_then(<[u8]>::first_chunk::<4>)
            .map(|b| u64::from(u32::from_le_bytes(*b)));
        off = match len {
            Some(len) if len <= max && off + HEADER_LEN as u64 + len <= end => off + HEADER_LEN as u64 + len,
            _ => step(shard, max_stored, base, bytes, off, limit)?,
        };
    }
    Ok(off)
}

/// The maximum stored size for a maximum raw size (for tools).
pub fn max_stored(max_entry_size: u32) -> u64 {
    raw_frame_len(max_entry_size as usize) as u64
}

/// The shard directory of `shard` under `root`.
pub(crate) fn shard_dir(root: &Path, shard: ShardId) -> PathBuf {
    root.join(comet_core::wire::shard_dir_name(shard).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, Config};

    fn entry(i: u64) -> Vec<u8> {
        format!("entry {i} ").repeat(usize::try_from(i % 13).unwrap_or(0) + 1).into_bytes()
    }

    /// A shard of many small sealed segments.
    fn shard_with_segments(dir: &Path, n: u64) -> Client {
        let mut cfg = Config::default();
        cfg.storage.max_file_size = 4096;
        cfg.indexing.boundary_interval = 8;
        cfg.compression.min_compress_size = 1 << 20;
        let c = Client::open(dir, cfg).unwrap();
        for i in 0..n {
            c.append("events:v1:shard:0001", &[entry(i)]).unwrap();
        }
        c.sync().unwrap();
        c
    }

    #[test]
    fn evicting_a_sealed_map_never_unmaps_a_message_still_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let c = shard_with_segments(dir.path(), 1200);
        let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
        r.sealed_cap = 2;
        let mut held = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // Random order, across every segment: each read maps, most evict.
        let mut k = 7u64;
        for _ in 0..600 {
            k = (k * 1_103_515_245 + 12_345) % 1200;
            let m = r.read(k).unwrap();
            assert_eq!(m.data(), &entry(k)[..]);
            assert!(r.sealed.len() <= 2);
            assert!(r.sealed.windows(2).all(|w| w[0].base < w[1].base), "sorted by base");
            seen.extend(r.sealed.iter().map(|s| s.base));
            held.push(m);
        }
        assert!(seen.len() > 10, "the reads covered many segments: {}", seen.len());
        // Every message still reads its bytes from its own map.
        for m in &held {
            assert_eq!(m.data(), &entry(m.id.entry)[..]);
        }
        // Sequential reads across segment boundaries after evictions.
        let mut out = Vec::new();
        assert_eq!(r.read_batch(0, 1200, &mut out).unwrap(), 1200);
        assert!(out.iter().enumerate().all(|(i, m)| m.data() == &entry(i as u64)[..]));
    }

    #[test]
    fn a_large_cache_keeps_every_sealed_map_of_a_shard() {
        let dir = tempfile::tempdir().unwrap();
        let c = shard_with_segments(dir.path(), 1200);
        let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
        let (first, end) = r.bounds().unwrap();
        for e in (first..end).rev() {
            assert_eq!(r.read(e).unwrap().data(), &entry(e)[..]);
        }
        let segments = r.sealed.len();
        assert!(segments > 10 && segments <= SEALED_CACHE, "{segments}");
        let before: Vec<*const SegmentMap> = r.sealed.iter().map(|s| Arc::as_ptr(&s.map)).collect();
        for e in first..end {
            r.read(e).unwrap();
        }
        let after: Vec<*const SegmentMap> = r.sealed.iter().map(|s| Arc::as_ptr(&s.map)).collect();
        assert_eq!(before, after, "no segment was mapped twice");
    }

    #[test]
    fn batches_match_single_reads_across_segments_and_compressed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.storage.max_file_size = 8192;
        cfg.compression.min_compress_size = 64;
        let c = Client::open(dir.path(), cfg).unwrap();
        for i in 0..600u64 {
            c.append("events:v1:shard:0001", &[entry(i)]).unwrap();
        }
        c.sync().unwrap();
        let shard = ShardId::new(1).unwrap();
        let mut single = c.reader(shard).unwrap();
        let mut batched = c.reader(shard).unwrap();
        let mut from = 0;
        let mut compressed = 0;
        for size in [1usize, 7, 100, 33, 1000].iter().cycle() {
            let mut out = Vec::new();
            let n = batched.read_batch(from, *size, &mut out).unwrap();
            assert_eq!(n, out.len());
            for m in &out {
                let one = single.read(m.id.entry).unwrap();
                assert_eq!((m.id, m.timestamp, m.data()), (one.id, one.timestamp, one.data()));
                assert_eq!(m.data(), &entry(m.id.entry)[..]);
                compressed += usize::from(!m.is_zero_copy());
            }
            from += n as u64;
            if n < *size {
                break;
            }
        }
        assert_eq!(from, 600);
        assert!(compressed > 10, "{compressed}");
    }

    #[test]
    fn a_batch_stops_at_a_damaged_entry_and_never_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = Client::open(dir.path(), Config::default()).unwrap();
        for i in 0..300u64 {
            c.append("events:v1:shard:0001", &[format!("e{i}").into_bytes()]).unwrap();
        }
        c.sync().unwrap();
        let seg = dir.path().join("shard-0001").join(segment_file_name(0).as_str());
        let mut bytes = std::fs::read(&seg).unwrap();
        let mut off = 0usize;
        for _ in 0..150 {
            off += HEADER_LEN + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        }
        bytes[off + 4..off + 12].fill(0); // entry 150: timestamp 0
        std::fs::write(&seg, &bytes).unwrap();
        let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
        let mut out = Vec::new();
        assert!(matches!(r.read_batch(100, 100, &mut out), Err(Error::Corrupt { .. })));
        assert_eq!(out.len(), 50);
        assert_eq!(out.last().unwrap().data(), b"e149");
        out.clear();
        assert!(matches!(r.read_batch(150, 10, &mut out), Err(Error::Corrupt { .. })));
        assert!(out.is_empty(), "never skipped");
        assert_eq!(r.read(151).unwrap().data(), b"e151", "later entries still read");
    }

    #[test]
    fn random_sealed_reads_use_marks_within_checkpoint_intervals() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.storage.max_file_size = 8 * 1024;
        cfg.indexing.boundary_interval = 100;
        cfg.compression.min_compress_size = 1 << 20;
        let c = Client::open(dir.path(), cfg).unwrap();
        for i in 0..4000u64 {
            c.append("events:v1:shard:0001", &[format!("e{i}").into_bytes()]).unwrap();
        }
        c.sync().unwrap();
        let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
        let mut k = 11u64;
        for _ in 0..3000 {
            k = (k * 1_103_515_245 + 12_345) % 4000;
            assert_eq!(r.read(k).unwrap().data(), format!("e{k}").as_bytes(), "entry {k}");
        }
        assert!(r.sealed.len() > 3);
        let marks: usize = r.sealed.iter().map(|s| s.sub.iter().filter(|&&m| m != 0).count()).sum();
        assert!(marks > 50, "{marks}");
        // Every mark is the offset of the entry it stands for.
        let head = r.head().unwrap().unwrap();
        for e in (0..head.base).step_by(7) {
            assert_eq!(r.read(e).unwrap().data(), format!("e{e}").as_bytes());
        }
    }

    #[test]
    fn hops_stop_at_a_bad_length_with_an_error() {
        // Three entries of 4 bytes, the second with a length past the end.
        let mut bytes = Vec::new();
        for (len, ts) in [(4u32, 1u64), (400, 2), (4, 3)] {
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&ts.to_le_bytes());
            bytes.extend_from_slice(b"abcd");
        }
        let shard = ShardId::MIN;
        let limit = bytes.len() as u64;
        assert_eq!(hop(shard, 100, 0, &bytes, 0, 1, limit).unwrap(), 16);
        assert!(matches!(hop(shard, 100, 0, &bytes, 0, 2, limit), Err(Error::Corrupt { .. })));
        assert!(matches!(hop(shard, 1000, 0, &bytes, 0, 2, limit), Err(Error::Corrupt { .. })));
        assert!(matches!(hop(shard, 100, 0, &bytes, 0, 1, 10), Err(Error::Corrupt { .. })), "limit");
    }
}
