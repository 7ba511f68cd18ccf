//! A shard read through mappings of its files, the way any process that
//! does not write it sees it: what is durable from the seqlocked head in
//! the shared `comet.state` words, sealed segments through the manifest
//! (reloaded when its generation counter moves) and their chunk tables,
//! the active segment's closed chunks through its journal (accepted only
//! when it folds to the head's `closed_hash`, else rebuilt from the bytes).
//! Every chunk is checked once per mapping before an entry of it is
//! handed out ([`locate_sealed`], [`SealedChunks`], [`ActiveChunks`]).
//!
//! This is the engine of `comet`'s zero-copy `Reader`; the platform
//! supplies the storage, the state words and a [`Mapper`] (memory maps
//! there). A map never covers more than the head says is durable, and
//! sealed maps are kept in a small least-recently-used cache.

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::AtomicU64;

use super::{
    ActiveChunks, ChunkEntries, ChunkPos, EntryView, Probe, Sealed, SealedChunks, chunk_in, locate_sealed,
    read_table_records,
};
use crate::error::{Error, IoOp};
use crate::index::{Manifest, SegmentMeta};
use crate::naming::{chunk_table_file_name, segment_file_name};
use crate::num::index32;
use crate::shard::load_manifest;
use crate::state::shm::{head_seq, load_counter, load_head};
use crate::state::{Counter, DurableHead};
use crate::storage::{Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile};
use crate::wire::{HEADER_LEN, STORED_LIMIT, WireError};

/// How a platform maps the first bytes of a segment file.
pub trait Mapper<F> {
    /// A mapping, cheap to clone: a reader hands clones out with the
    /// entries it serves, so a mapping lives while any of them does.
    type Map: Clone;
    /// The storage's error.
    type Error;
    /// Maps the first `len` bytes of `file`.
    fn map(&self, file: &F, len: u64) -> Result<Self::Map, Self::Error>;
    /// A mapping of nothing.
    fn empty(&self) -> Self::Map;
    /// The mapped bytes.
    fn bytes<'m>(&self, map: &'m Self::Map) -> &'m [u8];
}

/// A sealed segment: its map, its checked chunk table and the chunks
/// checked in this map.
struct SealedMap<M> {
    base: u64,
    map: M,
    chunks: SealedChunks,
    used: u64,
}

/// The active segment: its file, map, journal and the chunks checked in
/// the map.
struct ActiveView<F, M> {
    file: F,
    journal: Option<F>,
    map: M,
    /// Bytes the map was asked to cover (the head's bytes at the time).
    mapped: u64,
    chunks: ActiveChunks,
}

/// A checked chunk a sequential read is working through.
struct Cursor<M> {
    pos: ChunkPos,
    map: M,
    /// Next entry and its byte offset within the chunk.
    entry: u64,
    at: usize,
}

/// A checked chunk holding an entry: its place, its segment's map, and
/// where to start walking to the entry in it (see
/// [`CheckedChunks::start_for`](super::CheckedChunks::start_for)).
type Located<M> = (ChunkPos, M, (usize, u64));

/// An entry of a checked chunk: its number, timestamp, and where its
/// stored payload is in the segment's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The entry number.
    pub entry: u64,
    /// Its timestamp.
    pub timestamp: u64,
    /// Where its stored payload starts within the mapping (`usize::MAX`
    /// for a chunk offset beyond `usize`, which no mapping holds: a lookup
    /// there finds nothing).
    pub start: usize,
    /// Its stored payload's length.
    pub len: usize,
}

impl Found {
    /// Entry `e` of the checked chunk at `pos`.
    #[inline]
    pub fn of(pos: &ChunkPos, e: &EntryView<'_>) -> Found {
        let start = usize::try_from(pos.start).map_or(usize::MAX, |s| s.wrapping_add(e.at).wrapping_add(HEADER_LEN));
        Found { entry: e.entry, timestamp: e.timestamp, start, len: e.stored.len() }
    }
}

/// A shard's reader state over mappings (see the module documentation).
/// The platform passes its storage and the shard's `comet.state` words to
/// each call.
pub struct MappedReader<F, P: Mapper<F>> {
    mapper: P,
    manifest: Option<Manifest>,
    manifest_gen: u64,
    /// Chunks are judged by the format's limit: entries stored under a
    /// larger `max_entry_size` than a reader's are valid data.
    max_stored: u32,
    /// Open sealed maps, sorted by segment base.
    sealed: Vec<SealedMap<P::Map>>,
    /// Most sealed maps kept (least recently used goes first).
    sealed_cap: usize,
    /// Clock of `SealedMap::used`.
    sealed_tick: u64,
    active: Option<ActiveView<F, P::Map>>,
    cursor: Option<Cursor<P::Map>>,
    remaps: u64,
    /// The last decoded durable head and the seqlock sequence it was
    /// published under: valid while the sequence has not moved.
    head_cache: Option<(u64, DurableHead)>,
}

