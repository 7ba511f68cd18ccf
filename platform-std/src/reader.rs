//! Lock-free, zero-copy reads of one shard through memory maps, over the
//! core's read path (`comet_core::platform::read`): every entry a [`Reader`] hands
//! out comes from a chunk whose CRC-32 and framing it checked, once per
//! reader and mapping.
//!
//! A reader never touches writer state: it learns what is durable from
//! the seqlocked head in `comet.state` (shared by every process), finds
//! sealed segments through `index.bin` (reloaded when it changes) and
//! their chunks through their chunk tables, and the active segment's
//! closed chunks through its journal, accepted only when it folds to the
//! head's `closed_hash` (or, without a usable journal, by rebuilding the
//! table from the bytes). The same code serves readers in the writer's
//! process and in any other.
//!
//! Payloads of uncompressed entries are borrowed from the mapping
//! ([`Message::data`] points into it); the [`Message`] holds an `Arc` of
//! the mapping, so a remap (when the file grows) never unmaps memory a
//! message still uses. Compressed entries are decompressed into owned
//! bytes. A map never covers more than its file holds (`fstat` first), and
//! bytes a truncated file no longer has are reported as damage, never read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use comet_core::platform::index::{Manifest, SegmentMeta};
use comet_core::platform::naming::{chunk_table_file_name, segment_file_name};
use comet_core::platform::read::{
    ActiveChunks, ChunkEntries, ChunkFault, ChunkPos, EntryView, Probe, Sealed, SealedChunks, chunk_in, locate_sealed,
    read_table_records,
};
use comet_core::platform::shm;
use comet_core::platform::storage::{OpenMode, Storage};
use comet_core::platform::wire::{HEADER_LEN, is_frame, raw_frame_len};
use comet_core::{Counter, DurableHead, IoOp, ShardId, WireError};
use comet_linux::{DirStorage, FsFile, SegmentMap, SharedWords};

use crate::compress::UnzstdError;
use crate::shard::{check_native, map_state_read};
use comet_linux::{Error, Result};

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
    /// Append timestamp, ns since the Unix epoch (see
    /// [`time`](Message::time)).
    pub timestamp: u64,
    payload: Payload,
}

impl Message {
    /// The append timestamp as a [`SystemTime`](std::time::SystemTime):
    /// the writer's wall clock when the entry was appended, or the time the
    /// caller gave [`Client::append_at`](crate::Client::append_at) (never
    /// earlier than the entry before it in the shard).
    pub fn time(&self) -> std::time::SystemTime {
        crate::system_time(self.timestamp)
    }

    /// The payload as appended (decompressed if it was stored compressed).
    pub fn data(&self) -> &[u8] {
        match &self.payload {
            Payload::Mapped { map, start, len } => map.bytes().get(*start..*start + *len).unwrap_or_default(),
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

/// Entries of one shard read by [`Reader::read_lent`] (or
/// [`Consumer::read_shard_lent`](crate::Consumer::read_shard_lent)), their
/// payloads lent from the segment mappings. The batch holds each mapping
/// once, so building it makes no reference-count update per entry; its
/// [`LentEntry`]s borrow from it. Reuse one batch across reads: its tables
/// are kept.
///
/// ```
/// # use comet::{Client, Config, LentBatch};
/// # let dir = tempfile::tempdir()?;
/// # let client = Client::open(dir.path(), Config::default())?;
/// # let shard = client.append("events:v1:shard:0001", &[b"a", b"b"])?.shard;
/// # client.sync()?;
/// let mut reader = client.reader(shard)?;
/// let mut batch = LentBatch::new();
/// reader.read_lent(0, 100, &mut batch)?;
/// for e in batch.iter() {
///     println!("{}: {:?}", e.id, e.data);
/// }
/// # assert_eq!(batch.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct LentBatch {
    maps: Vec<Arc<SegmentMap>>,
    /// Payloads of compressed entries, as they were decompressed.
    owned: Vec<Vec<u8>>,
    entries: Vec<Lent>,
}

#[derive(Debug, Clone)]
enum Place {
    /// Index into `maps` and the byte range in that mapping.
    Mapped(usize, std::ops::Range<usize>),
    /// Index into `owned`.
    Owned(usize),
}

#[derive(Debug, Clone)]
struct Lent {
    id: MessageId,
    timestamp: u64,
    place: Place,
}

/// One entry of a [`LentBatch`]: id, timestamp and the payload, borrowed
/// from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LentEntry<'a> {
    /// Shard and entry number.
    pub id: MessageId,
    /// Append timestamp, ns since the Unix epoch (as [`Message::timestamp`]).
    pub timestamp: u64,
    /// The payload as appended (decompressed if it was stored compressed).
    pub data: &'a [u8],
}

impl LentBatch {
    /// An empty batch.
    pub fn new() -> LentBatch {
        LentBatch::default()
    }

