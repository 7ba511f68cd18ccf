//! `comet.state`: 1 KiB, sixteen 64-byte lines.
//!
//! Line 0 holds the magic, the version and the durable head, written under
//! a seqlock (field table: [`DurableHead`]). Lines 1..=15 hold `u64` metric
//! counters ([`Counter`]), shared across processes with atomic adds by the
//! platforms. The byte diagram is in `docs/FORMAT.md`.

use crate::wire::WireError;
use crate::wire::le;

/// File name of the state block.
pub const STATE_FILE: &str = "comet.state";
/// Size of `comet.state` in bytes.
pub const STATE_SIZE: usize = 1024;
/// Size of one line.
pub const STATE_LINE: usize = 64;
/// Magic bytes at offset 0 (the Go package's file starts with `01 00 00 00`).
pub const STATE_MAGIC: [u8; 4] = *b"CMTS";
/// Current layout version.
pub const STATE_VERSION: u32 = 1;
/// Byte offset of the head line.
pub const HEAD_LINE: usize = 0;
/// Byte offset of the seqlock counter inside the head line.
pub const SEQ_OFFSET: usize = 8;

mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const SEQ: usize = 8;
    pub const BASE: usize = 16;
    pub const ENTRIES: usize = 24;
    pub const BYTES: usize = 32;
    pub const OPEN_CRC: usize = 40;
    pub const CLOSED_HASH: usize = 44;
    pub const FLAGS: usize = 48;
    pub const LAST_TS: usize = 52; // u64 at 52 is unaligned; stored as two u32
    pub const LINE_CRC: usize = 60;
}

const FLAG_CLEAN: u32 = 1;
/// Flags bits 8..32 record the shard's chunk interval (0: not recorded, a
/// head written before it was).
const INTERVAL_SHIFT: u32 = 8;
/// The largest chunk interval a head can record.
pub const MAX_HEAD_INTERVAL: u32 = u32::MAX >> INTERVAL_SHIFT;

/// The durable head of a shard: how much of the active segment is synced,
/// with checksums covering every synced byte.
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `CMTS` |
/// | 4 | 4 | version = 1 |
/// | 8 | 8 | seqlock sequence (even when stable) |
/// | 16 | 8 | base entry of the active segment |
/// | 24 | 8 | durable entries in the active segment |
/// | 32 | 8 | durable bytes in the active segment |
/// | 40 | 4 | CRC-32 of the open chunk `[chunk start, bytes)` |
/// | 44 | 4 | CRC-32 over the closed chunks' CRC-32s (LE, in order) |
/// | 48 | 4 | flags: bit 0 = closed cleanly; bits 8..32 = chunk interval (0 = not recorded) |
/// | 52 | 8 | timestamp of the last durable entry (two LE u32 halves, low first) |
/// | 60 | 4 | CRC-32 of bytes 0..60 with the seq field zeroed |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableHead {
    /// Base entry number of the active segment.
    pub base: u64,
    /// Entries of the active segment that are synced.
    pub entries: u64,
    /// Bytes of the active segment that are synced.
    pub bytes: u64,
    /// CRC-32 of the bytes of the open (last, incomplete) chunk.
    pub open_crc: u32,
    /// CRC-32 over the CRC-32s of the closed chunks.
    pub closed_hash: u32,
    /// Timestamp of the last durable entry (0 if none).
    pub last_ts: u64,
    /// True when written by a clean close.
    pub clean: bool,
    /// The shard's chunk interval, which the two checksums depend on (0
    /// in heads written before it was recorded). Lets recovery rebuild a
    /// lost manifest with the interval the shard was written with.
    pub interval: u32,
}

