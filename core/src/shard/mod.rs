//! The shard engine: one append-only log over a [`Storage`] directory.
//!
//! It owns entry numbering, the write buffer, flush, sync and the durable
//! head, rotation, manifest upkeep, recovery on open and retention
//! deletions. Platforms wrap it with locks, threads, mmap readers and the
//! multi-shard client; the simulator runs it on fault-injecting storage.
//!
//! # Invariants
//!
//! * Entry numbers are dense from the first retained entry and never reused:
//!   an append either numbers and stores all of its entries or none.
//! * A batch never spans segments; rotation happens before a batch that
//!   would push the active segment past `max_file_size`.
//! * The durable head (published through [`HeadStore`]) never covers bytes
//!   that were not synced first, and its checksums cover every synced byte
//!   of the active segment.
//! * The manifest on disk is replaced atomically (temp file, sync, rename,
//!   directory sync) and is advanced *before* files are unlinked.
//! * After a failed sync the engine refuses writes ([`Error::Poisoned`]):
//!   the OS may have dropped the data, so only a reopen (which recovers from
//!   what is on disk) may continue.

pub(crate) mod open;
mod read;
mod repair;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

pub use open::load_manifest;
pub(crate) use open::write_table;
pub use open::{Quarantine, QuarantineReason, RecoveryReport, TornTail, create_shard_files};
pub use read::{EntryRef, ReadBuf};
pub use repair::RepairReport;

use crate::config::EngineSettings;
use crate::error::{ConfigError, Error, IoOp};
use crate::index::table::{TABLE_HEADER, TABLE_RECORD, table_header};
use crate::index::{ChunkRec, MANIFEST_FILE, MANIFEST_TMP, Manifest, SegmentMeta, encode_parts};
use crate::naming::{chunk_table_file_name, segment_file_name};
use crate::segment::{ChunkState, offset32, seal};
use crate::state::{Counter, DurableHead, HeadStore};
use crate::storage::{Context, OpenMode, Storage, StorageError, StorageFile, write_all_at};
use crate::wire::{Compressor, EntryHeader, HEADER_LEN, StoredPayload, encode_payload, is_frame, raw_frame_len};

/// Largest segment the 32-bit chunk offsets allow.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

/// The engine's settings, derived from [`EngineSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Entries per checkpoint chunk (for new shards; an existing shard keeps
    /// the interval its manifest records).
    pub interval: u32,
    /// Largest payload accepted by `append`.
    pub max_entry: u32,
    /// Rotation threshold.
    pub max_file_size: u64,
    /// Write buffer size in bytes.
    pub buffer_size: usize,
    /// Compression threshold.
    pub min_compress: usize,
    /// Most chunks the active segment may hold before it rotates (bounds
    /// memory on embedded targets; `u32::MAX` for no limit).
    pub max_chunks: u32,
    /// Most sealed segments the manifest may hold (bounds memory on
    /// embedded targets: their records are reserved at open; `u32::MAX`
    /// for no limit). A rotation past it fails with [`Error::Capacity`]
    /// (`what: "sealed segments"`), and so does opening a shard that has
    /// more; retention deletions make room.
    pub max_sealed: u32,
}

impl EngineConfig {
    /// Validates `settings` and derives the engine's form, with no bound
    /// on chunks or sealed segments.
    pub fn from_settings(settings: &EngineSettings) -> Result<EngineConfig, ConfigError> {
        settings.validate()?;
        Ok(EngineConfig::bounded(settings, u32::MAX, u32::MAX))
    }

    /// The engine's form of `settings` with the given bounds on chunks
    /// and sealed segments (`u32::MAX`: none), without validating
    /// `settings` (see [`EngineConfig::from_settings`]).
    pub fn bounded(settings: &EngineSettings, max_chunks: u32, max_sealed: u32) -> EngineConfig {
        EngineConfig {
            interval: settings.boundary_interval,
            max_entry: settings.max_entry_size,
            max_file_size: settings.max_file_size,
            buffer_size: settings.write_buffer_size as usize,
            min_compress: settings.min_compress_size as usize,
            max_chunks,
            max_sealed,
        }
    }

    /// The largest *stored* length scanners, recovery and reads accept:
    /// the format's ([`STORED_LIMIT`](crate::wire::STORED_LIMIT)), not this
    /// configuration's. `max_entry` limits what this writer appends; an
    /// entry another writer stored under a larger limit is valid data, and
    /// judging it by ours would record its synced chunk as lost.
    pub fn max_stored(&self) -> u32 {
        crate::wire::STORED_LIMIT
    }

    /// An upper bound of the heap one open shard's engine keeps, for a
    /// configuration with bounded `max_chunks` and `max_sealed` (an
    /// embedded budget; meaningless with `u32::MAX`): the write buffer,
    /// the chunk-start offsets of the chunks it can hold (4 bytes each),
    /// the active segment's checkpoint table ([`TABLE_RECORD`] bytes per
    /// chunk) and the manifest's records (reserved at open).
    pub fn shard_heap_bytes(&self) -> usize {
        let interval = self.interval.max(1) as usize;
        let starts = (self.buffer_size / (HEADER_LEN * interval) + 2) * 4;
        let chunks = self.max_chunks as usize * TABLE_RECORD;
        let manifest = self.max_sealed as usize * core::mem::size_of::<SegmentMeta>();
        self.buffer_size + starts + chunks + manifest
    }

