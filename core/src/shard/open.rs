//! Opening a shard: recovery from whatever a crash or damage left behind.
//!
//! Open is automatic and bounded. It never panics and never loops; after a
//! clean close it reads the manifest, the head and the active segment's
//! journal (O(segments + chunks of the active segment)), and after a crash
//! it also checks the active segment's open chunk and scans its unsynced
//! tail. It runs in named phases, each with a typed result:
//!
//! 1. [`Listing::read`]: the directory's segments, chunk tables, temp
//!    manifest and Go names; a leftover `index.bin.tmp` is removed and a
//!    Go-written shard refused ([`Error::ForeignFormat`]).
//! 2. [`Loaded::read`]: `index.bin` (size-bounded; a corrupt one is kept as
//!    `index.bin.corrupt` and rebuilt from the file names, which carry the
//!    entry numbers) and the durable head.
//! 3. `reconcile_sealed`: the manifest's segments against the files: a
//!    missing one becomes a reported gap, chunks past the end of a short
//!    file are recorded as lost, a missing chunk table is rebuilt from the
//!    segment (checked against the manifest's CRC of the table), files
//!    below the first retained entry are orphans of an interrupted
//!    retention pass and are removed.
//! 4. `seal_unsealed`: segments the manifest does not know yet (a crash
//!    during rotation) are checked against their tables and sealed; a
//!    segment file that no manifest, head or rotation accounts for is a
//!    stray and is set aside (`*.stray`), never adopted or renumbered.
//! 5. `recover_active`: the active segment against its journal and the
//!    durable head: the journal's records must fold to the head's
//!    `closed_hash` and the open chunk must match `open_crc`; then the
//!    unsynced tail is scanned and cut at the first incomplete or invalid
//!    entry. A damaged open chunk (or synced bytes missing from the file)
//!    costs that chunk: the segment is sealed with it recorded as lost and
//!    numbering continues after the durable end. Only when the journal
//!    cannot vouch for the closed chunks and the bytes do not reproduce
//!    the head is the whole segment set aside (`*.quarantined`).
//! 6. Publish: the manifest is rewritten if anything changed, then the
//!    head.
//!
//! Damage in closed chunks is not looked for here: every read checks the
//! chunk it reads, and `repair` records damaged chunks as lost.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use super::{EngineConfig, Shard, new_buffer, new_journal, write_manifest_file};
use crate::error::{Error, IoOp};
use crate::go::{GO_INDEX_MAGIC, parse_go_segment_file_name};
use crate::index::table::{TABLE_HEADER, TABLE_RECORD, parse_table_header, table_header};
use crate::index::{ChunkRec, MANIFEST_FILE, MANIFEST_TMP, Manifest, SegmentMeta, Table};
use crate::naming::{chunk_table_file_name, parse_chunk_table_file_name, parse_segment_file_name, segment_file_name};
use crate::read::{ActiveTable, ChunkPos, check_chunk};
use crate::segment::{ChunkState, ScanEnd, Scanner, offset32};
use crate::state::{Counter, DurableHead, HeadStore};
use crate::storage::{Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at, write_all_at};
use crate::wire::{Compressor, HEADER_LEN, WireError};

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Segment base.
    pub base: u64,
    /// Where the valid data ends (the new file length).
    pub offset: u64,
    /// Bytes removed.
    pub removed: u64,
    /// What was found there.
    pub end: ScanEnd,
}

/// Why a segment was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineReason {
    /// Its chunk table is gone and its bytes do not reproduce the
    /// manifest's checksum of the table, so no chunk can be vouched for.
    Unverifiable,
    /// Its synced bytes do not match the durable head's checksums and its
    /// journal cannot say which chunk is damaged.
    Checksum,
    /// It overlaps entries of another segment.
    Overlap,
    /// No manifest record, durable head or rotation accounts for it (a
    /// stray copy): kept as `*.stray`, never adopted.
    Stray,
}

/// A segment renamed aside by recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantine {
    /// Segment base.
    pub base: u64,
    /// Why.
    pub reason: QuarantineReason,
}

/// What recovery found and did on open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The shard was created by this open.
    pub created: bool,
    /// The last close was clean and nothing needed scanning.
    pub clean: bool,
    /// `index.bin` was rebuilt from the segment files.
    pub rebuilt_manifest: bool,
    /// Why the old `index.bin` was rejected, if it was.
    pub manifest_error: Option<WireError>,
    /// `index.bin` was written by an earlier comet (version 1) and was
    /// migrated.
    pub migrated_manifest: bool,
    /// `comet.state` held an invalid head.
    pub state_reset: bool,
    /// Bytes read to verify and recover.
    pub scanned_bytes: u64,
    /// Torn tails cut off.
    pub torn: Vec<TornTail>,
    /// Segments set aside.
    pub quarantined: Vec<Quarantine>,
    /// Chunks recorded as lost: (segment base, chunk index).
    pub lost_chunks: Vec<(u64, u32)>,
    /// Chunk tables rebuilt from their segments.
    pub tables_rebuilt: u64,
    /// Entry ranges that are no longer readable (lost or set-aside
    /// segments, lost chunks).
    pub missing: Vec<Range<u64>>,
    /// Orphan segment files removed.
    pub orphans_removed: u64,
}

impl RecoveryReport {
    /// True if recovery found anything wrong.
    pub fn found_damage(&self) -> bool {
        self.rebuilt_manifest
            || self.state_reset
            || !self.torn.is_empty()
            || !self.quarantined.is_empty()
            || !self.lost_chunks.is_empty()
            || !self.missing.is_empty()
    }

    fn lose(&mut self, seg: &SegmentMeta, k: u32, interval: u32) {
        self.lost_chunks.push((seg.base, k));
        note_missing(self, seg.chunk_entries(k, interval));
    }
}

/// Phase 1: the files of a shard directory, by kind.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Segment bases, sorted.
    pub(crate) segments: Vec<u64>,
    /// Bases of chunk tables, sorted.
    pub(crate) tables: Vec<u64>,
    /// `index.bin.tmp` exists.
    pub(crate) tmp: bool,
    /// Go-written segment names exist.
    pub(crate) go: bool,
}

