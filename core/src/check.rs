//! Read-only verification of one shard directory: every byte that carries
//! a checksum or a structure, checked the way the read path checks it.
//!
//! [`check_shard`] checks `index.bin` (decoded, size-bounded), every sealed
//! segment chunk by chunk against its chunk table (and the table against
//! the manifest's CRC of it), the durable head in `comet.state`, the active
//! segment's closed chunks against its journal (and the journal against
//! the head's `closed_hash`) and its open chunk against the head's
//! `open_crc`, and every slot of `offsets.state` (header, name checks,
//! offset checks, probe reachability). It never writes, never creates a
//! file and never takes a lock, so it can run beside a live writer (whose
//! unsynced tail it reports as a note).
//!
//! Every problem is a [`Finding`] with a [`Severity`]: `Damage` when bytes
//! that a checksum or structure covers no longer check out (`comet verify`
//! exits 1), `Note` for states a crash or an earlier repair legitimately
//! leaves behind, which the next open or `repair` tidies up without loss.
//! Platforms run it per shard directory (`comet::verify`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::Error;
use crate::go::GO_INDEX_MAGIC;
use crate::index::table::{TABLE_HEADER, TABLE_RECORD, parse_table_header};
use crate::index::{MANIFEST_FILE, MANIFEST_TMP, Manifest, SegmentMeta, Table};
use crate::naming::{chunk_table_file_name, segment_file_name};
use crate::read::{ActiveTable, ChunkPos, check_chunk};
use crate::segment::{ScanEnd, Scanner};
use crate::shard::open::{Listing, manifest_bound, read_bounded};
use crate::state::offsets::{
    self, CLAIMED, FILE_SIZE as OFFSETS_SIZE, OFFSETS_FILE, SLOTS, SlotState, SlotView, slot_offset,
};
use crate::state::{DurableHead, STATE_FILE, STATE_LINE, STATE_SIZE};
use crate::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile, read_exact_at};
use crate::wire::{EntryHeader, HEADER_LEN, WireError};

mod problem;
pub use problem::{Finding, Problem, Severity};

/// What [`check_shard`] checked in one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCheck {
    /// Segment files checked.
    pub segments: u64,
    /// Entries whose bytes passed their checksums.
    pub entries: u64,
    /// Bytes that passed their checksums.
    pub bytes: u64,
    /// First retained entry (from the manifest).
    pub first_entry: u64,
    /// One past the last durable entry (from the head, else the manifest).
    pub durable_end: u64,
    /// Consumer groups with an offset in `offsets.state`.
    pub groups: u64,
    /// The directory held any comet file at all (a manifest, a head or a
    /// segment): tools refuse to call a directory of something else "ok".
    pub has_data: bool,
}

/// Collects the findings of one shard.
struct Checker<'a, S: Storage> {
    storage: &'a S,
    out: &'a mut Vec<Finding>,
    check: ShardCheck,
    max_stored: u32,
    buf: Vec<u8>,
    pause: fn(),
    /// Dictionary ids the checked chunks' frames name, with the entries
    /// that name them (first, one past the last).
    dict_refs: alloc::collections::BTreeMap<u32, Range<u64>>,
}

/// Checks the shard directory `storage` (see the module documentation),
/// appending what it finds to `out`. `pause` is called between re-reads of
/// a head a live writer is updating (e.g. a 1 ms sleep). Never fails:
/// unreadable files are findings.
pub fn check_shard<S: Storage>(storage: &S, out: &mut Vec<Finding>, pause: fn()) -> ShardCheck {
    let mut c = Checker {
        storage,
        out,
        check: ShardCheck::default(),
        max_stored: crate::wire::STORED_LIMIT,
        buf: vec![0u8; 256 * 1024],
        pause,
        dict_refs: alloc::collections::BTreeMap::new(),
    };
    c.run();
    c.check
}

