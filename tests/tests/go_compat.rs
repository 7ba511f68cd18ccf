//! Directories written by the Go package: refused until imported, then
//! every entry readable byte for byte under its number and every consumer
//! offset carried over (tests/fixtures/go-comet, a copy of the shared
//! fixture; always copied again before use).
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use comet::{Client, Config, Consumer, Error, ImportProblem, ShardId, import_go};
use sha2::{Digest, Sha256};

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/go-comet")
}

/// A fresh, writable copy of the fixture directory `small/`.
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture_root().join("small"), dir.path());
    dir
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
            let mut p = fs::metadata(&t).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            fs::set_permissions(&t, p).unwrap();
        }
    }
}

fn expected() -> BTreeMap<(u32, u64), (usize, String)> {
    fs::read_to_string(fixture_root().join("small.expected.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            ((f[0].parse().unwrap(), f[1].parse().unwrap()), (f[2].parse().unwrap(), f[3].to_string()))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn go_shards_are_refused_with_a_typed_error_until_imported() {
    let dir = copy_fixture();
    let before = comet_tests::snapshot(dir.path());
    let c = Client::open(dir.path(), Config::default()).unwrap();
    assert!(matches!(c.append("x:shard:0001", &[b"x"]), Err(Error::ForeignFormat { .. })));
    assert!(matches!(c.recover_shard(ShardId::new(7).unwrap()), Err(Error::ForeignFormat { .. })));
    c.close().unwrap();
    comet_tests::assert_unchanged(&before, &comet_tests::snapshot(dir.path()), "a writer refused a Go shard");
}

#[test]
fn importing_the_go_fixture_keeps_every_entry_and_offset() {
    let dir = copy_fixture();
    let reports = import_go(dir.path(), &Config::default()).unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(!r.report.already_native);
        assert!(r.report.counters_carried);
        assert!(r.report.problems.is_empty(), "{:?}", r.report.problems);
        assert_eq!(r.report.end, 600);
    }
    let c = Client::open(dir.path(), Config::default()).unwrap();
    let want = expected();
    assert_eq!(want.len(), 1200);
    let mut compressed = 0;
    for (&(shard, entry), (len, sha)) in &want {
        let mut r = c.reader(ShardId::new(shard).unwrap()).unwrap();
        let m = r.read(entry).unwrap_or_else(|e| panic!("shard {shard} entry {entry}: {e}"));
        assert_eq!(m.data().len(), *len, "shard {shard} entry {entry}");
        assert_eq!(&hex(&Sha256::digest(m.data())), sha, "shard {shard} entry {entry}");
        compressed += usize::from(!m.is_zero_copy());
    }
    assert_eq!(compressed, 250 + 222, "Go's zstd frames decode");
    for line in fs::read_to_string(fixture_root().join("small.offsets.tsv")).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let shard = ShardId::new(f[0].parse().unwrap()).unwrap();
        let mut g = Consumer::new(&c, f[1]).unwrap();
        assert_eq!(g.offset(shard).unwrap(), f[2].parse::<u64>().unwrap(), "{line}");
    }
    // the claimed-but-never-set billing slot of shard 7 is not an offset
    let groups = c.shard_stats(ShardId::new(7).unwrap()).unwrap().groups;
    assert_eq!(groups.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), ["audit"]);
    // numbering continues, and counters carried over
    assert_eq!(c.append("x:shard:0001", &[b"after"]).unwrap().entries, 600..601);
    let st = c.shard_stats(ShardId::new(1).unwrap()).unwrap();
    assert!(st.counters.get(comet::Counter::EntriesAppended) >= 600);
    // importing again changes nothing
    c.close().unwrap();
    assert!(import_go(dir.path(), &Config::default()).unwrap().iter().all(|r| r.report.already_native));
}

#[test]
fn damaged_go_directories_import_their_valid_part_with_a_report() {
    // truncated segment
    let dir = copy_fixture();
    let seg = dir.path().join("shard-0007/log-0000000000000003.comet");
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 10).unwrap();
    let r = import_go(dir.path(), &Config::default()).unwrap();
    let s7 = r.iter().find(|r| r.shard.get() == 7).unwrap();
    assert!(s7.report.problems.iter().any(|p| matches!(p, ImportProblem::Truncated { .. })));
    let c = Client::open(dir.path(), Config::default()).unwrap();
    let mut rd = c.reader(ShardId::new(7).unwrap()).unwrap();
    let want = expected();
    for e in 0..599 {
        let m = rd.read(e).unwrap();
        assert_eq!(hex(&Sha256::digest(m.data())), want[&(7, e)].1);
    }
    assert!(rd.read(599).is_err());

    // missing segment
    let dir = copy_fixture();
    fs::remove_file(dir.path().join("shard-0001/log-0000000000000002.comet")).unwrap();
    let r = import_go(dir.path(), &Config::default()).unwrap();
    let s1 = r.iter().find(|r| r.shard.get() == 1).unwrap();
    assert!(s1.report.problems.iter().any(|p| matches!(p, ImportProblem::MissingFile { first: 209, end: 436, .. })));
    let c = Client::open(dir.path(), Config::default()).unwrap();
    let mut rd = c.reader(ShardId::new(1).unwrap()).unwrap();
    assert!(matches!(rd.read(300), Err(Error::Lost { start: 209, end: 436, .. })));
    assert_eq!(hex(&Sha256::digest(rd.read(500).unwrap().data())), want[&(1, 500)].1);

    // index removed
    let dir = copy_fixture();
    fs::remove_file(dir.path().join("shard-0001/index.bin")).unwrap();
    let r = import_go(dir.path(), &Config::default()).unwrap();
    let s1 = r.iter().find(|r| r.shard.get() == 1).unwrap();
    assert_eq!(s1.report.problems, vec![ImportProblem::NoIndex]);
    let c = Client::open(dir.path(), Config::default()).unwrap();
    let mut rd = c.reader(ShardId::new(1).unwrap()).unwrap();
    assert_eq!(hex(&Sha256::digest(rd.read(599).unwrap().data())), want[&(1, 599)].1);
}