impl Listing {
    /// Lists the directory. With a `limit`, at most that many segment files
    /// and as many chunk tables are accepted, in vectors reserved once (a
    /// directory with more is [`Error::Capacity`], not memory growth).
    pub(crate) fn read<S: Storage>(storage: &S, limit: Option<usize>) -> Result<Listing, Error<S::Error>> {
        let mut l = Listing::default();
        if let Some(n) = limit {
            l.segments.reserve_exact(n);
            l.tables.reserve_exact(n);
        }
        let full = |v: &Vec<u64>| limit.is_some_and(|n| v.len() >= n);
        let mut over = 0u64;
        storage
            .list(&mut |name| {
                if let Some(base) = parse_segment_file_name(name) {
                    if full(&l.segments) {
                        over += 1;
                    } else {
                        l.segments.push(base);
                    }
                } else if let Some(base) = parse_chunk_table_file_name(name) {
                    if full(&l.tables) {
                        over += 1;
                    } else {
                        l.tables.push(base);
                    }
                } else if parse_go_segment_file_name(name).is_some() {
                    l.go = true;
                } else if name == MANIFEST_TMP {
                    l.tmp = true;
                }
            })
            .ctx(IoOp::List, "")?;
        if let Some(n) = limit
            && over > 0
        {
            let n = n as u64;
            return Err(Error::Capacity { what: "segment files", needed: n + over, available: n });
        }
        l.segments.sort_unstable();
        l.tables.sort_unstable();
        Ok(l)
    }

    pub(crate) fn has_table(&self, base: u64) -> bool {
        self.tables.binary_search(&base).is_ok()
    }
}

/// The largest `index.bin` the files of a shard can justify: a record (and
/// for version 1 a chunk table, for version 2 at most a lost list) per
/// segment file, with room for records of files that went missing. Reading
/// more would let a damaged (or sparse) manifest eat memory.
pub(crate) fn manifest_bound<S: Storage>(storage: &S, segments: &[u64]) -> Result<u64, Error<S::Error>> {
    let mut bound: u64 = 64 * 1024;
    for &base in segments {
        let name = segment_file_name(base);
        let len = match storage.open(&name, OpenMode::Read).and_then(|f| f.len()) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::storage(IoOp::Len, &name, e)),
        };
        // At most one chunk per entry, entries of at least 12 bytes.
        bound = bound.saturating_add(56 + 8 * (len / HEADER_LEN as u64 + 1));
    }
    Ok(bound)
}

