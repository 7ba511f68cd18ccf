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

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use comet_core::platform::consume::BatchRead;
use comet_core::platform::read::{Found, MappedReader, Mapper};
use comet_core::platform::wire::{is_frame, raw_frame_len};
use comet_core::{DurableHead, IoOp, ShardId};
use comet_linux::{DirStorage, Error, FsFile, Result, SegmentMap, SharedWords};

use crate::compress::{Unzstd, UnzstdError};
use crate::shard::{check_native, map_state_read};

pub use comet_core::MessageId;

/// One entry read back: id, timestamp and payload (the core's
/// [`comet_core::Message`] over this crate's segment maps). The payload of
/// an uncompressed entry is borrowed from the mapping, which the message
/// keeps alive; a compressed one is decompressed into owned bytes.
pub type Message = comet_core::Message<SegmentMap>;

/// Entries of one shard read by [`Reader::read_lent`] (or
/// [`Consumer::read_shard_lent`](crate::Consumer::read_shard_lent)), their
/// payloads lent from the segment mappings (the core's
/// [`comet_core::LentBatch`]). Ack it with
/// [`Consumer::ack_up_to`](crate::Consumer::ack_up_to) of its `last_id`.
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
pub type LentBatch = comet_core::LentBatch<SegmentMap>;
pub use comet_core::LentEntry;

/// Sealed segment maps kept open per reader: on 64-bit enough that a
/// shard's sealed segments are rarely unmapped (address space is cheap; an
/// idle reader maps nothing), few on 32-bit.
const SEALED_CACHE: usize = if cfg!(target_pointer_width = "64") { 256 } else { 8 };

/// Memory maps of segment files, shared through `Arc`: the core's
/// [`Mapper`] for this crate's reader.
#[derive(Debug, Clone, Copy)]
struct Mmap;

impl Mapper<FsFile> for Mmap {
    type Map = Arc<SegmentMap>;
    type Error = std::io::Error;

    fn map(&self, file: &FsFile, len: u64) -> std::io::Result<Arc<SegmentMap>> {
        SegmentMap::map(file, len).map(Arc::new)
    }

    fn empty(&self) -> Arc<SegmentMap> {
        Arc::new(SegmentMap::empty())
    }

    fn bytes<'m>(&self, map: &'m Arc<SegmentMap>) -> &'m [u8] {
        map.bytes()
    }
}

/// The shard's directory and `comet.state`, opened once the shard exists.
struct Files {
    shard: ShardId,
    dir: PathBuf,
    storage: Option<DirStorage>,
    state: Option<Arc<SharedWords>>,
}

impl Files {
    /// Opens the state map and the directory if the shard exists (`false`:
    /// not yet). A Go-written shard is [`Error::ForeignFormat`].
    #[inline]
    fn ready(&mut self) -> Result<bool> {
        if self.storage.is_some() && self.state.is_some() {
            return Ok(true);
        }
        self.open()
    }

    /// [`ready`](Files::ready)'s first time: maps the state, opens the
    /// directory.
    #[cold]
    fn open(&mut self) -> Result<bool> {
        if self.state.is_none() {
            check_native(&self.dir, self.shard)?;
            self.state = map_state_read(&self.dir, self.shard)?.map(Arc::new);
        }
        if self.state.is_some() && self.storage.is_none() {
            let d = DirStorage::open_path(&self.dir).map_err(|e| Error::io(IoOp::Open, &self.dir, e))?;
            self.storage = Some(d);
        }
        Ok(self.storage.is_some() && self.state.is_some())
    }

    /// The directory and the state words, after [`ready`](Files::ready).
    #[inline]
    fn parts(&self) -> Option<(&DirStorage, &[AtomicU64])> {
        Some((self.storage.as_ref()?, self.state.as_ref()?.words()))
    }

    /// The error of the core's reader for this shard.
    fn err(&self) -> impl Fn(comet_core::Error<std::io::Error>) -> Error + '_ {
        |e| Error::from_core(self.shard, &self.dir, e)
    }

    /// The message for entry `e` of `map`.
    #[inline]
    fn message(&self, unzstd: &mut Unzstd, max_entry: u32, map: &Arc<SegmentMap>, e: Found) -> Result<Message> {
        let Found { entry, timestamp, start, len } = e;
        let (shard, id) = (self.shard, MessageId { shard: self.shard, entry });
        let bytes = map.bytes().get(start..start.wrapping_add(len)).unwrap_or_default();
        if !is_frame(bytes) {
            return Ok(Message::mapped(id, timestamp, map.clone(), start..start.wrapping_add(len)));
        }
        let data = unzstd.decompress(&self.dir, bytes, max_entry as usize).map_err(|e| match e {
            UnzstdError::Frame(source) => Error::Decompress { shard, entry, source },
            UnzstdError::MissingDict(id) => Error::MissingDictionary { shard, entry, id },
            UnzstdError::Dict(e) => Error::from_core(shard, &self.dir, e),
            UnzstdError::DirIo(e) => Error::io(IoOp::Open, &self.dir, e),
        })?;
        Ok(Message::owned(id, timestamp, data))
    }
}

