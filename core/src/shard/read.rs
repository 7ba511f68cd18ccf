//! Reading entries through the [`Storage`] trait (pread into buffers), for
//! platforms without memory maps and for tools.

use alloc::vec::Vec;

use super::Shard;
use crate::error::{Corruption, Error, FileKind, IoOp};
use crate::index::SegmentMeta;
use crate::segment::ChunkState;
use crate::state::HeadStore;
use crate::storage::{Context, OpenMode, Storage, StorageFile, read_exact_at};
use crate::wire::{Compressor, EntryHeader, EntryStatus, HEADER_LEN, WireError, classify_entry, segment_file_name};

/// An entry read from a segment: its header and where the stored payload
/// was put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// The header (`len` is the stored length).
    pub header: EntryHeader,
    /// Byte offset of the entry in its segment.
    pub offset: u64,
}

fn corrupt(base: u64, offset: u64, error: WireError) -> Corruption {
    Corruption { file: FileKind::Segment { base }, offset, error }
}

/// Reads the header at `offset` of a segment whose valid data ends at
/// `limit`, checking it like every scanner does.
fn header_at<F: StorageFile>(
    file: &F,
    base: u64,
    offset: u64,
    limit: u64,
    max_stored: u32,
) -> Result<EntryHeader, Error<F::Error>> {
    let mut h = [0u8; HEADER_LEN];
    let n = read_exact_at(file, offset, &mut h).ctx(IoOp::Read, &segment_file_name(base))?;
    match classify_entry(&h[..n], limit.saturating_sub(offset), max_stored) {
        EntryStatus::Valid(h) => Ok(h),
        EntryStatus::Invalid(e) => Err(corrupt(base, offset, e).into()),
        _ => Err(corrupt(
            base,
            offset,
            WireError::Truncated { needed: HEADER_LEN as u64, available: limit.saturating_sub(offset) },
        )
        .into()),
    }
}

/// Reads entry number `target` of a segment (base `base`, valid bytes up to
/// `limit`), starting from a known entry `from` at byte `offset` and hopping
/// over the headers in between. Appends the stored payload to `out`.
pub fn read_entry_at<F: StorageFile>(
    file: &F,
    base: u64,
    (from, mut offset): (u64, u64),
    target: u64,
    limit: u64,
    max_stored: u32,
    out: &mut Vec<u8>,
) -> Result<EntryRef, Error<F::Error>> {
    let mut entry = from;
    loop {
        let h = header_at(file, base, offset, limit, max_stored)?;
        if entry == target {
            let start = out.len();
            out.resize(start + h.len as usize, 0);
            let n = read_exact_at(file, offset + HEADER_LEN as u64, &mut out[start..])
                .ctx(IoOp::Read, &segment_file_name(base))?;
            if n < h.len as usize {
                out.truncate(start);
                return Err(corrupt(
                    base,
                    offset,
                    WireError::Truncated { needed: u64::from(h.len), available: n as u64 },
                )
                .into());
            }
            return Ok(EntryRef { header: h, offset });
        }
        offset += h.total_len();
        entry += 1;
    }
}

/// Reads entry number `target` like [`read_entry_at`], but copies the
/// stored payload into `out` (a caller buffer, no allocation) and returns
/// the header; the payload is `out[..header.len]`. A payload larger than
/// `out` gives [`Error::Capacity`] and leaves `out` unspecified.
pub fn read_entry_into<F: StorageFile>(
    file: &F,
    base: u64,
    (from, mut offset): (u64, u64),
    target: u64,
    limit: u64,
    max_stored: u32,
    out: &mut [u8],
) -> Result<EntryRef, Error<F::Error>> {
    let mut entry = from;
    loop {
        let h = header_at(file, base, offset, limit, max_stored)?;
        if entry == target {
            let len = h.len as usize;
            let Some(dst) = out.get_mut(..len) else {
                return Err(Error::Capacity {
                    what: "read buffer",
                    needed: u64::from(h.len),
                    available: out.len() as u64,
                });
            };
            let n = read_exact_at(file, offset + HEADER_LEN as u64, dst).ctx(IoOp::Read, &segment_file_name(base))?;
            if n < len {
                return Err(corrupt(
                    base,
                    offset,
                    WireError::Truncated { needed: u64::from(h.len), available: n as u64 },
                )
                .into());
            }
            return Ok(EntryRef { header: h, offset });
        }
        offset += h.total_len();
        entry += 1;
    }
}

