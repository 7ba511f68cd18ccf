//! Read-only verification of a data directory, and quarantining what it
//! finds damaged.
//!
//! [`verify`] checks, shard by shard, everything that carries a checksum or
//! a structure: `index.bin` (decoded and validated), every sealed segment
//! against its manifest record (length, framing of every entry, every chunk
//! CRC), the durable head in `comet.state` (its line CRC and sequence), the
//! active segment against that head (framing up to the head's `bytes`, its
//! entry count, and the head's `(open chunk CRC, closed-chunks hash)`; also
//! the clean-close snapshot's chunk CRCs when the manifest has one), and
//! every slot of `offsets.state` (header, name checks, probe reachability).
//!
//! It never opens a writer, never takes a lock, never maps a file and never
//! creates one: it only lists directories and reads files, so it is safe on
//! a directory a writer is using (bytes appended after the durable head are
//! reported as an unsynced tail, which is information, not damage).
//!
//! Every problem is a [`Finding`] naming the shard, the segment and the
//! entry range it affects, with a [`Severity`]: `Damage` (data or metadata
//! that fails its check; `comet verify` exits 1) or `Note` (states a crash
//! or earlier repair legitimately leaves behind, which the next open tidies
//! up). [`quarantine_damaged`] renames damaged segments aside under the
//! shard's writer lock; opening the shard afterwards (e.g.
//! [`Client::recover_shard`](crate::Client::recover_shard)) records their
//! entries as lost and carries on.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use comet_core::ShardId;
use comet_core::error::IoOp;
use comet_core::index::{GO_INDEX_MAGIC, MANIFEST_FILE, MANIFEST_TMP, Manifest, SegmentMeta};
use comet_core::segment::{ScanEnd, Scanner, SegmentDamage, verify_segment};
use comet_core::shm;
use comet_core::state::offsets::{self, OFFSETS_FILE, SLOTS, SlotState, SlotView, slot_offset};
use comet_core::state::{Counter, DurableHead, STATE_FILE, STATE_LINE, STATE_SIZE};
use comet_core::storage::{OpenMode, Storage, StorageFile};
use comet_core::wire::{parse_go_segment_file_name, parse_segment_file_name, segment_file_name};

use crate::client::discover;
use crate::error::{Error, Result};
use crate::lock::{Acquire, FileLock, WRITER_LOCK};
use crate::reader::{max_stored, shard_dir};
use crate::storage::{DirFile, DirStorage, sync_dir};

mod problem;
pub use problem::{Finding, Problem, Severity};

/// What [`verify`] checked in one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCheck {
    /// The shard.
    pub shard: ShardId,
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
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Per shard, by id.
    pub shards: Vec<ShardCheck>,
    /// Everything found, shard by shard.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True if nothing is damaged (notes allowed).
    pub fn is_ok(&self) -> bool {
        self.damage().next().is_none()
    }

    /// The findings of severity [`Severity::Damage`].
    pub fn damage(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Damage)
    }

    /// The findings of severity [`Severity::Note`].
    pub fn notes(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Note)
    }
}

/// Largest `storage.max_entry_size` a writer may be configured with; the
/// verifier accepts entries up to it so it never misreads a configured log.
const MAX_ENTRY_CEILING: u32 = 1 << 30;

/// Verifies the data directory `dir` without changing anything (see the
/// module documentation for what is checked). Fails only if `dir` cannot be
/// listed; problems with files are findings.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let root = dir.as_ref();
    let meta = fs::metadata(root).map_err(|e| Error::io(IoOp::Open, root, e))?;
    if !meta.is_dir() {
        return Err(Error::io(IoOp::Open, root, io::Error::other("not a directory")));
    }
    let mut report = VerifyReport::default();
    for shard in discover(root)? {
        let check = verify_shard(&shard_dir(root, shard), shard, &mut report.findings);
        report.shards.push(check);
    }
    Ok(report)
}

/// A segment [`quarantine_damaged`] renamed aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedSegment {
    /// The shard.
    pub shard: ShardId,
    /// The segment's base entry.
    pub base: u64,
    /// Its new path.
    pub path: PathBuf,
    /// The damage that condemned it (first finding).
    pub finding: Finding,
}