/// Reads a whole small file of at most `max` bytes; `Ok(None)` if it does
/// not exist, [`Error::Capacity`] if it is larger.
pub(crate) fn read_bounded<S: Storage>(storage: &S, name: &str, max: u64) -> Result<Option<Vec<u8>>, Error<S::Error>> {
    let f = match storage.open(name, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::storage(IoOp::Open, name, e)),
    };
    let len = f.len().ctx(IoOp::Len, name)?;
    if len > max {
        return Err(Error::Capacity { what: "file size the format allows", needed: len, available: max });
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = read_exact_at(&f, 0, &mut buf).ctx(IoOp::Read, name)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Loads `index.bin` for reading: `Ok(None)` if there is none, the
/// decoded manifest, or a [`Error::Corrupt`] / [`Error::Capacity`] error
/// (never more memory than the shard's files justify).
pub fn load_manifest<S: Storage>(storage: &S) -> Result<Option<Manifest>, Error<S::Error>> {
    let listing = Listing::read(storage, None)?;
    let bound = manifest_bound(storage, &listing.segments)?;
    let Some(bytes) = read_bounded(storage, MANIFEST_FILE, bound)? else {
        return Ok(None);
    };
    Manifest::decode(&bytes).map(Some).map_err(|error| {
        Error::Corrupt(crate::error::Corruption { file: crate::error::FileKind::Manifest, offset: 0, error })
    })
}

/// Phase 2: the manifest and the durable head as found.
struct Loaded {
    manifest: Option<Manifest>,
    /// A hint for rebuilding: the interval a rejected manifest's header names.
    interval_hint: Option<u32>,
    head: Option<DurableHead>,
}

impl Loaded {
    fn read<S: Storage, H: HeadStore>(
        storage: &S,
        head_store: &H,
        listing: &Listing,
        capacity: usize,
        report: &mut RecoveryReport,
    ) -> Result<Loaded, Error<S::Error>> {
        let bound = manifest_bound(storage, &listing.segments)?;
        let decoded = match read_bounded(storage, MANIFEST_FILE, bound) {
            Ok(None) => None,
            Ok(Some(bytes)) => {
                if bytes.starts_with(&GO_INDEX_MAGIC) {
                    return Err(Error::ForeignFormat);
                }
                Some(Manifest::decode_reserving(&bytes, capacity).map_err(|e| (e, Manifest::header_interval(&bytes))))
            }
            // Larger than the files justify: damaged (or sparse).
            Err(Error::Capacity { needed, available, .. }) => {
                let mut head = [0u8; 40];
                let f = storage.open(MANIFEST_FILE, OpenMode::Read).ctx(IoOp::Open, MANIFEST_FILE)?;
                let n = read_exact_at(&f, 0, &mut head).ctx(IoOp::Read, MANIFEST_FILE)?;
                if head.starts_with(&GO_INDEX_MAGIC) {
                    return Err(Error::ForeignFormat);
                }
                Some(Err((WireError::TooLarge { len: needed, max: available }, Manifest::header_interval(&head[..n]))))
            }
            Err(e) => return Err(e),
        };
        if listing.go {
            return Err(Error::ForeignFormat);
        }
        let mut loaded = Loaded { manifest: None, interval_hint: None, head: None };
        match decoded {
            None => {}
            Some(Ok(m)) => loaded.manifest = Some(m),
            Some(Err((e, hint))) => {
                report.manifest_error = Some(e);
                loaded.interval_hint = hint;
                storage.rename(MANIFEST_FILE, "index.bin.corrupt").ctx(IoOp::Rename, MANIFEST_FILE)?;
            }
        }
        loaded.head = match head_store.load().ok().map(|line| (DurableHead::decode(&line), line)) {
            Some((Ok((h, _)), _)) => Some(h),
            Some((Err(_), line)) => {
                report.state_reset = line.iter().any(|&b| b != 0);
                None
            }
            None => None,
        };
        Ok(loaded)
    }
}

/// Renames a segment aside as `<name>.<suffix>[.N]`.
pub(crate) fn set_aside<S: Storage>(storage: &S, base: u64, suffix: &str) -> Result<(), Error<S::Error>> {
    let name = segment_file_name(base);
    let mut taken = Vec::new();
    storage
        .list(&mut |n| {
            if n.starts_with(name.as_str()) && n.len() > name.len() {
                taken.push(String::from(n));
            }
        })
        .ctx(IoOp::List, "")?;
    let mut target = alloc::format!("{name}.{suffix}");
    let mut k = 1;
    while taken.contains(&target) {
        target = alloc::format!("{name}.{suffix}.{k}");
        k += 1;
    }
    storage.rename(&name, &target).ctx(IoOp::Rename, &name)?;
    Ok(())
}

/// Writes a complete chunk table (header and records) and syncs it.
pub(crate) fn write_table<S: Storage>(
    storage: &S,
    base: u64,
    interval: u32,
    table: &[ChunkRec],
) -> Result<(), Error<S::Error>> {
    let name = chunk_table_file_name(base);
    let f = storage.open(&name, OpenMode::Truncate).ctx(IoOp::Open, &name)?;
    let recs: Vec<u8> = table.iter().flat_map(ChunkRec::to_bytes).collect();
    write_all_at(&f, 0, &[&table_header(base, interval), &recs]).ctx(IoOp::Write, &name)?;
    f.sync().ctx(IoOp::Sync, &name)
}

/// Reads a chunk table's records (header checked against `base` and
/// `interval`), at most `max_records`. `Ok(None)` if it is missing or its
/// header does not check out.
pub(crate) fn read_table<S: Storage>(
    storage: &S,
    base: u64,
    interval: u32,
    max_records: u64,
) -> Result<Option<Vec<u8>>, Error<S::Error>> {
    let name = chunk_table_file_name(base);
    let max = (TABLE_HEADER as u64).saturating_add(max_records.saturating_mul(TABLE_RECORD as u64));
    let bytes = match read_bounded(storage, &name, max) {
        Ok(Some(b)) => b,
        Ok(None) | Err(Error::Capacity { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match parse_table_header(&bytes) {
        Ok((b, i)) if b == base && i == interval => Ok(Some(bytes[TABLE_HEADER..].to_vec())),
        _ => Ok(None),
    }
}

/// Scans a whole segment file (framing from the start): the scanner and
/// how it ended.
fn scan_file<F: StorageFile>(
    file: &F,
    base: u64,
    interval: u32,
    max_stored: u32,
    limit: u64,
    buf: &mut [u8],
) -> Result<(Scanner, ScanEnd), F::Error> {
    let mut sc = Scanner::new(base, interval, max_stored);
    let end = sc.run(file, limit, buf)?;
    Ok((sc, end))
}

/// Checks every chunk of a segment against `table` (boundaries from the
/// table, so damage in one chunk does not hide the next); returns the
/// chunks that fail. `seg` gives the entry counts.
pub(crate) fn damaged_chunks<F: StorageFile>(
    file: &F,
    seg: &SegmentMeta,
    interval: u32,
    table: &Table<'_>,
    max_stored: u32,
    buf: &mut Vec<u8>,
) -> Result<Vec<u32>, F::Error> {
    let mut out = Vec::new();
    for k in 0..seg.chunks {
        if seg.is_lost(k) {
            continue;
        }
        let Some(pos) = ChunkPos::sealed(seg, interval, table, k) else {
            out.push(k);
            continue;
        };
        let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let got = read_exact_at(file, pos.start, &mut buf[..n])?;
        if check_chunk(&buf[..got], &pos, max_stored).is_err() {
            out.push(k);
        }
    }
    Ok(out)
}

/// Phase 5's result: the active segment ready for appends.
struct Active<F> {
    file: F,
    journal: F,
    journaled: usize,
    sc: Scanner,
}

impl<S, H, C> Shard<S, H, C>
where
    S: Storage,
    H: HeadStore<Error = S::Error>,
    C: Compressor,
{
    /// Opens (creating if empty) the shard in `storage`, recovering from any
    /// crash or damage; see the module documentation for what it does.
    pub fn open(
        storage: S,
        head_store: H,
        compressor: C,
        cfg: EngineConfig,
    ) -> Result<(Self, RecoveryReport), Error<S::Error>> {
        let mut report = RecoveryReport::default();
        // 1. listing
        // A bounded manifest also bounds the files worth listing: the sealed
        // segments, the active one and the next (a rotation in progress).
        let limit = (cfg.max_sealed != u32::MAX).then(|| cfg.max_sealed as usize + 2);
        let mut listing = Listing::read(&storage, limit)?;
        if listing.tmp {
            match storage.remove(MANIFEST_TMP) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(IoOp::Remove, MANIFEST_TMP, e)),
            }
        }
        // 2. manifest and head
        let capacity = if limit.is_some() { cfg.max_sealed as usize } else { 0 };
        let loaded = Loaded::read(&storage, &head_store, &listing, capacity, &mut report)?;
        let head = loaded.head;
        let mut changed = false;
        let mut m = match loaded.manifest {
            Some(m) => m,
            None if listing.segments.is_empty() && report.manifest_error.is_none() => {
                return Self::create(storage, head_store, compressor, cfg, report);
            }
            None => {
                report.rebuilt_manifest = true;
                changed = true;
                let table_hint = listing.tables.last().and_then(|&b| table_interval(&storage, b));
                let candidates = [loaded.interval_hint, table_hint, Some(cfg.interval), Some(DEFAULT_INTERVAL)];
                let interval = rebuild_interval(&storage, head.as_ref(), &listing.segments, &candidates, &cfg)?;
                let mut m = Manifest::new(interval);
                m.first_entry = listing.segments.first().copied().unwrap_or(0);
                m
            }
        };
        if !m.legacy_tables.is_empty() {
            report.migrated_manifest = true;
            changed = true;
        }
        let mut buf = vec![0u8; 64 * 1024];
        // 3. sealed segments against the files
        changed |= reconcile_sealed(&storage, &mut m, &mut listing, &cfg, &mut buf, &mut report)?;
        // 4. segments the manifest does not know yet, strays
        let mut expected = m.sealed_end();
        let active_base = classify_unsealed(&storage, &m, &mut listing, head.as_ref(), &cfg, &mut buf, &mut report)?;
        for base in core::mem::take(&mut listing.segments) {
            if m.sealed.binary_search_by_key(&base, |s| s.base).is_ok() || Some(base) == active_base {
                continue;
            }
            if base < expected {
                set_aside(&storage, base, "quarantined")?;
                report.quarantined.push(Quarantine { base, reason: QuarantineReason::Overlap });
                continue;
            }
            if active_base.is_some_and(|a| base > a) {
                continue; // handled by classify_unsealed
            }
            if base > expected {
                note_missing(&mut report, expected..base);
            }
            changed = true;
            if let Some(seg) = seal_unsealed(&storage, base, m.interval, &cfg, &mut buf, &mut report)? {
                expected = seg.end();
                m.sealed.push(seg);
            }
        }
        // 5. the active segment
        let mut durable_end = expected;
        if let Some(h) = head.filter(|h| h.base >= expected) {
            durable_end = durable_end.max(h.end());
        }
        let mut active = None;
        match active_base {
            Some(base) if base >= expected => {
                if base > expected {
                    note_missing(&mut report, expected..base);
                }
                match recover_active(
                    &storage,
                    base,
                    head.filter(|h| h.base == base),
                    m.interval,
                    &cfg,
                    &mut buf,
                    &mut report,
                )? {
                    Recovered::Ready(a) => {
                        durable_end = durable_end.max(a.sc.base + a.sc.entries);
                        active = Some(a);
                    }
                    Recovered::Sealed(seg) => {
                        durable_end = durable_end.max(seg.end());
                        m.sealed.push(seg);
                        changed = true;
                    }
                    Recovered::SetAside(end) => {
                        durable_end = durable_end.max(end);
                        changed = true;
                    }
                }
            }
            Some(base) => {
                // below `expected`: overlaps sealed data
                set_aside(&storage, base, "quarantined")?;
                report.quarantined.push(Quarantine { base, reason: QuarantineReason::Overlap });
            }
            None => {}
        }
        let active = match active {
            Some(a) => a,
            None => {
                let start = m.sealed_end().max(expected);
                if durable_end > start && !report.missing.iter().any(|r| r.end >= durable_end) {
                    report.missing.push(start..durable_end);
                }
                let name = segment_file_name(durable_end);
                let file = storage.open(&name, OpenMode::CreateNew).ctx(IoOp::Open, &name)?;
                let journal = new_journal(&storage, durable_end, m.interval)?;
                storage.sync_dir().ctx(IoOp::SyncDir, "")?;
                changed = true;
                Active { file, journal, journaled: 0, sc: Scanner::new(durable_end, m.interval, cfg.max_stored()) }
            }
        };
        // 6. publish
        if changed {
            m.generation += 1;
            m.legacy_tables.clear();
            write_manifest_file(&storage, &m)?;
        } else if !report.clean {
            // After a crash the names of the files recovery adopts (created
            // just before it) may not be durable yet; the head published
            // below vouches for entries in them.
            storage.sync_dir().ctx(IoOp::SyncDir, "")?;
        }
        // Timestamps never decrease, also when the active segment is new.
        let ts_floor = m.sealed.last().map_or(0, |s| s.last_ts).max(head.map_or(0, |h| h.last_ts));
        if m.sealed.len() as u64 > u64::from(cfg.max_sealed) {
            return Err(Error::Capacity {
                what: "sealed segments",
                needed: m.sealed.len() as u64,
                available: u64::from(cfg.max_sealed),
            });
        }
        let mut shard = Self::assemble(storage, head_store, compressor, cfg, m, active);
        shard.last_ts = shard.last_ts.max(ts_floor);
        shard.count_recovery(&report, changed);
        let head = shard.current_head(false);
        shard.write_journal();
        shard.publish(head)?;
        Ok((shard, report))
    }

    fn count_recovery(&mut self, report: &RecoveryReport, changed: bool) {
        if !report.torn.is_empty() {
            let bytes: u64 = report.torn.iter().map(|t| t.removed).sum();
            self.bump(Counter::TornTails, report.torn.len() as u64);
            self.bump(Counter::TornBytes, bytes);
        }
        let strays = report.quarantined.iter().filter(|q| q.reason == QuarantineReason::Stray).count() as u64;
        self.bump(Counter::Opens, 1);
        self.bump(Counter::CleanOpens, u64::from(report.clean));
        self.bump(Counter::ManifestRebuilds, u64::from(report.rebuilt_manifest));
        self.bump(Counter::Quarantined, report.quarantined.len() as u64 - strays);
        self.bump(Counter::StraysSetAside, strays);
        self.bump(Counter::LostChunks, report.lost_chunks.len() as u64);
        self.bump(Counter::StateResets, u64::from(report.state_reset));
        self.bump(Counter::OrphansRemoved, report.orphans_removed);
        if changed {
            self.bump(Counter::ManifestGeneration, 1);
            self.bump(Counter::ManifestWrites, 1);
        }
    }

    fn create(
        storage: S,
        head_store: H,
        compressor: C,
        cfg: EngineConfig,
        mut report: RecoveryReport,
    ) -> Result<(Self, RecoveryReport), Error<S::Error>> {
        create_shard_files(&storage, cfg.interval)?;
        let name = segment_file_name(0);
        let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
        let tname = chunk_table_file_name(0);
        let journal = storage.open(&tname, OpenMode::ReadWrite).ctx(IoOp::Open, &tname)?;
        report.created = true;
        let m = Manifest::new(cfg.interval);
        let sc = Scanner::new(0, cfg.interval, cfg.max_stored());
        let mut shard =
            Self::assemble(storage, head_store, compressor, cfg, m, Active { file, journal, journaled: 0, sc });
        shard.bump(Counter::Opens, 1);
        shard.bump(Counter::SegmentsCreated, 1);
        shard.bump(Counter::ManifestGeneration, 1);
        let head = shard.current_head(false);
        shard.publish(head)?;
        Ok((shard, report))
    }

    fn assemble(
        storage: S,
        head_store: H,
        compressor: C,
        cfg: EngineConfig,
        mut m: Manifest,
        a: Active<S::File>,
    ) -> Self {
        let interval = m.interval;
        // A bounded manifest is reserved whole now, so rotations never grow it.
        if cfg.max_sealed != u32::MAX {
            m.sealed.reserve_exact((cfg.max_sealed as usize).saturating_sub(m.sealed.len()));
        }
        let sc = a.sc;
        let rem = u32::try_from(sc.entries % u64::from(interval)).unwrap_or(0);
        let chunk_cap = cfg.buffer_size / (crate::wire::HEADER_LEN * interval as usize) + 2;
        let mut chunks = sc.chunks;
        // A bounded checkpoint capacity is preallocated once, so appends
        // (and rotations, which reuse the table) never grow it.
        if cfg.max_chunks != u32::MAX {
            let want = cfg.max_chunks as usize;
            chunks.reserve(want.saturating_sub(chunks.closed().len()));
        }
        Shard {
            storage,
            head_store,
            compressor,
            cfg,
            manifest: Arc::new(m),
            file: a.file,
            journal: a.journal,
            journaled: a.journaled,
            base: sc.base,
            written: sc.pos,
            written_entries: sc.entries,
            dirty_tail: false,
            until_chunk: if rem == 0 { 0 } else { interval - rem },
            chunks,
            buf: new_buffer(cfg.buffer_size),
            buf_len: 0,
            buf_entries: 0,
            starts: Vec::with_capacity(chunk_cap),
            scratch: Vec::new(),
            next: sc.base + sc.entries,
            first_ts: sc.first_ts,
            last_ts: sc.last_ts,
            durable: DurableHead { base: sc.base, ..DurableHead::default() },
            poisoned: false,
            rotation_pending: false,
            head_stale: false,
            counters: [0; Counter::ALL.len()],
            gauges_set: 0,
        }
    }
}

/// Creates the files of an empty shard in `storage`: an empty manifest,
/// segment 0 and its journal, each written and synced, then the directory
/// synced. Platforms create a shard in a temporary directory with this and
/// rename it into place, so a shard directory is never half-created.
pub fn create_shard_files<S: Storage>(storage: &S, interval: u32) -> Result<(), Error<S::Error>> {
    let name = segment_file_name(0);
    let file = storage.open(&name, OpenMode::Create).ctx(IoOp::Open, &name)?;
    file.sync().ctx(IoOp::Sync, &name)?;
    let journal = new_journal(storage, 0, interval)?;
    journal.sync().ctx(IoOp::Sync, &chunk_table_file_name(0))?;
    write_manifest_file(storage, &Manifest::new(interval))
}

/// Phase 3: the manifest's sealed segments against the files. Returns
/// whether the manifest changed.
fn reconcile_sealed<S: Storage>(
    storage: &S,
    m: &mut Manifest,
    listing: &mut Listing,
    cfg: &EngineConfig,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<bool, Error<S::Error>> {
    let interval = m.interval;
    let max_stored = cfg.max_stored();
    let legacy = core::mem::take(&mut m.legacy_tables);
    let mut changed = false;
    let mut kept = Vec::with_capacity(m.sealed.len());
    for (i, mut seg) in core::mem::take(&mut m.sealed).into_iter().enumerate() {
        if listing.segments.binary_search(&seg.base).is_err() {
            note_missing(report, seg.base..seg.end());
            changed = true;
            continue;
        }
        let name = segment_file_name(seg.base);
        let file = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
        let len = file.len().ctx(IoOp::Len, &name)?;
        // The chunk table: from the file, or written again from a version
        // 1 manifest or from the segment's bytes.
        let need_table = !listing.has_table(seg.base) || legacy.get(i).is_some() || len < seg.bytes;
        if need_table {
            let table = match legacy.get(i) {
                Some(t) => Some(t.clone()),
                None => match read_table(storage, seg.base, interval, u64::from(seg.chunks))? {
                    Some(recs) if seg.check_table(&Table::new(&recs)).is_ok() => {
                        Some(Table::new(&recs).as_bytes().chunks_exact(8).filter_map(ChunkRec::parse).collect())
                    }
                    _ => {
                        // Rebuild from the bytes; only a table that reproduces
                        // the manifest's checksum vouches for anything.
                        let (sc, _) = scan_file(&file, seg.base, interval, max_stored, seg.bytes.min(len), buf)
                            .ctx(IoOp::Read, &name)?;
                        report.scanned_bytes += sc.pos;
                        let (scanned, table) = sc.seal();
                        (scanned.table_crc == seg.table_crc && scanned.chunks == seg.chunks).then_some(table)
                    }
                },
            };
            let Some(table) = table else {
                drop(file);
                set_aside(storage, seg.base, "quarantined")?;
                listing.segments.retain(|&b| b != seg.base);
                report.quarantined.push(Quarantine { base: seg.base, reason: QuarantineReason::Unverifiable });
                note_missing(report, seg.base..seg.end());
                changed = true;
                continue;
            };
            if !listing.has_table(seg.base) || legacy.get(i).is_some() {
                write_table(storage, seg.base, interval, &table)?;
                report.tables_rebuilt += 1;
                listing.tables.push(seg.base);
                listing.tables.sort_unstable();
            }
            // Chunks past the end of a short file are lost.
            if len < seg.bytes {
                for (k, r) in table.iter().enumerate() {
                    let k = crate::num::index32(k);
                    if u64::from(r.end) > len && !seg.is_lost(k) {
                        seg.lost.push(k);
                        report.lose(&seg, k, interval);
                    }
                }
                seg.lost.sort_unstable();
                changed = true;
            }
        }
        kept.push(seg);
    }
    m.sealed = kept;
    // Files below the first retained entry: orphans of a retention pass.
    for &base in &listing.segments.clone() {
        if base < m.first_entry && m.sealed.binary_search_by_key(&base, |s| s.base).is_err() {
            for name in [segment_file_name(base), chunk_table_file_name(base)] {
                match storage.remove(&name) {
                    Ok(()) => report.orphans_removed += u64::from(name.ends_with(".comet")),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::storage(IoOp::Remove, &name, e)),
                }
            }
            listing.segments.retain(|&b| b != base);
        }
    }
    for &base in listing.tables.iter().filter(|&&b| b < m.first_entry) {
        if listing.segments.binary_search(&base).is_err() {
            let name = chunk_table_file_name(base);
            match storage.remove(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(IoOp::Remove, &name, e)),
            }
        }
    }
    Ok(changed)
}

/// Phase 4a: which file past the manifest's segments is the active one,
/// setting aside strays. comet creates a segment file only with its chunk
/// table (the journal) and only where the previous segment ends, so a file
/// past the manifest's last segment is accounted for when the durable head
/// names it, when its own table names it, or when it starts exactly where
/// the files before it end. A file that is none of these (a copy placed
/// past the durable end, say) is a stray: set aside as `*.stray`, never
/// adopted or renumbered. The last file accepted is the active segment.
/// (Not a rule on the head alone: after a power loss the head in
/// `comet.state` may be older than segments whose data was synced, and
/// those must be kept.)
fn classify_unsealed<S: Storage>(
    storage: &S,
    m: &Manifest,
    listing: &mut Listing,
    head: Option<&DurableHead>,
    cfg: &EngineConfig,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<Option<u64>, Error<S::Error>> {
    let sealed_end = m.sealed_end();
    let known = |b: u64| m.sealed.binary_search_by_key(&b, |s| s.base).is_ok();
    let candidates: Vec<u64> = listing.segments.iter().copied().filter(|&b| !known(b) && b >= sealed_end).collect();
    // Where the next file must start to be contiguous (unknown after a
    // rebuilt manifest until the first file).
    let mut expected = (!m.sealed.is_empty() || m.first_entry > 0).then_some(sealed_end);
    let mut active = None;
    for (i, &base) in candidates.iter().enumerate() {
        let named = head.is_some_and(|h| h.base == base) || table_names(storage, base, m.interval);
        let contiguous = expected.is_none_or(|e| e == base);
        if !named && !contiguous {
            set_aside(storage, base, "stray")?;
            listing.segments.retain(|&b| b != base);
            report.quarantined.push(Quarantine { base, reason: QuarantineReason::Stray });
            continue;
        }
        if i + 1 < candidates.len() {
            // Another file follows: where does this one end?
            let name = segment_file_name(base);
            let file = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
            let len = file.len().ctx(IoOp::Len, &name)?;
            let (sc, _) = scan_file(&file, base, m.interval, cfg.max_stored(), len, buf).ctx(IoOp::Read, &name)?;
            expected = Some(base.saturating_add(sc.entries));
        }
        active = Some(base);
    }
    Ok(active)
}

/// True if segment `base`'s chunk table (or journal) exists and its header
/// names that segment.
fn table_names<S: Storage>(storage: &S, base: u64, interval: u32) -> bool {
    let Ok(f) = storage.open(&chunk_table_file_name(base), OpenMode::Read) else {
        return false;
    };
    let mut h = [0u8; TABLE_HEADER];
    let n = read_exact_at(&f, 0, &mut h).unwrap_or(0);
    matches!(parse_table_header(&h[..n]), Ok((b, i)) if b == base && i == interval)
}

/// Phase 4b: seals a segment written before the active one but not yet in
/// the manifest (a crash during rotation, or a rebuilt manifest): framing
/// and chunks from its bytes; where its own table disagrees about a chunk,
/// the chunk is lost. A torn tail is cut off. `None` for an empty file
/// (removed).
fn seal_unsealed<S: Storage>(
    storage: &S,
    base: u64,
    interval: u32,
    cfg: &EngineConfig,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<Option<SegmentMeta>, Error<S::Error>> {
    let name = segment_file_name(base);
    let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
    let len = file.len().ctx(IoOp::Len, &name)?;
    let (sc, end) = scan_file(&file, base, interval, cfg.max_stored(), len, buf).ctx(IoOp::Read, &name)?;
    report.scanned_bytes += sc.pos;
    truncate_tail(&file, &name, base, len, &sc, end, report)?;
    if sc.entries == 0 {
        drop(file);
        for n in [name, chunk_table_file_name(base)] {
            match storage.remove(&n) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(IoOp::Remove, &n, e)),
            }
        }
        return Ok(None);
    }
    // The manifest is about to vouch for these bytes: make them durable
    // first (after a process crash they may be only in the page cache).
    file.sync().ctx(IoOp::Sync, &name)?;
    let (mut seg, table) = sc.seal();
    // The segment's own table (written when it was active): a chunk it
    // records differently from the bytes is damage.
    if let Some(recs) = read_table(storage, base, interval, u64::from(seg.chunks).saturating_add(1))? {
        let own = Table::new(&recs);
        for (k, r) in table.iter().enumerate() {
            if own.get(k).is_some_and(|o| o.end == r.end && o.crc != r.crc) {
                let k = crate::num::index32(k);
                seg.lost.push(k);
                report.lose(&seg, k, interval);
            }
        }
    }
    write_table(storage, base, interval, &table)?;
    Ok(Some(seg))
}

/// Phase 5's outcomes.
enum Recovered<F> {
    /// The active segment, ready for appends.
    Ready(Active<F>),
    /// The segment had damaged synced bytes: sealed with the damaged chunks
    /// recorded as lost; a new active segment starts after it.
    Sealed(SegmentMeta),
    /// The segment was set aside whole; entries up to this end are lost.
    SetAside(u64),
}

/// Phase 5: the active segment `base` against `head` (a valid head naming
/// this segment, if any) and its journal.
fn recover_active<S: Storage>(
    storage: &S,
    base: u64,
    head: Option<DurableHead>,
    interval: u32,
    cfg: &EngineConfig,
    buf: &mut Vec<u8>,
    report: &mut RecoveryReport,
) -> Result<Recovered<S::File>, Error<S::Error>> {
    let name = segment_file_name(base);
    let max_stored = cfg.max_stored();
    let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
    let len = file.len().ctx(IoOp::Len, &name)?;
    let tname = chunk_table_file_name(base);
    let Some(h) = head else {
        // Nothing vouches for the bytes: framing alone decides (D-7).
        let (sc, end) = scan_file(&file, base, interval, max_stored, len, buf).ctx(IoOp::Read, &name)?;
        report.scanned_bytes += sc.pos;
        return ready(storage, file, base, interval, len, sc, end, report);
    };
    // The journal's records for the head's closed chunks.
    let mut closed = ActiveTable::new(base, interval);
    let max_records = h.entries / u64::from(interval) + 1;
    let mut journal_ok = match read_table(storage, base, interval, max_records.saturating_add(1 << 16))? {
        Some(recs) => closed.accept(&h, &recs).is_ok(),
        None => false,
    };
    if journal_ok
        && !short_or_open_chunk_ok(&file, &h, interval, &closed, len, max_stored, buf).ctx(IoOp::Read, &name)?
    {
        // The journal's CRCs fold to the head, but its end offsets are not
        // covered by the head: when the bytes reproduce the head on their
        // own, the journal was wrong, not the data.
        let (sc, end) = scan_file(&file, base, interval, max_stored, h.bytes.min(len), buf).ctx(IoOp::Read, &name)?;
        if len >= h.bytes
            && end == ScanEnd::Clean
            && sc.entries == h.entries
            && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash)
        {
            journal_ok = false;
        }
    }
    if journal_ok {
        // The open chunk must match the head (new entries join it).
        let table = closed.table();
        let open = ChunkPos::active(&h, interval, &table, crate::num::index32(closed.len()));
        let mut lost = Vec::new();
        let short = len < h.bytes;
        if let Some(pos) = open {
            let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
            if buf.len() < n {
                buf.resize(n, 0);
            }
            let got = read_exact_at(&file, pos.start, &mut buf[..n]).ctx(IoOp::Read, &name)?;
            report.scanned_bytes += got as u64;
            if check_chunk(&buf[..got], &pos, max_stored).is_err() {
                lost.push(pos.index);
            }
        }
        if short {
            for k in 0..table.len() {
                if table.get(k).is_some_and(|r| u64::from(r.end) > len) {
                    lost.push(crate::num::index32(k));
                }
            }
        }
        if lost.is_empty() {
            let open_state = open.map(|p| (offset32(p.start), h.open_crc));
            let recs: Vec<ChunkRec> = (0..table.len()).filter_map(|k| table.get(k)).collect();
            let first_ts = first_timestamp(&file, h.entries).ctx(IoOp::Read, &name)?.min(h.last_ts);
            let mut sc = Scanner::new(base, interval, max_stored);
            sc.pos = h.bytes;
            sc.entries = h.entries;
            sc.first_ts = first_ts;
            sc.last_ts = h.last_ts;
            sc.chunks = ChunkState::resume(&recs, open_state);
            let clean = h.clean && len == h.bytes;
            let end = sc.run(&file, len, buf).ctx(IoOp::Read, &name)?;
            report.scanned_bytes += sc.pos - h.bytes;
            report.clean = clean;
            let journaled = recs.len();
            let journal = storage.open(&tname, OpenMode::ReadWrite).ctx(IoOp::Open, &tname)?;
            truncate_tail(&file, &name, base, len, &sc, end, report)?;
            if sc.pos > h.bytes {
                // The head published after open covers the recovered tail.
                file.sync().ctx(IoOp::Sync, &name)?;
            }
            return Ok(Recovered::Ready(Active { file, journal, journaled, sc }));
        }
        // Damaged synced bytes: seal at the durable end with the damaged
        // chunks lost; what was written after the head is not kept.
        lost.sort_unstable();
        lost.dedup();
        let mut recs: Vec<ChunkRec> = (0..table.len()).filter_map(|k| table.get(k)).collect();
        if let Some(pos) = open {
            recs.push(ChunkRec { end: offset32(pos.end), crc: pos.crc });
        }
        if len > h.bytes {
            file.set_len(h.bytes).ctx(IoOp::SetLen, &name)?;
            file.sync().ctx(IoOp::Sync, &name)?;
            report.torn.push(TornTail { base, offset: h.bytes, removed: len - h.bytes, end: ScanEnd::Clean });
        }
        let first_ts = first_timestamp(&file, h.entries).unwrap_or(0);
        let mut seg = seg_record(base, &h, first_ts, &recs);
        for &k in &lost {
            report.lose(&seg, k, interval);
        }
        seg.lost = lost;
        crate::shard::open::write_table(storage, base, interval, &recs)?;
        return Ok(Recovered::Sealed(seg));
    }
    // No journal to go by: the bytes must reproduce the head.
    let (mut sc, end) = scan_file(&file, base, interval, max_stored, h.bytes.min(len), buf).ctx(IoOp::Read, &name)?;
    report.scanned_bytes += sc.pos;
    let matches = len >= h.bytes
        && end == ScanEnd::Clean
        && sc.entries == h.entries
        && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash);
    if !matches {
        drop(file);
        set_aside(storage, base, "quarantined")?;
        report.quarantined.push(Quarantine { base, reason: QuarantineReason::Checksum });
        let end = h.end().max(sc.base + sc.entries);
        report.missing.push(base..end);
        return Ok(Recovered::SetAside(end));
    }
    let vouched = sc.pos;
    let end = sc.run(&file, len, buf).ctx(IoOp::Read, &name)?;
    report.scanned_bytes += sc.pos - vouched;
    ready(storage, file, base, interval, len, sc, end, report)
}

