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
    assert_error(&run(["consume", s(tmp.path()), "--group", "f", "--stream", "nonsense"]), "is not a stream name");
    // Ids, ranges and lists, as `comet forward --stream` takes them.
    let r = run(["consume", s(tmp.path()), "--group", "g", "--stream", "0-1,12", "--format", "sha256"]);
    assert_eq!(r.stdout.lines().count(), 9, "shards 1 and 12: {r:?}");
    // A long pattern is matched in linear time (the old matcher was exponential).
    let long = format!("m:shard:{}2", "*".repeat(64));
    let r = run(["consume", s(tmp.path()), "--group", "h", "--stream", &long, "--format", "sha256"]);
    assert_eq!(r.stdout.lines().count(), 7, "shards 2 and 12: {r:?}");
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
    // A shard the group never acked counts from its first retained entry.
    assert_eq!(rows[1][..5], ["audit", "0001", "0", "5", "never"]);
    assert_eq!(rows[2][..5], ["audit", "0002", "0", "3", "never"]);
    assert_eq!(rows[3][..4], ["audit", "0012", "1", "3"]);
    assert_eq!(rows[4][..4], ["billing", "0001", "5", "0"]);
    assert_eq!(rows[5][..4], ["billing", "0002", "1", "2"]);
    assert_eq!(rows[6][..5], ["billing", "0012", "0", "4", "never"]);
    assert!(r.stdout.contains("group \"audit\": acked on 1 of 3 shards, total lag 11\n"), "{}", r.stdout);
    assert!(r.stdout.contains("group \"billing\": acked on 2 of 3 shards, total lag 6\n"), "{}", r.stdout);
    // The lag is what a consumer of the group still gets.
    let r = run(["consume", s(tmp.path()), "--group", "audit", "--no-ack", "--format", "sha256"]);
    assert_eq!(r.stdout.lines().count(), 11, "{r:?}");
}

