//! The firmware's logic on the host: the same `run` (append, sync, crash by
//! dropping the shard without `close`, power loss, recovery, read back,
//! the core's verify), the storage's capacity limit under the engine, and
//! checks that verify does catch damage (so "no damage" means something).

use comet_bare_metal::firmware::ARENA_BYTES;
use comet_bare_metal::{PowerLoss, RamError, RamStorage, RunError, Scenario, open, payload, run};
use comet_core::platform::check::check_shard;
use comet_core::platform::naming::segment_file_name;
use comet_core::platform::storage::{ErrorKind, OpenMode, Storage, StorageError, StorageFile};
use comet_core::{Error, Severity};

fn no_pause() {}

/// Damage findings of the core's verify.
fn damage(storage: &RamStorage<'_>) -> Vec<String> {
    let mut findings = Vec::new();
    check_shard(&storage, &mut findings, no_pause);
    findings.iter().filter(|f| f.severity == Severity::Damage).map(|f| f.to_string()).collect()
}

#[test]
fn the_firmware_scenario_survives_its_crash() {
    let mut region = vec![0u8; ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    let sc = Scenario::small().unwrap();
    let r = run(&storage, &sc).unwrap();
    let synced_batches = u64::from(sc.synced_batches * sc.batch);
    assert_eq!(r.start, 0);
    assert!(r.synced_end >= synced_batches, "{r:?}");
    assert_eq!(r.appended_end, synced_batches + u64::from(sc.unsynced));
    assert!(r.appended_end > r.synced_end, "the crash had unsynced entries to lose: {r:?}");
    assert!((r.synced_end..=r.appended_end).contains(&r.recovered_end), "{r:?}");
    assert_eq!(r.final_end, r.recovered_end + u64::from(sc.after_reopen));
    assert_eq!(r.verified, r.final_end, "every entry was read back");
    assert_eq!(r.checked_entries, r.final_end);
    assert!(r.segments >= 3, "rotations happened: {r:?}");
    assert_eq!(r.notes, 0, "a clean close leaves nothing to note");
    assert!(damage(&storage).is_empty());
}

#[test]
fn a_second_run_continues_the_same_shard() {
    let mut region = vec![0u8; 2 * ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    let sc = Scenario::small().unwrap();
    let first = run(&storage, &sc).unwrap();
    let second = run(&storage, &sc).unwrap();
    assert_eq!(second.start, first.final_end);
    assert_eq!(second.verified, second.final_end, "the first run's entries read back too");
    assert_eq!(second.checked_entries, second.final_end);
}

#[test]
fn torn_unsynced_tails_are_cut_and_synced_entries_all_survive() {
    let mut torn = 0;
    let mut kept_unsynced = false;
    for keep in [0, 1, 5, 12, 13, 30, 47, 100, 333, 1000, usize::MAX] {
        let mut region = vec![0u8; ARENA_BYTES];
        let storage = RamStorage::new(&mut region);
        let mut sc = Scenario::small().unwrap();
        sc.synced_batches = 10;
        sc.unsynced = 25; // more than the write buffer holds: some reach the storage
        sc.loss = PowerLoss::KeepUnsynced(keep);
        let r = run(&storage, &sc).unwrap_or_else(|e| panic!("keep {keep}: {e}"));
        assert!(r.recovered_end >= r.synced_end, "keep {keep}: {r:?}");
        assert_eq!(r.verified, r.final_end);
        torn += r.torn_tails;
        kept_unsynced |= r.recovered_end > r.synced_end;
        if keep == 0 {
            assert_eq!(r.recovered_end, r.synced_end, "nothing unsynced survives");
        }
    }
    assert!(torn > 0, "some power loss left a partial entry for recovery to cut");
    assert!(kept_unsynced, "whole entries that survived unsynced are recovered");
}

#[test]
fn a_full_storage_is_a_typed_error_and_the_synced_entries_survive_a_crash() {
    let mut region = vec![0u8; 6 * 1024];
    let storage = RamStorage::new(&mut region);
    let sc = Scenario::small().unwrap();
    let (mut shard, _) = open(&storage, sc.engine).unwrap();
    let mut next = 0u64;
    let err = loop {
        let batch: Vec<Vec<u8>> = (next..next + 5).map(payload).collect();
        match shard.append(next + 1, &batch).and_then(|got| {
            next = got.end;
            shard.sync()
        }) {
            Ok(()) => assert!(next < 10_000, "the storage never filled up"),
            Err(e) => break e,
        }
    };
    match &err {
        Error::Storage { source, .. } => {
            assert!(matches!(source, RamError::Full { .. } | RamError::TooManyFiles), "{err:?}");
            assert_eq!(source.kind(), ErrorKind::StorageFull);
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    let synced_end = shard.durable_end();
    assert!(synced_end > 20, "the storage held a few batches first ({synced_end})");
    assert!(storage.free_bytes() < 2 * comet_bare_metal::BLOCK_SIZE);

    // Crash: no close; whatever was not synced is lost.
    drop(shard);
    storage.power_loss(PowerLoss::DropUnsynced).unwrap();
    let (shard, recovery) = open(&storage, sc.engine).unwrap();
    assert!(shard.durable_end() >= synced_end, "{recovery:?}");
    assert!(recovery.missing.is_empty() && recovery.quarantined.is_empty(), "{recovery:?}");
    let mut out = Vec::new();
    for entry in 0..synced_end {
        out.clear();
        shard.read(entry, &mut out).unwrap();
        assert_eq!(out, payload(entry), "entry {entry}");
    }
    drop(shard);
    assert_eq!(damage(&storage), Vec::<String>::new());
}

#[test]
fn run_reports_a_full_storage_as_a_typed_error() {
    let mut region = vec![0u8; 4 * 1024];
    let storage = RamStorage::new(&mut region);
    let err = run(&storage, &Scenario::small().unwrap()).unwrap_err();
    let RunError::Shard { error: Error::Storage { source, .. }, .. } = &err else {
        panic!("expected a storage error, got {err:?}");
    };
    assert_eq!(source.kind(), ErrorKind::StorageFull, "{err}");
    assert!(err.to_string().contains("storage full"), "{err}");
}

#[test]
fn verify_reports_a_flipped_bit_in_a_sealed_segment() {
    let mut region = vec![0u8; ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    run(&storage, &Scenario::small().unwrap()).unwrap();
    assert!(damage(&storage).is_empty());
    assert!(storage.corrupt(&segment_file_name(0), 40, 0x01));
    let found = damage(&storage);
    assert!(!found.is_empty(), "verify missed a flipped bit");
    // The engine refuses to hand out the damaged chunk.
    let (shard, _) = open(&storage, Scenario::small().unwrap().engine).unwrap();
    assert!(matches!(shard.read(0, &mut Vec::new()), Err(Error::Damaged(_))));
}

#[test]
fn verify_reports_synced_bytes_that_went_missing() {
    let mut region = vec![0u8; ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    let r = run(&storage, &Scenario::small().unwrap()).unwrap();
    // Cut the active segment (the newest) below what the head says is synced.
    let mut newest = None;
    (&storage)
        .list(&mut |name| {
            if let Some(base) = comet_core::platform::naming::parse_segment_file_name(name) {
                newest = newest.max(Some(base));
            }
        })
        .unwrap();
    let name = segment_file_name(newest.unwrap());
    let f = (&storage).open(&name, OpenMode::ReadWrite).unwrap();
    let len = f.len().unwrap();
    assert!(len > 0, "{r:?}");
    f.set_len(len - 1).unwrap();
    drop(f);
    assert!(!damage(&storage).is_empty(), "verify missed a lost synced byte");
}
