//! A reference model of the shard engine, driven by one [`Op`] enum.
//!
//! The same code drives a seeded `cargo test` (ops from a seeded [`Rng`])
//! and the `op_model` cargo-fuzz target (ops from the fuzzer's bytes via
//! [`Op::from_bytes`]): [`run`] executes the ops against the production
//! [`Shard`] on a [`FailingStorage`] over a [`MemDir`], and against a tiny
//! model (a map from entry numbers to payloads plus a few watermarks), and
//! returns the first invariant that broke.
//!
//! Checked after every op:
//!
//! * open always completes (unless an injected fault or power loss hit it);
//! * an op fails only when a fault or crash was injected, and then the error
//!   reaches the caller;
//! * appends are all or nothing and numbered densely from `next_entry`;
//!   a completed `sync` makes everything appended before it durable;
//! * every entry below the highest durable end the engine ever reported is
//!   readable byte for byte under its number, before and after any crash;
//! * numbering never goes backwards or reuses a durable number; after a
//!   crash the next number lies between the durable end (process crash: the
//!   flushed end) and the pre-crash next number;
//! * retention never deletes above what was requested;
//! * timestamps of readable entries never decrease and are never zero.
//!
//! A corrupted byte relaxes only what it can affect: the entries of the
//! damaged segment (which may read wrong, be quarantined, or be cut off and
//! renumbered). Corrupting `index.bin` or `comet.state` relaxes nothing,
//! since both carry checksums (under `cfg(fuzzing)`, where the codecs skip
//! them, the model re-applies them before every open).
//!
//! Bytes beyond the durable head carry no checksum in the format, so after a
//! crash recovery may keep unsynced entries whose bytes were never appended
//! at that number: a torn write's zero-filled end, or what a failed append
//! left when cutting it back failed too. The model accepts such entries only
//! there and counts them ([`Stats::unverifiable_tail`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{CrashMode, FailingStorage, Faults, MemDir, MemError, Rng};
use crate::error::Error;
use crate::index::{MANIFEST_FILE, Manifest};
use crate::shard::{EngineConfig, RecoveryReport, Shard};
use crate::state::{DurableHead, FileHeadStore, STATE_FILE, STATE_LINE};
use crate::storage::{ErrorKind, OpenMode, Storage};
use crate::wire::{
    Compressor, Decompressor, RawFrameDecoder, StoredPayload, ZSTD_MAGIC, encode_payload, frame_content_size, is_frame,
    parse_segment_file_name, raw_frame_len,
};

/// Most payloads in one [`Op::Append`].
pub const MAX_BATCH: usize = 8;
/// Largest payload the model appends (larger than the write buffers of the
/// presets, so direct writes are exercised).
pub const MAX_PAYLOAD: u16 = 600;
/// Most ops [`decode`] produces from one input.
pub const MAX_OPS: usize = 400;

/// How a payload's bytes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// A pseudo-random byte pattern (never compressed).
    Pattern,
    /// One repeated byte (compressed by [`RunLengthCompressor`] when long
    /// enough).
    Run,
    /// Starts with the zstd magic `28 B5 2F FD` (stored wrapped in a frame).
    Magic,
}

/// One payload of an append, described compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// Length in bytes (clamped to [`MAX_PAYLOAD`]).
    pub len: u16,
    /// Seed of the byte pattern.
    pub seed: u8,
    /// How the bytes are made.
    pub fill: Fill,
}

impl Payload {
    /// The payload's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let len = usize::from(self.len.min(MAX_PAYLOAD));
        let mut x = self.seed;
        let pattern = core::iter::from_fn(move || {
            x = x.wrapping_mul(5).wrapping_add(17);
            Some(x)
        });
        match self.fill {
            Fill::Pattern => pattern.take(len).collect(),
            Fill::Run => vec![self.seed; len],
            Fill::Magic => ZSTD_MAGIC.iter().copied().chain(pattern).take(len).collect(),
        }
    }

    fn from_bytes(input: &mut &[u8]) -> Payload {
        let sel = take(input);
        let len = match sel & 3 {
            0 => 0,
            1 => u16::from(take(input) % 32),
            2 => u16::from(take(input)),
            _ => take16(input) % (MAX_PAYLOAD + 1),
        };
        let fill = match (sel >> 2) % 4 {
            0 | 1 => Fill::Pattern,
            2 => Fill::Run,
            _ => Fill::Magic,
        };
        Payload { len, seed: take(input), fill }
    }
}