impl<S: Storage> Checker<'_, S> {
    fn add(&mut self, severity: Severity, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.out.push(Finding { severity, segment, entries, problem });
    }

    fn damage(&mut self, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.add(Severity::Damage, segment, entries, problem);
    }

    fn note(&mut self, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.add(Severity::Note, segment, entries, problem);
    }

    fn unreadable(&mut self, segment: Option<u64>, file: &str, e: &S::Error) {
        self.damage(segment, None, Problem::Unreadable { file: file.to_string(), error: format!("{e}") });
    }

    /// Opens a file read-only: `None` (with a finding unless it is missing)
    /// if it cannot be opened.
    fn open(&mut self, name: &str, segment: Option<u64>) -> Option<(S::File, u64)> {
        match self.storage.open(name, OpenMode::Read).and_then(|f| f.len().map(|len| (f, len))) {
            Ok(f) => Some(f),
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    self.unreadable(segment, name, &e);
                }
                None
            }
        }
    }

    fn run(&mut self) {
        let listing = match Listing::read(self.storage, None) {
            Ok(l) => l,
            Err(e) => {
                self.damage(None, None, Problem::Unreadable { file: ".".into(), error: format!("{e}") });
                return;
            }
        };
        let mut set_aside = Vec::new();
        let mut go_kept = false;
        let _ = self.storage.list(&mut |n| {
            if n.contains(".quarantined")
                || n.contains(".stray")
                || n.ends_with(".corrupt")
                || n.ends_with(".rejected")
                || n.ends_with(".tail")
            {
                set_aside.push(n.to_string());
            }
            go_kept |= n == crate::go::GO_INDEX_KEPT;
        });
        set_aside.sort();
        let has_segments = !listing.segments.is_empty();
        let manifest = match self.manifest(&listing) {
            Ok(m) => m,
            Err(()) => {
                self.check.has_data = true;
                self.note(None, None, Problem::ForeignFormat);
                return;
            }
        };
        if listing.go || go_kept {
            self.check.has_data = true;
            self.note(None, None, Problem::ForeignFormat);
            return;
        }
        for file in set_aside {
            self.note(None, None, Problem::SetAside { file });
        }
        if listing.tmp {
            self.note(None, None, Problem::TempManifest);
        }
        let head = self.head(has_segments);
        self.check.has_data = has_segments || manifest.is_some() || head.is_some();
        let (first_entry, interval) =
            manifest.as_ref().map_or((0, head.map_or(1, |h| h.interval.max(1))), |m| (m.first_entry, m.interval));
        self.check.first_entry = first_entry;

        // Sealed segments, and gaps between them.
        let mut expect = first_entry;
        if let Some(m) = &manifest {
            for seg in &m.sealed {
                if seg.base > expect {
                    self.note(None, Some(expect..seg.base), Problem::Lost);
                }
                expect = seg.end();
                self.sealed(seg, interval, &listing);
            }
        }
        let sealed_end = expect;

        // Files the manifest does not list.
        let sealed_bases: Vec<u64> =
            manifest.as_ref().map_or_else(Vec::new, |m| m.sealed.iter().map(|x| x.base).collect());
        let active = head.filter(|h| h.base >= sealed_end).map(|h| h.base);
        if head.is_some() && active.is_none() {
            self.note(head.map(|h| h.base), None, Problem::StaleHead);
        }
        for &base in &listing.segments {
            if sealed_bases.binary_search(&base).is_ok() || Some(base) == active {
                continue;
            }
            if base < first_entry {
                self.note(Some(base), None, Problem::Orphan);
            } else if base < sealed_end {
                self.damage(Some(base), None, Problem::Overlap);
            } else if active.is_none_or(|a| base < a) {
                if base > expect {
                    self.note(None, Some(expect..base), Problem::Lost);
                }
                expect = self.unsealed(base, interval);
            } else if head.is_some_and(|h| base < h.end()) {
                // Starts inside the active segment's durable entries.
                self.damage(Some(base), None, Problem::Overlap);
            } else {
                // After the active segment: a rotation's new file (empty,
                // or written after the head was read or after a power loss
                // kept an older head: its journal names it), or a stray
                // (no table names it, and it does not start where the
                // durable entries end).
                let name = segment_file_name(base);
                if let Some((_, len)) = self.open(&name, Some(base)) {
                    let journal = matches!(self.table_file(base, interval, 0), Ok(Some(_)));
                    let at_end = head.is_some_and(|h| base == h.end());
                    if len > 0 && !journal && !at_end {
                        self.damage(Some(base), None, Problem::Stray);
                    } else if len > 0 {
                        self.unsealed(base, interval);
                    }
                }
            }
        }

        // The active segment.
        if let Some(h) = head.filter(|h| h.base >= sealed_end) {
            if h.base > expect {
                self.note(None, Some(expect..h.base), Problem::Lost);
            }
            self.active(&h, interval);
        }
        self.check.durable_end = head.map_or(sealed_end, |h| h.end().max(sealed_end));
        let end = self.check.durable_end;
        self.offsets(end);
        self.dicts();
    }

    /// Reads the manifest: `Ok(None)` if missing or damaged (a finding);
    /// `Err(())` if Go-written.
    fn manifest(&mut self, listing: &Listing) -> Result<Option<Manifest>, ()> {
        let has_segments = !listing.segments.is_empty();
        let bound = match manifest_bound(self.storage, &listing.segments) {
            Ok(b) => b,
            Err(e) => {
                self.damage(None, None, Problem::Unreadable { file: MANIFEST_FILE.into(), error: format!("{e}") });
                return Ok(None);
            }
        };
        match read_bounded(self.storage, MANIFEST_FILE, bound) {
            Ok(Some(b)) if b.starts_with(&GO_INDEX_MAGIC) => Err(()),
            Ok(Some(b)) => match Manifest::decode(&b) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    self.damage(None, None, Problem::ManifestCorrupt(e));
                    Ok(None)
                }
            },
            Ok(None) => {
                if has_segments {
                    self.damage(None, None, Problem::ManifestMissing);
                }
                Ok(None)
            }
            Err(crate::Error::Capacity { needed, available, .. }) => {
                self.damage(None, None, Problem::ManifestCorrupt(WireError::TooLarge { len: needed, max: available }));
                Ok(None)
            }
            Err(e) => {
                self.damage(None, None, Problem::Unreadable { file: MANIFEST_FILE.into(), error: format!("{e}") });
                Ok(None)
            }
        }
    }

    /// Reads the durable head, retrying while a live writer is mid-update.
    fn head(&mut self, has_segments: bool) -> Option<DurableHead> {
        let Some((file, len)) = self.open(STATE_FILE, None) else {
            if has_segments {
                self.damage(None, None, Problem::StateMissing);
            }
            return None;
        };
        if len != STATE_SIZE as u64 {
            self.damage(None, None, Problem::StateSize { len });
            return None;
        }
        let mut last = None;
        for attempt in 0..50 {
            let mut line = [0u8; STATE_LINE];
            match read_exact_at(&file, 0, &mut line) {
                Ok(_) => {}
                Err(e) => {
                    self.unreadable(None, STATE_FILE, &e);
                    return None;
                }
            }
            if line.iter().all(|&b| b == 0) && !has_segments {
                return None;
            }
            match DurableHead::decode(&line) {
                Ok((h, _)) => return Some(h),
                Err(e) => last = Some(e),
            }
            if attempt < 49 {
                (self.pause)();
            }
        }
        if let Some(e) = last {
            self.damage(None, None, Problem::HeadCorrupt(e));
        }
        None
    }

    /// The records of segment `base`'s chunk table file (at most `max`):
    /// `Ok(None)` if it is missing, `Err` with what is wrong with it.
    fn table_file(&mut self, base: u64, interval: u32, max: u64) -> Result<Option<Vec<u8>>, WireError> {
        let name = chunk_table_file_name(base);
        let Some((file, len)) = self.open(&name, Some(base)) else {
            return Ok(None);
        };
        let mut h = [0u8; TABLE_HEADER];
        let n = read_exact_at(&file, 0, &mut h)
            .map_err(|_| WireError::Truncated { needed: TABLE_HEADER as u64, available: 0 })?;
        let (b, i) = parse_table_header(&h[..n])?;
        if b != base || i != interval {
            return Err(WireError::InvalidField { offset: 8 });
        }
        let want = len.saturating_sub(TABLE_HEADER as u64).min(max.saturating_mul(TABLE_RECORD as u64));
        let mut recs = vec![0u8; usize::try_from(want).unwrap_or(0)];
        let got = read_exact_at(&file, TABLE_HEADER as u64, &mut recs)
            .map_err(|_| WireError::Truncated { needed: want, available: 0 })?;
        recs.truncate(got);
        Ok(Some(recs))
    }

    /// True if the manifest, read again now, no longer lists the sealed
    /// segment at `base` because retention passed it (its first entry lies
    /// beyond the segment).
    fn retired(&mut self, base: u64) -> bool {
        matches!(crate::shard::load_manifest(self.storage), Ok(Some(m)) if m.first_entry > base && m.find_sealed(base).is_none())
    }

    /// Checks a sealed segment: its table against the manifest record, then
    /// every chunk against the table.
    fn sealed(&mut self, seg: &SegmentMeta, interval: u32, listing: &Listing) {
        let name = segment_file_name(seg.base);
        let Some((file, len)) = self.open(&name, Some(seg.base)) else {
            // Retention rewrites the manifest before it unlinks a segment:
            // if the manifest read now no longer lists it, a live writer
            // deleted it while this check ran, which is not damage.
            if !self.retired(seg.base) {
                self.damage(Some(seg.base), Some(seg.base..seg.end()), Problem::MissingSegment);
            }
            return;
        };
        self.check.segments += 1;
        if !seg.lost.is_empty() {
            let chunks = crate::num::index32(seg.lost.len());
            self.note(Some(seg.base), None, Problem::LostChunks { chunks });
        }
        // The table: from its file, or rebuilt from the bytes.
        let from_file = self.table_file(seg.base, interval, u64::from(seg.chunks));
        let table = match from_file {
            Ok(Some(recs)) if seg.check_table(&Table::new(&recs)).is_ok() => Some(recs),
            other => {
                let error = match other {
                    Ok(Some(recs)) => seg.check_table(&Table::new(&recs)).err(),
                    Ok(None) => None,
                    Err(e) => Some(e),
                };
                let mut sc = Scanner::new(seg.base, interval, self.max_stored);
                let scanned = sc.run(&file, seg.bytes.min(len), &mut self.buf).ok().map(|_| sc.seal());
                let rebuilt = scanned.filter(|(m, _)| m.table_crc == seg.table_crc && m.chunks == seg.chunks);
                let rebuildable = rebuilt.is_some();
                let missing = error.is_none() && !listing.has_table(seg.base);
                let severity = if missing && rebuildable { Severity::Note } else { Severity::Damage };
                let entries = (!rebuildable).then(|| seg.base..seg.end());
                self.add(severity, Some(seg.base), entries, Problem::ChunkTable { error, rebuildable });
                rebuilt.map(|(_, t)| t.iter().flat_map(crate::index::ChunkRec::to_bytes).collect())
            }
        };
        if len > seg.bytes {
            self.damage(Some(seg.base), None, Problem::Oversized { expected: seg.bytes, actual: len });
        }
        let Some(table) = table else { return };
        let t = Table::new(&table);
        let mut ok = 0u64;
        for k in 0..seg.chunks {
            if seg.is_lost(k) {
                continue;
            }
            let Some(pos) = ChunkPos::sealed(seg, interval, &t, k) else { continue };
            if pos.end > len {
                self.damage(
                    Some(seg.base),
                    Some(pos.entry_range()),
                    Problem::Length { expected: seg.bytes, actual: len },
                );
                continue;
            }
            match self.chunk_ok(&file, &pos) {
                Ok(true) => ok += u64::from(pos.entries),
                Ok(false) => {
                    self.damage(Some(seg.base), Some(pos.entry_range()), Problem::Checksum { chunk: k as usize })
                }
                Err(e) => return self.unreadable(Some(seg.base), &name, &e),
            }
        }
        self.check.entries += ok;
        if ok == seg.entries {
            self.check.bytes += seg.bytes;
        }
    }

    /// Reads and checks one chunk.
    fn chunk_ok(&mut self, file: &S::File, pos: &ChunkPos) -> Result<bool, S::Error> {
        let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        let got = read_exact_at(file, pos.start, &mut self.buf[..n])?;
        let ok = check_chunk(&self.buf[..got], pos, self.max_stored).is_ok();
        if ok {
            self.note_dict_refs(got, pos.entry_range().start);
        }
        Ok(ok)
    }

    /// Records the dictionaries the frames of a checked chunk (the first
    /// `len` bytes of the buffer, entries from `first`) name. Returns the
    /// bytes and the number of the whole entries it went through.
    fn note_dict_refs(&mut self, len: usize, first: u64) -> (usize, u64) {
        let (mut at, mut entry) = (0usize, first);
        while let Some(h) = self.buf.get(at..len).and_then(|b| EntryHeader::parse(b).ok()) {
            let body = at + HEADER_LEN;
            let Some(payload) = self.buf.get(body..body + h.len as usize) else { break };
            if let Some(id) =
                crate::wire::is_frame(payload).then(|| crate::wire::frame_dict_id(payload).ok()).flatten().flatten()
            {
                let r = self.dict_refs.entry(id).or_insert(entry..entry + 1);
                r.start = r.start.min(entry);
                r.end = r.end.max(entry + 1);
            }
            at = body + h.len as usize;
            entry += 1;
        }
        (at, entry - first)
    }

    /// [`note_dict_refs`](Self::note_dict_refs) over the first `end` bytes
    /// of the active segment starting at entry `base`, read window by
    /// window: for an active segment whose journal could not place its
    /// chunks, once a scan found those bytes whole.
    fn note_dict_refs_scanned(&mut self, file: &S::File, base: u64, end: u64) -> Result<(), S::Error> {
        let (mut off, mut entry) = (0u64, base);
        while off < end {
            let want = self.buf.len().min(usize::try_from(end - off).unwrap_or(usize::MAX));
            let got = read_exact_at(file, off, &mut self.buf[..want])?;
            let (used, n) = self.note_dict_refs(got, entry);
            if used == 0 {
                // One entry longer than the buffer (the scan bounded it).
                let need = self.buf.get(..got).and_then(|b| EntryHeader::parse(b).ok()).map(|h| h.total_len());
                match need.and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n > self.buf.len() && n <= HEADER_LEN + self.max_stored as usize => {
                        self.buf.resize(n, 0);
                    }
                    _ => break,
                }
                continue;
            }
            off += used as u64;
            entry += n;
        }
        Ok(())
    }

    /// Checks every dictionary file (CRC, ids) and that every dictionary
    /// a checked frame names is there.
    fn dicts(&mut self) {
        let ids = match crate::dict::list_dicts(self.storage) {
            Ok(ids) => ids,
            Err(e) => {
                self.damage(None, None, Problem::Unreadable { file: ".".into(), error: format!("{e}") });
                return;
            }
        };
        let mut buf = Vec::new();
        for &id in &ids {
            match crate::dict::load_dict(self.storage, id, &mut buf) {
                Ok(_) => {}
                Err(Error::Corrupt(c)) => {
                    let entries = self.dict_refs.get(&id).cloned();
                    self.damage(None, entries, Problem::DictCorrupt { id, error: c.error });
                }
                Err(e) => {
                    let file = crate::naming::dict_file_name(id).to_string();
                    self.damage(None, None, Problem::Unreadable { file, error: format!("{e}") });
                }
            }
        }
        let refs: Vec<(u32, Range<u64>)> = self.dict_refs.iter().map(|(&id, r)| (id, r.clone())).collect();
        for (id, entries) in refs {
            if ids.binary_search(&id).is_err() {
                self.damage(None, Some(entries), Problem::DictMissing { id });
            }
        }
    }

    /// Scans a segment the manifest does not list (not the active one).
    fn unsealed(&mut self, base: u64, interval: u32) -> u64 {
        let name = segment_file_name(base);
        let Some((file, len)) = self.open(&name, Some(base)) else { return base };
        self.check.segments += 1;
        let mut sc = Scanner::new(base, interval, self.max_stored);
        match sc.run(&file, len, &mut self.buf) {
            Ok(end) => {
                let severity = if matches!(end, ScanEnd::Invalid(_)) { Severity::Damage } else { Severity::Note };
                self.add(
                    severity,
                    Some(base),
                    Some(base..base + sc.entries),
                    Problem::Unsealed { entries: sc.entries, end },
                );
            }
            Err(e) => self.unreadable(Some(base), &name, &e),
        }
        base + sc.entries
    }

    /// Checks the active segment against its journal and the durable head.
    fn active(&mut self, h: &DurableHead, interval: u32) {
        let base = h.base;
        let name = segment_file_name(base);
        let Some((file, len)) = self.open(&name, Some(base)) else {
            if h.entries > 0 {
                self.damage(Some(base), Some(base..h.end()), Problem::ActiveMissing);
            }
            return;
        };
        self.check.segments += 1;
        if len < h.bytes {
            let problem = Problem::HeadBeyondFile { head_bytes: h.bytes, file_len: len };
            self.damage(Some(base), Some(base..h.end()), problem);
        }
        let mut table = ActiveTable::new(base, interval);
        let need = h.entries / u64::from(interval);
        let journal = self.table_file(base, interval, need);
        let accepted = match &journal {
            Ok(Some(recs)) => table.accept(h, recs),
            Ok(None) => Err(WireError::Truncated { needed: need * TABLE_RECORD as u64, available: 0 }),
            Err(e) => Err(*e),
        };
        if let Err(error) = accepted {
            // A journal behind the head (power loss, a failed write) is
            // rebuilt by the next open; one that disagrees was changed.
            let behind = matches!(&journal, Ok(Some(r)) if (r.len() as u64) < need * TABLE_RECORD as u64)
                || matches!(journal, Ok(None));
            let severity = if behind { Severity::Note } else { Severity::Damage };
            self.add(severity, Some(base), None, Problem::Journal { error });
            // Without a journal, the bytes must reproduce the head.
            let mut sc = Scanner::new(base, interval, self.max_stored);
            let end = match sc.run(&file, h.bytes.min(len), &mut self.buf) {
                Ok(end) => end,
                Err(e) => return self.unreadable(Some(base), &name, &e),
            };
            if end != ScanEnd::Clean {
                let at = base + sc.entries;
                self.damage(Some(base), Some(at..h.end().max(at + 1)), Problem::Framing { offset: sc.pos, end });
                return;
            }
            if sc.entries != h.entries {
                let problem = Problem::EntryCount { expected: h.entries, found: sc.entries };
                self.damage(Some(base), Some(base..h.end().max(base + sc.entries)), problem);
                return;
            }
            if let Err(e) = self.note_dict_refs_scanned(&file, base, h.bytes) {
                return self.unreadable(Some(base), &name, &e);
            }
            let (open, closed) = sc.chunks.head_crcs();
            let closed_end = base + need * u64::from(interval);
            if closed != h.closed_hash {
                self.damage(Some(base), Some(base..closed_end), Problem::HeadChecksum { closed: true });
            }
            if open != h.open_crc {
                self.damage(Some(base), Some(closed_end..h.end()), Problem::HeadChecksum { closed: false });
            }
            if closed == h.closed_hash && open == h.open_crc {
                self.check.entries += h.entries;
                self.check.bytes += h.bytes;
            }
        } else {
            let t = table.table();
            let chunks = need + u64::from(!h.entries.is_multiple_of(u64::from(interval)));
            let mut failed = Vec::new();
            let (mut ok_entries, mut ok_bytes) = (0, 0);
            for k in 0..crate::num::index32(chunks) {
                let Some(pos) = ChunkPos::active(h, interval, &t, k) else { continue };
                if pos.end > len {
                    continue; // reported as HeadBeyondFile
                }
                match self.chunk_ok(&file, &pos) {
                    Ok(true) => {
                        ok_entries += u64::from(pos.entries);
                        ok_bytes += pos.len();
                    }
                    Ok(false) => failed.push((k, pos)),
                    Err(e) => return self.unreadable(Some(base), &name, &e),
                }
            }
            // The journal's end offsets are not covered by the head: when
            // the bytes reproduce the head on their own, the journal is
            // what changed.
            let mut sc = Scanner::new(base, interval, self.max_stored);
            let journal_wrong = !failed.is_empty()
                && len >= h.bytes
                && sc.run(&file, h.bytes, &mut self.buf).is_ok_and(|end| end == ScanEnd::Clean)
                && sc.entries == h.entries
                && sc.chunks.head_crcs() == (h.open_crc, h.closed_hash);
            if journal_wrong {
                self.damage(Some(base), None, Problem::Journal { error: WireError::InvalidField { offset: 0 } });
                self.check.entries += h.entries;
                self.check.bytes += h.bytes;
            } else {
                self.check.entries += ok_entries;
                self.check.bytes += ok_bytes;
                for (k, pos) in failed {
                    let problem = if pos.end == h.bytes && u64::from(k) == need {
                        Problem::HeadChecksum { closed: false }
                    } else {
                        Problem::Checksum { chunk: k as usize }
                    };
                    self.damage(Some(base), Some(pos.entry_range()), problem);
                }
            }
        }
        // Bytes after the durable head: not synced yet.
        if len > h.bytes {
            let mut sc = Scanner::new(base, interval, self.max_stored);
            sc.pos = h.bytes;
            sc.entries = h.entries;
            match sc.run(&file, len, &mut self.buf) {
                Ok(end) => {
                    let problem = Problem::UnsyncedTail { bytes: len - h.bytes, entries: sc.entries - h.entries, end };
                    self.note(Some(base), Some(h.end()..base + sc.entries), problem);
                }
                Err(e) => self.unreadable(Some(base), &name, &e),
            }
        }
    }

    /// Checks every slot of `offsets.state` against the durable end.
    fn offsets(&mut self, durable_end: u64) {
        let Some((file, len)) = self.open(OFFSETS_FILE, None) else { return };
        if len == 0 {
            return; // no group has acked yet
        }
        if len != OFFSETS_SIZE as u64 {
            let e = if len < OFFSETS_SIZE as u64 {
                WireError::Truncated { needed: OFFSETS_SIZE as u64, available: len }
            } else {
                WireError::TooLarge { len, max: OFFSETS_SIZE as u64 }
            };
            return self.damage(None, None, Problem::OffsetsCorrupt(e));
        }
        let mut bytes = vec![0u8; OFFSETS_SIZE];
        match read_exact_at(&file, 0, &mut bytes) {
            Ok(n) if n == OFFSETS_SIZE => {}
            Ok(n) => {
                let e = WireError::Truncated { needed: OFFSETS_SIZE as u64, available: n as u64 };
                return self.damage(None, None, Problem::OffsetsCorrupt(e));
            }
            Err(e) => return self.unreadable(None, OFFSETS_FILE, &e),
        }
        if bytes.iter().all(|&b| b == 0) {
            return; // allocated, no group yet
        }
        let version = match offsets::check_header(&bytes, bytes.len() as u64) {
            Ok(v) => v,
            Err(e) => return self.damage(None, None, Problem::OffsetsCorrupt(e)),
        };
        let views: Vec<Option<SlotView<'_>>> =
            (0..SLOTS).map(|i| bytes.get(slot_offset(i)..).and_then(|s| SlotView::parse(s).ok())).collect();
        let states: Vec<Option<SlotState<'_>>> = views.iter().map(|v| v.map(|v| v.state(version))).collect();
        let mut seen: Vec<&[u8]> = Vec::new();
        let mut groups = 0u64;
        let mut findings = Vec::new();
        for (i, st) in states.iter().enumerate() {
            let view = views[i];
            match st {
                Some(SlotState::Free) => {}
                None | Some(SlotState::Unsettled) => {
                    // A claim never completes after an offset was set: a
                    // slot with an offset whose name check fails was changed.
                    let set = view.is_some_and(|v| v.last_update > CLAIMED);
                    let name = view.map_or(String::new(), |v| {
                        String::from_utf8_lossy(v.name.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
                    });
                    if set {
                        findings.push((Severity::Damage, Problem::OffsetsSlot { slot: i, group: name }));
                    } else {
                        findings.push((Severity::Note, Problem::DeadClaim { slot: i }));
                    }
                }
                Some(SlotState::Named { name, offset }) => {
                    let group = String::from_utf8_lossy(name).into_owned();
                    // Lenient on purpose: names from before the printable-only
                    // rule, or from the Go package, still probe the same way.
                    let valid =
                        core::str::from_utf8(name).ok().filter(|g| !g.is_empty() && g.len() <= offsets::MAX_GROUP_LEN);
                    let reachable = valid.is_some_and(|g| {
                        offsets::probe_order(g)
                            .take_while(|&k| k != i)
                            .all(|k| !matches!(states.get(k), Some(Some(SlotState::Free))))
                    });
                    let last = view.map_or(0, |v| v.last_update);
                    if !reachable || offset.is_some_and(|o| o < 0) || last == 0 {
                        findings.push((Severity::Damage, Problem::OffsetsSlot { slot: i, group }));
                        continue;
                    }
                    if let Some(v) = view
                        && last > CLAIMED
                        && !v.offset_intact(version)
                    {
                        let stored = v.offset as u64;
                        let safe = offsets::safe_offset(stored, v.offset_check, version);
                        findings.push((
                            Severity::Damage,
                            Problem::OffsetCheck { slot: i, group: group.clone(), stored, safe },
                        ));
                    }
                    if seen.contains(name) {
                        findings.push((Severity::Note, Problem::DuplicateGroup { slot: i, group }));
                        continue;
                    }
                    seen.push(name);
                    groups += u64::from(offset.is_some());
                    if let Some(o) = offset.and_then(|o| u64::try_from(o).ok())
                        && o > durable_end
                    {
                        findings.push((Severity::Note, Problem::OffsetAhead { group, offset: o, end: durable_end }));
                    }
                }
            }
        }
        self.check.groups = groups;
        for (severity, problem) in findings {
            self.add(severity, None, None, problem);
        }
    }
}