impl DurableHead {
    /// One past the last durable entry number.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.entries)
    }

    /// Encodes the head line with sequence number `seq`.
    pub fn encode(&self, seq: u64) -> [u8; STATE_LINE] {
        let mut b = [0u8; STATE_LINE];
        b[field::MAGIC..field::MAGIC + 4].copy_from_slice(&STATE_MAGIC);
        le::put_u32(&mut b, field::VERSION, STATE_VERSION);
        le::put_u64(&mut b, field::BASE, self.base);
        le::put_u64(&mut b, field::ENTRIES, self.entries);
        le::put_u64(&mut b, field::BYTES, self.bytes);
        le::put_u32(&mut b, field::OPEN_CRC, self.open_crc);
        le::put_u32(&mut b, field::CLOSED_HASH, self.closed_hash);
        let interval = if self.interval <= MAX_HEAD_INTERVAL { self.interval } else { 0 };
        le::put_u32(&mut b, field::FLAGS, u32::from(self.clean) | interval << INTERVAL_SHIFT);
        #[allow(clippy::cast_possible_truncation)]
        {
            le::put_u32(&mut b, field::LAST_TS, self.last_ts as u32);
            le::put_u32(&mut b, field::LAST_TS + 4, (self.last_ts >> 32) as u32);
        }
        let crc = crc32fast::hash(&b[..field::LINE_CRC]);
        le::put_u32(&mut b, field::LINE_CRC, crc);
        le::put_u64(&mut b, field::SEQ, seq);
        b
    }

    /// Decodes and validates a head line. Returns the head and its sequence.
    #[allow(clippy::cast_possible_truncation)] // field offsets are < 64
    pub fn decode(line: &[u8]) -> Result<(DurableHead, u64), WireError> {
        if line.len() < STATE_LINE {
            return Err(WireError::Truncated { needed: STATE_LINE as u64, available: line.len() as u64 });
        }
        le::magic_version(line, &STATE_MAGIC, STATE_VERSION..=STATE_VERSION)?;
        let get32 = |at| le::u32_at(line, at).unwrap_or(0);
        let get64 = |at| le::u64_at(line, at).unwrap_or(0);
        let seq = get64(field::SEQ);
        let mut copy = [0u8; STATE_LINE];
        copy.copy_from_slice(&line[..STATE_LINE]);
        le::put_u64(&mut copy, field::SEQ, 0);
        let actual = crc32fast::hash(&copy[..field::LINE_CRC]);
        let expected = get32(field::LINE_CRC);
        if actual != expected && !cfg!(fuzzing) {
            return Err(WireError::ChecksumMismatch { expected, actual });
        }
        if seq % 2 == 1 {
            return Err(WireError::InvalidField { offset: field::SEQ as u32 });
        }
        let flags = get32(field::FLAGS);
        if flags & !(FLAG_CLEAN | MAX_HEAD_INTERVAL << INTERVAL_SHIFT) != 0 {
            return Err(WireError::InvalidField { offset: field::FLAGS as u32 });
        }
        let head = DurableHead {
            base: get64(field::BASE),
            entries: get64(field::ENTRIES),
            bytes: get64(field::BYTES),
            open_crc: get32(field::OPEN_CRC),
            closed_hash: get32(field::CLOSED_HASH),
            last_ts: u64::from(get32(field::LAST_TS)) | u64::from(get32(field::LAST_TS + 4)) << 32,
            clean: flags & FLAG_CLEAN != 0,
            interval: flags >> INTERVAL_SHIFT,
        };
        if head.base.checked_add(head.entries).is_none() || head.bytes < head.entries.saturating_mul(12) {
            return Err(WireError::InvalidField { offset: field::ENTRIES as u32 });
        }
        Ok((head, seq))
    }
}

/// The full `comet.state` image a new file is created with: `head` in the
/// head line (sequence 2), every counter 0; all zeros without a head (a
/// head line of zeros means "no valid head": recovery scans). Files are
/// written whole from such an image, never created sparse, so mapping
/// them can never hit an unallocated page on a full disk.
pub fn state_image(head: Option<&DurableHead>) -> [u8; STATE_SIZE] {
    let mut b = [0u8; STATE_SIZE];
    if let Some(h) = head {
        b[HEAD_LINE..HEAD_LINE + STATE_LINE].copy_from_slice(&h.encode(2));
    }
    b
}

/// Where the shard engine publishes its durable head.
///
/// `comet` implements it over the shared mapping with a seqlock of atomics,
/// so readers in any process see a consistent head; [`FileHeadStore`]
/// implements it with `read_at`/`write_at` for the simulator and
/// `comet-embedded`.
pub trait HeadStore {
    /// The storage error type.
    type Error;

    /// Reads the raw head line (validated by [`DurableHead::decode`]).
    fn load(&self) -> Result<[u8; STATE_LINE], Self::Error>;

    /// Publishes `head` so that readers see either the old or the new value.
    fn store(&mut self, head: &DurableHead) -> Result<(), Self::Error>;

    /// Makes the last stored head durable (called on close only; the head
    /// need not be durable for correctness, recovery rescans when stale).
    fn sync(&self) -> Result<(), Self::Error>;
}

/// A [`HeadStore`] over a `StorageFile` (1 KiB `comet.state`), written with
/// `write_at`.
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct FileHeadStore<F> {
    file: F,
    seq: u64,
}

#[cfg(feature = "alloc")]
impl<F: crate::storage::StorageFile> FileHeadStore<F> {
    /// Wraps an open `comet.state` (extending it to 1 KiB if shorter).
    pub fn new(file: F) -> Result<Self, F::Error> {
        if file.len()? < STATE_SIZE as u64 {
            file.set_len(STATE_SIZE as u64)?;
        }
        let mut line = [0u8; STATE_LINE];
        crate::storage::read_exact_at(&file, HEAD_LINE as u64, &mut line)?;
        let seq = le::u64_at(&line, SEQ_OFFSET).unwrap_or(0);
        Ok(FileHeadStore { file, seq: seq.wrapping_add(seq & 1) })
    }

