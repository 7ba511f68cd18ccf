//! Per-shard zstd dictionaries (issue 18): the std writer trains one on the
//! shard's short entries, stores it as `dict-<id>.zdict` and compresses
//! with it; both readers (std `Reader`, `comet-embedded`'s `read_into`)
//! decode those frames; a damaged or missing dictionary is a typed error
//! for the entries that need it and a verify finding; a dictionary written
//! but never used (a crash between the two) leaves a readable shard; and
//! retention keeps a dictionary while retained entries may use it.
#![allow(clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use comet::{Client, Config, Error, FileKind, ShardId};
use comet_embedded::{EmbeddedConfig, Log};
use comet_tests::json_line as line;

const SHARD: ShardId = ShardId::MIN;

fn config() -> Config {
    let mut c = Config::default();
    c.storage.max_file_size = 48 << 10;
    c.storage.flush_interval = Duration::from_secs(3600);
    c.indexing.boundary_interval = 16;
    c.retention.cleanup_interval = None;
    c.retention.max_age = None;
    c.compression.dictionary = true;
    c.compression.dict_sample_bytes = 32 << 10;
    c.compression.dict_max_size = 4 << 10;
    c
}

fn shard_dir(root: &Path) -> PathBuf {
    root.join("shard-0000")
}

fn dict_files(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(shard_dir(root))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dict-") && n.ends_with(".zdict"))
        .collect();
    v.sort();
    v
}

/// Appends `0..before` (the samples), syncs (which trains), appends
/// `before..before + after`, closes. Returns the payloads.
fn write(root: &Path, before: u64, after: u64) -> Vec<Vec<u8>> {
    let c = Client::open(root, config()).unwrap();
    let lines: Vec<Vec<u8>> = (0..before + after).map(line).collect();
    for chunk in lines[..before as usize].chunks(10) {
        c.append_shard(SHARD, chunk).unwrap();
    }
    c.sync().unwrap();
    for chunk in lines[before as usize..].chunks(10) {
        c.append_shard(SHARD, chunk).unwrap();
    }
    c.close().unwrap();
    lines
}