/// True if `name` is a file [`check_shard`] recognises as comet's (for
/// tools deciding whether a directory holds comet data at all).
pub fn is_comet_file(name: &str) -> bool {
    name == MANIFEST_FILE
        || name == STATE_FILE
        || name == OFFSETS_FILE
        || name == MANIFEST_TMP
        || crate::naming::parse_segment_file_name(name).is_some()
        || crate::naming::parse_chunk_table_file_name(name).is_some()
        || crate::naming::parse_dict_file_name(name).is_some()
        || name == crate::dict::DICT_TMP
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;

    use super::*;
    use crate::shard::Shard;
    use crate::sim::{MemDir, MemError, MemFile};
    use crate::state::{FileHeadStore, STATE_FILE};
    use crate::wire::NoCompression;

    type SimShard = Shard<MemDir, FileHeadStore<MemFile>, NoCompression>;

    /// A directory whose first open of `victim` after the manifest was read
    /// lets the shard's retention delete the oldest segment first, as a
    /// live writer may between the checker's manifest read and its open of
    /// a segment.
    struct Racing {
        dir: MemDir,
        victim: String,
        manifest_read: core::cell::Cell<bool>,
        writer: RefCell<Option<SimShard>>,
    }

    impl Storage for Racing {
        type Error = MemError;
        type File = MemFile;
        fn open(&self, name: &str, mode: OpenMode) -> Result<MemFile, MemError> {
            if name == crate::index::MANIFEST_FILE {
                self.manifest_read.set(true);
            }
            if name == self.victim
                && self.manifest_read.get()
                && let Some(mut w) = self.writer.borrow_mut().take()
            {
                assert_eq!(w.delete_oldest(1).unwrap().segments, 1);
            }
            self.dir.open(name, mode)
        }
        fn remove(&self, name: &str) -> Result<(), MemError> {
            self.dir.remove(name)
        }
        fn rename(&self, from: &str, to: &str) -> Result<(), MemError> {
            self.dir.rename(from, to)
        }
        fn list(&self, visit: &mut dyn FnMut(&str)) -> Result<(), MemError> {
            self.dir.list(visit)
        }
        fn sync_dir(&self) -> Result<(), MemError> {
            self.dir.sync_dir()
        }
    }

    fn shard() -> (MemDir, SimShard) {
        let dir = MemDir::new();
        let head = FileHeadStore::new(dir.open(STATE_FILE, OpenMode::Create).unwrap()).unwrap();
        let cfg = crate::sim::small_engine();
        let (mut s, _) = Shard::open(dir.clone(), head, NoCompression, cfg).unwrap();
        for i in 0..40u64 {
            s.append(1 + i, &[[i as u8; 76]]).unwrap();
        }
        s.sync().unwrap();
        (dir, s)
    }

    #[test]
    fn a_segment_retention_deletes_during_the_check_is_not_damage() {
        let (dir, s) = shard();
        let oldest = s.manifest().sealed[0].base;
        let racing = Racing {
            dir: dir.clone(),
            victim: segment_file_name(oldest).to_string(),
            manifest_read: core::cell::Cell::new(false),
            writer: RefCell::new(Some(s)),
        };
        let mut found = Vec::new();
        check_shard(&racing, &mut found, || {});
        assert!(racing.writer.borrow().is_none(), "the race was not staged");
        assert!(found.iter().all(|f| f.severity != Severity::Damage), "{found:?}");

        // The same file missing with the manifest still listing it is damage.
        let (dir, s) = shard();
        let oldest = s.manifest().sealed[0].base;
        drop(s);
        dir.remove(&segment_file_name(oldest)).unwrap();
        let mut found = Vec::new();
        check_shard(&dir, &mut found, || {});
        assert!(found.iter().any(|f| f.problem == Problem::MissingSegment), "{found:?}");
    }

    /// A zstd frame header naming dictionary `id` (4-byte id field, no
    /// content size), then `len - 10` bytes standing for its blocks.
    fn frame_naming(id: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0x28, 0xB5, 0x2F, 0xFD, 0x03, 0x00];
        f.extend_from_slice(&id.to_le_bytes());
        f.resize(len, 0xAB);
        f
    }

    #[test]
    fn dictionary_refs_of_a_scanned_segment_are_found_window_by_window() {
        let dir = MemDir::new();
        let file = dir.open("seg", OpenMode::Create).unwrap();
        let payloads = [vec![7u8; 30], frame_naming(32768, 100), frame_naming(32769, 20), frame_naming(32768, 40)];
        let mut at = 0u64;
        for p in &payloads {
            let h = EntryHeader { len: p.len() as u32, timestamp: 1 };
            file.write_at(at, &h.to_bytes()).unwrap();
            file.write_at(at + HEADER_LEN as u64, p).unwrap();
            at += h.total_len();
        }
        let mut out = Vec::new();
        let mut c = Checker {
            storage: &dir,
            out: &mut out,
            check: ShardCheck::default(),
            max_stored: 1024,
            // Smaller than the second entry: the window must grow for it.
            buf: vec![0u8; 64],
            pause: || {},
            dict_refs: alloc::collections::BTreeMap::new(),
        };
        c.note_dict_refs_scanned(&file, 10, at).unwrap();
        let refs: Vec<(u32, Range<u64>)> = c.dict_refs.iter().map(|(&id, r)| (id, r.clone())).collect();
        assert_eq!(refs, vec![(32768, 11..14), (32769, 12..13)]);
    }
}
