//! The checker behind [`run_with`](super::run_with): the engine on
//! fault-injecting storage, the reference model, and the invariants checked
//! after every op (listed in the parent module's documentation).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{FileShard, Fill, MAX_BATCH, Op, Payload, RunLengthCompressor, Stats, open_shard, read_payload};
use crate::error::Error;
use crate::index::{MANIFEST_FILE, Manifest};
use crate::naming::parse_segment_file_name;
use crate::shard::EngineConfig;
use crate::sim::{CrashMode, FailingStorage, Faults, MemDir, MemError};
use crate::state::{Counter, DurableHead, STATE_FILE, STATE_LINE};
use crate::storage::ErrorKind;
use crate::wire::{StoredPayload, encode_payload, raw_frame_len};

pub(super) fn run_with(cfg: EngineConfig, ops: &[Op]) -> Result<Stats, String> {
    let mut w = World::new(cfg);
    w.start()?;
    for (i, op) in ops.iter().enumerate() {
        w.stats.ops += 1;
        w.step(op).map_err(|e| format!("op #{i} {op:?}: {e}"))?;
    }
    w.finish().map_err(|e| format!("final check: {e}"))?;
    w.stats.injected = w.injected_total + w.faults.failures();
    Ok(w.stats)
}

/// The bytes the engine stores for `payload` (raw, or a frame).
fn stored_form(payload: &[u8], min_compress: usize) -> Vec<u8> {
    let mut dst = vec![0u8; raw_frame_len(payload.len())];
    match encode_payload(payload, min_compress, &mut RunLengthCompressor, &mut dst) {
        Ok(StoredPayload::Frame(n)) => {
            dst.truncate(n);
            dst
        }
        _ => payload.to_vec(),
    }
}

/// Under `cfg(fuzzing)` the codecs skip their checksums, so a torn or
/// corrupted head line or manifest would decode as garbage that a real build
/// rejects. Spoil such a file the way its checksum would (zero the head
/// line, break the manifest's magic) so recovery sees what it would see in
/// production. A no-op in other builds.
pub fn reject_unchecked_metadata(mem: &MemDir) {
    if !cfg!(fuzzing) {
        return;
    }
    // A torn image may keep a state file shorter than the line; the store
    // reads the missing bytes as zeros, so check the line as it reads it.
    if let Some(mut bytes) = mem.file_bytes(STATE_FILE) {
        let mut line = [0u8; STATE_LINE];
        let n = bytes.len().min(STATE_LINE);
        line[..n].copy_from_slice(&bytes[..n]);
        if let Ok((head, seq)) = DurableHead::decode(&line)
            && head.encode(seq) != line
        {
            bytes[..n].fill(0);
            mem.set_file_bytes(STATE_FILE, &bytes);
        }
    }
    if let Some(mut bytes) = mem.file_bytes(MANIFEST_FILE)
        && let Ok(m) = Manifest::decode(&bytes)
    {
        let mut again = Vec::new();
        m.encode(&mut again);
        if again != bytes {
            bytes[0] ^= 0xFF;
            mem.set_file_bytes(MANIFEST_FILE, &bytes);
        }
    }
}

type Dir = FailingStorage<MemDir>;
type SimShard = FileShard<Dir, RunLengthCompressor>;

/// How the shard is being reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    /// After a successful close.
    Clean,
    /// After the process died (or gave up) on a disk that is still there.
    Restart,
    /// After a crash that kept the given image.
    Crash(CrashMode),
}

#[derive(Debug, Default)]
struct Model {
    /// Every payload appended, by number (retention does not remove them).
    entries: BTreeMap<u64, Vec<u8>>,
    /// Payloads of failed appends: a crash may still recover them when the
    /// engine could not cut them back off the file.
    maybe: BTreeMap<u64, Vec<Vec<u8>>>,
    next: u64,
    /// Highest durable end the engine reported: all below must survive.
    durable: u64,
    /// Entries handed to files (survive a process crash).
    flushed: u64,
    /// Highest first entry a retention pass asked for.
    max_first: u64,
    clock: u64,
    /// Entry ranges a corrupted byte may affect (`end == u64::MAX`: until the
    /// segment is sealed).
    taints: Vec<(u64, u64)>,
    corrupted: bool,
}

impl Model {
    fn tainted(&self, e: u64) -> bool {
        self.taints.iter().any(|&(a, b)| a <= e && e < b)
    }