/// True if the head's synced bytes are all in the file and its open chunk
/// (at the start the journal puts it) matches the head.
fn short_or_open_chunk_ok<F: StorageFile>(
    file: &F,
    h: &DurableHead,
    interval: u32,
    closed: &ActiveTable,
    len: u64,
    max_stored: u32,
    buf: &mut Vec<u8>,
) -> Result<bool, F::Error> {
    if len < h.bytes {
        return Ok(false);
    }
    let table = closed.table();
    let Some(pos) = ChunkPos::active(h, interval, &table, crate::num::index32(closed.len())) else {
        return Ok(true);
    };
    let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
    if buf.len() < n {
        buf.resize(n, 0);
    }
    let got = read_exact_at(file, pos.start, &mut buf[..n])?;
    Ok(check_chunk(&buf[..got], &pos, max_stored).is_ok())
}

/// The active segment after a scan: torn tail cut, journal rewritten from
/// the scan, tail synced.
#[allow(clippy::too_many_arguments)]
fn ready<S: Storage>(
    storage: &S,
    file: S::File,
    base: u64,
    interval: u32,
    len: u64,
    sc: Scanner,
    end: ScanEnd,
    report: &mut RecoveryReport,
) -> Result<Recovered<S::File>, Error<S::Error>> {
    let name = segment_file_name(base);
    truncate_tail(&file, &name, base, len, &sc, end, report)?;
    // The head published after open vouches for every scanned byte; after a
    // process crash they may be only in the page cache.
    file.sync().ctx(IoOp::Sync, &name)?;
    let journal = new_journal(storage, base, interval)?;
    Ok(Recovered::Ready(Active { file, journal, journaled: 0, sc }))
}

