//! Every `comet-core` type that appears in `comet`'s public API (error
//! variants, recovery and verify reports, `Reader::head`) is reachable as
//! `comet::...`, so users need not depend on `comet-core`.

use std::fs;

use comet::{
    Client, ConfigError, Corruption, DurableHead, Error, FileKind, IoOp, OffsetsError, Quarantine, QuarantineReason,
    RecoveryReport, ScanEnd, ShardId, TornTail, WireError,
};
use comet_tests::{crash_copy, payload, small_config};

fn one() -> ShardId {
    ShardId::new(1).unwrap()
}

/// Names each re-exported type in a signature, so this file stops compiling
/// if one disappears.
fn describe(e: &Error) -> String {
    let op: Option<&IoOp> = match e {
        Error::Io { op, .. } => Some(op),
        _ => None,
    };
    let corruption: Option<(&Corruption, &FileKind, &WireError)> = match e {
        Error::Corrupt { corruption, .. } => Some((corruption, &corruption.file, &corruption.error)),
        _ => None,
    };
    let config: Option<&ConfigError> = match e {
        Error::Config(c) => Some(c),
        _ => None,
    };
    let offsets: Option<&OffsetsError> = match e {
        Error::Offsets { source, .. } => Some(source),
        _ => None,
    };
    format!("{op:?} {corruption:?} {config:?} {offsets:?}")
}

#[test]
fn recovery_report_types_are_reachable_through_comet() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.storage.max_file_size = 1 << 20;
    let c = Client::open(dir.path(), cfg).unwrap();
    for i in 0..20 {
        c.append_shard(one(), &[payload(i)]).unwrap();
    }
    c.sync().unwrap();
    let head: Option<DurableHead> = c.reader(one()).unwrap().head().unwrap();
    assert_eq!(head.unwrap().end(), 20);
    let copy = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), copy.path());
    c.close().unwrap();
    // a torn tail past the durable head
    let seg = copy.path().join("shard-0001/log-00000000000000000000.comet");
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[5, 0, 0, 0, 1]);
    fs::write(&seg, &bytes).unwrap();
    let c = Client::open(copy.path(), cfg).unwrap();
    let report: RecoveryReport = c.recover_shard(one()).unwrap();
    let torn: &TornTail = &report.torn[0];
    assert_eq!(torn.end, ScanEnd::TornHeader);
    let quarantined: &[Quarantine] = &report.quarantined;
    assert!(quarantined.iter().all(|q| q.reason != QuarantineReason::Overlap));
    let manifest_error: Option<WireError> = report.manifest_error;
    assert!(manifest_error.is_none());
    let mut bad = cfg;
    bad.indexing.boundary_interval = 0;
    let e = Client::open(copy.path(), bad).unwrap_err();
    assert!(describe(&e).contains("boundary_interval"), "{}", describe(&e));
    c.close().unwrap();
}
