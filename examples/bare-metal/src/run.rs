//! [`run`]: append, sync, crash, recover, read back, verify.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use comet_core::platform::check::check_shard;
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::wire::NoCompression;
use comet_core::{ConfigError, EngineSettings, Error, Finding, RecoveryReport, Severity};

use crate::head::StateHead;
use crate::storage::{PowerLoss, RamError, RamStorage};

/// The shard type of this example: [`RamStorage`], [`StateHead`], no
/// compression.
pub type RamShard<'s, 'a> = Shard<&'s RamStorage<'a>, StateHead<'s, 'a>, NoCompression>;

/// Opens (creating or recovering) the shard in `storage`.
pub fn open<'s, 'a>(
    storage: &'s RamStorage<'a>,
    engine: EngineConfig,
) -> Result<(RamShard<'s, 'a>, RecoveryReport), Error<RamError>> {
    Shard::open(storage, StateHead::new(storage), NoCompression, engine)
}

/// The payload of entry `entry`: `E`, the entry number (`u32` LE), then
/// 0..60 pattern bytes. It never starts with the zstd magic, so it is
/// stored as given and reads back byte for byte.
pub fn payload(entry: u64) -> Vec<u8> {
    #[allow(clippy::cast_possible_truncation)] // a pattern: wrapping is the point
    let (n, seed) = ((entry * 37 % 61) as usize, entry as u8);
    let mut p = Vec::with_capacity(5 + n);
    p.push(b'E');
    #[allow(clippy::cast_possible_truncation)]
    p.extend_from_slice(&(entry as u32).to_le_bytes());
    #[allow(clippy::cast_possible_truncation)]
    p.extend((0..n).map(|k| seed.wrapping_mul(31).wrapping_add((k as u8).wrapping_mul(7))));
    p
}

/// What [`run`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The engine's settings.
    pub engine: EngineConfig,
    /// Batches appended, each followed by a sync.
    pub synced_batches: u32,
    /// Entries per batch.
    pub batch: u32,
    /// Entries appended after the last sync, one per `append`: the crash
    /// may take them.
    pub unsynced: u32,
    /// What the simulated power loss keeps of unsynced file tails.
    pub loss: PowerLoss,
    /// Entries appended after recovery, then synced and closed cleanly.
    pub after_reopen: u32,
}

impl Scenario {
    /// The firmware's scenario: 2 KiB segments, chunks of 8 entries, a
    /// 256-byte write buffer (so unsynced entries reach the storage before
    /// the crash), 24 synced batches of 5 entries, 7 unsynced entries (the
    /// crash drops those a rotation did not sync), 10 more after recovery.
    /// Fits a 16 KiB [`RamStorage`].
    pub fn small() -> Result<Scenario, ConfigError> {
        let settings = EngineSettings {
            boundary_interval: 8,
            max_file_size: 2048,
            max_entry_size: 256,
            ..EngineSettings::default()
        };
        let mut engine = EngineConfig::from_settings(&settings)?;
        // Below the user-facing 4 KiB minimum on purpose (the engine takes
        // any size): small enough that unsynced entries are written out.
        engine.buffer_size = 256;
        Ok(Scenario {
            engine,
            synced_batches: 24,
            batch: 5,
            unsynced: 7,
            loss: PowerLoss::DropUnsynced,
            after_reopen: 10,
        })
    }
}

/// What [`run`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The first entry this run appended (0 on an empty storage).
    pub start: u64,
    /// One past the last entry durable when the crash hit (synced by a
    /// `sync`, or by a rotation during the unsynced appends).
    pub synced_end: u64,
    /// One past the last entry appended before the crash.
    pub appended_end: u64,
    /// One past the last entry recovery found durable (between the two
    /// above).
    pub recovered_end: u64,
    /// Torn tails recovery cut off.
    pub torn_tails: usize,
    /// Bytes recovery read to verify and recover.
    pub scanned_bytes: u64,
    /// Entries read back and compared with what was appended (every entry
    /// from `start` to `final_end`).
    pub verified: u64,
    /// One past the last entry after the appends that followed recovery.
    pub final_end: u64,
    /// Segments the core's verify checked.
    pub segments: u64,
    /// Entries whose checksums the core's verify checked.
    pub checked_entries: u64,
    /// Notes (not damage) the core's verify reported.
    pub notes: usize,
    /// Storage bytes in use at the end.
    pub used_bytes: usize,
}

