//! A reference model of the shard engine, driven by one [`Op`] enum.
//!
//! The same code drives a seeded `cargo test` (ops from a seeded [`Rng`])
//! and the `op_model` cargo-fuzz target (ops from the fuzzer's bytes via
//! [`Op::from_bytes`]): [`run`] executes the ops against the production
//! [`Shard`] on a [`FailingStorage`](super::FailingStorage) over a [`MemDir`](super::MemDir), and against a tiny
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

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{CrashMode, Rng};
use crate::error::Error;
use crate::shard::{EngineConfig, RecoveryReport, Shard};
use crate::state::{FileHeadStore, STATE_FILE};
use crate::storage::{ErrorKind, OpenMode, Storage};
use crate::wire::{Compressor, Decompressor, RawFrameDecoder, ZSTD_MAGIC, frame_content_size, is_frame};

mod world;
pub use world::reject_unchecked_metadata;

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
    let base = EngineConfig { max_entry: 1024, ..super::small_engine() };
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
    /// Failures injected by [`FailingStorage`](super::FailingStorage).
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
    world::run_with(cfg, ops)
}
