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
use crate::shard::{map_state, read_head_seq};

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
const STRIDE: u64 = 64;
/// Sealed segment maps kept open per reader.
const SEALED_CACHE: usize = 8;

struct ActiveView {
    base: u64,
    file: File,
    map: Arc<SegmentMap>,
    mapped: u64,
    /// Byte offset of every STRIDE-th entry indexed so far.
    marks: Vec<u64>,
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

/// Reads one shard. Cheap to create; keep one per consuming thread.
pub struct Reader {
    shard: ShardId,
    dir: PathBuf,
    state: Option<Arc<SharedWords>>,
    manifest: Option<Arc<Manifest>>,
    manifest_gen: u64,
    max_entry: u32,
    max_stored: u32,
    sealed: Vec<(u64, Arc<SegmentMap>)>,
    active: Option<ActiveView>,
    cursor: Option<Cursor>,
    remaps: u64,
    /// The last decoded durable head and the seqlock sequence it was
    /// published under: valid while the sequence has not moved.
    head_cache: Option<(u64, DurableHead)>,
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
            active: None,
            cursor: None,
            remaps: 0,
            head_cache: None,
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
            self.state = map_state(&self.dir, false)?.map(Arc::new);
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

    fn manifest(&mut self, force: bool) -> Result<Option<Arc<Manifest>>> {
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
        Ok(self.manifest.clone())
    }

    /// `(first retained entry, one past the last durable entry)`.
    pub fn bounds(&mut self) -> Result<(u64, u64)> {
        let Some(head) = self.head()? else {
            return Ok((0, 0));
        };
        let first = self.manifest(false)?.map_or(head.base, |m| m.first_entry);
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
        if let Some(i) = self.sealed.iter().position(|(b, _)| *b == base) {
            let hit = self.sealed.remove(i);
            let map = hit.1.clone();
            self.sealed.push(hit);
            return Ok(map);
        }
        let file = self.open_segment(base)?;
        let len = file.metadata().map_err(|e| Error::io(IoOp::Len, &self.dir, e))?.len();
        if len < bytes {
            return Err(corrupt(self.shard, base, len, WireError::Truncated { needed: bytes, available: len }));
        }
        let map = Arc::new(SegmentMap::map(&file, bytes).map_err(|e| Error::io(IoOp::Read, &self.dir, e))?);
        if self.sealed.len() >= SEALED_CACHE {
            self.sealed.remove(0);
        }
        self.sealed.push((base, map.clone()));
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
                marks: vec![0],
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

    /// Finds `entry`: `(segment base, map, byte offset, valid limit)`.
    fn locate(&mut self, entry: u64, head: Option<&DurableHead>) -> Result<(u64, Arc<SegmentMap>, u64, u64)> {
        let Some(head) = head.filter(|h| entry < h.end()).copied() else {
            return Err(self.unavailable(entry, head));
        };
        if let Some(Cursor { base, offset, sealed: Some((map, limit, end)), .. }) =
            self.cursor.as_ref().filter(|c| c.entry == entry)
            && entry < *end
        {
            return Ok((*base, map.clone(), *offset, *limit));
        }
        let (shard, max) = (self.shard, self.max_stored);
        if entry >= head.base {
            let cursor = self.cursor.as_ref().filter(|c| c.entry == entry && c.base == head.base).map(|c| c.offset);
            let limit = head.bytes;
            let view = self.active_view(&head)?;
            let (base, map) = (view.base, view.map.clone());
            if let Some(offset) = cursor {
                return Ok((base, map, offset, limit));
            }
            let idx = entry - base;
            // Extend this reader's own checkpoints far enough.
            while view.indexed.0 <= idx && view.indexed.1 < limit {
                let (_, len) = header(shard, max, base, map.bytes(), view.indexed.1, limit)?;
                view.indexed = (view.indexed.0 + 1, view.indexed.1 + HEADER_LEN as u64 + u64::from(len));
                if view.indexed.0 % STRIDE == 0 {
                    view.marks.push(view.indexed.1);
                }
            }
            let k = usize::try_from(idx / STRIDE).unwrap_or(usize::MAX);
            let Some(&mark) = view.marks.get(k) else {
                return Err(corrupt(
                    shard,
                    base,
                    view.indexed.1,
                    WireError::Truncated { needed: limit, available: view.indexed.1 },
                ));
            };
            let off = hop(shard, max, base, map.bytes(), mark, idx % STRIDE, limit)?;
            return Ok((base, map, off, limit));
        }
        let mut manifest = self.manifest(false)?;
        if manifest.as_ref().and_then(|m| m.find_sealed(entry)).is_none() {
            manifest = self.manifest(true)?;
        }
        let Some((seg, interval)) =
            manifest.as_ref().and_then(|m| m.find_sealed(entry).map(|s| (s.clone(), m.interval)))
        else {
            return Err(self.unavailable(entry, Some(&head)));
        };
        let map = match self.sealed_map(seg.base, seg.bytes) {
            Ok(m) => m,
            // Retention deleted it after our manifest was loaded.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.manifest(true)?;
                return Err(self.unavailable(entry, Some(&head)));
            }
            Err(e) => return Err(e),
        };
        let Some((_, from, off)) = seg.chunk_for(entry, interval) else {
            return Err(self.unavailable(entry, Some(&head)));
        };
        let off = hop(shard, max, seg.base, map.bytes(), off, entry - from, seg.bytes)?;
        Ok((seg.base, map, off, seg.bytes))
    }