/// The manifest record of an active segment sealed at its durable head.
fn seg_record(base: u64, h: &DurableHead, first_ts: u64, recs: &[ChunkRec]) -> SegmentMeta {
    let bytes: Vec<u8> = recs.iter().flat_map(ChunkRec::to_bytes).collect();
    SegmentMeta {
        base,
        entries: h.entries,
        bytes: h.bytes,
        first_ts: first_ts.min(h.last_ts),
        last_ts: h.last_ts,
        chunks: crate::num::index32(recs.len()),
        table_crc: crc32fast::hash(&bytes),
        lost: Vec::new(),
    }
}

/// The timestamp of a segment's first entry (0 if it has none).
fn first_timestamp<F: StorageFile>(file: &F, entries: u64) -> Result<u64, F::Error> {
    if entries == 0 {
        return Ok(0);
    }
    let mut h = [0u8; HEADER_LEN];
    let n = read_exact_at(file, 0, &mut h)?;
    Ok(crate::wire::EntryHeader::parse(&h[..n]).map_or(0, |h| h.timestamp))
}

/// The interval a chunk table's header records.
fn table_interval<S: Storage>(storage: &S, base: u64) -> Option<u32> {
    let f = storage.open(&chunk_table_file_name(base), OpenMode::Read).ok()?;
    let mut h = [0u8; TABLE_HEADER];
    let n = read_exact_at(&f, 0, &mut h).ok()?;
    parse_table_header(&h[..n]).ok().map(|(_, i)| i)
}

