//! The command line on a real full file system (a small tmpfs; needs root,
//! so ignored by default and run by `.ci/run` with `--ignored`): no command
//! raises a signal, `append` says what is durable when it stops, and
//! nothing it reported durable is lost.

mod common;

use comet_tests::Tmpfs;
use common::{Run, run, run_with_stdin, s};

const STREAM: &str = "events:v1:shard:0001";

/// Exits with a code (a signal gives none) and, if it failed, because the
/// disk is full.
fn assert_no_signal_and_full_if_failed(r: &Run, what: &str) {
    assert!(r.code >= 0, "{what} was killed by a signal: {r:?}");
    if r.code != 0 {
        assert!(r.stderr.contains("No space left on device"), "{what}: {r:?}");
    }
}

fn line(i: u64) -> String {
    format!("line {i:06} {}", "y".repeat((i % 300) as usize))
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it as root with --ignored"]
fn append_on_a_full_disk_says_what_is_durable_and_nothing_signals() {
    let fs = Tmpfs::mount(2 * 1024 * 1024);
    let dir = fs.path().join("data");
    let first: String = (0..20).map(|i| line(i) + "\n").collect();
    let r = run_with_stdin(["append", s(&dir), STREAM, "--sync"], first.as_bytes());
    assert_eq!(r.code, 0, "{r:?}");
    run(["consume", s(&dir), "--group", "old", "--count", "3"]);
    let filler = fs.fill("filler", 8192);

    let more: String = (20..20_000).map(|i| line(i) + "\n").collect();
    let r = run_with_stdin(["append", s(&dir), STREAM, "--sync"], more.as_bytes());
    assert_eq!(r.code, 2, "the disk is full: {r:?}");
    assert!(r.stderr.contains("No space left on device"), "{r:?}");
    let stopped = r.stdout.lines().find(|l| l.starts_with("stopped: ")).unwrap_or_else(|| panic!("{r:?}"));
    let durable: u64 = stopped
        .rsplit("; ")
        .next()
        .and_then(|t| t.strip_suffix(" durable"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("durable count in {stopped:?}"));
    assert!(durable > 20, "{stopped}");

    // Everything reported durable reads back, while the disk is still full.
    let r = run(["read", s(&dir), STREAM, "--from", "0", "--count", &durable.to_string()]);
    assert_eq!(r.code, 0, "{r:?}");
    let expected: String = (0..durable).map(|i| line(i) + "\n").collect();
    assert_eq!(r.stdout, expected);
    for args in [
        vec!["stat", s(&dir)],
        vec!["groups", s(&dir)],
        vec!["verify", s(&dir)],
        vec!["consume", s(&dir), "--group", "new", "--count", "2"],
        vec!["seek", s(&dir), "--group", "other", "--entry", "5"],
        vec!["tail", s(&dir), STREAM],
    ] {
        let r = run(&args);
        assert_no_signal_and_full_if_failed(&r, &args.join(" "));
    }
    let r = run_with_stdin(["append", s(&dir), "events:v1:shard:0002", "--sync"], b"x\n");
    assert_no_signal_and_full_if_failed(&r, "append to a new shard");

    fs.remove_filler(&filler);
    let r = run_with_stdin(["append", s(&dir), STREAM, "--sync"], b"after\n");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("as entries {durable}..")), "numbering continues: {r:?}");
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
}
