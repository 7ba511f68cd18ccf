//! `comet verify` and `comet repair` on intact, damaged and torn logs.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::{INTERVAL, PER_SEGMENT, assert_error, default_interval_log, flip, run, s, segment, small_log, snapshot};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}): {out}"))
}

#[test]
fn verify_passes_on_an_intact_log_and_counts_what_it_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shard 0001: 3 segments, 100 entries"), "{}", r.stdout);
    assert!(r.stdout.contains("verify: ok"), "{}", r.stdout);
    assert!(!r.stdout.contains("DAMAGE"), "{}", r.stdout);

    let r = run(["verify", "--json", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    // The documented shape, key order included.
    assert!(
        r.stdout
            .starts_with(r#"{"ok":true,"damage":0,"notes":0,"shards":[{"shard":1,"segments":3,"entries":100,"bytes":"#)
    );
    assert!(r.stdout.ends_with(",\"first_entry\":0,\"durable_end\":100,\"groups\":0}],\"findings\":[]}\n"), "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["ok"], true);
    assert_eq!(v["damage"], 0);
    assert_eq!(v["shards"][0]["shard"], 1);
    assert_eq!(v["shards"][0]["entries"], 100);
    assert_eq!(v["shards"][0]["durable_end"], 100);
}

#[test]
fn verify_counts_in_words_that_agree_with_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 1);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("shard 0001: 1 segment, 1 entry (100 bytes) checked, entries 0..1, 0 groups\n"),
        "{r:?}"
    );
    assert!(r.stdout.ends_with("verify: ok: 1 shard, 1 entry checked, 0 notes\n"), "{r:?}");
}

#[test]
fn verify_of_a_directory_without_comet_data_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in [s(tmp.path()), "/etc"] {
        for json in [false, true] {
            let mut args = vec!["verify", dir];
            if json {
                args.push("--json");
            }
            let r = run(&args);
            assert_error(&r, "no comet data here (expected shard-NNNN directories); pass --allow-empty");
            assert!(r.stdout.is_empty(), "{r:?}");
        }
    }
    assert_error(&run(["repair", s(tmp.path())]), "no comet data here");
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "repair created nothing");
    let r = run(["verify", "--allow-empty", s(tmp.path())]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "verify: ok: 0 shards, 0 entries checked, 0 notes\n"), "{r:?}");
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_named_by_shard_segment_and_entry_range() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    // Entry 25 of segment 0 (100 bytes per entry) lies in chunk 2: entries 20..30.
    flip(&segment(&dir, 0), 25 * 100 + 50);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("DAMAGE shard 0001 segment log-00000000000000000000.comet entries 20..30: chunk 2"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("verify: DAMAGED: 1 problem, 0 notes in 1 shard\n"), "{}", r.stdout);

    let r = run(["verify", "--json", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["ok"], false);
    let f = &v["findings"][0];
    assert_eq!(f["shard"], 1);
    assert_eq!(f["severity"], "damage");
    assert_eq!(f["kind"], "checksum");
    assert_eq!(f["segment"], "log-00000000000000000000.comet");
    assert_eq!(f["entries"], serde_json::json!([20, 30]));
}

#[test]
fn verify_changes_nothing_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    flip(&segment(&dir, PER_SEGMENT), 10);
    std::fs::write(dir.join("shard-0001").join("comet.state"), [7u8; 1024]).unwrap();
    let before = snapshot(&dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(run(["verify", s(&dir)]).code, 1);
    assert_eq!(run(["verify", "--json", s(&dir)]).code, 1);
    assert_eq!(snapshot(&dir), before, "verify must not create, change or touch files");
}

