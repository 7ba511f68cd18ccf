//! `--stream` patterns: one parser (`comet::ShardPattern`) for `consume`,
//! `seek` and `forward`, with the messages the CLI always printed.

mod common;

use common::{assert_error, run, s};

#[test]
fn consume_and_seek_print_the_same_pattern_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    common::run_with_stdin(["append", s(&dir), "m:shard:0001"], b"x\n");
    for (pattern, line) in [
        (
            "e:shard:0a*",
            "comet: invalid stream pattern \"e:shard:0a*\": the shard part of a pattern is digits, '*' and '?'",
        ),
        ("5-2", "comet: invalid stream pattern \"5-2\": range start above its end"),
        ("0,,1", "comet: invalid stream pattern \"0,,1\": empty item between commas"),
        (
            "m/x:shard:*",
            "comet: invalid stream pattern \"m/x:shard:*\": invalid stream prefix: forbidden byte 0x2f at position 1",
        ),
        (
            "nonsense",
            "comet: invalid stream pattern \"nonsense\": \"nonsense\" is not a stream name (stream name has no \
             `:<shard>` suffix), a shard id or a range of ids like 0-15",
        ),
    ] {
        let consume = run(["consume", s(&dir), "--group", "g", "--stream", pattern]);
        assert_error(&consume, "invalid stream pattern");
        assert_eq!(consume.stderr.trim_end(), line);
        let seek = run(["seek", s(&dir), "--group", "g", "--stream", pattern, "--start"]);
        assert_eq!(seek.stderr, consume.stderr);
    }
}

#[cfg(feature = "forward")]
#[test]
fn forward_parses_stream_patterns_as_consume_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for pattern in ["e:shard:0a*", "5-2", "nonsense"] {
        let consume = run(["consume", s(tmp.path()), "--group", "g", "--stream", pattern]);
        let forward = run([
            "forward",
            s(&dir),
            "--group",
            "g",
            "--nats",
            "nats://127.0.0.1:1",
            "--subject",
            "p",
            "--stream",
            pattern,
        ]);
        assert_error(&forward, "invalid stream pattern");
        assert_eq!(forward.stderr, consume.stderr, "{pattern}");
    }
}
