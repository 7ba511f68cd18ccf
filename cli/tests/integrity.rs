//! The data path's integrity, through the `comet` binary: each finding of
//! the integrity review as a test (damaged bytes are never printed or
//! acked, swapped segments are refused, a stray copy is never adopted,
//! offsets carry checks, no file content, file type or size raises a
//! signal, hangs or eats memory (dictionary files too), shard creation is
//! atomic, a refused writer learns the holder's pid).
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use comet::{Client, Config};
use common::{Run, comet, payload, run, s, segment, small_log};

/// Runs `comet args`, killing it if it runs past `limit`: a hang is a
/// failure, and so is death by a signal (SIGBUS, SIGSEGV). Its output is
/// read while it runs, so a long output is not mistaken for a hang.
fn run_bounded<const N: usize>(args: [&str; N], limit: Duration) -> Run {
    let mut child = comet(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.signal().is_none(), "{args:?} died of signal {:?}", status.signal());
            let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
            return std::process::Output { status, stdout, stderr }.into();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{args:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// 1,000 entries in one active segment, closed cleanly (default config).
fn thousand(root: &Path) -> std::path::PathBuf {
    let dir = root.join("d");
    let c = Client::open(&dir, Config::default()).unwrap();
    for i in 0..1000u64 {
        c.append("t:shard:0001", &[format!("entry {i:05} ").repeat(3).into_bytes()]).unwrap();
    }
    c.close().unwrap();
    dir
}

fn offset_of_entry(seg: &Path, n: u64) -> usize {
    let b = std::fs::read(seg).unwrap();
    let mut off = 0usize;
    for _ in 0..n {
        off += 12 + u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    }
    off
}

#[test]
fn a_flipped_payload_byte_is_never_printed_or_acked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = thousand(tmp.path());
    let seg = dir.join("shard-0001/log-00000000000000000000.comet");
    let at = offset_of_entry(&seg, 500) + 12 + 3;
    let mut b = std::fs::read(&seg).unwrap();
    b[at] ^= 0x01;
    std::fs::write(&seg, b).unwrap();

    let r = run(["read", s(&dir), "t:shard:0001", "--from", "499", "--count", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("entry 00499"), "{r:?}");
    let r = run(["read", s(&dir), "t:shard:0001", "--from", "500", "--count", "1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.is_empty(), "nothing of the damaged chunk is printed: {r:?}");
    assert!(r.stderr.contains("entries 500..600") && r.stderr.contains("damaged"), "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 500, "entries 0..500 only: {r:?}");
    assert!(r.stderr.contains("comet repair"), "{r:?}");
    let r = run(["groups", s(&dir)]);
    assert!(r.stdout.contains("500"), "acked up to the damaged chunk, not into it: {r:?}");
    assert_eq!(run(["verify", s(&dir)]).code, 1);
}

#[test]
fn a_flipped_bit_inside_a_zstd_frame_is_never_decoded_into_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let mut cfg = Config::default();
    cfg.compression.min_compress_size = 64;
    let c = Client::open(&dir, cfg).unwrap();
    let big: Vec<u8> = (0..8675u32).map(|i| b"observability "[(i % 14) as usize]).collect();
    for _ in 0..3 {
        c.append("t:shard:0001", &[&big]).unwrap();
    }
    c.close().unwrap();
    let seg = dir.join("shard-0001/log-00000000000000000000.comet");
    let at = offset_of_entry(&seg, 1) + 12 + 20; // inside entry 1's frame
    let mut b = std::fs::read(&seg).unwrap();
    assert_eq!(&b[offset_of_entry(&seg, 1) + 12..][..4], &[0x28, 0xB5, 0x2F, 0xFD], "stored as a frame");
    b[at] ^= 0x10;
    std::fs::write(&seg, b).unwrap();
    let r = run(["read", s(&dir), "t:shard:0001", "--format", "sha256"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.is_empty(), "the chunk (all three entries) is refused: {r:?}");
}

#[test]
fn swapped_sealed_segments_are_refused_not_read_under_the_wrong_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 200);
    let (a, b) = (segment(&dir, 40), segment(&dir, 80));
    let tmpf = a.with_extension("tmp");
    std::fs::rename(&a, &tmpf).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmpf, &b).unwrap();
    let r = run(["consume", s(&dir), "--group", "g", "--format", "jsonl"]);
    assert_eq!(r.code, 2, "{r:?}");
    let entries: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["entry"].as_u64().unwrap())
        .collect();
    assert_eq!(entries, (0..40).collect::<Vec<_>>(), "nothing under a wrong number: {r:?}");
    for line in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let e = v["entry"].as_u64().unwrap();
        assert_eq!(v["payload"].as_str().unwrap().as_bytes(), &payload(e)[..]);
    }
    assert_eq!(run(["verify", s(&dir)]).code, 1);
}