    fn range_tainted(&self, from: u64, to: u64) -> bool {
        let mut cur = from;
        while cur < to {
            match self.taints.iter().find(|&&(a, b)| a <= cur && cur < b) {
                Some(&(_, b)) => cur = b,
                None => return false,
            }
        }
        true
    }
}

struct World {
    cfg: EngineConfig,
    mem: MemDir,
    fs: Dir,
    faults: Faults,
    shard: Option<SimShard>,
    m: Model,
    pending_crash: Option<CrashMode>,
    /// A fault was armed and not healed since.
    armed: bool,
    injected_total: u64,
    /// The shard's journal-error count when the current op started.
    journal_seen: u64,
    stats: Stats,
}

fn err_str(e: &Error<MemError>) -> String {
    format!("{e:?}")
}

impl World {
    fn new(cfg: EngineConfig) -> World {
        let mem = MemDir::new();
        let fs = FailingStorage::new(mem.clone());
        let faults = fs.faults();
        World {
            cfg,
            mem,
            fs,
            faults,
            shard: None,
            m: Model::default(),
            pending_crash: None,
            armed: false,
            injected_total: 0,
            journal_seen: 0,
            stats: Stats::default(),
        }
    }

    fn start(&mut self) -> Result<(), String> {
        let (s, report) = open_shard(&self.fs, self.cfg, RunLengthCompressor).map_err(|e| format!("create: {e:?}"))?;
        self.stats.opens += 1;
        if !report.created {
            return Err(format!("empty directory not reported as created: {report:?}"));
        }
        self.shard = Some(s);
        Ok(())
    }

    /// Replaces the disk with `mem` (a crash image) and fresh fault control.
    fn install(&mut self, mem: MemDir) {
        self.injected_total += self.faults.failures();
        self.fs = FailingStorage::new(mem.clone());
        self.faults = self.fs.faults();
        self.mem = mem;
        self.armed = false;
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let failures = self.faults.failures();
        self.journal_seen = self.shard.as_ref().map_or(0, |s| s.pending_counter(Counter::JournalErrors));
        let poisoned = self.shard.as_ref().is_some_and(|s| s.is_poisoned());
        match op {
            Op::Append { payloads, back } => self.append(payloads, *back, failures, poisoned)?,
            Op::Sync => self.sync(failures, poisoned)?,
            Op::Flush => {
                if let Some(s) = self.shard.as_mut() {
                    let r = s.flush_buffer();
                    self.judge(&r, failures, poisoned)?;
                }
            }
            Op::Rotate => {
                if let Some(s) = self.shard.as_mut() {
                    let base = s.active_base();
                    let r = s.rotate();
                    if self.judge(&r, failures, poisoned)? {
                        let s = self.shard.as_ref().ok_or("shard vanished")?;
                        // A rotation syncs and leaves the old file behind;
                        // one of an empty segment does nothing at all.
                        if s.active_base() != base {
                            self.m.maybe.clear();
                        }
                        if s.durable_end() != s.next_entry() || s.active_bytes() != 0 {
                            return Err(format!("rotate left unsynced data: {s:?}"));
                        }
                    }
                }
            }
            Op::Reopen => self.clean_reopen(failures)?,
            Op::Crash(mode) => self.crash(*mode)?,
            Op::CrashAtNextSync(mode) => {
                self.mem.crash_at_sync(self.mem.sync_count() + 1);
                self.pending_crash = Some(*mode);
            }
            Op::CrashAtMutation { after, mode } => {
                let after = u64::from((*after).clamp(1, 32));
                self.mem.crash_at_mutation(self.mem.mutation_count() + after);
                self.pending_crash = Some(*mode);
            }
            Op::Read { pick } => self.read(*pick)?,
            Op::Corrupt { file, offset, mask } => self.corrupt(*file, *offset, *mask),
            Op::Retain { segments } => self.retain(*segments, failures, poisoned)?,
            Op::Fail { after, kind, once } => {
                let after = u64::from((*after).clamp(1, 16));
                let kind = match kind {
                    ErrorKind::StorageFull => ErrorKind::StorageFull,
                    _ => ErrorKind::Other,
                };
                self.armed = true;
                if *once {
                    self.faults.fail_once_at(after, kind);
                } else {
                    self.faults.fail_at(after, kind);
                }
            }
            Op::Heal => self.heal()?,
        }
        while self.mem.crashed() {
            let mode = self.pending_crash.take().unwrap_or(CrashMode::Durable);
            self.crash(mode)?;
        }
        self.observe()?;
        if self.stats.ops.is_multiple_of(32) {
            self.verify_all()?;
        }
        Ok(())
    }

