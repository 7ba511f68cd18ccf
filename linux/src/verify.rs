//! Read-only verification of a data directory and its repair: the core's
//! checker (`comet_core::platform::check`) and repair (`Shard::repair`), shard by
//! shard, for both platforms.
//!
//! [`verify`] never opens a writer, never takes a lock, never maps a file
//! and never creates one, so it is safe beside a live writer. [`repair`]
//! takes every shard's writer lock, runs recovery, records every damaged
//! chunk as lost (the intact chunks of the same segment stay readable),
//! rewrites chunk tables, sets aside strays and bytes past a sealed
//! segment's end, and salvages `offsets.state`.

use std::io;
use std::path::{Path, PathBuf};

use comet_core::platform::check;
use comet_core::platform::shard::{EngineConfig, Shard};
use comet_core::platform::state::offsets::OFFSETS_FILE;
use comet_core::platform::wire::{Compressor, NoCompression};
use comet_core::{Counter, EngineSettings, IoOp, RecoveryReport, RepairReport, ShardId};

use crate::error::Error;
use crate::files::{OffsetsSettled, check_root, list_shards, settle_offsets, shard_path};
use crate::head::MappedHead;
use crate::storage::DirStorage;
use crate::writer::{OpenedWriter, open_writer};

use comet_core::{Problem, Severity};

/// An I/O error on `path`.
fn io_err(op: IoOp, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::io(op, path, source)
}

/// One problem [`verify`] found: which shard, and the core's finding
/// ([`comet_core::Finding`]: severity, segment, entries, problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The shard.
    pub shard: ShardId,
    /// What the core's checker found in it.
    pub finding: comet_core::Finding,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let located = self.finding.segment.is_some() || self.finding.entries.is_some();
        write!(f, "shard {}{}{}", self.shard, if located { " " } else { ": " }, self.finding)
    }
}

/// What [`verify`] checked in one shard: the core's figures for its
/// directory ([`comet_core::ShardCheck`]: segments, entries and bytes checked,
/// bounds, groups, whether it holds comet data) and which shard it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCheck {
    /// The shard.
    pub shard: ShardId,
    /// What the core's checker counted in it.
    pub check: comet_core::ShardCheck,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Per shard, by id.
    pub shards: Vec<ShardCheck>,
    /// Everything found, shard by shard.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True if nothing is damaged (notes allowed).
    pub fn is_ok(&self) -> bool {
        self.damage().next().is_none()
    }

    /// The findings of severity [`Severity::Damage`].
    pub fn damage(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.finding.severity == Severity::Damage)
    }

    /// The findings of severity [`Severity::Note`].
    pub fn notes(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.finding.severity == Severity::Note)
    }
}

/// What [`repair`] did to one shard.
#[derive(Debug, Clone)]
pub struct ShardRepair {
    /// The shard.
    pub shard: ShardId,
    /// What recovery did when the shard was opened for writing.
    pub recovery: RecoveryReport,
    /// What the repair itself did.
    pub repair: RepairReport,
    /// What was done to `offsets.state`.
    pub offsets: OffsetsSettled,
}

fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

/// Verifies the data directory `dir` without changing anything (see the
/// module documentation and `comet_core::platform::check`). Fails only if `dir`
/// cannot be listed; problems with files are findings.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, Error> {
    let root = dir.as_ref();
    check_root(root)?;
    let mut report = VerifyReport::default();
    for shard in list_shards(root)? {
        let mut found = Vec::new();
        let check = match DirStorage::open_path(&shard_path(root, shard)) {
            Ok(storage) => check::check_shard(&storage, &mut found, pause),
            Err(e) => {
                found.push(comet_core::Finding {
                    severity: Severity::Damage,
                    segment: None,
                    entries: None,
                    problem: Problem::Unreadable { file: ".".into(), error: e.to_string() },
                });
                comet_core::ShardCheck::default()
            }
        };
        report.findings.extend(found.into_iter().map(|finding| Finding { shard, finding }));
        report.shards.push(ShardCheck { shard, check });
    }
    Ok(report)
}

