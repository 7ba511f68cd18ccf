//! `comet_embedded::{verify, repair}` (the shared Linux layer's) on a
//! directory `comet-embedded` wrote: a flipped payload byte is reported as
//! damage, repair records only its chunk as lost, and verify then passes.
#![allow(clippy::field_reassign_with_default, clippy::cast_possible_truncation)]

mod common;

use std::os::unix::fs::FileExt;

use comet_embedded::{Error, IoOp, Log};
use common::{S0, payload, small};

#[test]
fn verify_reports_a_flipped_byte_and_repair_fixes_it() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    for i in 0..100 {
        log.append(S0, 1 + i, &[payload(i)]).unwrap();
    }
    log.close().unwrap();
    assert!(comet_embedded::verify(t.path()).unwrap().is_ok());

    // A payload byte of entry 10 (chunk 8..12 at interval 4) in segment 0.
    let seg = t.path().join("shard-0000/log-00000000000000000000.comet");
    let bytes = std::fs::read(&seg).unwrap();
    let mut at = 0usize;
    for _ in 0..10 {
        at += 12 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    assert!(payload(10).len() > 4);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[bytes[at + 12 + 3] ^ 0x01], (at + 12 + 3) as u64).unwrap();
    drop(f);

    let report = comet_embedded::verify(t.path()).unwrap();
    assert!(!report.is_ok(), "{:?}", report.findings);
    let damage: Vec<_> = report.damage().collect();
    assert!(!damage.is_empty() && damage.iter().all(|d| d.shard == S0 && d.finding.segment == Some(0)), "{damage:?}");

    let repaired = comet_embedded::repair(t.path()).unwrap();
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].shard, S0);
    assert_eq!(repaired[0].repair.lost_chunks, [(0, 2)], "only the damaged chunk");
    let report = comet_embedded::verify(t.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);

    // Every entry outside the lost chunk reads back; the chunk is lost.
    let mut log = Log::open(t.path(), small(), 2).unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..100 {
        match log.read_into(S0, i, &mut buf) {
            Ok(e) => assert_eq!(&buf[..e.len], &payload(i)[..], "entry {i}"),
            Err(Error::Lost { start: 8, end: 12, .. }) => {
                assert!((8..12).contains(&i), "entry {i} lost");
            }
            Err(e) => panic!("entry {i}: {e:?}"),
        }
    }
    log.close().unwrap();
}

#[test]
fn verify_and_repair_fail_typed() {
    let t = tempfile::tempdir().unwrap();
    // Not a directory: the path and the OS's kind, not a string.
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for e in [comet_embedded::verify(&file).unwrap_err(), comet_embedded::repair(&file).unwrap_err()] {
        match &e {
            Error::Io { op: IoOp::Open, path, source } => {
                assert_eq!(path, &file);
                assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory);
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(e.to_string(), format!("open {}", file.display()));
    }

    // A shard a log writes: repair reports the lock and its holder.
    let dir = t.path().join("data");
    let mut log = Log::open(&dir, small(), 1).unwrap();
    log.append(S0, 1, &[payload(1)]).unwrap();
    match comet_embedded::repair(&dir).unwrap_err() {
        Error::Locked { shard, pid } => {
            assert_eq!(shard, S0);
            assert_eq!(pid, Some(std::process::id()));
        }
        e => panic!("{e:?}"),
    }
    // verify never takes the lock.
    assert!(comet_embedded::verify(&dir).unwrap().is_ok());
    log.close().unwrap();
    assert_eq!(comet_embedded::repair(&dir).unwrap().len(), 1);
}
