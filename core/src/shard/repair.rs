//! Repair: after recovery (open) has dealt with what a crash leaves, a
//! repair reads every chunk of every segment and records the damaged ones
//! as lost, so reads of their entries say "lost" (and consumers can be
//! moved past them) instead of failing, while every intact chunk of the
//! same segment stays readable under its numbers. It also rewrites chunk
//! tables that no longer match the manifest (from the segment's bytes,
//! when they reproduce the manifest's checksum of the table), and moves
//! bytes a sealed segment holds past its recorded end into
//! `<segment>.tail`. Nothing is deleted, nothing renumbered.

use alloc::vec::Vec;

use super::Shard;
use super::open::{damaged_chunks, read_table, set_aside, write_table};
use crate::error::{Error, IoOp};
use crate::index::{ChunkRec, Table};
use crate::naming::segment_file_name;
use crate::read::{ChunkPos, check_chunk};
use crate::segment::Scanner;
use crate::state::{Counter, HeadStore};
use crate::storage::{Context, ErrorKind, OpenMode, Storage, StorageError, StorageFile, copy_range, read_exact_at};
use crate::wire::Compressor;

/// What [`Shard::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Chunks newly recorded as lost: (segment base, chunk index).
    pub lost_chunks: Vec<(u64, u32)>,
    /// Chunk tables rewritten from their segments.
    pub tables_rebuilt: u64,
    /// Segments whose bytes past the recorded end were moved to
    /// `<segment>.tail`.
    pub tails_set_aside: Vec<u64>,
    /// Segments set aside whole: their table is gone and their bytes do not
    /// reproduce the manifest's checksum of it, so no chunk can be vouched
    /// for.
    pub set_aside: Vec<u64>,
    /// The active segment had damaged chunks and was sealed.
    pub sealed_active: bool,
}

impl RepairReport {
    /// True if the repair changed anything.
    pub fn changed(&self) -> bool {
        !self.lost_chunks.is_empty()
            || self.tables_rebuilt > 0
            || !self.tails_set_aside.is_empty()
            || !self.set_aside.is_empty()
            || self.sealed_active
    }
}

