//! `comet append`, `comet read` and `comet tail`: round trips through the
//! binary, every output format, following a live writer, and bad input.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{assert_error, comet, run, run_with_stdin, s};

#[test]
fn append_numbers_lines_and_read_prints_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let r = run_with_stdin(["append", s(&dir), "events:v1:shard:0003"], b"first\nsecond\n\nfourth");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "appended 4 entries (17 bytes) to shard 0003 as entries 0..4; 4 durable\n");
    assert!(r.stderr.is_empty(), "{r:?}");
    let r = run(["read", s(&dir), "events:v1:shard:0003"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "first\nsecond\n\nfourth\n");
    // Numbers continue across runs; the short stream form names the same shard.
    let r = run_with_stdin(["append", s(&dir), "events:v1:0003"], b"fifth\n");
    assert!(r.stdout.contains("as entries 4..5; 5 durable"), "{r:?}");
    let r = run(["read", s(&dir), "events:v1:shard:3", "--from", "3", "--count", "5"]);
    assert_eq!(r.stdout, "fourth\nfifth\n", "{r:?}");
    let r = run(["read", s(&dir), "events:v1:shard:3", "--from", "9"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    // Nothing printed: stderr says why.
    assert_eq!(r.stderr, "comet: nothing to read: shard 0003 holds entries 0..5, --from 9 is past the end\n");
    let r = run(["read", s(&dir), "events:v1:shard:3", "--from", "5"]);
    assert_eq!(r.stderr, "comet: nothing to read: shard 0003 holds entries 0..5, --from 5 is past the end\n");
    let r = run(["read", s(&dir), "events:v1:shard:3", "--from", "4"]);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("fifth\n", ""), "{r:?}");
    let r = run(["read", s(&dir), "events:v1:shard:3", "--from", "9", "--count", "0"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""), "asked for nothing: {r:?}");
}

#[test]
fn counts_are_singular_for_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let r = run_with_stdin(["append", s(&dir), "e:shard:0001"], b"x\n");
    assert_eq!(r.stdout, "appended 1 entry (1 byte) to shard 0001 as entries 0..1; 1 durable\n", "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g"]);
    assert!(r.stderr.contains("consumed 1 entry from 1 shard as group \"g\" (acked); lag 0"), "{r:?}");
}

#[test]
fn sync_every_reports_durable_counts_as_it_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let input: String = (0..7).map(|i| format!("line {i}\n")).collect();
    let r = run_with_stdin(["append", s(tmp.path()), "s:shard:1", "--sync-every", "3"], input.as_bytes());
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[..2], ["synced 3", "synced 6"], "{r:?}");
    assert!(lines[2].starts_with("appended 7 entries"), "{r:?}");
    assert_eq!(lines.len(), 3);
    let r = run_with_stdin(["append", s(tmp.path()), "s:shard:1", "--sync"], b"durable\n");
    assert!(r.stdout.contains("as entries 7..8; 8 durable"), "{r:?}");
    let r = run_with_stdin(["append", s(tmp.path()), "s:shard:1"], b"");
    assert_eq!(r.stdout, "appended 0 entries to shard 0001; 8 durable\n", "{r:?}");
}