    /// Decides whether an op's result is acceptable: `Ok(true)` if it
    /// succeeded, `Ok(false)` if it failed for an injected reason.
    fn judge<T>(&self, r: &Result<T, Error<MemError>>, failures: u64, poisoned: bool) -> Result<bool, String> {
        let injected = self.faults.failures() > failures;
        // A failed journal write is counted and retried, never reported.
        let journal = self.shard.as_ref().map_or(0, |s| s.pending_counter(Counter::JournalErrors));
        let journal_failed = journal > self.journal_seen;
        match r {
            Ok(_) if injected && !self.mem.crashed() && !journal_failed => {
                Err("an injected failure was not reported to the caller".into())
            }
            Ok(_) => Ok(!self.mem.crashed()),
            Err(_) if injected || self.mem.crashed() => Ok(false),
            Err(Error::Poisoned) if poisoned => Ok(false),
            Err(e) => Err(format!("unexpected error: {}", err_str(e))),
        }
    }

    fn append(&mut self, payloads: &[Payload], back: bool, failures: u64, poisoned: bool) -> Result<(), String> {
        let Some(s) = self.shard.as_mut() else {
            return Ok(());
        };
        let data: Vec<Vec<u8>> = payloads.iter().take(MAX_BATCH).map(Payload::bytes).collect();
        self.m.clock += 1_000;
        let now = if back { self.m.clock.saturating_sub(50_000) } else { self.m.clock };
        let r = s.append(now, &data);
        let next_after = s.next_entry();
        let first = self.m.next;
        let n = data.len() as u64;
        if self.judge(&r, failures, poisoned)? {
            let range = r.map_err(|e| err_str(&e))?;
            if range != (first..first + n) || next_after != first + n {
                return Err(format!(
                    "append numbered {range:?} (next {next_after}), expected {}..{}",
                    first,
                    first + n
                ));
            }
            for (k, p) in data.into_iter().enumerate() {
                self.m.entries.insert(first + k as u64, p);
            }
            self.m.next = first + n;
            self.stats.appended += n;
        } else {
            if next_after != first {
                return Err(format!("failed append moved next_entry from {first} to {next_after}"));
            }
            for (k, p) in data.into_iter().enumerate() {
                self.m.maybe.entry(first + k as u64).or_default().push(p);
            }
        }
        Ok(())
    }

    fn sync(&mut self, failures: u64, poisoned: bool) -> Result<(), String> {
        let Some(s) = self.shard.as_mut() else {
            return Ok(());
        };
        let r = s.sync();
        if self.judge(&r, failures, poisoned)? {
            let s = self.shard.as_ref().ok_or("shard vanished")?;
            if s.durable_end() != s.next_entry() {
                return Err(format!(
                    "sync returned Ok but durable_end {} < next_entry {}",
                    s.durable_end(),
                    s.next_entry()
                ));
            }
            self.m.maybe.clear();
            self.stats.syncs += 1;
        }
        Ok(())
    }

    fn retain(&mut self, segments: u8, failures: u64, poisoned: bool) -> Result<(), String> {
        let Some(s) = self.shard.as_mut() else {
            return Ok(());
        };
        let k = usize::from(segments % 4).min(s.manifest().sealed.len());
        if k == 0 {
            return Ok(());
        }
        let target = s.manifest().sealed.get(k).map_or(s.active_base(), |m| m.base);
        let before = s.first_entry();
        self.m.max_first = self.m.max_first.max(target);
        let r = s.delete_oldest(k);
        let after = s.first_entry();
        let unlink_failed = matches!(&r, Ok(d) if d.unlink_errors > 0);
        let ok = if unlink_failed { true } else { self.judge(&r, failures, poisoned)? };
        if ok {
            if after != target {
                return Err(format!("delete_oldest({k}) moved first entry to {after}, asked for {target}"));
            }
            if let Ok(d) = r {
                self.stats.deleted += d.segments;
            }
        } else if after != before {
            return Err(format!("failed delete_oldest moved first entry {before} -> {after}"));
        }
        self.verify_all()
    }