#[test]
fn repair_records_only_the_damaged_chunk_as_lost_and_verify_then_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    flip(&segment(&dir, 0), 25 * 100 + 50);
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("shard 0001: recorded chunk 2 of log-00000000000000000000.comet as lost"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("verify: ok"), "{}", r.stdout);
    assert!(segment(&dir, 0).exists(), "the segment stays: its other chunks are intact");
    assert!(
        !std::fs::read_dir(dir.join("shard-0001"))
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().contains("quarantined") })
    );

    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 chunk(s) recorded as lost earlier"), "{}", r.stdout);
    // Every other entry is intact and readable under its number, also in
    // the damaged segment.
    let r = run(["read", s(&dir), "test:shard:0001", "--from", "0", "--count", "20", "--format", "hex"]);
    assert_eq!((r.code, r.stdout.lines().count()), (0, 20), "{r:?}");
    let r = run(["read", s(&dir), "test:shard:0001", "--from", "20", "--count", "1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("entry 20 lies in lost range 20..30"), "{r:?}");
    let r = run(["read", s(&dir), "test:shard:0001", "--from", "30", "--count", "70", "--format", "hex"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 70);
    assert!(r.stdout.starts_with("30\t"), "{}", r.stdout);
    // A second repair has nothing left to do.
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shard 0001: ok"), "{}", r.stdout);
}

#[test]
fn flipped_byte_in_the_active_segment_after_a_clean_close_is_found_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    // Segment 80 is active: entry 85 lies in its first chunk (entries 80..90).
    flip(&segment(&dir, 2 * PER_SEGMENT), 5 * 100 + 20);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("DAMAGE shard 0001 segment log-00000000000000000080.comet entries 80..90"),
        "{}",
        r.stdout
    );
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("recorded chunk 0 of log-00000000000000000080.comet as lost"), "{}", r.stdout);
    assert!(r.stdout.contains("sealed the active segment"), "{}", r.stdout);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(["read", s(&dir), "test:shard:0001", "--from", "90", "--format", "hex"]);
    assert_eq!((r.code, r.stdout.lines().count()), (0, 10), "the rest of the segment: {r:?}");
    // Appends continue after the sealed segment, numbers never reused.
    let r = common::run_with_stdin(["append", s(&dir), "test:shard:0001", "--sync"], b"next\n");
    assert!(r.stdout.contains("as entries 100..101"), "{r:?}");
}

#[test]
fn corrupt_manifest_is_damage_and_repair_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = default_interval_log(tmp.path(), 100);
    flip(&dir.join("shard-0001/index.bin"), 20);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("DAMAGE shard 0001: index.bin is corrupt"), "{}", r.stdout);
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shard 0001: rebuilt index.bin from the segment files"), "{}", r.stdout);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("index.bin.corrupt was set aside"), "{}", r.stdout);
    let r = run(["read", s(&dir), "test:shard:0001", "--format", "sha256"]);
    assert_eq!(r.stdout.lines().count(), 100, "{r:?}");
}

#[test]
fn missing_manifest_is_damage_and_repair_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = default_interval_log(tmp.path(), 100);
    std::fs::remove_file(dir.join("shard-0001/index.bin")).unwrap();
    let r = run(["verify", "--json", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(r#""kind":"manifest_missing""#), "{}", r.stdout);
    let r = run(["repair", s(&dir)]);
    assert!(r.stdout.contains("rebuilt the missing index.bin"), "{r:?}");
    assert_eq!(run(["verify", s(&dir)]).code, 0);
}

#[test]
fn corrupt_durable_head_is_damage_and_repair_resets_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    flip(&dir.join("shard-0001/comet.state"), 20);
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("durable head in comet.state is corrupt"), "{}", r.stdout);
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("reset the invalid durable head"), "{}", r.stdout);
    assert_eq!(run(["verify", s(&dir)]).code, 0);
    let r = run(["read", s(&dir), "test:shard:0001", "--from", "99"]);
    assert_eq!(r.stdout, format!("{}\n", String::from_utf8(common::payload(99)).unwrap()), "{r:?}");
}

#[test]
fn unsynced_tail_is_a_note_and_repair_truncates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    let active = segment(&dir, 80);
    let mut b = std::fs::read(&active).unwrap();
    assert_eq!(b.len(), 2000);
    b.extend_from_slice(&[0x05, 0, 0, 0, 1, 2, 3]); // a torn header
    std::fs::write(&active, b).unwrap();
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("note   shard 0001 segment log-00000000000000000080.comet"), "{}", r.stdout);
    assert!(r.stdout.contains("7 bytes after the durable head are not synced"), "{}", r.stdout);
    let r = run(["repair", s(&dir)]);
    assert!(r.stdout.contains("truncated log-00000000000000000080.comet at byte 2000 (removed 7 bytes"), "{r:?}");
    assert_eq!(std::fs::metadata(&active).unwrap().len(), 2000);
    let r = run(["verify", s(&dir)]);
    assert!(!r.stdout.contains("not synced"), "{r:?}");
}

#[test]
fn damaged_offsets_table_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    assert_eq!(run(["consume", s(&dir), "--group", "billing", "--count", "5"]).code, 0);
    let r = run(["verify", s(&dir)]);
    assert!(r.stdout.contains(", 1 group\n"), "{r:?}");
    flip(&dir.join("shard-0001/offsets.state"), 5); // the magic
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("offsets.state is corrupt"), "{}", r.stdout);
}

