//! Crash and corruption tests for what this crate adds on top of the
//! core's recovery: the directory storage under short I/O and failing
//! writes, the shared state files, the writer lock, and a real `SIGKILL`
//! of a writer process in the middle of its appends.
#![allow(clippy::field_reassign_with_default, clippy::cast_possible_truncation)]

mod common;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use comet_core::platform::shard::Shard;
use comet_core::platform::state::{FileHeadStore, STATE_FILE};
use comet_core::platform::storage::{ErrorKind, OpenMode, Storage};
use comet_core::platform::wire::NoCompression;
use comet_core::sim::{FailingStorage, ShortIo};
use comet_embedded::{Error, Log, OFFSETS_QUARANTINE};
use comet_linux::DirStorage;
use comet_test_child::ChildTest;
use common::{S0, flip, payload, segments, small};

fn read(log: &mut Log, n: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let e = log.read_into(S0, n, &mut buf).unwrap();
    buf.truncate(e.len);
    buf
}

fn seg0(root: &Path) -> std::path::PathBuf {
    root.join("shard-0000/log-00000000000000000000.comet")
}

#[test]
fn the_engine_runs_on_this_storage_with_one_byte_io() {
    let t = tempfile::tempdir().unwrap();
    let cfg = small().engine().unwrap();
    std::fs::create_dir(t.path().join("shard-0000")).unwrap();
    let dir = || ShortIo::new(DirStorage::open_path(&t.path().join("shard-0000")).unwrap(), 1);
    let open = || {
        let d = dir();
        let head = FileHeadStore::new(d.open(STATE_FILE, OpenMode::Create).unwrap()).unwrap();
        Shard::open(d, head, NoCompression, cfg).unwrap().0
    };
    let mut s = open();
    for i in 0..60 {
        s.append(1 + i, &[payload(i)]).unwrap();
    }
    s.sync().unwrap();
    s.close().unwrap();
    let s = open();
    let mut buf = vec![0u8; 512];
    let mut rb = comet_core::platform::shard::ReadBuf::fixed(4096, 1024);
    for i in 0..60 {
        let e = s.read_with(i, &mut rb, &mut buf).unwrap();
        assert_eq!(&buf[..e.header.len as usize], &payload(i)[..]);
    }
}

#[test]
fn a_full_disk_mid_write_keeps_every_synced_entry() {
    let t = tempfile::tempdir().unwrap();
    let cfg = small().engine().unwrap();
    let mut synced = 0;
    {
        std::fs::create_dir(t.path().join("shard-0000")).unwrap();
        let d = FailingStorage::new(DirStorage::open_path(&t.path().join("shard-0000")).unwrap());
        let faults = d.faults();
        let head = FileHeadStore::new(d.open(STATE_FILE, OpenMode::Create).unwrap()).unwrap();
        let mut s = Shard::open(d, head, NoCompression, cfg).unwrap().0;
        faults.partial_writes(true);
        faults.fail_at(faults.mutations() + 37, ErrorKind::StorageFull);
        for i in 0..500 {
            if s.append(1 + i, &[payload(i)]).is_err() || s.sync().is_err() {
                break;
            }
            synced = i + 1;
        }
        assert!(synced < 500, "the fault fired");
    }
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let end = log.durable_end(S0).unwrap();
    assert!(end >= synced, "{end} < {synced}: {:?}", log.recovery(S0));
    for i in 0..synced {
        assert_eq!(read(&mut log, i), payload(i), "entry {i}");
    }
    let next = log.next_entry(S0).unwrap();
    assert_eq!(log.append(S0, 1, &[b"after"]).unwrap(), next..next + 1);
}

/// Copies `from` to `to` recursively (a crash image of a live log: what the
/// page cache holds, which includes everything synced).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A crash image: 100 entries synced, 20 more appended but not synced
/// (still in the write buffer), taken while the writer is live.
fn crashed_dir() -> tempfile::TempDir {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let mut log = Log::open(live.path(), small(), 1).unwrap();
    for i in 0..100 {
        log.append(S0, 1 + i, &[payload(i)]).unwrap();
    }
    log.sync(S0, 200).unwrap();
    for i in 100..120 {
        log.append(S0, 1 + i, &[payload(i)]).unwrap();
    }
    copy_dir(live.path(), image.path());
    image
}