#[test]
fn sync_every_lines_arrive_while_stdin_is_still_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = comet(["append", s(tmp.path()), "s:shard:2", "--sync-every", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    use std::io::Write;
    stdin.write_all(b"a\nb\n").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "synced 2\n", "flushed before stdin closes");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn read_formats_jsonl_hex_and_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = run_with_stdin(["append", s(dir), "s:shard:0"], b"abc\nq\"uote\n\xff\xfe\x00\n");
    assert_eq!(r.code, 0, "{r:?}");

    let r = run(["read", s(dir), "s:shard:0", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["shard"], 0);
    assert_eq!(rows[0]["entry"], 0);
    assert_eq!(rows[0]["length"], 3);
    assert_eq!(rows[0]["payload"], "abc");
    assert!(rows[0]["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(rows[1]["payload"], "q\"uote");
    assert_eq!(rows[2]["payload_base64"], "//4A");
    assert_eq!(rows[2]["length"], 3);
    assert!(rows[2].get("payload").is_none());

    let r = run(["read", s(dir), "s:shard:0", "--format", "hex"]);
    assert_eq!(r.stdout, "0\t616263\n1\t7122756f7465\n2\tfffe00\n", "{r:?}");

    let r = run(["read", s(dir), "s:shard:0", "--format", "sha256", "--count", "1"]);
    assert_eq!(r.stdout, "0\t3\tba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n", "{r:?}");
}

#[test]
fn tail_prints_the_last_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let input: String = (0..30).map(|i| format!("{i}\n")).collect();
    run_with_stdin(["append", s(tmp.path()), "s:shard:5"], input.as_bytes());
    let r = run(["tail", s(tmp.path()), "s:shard:5"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want: String = (20..30).map(|i| format!("{i}\n")).collect();
    assert_eq!(r.stdout, want);
    let r = run(["tail", s(tmp.path()), "s:shard:5", "-n", "2", "--format", "hex"]);
    assert_eq!(r.stdout, "28\t3238\n29\t3239\n", "{r:?}");
    let r = run(["tail", s(tmp.path()), "s:shard:5", "-n", "100"]);
    assert_eq!(r.stdout.lines().count(), 30);
}

/// Reads lines of a child's stdout on a thread.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn tail_follow_prints_entries_as_another_process_makes_them_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_with_stdin(["append", s(dir), "s:shard:7"], b"old 1\nold 2\n");
    let mut child = comet(["tail", s(dir), "s:shard:7", "--follow", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    let wait = Duration::from_secs(20);
    assert_eq!(rx.recv_timeout(wait).unwrap(), "old 2");
    run_with_stdin(["append", s(dir), "s:shard:7"], b"new 1\nnew 2\n");
    assert_eq!(rx.recv_timeout(wait).unwrap(), "new 1");
    assert_eq!(rx.recv_timeout(wait).unwrap(), "new 2");
    run_with_stdin(["append", s(dir), "s:shard:7", "--sync"], b"new 3\n");
    assert_eq!(rx.recv_timeout(wait).unwrap(), "new 3");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn tail_follow_waits_for_a_shard_that_does_not_exist_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut child =
        comet(["tail", s(dir), "s:shard:9", "-f"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    run_with_stdin(["append", s(dir), "s:shard:9"], b"hello\n");
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "hello");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_stream_names_are_rejected_before_touching_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for bad in ["no-shard", "a/b:0001", "x:shard:10000", "x:12", "..:0001", ""] {
        assert_error(&run_with_stdin(["append", s(&dir), bad], b"x\n"), "invalid stream name");
        assert!(!dir.exists(), "append with {bad:?} created the directory");
    }
    // A name without a shard number says what to call instead.
    let r = run_with_stdin(["append", s(&dir), "events"], b"x\n");
    assert_error(&r, "invalid stream name \"events\": stream name has no `:<shard>` suffix");
    assert_error(&r, "ends with its shard number, which alone selects the shard: use e.g. \"events:shard:0000\"");
    assert_error(&run_with_stdin(["append", s(&dir), "logs:v2:x7"], b"x\n"), "use e.g. \"logs:shard:0000\"");
    std::fs::create_dir(&dir).unwrap();
    assert_error(&run(["read", s(&dir), "events"]), "use e.g. \"events:shard:0000\"");
    assert_error(&run(["read", s(&dir), "x:shard:99999"]), "invalid stream name");
    assert_error(&run(["tail", s(&dir), "a\\b:0001"]), "invalid stream name");
}

#[test]
fn reads_of_missing_directories_and_shards_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_error(&run(["read", s(&missing), "s:shard:1"]), "no such directory");
    assert_error(&run(["tail", s(&missing), "s:shard:1"]), "no such directory");
    assert_error(&run(["tail", s(&missing), "s:shard:1", "--follow"]), "no such directory");
    assert!(!missing.exists(), "readers must not create the directory");
    assert_error(&run(["read", s(tmp.path()), "s:shard:1"]), "shard 0001 does not exist");
    assert_error(&run(["tail", s(tmp.path()), "s:shard:1"]), "shard 0001 does not exist");
}

#[test]
fn an_unreadable_entry_stops_read_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::small_log(tmp.path(), 100);
    // Empty the first segment: entry 5 is then unreadable.
    let seg = common::segment(&dir, 0);
    std::fs::write(&seg, b"").unwrap();
    let r = run(["read", s(&dir), "test:shard:1", "--from", "5", "--count", "2"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.starts_with("comet: shard 0001"), "{r:?}");
}

#[test]
fn oversized_lines_are_rejected_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = vec![b'x'; (16 << 20) + 1];
    big.push(b'\n');
    let r = run_with_stdin(["append", s(tmp.path()), "s:shard:1"], &big);
    assert_error(&r, "exceeds storage.max_entry_size");
}

#[test]
fn usage_errors_are_one_comet_line_with_a_hint_to_help() {
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["read"],
            &["the following required arguments were not provided: <DIR>, <STREAM>", "see 'comet read --help'"],
        ),
        (
            &["read", "/tmp", "s:0001", "--format", "xml"],
            &[
                "invalid value 'xml' for '--format <FORMAT>'",
                "[possible values: text, jsonl, hex, sha256]",
                "see 'comet read --help'",
            ],
        ),
        (
            &["append", "/tmp", "s:0001", "--sync-every", "0"],
            &["invalid value '0' for '--sync-every <N>'", "see 'comet append --help'"],
        ),
        (&["frobnicate"], &["unrecognized subcommand 'frobnicate'", "see 'comet --help'"]),
        (
            &["read", "/tmp", "s:0001", "--frm", "3"],
            &["unexpected argument '--frm' found (a similar argument exists: '--from')", "see 'comet read --help'"],
        ),
        (
            &["seek", "/tmp", "--group", "g", "--start", "--end"],
            &["the argument '--start' cannot be used with '--end'", "see 'comet seek --help'"],
        ),
        (
            &["seek", "/tmp", "--group", "g", "--time", "2026-02-31T00:00:00Z"],
            &["invalid time \"2026-02-31T00:00:00Z\"", "see 'comet seek --help'"],
        ),
        (
            &["stat", "--format", "yaml", "/tmp"],
            &["[possible values: text, json, prometheus]", "see 'comet stat --help'"],
        ),
    ];
    for (args, needles) in cases {
        let r = run(args);
        for needle in needles {
            assert_error(&r, needle);
        }
        assert!(!r.stderr.contains("error:") && !r.stderr.contains("Usage:"), "{r:?}");
    }
    // Impossible times: February 31, a leap second, a fraction without digits.
    for time in ["2026-02-31T00:00:00Z", "2026-01-01T00:00:60Z", "2026-01-01T00:00:00.Z", "2026-13-01T00:00:00Z"] {
        assert_error(&run(["seek", "/tmp", "--group", "g", "--time", time]), "invalid time");
    }
    // Help and version still print to stdout and succeed.
    for args in [&["--help"][..], &["-h"], &["read", "--help"], &["help", "seek"], &["--version"], &["-V"]] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(!r.stdout.is_empty() && r.stderr.is_empty(), "{args:?}: {r:?}");
    }
    assert!(run(["--version"]).stdout.starts_with("comet "));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    run_with_stdin(["append", s(tmp.path()), "s:shard:1"], input.as_bytes());
    let mut child =
        comet(["read", s(tmp.path()), "s:shard:1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "line 0\n");
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}