#[test]
fn a_truncated_active_segment_raises_no_signal() {
    for cut in [0u64, 4095, 12288] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = thousand(tmp.path());
        let seg = dir.join("shard-0001/log-00000000000000000000.comet");
        assert!(std::fs::metadata(&seg).unwrap().len() > 12288);
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut).unwrap();
        let limit = Duration::from_secs(30);
        let r = run_bounded(["read", s(&dir), "t:shard:0001"], limit);
        assert_eq!(r.code, 2, "cut {cut}: {r:?}");
        let r = run_bounded(["tail", s(&dir), "t:shard:0001", "--count", "1", "--timeout", "1s"], limit);
        assert!(r.code == 2 || r.code == 0, "cut {cut}: {r:?}");
        let r = run_bounded(["consume", s(&dir), "--group", "g"], limit);
        assert_eq!(r.code, 2, "cut {cut}: {r:?}");
        let r = run_bounded(["stat", s(&dir)], limit);
        assert_eq!(r.code, 0, "cut {cut}: {r:?}");
        let r = run_bounded(["verify", s(&dir)], limit);
        assert_eq!(r.code, 1, "cut {cut}: {r:?}");
        // the entries that are still whole read back once repaired
        let r = run_bounded(["repair", s(&dir)], limit);
        assert_eq!(r.code, 0, "cut {cut}: {r:?}");
        let r = run_bounded(["read", s(&dir), "t:shard:0001", "--count", "1"], limit);
        if cut >= 12288 {
            assert!(r.stdout.starts_with("entry 00000"), "cut {cut}: {r:?}");
        }
    }
}

#[test]
fn fifos_and_devices_in_place_of_files_are_refused_without_hanging() {
    let names = [
        "log-00000000000000000000.comet",
        "comet.state",
        "index.bin",
        "offsets.state",
        "log-00000000000000000000.chunks",
    ];
    for name in names {
        for kind in ["fifo", "dev-zero"] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = thousand(tmp.path());
            assert_eq!(run(["consume", s(&dir), "--group", "g", "--count", "1"]).code, 0);
            let path = dir.join("shard-0001").join(name);
            std::fs::remove_file(&path).unwrap();
            if kind == "fifo" {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: a valid C string path; mkfifo has no other preconditions.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            } else {
                std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            }
            let limit = Duration::from_secs(30);
            for args in [
                vec!["read", s(&dir), "t:shard:0001"],
                vec!["verify", s(&dir)],
                vec!["stat", s(&dir)],
                vec!["consume", s(&dir), "--group", "g"],
                vec!["repair", s(&dir)],
            ] {
                let mut a = [""; 4];
                for (d, x) in a.iter_mut().zip(&args) {
                    *d = x;
                }
                let r = match args.len() {
                    2 => run_bounded([a[0], a[1]], limit),
                    3 => run_bounded([a[0], a[1], a[2]], limit),
                    _ => run_bounded([a[0], a[1], a[2], a[3]], limit),
                };
                if r.code == 2 {
                    assert!(
                        r.stderr.contains("regular file") || r.stderr.contains("comet:"),
                        "{name} {kind} {args:?}: {r:?}"
                    );
                }
            }
        }
    }
}