    /// The underlying file.
    pub fn file(&self) -> &F {
        &self.file
    }
}

#[cfg(feature = "alloc")]
impl<F: crate::storage::StorageFile> HeadStore for FileHeadStore<F> {
    type Error = F::Error;

    fn load(&self) -> Result<[u8; STATE_LINE], F::Error> {
        let mut line = [0u8; STATE_LINE];
        crate::storage::read_exact_at(&self.file, HEAD_LINE as u64, &mut line)?;
        Ok(line)
    }

    fn store(&mut self, head: &DurableHead) -> Result<(), F::Error> {
        self.seq = self.seq.wrapping_add(2);
        let line = head.encode(self.seq);
        crate::storage::write_all_at(&self.file, HEAD_LINE as u64, &[&line])
    }

    fn sync(&self) -> Result<(), F::Error> {
        self.file.sync()
    }
}

/// The metric counters of `comet.state`, one `u64` each, at
/// `64 + 8 * index` (lines 1..=15). Platforms add to them atomically so the
/// numbers of one shard add up across processes and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u16)]
pub enum Counter {
    /// Bumped whenever `index.bin` is replaced (readers reload on change).
    ManifestGeneration = 0,
    /// Entries appended.
    EntriesAppended,
    /// Append calls that succeeded.
    Batches,
    /// Payload bytes before compression.
    RawBytes,
    /// Payload bytes as stored.
    StoredBytes,
    /// Entries stored as zstd frames.
    CompressedEntries,
    /// Append calls that failed.
    AppendErrors,
    /// Timestamp of the last append (ns), stored not added.
    LastAppendNs,
    /// Data syncs.
    Syncs,
    /// Failed syncs.
    SyncErrors,
    /// Nanoseconds spent in data syncs.
    SyncNanos,
    /// Write buffer flushes to the file.
    Flushes,
    /// Segment rotations.
    Rotations,
    /// Segments created.
    SegmentsCreated,
    /// Manifest rewrites.
    ManifestWrites,
    /// Failed manifest rewrites.
    ManifestWriteErrors,
    /// Shard opens for writing.
    Opens,
    /// Opens that found a clean close (no scan needed).
    CleanOpens,
    /// Torn tails truncated by recovery.
    TornTails,
    /// Bytes removed by torn-tail truncation.
    TornBytes,
    /// Manifests rebuilt from segment files.
    ManifestRebuilds,
    /// Segments quarantined for failing their checksums.
    Quarantined,
    /// State blocks reset because they were invalid.
    StateResets,
    /// Orphan segment files removed (left by an interrupted retention).
    OrphansRemoved,
    /// Retention passes.
    RetentionRuns,
    /// Segments deleted by retention.
    SegmentsDeleted,
    /// Bytes reclaimed by retention.
    BytesReclaimed,
    /// Entries deleted by retention.
    EntriesDeleted,
    /// Segments kept because a consumer group had not acked them.
    ProtectedSkips,
    /// Segments deleted despite consumer protection (hard cap).
    ForcedDeletions,
    /// Timestamp of the oldest retained entry (ns), stored not added.
    OldestEntryNs,
    /// Retention errors.
    RetentionErrors,
    /// Entries returned to consumers in the shard's writer process (reads
    /// elsewhere never write `comet.state`).
    EntriesRead,
    /// Ack calls that moved an offset, in the shard's writer process.
    Acks,
    /// Read errors.
    ReadErrors,
    /// Reader mappings replaced because a file grew.
    ReaderRemaps,
    /// Failed writes of the active segment's chunk-table journal (retried
    /// at the next sync; readers fall back to the segment's bytes).
    JournalErrors,
    /// Chunks recorded as lost by recovery or repair.
    LostChunks,
    /// Segment files nothing accounts for, set aside by recovery or repair.
    StraysSetAside,
}

impl Counter {
    /// Every counter, in layout order.
    pub const ALL: [Counter; 39] = [
        Counter::ManifestGeneration,
        Counter::EntriesAppended,
        Counter::Batches,
        Counter::RawBytes,
        Counter::StoredBytes,
        Counter::CompressedEntries,
        Counter::AppendErrors,
        Counter::LastAppendNs,
        Counter::Syncs,
        Counter::SyncErrors,
        Counter::SyncNanos,
        Counter::Flushes,
        Counter::Rotations,
        Counter::SegmentsCreated,
        Counter::ManifestWrites,
        Counter::ManifestWriteErrors,
        Counter::Opens,
        Counter::CleanOpens,
        Counter::TornTails,
        Counter::TornBytes,
        Counter::ManifestRebuilds,
        Counter::Quarantined,
        Counter::StateResets,
        Counter::OrphansRemoved,
        Counter::RetentionRuns,
        Counter::SegmentsDeleted,
        Counter::BytesReclaimed,
        Counter::EntriesDeleted,
        Counter::ProtectedSkips,
        Counter::ForcedDeletions,
        Counter::OldestEntryNs,
        Counter::RetentionErrors,
        Counter::EntriesRead,
        Counter::Acks,
        Counter::ReadErrors,
        Counter::ReaderRemaps,
        Counter::JournalErrors,
        Counter::LostChunks,
        Counter::StraysSetAside,
    ];

