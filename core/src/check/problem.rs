//! What [`check_shard`](super::check_shard) reports: findings, their
//! severity and the problems they describe.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::ops::Range;

use crate::naming::segment_file_name;
use crate::segment::ScanEnd;
use crate::state::STATE_SIZE;
use crate::wire::WireError;

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Information: a state that crashes or earlier repairs leave behind and
    /// that the next open handles (unsynced tails, lost ranges already
    /// recorded, files set aside).
    Note,
    /// Bytes or metadata that fail their checks.
    Damage,
}

/// What a [`Finding`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A chunk of entries does not match its recorded CRC-32.
    Checksum {
        /// Chunk index within the segment.
        chunk: usize,
    },
    /// The entry framing breaks before the recorded or durable end.
    Framing {
        /// Byte offset in the segment.
        offset: u64,
        /// What the scanner found there.
        end: ScanEnd,
    },
    /// A zstd dictionary file fails its checks (CRC, magic, ids, length):
    /// entries compressed with it do not read.
    DictCorrupt {
        /// The dictionary id its name gives.
        id: u32,
        /// What is wrong.
        error: WireError,
    },
    /// Frames name a zstd dictionary the shard directory does not hold:
    /// they do not read.
    DictMissing {
        /// The dictionary id.
        id: u32,
    },
    /// A segment is shorter or longer than its manifest record.
    Length {
        /// Recorded length.
        expected: u64,
        /// Length of the file.
        actual: u64,
    },
    /// The manifest lists a segment whose file does not exist.
    MissingSegment,
    /// A segment file overlaps entries another segment holds.
    Overlap,
    /// Segment files exist but `index.bin` does not.
    ManifestMissing,
    /// `index.bin` fails to decode or validate.
    ManifestCorrupt(WireError),
    /// Segment files exist but `comet.state` does not.
    StateMissing,
    /// `comet.state` has the wrong size.
    StateSize {
        /// Its length.
        len: u64,
    },
    /// The durable head in `comet.state` fails its checks.
    HeadCorrupt(WireError),
    /// The durable head covers more bytes than the active segment has.
    HeadBeyondFile {
        /// Bytes the head covers.
        head_bytes: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// The active segment holds a different number of entries in the bytes
    /// the durable head covers.
    EntryCount {
        /// Entries the head records.
        expected: u64,
        /// Entries found.
        found: u64,
    },
    /// The synced bytes of the active segment do not match the durable
    /// head's checksums (`closed` tells whether the closed chunks or the
    /// open one differ).
    HeadChecksum {
        /// True for the hash over the closed chunks, false for the open
        /// chunk's CRC.
        closed: bool,
    },
    /// The durable head names a segment with entries whose file is gone.
    ActiveMissing,
    /// `offsets.state` has a bad size or header.
    OffsetsCorrupt(WireError),
    /// A named slot of `offsets.state` that lookups cannot reach (a free
    /// slot comes first on its probe chain), or with an invalid offset.
    OffsetsSlot {
        /// Slot index.
        slot: usize,
        /// The group name (lossy UTF-8).
        group: String,
    },
    /// A file could not be read.
    Unreadable {
        /// The file name.
        file: String,
        /// The OS error.
        error: String,
    },
    /// Bytes after the durable head: appended but not (yet) synced.
    UnsyncedTail {
        /// Bytes after the head.
        bytes: u64,
        /// Complete entries among them.
        entries: u64,
        /// How the bytes end.
        end: ScanEnd,
    },
    /// A segment the manifest does not list yet (a rotation was
    /// interrupted); the next open scans and seals it. `Damage` if its
    /// framing is invalid (not merely torn) before the end.
    Unsealed {
        /// Complete entries found.
        entries: u64,
        /// How the scan ended.
        end: ScanEnd,
    },
    /// Entries no segment holds any more (a segment lost or quarantined
    /// earlier).
    Lost,
    /// A segment below the first retained entry (retention was interrupted
    /// before unlinking it); the next open removes it.
    Orphan,
    /// A file recovery or repair set aside (`*.quarantined`, `*.corrupt`).
    SetAside {
        /// The file name.
        file: String,
    },
    /// A leftover `index.bin.tmp` from an interrupted manifest rewrite.
    TempManifest,
    /// The durable head describes a segment the manifest already sealed (a
    /// crash between rotation and the next sync).
    StaleHead,
    /// A slot of `offsets.state` whose claim never completed (a process
    /// killed while claiming it); lookups skip it.
    DeadClaim {
        /// Slot index.
        slot: usize,
    },
    /// A group with two slots; lookups use the first on its probe chain.
    DuplicateGroup {
        /// Slot index of the duplicate.
        slot: usize,
        /// The group name.
        group: String,
    },
    /// A group whose offset is past the durable end (the head was not
    /// written back before a power loss).
    OffsetAhead {
        /// The group name.
        group: String,
        /// Its offset.
        offset: u64,
        /// The durable end.
        end: u64,
    },
    /// The shard was written by the Go package: run `comet import` first.
    ForeignFormat,
    /// Chunks recorded as lost by recovery or repair (their entries read
    /// as lost).
    LostChunks {
        /// How many chunks.
        chunks: u32,
    },
    /// A segment's chunk table (`log-<base>.chunks`) is missing or does
    /// not match the manifest. `Damage` when the file is there but wrong
    /// (checked bytes changed); either way `repair` rewrites it from the
    /// segment when the segment's bytes reproduce the manifest's checksum
    /// of the table.
    ChunkTable {
        /// Why it was rejected, if the file exists.
        error: Option<WireError>,
        /// The segment's bytes reproduce the manifest's checksum of the
        /// table: nothing is lost.
        rebuildable: bool,
    },
    /// The active segment's journal does not match the durable head
    /// (`Damage`: checked bytes changed) or is behind it (a note: the next
    /// open rebuilds it from the segment).
    Journal {
        /// Why it was rejected.
        error: WireError,
    },
    /// A sealed segment holds bytes past the end the manifest records
    /// (appended by something other than comet); readers ignore them,
    /// `repair` moves them to `<segment>.tail`.
    Oversized {
        /// Recorded length.
        expected: u64,
        /// Length of the file.
        actual: u64,
    },
    /// A segment file that no manifest record, durable head or rotation
    /// accounts for (e.g. a stray copy); the next open or `repair` sets it
    /// aside as `*.stray`, never adopting it.
    Stray,
    /// A consumer group's offset does not match its check in
    /// `offsets.state` (a flipped bit, or a consumer killed between its two
    /// stores): the group reads on from the safe value; `repair` stores it.
    OffsetCheck {
        /// Slot index.
        slot: usize,
        /// The group.
        group: String,
        /// The offset stored.
        stored: u64,
        /// The offset used instead (never past the stored one).
        safe: u64,
    },
}