/// Renames every segment whose checked bytes are damaged (see
/// [`Problem::is_segment_damage`]) to `<name>.quarantined[.N]`, holding
/// the shard's `writer.lock` and re-verifying under it, and counts it in
/// the shard's `quarantined_segments`. Open the shard afterwards (e.g.
/// [`Client::recover_shard`](crate::Client::recover_shard)) so recovery
/// records the lost entries in the manifest. A shard another writer holds
/// fails with [`Error::Locked`].
pub fn quarantine_damaged(dir: impl AsRef<Path>) -> Result<Vec<QuarantinedSegment>> {
    let root = dir.as_ref();
    let mut out = Vec::new();
    for f in condemned(&verify(root)?.findings) {
        let shard = f.shard;
        if out.iter().any(|q: &QuarantinedSegment| q.shard == shard) {
            continue;
        }
        let sd = shard_dir(root, shard);
        let lock_path = sd.join(WRITER_LOCK);
        let _lock = match FileLock::try_acquire(&lock_path).map_err(|e| Error::io(IoOp::Open, &lock_path, e))? {
            Acquire::Held(l) => l,
            Acquire::Busy(pid) => return Err(Error::Locked { shard, pid }),
        };
        // Nobody writes the shard now: look again and act on what is true.
        let mut findings = Vec::new();
        verify_shard(&sd, shard, &mut findings);
        let mut done: Vec<u64> = Vec::new();
        for f in condemned(&findings) {
            let Some(base) = f.segment.filter(|b| !done.contains(b)) else { continue };
            let path = quarantine(&sd, base)?;
            done.push(base);
            out.push(QuarantinedSegment { shard, base, path, finding: f.clone() });
        }
        if !done.is_empty() {
            sync_dir(&sd).map_err(|e| Error::io(IoOp::SyncDir, &sd, e))?;
            if let Some(state) = crate::shard::map_state(&sd, false)?
                && let Some(words) = state.writable()
            {
                shm::add_counter(words, Counter::Quarantined, done.len() as u64);
            }
        }
    }
    Ok(out)
}

fn condemned(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(|f| f.severity == Severity::Damage && f.segment.is_some() && f.problem.is_segment_damage())
}

/// Renames segment `base` of shard directory `dir` aside; returns the new path.
fn quarantine(dir: &Path, base: u64) -> Result<PathBuf> {
    let name = segment_file_name(base);
    let from = dir.join(name.as_str());
    let mut k = 0u32;
    loop {
        let to =
            if k == 0 { dir.join(format!("{name}.quarantined")) } else { dir.join(format!("{name}.quarantined.{k}")) };
        if !to.exists() {
            fs::rename(&from, &to).map_err(|e| Error::io(IoOp::Rename, &from, e))?;
            return Ok(to);
        }
        k += 1;
    }
}

/// The files of one shard directory, by kind.
#[derive(Default)]
struct Listing {
    segments: Vec<u64>,
    go: bool,
    tmp: bool,
    set_aside: Vec<String>,
}

fn list(dir: &Path) -> io::Result<Listing> {
    let mut l = Listing::default();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
        if let Some(base) = parse_segment_file_name(&name) {
            l.segments.push(base);
        } else if parse_go_segment_file_name(&name).is_some() {
            l.go = true;
        } else if name == MANIFEST_TMP {
            l.tmp = true;
        } else if name.contains(".quarantined") || name.ends_with(".corrupt") {
            l.set_aside.push(name);
        }
    }
    l.segments.sort_unstable();
    l.set_aside.sort();
    Ok(l)
}

/// Collects the findings of one shard.
struct Shard<'a> {
    id: ShardId,
    dir: &'a Path,
    storage: DirStorage,
    out: &'a mut Vec<Finding>,
    check: ShardCheck,
    max_stored: u32,
    buf: Vec<u8>,
}