/// The peak resident set of `comet args` in KiB (`wait4`), with a signal
/// or a hang a failure.
fn max_rss_kib<const N: usize>(args: [&str; N]) -> (i64, Run) {
    let child = comet(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Read the pipes after the exit: the outputs are small.
    // SAFETY: `pid` is our child, `status` and `usage` are valid for writes.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid);
    assert!(!libc::WIFSIGNALED(status), "{args:?} died of a signal");
    let out = child.wait_with_output();
    let (stdout, stderr) = out.map(|o| (o.stdout, o.stderr)).unwrap_or_default();
    let run = Run {
        code: libc::WEXITSTATUS(status),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    (usage.ru_maxrss, run)
}

#[test]
fn huge_sparse_metadata_files_are_refused_by_size_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = thousand(tmp.path());
    let sd = dir.join("shard-0001");
    std::fs::OpenOptions::new().write(true).open(sd.join("index.bin")).unwrap().set_len(1 << 30).unwrap();
    let (rss, r) = max_rss_kib(["read", s(&dir), "t:shard:0001", "--count", "1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(rss < 200 * 1024, "read took {rss} KiB for a 1 GiB sparse index.bin");
    let (rss, r) = max_rss_kib(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(rss < 200 * 1024, "verify took {rss} KiB");
    for file in ["comet.state", "offsets.state"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = thousand(tmp.path());
        assert_eq!(run(["consume", s(&dir), "--group", "g", "--count", "1"]).code, 0);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("shard-0001").join(file))
            .unwrap()
            .set_len(8 << 30)
            .unwrap();
        for args in [["stat", s(&dir), "--allow-empty"], ["verify", s(&dir), "--allow-empty"]] {
            let start = Instant::now();
            let (rss, r) = max_rss_kib(args);
            assert!(rss < 200 * 1024, "{file} {args:?}: {rss} KiB, {r:?}");
            assert!(start.elapsed() < Duration::from_secs(10), "{file} {args:?} took {:?}", start.elapsed());
        }
    }
}

#[test]
fn a_stray_segment_copy_is_never_adopted_or_renumbered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = thousand(tmp.path());
    let sd = dir.join("shard-0001");
    std::fs::copy(sd.join("log-00000000000000000000.comet"), sd.join("log-00000000000000100981.comet")).unwrap();
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("log-00000000000000100981.comet") && r.stdout.contains("accounts for"), "{r:?}");
    let r = common::run_with_stdin(["append", s(&dir), "t:shard:0001"], b"next\n");
    assert!(r.stdout.contains("as entries 1000..1001"), "numbering goes on where it was: {r:?}");
    assert!(sd.join("log-00000000000000100981.comet.stray").exists(), "set aside, never deleted");
    let r = run(["read", s(&dir), "t:shard:0001", "--from", "999"]);
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    assert_eq!(run(["verify", s(&dir)]).code, 0);
}

/// The byte offset of `group`'s slot in `offsets.state` (the slot whose
/// name field holds it).
fn slot_of(offsets: &[u8], group: &str) -> usize {
    (0..512)
        .map(|i| 64 + 128 * i)
        .find(|&at| offsets[at..at + group.len()] == *group.as_bytes() && offsets[at + group.len()] == 0)
        .unwrap()
}

#[test]
fn a_flipped_offset_bit_never_makes_a_group_skip_and_repair_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = thousand(tmp.path());
    assert_eq!(run(["consume", s(&dir), "--group", "g", "--count", "500"]).code, 0);
    let path = dir.join("shard-0001/offsets.state");
    let mut b = std::fs::read(&path).unwrap();
    let slot = slot_of(&b, "g");
    assert_eq!(u64::from_le_bytes(b[slot + 48..slot + 56].try_into().unwrap()), 500);
    b[slot + 48] ^= 0x08; // 500 -> 508
    std::fs::write(&path, &b).unwrap();
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("fails its check; the group resumes at 500"), "{r:?}");
    let r = run(["consume", s(&dir), "--group", "g", "--count", "1", "--format", "jsonl", "--no-ack"]);
    assert!(r.stdout.contains("\"entry\":500"), "never skips 500..508: {r:?}");
    let r = run(["repair", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(run(["verify", s(&dir)]).code, 0);
    let b = std::fs::read(&path).unwrap();
    assert_eq!(u64::from_le_bytes(b[slot + 48..slot + 56].try_into().unwrap()), 500);
}

#[test]
fn every_checked_offsets_byte_is_covered() {
    // Flip each bit of the group's name, offset, name check and offset
    // check, and of the table header: the group never reads on past 500
    // and verify always reports damage.
    let tmp = tempfile::tempdir().unwrap();
    let base = thousand(tmp.path());
    assert_eq!(run(["consume", s(&base), "--group", "billing", "--count", "500"]).code, 0);
    let original = std::fs::read(base.join("shard-0001/offsets.state")).unwrap();
    let slot = slot_of(&original, "billing");
    let positions: Vec<usize> =
        (0..8).chain((slot..slot + 56).step_by(3)).chain(slot + 72..slot + 76).chain(slot + 80..slot + 88).collect();
    for (k, at) in positions.into_iter().enumerate() {
        let mut b = original.clone();
        b[at] ^= 1 << (k % 8);
        std::fs::write(base.join("shard-0001/offsets.state"), &b).unwrap();
        let r = run(["verify", s(&base)]);
        assert_eq!(r.code, 1, "byte {at}: {r:?}");
        let r = run(["consume", s(&base), "--group", "billing", "--count", "1", "--format", "jsonl", "--no-ack"]);
        if let Some(line) = r.stdout.lines().next() {
            let e = serde_json::from_str::<serde_json::Value>(line).unwrap()["entry"].as_u64().unwrap();
            assert!(e <= 500, "byte {at}: the group skipped to {e}");
        }
    }
}

#[test]
fn damage_to_one_shards_offsets_stays_in_that_shard_and_repair_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let c = Client::open(&dir, Config::default()).unwrap();
    for shard in ["t:shard:0001", "t:shard:0002"] {
        for i in 0..50u64 {
            c.append(shard, &[format!("{shard} {i}").into_bytes()]).unwrap();
        }
    }
    c.close().unwrap();
    assert_eq!(run(["consume", s(&dir), "--group", "g", "--count", "100"]).code, 0);
    for len in [1000u64, 100_000] {
        let path = dir.join("shard-0001/offsets.state");
        let mut b = std::fs::read(&path).unwrap();
        b.resize(len as usize, 0);
        std::fs::write(&path, &b).unwrap();
        let r = run(["stat", s(&dir)]);
        assert_eq!(r.code, 0, "stat of the directory still works: {r:?}");
        let r = run(["consume", s(&dir), "--group", "g", "--stream", "t:shard:0002", "--count", "1"]);
        assert_eq!(r.code, 0, "the other shard is not affected: {r:?}");
        assert_eq!(run(["verify", s(&dir)]).code, 1);
        let r = run(["repair", s(&dir)]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(["verify", s(&dir)]).code, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 65_600);
    }
    // all zero: what a full disk leaves; means "no groups", not damage
    std::fs::write(dir.join("shard-0001/offsets.state"), vec![0u8; 65_600]).unwrap();
    let r = run(["verify", s(&dir)]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_writer_killed_while_creating_a_shard_leaves_no_half_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    for round in 0..60u64 {
        let stream = format!("t:shard:{:04}", round % 10000);
        let mut child = comet(["append", s(&dir), &stream])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(200 * (round % 25)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let r = run(["verify", s(&dir), "--allow-empty"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("DAMAGE"), "{r:?}");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    for n in &names {
        assert!(n.starts_with("shard-") || n.starts_with(".shard-"), "{n}");
    }
}

#[test]
fn two_writers_started_at_once_the_refused_one_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_log(tmp.path(), 10);
    let mut named = 0;
    for _ in 0..20 {
        let spawn = || {
            comet(["append", s(&dir), "test:shard:0001"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        std::thread::sleep(Duration::from_millis(50));
        let outs: Vec<Run> = [a, b]
            .into_iter()
            .map(|mut c| {
                drop(c.stdin.take());
                c.wait_with_output().unwrap().into()
            })
            .collect();
        for r in outs.iter().filter(|r| r.code != 0) {
            assert!(r.stderr.contains("locked by another writer (pid "), "{r:?}");
            named += 1;
        }
    }
    eprintln!("{named} refusals, each naming the holder's pid");
}

/// A shard whose later entries are compressed with a zstd dictionary
/// (`dict-0000032768.zdict`); returns the data directory.
fn with_dictionary(root: &Path) -> std::path::PathBuf {
    let dir = root.join("d");
    let mut cfg = Config::default();
    cfg.compression.dictionary = true;
    cfg.compression.dict_sample_bytes = 8 << 10;
    cfg.compression.dict_max_size = 1 << 10;
    let c = Client::open(&dir, cfg).unwrap();
    let line = |i: u64| {
        format!(
            r#"{{"level":"info","seq":{i},"svc":"edge","msg":"request {} served in {} ms"}}"#,
            i * 7919 % 1000,
            i % 97
        )
        .into_bytes()
    };
    // Few entries: the commands' output stays within a pipe's buffer.
    for k in 0..6u64 {
        let batch: Vec<Vec<u8>> = (k * 40..k * 40 + 40).map(line).collect();
        c.append("t:shard:0001", &batch).unwrap();
        c.sync().unwrap();
    }
    assert_eq!(c.shard_stats(comet::ShardId::new(1).unwrap()).unwrap().dictionaries, vec![32768]);
    c.close().unwrap();
    dir
}

/// A FIFO, a symlink to /dev/zero or a 1 GiB sparse file in place of a
/// dictionary: every command that reads the shard ends (no hang, no
/// signal) within bounded memory, and an error names what is wrong.
#[test]
fn hostile_dictionary_files_are_refused_without_hanging_or_eating_memory() {
    for kind in ["fifo", "dev-zero", "sparse"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = with_dictionary(tmp.path());
        let path = dir.join("shard-0001").join("dict-0000032768.zdict");
        std::fs::remove_file(&path).unwrap();
        match kind {
            "fifo" => {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: a valid C string path; mkfifo has no other preconditions.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }
            "dev-zero" => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
            _ => std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap(),
        }
        let limit = Duration::from_secs(30);
        let read = run_bounded(["read", s(&dir), "t:shard:0001"], limit);
        assert_eq!(read.code, 2, "{kind}: {read:?}");
        assert!(read.stderr.contains("dict-0000032768.zdict"), "{kind}: {read:?}");
        let verify = run_bounded(["verify", s(&dir)], limit);
        assert_eq!(verify.code, 1, "{kind}: {verify:?}");
        let consume = run_bounded(["consume", s(&dir), "--group", "g"], limit);
        assert_eq!(consume.code, 2, "{kind}: {consume:?}");
        assert_eq!(run_bounded(["stat", s(&dir)], limit).code, 0, "{kind}");
        let (rss, r) = max_rss_kib(["read", s(&dir), "t:shard:0001"]);
        assert!(rss < 200 * 1024, "{kind}: read took {rss} KiB: {r:?}");
    }
}