impl Problem {
    /// A short snake-case name for machine-readable reports.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::Checksum { .. } => "checksum",
            Problem::Framing { .. } => "framing",
            Problem::Length { .. } => "length",
            Problem::DictCorrupt { .. } => "dict_corrupt",
            Problem::DictMissing { .. } => "dict_missing",
            Problem::MissingSegment => "missing_segment",
            Problem::Overlap => "overlap",
            Problem::ManifestMissing => "manifest_missing",
            Problem::ManifestCorrupt(_) => "manifest_corrupt",
            Problem::StateMissing => "state_missing",
            Problem::StateSize { .. } => "state_size",
            Problem::HeadCorrupt(_) => "head_corrupt",
            Problem::HeadBeyondFile { .. } => "head_beyond_file",
            Problem::EntryCount { .. } => "entry_count",
            Problem::HeadChecksum { .. } => "head_checksum",
            Problem::ActiveMissing => "active_missing",
            Problem::OffsetsCorrupt(_) => "offsets_corrupt",
            Problem::OffsetsSlot { .. } => "offsets_slot",
            Problem::Unreadable { .. } => "unreadable",
            Problem::UnsyncedTail { .. } => "unsynced_tail",
            Problem::Unsealed { .. } => "unsealed_segment",
            Problem::Lost => "lost_entries",
            Problem::Orphan => "orphan_segment",
            Problem::SetAside { .. } => "set_aside",
            Problem::TempManifest => "temp_manifest",
            Problem::StaleHead => "stale_head",
            Problem::DeadClaim { .. } => "dead_claim",
            Problem::DuplicateGroup { .. } => "duplicate_group",
            Problem::OffsetAhead { .. } => "offset_ahead",
            Problem::ForeignFormat => "foreign_format",
            Problem::LostChunks { .. } => "lost_chunks",
            Problem::ChunkTable { .. } => "chunk_table",
            Problem::Journal { .. } => "journal",
            Problem::Oversized { .. } => "oversized_segment",
            Problem::Stray => "stray_segment",
            Problem::OffsetCheck { .. } => "offset_check",
        }
    }

    /// True for damage inside a segment's checked bytes (what `repair`
    /// records as lost chunks).
    pub fn is_segment_damage(&self) -> bool {
        matches!(
            self,
            Problem::Checksum { .. }
                | Problem::Framing { .. }
                | Problem::Length { .. }
                | Problem::HeadBeyondFile { .. }
                | Problem::EntryCount { .. }
                | Problem::HeadChecksum { .. }
        )
    }
}