/// What opening a shard for [`repair_with`] found before the repair
/// itself, for the platform's logs.
#[derive(Debug, Clone, Copy)]
pub struct RepairOpened<'a> {
    /// The shard.
    pub shard: ShardId,
    /// `comet.state` had the wrong size and was set aside
    /// ([`STATE_QUARANTINE`](crate::STATE_QUARANTINE)) and replaced.
    pub state_replaced: bool,
    /// What opening did to `offsets.state` (before the repair heals it).
    pub offsets: &'a OffsetsSettled,
    /// What recovery did.
    pub recovery: &'a RecoveryReport,
}

/// Repairs every shard of the data directory `dir` (see the module
/// documentation) with the default configuration. A shard another process
/// writes fails with [`Error::Locked`]; the others are repaired first.
/// Retention does not run.
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<ShardRepair>, Error> {
    repair_with(dir, |_| {})
}

/// [`repair`], calling `opened` for each shard once it is open for writing
/// and recovered, before the repair itself.
pub fn repair_with(dir: impl AsRef<Path>, mut opened: impl FnMut(RepairOpened<'_>)) -> Result<Vec<ShardRepair>, Error> {
    let root = dir.as_ref();
    check_root(root)?;
    let engine = EngineConfig::from_settings(&EngineSettings::default()).map_err(Error::Config)?;
    let mut out = Vec::new();
    let mut first_err = None;
    let mut first_close_err = None;
    for shard in list_shards(root)? {
        let (repaired, closed) = repair_shard(root, shard, engine, &mut opened);
        match repaired {
            Ok(r) => out.push(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = closed {
            first_close_err.get_or_insert(e);
        }
    }
    // A failed close is reported first, as the std client's close would.
    match first_close_err.or(first_err) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Repairs one shard: opens it for writing ([`open_writer`]), repairs it, settles
/// `offsets.state` with healing, and closes it. Returns the repair's result
/// and the close's (`Ok` if the shard never opened).
fn repair_shard(
    root: &Path,
    shard: ShardId,
    engine: EngineConfig,
    opened: &mut impl FnMut(RepairOpened<'_>),
) -> (Result<ShardRepair, Error>, Result<(), Error>) {
    let path = shard_path(root, shard);
    let open = (|| {
        let root_dir = DirStorage::open_path(root).map_err(io_err(IoOp::Open, root))?;
        let w = open_writer(&root_dir, shard, engine, NoCompression, crate::now_ns())?;
        opened(RepairOpened { shard, state_replaced: w.state_replaced, offsets: &w.offsets, recovery: &w.report });
        Ok(w)
    })();
    let OpenedWriter { mut engine, lock: _lock, state, report: recovery, .. } = match open {
        Ok(o) => o,
        Err(e) => return (Err(e), Ok(())),
    };
    let repaired = repair_open(shard, &mut engine, recovery, |c, v| state.add_counter(c, v));
    let closed = engine.close_with(|c, v| state.add_counter(c, v)).map_err(|e| Error::from_core(shard, &path, e));
    (repaired, closed)
}

/// Repairs shard `shard`, open for writing in `engine` (recovered, with
/// `recovery` its report): records damaged chunks as lost and rewrites
/// tables ([`Shard::repair`]), hands the engine's counters to `counters`,
/// then settles `offsets.state` with healing. What [`repair`] does to each
/// shard, and `comet`'s `Client::repair_shard` to one it writes.
pub fn repair_open<C: Compressor>(
    shard: ShardId,
    engine: &mut Shard<DirStorage, MappedHead, C>,
    recovery: RecoveryReport,
    counters: impl FnMut(Counter, u64),
) -> Result<ShardRepair, Error> {
    let path = engine.storage().path().to_path_buf();
    let repair = engine.repair().map_err(|e| Error::from_core(shard, &path, e))?;
    engine.drain_counters(counters);
    let offsets = settle_offsets(engine.storage(), true, crate::now_ns())
        .map_err(|e| Error::io(IoOp::Open, path.join(OFFSETS_FILE), e))?;
    Ok(ShardRepair { shard, recovery, repair, offsets })
}