impl<F, P: Mapper<F>> core::fmt::Debug for MappedReader<F, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MappedReader").field("sealed", &self.sealed.len()).finish_non_exhaustive()
    }
}

impl<F, P: Mapper<F>> MappedReader<F, P> {
    /// A reader mapping through `mapper` that keeps at most `sealed_cap`
    /// sealed segments mapped.
    pub fn new(mapper: P, sealed_cap: usize) -> Self {
        MappedReader {
            mapper,
            manifest: None,
            manifest_gen: 0,
            max_stored: STORED_LIMIT,
            sealed: Vec::new(),
            sealed_cap,
            sealed_tick: 0,
            active: None,
            cursor: None,
            remaps: 0,
            head_cache: None,
        }
    }

    /// Times a mapping was replaced because its file grew.
    pub fn remaps(&self) -> u64 {
        self.remaps
    }

    /// The mapper, to read a mapping's bytes.
    pub fn mapper(&self) -> &P {
        &self.mapper
    }

    /// The sealed segments mapped now: their bases and mappings, by base.
    pub fn sealed_maps(&self) -> impl Iterator<Item = (u64, &P::Map)> {
        self.sealed.iter().map(|s| (s.base, &s.map))
    }

    /// Changes how many sealed segments stay mapped (from the next map).
    pub fn set_sealed_cap(&mut self, cap: usize) {
        self.sealed_cap = cap;
    }

    /// The durable head in `words` (`None`: no valid head yet), decoded (a
    /// CRC-32 over the head line) only when its seqlock sequence moved
    /// since the last call; otherwise one atomic load.
    pub fn head(&mut self, words: &[AtomicU64]) -> Option<DurableHead> {
        if let Some((seq, head)) = self.head_cache
            && head_seq(words) == seq
        {
            return Some(head);
        }
        let decoded = load_head(words);
        self.head_cache = decoded.map(|(h, seq)| (seq, h));
        decoded.map(|(h, _)| h)
    }

    fn unavailable<E>(&self, entry: u64, head: Option<&DurableHead>) -> Error<E> {
        let end = head.map_or(0, DurableHead::end);
        let first = self.manifest.as_ref().map_or(0, |m| m.first_entry);
        Error::EntryUnavailable { entry, first, end }
    }

    /// The lost range `entry` lies in, per the loaded manifest.
    fn lost(&self, entry: u64, head: Option<&DurableHead>) -> Option<Range<u64>> {
        self.manifest.as_ref()?.lost_range(entry, head?.base)
    }
}

