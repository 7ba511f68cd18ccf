//! Opening a shard: recovery from whatever a crash or damage left behind.
//!
//! Open is automatic and bounded. It never panics and never loops, and
//! after a clean close it reads only the manifest and the head. In order:
//!
//! 1. List the directory; remove a leftover `index.bin.tmp`; refuse a
//!    Go-written shard ([`Error::ForeignFormat`]).
//! 2. Load `index.bin`; if it is missing or corrupt (kept as
//!    `index.bin.corrupt`), rebuild it from the segment files: their names
//!    carry their base entry numbers, so numbering is exact.
//! 3. Reconcile sealed segments with the files: a missing one becomes a
//!    reported gap, one with the wrong length is quarantined, files below
//!    the first retained entry are orphans of an interrupted retention pass
//!    and are removed.
//! 4. Scan segments the manifest does not know yet (a crash during
//!    rotation) and seal them, truncating torn tails.
//! 5. Recover the active segment: verify the bytes the durable head covers
//!    against its checksums (from the clean-close snapshot if there is one,
//!    so a clean open scans nothing), then scan the unsynced tail and
//!    truncate it at the first incomplete or invalid entry. A segment whose
//!    synced bytes fail their checksum is quarantined (renamed, counted,
//!    reported) and numbering continues after the durable end.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use super::{EngineConfig, Shard, new_buffer, write_manifest_file};
use crate::error::{Error, IoOp};
use crate::index::{GO_INDEX_MAGIC, MANIFEST_FILE, MANIFEST_TMP, Manifest, SegmentMeta};
use crate::segment::{ScanEnd, Scanner};
use crate::state::{Counter, DurableHead, HeadStore};
use crate::storage::{Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at};
use crate::wire::{Compressor, WireError, parse_go_segment_file_name, parse_segment_file_name, segment_file_name};

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

/// Why a segment was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineReason {
    /// Its length differs from the manifest's record.
    Length {
        /// Recorded length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// Its synced bytes do not match the durable head's checksums, or the
    /// durable head covers bytes the file does not have.
    Checksum,
    /// It overlaps entries of another segment.
    Overlap,
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
    /// `comet.state` held an invalid head.
    pub state_reset: bool,
    /// Bytes read to verify and recover.
    pub scanned_bytes: u64,
    /// Torn tails cut off.
    pub torn: Vec<TornTail>,
    /// Segments quarantined.
    pub quarantined: Vec<Quarantine>,
    /// Entry ranges that are no longer readable (lost or quarantined
    /// segments).
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
            || !self.missing.is_empty()
    }
}

#[derive(Default)]
struct Listing {
    segments: Vec<u64>,
    tmp: bool,
    go: bool,
}