/// Describes how a scan ended, in words.
fn scan_end(end: &ScanEnd) -> String {
    match end {
        ScanEnd::Clean => "clean end".into(),
        ScanEnd::ZeroFill => "zero-filled bytes".into(),
        ScanEnd::TornHeader => "a torn entry header".into(),
        ScanEnd::TornPayload => "a torn entry payload".into(),
        ScanEnd::Invalid(e) => format!("an invalid entry header ({e})"),
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Checksum { chunk } => write!(f, "chunk {chunk} does not match its CRC-32"),
            Problem::Framing { offset, end } => write!(f, "framing breaks at byte {offset}: {}", scan_end(end)),
            Problem::Length { expected, actual } => {
                write!(f, "segment is {actual} bytes, the manifest records {expected}")
            }
            Problem::DictCorrupt { id, error } => {
                write!(f, "{} is damaged: {error}", crate::naming::dict_file_name(*id))
            }
            Problem::DictMissing { id } => {
                write!(f, "entries are compressed with {}, which is missing", crate::naming::dict_file_name(*id))
            }
            Problem::MissingSegment => f.write_str("the manifest lists this segment but its file is missing"),
            Problem::Overlap => f.write_str("segment file overlaps entries of another segment"),
            Problem::ManifestMissing => f.write_str("index.bin is missing (the next open rebuilds it)"),
            Problem::ManifestCorrupt(e) => write!(f, "index.bin is corrupt: {e}"),
            Problem::StateMissing => f.write_str("comet.state is missing"),
            Problem::StateSize { len } => write!(f, "comet.state is {len} bytes, expected {STATE_SIZE}"),
            Problem::HeadCorrupt(e) => write!(f, "durable head in comet.state is corrupt: {e}"),
            Problem::HeadBeyondFile { head_bytes, file_len } => {
                write!(f, "durable head covers {head_bytes} bytes but the segment has {file_len}")
            }
            Problem::EntryCount { expected, found } => {
                write!(f, "durable head records {expected} entries, the synced bytes hold {found}")
            }
            Problem::HeadChecksum { closed: true } => {
                f.write_str("closed chunks do not match the durable head's checksum")
            }
            Problem::HeadChecksum { closed: false } => {
                f.write_str("open chunk does not match the durable head's checksum")
            }
            Problem::ActiveMissing => f.write_str("the active segment named by the durable head is missing"),
            Problem::OffsetsCorrupt(e) => write!(f, "offsets.state is corrupt: {e}"),
            Problem::OffsetsSlot { slot, group } => {
                write!(f, "offsets.state slot {slot} (group {group:?}) is unreachable or invalid")
            }
            Problem::Unreadable { file, error } => write!(f, "cannot read {file}: {error}"),
            Problem::UnsyncedTail { bytes, entries, end } => write!(
                f,
                "{bytes} bytes after the durable head are not synced ({entries} complete entries, then {})",
                scan_end(end)
            ),
            Problem::Unsealed { entries, end } => write!(
                f,
                "segment not in the manifest yet ({entries} entries, then {}); the next open seals it",
                scan_end(end)
            ),
            Problem::Lost => f.write_str("entries no longer held by any segment (lost or quarantined earlier)"),
            Problem::Orphan => f.write_str("segment below the first retained entry; the next open removes it"),
            Problem::SetAside { file } => write!(f, "{file} was set aside by an earlier recovery or repair"),
            Problem::TempManifest => f.write_str("leftover index.bin.tmp; the next open removes it"),
            Problem::StaleHead => f.write_str("durable head names a segment the manifest already sealed"),
            Problem::DeadClaim { slot } => write!(f, "offsets.state slot {slot} holds an unfinished claim"),
            Problem::DuplicateGroup { slot, group } => {
                write!(f, "offsets.state slot {slot} duplicates group {group:?}")
            }
            Problem::OffsetAhead { group, offset, end } => {
                write!(f, "group {group:?} is at entry {offset}, past the durable end {end}")
            }
            Problem::ForeignFormat => f.write_str("written by the Go comet package; run `comet import` first"),
            Problem::LostChunks { chunks } => write!(f, "{chunks} chunk(s) recorded as lost earlier"),
            Problem::ChunkTable { error: None, rebuildable: true } => {
                f.write_str("chunk table missing; repair rebuilds it from the segment")
            }
            Problem::ChunkTable { error: Some(e), rebuildable: true } => {
                write!(f, "chunk table does not match the manifest ({e}); repair rebuilds it from the segment")
            }
            Problem::ChunkTable { error, rebuildable: false } => match error {
                Some(e) => {
                    write!(f, "chunk table does not match the manifest ({e}) and neither do the segment's bytes")
                }
                None => f.write_str("chunk table missing and the segment's bytes do not match the manifest"),
            },
            Problem::Journal { error } => {
                write!(f, "the active segment's chunk journal does not match the durable head: {error}")
            }
            Problem::Oversized { expected, actual } => {
                write!(f, "segment is {actual} bytes, the manifest records {expected}; the extra bytes are not comet's")
            }
            Problem::Stray => f.write_str("no manifest record, durable head or rotation accounts for this segment"),
            Problem::OffsetCheck { slot, group, stored, safe } => write!(
                f,
                "offsets.state slot {slot} (group {group:?}): offset {stored} fails its check; the group resumes at {safe}"
            ),
        }
    }
}

/// One problem [`check_shard`](super::check_shard) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Damage or note.
    pub severity: Severity,
    /// The segment (by base entry), if the problem is in or about one.
    pub segment: Option<u64>,
    /// The entries affected, if known.
    pub entries: Option<Range<u64>>,
    /// What was found.
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(base) = self.segment {
            write!(f, "segment {}", segment_file_name(base))?;
            sep = " ";
        }
        if let Some(r) = &self.entries {
            write!(f, "{sep}entries {}..{}", r.start, r.end)?;
            sep = " ";
        }
        if !sep.is_empty() {
            f.write_str(": ")?;
        }
        write!(f, "{}", self.problem)
    }
}