    fn read(&mut self, pick: u16) -> Result<(), String> {
        let Some(s) = self.shard.as_ref() else {
            return Ok(());
        };
        let lo = s.first_entry().saturating_sub(1);
        let hi = s.next_entry().saturating_add(2);
        let e = lo + u64::from(pick) % (hi - lo).max(1);
        if e >= s.first_entry() && e < s.durable_end() {
            return self.check_entry(e, &mut None);
        }
        let mut out = Vec::new();
        match s.read(e, &mut out) {
            Err(Error::EntryUnavailable { .. }) => Ok(()),
            other => Err(format!("read of entry {e} outside {}..{} gave {other:?}", s.first_entry(), s.durable_end())),
        }
    }

    fn corrupt(&mut self, file: u8, offset: u16, mask: u8) {
        let names = self.mem.names();
        if names.is_empty() {
            return;
        }
        let name = &names[usize::from(file) % names.len()];
        let len = self.mem.file_bytes(name).map_or(0, |b| b.len());
        if len == 0 {
            return;
        }
        let at = u64::from(offset) % len as u64;
        let mask = if mask == 0 { 1 } else { mask };
        if !self.mem.corrupt(name, at, mask) {
            return;
        }
        self.stats.corruptions += 1;
        self.m.corrupted = true;
        // A segment, or its chunk table (with the manifest lost too, a
        // chunk its table records differently is lost, whichever was hit).
        let segment = parse_segment_file_name(name).or_else(|| crate::naming::parse_chunk_table_file_name(name));
        if let Some(base) = segment {
            // A sealed segment ends where the manifest says; without an open
            // shard, where the next segment file starts. Only the active
            // segment's range is open-ended (until it is sealed).
            let end = match self.shard.as_ref() {
                Some(s) => s.manifest().sealed.iter().find(|m| m.base == base).map(|m| m.end()),
                None => names.iter().filter_map(|n| parse_segment_file_name(n)).filter(|&b| b > base).min(),
            };
            self.m.taints.push((base, end.unwrap_or(u64::MAX)));
        }
    }

    fn clean_reopen(&mut self, failures: u64) -> Result<(), String> {
        let how = match self.shard.take() {
            Some(s) => {
                let poisoned = s.is_poisoned();
                let r = s.close();
                if self.judge(&r, failures, poisoned)? {
                    self.m.maybe.clear();
                    Reopen::Clean
                } else {
                    Reopen::Restart
                }
            }
            None => Reopen::Restart,
        };
        if self.mem.crashed() {
            return Ok(()); // `step` turns this into a crash
        }
        self.reopen(how)
    }

    /// Crashes now and opens the image `mode` keeps.
    fn crash(&mut self, mode: CrashMode) -> Result<(), String> {
        self.stats.crashes += 1;
        let img = self.mem.crash_image(mode);
        self.shard = None;
        self.pending_crash = None;
        self.install(img);
        self.reopen(Reopen::Crash(mode))
    }

    fn heal(&mut self) -> Result<(), String> {
        self.faults.heal();
        self.armed = false;
        if self.shard.as_ref().is_none_or(|s| s.is_poisoned()) {
            self.shard = None;
            self.reopen(Reopen::Restart)?;
            if self.mem.crashed() {
                return Ok(());
            }
        }
        self.probe_writable()?;
        self.verify_all()
    }

    /// Appends one entry and syncs: both must work.
    fn probe_writable(&mut self) -> Result<(), String> {
        let Some(s) = self.shard.as_mut() else {
            return Err("no shard after a successful open".into());
        };
        if self.mem.crashed() || self.pending_crash.is_some() || self.armed {
            // An armed crash or fault may legitimately fail the probe.
            return Ok(());
        }
        self.m.clock += 1_000;
        let payload = Payload { len: 7, seed: 0xA5, fill: Fill::Pattern }.bytes();
        let first = self.m.next;
        let r = s.append(self.m.clock, &[&payload]).map_err(|e| format!("not writable: {e:?}"))?;
        if r != (first..first + 1) {
            return Err(format!("probe numbered {r:?}, expected {first}"));
        }
        s.sync().map_err(|e| format!("not syncable: {e:?}"))?;
        self.m.entries.insert(first, payload);
        self.m.next = first + 1;
        self.m.maybe.clear();
        self.stats.appended += 1;
        self.observe()
    }

