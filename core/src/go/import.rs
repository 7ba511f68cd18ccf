//! Importing a shard directory written by the Go package.
//!
//! The entry framing is the same, so segments are kept byte for byte and
//! only renamed from `log-<16-digit sequence>.comet` to our
//! `log-<20-digit base entry>.comet`; the base entry of each file comes from
//! the Go `index.bin` (`StartEntry`, checked against the files) or, without
//! an index, from the files in sequence order. The import is explicit (the
//! engine refuses Go-written shards with `ForeignFormat` until it ran) and
//! crash-safe — at every step the directory either still looks like Go's
//! (and importing again resumes) or already opens as ours:
//!
//! 1. `index.bin` (Go's) is renamed to `index.go.bin`;
//! 2. each segment, in order, is scanned; a torn tail is cut off (bytes the
//!    framing rejects are first copied to `<name>.rejected`); then the file
//!    is renamed to our name (an empty one is removed);
//! 3. a fresh `comet.state` carries over the Go counters that still mean
//!    something;
//! 4. our `index.bin` is written (atomically), and `index.go.bin` removed.
//!
//! Until step 4 a crash leaves Go names (import again) or, once every file
//! is renamed, our names without a manifest, which our open rebuilds from
//! the names. Consumer offsets (`offsets.state`, a legacy `offsets.bin`, and
//! the Go index's legacy map, returned in the report) are the platform's to
//! carry over.

use alloc::string::String;
use alloc::vec::Vec;

use super::index::{GO_INDEX_MAGIC, GoIndex};
use super::parse_go_segment_file_name;
use crate::error::{Error, IoOp};
use crate::index::{MANIFEST_FILE, Manifest, SegmentMeta};
use crate::naming::{parse_segment_file_name, segment_file_name};
use crate::segment::{ScanEnd, Scanner};
use crate::shard::{EngineConfig, write_manifest_file};
use crate::state::{Counter, DurableHead, STATE_FILE, STATE_SIZE};
use crate::storage::{
    Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile, copy_range, read_exact_at, write_all_at,
};
use crate::wire::{WireError, le};

/// Where the Go index was kept during an import.
pub const GO_INDEX_KEPT: &str = "index.go.bin";

/// Something the import found wrong and how it dealt with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportProblem {
    /// There was no Go index: numbering assumed contiguous from the first
    /// file's position (entry 0 unless files were renamed before).
    NoIndex,
    /// The Go index could not be read; treated as missing.
    IndexUnreadable(WireError),
    /// The index lists a file that is not there: its entries are lost.
    MissingFile {
        /// The Go file name.
        name: String,
        /// Entry range it held.
        first: u64,
        /// One past it.
        end: u64,
    },
    /// The index and the file disagree (start entry or count); the files
    /// decide the count, numbers never overlap.
    IndexDisagrees {
        /// The Go file name.
        name: String,
        /// Start entry per the index.
        index_start: u64,
        /// Entries per the index.
        index_entries: u64,
        /// Start entry used.
        start: u64,
        /// Entries found in the file.
        found: u64,
    },
    /// A torn or invalid tail was cut off the file.
    Truncated {
        /// The Go file name.
        name: String,
        /// Where valid data ended.
        offset: u64,
        /// Bytes removed (copied to `<name>.rejected` when not a torn tail).
        removed: u64,
        /// What the scan found.
        end: ScanEnd,
    },
}

/// One imported segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSegment {
    /// Its Go name (or our name, if a previous run renamed it already).
    pub from: String,
    /// Its base entry.
    pub base: u64,
    /// Its entries.
    pub entries: u64,
    /// Its bytes.
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Nothing to do: the shard is already in our format.
    pub already_native: bool,
    /// Segments now in our format, in entry order.
    pub segments: Vec<ImportedSegment>,
    /// Problems found.
    pub problems: Vec<ImportProblem>,
    /// One past the last imported entry (where numbering continues).
    pub end: u64,
    /// Legacy consumer offsets found in the Go index (group, next entry).
    pub legacy_offsets: Vec<(String, u64)>,
    /// Go counters carried into the new `comet.state`.
    pub counters_carried: bool,
}

/// Go `comet.state` fields (byte offsets) that map onto our counters.
const GO_COUNTERS: [(usize, Counter); 15] = [
    (72, Counter::RawBytes),
    (80, Counter::EntriesAppended),
    (104, Counter::Batches),
    (112, Counter::AppendErrors),
    (136, Counter::CompressedEntries),
    (224, Counter::SyncNanos),
    (256, Counter::SegmentsCreated),
    (264, Counter::SegmentsDeleted),
    (272, Counter::Rotations),
    (312, Counter::Syncs),
    (408, Counter::EntriesRead),
    (512, Counter::RetentionRuns),
    (536, Counter::EntriesDeleted),
    (544, Counter::BytesReclaimed),
    (568, Counter::ProtectedSkips),
];

