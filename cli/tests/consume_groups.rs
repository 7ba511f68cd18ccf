//! `comet consume` and `comet groups`: offsets that move only on ack,
//! stream patterns, and bad group names.

mod common;

use common::{assert_error, flip, run, run_with_stdin, s, segment, small_log};

/// Shards 1, 2 and 12 with 5, 3 and 4 entries.
fn three_shards(dir: &std::path::Path) {
    for (stream, n) in [("m:shard:0001", 5), ("m:shard:0002", 3), ("m:shard:0012", 4)] {
        let input: String = (0..n).map(|i| format!("{stream}/{i}\n")).collect();
        let r = run_with_stdin(["append", s(dir), stream], input.as_bytes());
        assert_eq!(r.code, 0, "{r:?}");
    }
}

/// `(shard, entry)` of each line `--format jsonl` printed.
fn jsonl_ids(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["shard"].as_u64().unwrap(), v["entry"].as_u64().unwrap()))
        .collect()
}

#[test]
fn consume_acks_what_it_printed_and_resumes_there() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let r = run(["consume", s(tmp.path()), "--group", "billing", "--count", "4"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "m:shard:0001/0\nm:shard:0001/1\nm:shard:0001/2\nm:shard:0001/3\n");
    assert!(r.stderr.contains("consumed 4 entries from 3 shards as group \"billing\" (acked); lag 8"), "{r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "billing", "--format", "jsonl"]);
    assert_eq!(jsonl_ids(&r.stdout), [(1, 4), (2, 0), (2, 1), (2, 2), (12, 0), (12, 1), (12, 2), (12, 3)]);
    assert!(r.stderr.contains("lag 0"), "{r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "billing"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
}

#[test]
fn no_ack_leaves_offsets_where_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let r = run(["consume", s(tmp.path()), "--group", "peek", "--no-ack", "--count", "2"]);
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    assert!(r.stderr.contains("(not acked); lag 12"), "{r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "peek", "--no-ack", "--count", "2"]);
    assert_eq!(r.stdout, "m:shard:0001/0\nm:shard:0001/1\n", "the same entries again: {r:?}");
    let r = run(["groups", s(tmp.path())]);
    assert!(!r.stdout.contains("peek"), "a group that never acked has no offsets: {r:?}");
}

#[test]
fn stream_patterns_select_shards() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let r = run(["consume", s(tmp.path()), "--group", "a", "--stream", "m:shard:0002"]);
    assert_eq!(r.stdout, "m:shard:0002/0\nm:shard:0002/1\nm:shard:0002/2\n", "{r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "b", "--stream", "m:shard:001?", "--format", "sha256"]);
    assert_eq!(r.stdout.lines().count(), 4, "only shard 12: {r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "c", "--stream", "m:shard:000*"]);
    assert_eq!(r.stdout.lines().count(), 8, "shards 1 and 2: {r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "d", "--stream", "other:shard:*"]);
    assert_eq!(r.stdout.lines().count(), 12, "the prefix is not stored; every shard matches: {r:?}");
    let r = run(["consume", s(tmp.path()), "--group", "e", "--stream", "m:shard:0007"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert_error(&run(["consume", s(tmp.path()), "--group", "f", "--stream", "m/x:shard:*"]), "invalid stream");
    assert_error(&run(["consume", s(tmp.path()), "--group", "f", "--stream", "nonsense"]), "invalid stream name");
}

#[test]
fn groups_lists_offset_and_lag_per_shard() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let r = run(["groups", s(tmp.path())]);
    assert_eq!(r.stdout, "no consumer groups\n", "{r:?}");
    run(["consume", s(tmp.path()), "--group", "billing", "--count", "6"]);
    run(["consume", s(tmp.path()), "--group", "audit", "--stream", "m:shard:0012", "--count", "1"]);
    let r = run(["groups", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows: Vec<Vec<&str>> = r.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..5], ["GROUP", "SHARD", "OFFSET", "LAG", "LAST"]);
    assert_eq!(rows[1][..4], ["audit", "0012", "1", "3"]);
    assert_eq!(rows[2][..4], ["billing", "0001", "5", "0"]);
    assert_eq!(rows[3][..4], ["billing", "0002", "1", "2"]);
    assert!(r.stdout.contains("group \"billing\": 2 shards, total lag 2"), "{}", r.stdout);
    assert!(r.stdout.contains("group \"audit\": 1 shards, total lag 3"), "{}", r.stdout);
}

#[test]
fn bad_group_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let long = "g".repeat(48);
    assert_error(&run(["consume", s(tmp.path()), "--group", &long]), "name is 48 bytes, at most 47 allowed");
    assert_error(&run(["consume", s(tmp.path()), "--group", ""]), "invalid consumer group name");
    let ok = "g".repeat(47);
    assert_eq!(run(["consume", s(tmp.path()), "--group", &ok, "--count", "1"]).code, 0);
    assert_eq!(run(["consume", s(tmp.path())]).code, 2, "--group is required");
}

#[test]
fn missing_directories_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_error(&run(["consume", s(&missing), "--group", "g"]), "no such directory");
    assert_error(&run(["groups", s(&missing)]), "no such directory");
    assert!(!missing.exists());
}

#[test]
fn corrupt_offsets_table_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    run(["consume", s(tmp.path()), "--group", "g", "--count", "1"]);
    std::fs::write(tmp.path().join("shard-0001/offsets.state"), b"short").unwrap();
    let r = run(["consume", s(tmp.path()), "--group", "g"]);
    assert_error(&r, "offsets.state");
}

/// The offset column of `comet groups` for `group` on shard `shard`.
fn offset_of(dir: &std::path::Path, group: &str, shard: &str) -> u64 {
    let r = run(["groups", s(dir)]);
    let row = r.stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|c| c[..2] == [group, shard]);
    row.unwrap_or_else(|| panic!("no row for {group} {shard}: {r:?}"))[2].parse().unwrap()
}

#[test]
fn seek_moves_a_groups_offsets_to_start_end_entry_last_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let dir = tmp.path();
    run(["consume", s(dir), "--group", "g", "--count", "2"]);
    let r = run(["seek", s(dir), "--group", "g", "--end"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "shard 0001: group \"g\" offset 2 -> 5 (retained 0..5)\n\
         shard 0002: group \"g\" offset 0 -> 3 (retained 0..3)\n\
         shard 0012: group \"g\" offset 0 -> 4 (retained 0..4)\n"
    );
    let r = run(["consume", s(dir), "--group", "g"]);
    assert_eq!(r.stdout, "", "nothing left after --end: {r:?}");

    let r = run(["seek", s(dir), "--group", "g", "--stream", "m:shard:0012", "--entry", "2"]);
    assert_eq!(r.stdout, "shard 0012: group \"g\" offset 4 -> 2 (retained 0..4)\n", "{r:?}");
    let r = run(["consume", s(dir), "--group", "g"]);
    assert_eq!(r.stdout, "m:shard:0012/2\nm:shard:0012/3\n", "{r:?}");

    let r = run(["seek", s(dir), "--group", "g", "--stream", "m:shard:000*", "--last", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(["consume", s(dir), "--group", "g"]);
    assert_eq!(r.stdout, "m:shard:0001/4\nm:shard:0002/2\n", "{r:?}");

    let r = run(["seek", s(dir), "--group", "g", "--stream", "m:shard:0001", "--entry", "99"]);
    assert!(r.stdout.contains("offset 5 -> 5 (retained 0..5)"), "clamped to the end: {r:?}");

    // Every entry was written after 2020 and before 2200.
    run(["seek", s(dir), "--group", "g", "--time", "2020-01-01T00:00:00Z"]);
    assert_eq!(offset_of(dir, "g", "0001"), 0);
    assert_eq!(offset_of(dir, "g", "0012"), 0);
    run(["seek", s(dir), "--group", "g", "--time", "7258118400000000000"]);
    assert_eq!(offset_of(dir, "g", "0001"), 5);
    run(["seek", s(dir), "--group", "g", "--start"]);
    let r = run(["consume", s(dir), "--group", "g"]);
    assert_eq!(r.stdout.lines().count(), 12, "replayed everything: {r:?}");
}

#[test]
fn seek_rejects_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let dir = tmp.path();
    for args in [
        vec!["seek", s(dir), "--group", "g"],
        vec!["seek", s(dir), "--group", "g", "--start", "--end"],
        vec!["seek", s(dir), "--group", "g", "--time", "yesterday"],
        vec!["seek", s(dir), "--group", "g", "--entry", "-1"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
    assert_error(&run(["seek", s(dir), "--group", "", "--start"]), "group");
    assert_error(&run(["seek", s(dir), "--group", &"x".repeat(48), "--start"]), "group");
    assert_error(&run(["seek", s(dir), "--group", "g", "--start", "--stream", "m:shard:0009"]), "no shard");
    assert_error(&run(["seek", s(&dir.join("missing")), "--group", "g", "--start"]), "missing");
    assert!(!dir.join("missing").exists());
}

#[test]
fn a_group_stopped_at_a_lost_segment_resumes_after_seek() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    // Damage the middle segment (entries 40..80) and let repair quarantine it.
    flip(&segment(&dir, 40), 5 * 100 + 50);
    let r = run(["repair", s(&dir)]);
    assert!(r.stdout.contains("quarantined log-00000000000000000040.comet"), "{r:?}");

    let r = run(["consume", s(&dir), "--group", "g", "--format", "sha256"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 40, "entries 0..40, then the gap: {r:?}");
    assert!(r.stderr.contains("entry 40 is not readable"), "{r:?}");
    assert!(r.stderr.contains("comet seek --group g --entry N"), "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "still stopped at the gap, nothing skipped: {r:?}");

    // An entry inside the lost range moves the group to the first entry after it.
    let r = run(["seek", s(&dir), "--group", "g", "--entry", "55"]);
    assert_eq!(r.stdout, "shard 0001: group \"g\" offset 40 -> 80 (retained 0..100)\n", "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(jsonl_ids(&r.stdout), (80..100).map(|e| (1, e)).collect::<Vec<_>>());
}