#[test]
fn truncated_sealed_segment_is_a_length_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    let seg = segment(&dir, PER_SEGMENT);
    let b = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &b[..b.len() - 30]).unwrap();
    let r = run(["verify", "--json", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = json(&r.stdout);
    let kinds: Vec<&str> = v["findings"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect();
    assert!(kinds.contains(&"length"), "{kinds:?}");
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(run(["verify", s(&dir)]).code, 0);
    // Entries before and after the lost segment are still there.
    let r = run(["read", s(&dir), "test:shard:0001", "--count", &INTERVAL.to_string()]);
    assert_eq!(r.stdout.lines().count(), 10, "{r:?}");
}

#[test]
fn repair_fails_on_a_shard_another_writer_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 50);
    flip(&segment(&dir, 0), 7);
    let mut cfg = comet::Config::default();
    cfg.retention.cleanup_interval = None;
    let writer = comet::Client::open(&dir, cfg).unwrap();
    writer.append("test:shard:0001", &[b"held"]).unwrap();
    let r = run(["repair", s(&dir)]);
    assert_error(&r, "locked by another writer");
    assert!(segment(&dir, 0).exists(), "nothing renamed under a live writer");
    writer.close().unwrap();
}

#[test]
fn missing_or_invalid_directories_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_error(&run(["verify", s(&missing)]), "no such directory");
    assert_error(&run(["verify", "--json", s(&missing)]), "no such directory");
    assert_error(&run(["repair", s(&missing)]), "no such directory");
    assert!(!missing.exists(), "repair must not create the directory");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert_error(&run(["verify", s(&file)]), "not a directory");
    // A directory without shards is a usage error unless --allow-empty.
    assert_error(&run(["verify", s(tmp.path())]), "no comet data here");
    let r = run(["verify", "--allow-empty", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("verify: ok: 0 shards"), "{}", r.stdout);
    assert_eq!(run(["verify"]).code, 2, "usage error");
}

#[test]
fn garbage_in_any_file_is_reported_never_a_crash() {
    let files = ["index.bin", "comet.state", "offsets.state", "log-00000000000000000000.comet"];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for file in files {
        for len in [0usize, 1, 13, 64, 1024, 65_600] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = small_log(tmp.path(), 60);
            run(["consume", s(&dir), "--group", "g", "--count", "3"]);
            let junk: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            std::fs::write(dir.join("shard-0001").join(file), junk).unwrap();
            for args in [vec!["verify", s(&dir)], vec!["verify", "--json", s(&dir)]] {
                let r = run(args);
                assert!(r.code == 0 || r.code == 1, "{file} x {len}: {r:?}");
                assert!(r.stderr.is_empty(), "{file} x {len}: {r:?}");
            }
            let r = run(["repair", s(&dir)]);
            assert!(!r.stderr.contains("panicked"), "{file} x {len}: {r:?}");
        }
    }
}

#[test]
fn verify_reports_no_damage_while_a_writer_rotates_syncs_and_deletes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let mut cfg = comet::Config::default();
    cfg.storage.max_file_size = 4096;
    cfg.indexing.boundary_interval = 7;
    cfg.retention.max_shard_size = Some(32 << 10);
    cfg.retention.protect_unconsumed = false;
    cfg.retention.cleanup_interval = None;
    let client = comet::Client::open(&dir, cfg).unwrap();
    client.append("live:shard:0002", &[b"first"]).unwrap();
    client.sync().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, done) = (client.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..4000u64 {
                let payload = common::payload(i);
                client.append("live:shard:0002", &[&payload[..(i % 80) as usize]]).unwrap();
                if i % 50 == 0 {
                    client.sync().unwrap();
                }
                if i % 400 == 0 {
                    client.run_retention_now().unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut runs = 0;
    while runs < 10 || !done.load(Ordering::Acquire) {
        let r = run(["verify", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(!r.stdout.contains("DAMAGE"), "{}", r.stdout);
        runs += 1;
    }
    writer.join().unwrap();
    let c = client.stats().unwrap().counters;
    assert!(c.get(comet::Counter::Rotations) > 10, "rotations: {c:?}");
    assert!(c.get(comet::Counter::SegmentsDeleted) > 0, "deletions: {c:?}");
    client.close().unwrap();
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
}
