//! Process slots and shard ownership inside one test process (the
//! multi-process suite, `multi_process.rs`, kills real processes).
//! Regressions for the Go package's B-21 and B-28.

use comet::{Client, Config, Error, PROCESS_DIR, ProcessSlot, ShardId};

fn config(processes: u32) -> Config {
    let mut c = Config::default();
    c.concurrency.shard_count = 16;
    c.concurrency.process_count = processes;
    c
}

#[test]
fn slots_live_in_the_data_directory_and_a_process_holds_one_per_role() {
    let dir = tempfile::tempdir().unwrap();
    let slot = ProcessSlot::acquire(dir.path(), "writers", 4).unwrap();
    assert_eq!((slot.index(), slot.count()), (0, 4));
    assert!(dir.path().join(PROCESS_DIR).join("writers-0000.lock").is_file(), "the slot file is in the data directory");
    // a second slot of the same role in the same directory is refused
    assert!(
        matches!(ProcessSlot::acquire(dir.path(), "writers", 4), Err(Error::SlotHeld { role }) if role == "writers")
    );
    // another role, or another directory, is independent
    let other_role = ProcessSlot::acquire(dir.path(), "consumers", 2).unwrap();
    assert_eq!(other_role.index(), 0);
    let dir2 = tempfile::tempdir().unwrap();
    assert_eq!(ProcessSlot::acquire(dir2.path(), "writers", 4).unwrap().index(), 0);
    // released on drop: the next holder takes the same slot
    drop(slot);
    assert_eq!(ProcessSlot::acquire(dir.path(), "writers", 4).unwrap().index(), 0);
}

#[test]
fn bad_roles_and_counts_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["", "a/b", "..", &"r".repeat(48), "nul\0"] {
        assert!(matches!(ProcessSlot::acquire(dir.path(), role, 2), Err(Error::InvalidGroup(_))), "{role:?}");
    }
    for count in [0, 1025] {
        assert!(matches!(ProcessSlot::acquire(dir.path(), "writers", count), Err(Error::Config(_))), "{count}");
    }
    assert!(!dir.path().join(PROCESS_DIR).join("writers-0000.lock").exists());
}

#[test]
fn a_process_writes_only_the_shards_it_owns_and_picks_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::open_process(dir.path(), config(4)).unwrap();
    assert_eq!(c.process_id(), 0, "the first slot");
    // a process never holds two writer slots of one directory
    assert!(matches!(Client::open_process(dir.path(), config(4)), Err(Error::SlotHeld { .. })));
    for k in 0..1000u32 {
        let s = c.pick_shard(&k.to_le_bytes());
        assert_eq!(s.get() % 4, 0, "key {k} picked shard {s}, not owned");
        assert!(c.owns(s));
    }
    let s1 = ShardId::new(1).unwrap();
    assert!(!c.owns(s1));
    match c.append_shard(s1, &[b"x"]) {
        Err(Error::NotOwned { shard, owner: 1, process: 0 }) => assert_eq!(shard, s1),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("shard-0001").exists(), "the refused append created nothing");
    let s4 = ShardId::new(4).unwrap();
    assert_eq!(c.append_shard(s4, &[b"mine"]).unwrap().entries, 0..1);
    c.close().unwrap();
    // the slot is free again once the client is closed
    let again = Client::open_process(dir.path(), config(4)).unwrap();
    assert_eq!(again.process_id(), 0);
    again.close().unwrap();
}

#[test]
fn another_client_never_counts_entries_that_are_not_durable() {
    // B-21: visibility comes from the durable head, never from how many
    // numbers the writer has handed out.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1);
    cfg.storage.flush_interval = std::time::Duration::from_secs(3600);
    let w = Client::open(dir.path(), cfg).unwrap();
    let s = ShardId::new(3).unwrap();
    assert_eq!(w.append_shard(s, &[b"a".as_slice(), b"b", b"c"]).unwrap().entries, 0..3);
    let r = Client::open_read_only(dir.path(), config(1)).unwrap();
    assert_eq!(r.durable_len(s).unwrap(), 0);
    assert!(matches!(r.reader(s).unwrap().read(0), Err(Error::Unavailable { entry: 0, .. })));
    w.sync().unwrap();
    assert_eq!(r.durable_len(s).unwrap(), 3);
    assert_eq!(r.reader(s).unwrap().read(2).unwrap().data(), b"c");
    w.close().unwrap();
}