/// One step of a model run. Every field is bounded by its type (or clamped
/// where it is used), so any value is a valid op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append one batch (at most [`MAX_BATCH`] payloads; may be empty).
    Append {
        /// The payloads.
        payloads: Vec<Payload>,
        /// Stamp the batch with a clock that went backwards.
        back: bool,
    },
    /// `Shard::sync`.
    Sync,
    /// `Shard::flush_buffer`.
    Flush,
    /// `Shard::rotate`.
    Rotate,
    /// Clean close, then open.
    Reopen,
    /// Crash now (drop the shard without closing), keep the image `mode`
    /// leaves, and open it.
    Crash(CrashMode),
    /// Lose power at the next sync; later ops fail until the crash is
    /// noticed, then the image is opened.
    CrashAtNextSync(CrashMode),
    /// Lose power at the `after`-th mutation from now (1..=32).
    CrashAtMutation {
        /// Mutations until the crash.
        after: u8,
        /// The image kept.
        mode: CrashMode,
    },
    /// Read an entry picked from around the retained range.
    Read {
        /// Which entry.
        pick: u16,
    },
    /// XOR a byte of a file (picked from the sorted names) with `mask`.
    Corrupt {
        /// Which file.
        file: u8,
        /// Which byte (modulo the length).
        offset: u16,
        /// The bits to flip (0 means 1).
        mask: u8,
    },
    /// A retention pass deleting the `segments` oldest sealed segments (0..=3).
    Retain {
        /// How many.
        segments: u8,
    },
    /// Fail the `after`-th mutation from now (1..=16) with `kind`: only that
    /// one if `once`, else every mutation until [`Op::Heal`].
    Fail {
        /// Mutations until the failure.
        after: u8,
        /// `StorageFull` (ENOSPC) or `Other` (EIO).
        kind: ErrorKind,
        /// A transient failure.
        once: bool,
    },
    /// Space returns: stop failing, reopen if the shard needs it, check that
    /// it is readable and writable.
    Heal,
}

fn take(input: &mut &[u8]) -> u8 {
    match input.split_first() {
        Some((&b, rest)) => {
            *input = rest;
            b
        }
        None => 0,
    }
}

fn take16(input: &mut &[u8]) -> u16 {
    u16::from_le_bytes([take(input), take(input)])
}

fn take_mode(input: &mut &[u8]) -> CrashMode {
    match take(input) % 3 {
        0 => CrashMode::Durable,
        1 => CrashMode::Torn { seed: u64::from(take16(input)) },
        _ => CrashMode::Process,
    }
}

impl Op {
    /// Decodes one op from the front of `input`, consuming what it used
    /// (missing bytes read as zero). `None` once `input` is empty.
    pub fn from_bytes(input: &mut &[u8]) -> Option<Op> {
        if input.is_empty() {
            return None;
        }
        let tag = take(input);
        Some(match tag {
            0..=89 | 226..=255 => {
                let n = usize::from(take(input)) % (MAX_BATCH + 1);
                let back = tag.is_multiple_of(16);
                Op::Append { payloads: (0..n).map(|_| Payload::from_bytes(input)).collect(), back }
            }
            90..=114 => Op::Sync,
            115..=124 => Op::Flush,
            125..=134 => Op::Rotate,
            135..=144 => Op::Read { pick: take16(input) },
            145..=151 => Op::Reopen,
            152..=161 => Op::Crash(take_mode(input)),
            162..=169 => Op::CrashAtNextSync(take_mode(input)),
            170..=177 => Op::CrashAtMutation { after: 1 + take(input) % 32, mode: take_mode(input) },
            178..=185 => Op::Corrupt { file: take(input), offset: take16(input), mask: take(input) },
            186..=195 => Op::Retain { segments: take(input) % 4 },
            196..=205 => {
                let b = take(input);
                Op::Fail {
                    after: 1 + b % 16,
                    kind: if b & 0x10 == 0 { ErrorKind::StorageFull } else { ErrorKind::Other },
                    once: b & 0x20 != 0,
                }
            }
            _ => Op::Heal,
        })
    }