/// The default `indexing.boundary_interval`, a candidate when rebuilding a
/// manifest of a shard whose head does not record its interval.
const DEFAULT_INTERVAL: u32 = 100;

/// The chunk interval to rebuild a lost manifest with: the one the shard
/// was written with (D-5), since the durable head's checksums depend on it
/// and a wrong one would set intact data aside. The head records it; for
/// a head written before it did, the first candidate that reproduces the
/// head's checksums over the active segment's synced bytes (the rejected
/// manifest's header, a chunk table's header, the configured and the
/// default interval). Without a head to check against, the first candidate.
fn rebuild_interval<S: Storage>(
    storage: &S,
    head: Option<&DurableHead>,
    segments: &[u64],
    candidates: &[Option<u32>],
    cfg: &EngineConfig,
) -> Result<u32, Error<S::Error>> {
    let valid = |i: &u32| (1..=crate::state::MAX_HEAD_INTERVAL).contains(i);
    if let Some(i) = head.map(|h| h.interval).filter(valid) {
        return Ok(i);
    }
    let mut tried: Vec<u32> = Vec::new();
    for c in candidates.iter().flatten().copied().filter(valid) {
        if !tried.contains(&c) {
            tried.push(c);
        }
    }
    let first = tried.first().copied().unwrap_or(cfg.interval);
    let Some(h) = head.filter(|h| h.entries > 0 && segments.binary_search(&h.base).is_ok()) else {
        return Ok(first);
    };
    let name = segment_file_name(h.base);
    let file = storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
    if file.len().ctx(IoOp::Len, &name)? < h.bytes {
        return Ok(first);
    }
    let mut buf = vec![0u8; 64 * 1024];
    for &c in &tried {
        let mut sc = Scanner::new(h.base, c, cfg.max_stored());
        let end = sc.run(&file, h.bytes, &mut buf).ctx(IoOp::Read, &name)?;
        if end == ScanEnd::Clean && sc.entries == h.entries && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash) {
            return Ok(c);
        }
    }
    Ok(first)
}

/// Records a range of lost entries unless a recorded range covers it.
fn note_missing(report: &mut RecoveryReport, r: Range<u64>) {
    if r.is_empty() {
        return;
    }
    if let Some(last) = report.missing.last_mut()
        && last.end == r.start
    {
        last.end = r.end;
        return;
    }
    if !report.missing.iter().any(|m| m.start <= r.start && r.end <= m.end) {
        report.missing.push(r);
    }
}

/// Cuts a segment back to the end of its last valid entry and syncs it.
fn truncate_tail<F: StorageFile>(
    file: &F,
    name: &str,
    base: u64,
    len: u64,
    sc: &Scanner,
    end: ScanEnd,
    report: &mut RecoveryReport,
) -> Result<(), Error<F::Error>> {
    if sc.pos < len {
        file.set_len(sc.pos).ctx(IoOp::SetLen, name)?;
        file.sync().ctx(IoOp::Sync, name)?;
        report.torn.push(TornTail { base, offset: sc.pos, removed: len - sc.pos, end });
    }
    Ok(())
}