impl Shard<'_> {
    fn add(&mut self, severity: Severity, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.out.push(Finding { shard: self.id, severity, segment, entries, problem });
    }

    fn damage(&mut self, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.add(Severity::Damage, segment, entries, problem);
    }

    fn note(&mut self, segment: Option<u64>, entries: Option<Range<u64>>, problem: Problem) {
        self.add(Severity::Note, segment, entries, problem);
    }

    fn unreadable(&mut self, segment: Option<u64>, file: &str, e: &io::Error) {
        self.damage(segment, None, Problem::Unreadable { file: file.to_string(), error: e.to_string() });
    }

    /// Opens segment `base` read-only; `Ok(None)` if it does not exist.
    fn open_segment(&mut self, base: u64) -> Option<(DirFile, u64)> {
        let name = segment_file_name(base);
        let opened = self.storage.open(&name, OpenMode::Read).and_then(|f| f.len().map(|len| (f, len)));
        match opened {
            Ok(f) => Some(f),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.unreadable(Some(base), &name, &e);
                }
                None
            }
        }
    }

    /// Reads the manifest: `Ok(None)` if missing; `Err(())` if foreign.
    fn manifest(&mut self, has_segments: bool) -> std::result::Result<Option<Manifest>, ()> {
        match fs::read(self.dir.join(MANIFEST_FILE)) {
            Ok(b) if b.starts_with(&GO_INDEX_MAGIC) => Err(()),
            Ok(b) => match Manifest::decode(&b) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    self.damage(None, None, Problem::ManifestCorrupt(e));
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if has_segments {
                    self.damage(None, None, Problem::ManifestMissing);
                }
                Ok(None)
            }
            Err(e) => {
                self.unreadable(None, MANIFEST_FILE, &e);
                Ok(None)
            }
        }
    }

    /// Reads the durable head, retrying while a live writer is mid-update.
    fn head(&mut self, has_segments: bool) -> Option<DurableHead> {
        let path = self.dir.join(STATE_FILE);
        let mut last = None;
        for attempt in 0..50 {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if has_segments {
                        self.damage(None, None, Problem::StateMissing);
                    }
                    return None;
                }
                Err(e) => {
                    self.unreadable(None, STATE_FILE, &e);
                    return None;
                }
            };
            if bytes.len() != STATE_SIZE {
                self.damage(None, None, Problem::StateSize { len: bytes.len() as u64 });
                return None;
            }
            match DurableHead::decode(&bytes[..STATE_LINE]) {
                Ok((h, _)) => return Some(h),
                Err(e) => last = Some(e),
            }
            if attempt < 49 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        if let Some(e) = last {
            self.damage(None, None, Problem::HeadCorrupt(e));
        }
        None
    }

    /// Checks a sealed segment against its manifest record.
    fn sealed(&mut self, seg: &SegmentMeta, interval: u32) {
        let Some((file, _)) = self.open_segment(seg.base) else {
            if self.still_listed(seg.base) {
                self.damage(Some(seg.base), Some(seg.base..seg.end()), Problem::MissingSegment);
            }
            return;
        };
        self.check.segments += 1;
        let damage = match verify_segment(&file, seg, interval, self.max_stored, &mut self.buf) {
            Ok(d) => d,
            Err(e) => {
                self.unreadable(Some(seg.base), &segment_file_name(seg.base), &e);
                return;
            }
        };
        if damage.is_empty() {
            self.check.entries += seg.entries;
            self.check.bytes += seg.bytes;
        }
        for d in damage {
            match d {
                SegmentDamage::Checksum { chunk, first, end } => {
                    self.damage(Some(seg.base), Some(first..end), Problem::Checksum { chunk });
                }
                SegmentDamage::Framing { entry, offset, end } => {
                    let to = seg.end().max(entry + 1);
                    self.damage(Some(seg.base), Some(entry..to), Problem::Framing { offset, end });
                }
                SegmentDamage::Length { expected, actual } => {
                    self.damage(Some(seg.base), Some(seg.base..seg.end()), Problem::Length { expected, actual });
                }
            }
        }
    }

    /// True unless a fresh read of the manifest no longer lists `base`
    /// (retention deleted it while we were looking).
    fn still_listed(&self, base: u64) -> bool {
        match fs::read(self.dir.join(MANIFEST_FILE)).ok().and_then(|b| Manifest::decode(&b).ok()) {
            Some(m) => m.sealed.iter().any(|s| s.base == base),
            None => true,
        }
    }

    /// Scans a segment the manifest does not list (not the active one).
    fn unsealed(&mut self, base: u64, interval: u32) -> u64 {
        let Some((file, len)) = self.open_segment(base) else { return base };
        self.check.segments += 1;
        let mut sc = Scanner::new(base, interval, self.max_stored);
        match sc.run(&file, len, &mut self.buf) {
            Ok(end) => {
                let severity = if matches!(end, ScanEnd::Invalid(_)) { Severity::Damage } else { Severity::Note };
                let problem = Problem::Unsealed { entries: sc.entries, end };
                self.add(severity, Some(base), Some(base..base + sc.entries), problem);
            }
            Err(e) => self.unreadable(Some(base), &segment_file_name(base), &e),
        }
        base + sc.entries
    }

    /// Checks the active segment against the durable head (and the
    /// clean-close snapshot, if the manifest has one for it).
    fn active(&mut self, h: &DurableHead, m: Option<&Manifest>) {
        let base = h.base;
        let Some((file, len)) = self.open_segment(base) else {
            if h.entries > 0 {
                self.damage(Some(base), Some(base..h.end()), Problem::ActiveMissing);
            }
            return;
        };
        self.check.segments += 1;
        if len < h.bytes {
            let problem = Problem::HeadBeyondFile { head_bytes: h.bytes, file_len: len };
            self.damage(Some(base), Some(base..h.end()), problem);
            return;
        }
        let interval = m.map_or(1, |m| m.interval);
        let mut sc = Scanner::new(base, interval, self.max_stored);
        let name = segment_file_name(base);
        // 1. the clean-close snapshot's chunks
        let snapshot = m.and_then(|m| m.active.as_ref()).filter(|s| s.base == base);
        let mut vouched = 0u64; // entries already verified by chunk CRCs
        if let Some(s) = snapshot {
            if s.bytes > len {
                let problem = Problem::Length { expected: s.bytes, actual: len };
                self.damage(Some(base), Some(base..s.end()), problem);
                return;
            }
            let end = match sc.run(&file, s.bytes, &mut self.buf) {
                Ok(end) => end,
                Err(e) => return self.unreadable(Some(base), &name, &e),
            };
            if end != ScanEnd::Clean || sc.entries != s.entries {
                let at = base + sc.entries;
                self.damage(Some(base), Some(at..h.end().max(s.end())), Problem::Framing { offset: sc.pos, end });
                return;
            }
            let got = sc.chunks.chunks();
            let mut ok = true;
            for (k, want) in s.chunks.iter().enumerate() {
                if got.get(k) != Some(want) {
                    let (first, end) = s.chunk_entries(k, interval);
                    self.damage(Some(base), Some(first..end), Problem::Checksum { chunk: k });
                    ok = false;
                }
            }
            if !ok {
                return;
            }
            vouched = s.entries;
        }
        // 2. the durable head's checksums
        let head_end = if h.bytes >= sc.pos {
            let end = match sc.run(&file, h.bytes, &mut self.buf) {
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
                self.damage(Some(base), Some(base + vouched..h.end().max(base + sc.entries)), problem);
                return;
            }
            if m.is_some() {
                let (open, closed) = sc.chunks.head_crcs();
                let step = u64::from(interval);
                let closed_end = base + h.entries / step * step;
                let mut ok = true;
                if closed != h.closed_hash {
                    let from = base + vouched / step * step;
                    self.damage(Some(base), Some(from..closed_end), Problem::HeadChecksum { closed: true });
                    ok = false;
                }
                if open != h.open_crc {
                    self.damage(Some(base), Some(closed_end..h.end()), Problem::HeadChecksum { closed: false });
                    ok = false;
                }
                if !ok {
                    return;
                }
            }
            h.bytes
        } else {
            self.note(Some(base), Some(base..base + sc.entries), Problem::HeadBehindSnapshot);
            sc.pos
        };
        self.check.entries += sc.entries;
        self.check.bytes += sc.pos;
        // 3. bytes after the durable head: not synced yet
        if len > head_end {
            let (e0, end_entry) = (sc.entries, base + sc.entries);
            match sc.run(&file, len, &mut self.buf) {
                Ok(end) => {
                    let problem = Problem::UnsyncedTail { bytes: len - head_end, entries: sc.entries - e0, end };
                    self.note(Some(base), Some(end_entry..base + sc.entries), problem);
                }
                Err(e) => self.unreadable(Some(base), &name, &e),
            }
        }
    }

    /// Checks every slot of `offsets.state` against the durable end.
    fn offsets(&mut self, durable_end: u64) {
        let bytes = match fs::read(self.dir.join(OFFSETS_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => return self.unreadable(None, OFFSETS_FILE, &e),
        };
        if bytes.is_empty() {
            return; // being created: no groups yet
        }
        let version = match offsets::check_header(&bytes, bytes.len() as u64) {
            Ok(v) => v,
            Err(e) => return self.damage(None, None, Problem::OffsetsCorrupt(e)),
        };
        let states: Vec<Option<SlotState<'_>>> = (0..SLOTS)
            .map(|i| bytes.get(slot_offset(i)..).and_then(|s| SlotView::parse(s).ok()).map(|v| v.state(version)))
            .collect();
        let mut seen: Vec<&[u8]> = Vec::new();
        let mut groups = 0u64;
        let mut findings = Vec::new();
        for (i, st) in states.iter().enumerate() {
            match st {
                Some(SlotState::Free) => {}
                None | Some(SlotState::Unsettled) => findings.push((Severity::Note, Problem::DeadClaim { slot: i })),
                Some(SlotState::Named { name, offset }) => {
                    let group = String::from_utf8_lossy(name).into_owned();
                    let valid = std::str::from_utf8(name).ok().filter(|g| offsets::validate_group(g).is_ok());
                    let reachable = valid.is_some_and(|g| {
                        offsets::probe_order(g)
                            .take_while(|&k| k != i)
                            .all(|k| !matches!(states.get(k), Some(Some(SlotState::Free))))
                    });
                    if !reachable || offset.is_some_and(|o| o < 0) {
                        findings.push((Severity::Damage, Problem::OffsetsSlot { slot: i, group }));
                        continue;
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

/// Verifies one shard directory, appending findings to `out`.
fn verify_shard(dir: &Path, id: ShardId, out: &mut Vec<Finding>) -> ShardCheck {
    let mut s = Shard {
        id,
        dir,
        storage: DirStorage::new(dir),
        out,
        check: ShardCheck { shard: id, segments: 0, entries: 0, bytes: 0, first_entry: 0, durable_end: 0, groups: 0 },
        max_stored: u32::try_from(max_stored(MAX_ENTRY_CEILING)).unwrap_or(u32::MAX),
        buf: vec![0u8; 256 * 1024],
    };
    let listing = match list(dir) {
        Ok(l) => l,
        Err(e) => {
            s.unreadable(None, ".", &e);
            return s.check;
        }
    };
    let has_segments = !listing.segments.is_empty();
    let Ok(manifest) = (if listing.go { Err(()) } else { s.manifest(has_segments) }) else {
        s.note(None, None, Problem::ForeignFormat);
        return s.check;
    };
    for file in &listing.set_aside {
        s.note(None, None, Problem::SetAside { file: file.clone() });
    }
    if listing.tmp {
        s.note(None, None, Problem::TempManifest);
    }
    let head = s.head(has_segments);
    let (first_entry, interval) = manifest.as_ref().map_or((0, 1), |m| (m.first_entry, m.interval));
    s.check.first_entry = first_entry;

    // Sealed segments, and gaps between them.
    let mut expect = first_entry;
    if let Some(m) = &manifest {
        for seg in &m.sealed {
            if seg.base > expect {
                s.note(None, Some(expect..seg.base), Problem::Lost);
            }
            expect = seg.end();
            s.sealed(seg, interval);
        }
    }
    let sealed_end = expect;

    // Files the manifest does not list.
    let sealed_bases: Vec<u64> = manifest.as_ref().map_or_else(Vec::new, |m| m.sealed.iter().map(|x| x.base).collect());
    let active = head.filter(|h| h.base >= sealed_end).map(|h| h.base);
    if head.is_some() && active.is_none() {
        s.note(head.map(|h| h.base), None, Problem::StaleHead);
    }
    for &base in &listing.segments {
        if sealed_bases.binary_search(&base).is_ok() || Some(base) == active {
            continue;
        }
        if base < first_entry {
            s.note(Some(base), None, Problem::Orphan);
        } else if base < sealed_end {
            s.damage(Some(base), None, Problem::Overlap);
        } else if active.is_none_or(|a| base < a) {
            if base > expect {
                s.note(None, Some(expect..base), Problem::Lost);
            }
            expect = s.unsealed(base, interval);
        } else if head.is_some_and(|h| base < h.end()) {
            // Starts inside the active segment's durable entries.
            s.damage(Some(base), None, Problem::Overlap);
        } else {
            // After the active segment: a rotation interrupted before the
            // manifest sealed the active one; the next open seals both.
            s.unsealed(base, interval);
        }
    }

    // The active segment.
    if let Some(h) = head.filter(|h| h.base >= sealed_end) {
        if h.base > expect {
            s.note(None, Some(expect..h.base), Problem::Lost);
        }
        s.active(&h, manifest.as_ref());
    }
    s.check.durable_end = head.map_or(sealed_end, |h| h.end().max(sealed_end));
    let end = s.check.durable_end;
    s.offsets(end);
    s.check
}