fn segment_bytes(root: &Path) -> u64 {
    std::fs::read_dir(shard_dir(root))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".comet"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn embedded_config() -> EmbeddedConfig {
    let mut retention = EmbeddedConfig::default().retention;
    retention.max_age = None;
    retention.cleanup_interval = None;
    EmbeddedConfig { max_entry_size: 4096, read_buffer_bytes: 64 << 10, retention, ..EmbeddedConfig::default() }
}

#[test]
fn both_readers_decode_dictionary_frames() {
    let t = tempfile::tempdir().unwrap();
    let lines = write(t.path(), 200, 600);
    assert_eq!(dict_files(t.path()), vec!["dict-0000032768.zdict".to_string()]);
    let raw: u64 = lines.iter().map(|l| l.len() as u64 + 12).sum();
    let stored = segment_bytes(t.path());
    // 200 raw lines, 600 dictionary-compressed ones
    assert!(stored * 2 < raw, "stored {stored} of {raw}: the dictionary does not pay");

    let c = Client::open_read_only(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(r.read(i as u64).unwrap().data(), &l[..], "std entry {i}");
    }
    drop(r);
    c.close().unwrap();

    let mut log = Log::open(t.path(), embedded_config(), comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut compressed = 0;
    for (i, l) in lines.iter().enumerate() {
        let e = log.read_into(SHARD, i as u64, &mut buf).unwrap();
        assert_eq!(&buf[..e.len], &l[..], "embedded entry {i}");
        compressed += usize::from(e.compressed);
    }
    assert!(compressed >= 590, "{compressed} frames");
    log.close().unwrap();
}

#[test]
fn the_writer_resumes_its_dictionary_after_reopen() {
    let t = tempfile::tempdir().unwrap();
    let mut lines = write(t.path(), 200, 100);
    let c = Client::open(t.path(), config()).unwrap();
    let more: Vec<Vec<u8>> = (300..400).map(line).collect();
    c.append_shard(SHARD, &more).unwrap();
    c.sync().unwrap();
    lines.extend(more);
    assert_eq!(dict_files(t.path()).len(), 1, "no second dictionary trained");
    let mut r = c.reader(SHARD).unwrap();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(r.read(i as u64).unwrap().data(), &l[..]);
    }
    drop(r);
    c.close().unwrap();
    // the reopened writer compressed with it: the last 100 are small
    let report = comet::verify(t.path()).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn a_damaged_dictionary_is_a_typed_error_and_a_finding() {
    let t = tempfile::tempdir().unwrap();
    let lines = write(t.path(), 200, 200);
    let path = shard_dir(t.path()).join("dict-0000032768.zdict");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let c = Client::open_read_only(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    assert_eq!(r.read(5).unwrap().data(), &lines[5][..], "raw entries still read");
    match r.read(350) {
        Err(Error::Corrupt { corruption, .. }) => assert_eq!(corruption.file, FileKind::Dict { id: 32768 }),
        other => panic!("{other:?}"),
    }
    drop(r);
    c.close().unwrap();

    let mut log = Log::open(t.path(), embedded_config(), comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    match log.read_into(SHARD, 350, &mut buf) {
        Err(comet_embedded::Error::Corrupt { corruption: c, .. }) => {
            assert_eq!(c.file, FileKind::Dict { id: 32768 });
        }
        other => panic!("{other:?}"),
    }
    log.close().unwrap();

    let report = comet::verify(t.path()).unwrap();
    assert!(
        report.findings.iter().any(|f| matches!(f.finding.problem, comet::Problem::DictCorrupt { id: 32768, .. })),
        "{:?}",
        report.findings
    );
    // repair leaves dictionaries alone
    comet::repair(t.path()).unwrap();
    assert!(path.exists());
}

#[test]
fn a_missing_dictionary_is_a_typed_error_and_a_finding() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), 200, 200);
    std::fs::remove_file(shard_dir(t.path()).join("dict-0000032768.zdict")).unwrap();
    let c = Client::open_read_only(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    assert!(matches!(r.read(350), Err(Error::MissingDictionary { entry: 350, id: 32768, .. })));
    drop(r);
    c.close().unwrap();
    let mut log = Log::open(t.path(), embedded_config(), comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(matches!(
        log.read_into(SHARD, 350, &mut buf),
        Err(comet_embedded::Error::MissingDictionary { entry: 350, id: 32768, .. })
    ));
    log.close().unwrap();
    let report = comet::verify(t.path()).unwrap();
    assert!(
        report.findings.iter().any(|f| f.finding.problem == comet::Problem::DictMissing { id: 32768 }
            && f.finding.entries.as_ref().is_some_and(|r| r.contains(&350))),
        "{:?}",
        report.findings
    );
}

/// A crash between the dictionary's write and its first use leaves either
/// a torn `dict.tmp` (never read) or a complete dictionary no frame names:
/// both leave a shard that reads, and the writer goes on.
#[test]
fn a_dictionary_written_but_never_used_leaves_a_readable_shard() {
    let t = tempfile::tempdir().unwrap();
    let lines = write(t.path(), 200, 0);
    assert_eq!(dict_files(t.path()).len(), 1);
    std::fs::write(shard_dir(t.path()).join("dict.tmp"), b"CMTD torn").unwrap();
    let c = Client::open(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(r.read(i as u64).unwrap().data(), &l[..]);
    }
    let more: Vec<Vec<u8>> = (200..260).map(line).collect();
    c.append_shard(SHARD, &more).unwrap();
    c.sync().unwrap();
    for (i, l) in more.iter().enumerate() {
        assert_eq!(r.read(200 + i as u64).unwrap().data(), &l[..]);
    }
    drop(r);
    c.close().unwrap();
    let report = comet::verify(t.path()).unwrap();
    assert!(report.findings.iter().all(|f| f.finding.severity != comet::Severity::Damage), "{:?}", report.findings);
}

#[test]
fn training_on_demand_needs_the_setting_and_then_compresses() {
    let t = tempfile::tempdir().unwrap();
    let mut off = config();
    off.compression.dictionary = false;
    let c = Client::open(t.path(), off).unwrap();
    let lines: Vec<Vec<u8>> = (0..150).map(line).collect();
    c.append_shard(SHARD, &lines).unwrap();
    c.sync().unwrap();
    assert!(matches!(c.train_dictionary(SHARD), Err(Error::Config(_))));
    c.close().unwrap();
    assert!(dict_files(t.path()).is_empty());

    let mut on = config();
    on.compression.dict_sample_bytes = 1 << 20; // never due by itself
    let c = Client::open(t.path(), on).unwrap();
    assert_eq!(c.train_dictionary(SHARD).unwrap(), 32768);
    let before = segment_bytes(t.path());
    let more: Vec<Vec<u8>> = (150..450).map(line).collect();
    c.append_shard(SHARD, &more).unwrap();
    c.sync().unwrap();
    let grown = segment_bytes(t.path()) - before;
    let raw: u64 = more.iter().map(|l| l.len() as u64).sum();
    assert!(grown * 2 < raw, "{grown} of {raw}");
    let mut r = c.reader(SHARD).unwrap();
    for (i, l) in lines.iter().chain(&more).enumerate() {
        assert_eq!(r.read(i as u64).unwrap().data(), &l[..]);
    }
    drop(r);
    c.close().unwrap();
}

/// Dictionary 32768 is first used at entry 300, 32769 at 900: retention
/// deletes 32768 exactly when the oldest retained entry reaches 900, and
/// never the newest; every retained entry reads throughout.
#[test]
fn retention_keeps_a_dictionary_while_retained_entries_may_use_it() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.storage.max_file_size = 16 << 10;
    cfg.retention.protect_unconsumed = false;
    cfg.retention.min_files_to_keep = 1;
    cfg.compression.dict_sample_bytes = 64 << 20; // never due by itself
    let lines: Vec<Vec<u8>> = (0..1500).map(line).collect();
    let c = Client::open(t.path(), cfg).unwrap();
    let append = |range: std::ops::Range<usize>| {
        for chunk in lines[range].chunks(10) {
            c.append_shard(SHARD, chunk).unwrap();
        }
        c.sync().unwrap();
    };
    append(0..300);
    assert_eq!(c.train_dictionary(SHARD).unwrap(), 32768);
    append(300..900);
    assert_eq!(c.train_dictionary(SHARD).unwrap(), 32769);
    assert_eq!(c.shard_stats(SHARD).unwrap().dictionaries, vec![32768, 32769]);
    append(900..1500);
    c.close().unwrap();

    let first_dict = shard_dir(t.path()).join("dict-0000032768.zdict");
    let newest = shard_dir(t.path()).join("dict-0000032769.zdict");
    let (mut kept_while_needed, mut deleted) = (false, false);
    for kib in [200u64, 160, 140, 120, 110, 100, 90, 80, 70, 60, 50, 40, 32, 24] {
        let mut cfg = cfg;
        cfg.retention.max_shard_size = Some(kib << 10);
        let c = Client::open(t.path(), cfg).unwrap();
        c.run_retention_now().unwrap();
        let mut r = c.reader(SHARD).unwrap();
        let (first, end) = r.bounds().unwrap();
        assert_eq!(end, 1500);
        assert_eq!(first_dict.exists(), first < 900, "oldest retained {first}");
        assert!(newest.exists());
        kept_while_needed |= (300..900).contains(&first);
        deleted |= first >= 900;
        for i in first..end {
            assert_eq!(r.read(i).unwrap().data(), &lines[i as usize][..], "entry {i}");
        }
        drop(r);
        c.close().unwrap();
    }
    assert!(kept_while_needed && deleted, "the sweep did not cross entry 900 from inside 300..900");
}

/// A sync returns with the dictionary in use even when the background
/// flusher took the samples first (it waits for that training), and an
/// explicit training never overlaps it: each round ends with exactly the
/// two dictionaries it asked for.
#[test]
fn a_sync_waits_for_the_flushers_training_and_trainings_never_overlap() {
    for round in 0..12 {
        let t = tempfile::tempdir().unwrap();
        let mut cfg = config();
        cfg.storage.flush_interval = Duration::from_millis(1);
        let c = Client::open(t.path(), cfg).unwrap();
        let lines: Vec<Vec<u8>> = (0..400).map(line).collect();
        for chunk in lines[..200].chunks(10) {
            c.append_shard(SHARD, chunk).unwrap();
        }
        c.sync().unwrap();
        assert_eq!(c.shard_stats(SHARD).unwrap().dictionaries, vec![32768], "round {round}");
        assert_eq!(c.train_dictionary(SHARD).unwrap(), 32769, "round {round}");
        for chunk in lines[200..].chunks(10) {
            c.append_shard(SHARD, chunk).unwrap();
        }
        c.sync().unwrap();
        assert_eq!(c.shard_stats(SHARD).unwrap().dictionaries, vec![32768, 32769], "round {round}");
        c.close().unwrap();
        assert_eq!(dict_files(t.path()).len(), 2);
    }
}

/// Verify finds the frames that name a missing dictionary in the active
/// segment also when its chunk journal is gone (the check then scans the
/// segment's bytes instead of placing chunks by the journal).
#[test]
fn a_missing_dictionary_is_found_in_an_active_segment_without_its_journal() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), 200, 200);
    let dir = shard_dir(t.path());
    std::fs::remove_file(dir.join("dict-0000032768.zdict")).unwrap();
    let mut segments: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".comet"))
        .collect();
    segments.sort();
    let active = segments.last().unwrap();
    let base: u64 = active.trim_start_matches("log-").trim_end_matches(".comet").parse().unwrap();
    assert!(base < 200, "the active segment holds the dictionary frames (200..400): {segments:?}");
    let journal = dir.join(active.replace(".comet", ".chunks"));
    std::fs::remove_file(&journal).unwrap();
    let report = comet::verify(t.path()).unwrap();
    assert!(
        report.findings.iter().any(|f| f.finding.problem == comet::Problem::DictMissing { id: 32768 }
            && f.finding.entries.as_ref().is_some_and(|r| r.start >= base && r.contains(&350))),
        "{:?}",
        report.findings
    );
}