    /// Empties the batch (releasing its mappings and decompressed
    /// payloads), keeping its tables' capacity.
    pub fn clear(&mut self) {
        self.maps.clear();
        self.owned.clear();
        self.entries.clear();
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the batch holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, e: &Lent) -> LentEntry<'_> {
        let data = match &e.place {
            Place::Mapped(m, r) => self.maps.get(*m).and_then(|m| m.bytes().get(r.clone())).unwrap_or_default(),
            Place::Owned(i) => self.owned.get(*i).map_or(&[][..], Vec::as_slice),
        };
        LentEntry { id: e.id, timestamp: e.timestamp, data }
    }

    /// The `i`-th entry (in entry order).
    pub fn get(&self, i: usize) -> Option<LentEntry<'_>> {
        self.entries.get(i).map(|e| self.entry(e))
    }

    /// The entries, in entry order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = LentEntry<'_>> + '_ {
        self.entries.iter().map(|e| self.entry(e))
    }

    /// The id of the last (highest) entry: acking it with
    /// [`Consumer::ack_up_to`](crate::Consumer::ack_up_to) acks the batch.
    pub fn last_id(&self) -> Option<MessageId> {
        self.entries.last().map(|e| e.id)
    }
}

/// Sealed segment maps kept open per reader: on 64-bit enough that a
/// shard's sealed segments are rarely unmapped (address space is cheap; an
/// idle reader maps nothing), few on 32-bit.
const SEALED_CACHE: usize = if cfg!(target_pointer_width = "64") { 256 } else { 8 };

/// A sealed segment: its map, its checked chunk table and the chunks
/// checked in this map.
struct SealedMap {
    base: u64,
    map: Arc<SegmentMap>,
    chunks: SealedChunks,
    used: u64,
}

/// The active segment: its file, map, journal and the chunks checked in
/// the map.
struct ActiveView {
    file: FsFile,
    journal: Option<FsFile>,
    map: Arc<SegmentMap>,
    /// Bytes the map was asked to cover (the head's bytes at the time).
    mapped: u64,
    chunks: ActiveChunks,
}

/// A checked chunk a sequential read is working through.
#[derive(Clone)]
struct Cursor {
    pos: ChunkPos,
    map: Arc<SegmentMap>,
    /// Next entry and its byte offset within the chunk.
    entry: u64,
    at: usize,
}

