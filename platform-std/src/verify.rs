//! Read-only verification of a data directory and its repair: the core's
//! checker (`comet_core::check`) and repair (`Shard::repair`), shard by
//! shard.
//!
//! [`verify`] never opens a writer, never takes a lock, never maps a file
//! and never creates one, so it is safe beside a live writer. [`repair`]
//! takes every shard's writer lock, runs recovery, records every damaged
//! chunk as lost (the intact chunks of the same segment stay readable),
//! rewrites chunk tables, sets aside strays and bytes past a sealed
//! segment's end, and salvages `offsets.state`.

use std::path::Path;

use comet_core::ShardId;
use comet_core::error::IoOp;
use comet_core::shard::{RecoveryReport, RepairReport};
use comet_linux::{DirStorage, OffsetsSettled};

use crate::client::discover;
use crate::error::{Error, Result};
use crate::reader::shard_dir;
use crate::{Client, Config};

pub use comet_core::check::{Problem, Severity};

/// One problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The shard.
    pub shard: ShardId,
    /// Damage or note.
    pub severity: Severity,
    /// The segment (by base entry), if the problem is in or about one.
    pub segment: Option<u64>,
    /// The entries affected, if known.
    pub entries: Option<std::ops::Range<u64>>,
    /// What was found.
    pub problem: Problem,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {}", self.shard)?;
        if let Some(base) = self.segment {
            write!(f, " segment {}", comet_core::wire::segment_file_name(base))?;
        }
        if let Some(r) = &self.entries {
            write!(f, " entries {}..{}", r.start, r.end)?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What [`verify`] checked in one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCheck {
    /// The shard.
    pub shard: ShardId,
    /// Segment files checked.
    pub segments: u64,
    /// Entries whose bytes passed their checksums.
    pub entries: u64,
    /// Bytes that passed their checksums.
    pub bytes: u64,
    /// First retained entry (from the manifest).
    pub first_entry: u64,
    /// One past the last durable entry (from the head, else the manifest).
    pub durable_end: u64,
    /// Consumer groups with an offset in `offsets.state`.
    pub groups: u64,
    /// The shard directory holds comet data (a manifest, a head or a
    /// segment).
    pub has_data: bool,
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
        self.findings.iter().filter(|f| f.severity == Severity::Damage)
    }

    /// The findings of severity [`Severity::Note`].
    pub fn notes(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Note)
    }
}

fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

/// Verifies the data directory `dir` without changing anything (see the
/// module documentation and `comet_core::check`). Fails only if `dir`
/// cannot be listed; problems with files are findings.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let root = dir.as_ref();
    let meta = std::fs::metadata(root).map_err(|e| Error::io(IoOp::Open, root, e))?;
    if !meta.is_dir() {
        return Err(Error::io(IoOp::Open, root, std::io::Error::other("not a directory")));
    }
    let mut report = VerifyReport::default();
    for shard in discover(root)? {
        let sd = shard_dir(root, shard);
        let mut found = Vec::new();
        let check = match DirStorage::open_path(&sd) {
            Ok(storage) => comet_core::check::check_shard(&storage, &mut found, pause),
            Err(e) => {
                found.push(comet_core::check::Finding {
                    severity: Severity::Damage,
                    segment: None,
                    entries: None,
                    problem: Problem::Unreadable { file: ".".into(), error: e.to_string() },
                });
                comet_core::check::ShardCheck::default()
            }
        };
        report.findings.extend(found.into_iter().map(|f| Finding {
            shard,
            severity: f.severity,
            segment: f.segment,
            entries: f.entries,
            problem: f.problem,
        }));
        report.shards.push(ShardCheck {
            shard,
            segments: check.segments,
            entries: check.entries,
            bytes: check.bytes,
            first_entry: check.first_entry,
            durable_end: check.durable_end,
            groups: check.groups,
            has_data: check.has_data,
        });
    }
    Ok(report)
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

/// Repairs every shard of the data directory `dir` (see the module
/// documentation). A shard another process writes fails with
/// [`Error::Locked`]; the others are repaired first. Retention does not
/// run.
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<ShardRepair>> {
    let root = dir.as_ref();
    let meta = std::fs::metadata(root).map_err(|e| Error::io(IoOp::Open, root, e))?;
    if !meta.is_dir() {
        return Err(Error::io(IoOp::Open, root, std::io::Error::other("not a directory")));
    }
    let mut config = Config::default();
    config.retention.cleanup_interval = None;
    let client = Client::open(root, config)?;
    let mut out = Vec::new();
    let mut first_err = None;
    for shard in client.shards()? {
        match client.repair_shard(shard) {
            Ok(r) => out.push(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    client.close()?;
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