    /// Byte offset of the counter in `comet.state` (8-aligned).
    pub const fn offset(self) -> usize {
        STATE_LINE + 8 * self as usize
    }

    /// True for gauges that are stored rather than added.
    pub const fn is_gauge(self) -> bool {
        matches!(self, Counter::LastAppendNs | Counter::OldestEntryNs)
    }

    /// Snake-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::ManifestGeneration => "manifest_generation",
            Counter::EntriesAppended => "entries_appended",
            Counter::Batches => "batches",
            Counter::RawBytes => "raw_bytes",
            Counter::StoredBytes => "stored_bytes",
            Counter::CompressedEntries => "compressed_entries",
            Counter::AppendErrors => "append_errors",
            Counter::LastAppendNs => "last_append_ns",
            Counter::Syncs => "syncs",
            Counter::SyncErrors => "sync_errors",
            Counter::SyncNanos => "sync_nanos",
            Counter::Flushes => "flushes",
            Counter::Rotations => "rotations",
            Counter::SegmentsCreated => "segments_created",
            Counter::ManifestWrites => "manifest_writes",
            Counter::ManifestWriteErrors => "manifest_write_errors",
            Counter::Opens => "opens",
            Counter::CleanOpens => "clean_opens",
            Counter::TornTails => "torn_tails",
            Counter::TornBytes => "torn_bytes",
            Counter::ManifestRebuilds => "manifest_rebuilds",
            Counter::Quarantined => "quarantined_segments",
            Counter::StateResets => "state_resets",
            Counter::OrphansRemoved => "orphans_removed",
            Counter::RetentionRuns => "retention_runs",
            Counter::SegmentsDeleted => "segments_deleted",
            Counter::BytesReclaimed => "bytes_reclaimed",
            Counter::EntriesDeleted => "entries_deleted",
            Counter::ProtectedSkips => "protected_skips",
            Counter::ForcedDeletions => "forced_deletions",
            Counter::OldestEntryNs => "oldest_entry_ns",
            Counter::RetentionErrors => "retention_errors",
            Counter::EntriesRead => "entries_read",
            Counter::Acks => "acks",
            Counter::ReadErrors => "read_errors",
            Counter::ReaderRemaps => "reader_remaps",
            Counter::JournalErrors => "journal_errors",
            Counter::LostChunks => "lost_chunks",
            Counter::StraysSetAside => "strays_set_aside",
        }
    }
}

const _: () = {
    assert!(Counter::StraysSetAside.offset() + 8 <= STATE_SIZE);
    assert!(Counter::ALL.len() == Counter::StraysSetAside as usize + 1);
    assert!(field::LINE_CRC + 4 == STATE_LINE);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DurableHead {
        DurableHead {
            base: 600,
            entries: 42,
            bytes: 4242,
            open_crc: 0xDEAD_BEEF,
            closed_hash: 0x1234_5678,
            last_ts: 0x0102_0304_0506_0708,
            clean: true,
            interval: 100,
        }
    }

    #[test]
    fn head_roundtrip() {
        let line = sample().encode(6);
        assert_eq!(&line[..4], b"CMTS");
        assert_eq!(DurableHead::decode(&line), Ok((sample(), 6)));
    }

    #[test]
    fn head_rejects_every_single_bit_flip() {
        let line = sample().encode(4);
        for byte in 0..STATE_LINE {
            if (SEQ_OFFSET..SEQ_OFFSET + 8).contains(&byte) {
                continue; // the sequence is outside the checksum; odd values are rejected below
            }
            for bit in 0..8 {
                let mut bad = line;
                bad[byte] ^= 1 << bit;
                assert!(DurableHead::decode(&bad).is_err(), "flip {byte}:{bit} accepted");
            }
        }
        let odd = sample().encode(5);
        assert!(DurableHead::decode(&odd).is_err(), "odd sequence = write in progress");
        assert!(DurableHead::decode(&line[..63]).is_err());
    }

    #[test]
    fn counters_are_distinct_and_in_bounds() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.offset(), 64 + 8 * i);
            assert_eq!(c.offset() % 8, 0);
        }
    }
}