    /// Reads durable entry `entry`.
    pub fn read(&mut self, entry: u64) -> Result<Message> {
        let head = self.head()?;
        self.read_at(entry, head.as_ref())
    }

    fn read_at(&mut self, entry: u64, head: Option<&DurableHead>) -> Result<Message> {
        let (base, map, off, limit) = self.locate(entry, head)?;
        let (timestamp, len) = header(self.shard, self.max_stored, base, map.bytes(), off, limit)?;
        let start = usize::try_from(off).unwrap_or(usize::MAX) + HEADER_LEN;
        let len = len as usize;
        let next = off + (HEADER_LEN + len) as u64;
        let in_active = head.is_some_and(|h| h.base == base);
        let sealed = if in_active {
            None
        } else {
            let seg_end = self.manifest.as_ref().and_then(|m| m.find_sealed(entry)).map_or(0, |s| s.end());
            Some((map.clone(), limit, seg_end))
        };
        self.cursor = Some(Cursor { entry: entry + 1, base, offset: next, sealed });
        let id = MessageId { shard: self.shard, entry };
        let stored = &map.bytes()[start..start + len];
        let payload = if is_frame(stored) {
            let data = crate::compress::decompress(stored, self.max_entry as usize)
                .map_err(|source| Error::Decompress { shard: self.shard, entry, source })?;
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
        }
        Ok(n)
    }

    /// The first entry whose timestamp is at or after `ts_ns` (entry
    /// timestamps never decrease within a shard), or the durable end.
    pub fn seek_time(&mut self, ts_ns: u64) -> Result<u64> {
        let (first, end) = self.bounds()?;
        // Binary search over entry numbers using reads (O(log n) reads, each
        // an O(1) checkpoint lookup plus a short hop).
        let (mut lo, mut hi) = (first, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let head = self.head()?;
            let (base, map, off, limit) = self.locate(mid, head.as_ref())?;
            let (ts, _) = header(self.shard, self.max_stored, base, map.bytes(), off, limit)?;
            if ts < ts_ns { lo = mid + 1 } else { hi = mid }
        }
        Ok(lo)
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

/// Hops `n` entries forward from `offset`.
fn hop(shard: ShardId, max_stored: u32, base: u64, bytes: &[u8], mut offset: u64, n: u64, limit: u64) -> Result<u64> {
    for _ in 0..n {
        let (_, len) = header(shard, max_stored, base, bytes, offset, limit)?;
        offset += (HEADER_LEN as u64) + u64::from(len);
    }
    Ok(offset)
}

/// The maximum stored size for a maximum raw size (for tools).
pub fn max_stored(max_entry_size: u32) -> u64 {
    raw_frame_len(max_entry_size as usize) as u64
}

/// The shard directory of `shard` under `root`.
pub(crate) fn shard_dir(root: &Path, shard: ShardId) -> PathBuf {
    root.join(comet_core::wire::shard_dir_name(shard).as_str())
}