#[test]
fn groups_json_lists_every_shard_of_every_group() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    let r = run(["groups", "--json", s(tmp.path())]);
    assert_eq!(r.stdout, format!("{{\"dir\":{},\"groups\":[]}}\n", serde_json::json!(s(tmp.path()))), "{r:?}");
    run(["consume", s(tmp.path()), "--group", "billing", "--count", "6"]);
    let r = run(["groups", "--json", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let g = &v["groups"][0];
    assert_eq!(g["group"], "billing");
    assert_eq!(g["total_lag"], 6);
    assert_eq!(g["shards_acked"], 2);
    let shards = g["shards"].as_array().unwrap();
    let row = |i: usize| {
        let s = &shards[i];
        (s["shard"].as_u64().unwrap(), s["offset"].as_u64().unwrap(), s["lag"].as_u64().unwrap(), s["acked"].clone())
    };
    assert_eq!(row(0), (1, 5, 0, true.into()));
    assert_eq!(row(1), (2, 1, 2, true.into()));
    assert_eq!(row(2), (12, 0, 4, false.into()));
    assert!(shards[0]["last_ack_ns"].as_u64().unwrap() > 1);
    assert_eq!(shards[2]["last_ack_ns"], 0);
}

/// Renames group `from` to `to` (same length) in a shard's offsets.state,
/// as an older version or the Go package could have stored it.
fn rename_group(offsets: &std::path::Path, from: &[u8], to: &[u8]) {
    use comet_core::platform::state::offsets::{NAME_FIELD, SLOTS, name_check, slot, slot_offset};
    let mut b = std::fs::read(offsets).unwrap();
    let i = (0..SLOTS).find(|&i| b[slot_offset(i)..].starts_with(from)).expect("slot");
    let at = slot_offset(i);
    let mut field = [0u8; NAME_FIELD];
    field[..to.len()].copy_from_slice(to);
    b[at..at + NAME_FIELD].copy_from_slice(&field);
    b[at + slot::NAME_CHECK..at + slot::NAME_CHECK + 4].copy_from_slice(&name_check(&field).to_le_bytes());
    std::fs::write(offsets, b).unwrap();
}

#[test]
fn group_names_read_back_from_old_files_are_printed_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    three_shards(tmp.path());
    run(["consume", s(tmp.path()), "--group", "zzzzzzzzzzzz", "--stream", "m:shard:0001", "--count", "2"]);
    // A name that would inject a fake row and clear the screen.
    let evil = b"x\nfake 1\x1b[2J";
    rename_group(&tmp.path().join("shard-0001/offsets.state"), b"zzzzzzzzzzzz", evil);
    let r = run(["groups", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains('\x1b'), "{r:?}");
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(rows.len(), 1 + 3 + 1, "header, one row per shard, one summary: {r:?}");
    assert!(rows[1].starts_with("x\\x0afake\\x201\\x1b[2J  0001"), "{r:?}");
    assert!(rows[4].starts_with("group \"x\\x0afake\\x201\\x1b[2J\": acked on 1 of 3"), "{r:?}");
    // JSON carries the exact name, escaped by the JSON encoder.
    let r = run(["groups", "--json", s(tmp.path())]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["groups"][0]["group"].as_str().unwrap().as_bytes(), evil);
    assert!(!r.stdout.contains('\x1b') && r.stdout.lines().count() == 1, "{r:?}");
    let r = run(["stat", "--json", s(tmp.path())]);
    assert!(!r.stdout.contains('\x1b') && r.stdout.lines().count() == 1, "{r:?}");
    let r = run(["stat", "--format", "prometheus", s(tmp.path())]);
    assert!(r.stdout.contains("comet_group_lag{group=\"x\\nfake 1\x1b[2J\",shard=\"0001\"} 3\n"), "{r:?}");
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
    // Printable ASCII only: nothing that could fake a row, move the cursor
    // or look like a path.
    for (bad, byte) in [
        ("a\nb", "0x0a"),
        ("\u{1b}[31mred", "0x1b"),
        ("a b", "0x20"),
        ("a/b", "0x2f"),
        ("a\\b", "0x5c"),
        ("tab\t", "0x09"),
        ("café", "0xc3"),
        ("del\u{7f}", "0x7f"),
    ] {
        for cmd in ["consume", "seek"] {
            let mut args = vec![cmd, s(tmp.path()), "--group", bad];
            if cmd == "seek" {
                args.push("--start");
            }
            assert_error(&run(&args), &format!("forbidden byte {byte}"));
        }
    }
    assert_error(&run(["consume", s(tmp.path()), "--group", "a..b"]), "..");
    let r = run(["groups", s(tmp.path())]);
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("group ")).count(), 1, "only the 47-g group: {r:?}");
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
fn a_group_stopped_at_a_lost_chunk_resumes_after_seek() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 100);
    // Damage the first chunk (entries 40..50) of the middle segment and let
    // repair record that chunk, and only it, as lost.
    flip(&segment(&dir, 40), 5 * 10 + 3);
    let r = run(["repair", s(&dir)]);
    assert!(r.stdout.contains("recorded chunk 0 of log-00000000000000000040.comet as lost"), "{r:?}");
    assert!(r.stdout.contains("90 entries"), "the other chunks of the segment stay: {r:?}");

    let r = run(["consume", s(&dir), "--group", "g", "--format", "sha256"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 40, "entries 0..40, then the lost chunk: {r:?}");
    assert!(r.stderr.contains("entry 40 lies in lost range 40..50"), "{r:?}");
    assert!(r.stderr.contains("--group g --entry 50"), "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""), "still stopped at the lost chunk, nothing skipped: {r:?}");

    // An entry inside the lost range moves the group to the first entry after it.
    let r = run(["seek", s(&dir), "--group", "g", "--entry", "45"]);
    assert_eq!(r.stdout, "shard 0001: group \"g\" offset 40 -> 50 (retained 0..100)\n", "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(jsonl_ids(&r.stdout), (50..100).map(|e| (1, e)).collect::<Vec<_>>());
}
