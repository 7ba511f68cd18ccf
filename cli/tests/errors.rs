//! Error lines: one `comet: ` line holding the whole error chain, each
//! message once.

mod common;

use common::{assert_error, run, run_with_stdin, s};

#[test]
fn append_to_a_regular_file_says_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, b"").unwrap();
    let r = run_with_stdin(["append", s(&file), "events:v1:shard:0001"], b"x\n");
    assert_error(&r, "not a directory");
    assert_eq!(r.stderr.trim_end(), format!("comet: open {}: not a directory", file.display()));
    assert!(!r.stderr.contains("File exists"), "{r:?}");
    // Every subcommand says the same.
    for args in [
        vec!["read", s(&file), "events:v1:shard:0001"],
        vec!["stat", s(&file)],
        vec!["verify", s(&file)],
        vec!["groups", s(&file)],
    ] {
        assert_error(&run(&args), "not a directory");
    }
}

#[test]
fn os_errors_are_printed_once_after_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory below a file: the OS error comes from the chain.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let below = file.join("data");
    let r = run_with_stdin(["append", s(&below), "events:v1:shard:0001"], b"x\n");
    assert_error(&r, "Not a directory (os error 20)");
    let line = r.stderr.trim_end();
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
    assert!(line.starts_with(&format!("comet: open {}: ", below.display())), "{line}");
}

#[test]
fn comet_debug_turns_on_the_library_debug_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let quiet = run_with_stdin(["append", s(&dir), "events:v1:shard:0001"], b"x\n");
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert_eq!(quiet.stderr, "", "no logs without COMET_DEBUG");
    let out = common::comet(["stat", s(&dir)]).env("COMET_DEBUG", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG comet::client: client opened"), "{stderr}");
}