/// A FIFO in place of the dictionary: both readers return an error at
/// once (opens are non-blocking and refuse what is not a regular file).
#[test]
fn a_fifo_in_place_of_a_dictionary_is_an_error_for_both_readers() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), 200, 200);
    let path = shard_dir(t.path()).join("dict-0000032768.zdict");
    std::fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(status.success());
    let c = Client::open_read_only(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    let e = r.read(350).unwrap_err();
    assert!(e.to_string().contains("dict-0000032768.zdict"), "{e}");
    drop(r);
    c.close().unwrap();
    let mut log = Log::open(t.path(), embedded_config(), comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    let e = log.read_into(SHARD, 350, &mut buf).unwrap_err();
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain = format!("{chain}: {s}");
        source = s.source();
    }
    assert!(chain.contains("dict-0000032768.zdict"), "{chain}");
    log.close().unwrap();
}

/// A dictionary file whose header and CRC check out but whose zstd tables
/// the decoder refuses (a writer bug, or damage that kept the CRC): both
/// readers report the same thing, the dictionary file corrupt at its
/// start, and raw entries still read.
#[test]
fn a_dictionary_the_decoder_refuses_is_corrupt_for_both_readers() {
    use comet_core::platform::wire::{DICT_HEADER_LEN, encode_dict_header, parse_dict_file};
    let t = tempfile::tempdir().unwrap();
    let lines = write(t.path(), 200, 200);
    let path = shard_dir(t.path()).join("dict-0000032768.zdict");
    let bytes = std::fs::read(&path).unwrap();
    let file = parse_dict_file(&bytes).unwrap();
    let mut dict = file.dict.to_vec();
    // keep the zstd magic and id, zero the entropy tables after them
    dict[8..72].fill(0);
    let mut refused = encode_dict_header(file.first_entry, &dict).unwrap().to_vec();
    refused.extend_from_slice(&dict);
    std::fs::write(&path, &refused).unwrap();
    assert_eq!(parse_dict_file(&refused).unwrap().id, 32768, "the file itself checks out");

    let expect = |c: &comet::Corruption| {
        assert_eq!(c.file, FileKind::Dict { id: 32768 });
        assert_eq!(c.offset, DICT_HEADER_LEN as u64);
    };
    let c = Client::open_read_only(t.path(), config()).unwrap();
    let mut r = c.reader(SHARD).unwrap();
    assert_eq!(r.read(5).unwrap().data(), &lines[5][..], "raw entries still read");
    match r.read(350) {
        Err(Error::Corrupt { corruption, .. }) => expect(&corruption),
        other => panic!("std: {other:?}"),
    }
    drop(r);
    c.close().unwrap();

    let mut log = Log::open(t.path(), embedded_config(), comet_embedded::now_ns()).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(log.read_into(SHARD, 5, &mut buf).unwrap().len, lines[5].len());
    match log.read_into(SHARD, 350, &mut buf) {
        Err(comet_embedded::Error::Corrupt { corruption, .. }) => expect(&corruption),
        other => panic!("embedded: {other:?}"),
    }
    log.close().unwrap();
}