#[test]
fn torn_tails_and_chopped_files_are_cut_back() {
    let t = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(t.path(), small(), 1).unwrap();
        for i in 0..10 {
            log.append(S0, 1 + i, &[payload(i)]).unwrap();
        }
        log.sync(S0, 20).unwrap();
    }
    // garbage after the synced data (a torn write), then a half header
    let seg = seg0(t.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = OpenOptions::new().append(true).open(&seg).unwrap();
    use std::io::Write;
    (&f).write_all(&[7, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let rep = log.recovery(S0).unwrap().clone();
    assert_eq!(rep.torn.len(), 1, "{rep:?}");
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    for i in 0..10 {
        assert_eq!(read(&mut log, i), payload(i));
    }
    assert_eq!(log.next_entry(S0).unwrap(), 10);
}

#[test]
fn a_flipped_bit_in_synced_data_costs_its_chunk_and_is_never_served() {
    let t = crashed_dir();
    let (base, active) = segments(t.path()).pop().unwrap();
    assert!(std::fs::metadata(&active).unwrap().len() > 30);
    flip(&active, 30, 0x10);
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    let first = log.first_entry(S0).unwrap();
    let end = log.durable_end(S0).unwrap();
    let interval = u64::from(small().boundary_interval);
    let mut buf = vec![0u8; 4096];
    for i in first..end {
        match log.read_into(S0, i, &mut buf) {
            Ok(e) => {
                assert_eq!(&buf[..e.len], &payload(i)[..], "entry {i}");
                assert!(i >= base + interval || i < base, "entry {i} of the damaged chunk served");
            }
            Err(Error::Damaged { damage: d, .. }) => {
                assert_eq!((d.segment, d.first), (base, base), "entry {i}");
                assert!(i < base + interval);
            }
            Err(e) => panic!("entry {i}: {e:?}"),
        }
    }
}

#[test]
fn lost_or_damaged_metadata_files_are_rebuilt() {
    let t = crashed_dir();
    let shard = t.path().join("shard-0000");
    std::fs::remove_file(shard.join("index.bin")).unwrap();
    std::fs::write(shard.join("comet.state"), [0xAB; 300]).unwrap();
    std::fs::write(shard.join("offsets.state"), b"not an offsets table").unwrap();
    std::fs::write(shard.join("writer.lock"), b"garbage \xff").unwrap();
    let mut log = Log::open(t.path(), small(), 1).unwrap();
    assert!(log.recovery(S0).unwrap().rebuilt_manifest);
    assert!(log.offsets_were_reset(S0).unwrap());
    assert!(shard.join(OFFSETS_QUARANTINE).exists());
    assert_eq!(std::fs::metadata(shard.join("comet.state")).unwrap().len(), 1024);
    for i in 0..100 {
        assert_eq!(read(&mut log, i), payload(i));
    }
    log.ack(S0, "g", 5).unwrap();
    assert_eq!(log.group_offset(S0, "g").unwrap(), Some(5));
}

#[test]
fn an_offsets_file_with_a_bad_header_is_replaced() {
    let t = crashed_dir();
    let path = t.path().join("shard-0000/offsets.state");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4..8].copy_from_slice(&[1, 2, 3, 4]); // magic
    std::fs::write(&path, &bytes).unwrap();
    let log = Log::open(t.path(), small(), 1).unwrap();
    assert!(log.offsets_were_reset(S0).unwrap());
}

#[test]
fn a_lock_held_by_another_process_names_it() {
    let t = tempfile::tempdir().unwrap();
    Log::open(t.path(), small(), 1).unwrap().close().unwrap();
    let lock = t.path().join("shard-0000/writer.lock");
    // flock(1) from util-linux holds the lock for a shell that writes its
    // pid into the file, then execs sleep (same pid).
    let child = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sh", "-c", "echo $$ > \"$1\"; echo held; exec sleep 20", "sh"])
        .arg(&lock)
        .stdout(Stdio::piped())
        .spawn();
    // flock(1) is part of util-linux, on every Linux this runs on; a test
    // that could not take the lock must fail, not pass untested.
    let mut child = child.expect("flock(1) from util-linux");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let r = Log::open(t.path(), small(), 1);
    let holder = std::fs::read_to_string(&lock).unwrap();
    let _ = Command::new("kill").arg(holder.trim()).status();
    let _ = child.kill();
    let _ = child.wait();
    match r {
        Err(Error::Locked { pid: Some(pid), .. }) => {
            assert_eq!(pid.to_string(), holder.trim());
            assert_ne!(pid, std::process::id());
        }
        other => panic!("{other:?}"),
    }
}

const CHILD_ENV: &str = "COMET_EMBEDDED_CRASH_CHILD";

/// The child half of `a_killed_writer_loses_nothing_it_synced`: appends and
/// syncs forever, printing each synced end. Not a test of its own: the
/// parent runs it (with `--ignored`) in a child process and kills it.
#[test]
#[ignore = "the child half of a_killed_writer_loses_nothing_it_synced, which runs it in a child process"]
fn crash_child() {
    let dir = std::env::var(CHILD_ENV)
        .unwrap_or_else(|_| panic!("only a_killed_writer_loses_nothing_it_synced runs this (it sets {CHILD_ENV})"));
    let mut log = Log::open(&dir, small(), 1).unwrap();
    let mut i = log.next_entry(S0).unwrap();
    loop {
        for _ in 0..7 {
            log.append(S0, 1 + i, &[payload(i)]).unwrap();
            i += 1;
        }
        log.sync(S0, 1 + i).unwrap();
        println!("synced {i}");
    }
}

#[test]
fn a_killed_writer_loses_nothing_it_synced() {
    let t = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let child = ChildTest::new("crash_child").env(CHILD_ENV, t.path()).spawn();
        let mut synced = 0u64;
        while let Some(l) = child.line() {
            if let Some(n) = l.strip_prefix("synced ") {
                synced = n.parse().unwrap();
                if synced >= 200 * (round + 1) {
                    break;
                }
            }
        }
        let out = child.kill(); // SIGKILL, mid-append
        assert!(synced > 0, "round {round}: the child never synced ({}); stderr: {}", out.status, out.stderr);
        let mut log = Log::open(t.path(), small(), 1).unwrap();
        assert!(log.durable_end(S0).unwrap() >= synced, "round {round}");
        for i in 0..synced {
            assert_eq!(read(&mut log, i), payload(i), "round {round} entry {i}");
        }
        log.close().unwrap();
    }
}