    /// An upper bound of what [`Shard::open`] allocates while it runs
    /// (released when it returns), for a bounded `max_sealed`: the
    /// directory listing (segment and table bases, up to `max_sealed + 2`
    /// of each), `index.bin` (its 40-byte header, 56 bytes per record and
    /// its CRC) and the 64 KiB recovery scan buffer.
    pub fn open_heap_bytes(&self) -> usize {
        let segments = self.max_sealed as usize;
        2 * 8 * (segments + 2) + 56 * segments + 44 + (64 << 10)
    }
}

/// Handed out by [`Shard::prepare_sync`]; pass it back to
/// [`Shard::complete_sync`] after syncing the file outside any lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct SyncTicket {
    head: DurableHead,
}

impl SyncTicket {
    /// The head the sync will publish.
    pub fn head(&self) -> &DurableHead {
        &self.head
    }
}

/// What a retention deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deleted {
    /// Segments removed from the manifest.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their entries.
    pub entries: u64,
    /// Files whose unlink failed (left as orphans for the next open), and
    /// failed dictionary retirements (retried at the next deletion).
    pub unlink_errors: u64,
    /// zstd dictionaries no retained entry may use any more, deleted
    /// (`crate::dict`'s rule).
    pub dicts: u64,
}

/// State restored when a multi-flush batch fails half way.
struct Mark {
    next: u64,
    written: u64,
    written_entries: u64,
    until_chunk: u32,
    chunks: crate::segment::ChunkMark,
    first_ts: u64,
    last_ts: u64,
}

/// One shard's log.
pub struct Shard<S: Storage, H, C> {
    storage: S,
    head_store: H,
    compressor: C,
    cfg: EngineConfig,
    manifest: Arc<Manifest>,
    /// The active segment.
    file: S::File,
    /// The active segment's chunk table journal (`log-<base>.chunks`).
    journal: S::File,
    /// Closed chunks whose records are in the journal.
    journaled: usize,
    base: u64,
    /// Bytes and entries handed to storage.
    written: u64,
    written_entries: u64,
    /// The file may hold junk beyond `written` after a failed write.
    dirty_tail: bool,
    chunks: ChunkState,
    /// Entries until the next chunk starts (0: the next entry starts one).
    until_chunk: u32,
    buf: Box<[u8]>,
    buf_len: usize,
    buf_entries: u64,
    /// Buffer offsets where a chunk starts.
    starts: Vec<u32>,
    scratch: Vec<u8>,
    next: u64,
    first_ts: u64,
    last_ts: u64,
    durable: DurableHead,
    poisoned: bool,
    /// A rotation failed after creating the next segment's file (and maybe
    /// after renaming the manifest that seals this one): nothing more may
    /// be written to the active segment until the rotation completes, or
    /// the file named after `next` would overlap entries written here.
    rotation_pending: bool,
    /// A rotation switched to a new segment but could not publish a head
    /// naming it: nothing may be appended until one is published (recovery
    /// would take a non-empty file past the head's segment for a stray).
    head_stale: bool,
    counters: [u64; Counter::ALL.len()],
    /// Gauges set since the last drain, one bit per counter (at most 64,
    /// checked below): a gauge set to 0 is news too (e.g. no entry is
    /// retained any more).
    gauges_set: u64,
}

const _: () = assert!(Counter::ALL.len() <= 64, "Shard::gauges_set has a bit per counter");

impl<S: Storage, H, C> core::fmt::Debug for Shard<S, H, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Shard")
            .field("base", &self.base)
            .field("next", &self.next)
            .field("written", &self.written)
            .field("durable", &self.durable)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

type Res<T, S> = Result<T, Error<<S as Storage>::Error>>;