    /// `count` ops from a seeded generator (the seeded-test counterpart of
    /// the fuzz target's bytes).
    pub fn seeded(seed: u64, count: usize) -> Vec<Op> {
        let mut rng = Rng::new(seed);
        let mut bytes = Vec::with_capacity(count * 24);
        let mut ops = Vec::with_capacity(count);
        while ops.len() < count {
            bytes.clear();
            bytes.extend((0..24).map(|_| rng.next_u64().to_le_bytes()[0]));
            let mut input = bytes.as_slice();
            if let Some(op) = Op::from_bytes(&mut input) {
                ops.push(op);
            }
        }
        ops
    }
}

/// The engine settings selected by `b` (small segments and buffers, so a
/// few hundred ops rotate many times).
pub fn config_from_byte(b: u8) -> EngineConfig {
    let base = EngineConfig {
        interval: 4,
        max_entry: 1024,
        max_file_size: 1024,
        buffer_size: 256,
        min_compress: 64,
        max_chunks: u32::MAX,
    };
    match b % 4 {
        0 => base,
        1 => EngineConfig { interval: 1, max_file_size: 300, buffer_size: 64, min_compress: 16, ..base },
        2 => EngineConfig { interval: 16, max_file_size: 4096, buffer_size: 1024, ..base },
        _ => EngineConfig { interval: 2, max_file_size: 2048, buffer_size: 128, max_chunks: 6, ..base },
    }
}

/// Splits fuzzer bytes into a configuration (first byte) and at most
/// [`MAX_OPS`] ops.
pub fn decode(bytes: &[u8]) -> (EngineConfig, Vec<Op>) {
    let mut input = bytes;
    let cfg = config_from_byte(take(&mut input));
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS {
        match Op::from_bytes(&mut input) {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    (cfg, ops)
}

/// Compresses payloads made of one repeated byte into a zstd frame with a
/// single RLE block (13 bytes), which [`RawFrameDecoder`] reads back; other
/// payloads are left alone. Exercises the engine's compressed-entry paths
/// without a real zstd.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunLengthCompressor;

impl Compressor for RunLengthCompressor {
    fn compress(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        let (&b, rest) = src.split_first()?;
        if rest.iter().any(|&x| x != b) || src.len() >= 1 << 17 {
            return None;
        }
        let size = u32::try_from(src.len()).ok()?;
        let out = dst.get_mut(..13)?;
        out[..4].copy_from_slice(&ZSTD_MAGIC);
        out[4] = 0b1010_0000; // 4-byte content size, single segment
        out[5..9].copy_from_slice(&size.to_le_bytes());
        // Block_Size << 3 | Block_Type RLE (1) << 1 | Last_Block.
        let bh = (size << 3) | 0b011;
        out[9..12].copy_from_slice(&bh.to_le_bytes()[..3]);
        out[12] = b;
        Some(13)
    }
}

/// A shard over `S` with its head in `comet.state` and compressor `C`.
pub type FileShard<S, C> = Shard<S, FileHeadStore<<S as Storage>::File>, C>;

/// What [`open_shard`] returns.
pub type Opened<S, C> = Result<(FileShard<S, C>, RecoveryReport), Error<<S as Storage>::Error>>;

/// Opens the shard in `dir` the way the simulator and tests do: the head
/// lives in `comet.state` through a [`FileHeadStore`].
pub fn open_shard<S: Storage + Clone, C: Compressor>(dir: &S, cfg: EngineConfig, compressor: C) -> Opened<S, C> {
    let state =
        dir.open(STATE_FILE, OpenMode::Create).map_err(|e| Error::storage(crate::error::IoOp::Open, STATE_FILE, e))?;
    let head = FileHeadStore::new(state).map_err(|e| Error::storage(crate::error::IoOp::Open, STATE_FILE, e))?;
    Shard::open(dir.clone(), head, compressor, cfg)
}

/// Reads entry `entry` and decodes a stored frame, giving the payload as
/// appended and the entry's timestamp.
pub fn read_payload<S: Storage, C: Compressor>(shard: &FileShard<S, C>, entry: u64) -> Result<(Vec<u8>, u64), String>
where
    S::Error: core::fmt::Debug,
{
    let mut out = Vec::new();
    let r = shard.read(entry, &mut out).map_err(|e| format!("read {entry}: {e:?}"))?;
    if !is_frame(&out) {
        return Ok((out, r.header.timestamp));
    }
    let size = match frame_content_size(&out) {
        Ok(Some(n)) if n <= 1 << 20 => usize::try_from(n).unwrap_or(0),
        other => return Err(format!("entry {entry}: bad frame header {other:?}")),
    };
    let mut dec = vec![0u8; size];
    let n = RawFrameDecoder.decompress(&out, &mut dec).map_err(|e| format!("entry {entry}: bad frame {e:?}"))?;
    dec.truncate(n);
    Ok((dec, r.header.timestamp))
}

/// Counts of what a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ops executed.
    pub ops: u64,
    /// Entries appended successfully.
    pub appended: u64,
    /// Successful syncs (explicit ones).
    pub syncs: u64,
    /// Crashes simulated (all modes, including armed ones that fired).
    pub crashes: u64,
    /// Opens performed.
    pub opens: u64,
    /// Entries read and compared.
    pub reads: u64,
    /// Bytes corrupted.
    pub corruptions: u64,
    /// Failures injected by [`FailingStorage`].
    pub injected: u64,
    /// Segments quarantined by recovery.
    pub quarantined: u64,
    /// Torn tails cut by recovery.
    pub torn: u64,
    /// Segments deleted by retention.
    pub deleted: u64,
    /// Unsynced entries recovered with bytes that were never appended at
    /// that number (a torn image's zero fill, or leftovers of failed
    /// appends that could not be cut off): a limit of the format, which has
    /// no checksum over bytes beyond the durable head.
    pub unverifiable_tail: u64,
}

impl core::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.ops += o.ops;
        self.appended += o.appended;
        self.syncs += o.syncs;
        self.crashes += o.crashes;
        self.opens += o.opens;
        self.reads += o.reads;
        self.corruptions += o.corruptions;
        self.injected += o.injected;
        self.quarantined += o.quarantined;
        self.torn += o.torn;
        self.deleted += o.deleted;
        self.unverifiable_tail += o.unverifiable_tail;
    }
}