/// Reads one shard. Cheap to create; keep one per consuming thread.
///
/// The reading itself — what is durable, which chunk holds an entry, each
/// chunk checked once per mapping, lost ranges, seeks by time, the sealed
/// maps kept — is the core's [`MappedReader`]; this type maps the files
/// and makes messages of what it finds.
pub struct Reader {
    files: Files,
    engine: MappedReader<FsFile, Mmap>,
    max_entry: u32,
    /// The zstd context for compressed entries.
    unzstd: Unzstd,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (shard, dir) = (&self.files.shard, &self.files.dir);
        f.debug_struct("Reader").field("shard", shard).field("dir", dir).finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of the shard stored in `dir` (its `shard-NNNN` directory).
    /// Creates nothing; a shard that does not exist yet reads as empty.
    pub fn open(dir: impl Into<PathBuf>, shard: ShardId, max_entry_size: u32) -> Reader {
        Reader {
            files: Files { shard, dir: dir.into(), storage: None, state: None },
            engine: MappedReader::new(Mmap, SEALED_CACHE),
            max_entry: max_entry_size,
            unzstd: Unzstd::default(),
        }
    }

    pub(crate) fn with_state(mut self, state: Option<Arc<SharedWords>>) -> Reader {
        self.files.state = state;
        self
    }

    /// The shard this reader reads.
    pub fn shard(&self) -> ShardId {
        self.files.shard
    }

    /// Times a mapping was replaced because its file grew.
    pub fn remaps(&self) -> u64 {
        self.engine.remaps()
    }

    /// The durable head, or `None` if the shard has no valid state yet.
    ///
    /// Decoded (a CRC-32 over the head line) only when the head's seqlock
    /// sequence moved since the last call; otherwise one atomic load.
    pub fn head(&mut self) -> Result<Option<DurableHead>> {
        self.files.ready()?;
        Ok(self.files.parts().and_then(|(_, words)| self.engine.head(words)))
    }

    /// `(first retained entry, one past the last durable entry)`.
    pub fn bounds(&mut self) -> Result<(u64, u64)> {
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else { return Ok((0, 0)) };
        self.engine.bounds(storage, words).map_err(self.files.err())
    }

    /// Reads durable entry `entry`.
    pub fn read(&mut self, entry: u64) -> Result<Message> {
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else {
            return Err(Error::Unavailable { shard: self.files.shard, entry, first: 0, end: 0 });
        };
        let (map, e) = self.engine.entry(storage, words, entry).map_err(self.files.err())?;
        self.files.message(&mut self.unzstd, self.max_entry, map, e)
    }

    /// Reads up to `max` durable entries starting at `from` into `out`.
    /// Returns how many were added. Stops at the durable end; stops at an
    /// unreadable entry with its error (entries before it stay in `out`, and
    /// the entry is never skipped).
    pub fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Message>) -> Result<usize> {
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else { return Ok(0) };
        let (files, unzstd, max_entry) = (&self.files, &mut self.unzstd, self.max_entry);
        self.engine.read_entries(storage, words, from, max, files.err(), |_, map, pos, e| {
            out.push(files.message(unzstd, max_entry, map, Found::of(pos, &e))?);
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
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else { return Ok(0) };
        let (files, unzstd, max_entry) = (&self.files, &mut self.unzstd, self.max_entry);
        self.engine.read_entries(storage, words, from, max, files.err(), |_, map, pos, e| {
            let f = Found::of(pos, &e);
            if is_frame(e.stored) {
                // Decompressed as `read_batch` does it; the batch keeps
                // the decompressed vector (no second copy).
                let m = files.message(unzstd, max_entry, map, f)?;
                out.push_owned(m.id, m.timestamp, m.into_vec());
            } else {
                let id = MessageId { shard: files.shard, entry: e.entry };
                out.push_mapped(id, e.timestamp, map, f.start..f.start.wrapping_add(f.len));
            }
            Ok(())
        })
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
        Entries::new(self, range)
    }

    /// The first readable entry whose timestamp is at or after `ts_ns`
    /// (entry timestamps never decrease within a shard), or the durable end.
    /// Entries in a lost range count as stamped like the first entry after
    /// it, so a time inside such a range finds the first entry after it.
    pub fn seek_time(&mut self, ts_ns: u64) -> Result<u64> {
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else { return Ok(0) };
        self.engine.seek_time(storage, words, ts_ns).map_err(self.files.err())
    }

    /// The first entry at or after `entry` that is not in a lost range,
    /// clamped to the retained range `first..=end`.
    pub fn readable_from(&mut self, entry: u64) -> Result<u64> {
        self.files.ready()?;
        let Some((storage, words)) = self.files.parts() else { return Ok(0) };
        self.engine.readable_from(storage, words, entry).map_err(self.files.err())
    }
}

impl BatchRead for Reader {
    type Message = Message;
    type Error = Error;

    fn bounds(&mut self) -> Result<(u64, u64)> {
        Reader::bounds(self)
    }

    fn read_batch(&mut self, from: u64, max: usize, out: &mut Vec<Message>) -> Result<usize> {
        Reader::read_batch(self, from, max, out)
    }
}

/// The entries of a range of one shard, in order: [`Reader::iter`] (the
/// core's [`comet_core::Entries`]).
///
/// Yields `Err` at the first unreadable entry, after the entries before
/// it, and then ends.
pub type Entries<'a> = comet_core::Entries<'a, Reader>;

/// The maximum stored size for a maximum raw size (for tools).
pub fn max_stored(max_entry_size: u32) -> u64 {
    raw_frame_len(max_entry_size as usize) as u64
}

#[cfg(test)]
mod tests;