impl<S, H, C> Shard<S, H, C>
where
    S: Storage,
    H: HeadStore<Error = S::Error>,
    C: Compressor,
{
    /// The next entry number `append` will assign (entries appended so far,
    /// durable or not, including retained-away ones).
    pub fn next_entry(&self) -> u64 {
        self.next
    }

    /// One past the last durable (synced, visible) entry.
    pub fn durable_end(&self) -> u64 {
        self.durable.end()
    }

    /// The published durable head.
    pub fn durable_head(&self) -> &DurableHead {
        &self.durable
    }

    /// The first retained entry.
    pub fn first_entry(&self) -> u64 {
        self.manifest.first_entry
    }

    /// The manifest (sealed segments), shared with readers.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// Base entry of the active segment.
    pub fn active_base(&self) -> u64 {
        self.base
    }

    /// Bytes of the active segment, including buffered ones.
    pub fn active_bytes(&self) -> u64 {
        self.written + self.buf_len as u64
    }

    /// Timestamp of the active segment's first entry (0 if it has none).
    pub fn active_first_ts(&self) -> u64 {
        self.first_ts
    }

    /// Entries of the active segment handed to storage (not buffered).
    pub fn active_written_entries(&self) -> u64 {
        self.written_entries
    }

    /// The active segment's chunk records: closed chunks, then the open one
    /// as written so far.
    pub fn active_chunks(&self) -> alloc::vec::Vec<ChunkRec> {
        self.chunks.table(offset32(self.written))
    }

    /// The settings in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Entries per chunk of this shard.
    pub fn interval(&self) -> u32 {
        self.manifest.interval
    }

    /// True after a failed sync: writes are refused until reopen.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The storage directory.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The compressor (a platform keeps per-shard compression state there,
    /// e.g. its zstd dictionary).
    pub fn compressor_mut(&mut self) -> &mut C {
        &mut self.compressor
    }

    /// The active segment file (e.g. to sync it outside a lock).
    pub fn active_file(&self) -> &S::File {
        &self.file
    }

    /// Calls `f` with every counter that changed since the last drain (the
    /// delta for counters, the value for gauges, also a gauge set to 0) and
    /// resets them.
    pub fn drain_counters(&mut self, mut f: impl FnMut(Counter, u64)) {
        let set = core::mem::take(&mut self.gauges_set);
        for c in Counter::ALL {
            let v = core::mem::take(&mut self.counters[c as usize]);
            if v != 0 || set & (1 << c as u32) != 0 {
                f(c, v);
            }
        }
    }

    /// A counter's value not yet drained (the delta for counters, the value
    /// for gauges).
    pub fn pending_counter(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    /// Adds `n` to counter `c` (sets it, for a gauge) until the next drain.
    pub(crate) fn bump(&mut self, c: Counter, n: u64) {
        let slot = &mut self.counters[c as usize];
        if c.is_gauge() {
            *slot = n;
            self.gauges_set |= 1 << c as u32;
        } else {
            *slot = slot.wrapping_add(n);
        }
    }

    /// Appends `entries` as one batch stamped with `now` (ns since the
    /// epoch; raised to keep timestamps non-decreasing and non-zero).
    /// Returns their entry numbers. The entries become durable and visible
    /// at the next sync.
    ///
    /// All or nothing: on error no entry of the batch is numbered or
    /// stored, and entries of earlier appends are unaffected.
    pub fn append<P: AsRef<[u8]>>(&mut self, now: u64, entries: &[P]) -> Res<Range<u64>, S> {
        let r = self.append_inner(now, entries);
        if r.is_err() {
            self.bump(Counter::AppendErrors, 1);
        }
        r
    }

    fn append_inner<P: AsRef<[u8]>>(&mut self, now: u64, entries: &[P]) -> Res<Range<u64>, S> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.head_stale {
            let head = self.current_head(false);
            self.publish(head)?;
        }
        let first = self.next;
        if entries.is_empty() {
            return Ok(first..first);
        }
        // Entry numbers never wrap (a segment named near u64::MAX).
        if first.checked_add(entries.len() as u64).is_none() {
            return Err(Error::Capacity {
                what: "entry numbers",
                needed: entries.len() as u64,
                available: u64::MAX - first,
            });
        }
        // One pass: sizes, and whether every entry is stored as is (below
        // the compression threshold and not starting with the zstd magic).
        let max_entry = self.cfg.max_entry as usize;
        let min_compress = self.cfg.min_compress;
        let mut raw = 0u64;
        let mut framed = 0u64;
        let mut plain = true;
        for e in entries {
            let p = e.as_ref();
            if p.len() > max_entry {
                return Err(Error::EntryTooLarge { len: p.len() as u64, max: self.cfg.max_entry });
            }
            raw += p.len() as u64;
            if is_frame(p) {
                framed += (raw_frame_len(p.len()) - p.len()) as u64;
                plain = false;
            } else if p.len() >= min_compress {
                plain = false;
            }
        }
        // What `entry_bound` sums to over the batch.
        let bound = raw + framed + HEADER_LEN as u64 * entries.len() as u64;
        if bound > MAX_SEGMENT_BYTES {
            return Err(Error::BatchTooLarge { bytes: bound, max: MAX_SEGMENT_BYTES });
        }
        // Chunks the batch can touch: the open one plus those it starts. A
        // batch of at most one interval (every single append) needs no
        // division for that.
        let n = entries.len() as u64;
        let interval = u64::from(self.interval()).max(1);
        let batch_chunks = if n <= interval { 2 } else { n.div_ceil(interval) + 1 };
        if batch_chunks > u64::from(self.cfg.max_chunks) {
            return Err(Error::Capacity {
                what: "checkpoint capacity (entries per batch)",
                needed: batch_chunks,
                available: u64::from(self.cfg.max_chunks),
            });
        }
        let chunks_after = self.chunks.len() as u64 + batch_chunks;
        let seg_bytes = self.active_bytes();
        if self.rotation_pending
            || seg_bytes > 0
                && (seg_bytes + bound > self.cfg.max_file_size
                    || seg_bytes + bound > MAX_SEGMENT_BYTES
                    || chunks_after > u64::from(self.cfg.max_chunks))
        {
            self.rotate()?;
        }
        let ts = now.max(self.last_ts).max(1);
        let room = (self.buf.len() - self.buf_len) as u64;
        if bound > room && bound <= self.buf.len() as u64 {
            self.flush_buffer()?;
        }
        let stored_before = self.stored_in_batch_start();
        if bound <= (self.buf.len() - self.buf_len) as u64 {
            if let ([one], true) = (entries, plain) {
                self.push_one(ts, one.as_ref())?;
            } else if plain {
                self.push_plain(ts, entries)?;
            } else {
                for e in entries {
                    self.push_buffered(ts, e.as_ref())?;
                }
            }
        } else {
            self.append_large(ts, entries, plain)?;
        }
        let stored = self.stored_in_batch_start() - stored_before;
        self.bump(Counter::Batches, 1);
        self.bump(Counter::EntriesAppended, entries.len() as u64);
        self.bump(Counter::RawBytes, raw);
        self.bump(Counter::StoredBytes, stored - HEADER_LEN as u64 * entries.len() as u64);
        self.bump(Counter::LastAppendNs, ts);
        Ok(first..self.next)
    }

    /// Bytes of the active segment including the buffer (used to measure a
    /// batch's stored size).
    fn stored_in_batch_start(&self) -> u64 {
        self.written + self.buf_len as u64
    }

    fn note_entry(&mut self, ts: u64) {
        if self.first_ts == 0 {
            self.first_ts = ts;
        }
        self.last_ts = ts;
        self.next += 1;
    }

    /// Copies (or compresses) one entry into the buffer, which has room for
    /// [`entry_bound`] bytes.
    fn push_buffered(&mut self, ts: u64, payload: &[u8]) -> Res<(), S> {
        let at = self.buf_len;
        let body = at + HEADER_LEN;
        let stored = match encode_payload(payload, self.cfg.min_compress, &mut self.compressor, &mut self.buf[body..]) {
            Ok(StoredPayload::Raw) => {
                self.buf[body..body + payload.len()].copy_from_slice(payload);
                payload.len()
            }
            Ok(StoredPayload::Frame(n)) => {
                self.bump(Counter::CompressedEntries, 1);
                n
            }
            Err(_) => {
                return Err(Error::Capacity {
                    what: "write buffer",
                    needed: entry_bound(payload),
                    available: (self.buf.len() - at) as u64,
                });
            }
        };
        // `stored <= max_stored < 4 GiB` by construction.
        let len = crate::num::len32(stored);
        self.buf[at..body].copy_from_slice(&EntryHeader { len, timestamp: ts }.to_bytes());
        self.note_buffered(at, body + stored, ts);
        Ok(())
    }

    /// [`push_plain`](Shard::push_plain) for a batch of one entry (every
    /// single append): the header and payload copied, a chunk start noted
    /// if the entry begins a chunk. The buffer and chunk bookkeeping end up
    /// exactly as after `push_plain`.
    #[inline]
    fn push_one(&mut self, ts: u64, p: &[u8]) -> Res<(), S> {
        let at = self.buf_len;
        let end = at + HEADER_LEN + p.len();
        let Some(dst) = self.buf.get_mut(at..end) else {
            // Not reached: the caller checked that the entry fits.
            return Err(Error::Capacity {
                what: "write buffer",
                needed: (end - at) as u64,
                available: (self.buf.len() - at) as u64,
            });
        };
        put_entry(dst, ts, p);
        self.note_buffered(at, end, ts);
        Ok(())
    }

    /// Notes an entry just stored in the buffer at `at..end`: a chunk start
    /// if it begins a chunk, the buffer's fill, the entry counts and
    /// timestamps.
    #[inline]
    fn note_buffered(&mut self, at: usize, end: usize, ts: u64) {
        if self.until_chunk == 0 {
            self.starts.push(crate::num::offset32(at));
            // A valid manifest's interval is at least 1, as in `push_plain`.
            self.until_chunk = self.manifest.interval.max(1);
        }
        self.until_chunk -= 1;
        self.buf_len = end;
        self.buf_entries += 1;
        self.note_entry(ts);
    }

    /// The fast path of [`push_buffered`](Shard::push_buffered) for a batch
    /// stored as is (every payload below `min_compress`, none starting with
    /// the zstd magic) that fits the free buffer: headers and payloads are
    /// copied in one pass, a chunk start is noted only where a chunk begins.
    /// The buffer and chunk bookkeeping end up exactly as after
    /// `push_buffered` per entry.
    fn push_plain<P: AsRef<[u8]>>(&mut self, ts: u64, entries: &[P]) -> Res<(), S> {
        // A valid manifest's interval is at least 1; never loop on 0.
        let interval = (self.manifest.interval as usize).max(1);
        let starts_before = self.starts.len();
        let buf = &mut self.buf[..];
        let mut at = self.buf_len;
        // Entries up to the next chunk start, then whole chunks.
        let mut until = self.until_chunk as usize;
        let mut rest = entries;
        loop {
            let (run, tail) = rest.split_at(until.min(rest.len()));
            for e in run {
                let p = e.as_ref();
                let end = at + HEADER_LEN + p.len();
                let Some(dst) = buf.get_mut(at..end) else {
                    // Not reached: the caller checked that the batch fits.
                    self.starts.truncate(starts_before);
                    return Err(Error::Capacity {
                        what: "write buffer",
                        needed: (end - self.buf_len) as u64,
                        available: (buf.len() - self.buf_len) as u64,
                    });
                };
                put_entry(dst, ts, p);
                at = end;
            }
            until -= run.len();
            rest = tail;
            if rest.is_empty() {
                break;
            }
            self.starts.push(crate::num::offset32(at));
            until = interval;
        }
        self.until_chunk = u32::try_from(until).unwrap_or(0);
        self.buf_len = at;
        let n = entries.len() as u64;
        self.buf_entries += n;
        if self.first_ts == 0 {
            self.first_ts = ts;
        }
        self.last_ts = ts;
        self.next += n;
        Ok(())
    }

    /// A batch larger than the free buffer: flush first, then stream it
    /// through the buffer and direct writes; on failure, cut the file back.
    fn append_large<P: AsRef<[u8]>>(&mut self, ts: u64, entries: &[P], plain: bool) -> Res<(), S> {
        self.flush_buffer()?;
        let mark = Mark {
            next: self.next,
            written: self.written,
            written_entries: self.written_entries,
            until_chunk: self.until_chunk,
            chunks: self.chunks.mark(),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
        };
        let r = if plain { self.stream_plain(ts, entries) } else { self.stream_entries(ts, entries) };
        if r.is_err() {
            self.next = mark.next;
            self.written = mark.written;
            self.written_entries = mark.written_entries;
            self.until_chunk = mark.until_chunk;
            self.chunks.restore(mark.chunks);
            self.journaled = self.journaled.min(self.chunks.closed().len());
            self.first_ts = mark.first_ts;
            self.last_ts = mark.last_ts;
            self.buf_len = 0;
            self.buf_entries = 0;
            self.starts.clear();
            if self.file.set_len(self.written).is_err() {
                self.dirty_tail = true;
            }
        }
        r
    }

    fn stream_entries<P: AsRef<[u8]>>(&mut self, ts: u64, entries: &[P]) -> Res<(), S> {
        for e in entries {
            let p = e.as_ref();
            let need = entry_bound(p);
            if need > (self.buf.len() - self.buf_len) as u64 {
                self.flush_buffer()?;
            }
            if need <= self.buf.len() as u64 {
                self.push_buffered(ts, p)?;
            } else {
                self.write_direct(ts, p)?;
            }
        }
        self.flush_buffer()
    }

    /// [`stream_entries`](Shard::stream_entries) for a batch stored as is:
    /// the same buffer fills, flushes and direct writes, with each run of
    /// entries that fits the free buffer copied by
    /// [`push_plain`](Shard::push_plain).
    fn stream_plain<P: AsRef<[u8]>>(&mut self, ts: u64, entries: &[P]) -> Res<(), S> {
        let mut rest = entries;
        while let Some(first) = rest.first() {
            let room = self.buf.len() - self.buf_len;
            let mut need = 0usize;
            let fits = rest
                .iter()
                .take_while(|e| {
                    need += HEADER_LEN + e.as_ref().len();
                    need <= room
                })
                .count();
            if fits > 0 {
                let (run, tail) = rest.split_at(fits);
                self.push_plain(ts, run)?;
                rest = tail;
            } else if self.buf_len > 0 {
                self.flush_buffer()?;
            } else {
                self.write_direct(ts, first.as_ref())?;
                rest = rest.get(1..).unwrap_or_default();
            }
        }
        self.flush_buffer()
    }

    /// Cuts off what a failed write left beyond `written`, before anything
    /// is written there. Writing over such junk without cutting it would
    /// leave new entries followed by stale bytes that recovery after a
    /// process crash could parse as entries never appended at those numbers
    /// (nothing checksums bytes beyond the durable head).
    fn clear_dirty_tail(&mut self) -> Res<(), S> {
        if self.dirty_tail {
            self.file.set_len(self.written).ctx(IoOp::SetLen, &segment_file_name(self.base))?;
            self.dirty_tail = false;
        }
        Ok(())
    }

    /// Writes one entry larger than the buffer straight to the file (the
    /// buffer is empty).
    fn write_direct(&mut self, ts: u64, payload: &[u8]) -> Res<(), S> {
        self.clear_dirty_tail()?;
        let mut scratch = core::mem::take(&mut self.scratch);
        let need = if is_frame(payload) { raw_frame_len(payload.len()) } else { payload.len() };
        scratch.clear();
        scratch.resize(need, 0);
        let r = encode_payload(payload, self.cfg.min_compress, &mut self.compressor, &mut scratch);
        let body: &[u8] = match r {
            Ok(StoredPayload::Raw) => payload,
            Ok(StoredPayload::Frame(n)) => {
                self.bump(Counter::CompressedEntries, 1);
                &scratch[..n]
            }
            Err(_) => {
                self.scratch = scratch;
                return Err(Error::Capacity { what: "scratch buffer", needed: need as u64, available: 0 });
            }
        };
        let len = crate::num::len32(body.len());
        let header = EntryHeader { len, timestamp: ts }.to_bytes();
        let res =
            write_all_at(&self.file, self.written, &[&header, body]).ctx(IoOp::Write, &segment_file_name(self.base));
        if res.is_ok() {
            if self.until_chunk == 0 {
                self.chunks.start_chunk(crate::num::offset32(self.written));
                self.until_chunk = self.manifest.interval;
            }
            self.until_chunk -= 1;
            self.chunks.update(&header);
            self.chunks.update(body);
            self.written += (HEADER_LEN + body.len()) as u64;
            self.written_entries += 1;
            self.note_entry(ts);
        }
        self.scratch = scratch;
        res
    }

    /// Hands the buffer to storage. On failure the buffer is kept (nothing
    /// is lost) and the file is cut back to what was written before.
    pub fn flush_buffer(&mut self) -> Res<(), S> {
        if self.buf_len == 0 {
            return Ok(());
        }
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.clear_dirty_tail()?;
        let data = &self.buf[..self.buf_len];
        if let Err(e) = write_all_at(&self.file, self.written, &[data]) {
            if self.file.set_len(self.written).is_err() {
                self.dirty_tail = true;
            }
            return Err(Error::storage(IoOp::Write, &segment_file_name(self.base), e));
        }
        let mut prev = 0usize;
        for &s in &self.starts {
            let s = s as usize;
            self.chunks.update(&data[prev..s]);
            self.chunks.start_chunk(crate::num::offset32(self.written + s as u64));
            prev = s;
        }
        self.chunks.update(&data[prev..]);
        self.written += self.buf_len as u64;
        self.written_entries += self.buf_entries;
        self.buf_len = 0;
        self.buf_entries = 0;
        self.starts.clear();
        self.bump(Counter::Flushes, 1);
        Ok(())
    }

    /// Bytes handed to storage but not yet synced (active segment).
    pub fn unsynced_written(&self) -> u64 {
        if self.base == self.durable.base { self.written.saturating_sub(self.durable.bytes) } else { self.written }
    }

    /// True if entries are buffered or written but not yet durable.
    pub fn has_unsynced(&self) -> bool {
        self.buf_len > 0 || self.written_entries > self.durable.entries || self.base != self.durable.base
    }

    /// First half of a sync: flushes the buffer and fixes the file length.
    /// Sync [`active_file`](Shard::active_file) next — possibly outside a
    /// lock, while appends continue — then call
    /// [`complete_sync`](Shard::complete_sync).
    pub fn prepare_sync(&mut self) -> Res<SyncTicket, S> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.flush_buffer()?;
        self.clear_dirty_tail()?;
        let head = self.current_head(false);
        self.write_journal();
        Ok(SyncTicket { head })
    }

    /// Appends the records of chunks closed since the last call to the
    /// journal, before a head covering them is published. A failed write
    /// is counted and retried at the next sync, never fatal: the journal
    /// only lets readers and recovery skip work, and both fall back to the
    /// segment's bytes (checked against the head) without it.
    fn write_journal(&mut self) {
        let closed = self.chunks.closed();
        let from = self.journaled.min(closed.len());
        let mut at = from;
        let mut buf = [0u8; 64 * TABLE_RECORD];
        while at < closed.len() {
            let n = (closed.len() - at).min(64);
            for (i, r) in closed[at..at + n].iter().enumerate() {
                buf[i * TABLE_RECORD..(i + 1) * TABLE_RECORD].copy_from_slice(&r.to_bytes());
            }
            let off = (TABLE_HEADER + at * TABLE_RECORD) as u64;
            if write_all_at(&self.journal, off, &[&buf[..n * TABLE_RECORD]]).is_err() {
                self.bump(Counter::JournalErrors, 1);
                break;
            }
            at += n;
        }
        self.journaled = at;
    }

    /// Second half of a sync: publishes the head if the file sync
    /// succeeded, poisons the shard if it failed.
    pub fn complete_sync(&mut self, ticket: SyncTicket, synced: Result<(), S::Error>) -> Res<(), S> {
        if let Err(e) = synced {
            self.poisoned = true;
            self.bump(Counter::SyncErrors, 1);
            return Err(Error::storage(IoOp::Sync, &segment_file_name(ticket.head.base), e));
        }
        self.bump(Counter::Syncs, 1);
        // A rotation in between already made these entries durable. The
        // published head may still name an older segment (its publish
        // failed after a rotation): then any head of this segment is newer.
        let newer = ticket.head.base > self.durable.base || ticket.head.bytes > self.durable.bytes;
        if ticket.head.base == self.base && newer {
            self.publish(ticket.head)?;
        }
        Ok(())
    }

    /// Flushes, syncs and publishes the durable head: every entry appended
    /// before the call is durable and visible when it returns `Ok`.
    pub fn sync(&mut self) -> Res<(), S> {
        let ticket = self.prepare_sync()?;
        let r = self.file.sync();
        self.complete_sync(ticket, r)
    }

    fn current_head(&mut self, clean: bool) -> DurableHead {
        self.chunks.settle(self.written_entries, self.manifest.interval, offset32(self.written));
        let (open_crc, closed_hash) = self.chunks.head_crcs();
        DurableHead {
            base: self.base,
            entries: self.written_entries,
            bytes: self.written,
            open_crc,
            closed_hash,
            last_ts: if self.written_entries > 0 { self.last_ts } else { 0 },
            clean,
            interval: self.manifest.interval,
        }
    }

    fn publish(&mut self, head: DurableHead) -> Res<(), S> {
        self.head_store.store(&head).ctx(IoOp::Write, crate::state::STATE_FILE)?;
        self.durable = head;
        self.head_stale = false;
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next entry:
    /// sync; complete and fsync the sealed segment's chunk table; create
    /// the next segment and its journal; record the sealed segment in the
    /// manifest; publish a head naming the new segment.
    pub fn rotate(&mut self) -> Res<(), S> {
        if self.active_bytes() == 0 {
            return Ok(());
        }
        let sealed_count = self.manifest.sealed.len() as u64;
        if !self.rotation_pending && sealed_count >= u64::from(self.cfg.max_sealed) {
            return Err(Error::Capacity {
                what: "sealed segments",
                needed: sealed_count + 1,
                available: u64::from(self.cfg.max_sealed),
            });
        }
        self.sync()?;
        let (sealed, table) =
            seal(self.base, self.written_entries, self.written, (self.first_ts, self.last_ts), &self.chunks);
        self.rotation_pending = true;
        // The manifest will vouch for the table: it must be whole and durable.
        self.journaled = self.journaled.min(table.len());
        let tail: alloc::vec::Vec<u8> = table[self.journaled..].iter().flat_map(ChunkRec::to_bytes).collect();
        let tname = chunk_table_file_name(self.base);
        let off = (TABLE_HEADER + self.journaled * TABLE_RECORD) as u64;
        write_all_at(&self.journal, 0, &[&table_header(self.base, self.manifest.interval)]).ctx(IoOp::Write, &tname)?;
        write_all_at(&self.journal, off, &[&tail]).ctx(IoOp::Write, &tname)?;
        let full = (TABLE_HEADER + table.len() * TABLE_RECORD) as u64;
        self.journal.set_len(full).ctx(IoOp::SetLen, &tname)?;
        self.journal.sync().ctx(IoOp::Sync, &tname)?;
        self.journaled = table.len();
        let new_base = self.next;
        let name = segment_file_name(new_base);
        let file = match self.storage.open(&name, OpenMode::CreateNew) {
            Ok(f) => f,
            // Left by an earlier attempt that failed later on: reuse if empty.
            Err(e) if e.kind() == crate::storage::ErrorKind::AlreadyExists => {
                let f = self.storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
                if f.len().ctx(IoOp::Len, &name)? != 0 {
                    return Err(Error::storage(
                        IoOp::Open,
                        &name,
                        S::Error::from_kind(crate::storage::ErrorKind::AlreadyExists),
                    ));
                }
                f
            }
            Err(e) => return Err(Error::storage(IoOp::Open, &name, e)),
        };
        let journal = new_journal(&self.storage, new_base, self.manifest.interval)?;
        self.storage.sync_dir().ctx(IoOp::SyncDir, "")?;
        // In place (a copy only if a reader shares the manifest): with the
        // capacity reserved at open, a rotation does not allocate for it.
        let m = Arc::make_mut(&mut self.manifest);
        m.sealed.push(sealed);
        let r = self.commit_manifest(0);
        if r.is_err() {
            Arc::make_mut(&mut self.manifest).sealed.pop();
        }
        r?;
        self.file = file;
        self.journal = journal;
        self.journaled = 0;
        self.rotation_pending = false;
        self.base = new_base;
        self.written = 0;
        self.written_entries = 0;
        self.dirty_tail = false;
        // Keep the chunk table's allocation (preallocated on embedded).
        self.chunks.reset();
        self.until_chunk = 0;
        self.first_ts = 0;
        self.bump(Counter::Rotations, 1);
        self.bump(Counter::SegmentsCreated, 1);
        let head = self.current_head(false);
        self.head_stale = true;
        self.publish(head)
    }

    /// Replaces `index.bin` atomically with the current manifest without
    /// its `skip` oldest segments (which then start at the next one, or at
    /// the active segment), at the next generation. On success the
    /// in-memory manifest becomes exactly that; on failure it is left as
    /// it was.
    fn commit_manifest(&mut self, skip: usize) -> Res<(), S> {
        let m = &self.manifest;
        let first = if skip == 0 { m.first_entry } else { m.sealed.get(skip).map_or(self.base, |s| s.base) };
        let generation = m.generation + 1;
        let r = write_manifest_parts(&self.storage, m.interval, first, generation, &m.sealed[skip..]);
        if r.is_err() {
            self.bump(Counter::ManifestWriteErrors, 1);
            return r;
        }
        self.bump(Counter::ManifestWrites, 1);
        self.bump(Counter::ManifestGeneration, 1);
        let m = Arc::make_mut(&mut self.manifest);
        m.first_entry = first;
        m.generation = generation;
        Ok(())
    }

    /// Makes `m` the manifest, on disk (atomically) and in memory, at the
    /// next generation; on failure nothing changes.
    fn write_manifest(&mut self, m: Manifest) -> Res<(), S> {
        let old = core::mem::replace(&mut self.manifest, Arc::new(m));
        let r = self.commit_manifest(0);
        if r.is_err() {
            self.manifest = old;
        }
        r
    }

    /// Deletes the `count` oldest sealed segments: the manifest is advanced
    /// first, then the files are unlinked (a crash in between leaves orphans
    /// that the next open removes). Entry numbers do not change.
    pub fn delete_oldest(&mut self, count: usize) -> Res<Deleted, S> {
        let count = count.min(self.manifest.sealed.len());
        if count == 0 {
            return Ok(Deleted::default());
        }
        self.commit_manifest(count)?;
        let mut d = Deleted::default();
        let storage = &self.storage;
        for s in Arc::make_mut(&mut self.manifest).sealed.drain(..count) {
            d.segments += 1;
            d.bytes += s.bytes;
            d.entries += s.entries;
            for name in [segment_file_name(s.base), chunk_table_file_name(s.base)] {
                if let Err(e) = storage.remove(&name)
                    && e.kind() != crate::storage::ErrorKind::NotFound
                {
                    d.unlink_errors += 1;
                }
            }
        }
        // Dictionaries only the deleted entries may have used.
        match crate::dict::retire_dicts(storage, self.manifest.first_entry) {
            Ok(n) => d.dicts = n as u64,
            Err(_) => d.unlink_errors += 1,
        }
        self.bump(Counter::SegmentsDeleted, d.segments);
        self.bump(Counter::BytesReclaimed, d.bytes);
        self.bump(Counter::EntriesDeleted, d.entries);
        self.bump(Counter::RetentionErrors, d.unlink_errors);
        Ok(d)
    }

    /// Syncs everything, makes the active segment's journal durable and
    /// marks the head clean, so the next open needs no scan. The counters
    /// the close itself changes (its sync, manifest write, rotation) are
    /// discarded: use [`close_with`](Shard::close_with) to keep them.
    pub fn close(self) -> Res<(), S> {
        self.close_with(|_, _| {})
    }

    /// [`close`](Shard::close), handing every counter not yet drained,
    /// including what the close itself counted, to `counters` (as
    /// [`drain_counters`](Shard::drain_counters) does), also when the close
    /// fails, and before the state block is made durable.
    pub fn close_with(mut self, mut counters: impl FnMut(Counter, u64)) -> Res<(), S> {
        let r = self.close_inner();
        self.drain_counters(&mut counters);
        r?;
        self.head_store.sync().ctx(IoOp::Sync, crate::state::STATE_FILE)
    }

    fn close_inner(&mut self) -> Res<(), S> {
        if self.rotation_pending {
            self.rotate()?;
        }
        self.sync()?;
        if self.journaled < self.chunks.closed().len() {
            // A journal write failed and was not retried since.
            return Err(Error::storage(
                IoOp::Write,
                &chunk_table_file_name(self.base),
                S::Error::from_kind(crate::storage::ErrorKind::Other),
            ));
        }
        self.journal.sync().ctx(IoOp::Sync, &chunk_table_file_name(self.base))?;
        let head = self.current_head(true);
        self.publish(head)
    }
}