fn list<S: Storage>(storage: &S) -> Result<Listing, Error<S::Error>> {
    let mut l = Listing::default();
    storage
        .list(&mut |name| {
            if let Some(base) = parse_segment_file_name(name) {
                l.segments.push(base);
            } else if parse_go_segment_file_name(name).is_some() {
                l.go = true;
            } else if name == MANIFEST_TMP {
                l.tmp = true;
            }
        })
        .ctx(IoOp::List, "")?;
    l.segments.sort_unstable();
    Ok(l)
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
fn read_file<S: Storage>(storage: &S, name: &str) -> Result<Option<Vec<u8>>, Error<S::Error>> {
    let f = match storage.open(name, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::storage(IoOp::Open, name, e)),
    };
    let len = f.len().ctx(IoOp::Len, name)?;
    let len = usize::try_from(len).map_err(|_| Error::Capacity { what: "manifest", needed: len, available: 0 })?;
    let mut buf = alloc::vec![0u8; len];
    let n = read_exact_at(&f, 0, &mut buf).ctx(IoOp::Read, name)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Renames a segment aside as `<name>.quarantined[.N]`.
fn quarantine<S: Storage>(storage: &S, base: u64) -> Result<(), Error<S::Error>> {
    let name = segment_file_name(base);
    let mut taken = Vec::new();
    storage
        .list(&mut |n| {
            if n.starts_with(name.as_str()) && n.len() > name.len() {
                taken.push(alloc::string::String::from(n));
            }
        })
        .ctx(IoOp::List, "")?;
    let mut target = alloc::format!("{name}.quarantined");
    let mut k = 1;
    while taken.contains(&target) {
        target = alloc::format!("{name}.quarantined.{k}");
        k += 1;
    }
    storage.rename(&name, &target).ctx(IoOp::Rename, &name)?;
    Ok(())
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
        let mut listing = list(&storage)?;
        if listing.tmp {
            match storage.remove(MANIFEST_TMP) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(IoOp::Remove, MANIFEST_TMP, e)),
            }
        }
        let raw_manifest = read_file(&storage, MANIFEST_FILE)?;
        if listing.go || raw_manifest.as_ref().is_some_and(|b| b.starts_with(&GO_INDEX_MAGIC)) {
            return Err(Error::ForeignFormat);
        }
        let mut changed = false;
        // The interval a rejected manifest's header names (a hint for the
        // rebuild, checked against the head before it is trusted).
        let mut interval_hint = None;
        let manifest = match raw_manifest {
            None => None,
            Some(bytes) => match Manifest::decode(&bytes) {
                Ok(m) => Some(m),
                Err(e) => {
                    report.manifest_error = Some(e);
                    interval_hint = Manifest::header_interval(&bytes);
                    storage.rename(MANIFEST_FILE, "index.bin.corrupt").ctx(IoOp::Rename, MANIFEST_FILE)?;
                    None
                }
            },
        };
        let head = head_store.load().ok().map(|line| (DurableHead::decode(&line), line));
        let head = match head {
            Some((Ok((h, _)), _)) => Some(h),
            Some((Err(_), line)) => {
                report.state_reset = line.iter().any(|&b| b != 0);
                None
            }
            None => None,
        };

        let mut m = match manifest {
            Some(m) => m,
            None if listing.segments.is_empty() && report.manifest_error.is_none() => {
                return Self::create(storage, head_store, compressor, cfg, report);
            }
            None => {
                report.rebuilt_manifest = true;
                changed = true;
                let candidates = [interval_hint, Some(cfg.interval), Some(DEFAULT_INTERVAL)];
                let interval = rebuild_interval(&storage, head.as_ref(), &listing.segments, &candidates, &cfg)?;
                let mut m = Manifest::new(interval);
                m.first_entry = listing.segments.first().copied().unwrap_or(0);
                m
            }
        };
        let interval = m.interval;
        let max_stored = cfg.max_stored();
        let mut scan_buf = alloc::vec![0u8; 64 * 1024];

        // 3. sealed segments against the files
        let mut kept = Vec::with_capacity(m.sealed.len());
        for seg in core::mem::take(&mut m.sealed) {
            if listing.segments.binary_search(&seg.base).is_err() {
                report.missing.push(seg.base..seg.end());
                changed = true;
                continue;
            }
            let name = segment_file_name(seg.base);
            let len = storage.open(&name, OpenMode::Read).and_then(|f| f.len()).ctx(IoOp::Len, &name)?;
            if len != seg.bytes {
                quarantine(&storage, seg.base)?;
                listing.segments.retain(|&b| b != seg.base);
                report.quarantined.push(Quarantine {
                    base: seg.base,
                    reason: QuarantineReason::Length { expected: seg.bytes, actual: len },
                });
                report.missing.push(seg.base..seg.end());
                changed = true;
                continue;
            }
            kept.push(seg);
        }
        m.sealed = kept;
        let mut expected = m.sealed_end();
        let mut unsealed = Vec::new();
        for &base in &listing.segments {
            let known = m.sealed.binary_search_by_key(&base, |s| s.base).is_ok();
            if known {
                continue;
            }
            if base < m.first_entry {
                match storage.remove(&segment_file_name(base)) {
                    Ok(()) => report.orphans_removed += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::storage(IoOp::Remove, &segment_file_name(base), e));
                    }
                }
            } else if base < expected {
                quarantine(&storage, base)?;
                report.quarantined.push(Quarantine { base, reason: QuarantineReason::Overlap });
            } else {
                unsealed.push(base);
            }
        }

        // 4. segments written after the manifest's last rotation, but the last
        let active_base = unsealed.pop();
        for base in unsealed {
            if base < expected {
                quarantine(&storage, base)?;
                report.quarantined.push(Quarantine { base, reason: QuarantineReason::Overlap });
                continue;
            }
            if base > expected {
                note_missing(&mut report, expected..base);
            }
            let name = segment_file_name(base);
            let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
            let len = file.len().ctx(IoOp::Len, &name)?;
            let mut sc = Scanner::new(base, interval, max_stored);
            let end = sc.run(&file, len, &mut scan_buf).ctx(IoOp::Read, &name)?;
            report.scanned_bytes += sc.pos;
            truncate_tail(&file, &name, base, len, &sc, end, &mut report)?;
            changed = true;
            if sc.entries == 0 {
                storage.remove(&name).ctx(IoOp::Remove, &name)?;
                continue;
            }
            // The manifest is about to vouch for these bytes: make them
            // durable first (after a process crash they may be only in the
            // page cache).
            file.sync().ctx(IoOp::Sync, &name)?;
            expected = sc.base + sc.entries;
            m.sealed.push(sc.meta());
        }

        // 5. the active segment
        let mut durable_end = expected;
        if let Some(h) = head.filter(|h| h.base >= expected) {
            durable_end = durable_end.max(h.end());
        }
        let mut active: Option<(S::File, Scanner)> = None;
        if let Some(base) = active_base.filter(|&b| b >= expected) {
            if base > expected {
                note_missing(&mut report, expected..base);
            }
            let name = segment_file_name(base);
            let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
            let len = file.len().ctx(IoOp::Len, &name)?;
            let snapshot = m.active.as_ref().filter(|s| s.base == base && s.bytes <= len);
            let mut sc = match snapshot {
                Some(s) => Scanner::resume(s, interval, max_stored),
                None => Scanner::new(base, interval, max_stored),
            };
            let start = sc.pos;
            // New entries share the snapshot's last chunk, and reads hop
            // headers from a chunk's start: that chunk must be intact, or
            // entries synced from now on could never be read.
            let mut verified = match snapshot {
                Some(s) => last_chunk_intact(&file, s, interval, max_stored, &mut scan_buf).ctx(IoOp::Read, &name)?,
                None => true,
            };
            match head {
                // A head older than the clean-close snapshot (the state block
                // was not written back before power loss) covers a prefix the
                // manifest's checksums already vouch for.
                Some(h) if h.base == base && h.bytes >= sc.pos => {
                    let ok = h.bytes <= len && {
                        let end = sc.run(&file, h.bytes, &mut scan_buf).ctx(IoOp::Read, &name)?;
                        end == ScanEnd::Clean
                            && sc.entries == h.entries
                            && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash)
                    };
                    if !ok {
                        verified = false;
                    } else if h.clean && h.bytes == len && sc.pos == start {
                        report.clean = true;
                    }
                }
                // The head names a later segment whose file is gone: the
                // durable end is still `h.end()` (handled by durable_end).
                _ => {}
            }
            if verified {
                // Bytes up to here were synced before the head or the
                // clean-close snapshot recorded them.
                let vouched = sc.pos;
                let end = sc.run(&file, len, &mut scan_buf).ctx(IoOp::Read, &name)?;
                truncate_tail(&file, &name, base, len, &sc, end, &mut report)?;
                // The head published below covers the recovered tail, and a
                // head never covers bytes that were not synced (after a
                // process crash they may be only in the page cache).
                if sc.pos > vouched {
                    file.sync().ctx(IoOp::Sync, &name)?;
                }
                report.scanned_bytes += sc.pos - start;
                durable_end = durable_end.max(sc.base + sc.entries);
                active = Some((file, sc));
            } else {
                report.scanned_bytes += sc.pos - start;
                drop(file);
                quarantine(&storage, base)?;
                report.quarantined.push(Quarantine { base, reason: QuarantineReason::Checksum });
                report.missing.push(base..durable_end.max(sc.base + sc.entries));
                durable_end = durable_end.max(sc.base + sc.entries);
                changed = true;
            }
        } else if let Some(base) = active_base {
            // below `expected`: overlaps sealed data
            quarantine(&storage, base)?;
            report.quarantined.push(Quarantine { base, reason: QuarantineReason::Overlap });
        }
        if m.active
            .as_ref()
            .is_some_and(|s| active.as_ref().is_none_or(|(_, sc)| sc.base != s.base || sc.pos < s.bytes))
        {
            m.active = None;
            changed = true;
        }
        let (file, sc) = match active {
            Some(a) => a,
            None => {
                if durable_end > expected && !report.missing.iter().any(|r| r.end >= durable_end) {
                    report.missing.push(expected..durable_end);
                }
                let name = segment_file_name(durable_end);
                let f = storage.open(&name, OpenMode::CreateNew).ctx(IoOp::Open, &name)?;
                storage.sync_dir().ctx(IoOp::SyncDir, "")?;
                changed = true;
                (f, Scanner::new(durable_end, interval, max_stored))
            }
        };
        if changed {
            m.generation += 1;
            write_manifest_file(&storage, &m)?;
        } else if !report.clean {
            // After a crash the names of the files recovery adopts (created
            // just before it) may not be durable yet; the head published
            // below vouches for entries in them.
            storage.sync_dir().ctx(IoOp::SyncDir, "")?;
        }
        // Timestamps never decrease, also when the active segment is new.
        let ts_floor = m.sealed.last().map_or(0, |s| s.last_ts).max(head.map_or(0, |h| h.last_ts));
        let mut shard = Self::assemble(storage, head_store, compressor, cfg, m, file, sc);
        shard.last_ts = shard.last_ts.max(ts_floor);
        if !report.torn.is_empty() {
            let bytes: u64 = report.torn.iter().map(|t| t.removed).sum();
            shard.bump(Counter::TornTails, report.torn.len() as u64);
            shard.bump(Counter::TornBytes, bytes);
        }
        shard.bump(Counter::Opens, 1);
        shard.bump(Counter::CleanOpens, u64::from(report.clean));
        shard.bump(Counter::ManifestRebuilds, u64::from(report.rebuilt_manifest));
        shard.bump(Counter::Quarantined, report.quarantined.len() as u64);
        shard.bump(Counter::StateResets, u64::from(report.state_reset));
        shard.bump(Counter::OrphansRemoved, report.orphans_removed);
        if changed {
            shard.bump(Counter::ManifestGeneration, 1);
            shard.bump(Counter::ManifestWrites, 1);
        }
        let head = shard.current_head(false);
        shard.publish(head)?;
        Ok((shard, report))
    }

    fn create(
        storage: S,
        head_store: H,
        compressor: C,
        cfg: EngineConfig,
        mut report: RecoveryReport,
    ) -> Result<(Self, RecoveryReport), Error<S::Error>> {
        let name = segment_file_name(0);
        let file = storage.open(&name, OpenMode::Create).ctx(IoOp::Open, &name)?;
        let m = Manifest::new(cfg.interval);
        write_manifest_file(&storage, &m)?;
        report.created = true;
        let sc = Scanner::new(0, cfg.interval, cfg.max_stored());
        let mut shard = Self::assemble(storage, head_store, compressor, cfg, m, file, sc);
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
        m: Manifest,
        file: S::File,
        sc: Scanner,
    ) -> Self {
        let interval = m.interval;
        let rem = u32::try_from(sc.entries % u64::from(interval)).unwrap_or(0);
        let chunk_cap = cfg.buffer_size / (crate::wire::HEADER_LEN * interval as usize) + 2;
        let mut chunks = sc.chunks;
        // A bounded checkpoint capacity is preallocated once, so appends
        // (and rotations, which reuse the table) never grow it.
        if cfg.max_chunks != u32::MAX {
            let want = cfg.max_chunks as usize;
            chunks.reserve(want.saturating_sub(chunks.len()));
        }
        Shard {
            storage,
            head_store,
            compressor,
            cfg,
            manifest: Arc::new(m),
            file,
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
            counters: [0; Counter::ALL.len()],
        }
    }
}