impl<F, P> MappedReader<F, P>
where
    P: Mapper<F>,
    F: StorageFile<Error = P::Error>,
    P::Error: StorageError,
{
    /// Loads the manifest if its generation moved (or `force`).
    fn manifest<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        force: bool,
    ) -> Result<(), Error<S::Error>> {
        let gen_now = load_counter(words, Counter::ManifestGeneration);
        if (self.manifest.is_none() || force || gen_now != self.manifest_gen)
            && let Some(m) = load_manifest(storage)?
        {
            self.manifest = Some(m);
            self.manifest_gen = gen_now;
            self.sealed.clear();
        }
        Ok(())
    }

    /// `(first retained entry, one past the last durable entry)`.
    pub fn bounds<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
    ) -> Result<(u64, u64), Error<S::Error>> {
        let Some(head) = self.head(words) else {
            return Ok((0, 0));
        };
        self.manifest(storage, words, false)?;
        let first = self.manifest.as_ref().map_or(head.base, |m| m.first_entry);
        Ok((first.min(head.end()), head.end()))
    }

    /// The index in `sealed` of sealed segment `seg`'s map and checked
    /// table, mapped if need be.
    fn sealed_map<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        seg: &SegmentMeta,
        interval: u32,
    ) -> Result<usize, Error<S::Error>> {
        self.sealed_tick += 1;
        let at = match self.sealed.binary_search_by_key(&seg.base, |s| s.base) {
            Ok(i) => {
                self.sealed[i].used = self.sealed_tick;
                return Ok(i);
            }
            Err(i) => i,
        };
        let name = segment_file_name(seg.base);
        let file = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
        let map = self.mapper.map(&file, seg.bytes).ctx(IoOp::Read, &name)?;
        let table_name = chunk_table_file_name(seg.base);
        let mut recs = Vec::new();
        let from_file = match storage.open(&table_name, OpenMode::Read) {
            Ok(f) => read_table_records(&f, seg.base, interval, 0, seg.chunks as usize, &mut recs)
                .ctx(IoOp::Read, &table_name)?,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(Error::storage(IoOp::Read, &table_name, e)),
        };
        let bytes = self.mapper.bytes(&map);
        let chunks = SealedChunks::load(seg, interval, from_file.then_some(&recs[..]), bytes, self.max_stored)
            .map_err(Error::Corrupt)?;
        let mut at = at;
        if self.sealed.len() >= self.sealed_cap.max(1) {
            // Evict the least recently used. An entry handed out with that
            // map keeps it alive through its own clone.
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
    fn active_view<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        head: &DurableHead,
        interval: u32,
    ) -> Result<(), Error<S::Error>> {
        if self.active.as_ref().is_none_or(|a| a.chunks.base() != head.base) {
            let name = segment_file_name(head.base);
            let file = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
            let journal = storage.open(&chunk_table_file_name(head.base), OpenMode::Read).ok();
            self.cursor = None;
            let map = self.mapper.empty();
            self.active =
                Some(ActiveView { file, journal, map, mapped: 0, chunks: ActiveChunks::new(head.base, interval) });
        }
        let Some(view) = self.active.as_mut() else { return Ok(()) };
        if view.mapped < head.bytes {
            view.map = self.mapper.map(&view.file, head.bytes).ctx(IoOp::Read, &segment_file_name(head.base))?;
            view.mapped = head.bytes;
            self.remaps += 1;
        }
        let bytes = self.mapper.bytes(&view.map);
        view.chunks.cover(head, view.journal.as_ref(), bytes, self.max_stored).map_err(Error::Corrupt)
    }

    /// The checked chunk holding `entry` ([`Located`]).
    fn chunk<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        entry: u64,
        head: Option<&DurableHead>,
    ) -> Result<Located<P::Map>, Error<S::Error>> {
        let Some(head) = head.filter(|h| entry < h.end()).copied() else {
            return Err(self.unavailable(entry, head));
        };
        let max_stored = self.max_stored;
        self.manifest(storage, words, false)?;
        let interval = self.manifest.as_ref().map_or(head.interval.max(1), |m| m.interval);
        if entry >= head.base {
            self.active_view(storage, &head, interval)?;
            let Some(view) = self.active.as_mut() else { return Err(self.unavailable(entry, Some(&head))) };
            let k = index32((entry - head.base) / u64::from(interval));
            let bytes = self.mapper.bytes(&view.map);
            let pos = view.chunks.chunk(&head, k, bytes, max_stored)?;
            let start = view.chunks.start_for(k, &pos, entry);
            return Ok((pos, view.map.clone(), start));
        }
        if self.manifest.as_ref().and_then(|m| m.find_sealed(entry)).is_none() {
            self.manifest(storage, words, true)?;
        }
        let Some(m) = self.manifest.take() else { return Err(self.unavailable(entry, Some(&head))) };
        let found = self.sealed_chunk(storage, &m, entry, &head);
        self.manifest = Some(m);
        match found {
            // Retention deleted it after our manifest was loaded.
            Err(Error::Storage { source, .. }) if source.kind() == ErrorKind::NotFound => {
                self.manifest(storage, words, true)?;
                Err(self.unavailable(entry, Some(&head)))
            }
            r => r,
        }
    }

    /// [`chunk`](Self::chunk) of a sealed segment, with the manifest `m`
    /// taken out of `self`.
    fn sealed_chunk<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        m: &Manifest,
        entry: u64,
        head: &DurableHead,
    ) -> Result<Located<P::Map>, Error<S::Error>> {
        let (seg, k) = match locate_sealed(m, entry, head.base) {
            Sealed::At { seg, chunk } => (seg, chunk),
            Sealed::Lost(r) => return Err(Error::Lost { entry, start: r.start, end: r.end }),
            Sealed::Unavailable => {
                let end = head.end();
                return Err(Error::EntryUnavailable { entry, first: m.first_entry, end });
            }
        };
        let i = self.sealed_map(storage, seg, m.interval)?;
        let s = &mut self.sealed[i];
        let pos = s.chunks.chunk(seg, m.interval, k, self.mapper.bytes(&s.map), self.max_stored)?;
        let start = s.chunks.start_for(k, &pos, entry);
        Ok((pos, s.map.clone(), start))
    }

    /// Durable entry `entry` and its segment's map. A sequential read goes
    /// on from the entry after it.
    pub fn entry<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        entry: u64,
    ) -> Result<(&P::Map, Found), Error<S::Error>> {
        let head = self.head(words);
        let (pos, map, start) = self.chunk(storage, words, entry, head.as_ref())?;
        let mut it = entries_from(self.mapper.bytes(&map), &pos, start, entry);
        let Some(e) = it.next() else {
            return Err(Error::Damaged(pos.damage(pos.start, WireError::InvalidField { offset: 0 })));
        };
        let found = Found::of(&pos, &e);
        let next = it.position();
        let cursor = self.cursor.insert(Cursor { pos, map, entry: entry + 1, at: next });
        Ok((&cursor.map, found))
    }

    /// Hands every durable entry from `from` on, up to `max` of them, to
    /// `take` (with its chunk's map and place), chunk by checked chunk.
    /// Returns how many were taken. Stops at the durable end; stops at an
    /// unreadable entry or a failing `take` with its error (`conv` turns
    /// this reader's errors into the caller's); never skips an entry.
    pub fn read_entries<S: Storage<File = F, Error = P::Error>, X>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        from: u64,
        max: usize,
        conv: impl Fn(Error<S::Error>) -> X,
        mut take: impl FnMut(&P, &P::Map, &ChunkPos, EntryView<'_>) -> Result<(), X>,
    ) -> Result<usize, X> {
        let head = self.head(words);
        let end = head.map_or(0, |h| h.end());
        let mut n = 0;
        let mut entry = from;
        while n < max && entry < end {
            let cursor = self.cursor.take().filter(|c| c.entry == entry && entry < c.pos.entry_range().end);
            let (pos, map, mut at) = match cursor {
                Some(c) => (c.pos, c.map, c.at),
                None => {
                    let (pos, map, start) = self.chunk(storage, words, entry, head.as_ref()).map_err(&conv)?;
                    let at = entries_from(self.mapper.bytes(&map), &pos, start, entry).position();
                    (pos, map, at)
                }
            };
            let stop = pos.entry_range().end.min(end).min(entry.saturating_add((max - n) as u64));
            let mut result = Ok(());
            {
                let bytes = chunk_in(self.mapper.bytes(&map), &pos);
                let mut it = ChunkEntries::resume(bytes, at, entry);
                while entry < stop {
                    let Some(e) = it.next() else { break };
                    if let Err(err) = take(&self.mapper, &map, &pos, e) {
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

    /// The first readable entry whose timestamp is at or after `ts` (entry
    /// timestamps never decrease within a shard), or the durable end. An
    /// entry in a lost range counts as stamped like the first entry after
    /// it, so a time inside such a range finds the first entry after it.
    pub fn seek_time<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        ts: u64,
    ) -> Result<u64, Error<S::Error>> {
        let (first, end) = self.bounds(storage, words)?;
        super::seek_time(first, end, ts, |e| {
            let head = self.head(words);
            if let Some(r) = self.lost(e, head.as_ref()) {
                return Ok(Probe::LostUntil(r.end));
            }
            let (pos, map, start) = self.chunk(storage, words, e, head.as_ref())?;
            let mut it = entries_from(self.mapper.bytes(&map), &pos, start, e);
            Ok(Probe::Stamped(it.next().map_or(u64::MAX, |v| v.timestamp)))
        })
    }

    /// The first entry at or after `entry` that is not in a lost range,
    /// clamped to the retained range `first..=end`.
    pub fn readable_from<S: Storage<File = F, Error = P::Error>>(
        &mut self,
        storage: &S,
        words: &[AtomicU64],
        entry: u64,
    ) -> Result<u64, Error<S::Error>> {
        let (first, end) = self.bounds(storage, words)?;
        let head = self.head(words);
        Ok(super::readable_from(first, end, entry, |e| self.lost(e, head.as_ref())))
    }
}

/// The entries of the checked chunk at `pos` in the segment's `bytes`
/// from `entry` on, walking from `start` (a known entry's offset and
/// number in the chunk, at or before `entry`).
#[inline]
fn entries_from<'b>(bytes: &'b [u8], pos: &ChunkPos, start: (usize, u64), entry: u64) -> ChunkEntries<'b> {
    let mut it = ChunkEntries::resume(chunk_in(bytes, pos), start.0, start.1);
    it.skip_to(entry);
    it
}