    /// Opens the shard after a close, restart or crash and checks what
    /// recovery kept against the model.
    fn reopen(&mut self, how: Reopen) -> Result<(), String> {
        reject_unchecked_metadata(&self.mem);
        let failures = self.faults.failures();
        // Every other open asks for another chunk interval: the shard keeps
        // the one it was created with (D-5), also when its manifest is lost.
        let cfg = if self.stats.opens % 2 == 1 {
            EngineConfig { interval: self.cfg.interval + 1, ..self.cfg }
        } else {
            self.cfg
        };
        let (s, report) = match open_shard(&self.fs, cfg, RunLengthCompressor) {
            Ok(x) => x,
            Err(e) => {
                if self.mem.crashed() || self.faults.failures() > failures {
                    self.shard = None;
                    return Ok(());
                }
                return Err(format!("open failed ({how:?}): {e:?}"));
            }
        };
        self.stats.opens += 1;
        self.stats.quarantined += report.quarantined.len() as u64;
        self.stats.torn += report.torn.len() as u64;
        let next = s.next_entry();
        let m = &self.m;
        if s.durable_end() != next {
            return Err(format!("open left durable_end {} != next_entry {next}", s.durable_end()));
        }
        let clean_history = !m.corrupted;
        if clean_history && !report.quarantined.is_empty() {
            return Err(format!("quarantine without corruption: {report:?}"));
        }
        // A range retention deleted may be reported missing: a lost manifest
        // is rebuilt from the files, and a segment whose unlink failed is
        // still there below the deleted ones.
        let gone = s.first_entry().max(m.max_first);
        if !report.missing.iter().all(|r| r.end <= gone || m.range_tainted(r.start, r.end)) {
            return Err(format!("entries reported missing: {report:?}"));
        }
        let lower = match how {
            Reopen::Clean => m.next,
            Reopen::Restart | Reopen::Crash(CrashMode::Process) => m.durable.max(m.flushed),
            Reopen::Crash(_) => m.durable,
        };
        if next < lower && !m.range_tainted(next, lower) {
            return Err(format!(
                "{how:?}: next entry {next} below {lower} (durable {}, flushed {}): \
                 durable entries lost or numbers reused; {report:?}",
                m.durable, m.flushed
            ));
        }
        if next > m.next
            && (next - m.next > 1 << 16 || !(m.next..next).all(|e| m.maybe.contains_key(&e) || m.tainted(e)))
        {
            return Err(format!(
                "{how:?}: next entry {next} above the pre-crash next entry {} (failed appends at {:?}); {report:?}",
                m.next,
                m.maybe.keys().collect::<Vec<_>>()
            ));
        }
        if how == Reopen::Clean && clean_history && (!report.clean || report.found_damage()) {
            return Err(format!("open after a clean close was not clean: {report:?}"));
        }
        if s.first_entry() > m.max_first && !m.range_tainted(m.max_first, s.first_entry()) {
            return Err(format!("first entry {} above the highest retention target {}", s.first_entry(), m.max_first));
        }
        // Retention deleted those entries: they stay unreadable.
        let deleted: Vec<(u64, u64)> =
            report.missing.iter().filter(|r| r.end <= self.m.max_first).map(|r| (r.start, r.end)).collect();
        self.m.taints.extend(deleted);
        self.shard = Some(s);
        // Adopt what recovery kept beyond the durable end.
        let from = self.m.durable.min(next);
        self.m.entries.retain(|&e, _| e < next);
        let first = self.shard.as_ref().map_or(0, |s| s.first_entry());
        let torn = matches!(how, Reopen::Crash(CrashMode::Torn { .. }));
        let start = from.max(first);
        let mut prev = if start > first && !self.m.tainted(start - 1) {
            self.shard.as_ref().and_then(|s| read_payload(s, start - 1).ok()).map(|(_, ts)| ts)
        } else {
            None
        };
        for e in start..next {
            let mut p = prev;
            match self.check_entry(e, &mut p) {
                Ok(()) => prev = p,
                // No checksum covers bytes beyond the durable head: a tail
                // zero-filled by a torn write, or left by failed appends
                // that could not be cut back off the file, parses as
                // entries. Only such entries may differ.
                Err(_) if (torn && self.torn_damage(e)) || self.m.maybe.contains_key(&e) => {
                    self.m.taints.push((e, e + 1));
                    self.stats.unverifiable_tail += 1;
                    prev = None;
                }
                Err(err) => return Err(err),
            }
        }
        self.m.next = next;
        self.m.durable = next;
        self.m.flushed = next;
        self.m.maybe.clear();
        if self.m.corrupted {
            self.probe_writable()?;
        }
        self.observe()?;
        self.verify_all()
    }

