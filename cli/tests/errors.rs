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