#[test]
fn a_legacy_offsets_bin_is_migrated() {
    let dir = copy_fixture();
    // [u8 version=1][u32 count] then [u8 len][name][u64 offset]
    let mut b = vec![1u8];
    b.extend_from_slice(&1u32.to_le_bytes());
    b.push(6);
    b.extend_from_slice(b"legacy");
    b.extend_from_slice(&42u64.to_le_bytes());
    fs::write(dir.path().join("shard-0001/offsets.bin"), &b).unwrap();
    let r = import_go(dir.path(), &Config::default()).unwrap();
    let s1 = r.iter().find(|r| r.shard.get() == 1).unwrap();
    assert!(s1.groups.contains(&("legacy".to_string(), 42)), "{:?}", s1.groups);
    assert!(!dir.path().join("shard-0001/offsets.bin").exists());
}

fn foreign<T: std::fmt::Debug>(r: comet::Result<T>, what: &str) {
    match r {
        Err(Error::ForeignFormat { shard }) => assert_eq!(shard.get(), 1, "{what}"),
        other => panic!("{what}: {other:?} instead of ForeignFormat"),
    }
}

#[test]
fn every_read_path_refuses_an_unimported_go_shard_and_changes_nothing() {
    let dir = copy_fixture();
    let before = comet_tests::snapshot(dir.path());
    let one = ShardId::new(1).unwrap();
    for read_only in [false, true] {
        let c = if read_only {
            Client::open_read_only(dir.path(), Config::default()).unwrap()
        } else {
            Client::open(dir.path(), Config::default()).unwrap()
        };
        foreign(c.len("x:shard:0001"), "len");
        foreign(c.shard_len(one), "shard_len");
        foreign(c.durable_len(one), "durable_len");
        foreign(c.read("x:shard:0001", 0), "Client::read");
        foreign(c.reader(one).map(|_| ()), "reader");
        foreign(c.wait_for(one, 0, std::time::Duration::ZERO), "wait_for");
        foreign(c.shard_stats(one), "shard_stats");
        foreign(c.stats(), "stats");
        let mut r = comet::Reader::open(dir.path().join("shard-0001"), one, 1 << 20);
        foreign(r.bounds(), "Reader::bounds");
        foreign(r.read(0), "Reader::read");
        foreign(r.head(), "Reader::head");
        let mut g = Consumer::new(&c, "audit").unwrap();
        foreign(g.offset(one), "Consumer::offset");
        foreign(g.lag(one), "Consumer::lag");
        foreign(g.groups(one), "Consumer::groups");
        foreign(g.read_shard(one, 10, &mut Vec::new()), "Consumer::read_shard");
        let (messages, errors) = g.read(&[one], 10).into_parts();
        assert!(messages.is_empty());
        assert!(matches!(errors[..], [(s, Error::ForeignFormat { .. })] if s == one), "{errors:?}");
        foreign(g.ack(&[comet::MessageId { shard: one, entry: 0 }]), "Consumer::ack");
        c.close().unwrap();
    }
    comet_tests::assert_unchanged(&before, &comet_tests::snapshot(dir.path()), "reads of a Go shard");
}

/// `comet-embedded` answers an unimported Go shard as `comet` does: its
/// open names the shard (`ForeignFormat`), and nothing on disk changes.
#[test]
fn comet_embedded_refuses_an_unimported_go_shard_and_changes_nothing() {
    let dir = copy_fixture();
    let go = dir.path().join("shard-0001");
    let go_files = || {
        let mut s = comet_tests::snapshot(dir.path());
        s.retain(|p, _| p.starts_with(&go));
        s
    };
    let before = go_files();
    // It opens shards 0 (created: a fresh shard) and 1 (the Go one).
    let cfg = comet_embedded::EmbeddedConfig { shard_count: 2, ..comet_embedded::EmbeddedConfig::default() };
    match comet_embedded::Log::open(dir.path(), cfg, comet_embedded::now_ns()) {
        Err(Error::ForeignFormat { shard }) => assert_eq!(shard.get(), 1),
        other => panic!("{other:?} instead of ForeignFormat"),
    }
    comet_tests::assert_unchanged(&before, &go_files(), "embedded open of a Go shard");
}