/// Where [`run`] was when an engine call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first open.
    Open,
    /// Appending.
    Append,
    /// Syncing.
    Sync,
    /// The open after the crash (recovery).
    Reopen,
    /// Reading entries back.
    Read,
    /// The clean close at the end.
    Close,
}

/// Why [`run`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The scenario's configuration is invalid.
    Config(ConfigError),
    /// An engine call failed.
    Shard {
        /// Where.
        phase: Phase,
        /// The engine's error.
        error: Error<RamError>,
    },
    /// The simulated power loss could not run.
    PowerLoss(RamError),
    /// Recovery ended outside `synced_end..=appended_end`: it lost synced
    /// entries or invented some.
    Recovered {
        /// Entries synced before the crash.
        synced_end: u64,
        /// Entries appended before the crash.
        appended_end: u64,
        /// Entries recovery found.
        recovered_end: u64,
    },
    /// Recovery set segments aside or recorded lost entries.
    RecoveryLoss(Box<RecoveryReport>),
    /// An entry read back differs from what was appended.
    Mismatch {
        /// The entry.
        entry: u64,
    },
    /// The engine numbered entries differently than expected.
    Numbering {
        /// The range expected.
        expected: core::ops::Range<u64>,
        /// The range `append` returned.
        got: core::ops::Range<u64>,
    },
    /// The core's verify found damage; the first finding.
    Damage {
        /// Findings of severity damage.
        count: usize,
        /// The first of them.
        first: Box<Finding>,
    },
    /// The core's verify checked a different number of entries than the
    /// shard holds.
    CheckCount {
        /// Entries the shard holds.
        expected: u64,
        /// Entries verify checked.
        checked: u64,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(e) => write!(f, "configuration: {e}"),
            // The core's error leaves its source out of its message.
            RunError::Shard { phase, error: error @ Error::Storage { source, .. } } => {
                write!(f, "{phase:?}: {error}: {source}")
            }
            RunError::Shard { phase, error } => write!(f, "{phase:?}: {error}"),
            RunError::PowerLoss(e) => write!(f, "power loss: {e}"),
            RunError::Recovered { synced_end, appended_end, recovered_end } => write!(
                f,
                "recovery found {recovered_end} entries, expected {synced_end}..={appended_end} (synced..=appended)"
            ),
            RunError::RecoveryLoss(r) => {
                write!(f, "recovery lost data: quarantined {:?}, missing {:?}", r.quarantined, r.missing)
            }
            RunError::Mismatch { entry } => write!(f, "entry {entry} reads back different bytes"),
            RunError::Numbering { expected, got } => write!(f, "append numbered {got:?}, expected {expected:?}"),
            RunError::Damage { count, first } => write!(f, "verify found {count} damage findings, first: {first}"),
            RunError::CheckCount { expected, checked } => {
                write!(f, "verify checked {checked} entries, the shard holds {expected}")
            }
        }
    }
}