/// Reads one shard. Cheap to create; keep one per consuming thread.
pub struct Reader {
    shard: ShardId,
    dir: PathBuf,
    storage: Option<DirStorage>,
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

/// The error of a chunk that cannot be served.
fn fault(shard: ShardId, dir: &Path, f: ChunkFault) -> Error {
    Error::from_core(shard, dir, f.into())
}

impl Reader {
    /// A reader of the shard stored in `dir` (its `shard-NNNN` directory).
    /// Creates nothing; a shard that does not exist yet reads as empty.
    pub fn open(dir: impl Into<PathBuf>, shard: ShardId, max_entry_size: u32) -> Reader {
        Reader {
            shard,
            dir: dir.into(),
            storage: None,
            state: None,
            manifest: None,
            manifest_gen: 0,
            max_entry: max_entry_size,
            // Chunks are judged by the format's limit: entries stored under a
            // larger max_entry_size than ours are valid data.
            max_stored: comet_core::platform::wire::STORED_LIMIT,
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

    /// The shard directory, opened once it exists.
    fn storage(&mut self) -> Result<&DirStorage> {
        if self.storage.is_none() {
            let d = DirStorage::open_path(&self.dir).map_err(|e| Error::io(IoOp::Open, &self.dir, e))?;
            self.storage = Some(d);
        }
        self.storage.as_ref().ok_or(Error::Closed)
    }

    fn state(&mut self) -> Result<Option<&Arc<SharedWords>>> {
        if self.state.is_none() {
            check_native(&self.dir, self.shard)?;
            self.state = map_state_read(&self.dir, self.shard)?.map(Arc::new);
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
        let decoded = shm::load_head(state.words());
        self.head_cache = decoded.map(|(h, seq)| (seq, h));
        Ok(decoded.map(|(h, _)| h))
    }

    /// Loads `index.bin` if it changed (or `force`).
    fn manifest(&mut self, force: bool) -> Result<()> {
        let gen_now = self.state()?.map_or(0, |s| shm::load_counter(s.words(), Counter::ManifestGeneration));
        if self.manifest.is_none() || force || gen_now != self.manifest_gen {
            let shard = self.shard;
            let dir = self.dir.clone();
            let storage = self.storage()?;
            match comet_core::platform::shard::load_manifest(storage) {
                Ok(Some(m)) => {
                    self.manifest = Some(Arc::new(m));
                    self.manifest_gen = gen_now;
                    self.sealed.clear();
                }
                Ok(None) => {}
                Err(e) => return Err(Error::from_core(shard, &dir, e)),
            }
        }
        Ok(())
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

    fn interval(&self, head: &DurableHead) -> u32 {
        match self.manifest.as_ref() {
            Some(m) => m.interval,
            None => head.interval.max(1),
        }
    }

    fn unavailable(&self, entry: u64, head: Option<&DurableHead>) -> Error {
        let end = head.map_or(0, DurableHead::end);
        let first = self.manifest.as_ref().map_or(0, |m| m.first_entry);
        Error::Unavailable { shard: self.shard, entry, first, end }
    }

    /// The map and checked table of sealed segment `seg`.
    fn sealed_map(&mut self, seg: &SegmentMeta, interval: u32) -> Result<usize> {
        self.sealed_tick += 1;
        let at = match self.sealed.binary_search_by_key(&seg.base, |s| s.base) {
            Ok(i) => {
                self.sealed[i].used = self.sealed_tick;
                return Ok(i);
            }
            Err(i) => i,
        };
        let (shard, max_stored) = (self.shard, self.max_stored);
        let storage = self.storage()?.clone();
        let name = segment_file_name(seg.base);
        let path = self.dir.join(name.as_str());
        let file = storage.open(&name, OpenMode::Read).map_err(|e| Error::io(IoOp::Open, &path, e))?;
        let map = Arc::new(SegmentMap::map(&file, seg.bytes).map_err(|e| Error::io(IoOp::Read, &path, e))?);
        let table_name = chunk_table_file_name(seg.base);
        let table_err = |e| Error::io(IoOp::Read, self.dir.join(table_name.as_str()), e);
        let mut recs = Vec::new();
        let from_file = match storage.open(&table_name, OpenMode::Read) {
            Ok(f) => {
                read_table_records(&f, seg.base, interval, 0, seg.chunks as usize, &mut recs).map_err(table_err)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(table_err(e)),
        };
        let chunks = SealedChunks::load(seg, interval, from_file.then_some(&recs[..]), map.bytes(), max_stored)
            .map_err(|corruption| Error::Corrupt { shard, corruption })?;
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
        self.sealed.insert(at, SealedMap { base: seg.base, map, chunks, used: self.sealed_tick });
        Ok(at)
    }

    /// Makes the active view cover `head`: opened or remapped, its closed
    /// chunks' table accepted from the journal (or rebuilt from the bytes).
    fn active_view(&mut self, head: &DurableHead, interval: u32) -> Result<()> {
        let shard = self.shard;
        if self.active.as_ref().is_none_or(|a| a.chunks.base() != head.base) {
            let storage = self.storage()?.clone();
            let name = segment_file_name(head.base);
            let path = self.dir.join(name.as_str());
            let file = storage.open(&name, OpenMode::Read).map_err(|e| Error::io(IoOp::Open, &path, e))?;
            let journal = storage.open(&chunk_table_file_name(head.base), OpenMode::Read).ok();
            self.cursor = None;
            self.active = Some(ActiveView {
                file,
                journal,
                map: Arc::new(SegmentMap::empty()),
                mapped: 0,
                chunks: ActiveChunks::new(head.base, interval),
            });
        }
        let max_stored = self.max_stored;
        let Some(view) = self.active.as_mut() else { return Err(Error::Closed) };
        if view.mapped < head.bytes {
            let path = self.dir.join(segment_file_name(head.base).as_str());
            view.map = Arc::new(SegmentMap::map(&view.file, head.bytes).map_err(|e| Error::io(IoOp::Read, &path, e))?);
            view.mapped = head.bytes;
            self.remaps += 1;
        }
        view.chunks
            .cover(head, view.journal.as_ref(), view.map.bytes(), max_stored)
            .map_err(|corruption| Error::Corrupt { shard, corruption })
    }

    /// The checked chunk holding `entry` and its segment's map.
    /// With it, where to start walking to `entry` in the chunk (see
    /// `CheckedChunks::start_for`).
    fn chunk(&mut self, entry: u64, head: Option<&DurableHead>) -> Result<(ChunkPos, Arc<SegmentMap>, (usize, u64))> {
        let Some(head) = head.filter(|h| entry < h.end()).copied() else {
            return Err(self.unavailable(entry, head));
        };
        let shard = self.shard;
        let max_stored = self.max_stored;
        if entry >= head.base {
            self.manifest(false)?;
            let interval = self.interval(&head);
            self.active_view(&head, interval)?;
            let Some(view) = self.active.as_mut() else { return Err(Error::Closed) };
            let k = comet_core::platform::num::index32((entry - head.base) / u64::from(interval));
            let pos =
                view.chunks.chunk(&head, k, view.map.bytes(), max_stored).map_err(|f| fault(shard, &self.dir, f))?;
            let start = view.chunks.start_for(k, &pos, entry);
            return Ok((pos, view.map.clone(), start));
        }
        self.manifest(false)?;
        let mut m = self.manifest.clone();
        if m.as_ref().and_then(|m| m.find_sealed(entry)).is_none() {
            self.manifest(true)?;
            m = self.manifest.clone();
        }
        let Some(m) = m else { return Err(self.unavailable(entry, Some(&head))) };
        let (seg, k) = match locate_sealed(&m, entry, head.base) {
            Sealed::At { seg, chunk } => (seg, chunk),
            Sealed::Lost(r) => return Err(Error::Lost { shard, entry, start: r.start, end: r.end }),
            Sealed::Unavailable => return Err(self.unavailable(entry, Some(&head))),
        };
        let i = match self.sealed_map(seg, m.interval) {
            Ok(i) => i,
            // Retention deleted it after our manifest was loaded.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.manifest(true)?;
                return Err(self.unavailable(entry, Some(&head)));
            }
            Err(e) => return Err(e),
        };
        let s = &mut self.sealed[i];
        let pos =
            s.chunks.chunk(seg, m.interval, k, s.map.bytes(), max_stored).map_err(|f| fault(shard, &self.dir, f))?;
        let start = s.chunks.start_for(k, &pos, entry);
        Ok((pos, s.map.clone(), start))
    }

    /// Reads durable entry `entry`.
    pub fn read(&mut self, entry: u64) -> Result<Message> {
        let head = self.head()?;
        let (pos, map, (at, from)) = self.chunk(entry, head.as_ref())?;
        let bytes = chunk_in(map.bytes(), &pos);
        let mut it = ChunkEntries::resume(bytes, at, from);
        it.skip_to(entry);
        let at = it.position();
        let msg = match it.next() {
            Some(e) => self.message(&map, &pos, e.entry, e.timestamp, e.at, e.stored.len())?,
            None => {
                return Err(Error::Damaged {
                    shard: self.shard,
                    damage: pos.damage(pos.start, WireError::InvalidField { offset: 0 }),
                });
            }
        };
        let next = at + HEADER_LEN + stored_len(bytes, at);
        self.cursor = Some(Cursor { pos, map, entry: entry + 1, at: next });
        Ok(msg)
    }

    /// The message for the entry at byte `at` of a checked chunk.
    fn message(
        &mut self,
        map: &Arc<SegmentMap>,
        pos: &ChunkPos,
        entry: u64,
        timestamp: u64,
        at: usize,
        len: usize,
    ) -> Result<Message> {
        let start = usize::try_from(pos.start).unwrap_or(usize::MAX) + at + HEADER_LEN;
        let id = MessageId { shard: self.shard, entry };
        let stored = map.bytes().get(start..start + len).unwrap_or_default();
        let payload = if is_frame(stored) {
            let data = self.unzstd.decompress(&self.dir, stored, self.max_entry as usize).map_err(|e| match e {
                UnzstdError::Frame(source) => Error::Decompress { shard: self.shard, entry, source },
                UnzstdError::MissingDict(id) => Error::MissingDictionary { shard: self.shard, entry, id },
                UnzstdError::Dict(e) => Error::from_core(self.shard, &self.dir, e),
                UnzstdError::DirIo(e) => Error::io(IoOp::Open, &self.dir, e),
            })?;
            Payload::Owned(data)
        } else {
            Payload::Mapped { map: map.clone(), start, len }
        };
        Ok(Message { id, timestamp, payload })
    }

    /// Reads up to `max` durable entries starting at `from` into `out`.
    /// Returns how many were added. Stops at the durable end; stops at an
    /// unreadable entry with its error (entries before it stay in `out`, and
    /// the entry is never skipped).
    pub fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Message>) -> Result<usize> {
        self.read_into(from, max, |r, map, pos, e| {
            out.push(r.message(map, pos, e.entry, e.timestamp, e.at, e.stored.len())?);
            Ok(())
        })
    }

    /// [`read_batch`](Reader::read_batch) into a [`LentBatch`] (cleared
    /// first): the payloads are lent from the mappings, which the batch
    /// holds once each, instead of one reference count per message (two
    /// locked read-modify-writes fewer per entry). Returns how many entries
    /// the batch holds; same stops and errors as `read_batch`.
    pub fn read_lent(&mut self, from: u64, max: usize, out: &mut LentBatch) -> Result<usize> {
        out.clear();
        self.read_into(from, max, |r, map, pos, e| {
            let start = usize::try_from(pos.start).unwrap_or(usize::MAX) + e.at + HEADER_LEN;
            let id = MessageId { shard: r.shard, entry: e.entry };
            let place = if is_frame(e.stored) {
                // Decompressed as `read_batch` does it; the batch keeps
                // the decompressed vector (no second copy).
                let m = r.message(map, pos, e.entry, e.timestamp, e.at, e.stored.len())?;
                out.owned.push(m.into_vec());
                Place::Owned(out.owned.len() - 1)
            } else {
                if !out.maps.last().is_some_and(|m| Arc::ptr_eq(m, map)) {
                    out.maps.push(map.clone());
                }
                Place::Mapped(out.maps.len() - 1, start..start + e.stored.len())
            };
            out.entries.push(Lent { id, timestamp: e.timestamp, place });
            Ok(())
        })
    }

    /// The loop of [`read_batch`](Reader::read_batch): hands every entry
    /// of a checked chunk to `take`, up to `max` entries from `from`.
    fn read_into(
        &mut self,
        from: u64,
        max: usize,
        mut take: impl FnMut(&mut Self, &Arc<SegmentMap>, &ChunkPos, EntryView<'_>) -> Result<()>,
    ) -> Result<usize> {
        let head = self.head()?;
        let end = head.map_or(0, |h| h.end());
        let mut n = 0;
        let mut entry = from;
        while n < max && entry < end {
            let cursor = self.cursor.take().filter(|c| c.entry == entry && entry < c.pos.entry_range().end);
            let (pos, map, mut at) = match cursor {
                Some(c) => (c.pos, c.map, c.at),
                None => {
                    let (pos, map, (at, from)) = self.chunk(entry, head.as_ref())?;
                    let mut it = ChunkEntries::resume(chunk_in(map.bytes(), &pos), at, from);
                    it.skip_to(entry);
                    let at = it.position();
                    (pos, map, at)
                }
            };
            let stop = pos.entry_range().end.min(end).min(entry.saturating_add((max - n) as u64));
            let mut result = Ok(());
            {
                let bytes = chunk_in(map.bytes(), &pos);
                let mut it = ChunkEntries::resume(bytes, at, entry);
                while entry < stop {
                    let Some(e) = it.next() else { break };
                    if let Err(err) = take(self, &map, &pos, e) {
                        result = Err(err);
                        break;
                    }
                    entry += 1;
                    n += 1;
                    at = it.position();
                }
            }
            self.cursor = Some(Cursor { pos, map, entry, at });
            result?;
        }
        Ok(n)
    }

    /// Iterates over the durable entries whose numbers lie in `range`,
    /// reading them in batches through [`read_batch`](Reader::read_batch).
    ///
    /// An unbounded start is the first retained entry; an unbounded end,
    /// or one past the durable end, is the durable end as it is when the
    /// iteration begins (its first [`next`](Iterator::next)). An
    /// unreadable entry (damaged, lost, not retained) yields its error,
    /// after the entries before it, and ends the iteration: an entry is
    /// never skipped.
    ///
    /// ```
    /// # use comet::{Client, Config, ShardId};
    /// # let dir = tempfile::tempdir()?;
    /// # let client = Client::open(dir.path(), Config::default())?;
    /// # let shard = client.append("events:v1:shard:0001", &[b"a", b"b", b"c"])?.shard;
    /// # client.sync()?;
    /// let mut reader = client.reader(shard)?;
    /// for message in reader.iter(1..) {
    ///     let message = message?;
    ///     println!("{}: {:?}", message.id, message.data());
    /// }
    /// let all: Vec<_> = reader.iter(..).collect::<Result<_, _>>()?;
    /// assert_eq!(all.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self, range: impl std::ops::RangeBounds<u64>) -> Entries<'_> {
        Entries {
            reader: self,
            range: (range.start_bound().cloned(), range.end_bound().cloned()),
            span: None,
            batch: Vec::new().into_iter(),
            error: None,
            done: false,
        }
    }

    /// The first readable entry whose timestamp is at or after `ts_ns`
    /// (entry timestamps never decrease within a shard), or the durable end.
    /// Entries in a lost range count as stamped like the first entry after
    /// it, so a time inside such a range finds the first entry after it.
    pub fn seek_time(&mut self, ts_ns: u64) -> Result<u64> {
        let (first, end) = self.bounds()?;
        comet_core::platform::read::seek_time(first, end, ts_ns, |e| {
            let head = self.head()?;
            if let Some(r) = self.lost(e, head.as_ref()) {
                return Ok(Probe::LostUntil(r.end));
            }
            let (pos, map, (at, from)) = self.chunk(e, head.as_ref())?;
            let mut it = ChunkEntries::resume(chunk_in(map.bytes(), &pos), at, from);
            it.skip_to(e);
            Ok(Probe::Stamped(it.next().map_or(u64::MAX, |v| v.timestamp)))
        })
    }

    /// The first entry at or after `entry` that is not in a lost range,
    /// clamped to the retained range `first..=end`.
    pub fn readable_from(&mut self, entry: u64) -> Result<u64> {
        let (first, end) = self.bounds()?;
        let head = self.head()?;
        Ok(comet_core::platform::read::readable_from(first, end, entry, |e| self.lost(e, head.as_ref())))
    }

    /// The lost range `entry` lies in, per the loaded manifest.
    fn lost(&self, entry: u64, head: Option<&DurableHead>) -> Option<std::ops::Range<u64>> {
        let head = head?;
        self.manifest.as_ref()?.lost_range(entry, head.base)
    }
}

/// Entries a [`Reader::iter`] reads at a time.
const ITER_BATCH: usize = 256;

/// The entries of a range of one shard, in order: [`Reader::iter`].
///
/// Yields `Err` at the first unreadable entry, after the entries before
/// it, and then ends.
pub struct Entries<'a> {
    reader: &'a mut Reader,
    range: (std::ops::Bound<u64>, std::ops::Bound<u64>),
    /// Next entry and the end, resolved on the first `next`.
    span: Option<(u64, u64)>,
    batch: std::vec::IntoIter<Message>,
    /// The error the last batch stopped at, yielded after its messages.
    error: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").field("shard", &self.reader.shard).field("span", &self.span).finish_non_exhaustive()
    }
}

impl Entries<'_> {
    /// `(first entry, end)` of the range, against the retained and
    /// durable bounds now.
    fn resolve(&mut self) -> Result<(u64, u64)> {
        use std::ops::Bound;
        let (first, end) = self.reader.bounds()?;
        let from = match self.range.0 {
            Bound::Included(n) => n,
            Bound::Excluded(n) => n.saturating_add(1),
            Bound::Unbounded => first,
        };
        let to = match self.range.1 {
            Bound::Included(n) => n.saturating_add(1),
            Bound::Excluded(n) => n,
            Bound::Unbounded => end,
        };
        Ok((from, to.min(end)))
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Result<Message>> {
        loop {
            if let Some(m) = self.batch.next() {
                return Some(Ok(m));
            }
            if let Some(e) = self.error.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let (next, end) = match self.span {
                Some(span) => span,
                None => match self.resolve() {
                    Ok(span) => *self.span.insert(span),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            };
            if next >= end {
                self.done = true;
                return None;
            }
            let want = usize::try_from(end - next).unwrap_or(ITER_BATCH).min(ITER_BATCH);
            let mut out = Vec::with_capacity(want);
            let r = self.reader.read_batch(next, want, &mut out);
            self.span = Some((next + out.len() as u64, end));
            match r {
                Err(e) => self.error = Some(e),
                // Nothing more before the durable end.
                Ok(0) => self.done = true,
                Ok(_) => {}
            }
            self.batch = out.into_iter();
        }
    }
}

impl std::iter::FusedIterator for Entries<'_> {}

/// The stored length of the entry at byte `at` of checked chunk bytes.
fn stored_len(bytes: &[u8], at: usize) -> usize {
    bytes.get(at..).and_then(<[u8]>::first_chunk::<4>).map_or(0, |b| u32::from_le_bytes(*b) as usize)
}

/// The maximum stored size for a maximum raw size (for tools).
pub fn max_stored(max_entry_size: u32) -> u64 {
    raw_frame_len(max_entry_size as usize) as u64
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

    /// Entries 0..600 of shard 1 in 8 KiB segments, most of them
    /// compressed.
    fn compressed_segments(dir: &Path) -> (Client, ShardId) {
        let mut cfg = Config::default();
        cfg.storage.max_file_size = 8192;
        cfg.compression.min_compress_size = 64;
        let c = Client::open(dir, cfg).unwrap();
        for i in 0..600u64 {
            c.append("events:v1:shard:0001", &[entry(i)]).unwrap();
        }
        c.sync().unwrap();
        (c, ShardId::new(1).unwrap())
    }

    /// Message batches match single reads, and lent batches match message
    /// batches, across segments and compressed entries.
    #[test]
    fn batches_and_lent_batches_match_single_reads_across_segments_and_compressed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (c, shard) = compressed_segments(dir.path());
        let mut single = c.reader(shard).unwrap();
        let mut batched = c.reader(shard).unwrap();
        let mut lent = c.reader(shard).unwrap();
        let mut batch = LentBatch::new();
        let (mut from, mut compressed, mut maps) = (0, 0, 0);
        for size in [1usize, 7, 100, 33, 1000].iter().cycle() {
            let mut out = Vec::new();
            let n = batched.read_batch(from, *size, &mut out).unwrap();
            assert_eq!(n, out.len());
            assert_eq!(lent.read_lent(from, *size, &mut batch).unwrap(), n);
            assert_eq!(batch.len(), n);
            for (i, m) in out.iter().enumerate() {
                let one = single.read(m.id.entry).unwrap();
                assert_eq!((m.id, m.timestamp, m.data()), (one.id, one.timestamp, one.data()));
                assert_eq!(m.data(), &entry(m.id.entry)[..]);
                let e = batch.get(i).unwrap();
                assert_eq!((e.id, e.timestamp, e.data), (m.id, m.timestamp, m.data()));
                compressed += usize::from(!m.is_zero_copy());
            }
            assert!(batch.get(n).is_none());
            assert_eq!(batch.last_id(), out.last().map(|m| m.id));
            maps = maps.max(batch.maps.len());
            from += n as u64;
            if n < *size {
                break;
            }
        }
        assert_eq!(from, 600);
        assert!(compressed > 10, "{compressed}");
        assert!(maps > 1, "a batch spanned segments: {maps}");
        assert!(batch.maps.len() <= 1 + batch.len() / 2, "a mapping is held once per run of entries, not per entry");
    }

    #[test]
    fn a_batch_stops_at_a_damaged_chunk_and_never_skips_it() {
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
        bytes[off + HEADER_LEN] ^= 0x01; // a payload bit of entry 150 (chunk 1: entries 100..200)
        std::fs::write(&seg, &bytes).unwrap();
        let mut r = c.reader(ShardId::new(1).unwrap()).unwrap();
        let mut out = Vec::new();
        let e = r.read_batch(50, 100, &mut out).unwrap_err();
        assert!(matches!(e, Error::Damaged { damage, .. } if (damage.first, damage.end) == (100, 200)), "{e}");
        assert_eq!(out.len(), 50, "entries before the damaged chunk");
        assert_eq!(out.last().unwrap().data(), b"e99");
        out.clear();
        assert!(matches!(r.read(150), Err(Error::Damaged { .. })), "never served");
        assert!(matches!(r.read(120), Err(Error::Damaged { .. })), "nothing of the chunk");
        assert_eq!(r.read(200).unwrap().data(), b"e200", "later chunks still read");
        assert_eq!(r.read(99).unwrap().data(), b"e99");
    }
}