impl<S, H, C> Shard<S, H, C>
where
    S: Storage,
    H: HeadStore<Error = S::Error>,
    C: Compressor,
{
    /// Repairs the shard (see the module documentation); syncs first.
    /// Reads every byte of every segment.
    pub fn repair(&mut self) -> Result<RepairReport, Error<S::Error>> {
        self.sync()?;
        let mut report = RepairReport::default();
        let interval = self.interval();
        let max_stored = self.cfg.max_stored();
        let mut m = (*self.manifest).clone();
        let mut changed = false;
        let mut buf = Vec::new();
        let mut kept = Vec::with_capacity(m.sealed.len());
        for mut seg in core::mem::take(&mut m.sealed) {
            let name = segment_file_name(seg.base);
            let file = match self.storage.open(&name, OpenMode::ReadWrite) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    changed = true; // a gap from now on
                    continue;
                }
                Err(e) => return Err(Error::storage(IoOp::Open, &name, e)),
            };
            let len = file.len().ctx(IoOp::Len, &name)?;
            let table = match read_table(&self.storage, seg.base, interval, u64::from(seg.chunks))? {
                Some(recs) if seg.check_table(&Table::new(&recs)).is_ok() => recs,
                _ => {
                    let mut sc = Scanner::new(seg.base, interval, max_stored);
                    if buf.len() < 64 * 1024 {
                        buf.resize(64 * 1024, 0);
                    }
                    sc.run(&file, seg.bytes.min(len), &mut buf).ctx(IoOp::Read, &name)?;
                    let (scanned, table) = sc.seal();
                    if scanned.table_crc != seg.table_crc || scanned.chunks != seg.chunks {
                        drop(file);
                        set_aside(&self.storage, seg.base, "quarantined")?;
                        report.set_aside.push(seg.base);
                        changed = true;
                        continue;
                    }
                    write_table(&self.storage, seg.base, interval, &table)?;
                    report.tables_rebuilt += 1;
                    table.iter().flat_map(ChunkRec::to_bytes).collect()
                }
            };
            if len > seg.bytes {
                save_tail(&self.storage, &file, &name, seg.bytes, len, &mut buf)?;
                report.tails_set_aside.push(seg.base);
            }
            let damaged = damaged_chunks(&file, &seg, interval, &Table::new(&table), max_stored, &mut buf)
                .ctx(IoOp::Read, &name)?;
            if !damaged.is_empty() {
                report.lost_chunks.extend(damaged.iter().map(|&k| (seg.base, k)));
                seg.lost.extend(damaged);
                seg.lost.sort_unstable();
                seg.lost.dedup();
                changed = true;
            }
            kept.push(seg);
        }
        m.sealed = kept;
        if changed {
            m.first_entry = m.first_entry.min(m.sealed.first().map_or(m.first_entry, |s| s.base));
            self.write_manifest(m)?;
        }
        // The active segment: every closed chunk against the records the
        // engine keeps, the open one against the durable head.
        let damaged = self.active_damage(&mut buf)?;
        if !damaged.is_empty() {
            let base = self.base;
            self.rotate()?;
            let mut m = (*self.manifest).clone();
            if let Some(last) = m.sealed.last_mut().filter(|s| s.base == base) {
                last.lost.extend(damaged.iter().copied());
                last.lost.sort_unstable();
                last.lost.dedup();
            }
            self.write_manifest(m)?;
            report.lost_chunks.extend(damaged.iter().map(|&k| (base, k)));
            report.sealed_active = true;
        }
        self.bump(Counter::LostChunks, report.lost_chunks.len() as u64);
        self.bump(Counter::Quarantined, report.set_aside.len() as u64);
        Ok(report)
    }

    /// The chunks of the active segment whose bytes do not match what the
    /// engine recorded for them.
    fn active_damage(&mut self, buf: &mut Vec<u8>) -> Result<Vec<u32>, Error<S::Error>> {
        let name = segment_file_name(self.base);
        let interval = self.interval();
        let max_stored = self.cfg.max_stored();
        let table = self.active_chunks();
        let mut out = Vec::new();
        for (k, rec) in table.iter().enumerate() {
            let k32 = crate::num::index32(k);
            let start = if k == 0 { 0 } else { u64::from(table[k - 1].end) };
            let first = self.base + k as u64 * u64::from(interval);
            let entries = u32::try_from((self.written_entries - (first - self.base)).min(u64::from(interval)))
                .unwrap_or(interval);
            let pos = ChunkPos {
                segment: self.base,
                index: k32,
                first,
                entries,
                start,
                end: u64::from(rec.end),
                crc: rec.crc,
            };
            let n = usize::try_from(pos.len()).unwrap_or(usize::MAX);
            if buf.len() < n {
                buf.resize(n, 0);
            }
            let got = read_exact_at(&self.file, start, &mut buf[..n]).ctx(IoOp::Read, &name)?;
            if check_chunk(&buf[..got], &pos, max_stored).is_err() {
                out.push(k32);
            }
        }
        if !out.is_empty() {
            // The journal's end offsets (which the head does not cover) may
            // be what is wrong: when the bytes reproduce the checksums on
            // their own, take their chunk boundaries and keep every entry.
            let mut sc = Scanner::new(self.base, interval, max_stored);
            if buf.len() < 64 * 1024 {
                buf.resize(64 * 1024, 0);
            }
            let end = sc.run(&self.file, self.written, buf).ctx(IoOp::Read, &name)?;
            sc.chunks.settle(sc.entries, interval, crate::segment::offset32(sc.pos));
            if end == crate::segment::ScanEnd::Clean
                && sc.entries == self.written_entries
                && sc.chunks.head_crcs() == self.chunks.head_crcs()
            {
                self.chunks = sc.chunks;
                self.journaled = 0;
                self.write_journal();
                return Ok(Vec::new());
            }
        }
        Ok(out)
    }
}

/// Copies bytes `from..to` of a segment to `<name>.tail` (a new name if
/// taken), syncs it, then cuts the segment back to `from`.
fn save_tail<S: Storage>(
    storage: &S,
    file: &S::File,
    name: &str,
    from: u64,
    to: u64,
    buf: &mut Vec<u8>,
) -> Result<(), Error<S::Error>> {
    let mut taken = Vec::new();
    storage.list(&mut |n| taken.push(alloc::string::String::from(n))).ctx(IoOp::List, "")?;
    let mut target = alloc::format!("{name}.tail");
    let mut k = 1;
    while taken.contains(&target) {
        target = alloc::format!("{name}.tail.{k}");
        k += 1;
    }
    let out = storage.open(&target, OpenMode::CreateNew).ctx(IoOp::Open, &target)?;
    if buf.len() < 64 * 1024 {
        buf.resize(64 * 1024, 0);
    }
    copy_range(file, name, from..to, &out, &target, buf)?;
    storage.sync_dir().ctx(IoOp::SyncDir, "")?;
    file.set_len(from).ctx(IoOp::SetLen, name)?;
    file.sync().ctx(IoOp::Sync, name)
}