/// True if the directory holds a Go-written shard (or a half-imported one).
pub fn is_go_shard<S: Storage>(storage: &S) -> Result<bool, Error<S::Error>> {
    let mut go = false;
    storage.list(&mut |n| go |= parse_go_segment_file_name(n).is_some() || n == GO_INDEX_KEPT).ctx(IoOp::List, "")?;
    if go {
        return Ok(true);
    }
    let mut head = [0u8; 4];
    match storage.open(MANIFEST_FILE, OpenMode::Read) {
        Ok(f) => {
            let n = read_exact_at(&f, 0, &mut head).ctx(IoOp::Read, MANIFEST_FILE)?;
            Ok(n == 4 && head == GO_INDEX_MAGIC)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::storage(IoOp::Open, MANIFEST_FILE, e)),
    }
}

fn read_all<S: Storage>(storage: &S, name: &str) -> Result<Option<Vec<u8>>, Error<S::Error>> {
    let f = match storage.open(name, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::storage(IoOp::Open, name, e)),
    };
    let len = f.len().ctx(IoOp::Len, name)?;
    let len = usize::try_from(len).map_err(|_| Error::Capacity { what: "file", needed: len, available: 0 })?;
    let mut buf = alloc::vec![0u8; len];
    let n = read_exact_at(&f, 0, &mut buf).ctx(IoOp::Read, name)?;
    buf.truncate(n);
    Ok(Some(buf))
}

enum Source {
    /// A Go file: its sequence and name.
    Go(u64, String),
    /// Renamed by an earlier, interrupted import: its base.
    Ours(u64),
}