impl core::error::Error for RunError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RunError::Shard { error, .. } => Some(error),
            RunError::PowerLoss(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for RunError {
    fn from(e: ConfigError) -> Self {
        RunError::Config(e)
    }
}

fn at(phase: Phase) -> impl FnOnce(Error<RamError>) -> RunError {
    move |error| RunError::Shard { phase, error }
}

/// Appends `count` entries from `first`, `per_call` per `append`, with
/// timestamps from the entry numbers (the device has no clock here).
fn append(shard: &mut RamShard<'_, '_>, first: u64, count: u64, per_call: u64) -> Result<(), RunError> {
    let mut next = first;
    while next < first + count {
        let n = per_call.min(first + count - next);
        let batch: Vec<Vec<u8>> = (next..next + n).map(payload).collect();
        let got = shard.append(next + 1, &batch).map_err(at(Phase::Append))?;
        if got != (next..next + n) {
            return Err(RunError::Numbering { expected: next..next + n, got });
        }
        next += n;
    }
    Ok(())
}

/// Reads entries `range` back and compares them with [`payload`].
fn read_back(shard: &RamShard<'_, '_>, range: core::ops::Range<u64>) -> Result<u64, RunError> {
    let mut out = Vec::new();
    for entry in range.clone() {
        out.clear();
        shard.read(entry, &mut out).map_err(at(Phase::Read))?;
        if out != payload(entry) {
            return Err(RunError::Mismatch { entry });
        }
    }
    Ok(range.end - range.start)
}

fn no_pause() {}

/// Runs `scenario` on `storage`: opens the shard, appends and syncs,
/// appends more without syncing, crashes (drops the shard without
/// `close`, then [`RamStorage::power_loss`]), reopens (recovery), reads
/// every recovered entry back, appends more, syncs and closes, and runs
/// the core's verify ([`check_shard`]), which must report no damage.
///
/// Works on an empty storage or one an earlier run left (entries continue
/// from where the shard ends).
pub fn run(storage: &RamStorage<'_>, scenario: &Scenario) -> Result<RunReport, RunError> {
    let sc = scenario;
    let (mut shard, _) = open(storage, sc.engine).map_err(at(Phase::Open))?;
    let start = shard.next_entry();
    let first = shard.first_entry();
    let mut next = start;
    for _ in 0..sc.synced_batches {
        append(&mut shard, next, u64::from(sc.batch), u64::from(sc.batch))?;
        next += u64::from(sc.batch);
        shard.sync().map_err(at(Phase::Sync))?;
    }
    append(&mut shard, next, u64::from(sc.unsynced), 1)?;
    let synced_end = shard.durable_end();
    let appended_end = shard.next_entry();

    // The crash: no close, and the storage loses what was not synced.
    drop(shard);
    storage.power_loss(sc.loss).map_err(RunError::PowerLoss)?;

    let (mut shard, recovery) = open(storage, sc.engine).map_err(at(Phase::Reopen))?;
    let recovered_end = shard.durable_end();
    if recovered_end < synced_end || recovered_end > appended_end || shard.next_entry() != recovered_end {
        return Err(RunError::Recovered { synced_end, appended_end, recovered_end });
    }
    if !recovery.quarantined.is_empty() || !recovery.missing.is_empty() || !recovery.lost_chunks.is_empty() {
        return Err(RunError::RecoveryLoss(Box::new(recovery)));
    }
    let mut verified = read_back(&shard, first..recovered_end)?;

    append(&mut shard, recovered_end, u64::from(sc.after_reopen), u64::from(sc.batch.max(1)))?;
    shard.sync().map_err(at(Phase::Sync))?;
    let final_end = shard.durable_end();
    verified += read_back(&shard, recovered_end..final_end)?;
    shard.close().map_err(at(Phase::Close))?;

    let mut findings = Vec::new();
    let check = check_shard(&storage, &mut findings, no_pause);
    let mut damage = findings.iter().filter(|f| f.severity == Severity::Damage);
    if let Some(first) = damage.next() {
        return Err(RunError::Damage { count: 1 + damage.count(), first: Box::new(first.clone()) });
    }
    if check.entries != final_end - check.first_entry || check.durable_end != final_end {
        return Err(RunError::CheckCount { expected: final_end - check.first_entry, checked: check.entries });
    }
    Ok(RunReport {
        start,
        synced_end,
        appended_end,
        recovered_end,
        torn_tails: recovery.torn.len(),
        scanned_bytes: recovery.scanned_bytes,
        verified,
        final_end,
        segments: check.segments,
        checked_entries: check.entries,
        notes: findings.len(),
        used_bytes: storage.used_bytes(),
    })
}