    /// Cheap checks after every op, and watermark upkeep.
    fn observe(&mut self) -> Result<(), String> {
        let Some(s) = self.shard.as_ref() else {
            return Ok(());
        };
        if self.mem.crashed() {
            return Ok(());
        }
        let m = &mut self.m;
        if s.next_entry() != m.next {
            return Err(format!("next_entry {} but the model expects {}", s.next_entry(), m.next));
        }
        if s.durable_end() > s.next_entry() {
            return Err(format!("durable end beyond next entry: {s:?}"));
        }
        if s.durable_end() < m.durable && !m.range_tainted(s.durable_end(), m.durable) {
            return Err(format!("durable end went back from {} to {}", m.durable, s.durable_end()));
        }
        m.durable = m.durable.max(s.durable_end());
        m.flushed = m.flushed.max(s.active_base() + s.active_written_entries());
        let active = s.active_base();
        for t in &mut m.taints {
            if t.1 == u64::MAX && t.0 < active {
                t.1 = active;
            }
        }
        Ok(())
    }

    /// Reads `e` (which the engine says is durable) and compares it with
    /// the model; adopts recovered payloads of failed appends. `prev_ts`
    /// carries the previous entry's timestamp for the monotonicity check.
    fn check_entry(&mut self, e: u64, prev_ts: &mut Option<u64>) -> Result<(), String> {
        let Some(s) = self.shard.as_ref() else {
            return Ok(());
        };
        self.stats.reads += 1;
        let tainted = self.m.tainted(e);
        let (got, ts) = match read_payload(s, e) {
            Ok(x) => x,
            Err(_) if tainted => {
                *prev_ts = None;
                return Ok(());
            }
            Err(err) => return Err(format!("durable entry unreadable: {err}")),
        };
        if tainted {
            // Recovered after a crash: keep what is there, so the entry is
            // checked once its taint range closes below it.
            self.m.entries.entry(e).or_insert(got);
            *prev_ts = None;
            return Ok(());
        }
        if ts == 0 || prev_ts.is_some_and(|p| ts < p) {
            return Err(format!("entry {e}: timestamp {ts} after {prev_ts:?} (must be non-zero, non-decreasing)"));
        }
        *prev_ts = Some(ts);
        if self.m.entries.get(&e) == Some(&got) {
            return Ok(());
        }
        if self.m.maybe.get(&e).is_some_and(|c| c.contains(&got)) {
            self.m.entries.insert(e, got);
            return Ok(());
        }
        let want = self.m.entries.get(&e);
        let diff = want.map(|w| w.iter().zip(&got).position(|(a, b)| a != b));
        Err(format!(
            "entry {e}: read {} bytes, expected {:?} bytes; first difference at {diff:?}",
            got.len(),
            want.map(Vec::len),
        ))
    }

    /// True if unsynced entry `e`, recovered from a torn image, differs in
    /// its stored bytes from a payload it could have only by zeroed bytes
    /// (or only in a timestamp whose high bytes were zeroed).
    fn torn_damage(&self, e: u64) -> bool {
        let Some(s) = self.shard.as_ref() else {
            return false;
        };
        let mut got = Vec::new();
        if s.read(e, &mut got).is_err() {
            return false;
        }
        let zeroed = |want: &Vec<u8>| {
            let want = stored_form(want, self.cfg.min_compress);
            want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| w == g || *g == 0)
        };
        self.m.entries.get(&e).is_some_and(zeroed) || self.m.maybe.get(&e).is_some_and(|c| c.iter().any(zeroed))
    }

    /// Every retained durable entry reads back exactly.
    fn verify_all(&mut self) -> Result<(), String> {
        let Some(s) = self.shard.as_ref() else {
            return Ok(());
        };
        if self.mem.crashed() {
            return Ok(());
        }
        let (first, end) = (s.first_entry(), s.durable_end());
        let mut prev = None;
        for e in first..end {
            self.check_entry(e, &mut prev)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        self.faults.heal();
        self.armed = false;
        if self.mem.crashed() {
            let mode = self.pending_crash.take().unwrap_or(CrashMode::Durable);
            self.crash(mode)?;
        }
        self.mem.crash_at_sync(u64::MAX);
        self.mem.crash_at_mutation(u64::MAX);
        self.pending_crash = None;
        let failures = self.faults.failures();
        if self.shard.as_ref().is_none_or(|s| s.is_poisoned()) {
            self.shard = None;
            self.reopen(Reopen::Restart)?;
        }
        self.probe_writable()?;
        self.clean_reopen(failures)?;
        if self.shard.is_none() {
            return Err("no shard after the final reopen".into());
        }
        self.verify_all()
    }
}
