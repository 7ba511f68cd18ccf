//! `comet import` on the Go-written fixture, then reading it back through
//! the binary byte for byte.

mod common;

use std::path::Path;

use comet_tests::copy_dir;
use common::{assert_error, run, s};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/go-comet")
}

#[test]
fn go_shards_are_refused_until_imported_then_read_back_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("small");
    copy_dir(&fixture().join("small"), &dir);

    assert_error(&run(["read", s(&dir), "x:shard:0001"]), "run `comet import` first");
    assert_error(&run(["consume", s(&dir), "--group", "billing"]), "run `comet import` first");
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("note   shard 0001: written by the Go comet package"), "{}", r.stdout);

    let r = run(["import", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shard 0001: imported 3 segments, entries 0..600"), "{}", r.stdout);
    assert!(r.stdout.contains("shard 0001: group \"billing\" at entry 250"), "{}", r.stdout);
    assert!(r.stdout.contains("shard 0007: group \"audit\" at entry 100"), "{}", r.stdout);
    let r = run(["import", s(&dir)]);
    assert!(r.stdout.contains("shard 0001: already in comet format"), "{r:?}");

    let expected = std::fs::read_to_string(fixture().join("small.expected.tsv")).unwrap();
    for shard in ["1", "7"] {
        let want: String =
            expected.lines().filter_map(|l| l.strip_prefix(&format!("{shard}\t"))).map(|l| format!("{l}\n")).collect();
        let r = run(["read", s(&dir), &format!("x:shard:{shard}"), "--format", "sha256"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout, want, "shard {shard}");
    }
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shard 0001: 3 segments, 600 entries"), "{}", r.stdout);
    let r =
        run(["consume", s(&dir), "--group", "billing", "--stream", "x:shard:1", "--count", "1", "--format", "sha256"]);
    assert!(r.stdout.starts_with("250\t"), "resumes at the Go offset: {r:?}");
}

#[test]
fn import_errors() {
    let tmp = tempfile::tempdir().unwrap();
    assert_error(&run(["import", s(&tmp.path().join("nope"))]), "no such directory");
    let r = run(["import", s(tmp.path())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no shards"), "{r:?}");
}
