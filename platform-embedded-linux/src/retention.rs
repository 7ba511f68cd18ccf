//! Retention, run by [`Log::tick`](crate::Log::tick) (or on demand with
//! [`Log::run_retention`]): the core's pure policy
//! (`comet_core::retention`) executed with `Shard::delete_oldest`, which
//! advances the manifest before unlinking (a crash in between leaves an
//! orphan the next open removes).
//!
//! Whole sealed segments only, oldest first, never the active one. With
//! `protect_unconsumed` (default) a segment some consumer group of the
//! shard has not acked is kept; `max_total_size` with `hard_cap` deletes it
//! anyway, counts it (`forced_deletions`) and moves the groups that lost
//! entries to the first surviving entry so their reads do not fail.

use comet_core::retention::{SegmentInfo, ShardLimits, TotalCandidate, TotalPlan, plan_shard, plan_total};
use comet_core::state::Counter;

use crate::config::MAX_SHARDS;
use crate::error::Error;
use crate::log::Log;
use crate::shard::{Engine, OpenShard};

/// What one retention pass did, over all shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their entries.
    pub entries: u64,
    /// Segments the limits wanted gone but a consumer group still needs.
    pub protected: u64,
    /// Segments deleted although a group had not acked them (hard cap).
    pub forced: u64,
}

/// Reused per-pass storage (grown to the number of sealed segments, kept
/// across passes).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    infos: Vec<SegmentInfo>,
}

impl Scratch {
    /// Makes room for one more shard of at most `max_segments` sealed
    /// segments, once (a pass over every shard then never grows it).
    pub(crate) fn reserve_shard(&mut self, max_segments: u32) {
        self.infos.reserve_exact(self.infos.capacity() - self.infos.len() + max_segments as usize + 8);
    }
}

fn infos_of(engine: &Engine, out: &mut Vec<SegmentInfo>) {
    out.extend(engine.manifest().sealed.iter().map(|s| SegmentInfo {
        base: s.base,
        end: s.end(),
        bytes: s.bytes,
        last_ts: s.last_ts,
    }));
}

fn low_water(s: &OpenShard, protect: bool) -> Result<Option<u64>, Error> {
    if !protect {
        return Ok(None);
    }
    Ok(s.offsets()?.min_offset())
}

/// Deletes `n` oldest segments of `s`, adding to `report`.
fn delete(s: &mut OpenShard, n: usize, report: &mut RetentionReport) -> Result<(), Error> {
    if n == 0 {
        return Ok(());
    }
    let d = s.engine.delete_oldest(n).map_err(|source| Error::Engine { shard: s.id, source })?;
    report.segments += d.segments;
    report.bytes += d.bytes;
    report.entries += d.entries;
    Ok(())
}

/// Moves every group of `s` below the first retained entry up to it.
fn lift_groups(s: &OpenShard, now: u64) -> Result<(), Error> {
    let first = s.engine.first_entry();
    let table = s.offsets()?;
    let mut behind: heapless::Vec<heapless::String<47>, 16> = heapless::Vec::new();
    loop {
        behind.clear();
        table.for_each(|g, o| {
            if o.offset < first {
                let mut name = heapless::String::new();
                if name.push_str(g).is_ok() {
                    let _ = behind.push(name);
                }
            }
        });
        if behind.is_empty() {
            return Ok(());
        }
        for g in &behind {
            table.advance(g, first, now).map_err(|source| Error::Offsets { shard: s.id, source })?;
        }
    }
}

impl Log {
    /// Runs one retention pass now over every open shard (`tick` calls this
    /// every `retention.cleanup_interval`).
    pub fn run_retention(&mut self, now: u64) -> Result<RetentionReport, Error> {
        let r = self.cfg.retention;
        let limits = ShardLimits {
            max_age_ns: r.max_age.map(|a| u64::try_from(a.as_nanos()).unwrap_or(u64::MAX)),
            max_shard_bytes: r.max_shard_size,
            min_files_to_keep: r.min_files_to_keep,
        };
        let mut report = RetentionReport::default();
        for s in &mut self.shards {
            let infos = &mut self.scratch.infos;
            infos.clear();
            infos_of(&s.engine, infos);
            let lw = low_water(s, r.protect_unconsumed)?;
            let plan = plan_shard(infos, s.engine.active_bytes(), &limits, lw, now);
            s.bump(Counter::RetentionRuns, 1);
            s.bump(Counter::ProtectedSkips, plan.protected as u64);
            report.protected += plan.protected as u64;
            delete(s, plan.delete, &mut report)?;
            if self.read_of == Some(s.id) {
                // A kept read handle would pin a deleted file's space.
                self.reads.forget_below(s.engine.first_entry());
            }
            let oldest = s.engine.manifest().sealed.first().map_or(0, |seg| seg.first_ts);
            s.bump(Counter::OldestEntryNs, oldest);
            s.drain_counters();
        }
        if let Some(max_total) = r.max_total_size {
            self.retain_total(max_total, r.hard_cap, r.protect_unconsumed, now, &mut report)?;
        }
        Ok(report)
    }

    fn retain_total(
        &mut self,
        max_total: u64,
        hard_cap: bool,
        protect: bool,
        now: u64,
        report: &mut RetentionReport,
    ) -> Result<(), Error> {
        let infos = &mut self.scratch.infos;
        infos.clear();
        let mut spans: heapless::Vec<(usize, usize, usize), MAX_SHARDS> = heapless::Vec::new();
        for s in &self.shards {
            let start = infos.len();
            infos_of(&s.engine, infos);
            let lw = low_water(s, protect)?;
            let allowed = comet_core::retention::acked_prefix(&infos[start..], lw);
            let _ = spans.push((start, infos.len(), allowed));
        }
        let keep = self.cfg.retention.min_files_to_keep as usize;
        let mut cands: heapless::Vec<TotalCandidate<'_>, MAX_SHARDS> = heapless::Vec::new();
        for (s, &(a, b, allowed)) in self.shards.iter().zip(&spans) {
            let _ = cands.push(TotalCandidate {
                sealed: &infos[a..b],
                active_bytes: s.engine.active_bytes(),
                allowed,
                keep,
            });
        }
        let mut plans = [TotalPlan::default(); MAX_SHARDS];
        plan_total(&cands, max_total, hard_cap, &mut plans);
        drop(cands);
        for (s, p) in self.shards.iter_mut().zip(plans) {
            report.protected += p.protected as u64;
            s.bump(Counter::ProtectedSkips, p.protected as u64);
            delete(s, p.delete, report)?;
            if self.read_of == Some(s.id) {
                self.reads.forget_below(s.engine.first_entry());
            }
            if p.forced > 0 {
                report.forced += p.forced as u64;
                s.bump(Counter::ForcedDeletions, p.forced as u64);
                lift_groups(s, now)?;
            }
            s.drain_counters();
        }
        Ok(())
    }
}