/// Writes an entry stored as is into `dst` (exactly `HEADER_LEN + p.len()`
/// bytes): the wire header, then the payload.
#[inline]
fn put_entry(dst: &mut [u8], ts: u64, p: &[u8]) {
    let (header, body) = dst.split_at_mut(HEADER_LEN);
    // `p.len() <= max_entry <= u32::MAX`.
    header.copy_from_slice(&EntryHeader { len: crate::num::len32(p.len()), timestamp: ts }.to_bytes());
    body.copy_from_slice(p);
}

/// Upper bound of an entry's stored size including its header.
fn entry_bound(payload: &[u8]) -> u64 {
    let body = if is_frame(payload) { raw_frame_len(payload.len()) } else { payload.len() };
    (HEADER_LEN + body) as u64
}

/// Writes `index.bin` atomically: temp file, sync, rename, directory sync.
pub fn write_manifest_file<S: Storage>(storage: &S, m: &Manifest) -> Result<(), Error<S::Error>> {
    write_manifest_parts(storage, m.interval, m.first_entry, m.generation, &m.sealed)
}

/// [`write_manifest_file`] for a manifest given by its fields, streamed
/// through a small fixed buffer: writing a manifest allocates nothing,
/// whatever its size.
fn write_manifest_parts<S: Storage>(
    storage: &S,
    interval: u32,
    first_entry: u64,
    generation: u64,
    sealed: &[SegmentMeta],
) -> Result<(), Error<S::Error>> {
    let tmp = storage.open(MANIFEST_TMP, OpenMode::Truncate).ctx(IoOp::Open, MANIFEST_TMP)?;
    let mut buf = [0u8; 2048];
    let (mut held, mut at) = (0usize, 0u64);
    let mut sink = |b: &[u8]| -> Result<(), S::Error> {
        if held + b.len() > buf.len() {
            write_all_at(&tmp, at, &[&buf[..held]])?;
            at += held as u64;
            held = 0;
        }
        if b.len() > buf.len() {
            write_all_at(&tmp, at, &[b])?;
            at += b.len() as u64;
        } else {
            buf[held..held + b.len()].copy_from_slice(b);
            held += b.len();
        }
        Ok(())
    };
    encode_parts(interval, first_entry, generation, sealed, &mut sink).ctx(IoOp::Write, MANIFEST_TMP)?;
    write_all_at(&tmp, at, &[&buf[..held]]).ctx(IoOp::Write, MANIFEST_TMP)?;
    tmp.sync().ctx(IoOp::Sync, MANIFEST_TMP)?;
    storage.rename(MANIFEST_TMP, MANIFEST_FILE).ctx(IoOp::Rename, MANIFEST_FILE)?;
    storage.sync_dir().ctx(IoOp::SyncDir, "")
}

/// Creates (or truncates) the journal of a new active segment at `base`
/// and writes and syncs its header: a segment file with no journal naming
/// it is one comet did not create (recovery sets such strays aside), so
/// the header must survive a power loss with the segment's name.
fn new_journal<S: Storage>(storage: &S, base: u64, interval: u32) -> Result<S::File, Error<S::Error>> {
    let name = chunk_table_file_name(base);
    let f = storage.open(&name, OpenMode::Truncate).ctx(IoOp::Open, &name)?;
    write_all_at(&f, 0, &[&table_header(base, interval)]).ctx(IoOp::Write, &name)?;
    f.sync().ctx(IoOp::Sync, &name)?;
    Ok(f)
}

/// A zeroed write buffer of `size` bytes (allocated once, at open).
fn new_buffer(size: usize) -> Box<[u8]> {
    vec![0u8; size.max(HEADER_LEN)].into_boxed_slice()
}