/// Imports the Go-written shard in `storage` (see the module docs).
pub fn import_go_shard<S: Storage>(storage: &S, cfg: &EngineConfig) -> Result<ImportReport, Error<S::Error>> {
    let mut report = ImportReport::default();
    if !is_go_shard(storage)? {
        report.already_native = true;
        return Ok(report);
    }
    // 1. keep the Go index aside
    let manifest_bytes = read_all(storage, MANIFEST_FILE)?;
    if manifest_bytes.as_ref().is_some_and(|b| b.starts_with(&GO_INDEX_MAGIC)) {
        storage.rename(MANIFEST_FILE, GO_INDEX_KEPT).ctx(IoOp::Rename, MANIFEST_FILE)?;
        storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    }
    let index = match read_all(storage, GO_INDEX_KEPT)? {
        Some(b) => match GoIndex::decode(&b) {
            Ok(i) => Some(i),
            Err(e) => {
                report.problems.push(ImportProblem::IndexUnreadable(e));
                None
            }
        },
        None => {
            report.problems.push(ImportProblem::NoIndex);
            None
        }
    };
    if let Some(i) = &index {
        report.legacy_offsets = i.consumers.clone();
    }
    // 2. every segment in order: ours first (renamed earlier), then Go's
    let mut sources = Vec::new();
    storage
        .list(&mut |n| {
            if let Some(seq) = parse_go_segment_file_name(n) {
                sources.push(Source::Go(seq, String::from(n)));
            } else if let Some(base) = parse_segment_file_name(n) {
                sources.push(Source::Ours(base));
            }
        })
        .ctx(IoOp::List, "")?;
    sources.sort_by_key(|s| match s {
        Source::Ours(b) => (0, *b),
        Source::Go(q, _) => (1, *q),
    });
    if let Some(i) = &index {
        for f in &i.files {
            let present = sources.iter().any(|s| matches!(s, Source::Go(_, n) if *n == f.name));
            let renamed_before = sources.iter().any(|s| matches!(s, Source::Ours(b) if *b == f.start_entry));
            if !present && !renamed_before && f.entries > 0 {
                report.problems.push(ImportProblem::MissingFile {
                    name: f.name.clone(),
                    first: f.start_entry,
                    end: f.start_entry.saturating_add(f.entries),
                });
            }
        }
    }
    let max_stored = cfg.max_stored();
    let mut buf = alloc::vec![0u8; 64 * 1024];
    let mut next: Option<u64> = None;
    let mut metas: Vec<SegmentMeta> = Vec::new();
    let interval = cfg.interval;
    for src in &sources {
        let (name, proposed) = match src {
            Source::Ours(b) => (String::from(segment_file_name(*b).as_str()), Some(*b)),
            Source::Go(_, n) => (n.clone(), index.as_ref().and_then(|i| i.file(n)).map(|f| f.start_entry)),
        };
        let base = match (proposed, next) {
            (Some(p), Some(n)) if p < n => n,
            (Some(p), _) => p,
            (None, Some(n)) => n,
            (None, None) => 0,
        };
        let file = storage.open(&name, OpenMode::ReadWrite).ctx(IoOp::Open, &name)?;
        let len = file.len().ctx(IoOp::Len, &name)?;
        let mut sc = Scanner::new(base, interval, max_stored);
        let end = sc.run(&file, len, &mut buf).ctx(IoOp::Read, &name)?;
        if sc.pos < len {
            if matches!(end, ScanEnd::Invalid(_)) {
                save_rejected(storage, &file, &name, sc.pos, len, &mut buf)?;
            }
            file.set_len(sc.pos).ctx(IoOp::SetLen, &name)?;
            file.sync().ctx(IoOp::Sync, &name)?;
            report.problems.push(ImportProblem::Truncated {
                name: name.clone(),
                offset: sc.pos,
                removed: len - sc.pos,
                end,
            });
        }
        if let (Source::Go(..), Some(f)) = (src, index.as_ref().and_then(|i| i.file(&name)))
            && (f.start_entry != base || (f.entries != sc.entries && sc.entries > 0))
        {
            {
                report.problems.push(ImportProblem::IndexDisagrees {
                    name: name.clone(),
                    index_start: f.start_entry,
                    index_entries: f.entries,
                    start: base,
                    found: sc.entries,
                });
            }
        }
        drop(file);
        if sc.entries == 0 {
            storage.remove(&name).ctx(IoOp::Remove, &name)?;
            next = Some(next.unwrap_or(base).max(base));
            continue;
        }
        if let Source::Go(..) = src {
            let ours = segment_file_name(base);
            storage.rename(&name, &ours).ctx(IoOp::Rename, &name)?;
        }
        report.segments.push(ImportedSegment { from: name, base, entries: sc.entries, bytes: sc.pos });
        next = Some(sc.base + sc.entries);
        let (meta, table) = sc.seal();
        crate::shard::write_table(storage, base, interval, &table)?;
        metas.push(meta);
    }
    storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    // Never reuse a number the Go process handed out, even if its file is gone.
    let index_end = index
        .as_ref()
        .map_or(0, |i| i.files.iter().map(|f| f.start_entry.saturating_add(f.entries)).fold(i.current_entry, u64::max));
    let end = next.unwrap_or(0).max(index_end);
    report.end = end;
    // 3. a fresh comet.state with the Go counters that still mean something
    report.counters_carried = write_state(storage, end)?;
    // 4. our manifest, last
    let mut m = Manifest::new(interval);
    m.first_entry = metas.first().map_or(end, |s| s.base);
    m.generation = 1;
    m.sealed = metas;
    write_manifest_file(storage, &m)?;
    match storage.remove(GO_INDEX_KEPT) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::storage(IoOp::Remove, GO_INDEX_KEPT, e)),
    }
    storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    Ok(report)
}

/// Copies bytes `from..to` of a segment to `<name>.rejected`.
fn save_rejected<S: Storage>(
    storage: &S,
    file: &S::File,
    name: &str,
    from: u64,
    to: u64,
    buf: &mut [u8],
) -> Result<(), Error<S::Error>> {
    let target = alloc::format!("{name}.rejected");
    let out = storage.open(&target, OpenMode::Truncate).ctx(IoOp::Open, &target)?;
    copy_range(file, name, from..to, &out, &target, buf)
}

/// Replaces a Go `comet.state` with ours: an empty durable head at `end`
/// and the counters that carry over. Returns whether any were carried.
fn write_state<S: Storage>(storage: &S, end: u64) -> Result<bool, Error<S::Error>> {
    let old = read_all(storage, STATE_FILE)?;
    let go = old.filter(|b| b.len() == STATE_SIZE && le::u64_at(b, 0) == Some(1));
    let mut block = alloc::vec![0u8; STATE_SIZE];
    let head = DurableHead { base: end, ..DurableHead::default() };
    block[..64].copy_from_slice(&head.encode(2));
    if let Some(go) = &go {
        for (at, c) in GO_COUNTERS {
            if let Some(v) = le::u64_at(go, at) {
                block[c.offset()..c.offset() + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    let tmp = "comet.state.tmp";
    let f = storage.open(tmp, OpenMode::Truncate).ctx(IoOp::Open, tmp)?;
    write_all_at(&f, 0, &[&block]).ctx(IoOp::Write, tmp)?;
    f.sync().ctx(IoOp::Sync, tmp)?;
    storage.rename(tmp, STATE_FILE).ctx(IoOp::Rename, STATE_FILE)?;
    Ok(go.is_some())
}

#[cfg(test)]
mod tests;