/// Where a durable entry lives, as found by [`Shard::locate`]: enough to
/// read it with [`read_entry_at`] / [`read_entry_into`] through any handle
/// of the segment file (e.g. one a platform keeps open between reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLocation {
    /// Base entry of the segment (its file is `segment_file_name(base)`).
    pub base: u64,
    /// The segment is the active one ([`Shard::active_file`]).
    pub active: bool,
    /// A known entry at or before the target, at this byte offset
    /// (the start of the target's checkpoint chunk).
    pub from: (u64, u64),
    /// End of the valid bytes of the segment (durable bytes when active).
    pub limit: u64,
    /// Largest valid stored payload.
    pub max_stored: u32,
}

impl<S, H, C> Shard<S, H, C>
where
    S: Storage,
    H: HeadStore<Error = S::Error>,
    C: Compressor,
{
    /// Finds durable entry `entry` without reading it. Entries that are not
    /// durable, retained or present give [`Error::EntryUnavailable`].
    pub fn locate(&self, entry: u64) -> Result<EntryLocation, Error<S::Error>> {
        let first = self.first_entry();
        let end = self.durable_end();
        let unavailable = || Error::EntryUnavailable { entry, first, end };
        if entry < first || entry >= end {
            return Err(unavailable());
        }
        let interval = self.interval();
        let max_stored = self.cfg.max_stored();
        if entry >= self.active_base() {
            let from = locate_active(&self.chunks, self.active_base(), entry, interval).ok_or_else(unavailable)?;
            return Ok(EntryLocation {
                base: self.active_base(),
                active: true,
                from,
                limit: self.durable.bytes,
                max_stored,
            });
        }
        let seg: &SegmentMeta = self.manifest.find_sealed(entry).ok_or_else(unavailable)?;
        let (_, from, offset) = seg.chunk_for(entry, interval).ok_or_else(unavailable)?;
        Ok(EntryLocation { base: seg.base, active: false, from: (from, offset), limit: seg.bytes, max_stored })
    }

    /// Reads durable entry `entry` into `out` without allocating: the
    /// *stored* payload (raw bytes, or a zstd frame when it starts with the
    /// magic) is `out[..header.len]`. Errors as [`Shard::read`], plus
    /// [`Error::Capacity`] when `out` is too small. Opens (and closes) the
    /// segment file for sealed entries; platforms that read often keep the
    /// handle with [`Shard::locate`] and [`read_entry_into`] instead.
    pub fn read_into(&self, entry: u64, out: &mut [u8]) -> Result<EntryRef, Error<S::Error>> {
        let loc = self.locate(entry)?;
        if loc.active {
            return read_entry_into(&self.file, loc.base, loc.from, entry, loc.limit, loc.max_stored, out);
        }
        let name = segment_file_name(loc.base);
        let file = self.storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
        read_entry_into(&file, loc.base, loc.from, entry, loc.limit, loc.max_stored, out)
    }

    /// Reads durable entry `entry`, appending its *stored* payload (raw
    /// bytes, or a zstd frame when it starts with the magic) to `out`.
    /// Entries that are not durable, retained or present give
    /// [`Error::EntryUnavailable`]; damaged framing gives [`Error::Corrupt`].
    pub fn read(&self, entry: u64, out: &mut Vec<u8>) -> Result<EntryRef, Error<S::Error>> {
        let first = self.first_entry();
        let end = self.durable_end();
        let unavailable = || Error::EntryUnavailable { entry, first, end };
        if entry < first || entry >= end {
            return Err(unavailable());
        }
        let interval = self.interval();
        let max = self.cfg.max_stored();
        if entry >= self.active_base() {
            let (from, offset) =
                locate_active(&self.chunks, self.active_base(), entry, interval).ok_or_else(unavailable)?;
            return read_entry_at(&self.file, self.active_base(), (from, offset), entry, self.durable.bytes, max, out);
        }
        let seg: &SegmentMeta = self.manifest.find_sealed(entry).ok_or_else(unavailable)?;
        let (_, from, offset) = seg.chunk_for(entry, interval).ok_or_else(unavailable)?;
        let name = segment_file_name(seg.base);
        let file = self.storage.open(&name, OpenMode::Read).ctx(IoOp::Open, &name)?;
        read_entry_at(&file, seg.base, (from, offset), entry, seg.bytes, max, out)
    }
}

fn locate_active(chunks: &ChunkState, base: u64, entry: u64, interval: u32) -> Option<(u64, u64)> {
    let k = usize::try_from((entry - base) / u64::from(interval)).ok()?;
    Some((base + k as u64 * u64::from(interval), u64::from(chunks.offset(k)?)))
}