/// Runs `ops` with the default configuration ([`config_from_byte`]`(0)`).
pub fn run(ops: &[Op]) -> Result<Stats, String> {
    run_with(config_from_byte(0), ops)
}

/// Runs `ops` with `cfg`, then heals, closes, reopens and checks everything
/// once more. Returns what happened, or the first broken invariant (with
/// the index of the op that broke it).
pub fn run_with(cfg: EngineConfig, ops: &[Op]) -> Result<Stats, String> {
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
fn reject_unchecked_metadata(mem: &MemDir) {
    if !cfg!(fuzzing) {
        return;
    }
    if let Some(mut bytes) = mem.file_bytes(STATE_FILE)
        && let Some(line) = bytes.get(..STATE_LINE)
        && let Ok((head, seq)) = DurableHead::decode(line)
        && head.encode(seq)[..] != *line
    {
        bytes[..STATE_LINE].fill(0);
        mem.set_file_bytes(STATE_FILE, &bytes);
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
                    let r = s.rotate();
                    if self.judge(&r, failures, poisoned)? {
                        self.m.maybe.clear();
                        let s = self.shard.as_ref().ok_or("shard vanished")?;
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
        match r {
            Ok(_) if injected && !self.mem.crashed() => {
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
        if let Some(base) = parse_segment_file_name(name) {
            let end = self
                .shard
                .as_ref()
                .and_then(|s| s.manifest().sealed.iter().find(|m| m.base == base))
                .map_or(u64::MAX, |m| m.end());
            self.m.taints.push((base, end));
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
        let (s, report) = match open_shard(&self.fs, self.cfg, RunLengthCompressor) {
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
        if !report.missing.is_empty()
            && !report.missing.iter().all(|r| r.end <= s.first_entry() || m.range_tainted(r.start, r.end))
        {
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
            return Err(format!("{how:?}: next entry {next} above the pre-crash next entry {}; {report:?}", m.next));
        }
        if how == Reopen::Clean && clean_history && (!report.clean || report.found_damage()) {
            return Err(format!("open after a clean close was not clean: {report:?}"));
        }
        if s.first_entry() > m.max_first && !m.range_tainted(m.max_first, s.first_entry()) {
            return Err(format!("first entry {} above the highest retention target {}", s.first_entry(), m.max_first));
        }
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
        m.flushed = m.flushed.max(s.active_base() + s.active_meta().entries);
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