/// The default `indexing.boundary_interval`, a candidate when rebuilding a
/// manifest of a shard whose head does not record its interval.
const DEFAULT_INTERVAL: u32 = 100;

/// The chunk interval to rebuild a lost manifest with: the one the shard
/// was written with (D-5), since the durable head's checksums depend on it
/// and a wrong one would quarantine intact data. The head records it; for
/// a head written before it did, the first candidate that reproduces the
/// head's checksums over the active segment's synced bytes (the rejected
/// manifest's header, the configured and the default interval). Without a
/// head to check against (nothing to verify), the first candidate.
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
    let mut buf = alloc::vec![0u8; 64 * 1024];
    for &c in &tried {
        let mut sc = Scanner::new(h.base, c, cfg.max_stored());
        let end = sc.run(&file, h.bytes, &mut buf).ctx(IoOp::Read, &name)?;
        if end == ScanEnd::Clean && sc.entries == h.entries && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash) {
            return Ok(c);
        }
    }
    Ok(first)
}

/// Whether the last chunk of a clean-close snapshot still matches its
/// recorded checksum and framing (an empty segment has none).
fn last_chunk_intact<F: StorageFile>(
    file: &F,
    s: &SegmentMeta,
    interval: u32,
    max_stored: u32,
    buf: &mut [u8],
) -> Result<bool, F::Error> {
    let Some((k, want)) = s.chunks.iter().enumerate().next_back() else {
        return Ok(true);
    };
    let mut sc = Scanner::new(s.base, interval, max_stored);
    sc.pos = u64::from(want.offset);
    sc.entries = k as u64 * u64::from(interval.max(1));
    let end = sc.run(file, s.bytes, buf)?;
    Ok(end == ScanEnd::Clean && sc.entries == s.entries && sc.chunks.chunks().first() == Some(want))
}

/// Records a range of lost entries unless a recorded range covers it.
fn note_missing(report: &mut RecoveryReport, r: Range<u64>) {
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
