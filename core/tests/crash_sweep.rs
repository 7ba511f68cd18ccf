//! Crash sweeps: one fixed workload (appends of varied sizes, syncs, a
//! flush, a retention pass, rotations through several segments, a close),
//! interrupted at every sync and at every mutation of the in-memory
//! storage, then reopened from each image a crash can leave (power loss,
//! power loss with torn writes, process crash). And the same workload with
//! ENOSPC or EIO injected at every mutation, then healed.
//!
//! After every reopen: open completes; every entry covered by a completed
//! sync (the highest durable end the engine reported) is readable byte for
//! byte under its number; numbering continues densely, with no gap and no
//! reuse; retention never removed more than it was asked to.
#![allow(clippy::cast_possible_truncation)]

use comet_core::Error;
use comet_core::platform::shard::EngineConfig;
use comet_core::platform::storage::{ErrorKind, Storage};
use comet_core::platform::wire::ZSTD_MAGIC;
use comet_core::sim::model::{FileShard, RunLengthCompressor, open_shard, read_payload};
use comet_core::sim::{CrashMode, FailingStorage, MemDir};

type Shard<S> = FileShard<S, RunLengthCompressor>;

fn cfg() -> EngineConfig {
    EngineConfig {
        interval: 4,
        max_entry: 1024,
        max_file_size: 1024,
        buffer_size: 256,
        min_compress: 64,
        max_chunks: u32::MAX,
        max_sealed: u32::MAX,
    }
}

/// Entry `i`'s payload: empty, zstd-magic, compressible runs, larger than
/// the write buffer, and plain patterns of varied sizes.
fn payload(i: u64) -> Vec<u8> {
    let pattern = |len: u64| (0..len).map(|k| (i * 31 + k * 7) as u8).collect::<Vec<u8>>();
    match i % 7 {
        0 => Vec::new(),
        1 => {
            let mut p = ZSTD_MAGIC.to_vec();
            p.extend(pattern(26));
            p
        }
        2 => vec![i as u8; 200],
        3 => pattern(300),
        _ => pattern(i * 13 % 90),
    }
}

/// What the workload saw before it stopped.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Entries appended (the next number).
    appended: u64,
    /// One past the batch an interrupted append was writing: a crash (or a
    /// failed write that could not be cut back) may leave a prefix of it.
    in_flight: u64,
    /// Segment files a retention pass failed to unlink (reported, not an
    /// error: the next open removes them).
    unlink_errors: u64,
    /// Failed journal writes (counted and retried at the next sync, not an
    /// error: readers and recovery fall back to the segment's bytes).
    journal_errors: u64,
    /// Highest durable end the engine reported: everything below must
    /// survive any crash.
    durable: u64,
    /// Entries handed to files (survive a process crash).
    flushed: u64,
    /// First entry retention was asked to keep.
    retain_target: u64,
    /// The close completed.
    closed: bool,
}

impl Seen {
    fn observe<S: Storage>(&mut self, s: &Shard<S>) {
        self.appended = s.next_entry();
        self.durable = self.durable.max(s.durable_end());
        self.flushed = self.flushed.max(s.active_base() + s.active_written_entries());
    }
}

/// Runs the workload until the first error, which it returns.
fn workload<S: Storage>(mut s: Shard<S>, seen: &mut Seen) -> Result<(), Error<S::Error>> {
    for step in 0..30u64 {
        let first = s.next_entry();
        let batch: Vec<Vec<u8>> = (first..first + 1 + step % 4).map(payload).collect();
        seen.in_flight = first + batch.len() as u64;
        let r = s.append(1_000 + step, &batch);
        seen.observe(&s);
        assert_eq!(r?, first..first + batch.len() as u64, "dense numbering");
        let r = match step % 10 {
            2 | 5 | 8 => s.sync(),
            4 => s.flush_buffer(),
            6 if step == 16 => {
                let k = 1;
                seen.retain_target = s.manifest().sealed.get(k).map_or(s.active_base(), |m| m.base);
                s.delete_oldest(k).map(|d| seen.unlink_errors += d.unlink_errors)
            }
            9 => s.rotate(),
            _ => Ok(()),
        };
        seen.observe(&s);
        s.drain_counters(|c, v| {
            if c == comet_core::Counter::JournalErrors {
                seen.journal_errors += v;
            }
        });
        r?;
    }
    let appended = s.next_entry();
    s.close()?;
    seen.closed = true;
    seen.durable = appended;
    seen.flushed = appended;
    Ok(())
}

/// Reads every retained entry of a reopened shard, checks it against the
/// workload, then appends and syncs one more entry; then loses power and
/// checks that everything the reopened shard called durable survived.
/// `mem` is the memory behind `dir`. Returns how many unsynced entries a
/// torn image left damaged (a limit of the format: no checksum covers
/// bytes beyond the durable head).
fn check_reopened<S: Storage + Clone>(dir: &S, mem: &MemDir, seen: &Seen, mode: Option<CrashMode>) -> u64
where
    S::Error: core::fmt::Debug,
{
    let what = format!("{mode:?} after {seen:?}");
    let (mut s, report) =
        open_shard(dir, cfg(), RunLengthCompressor).unwrap_or_else(|e| panic!("open failed ({what}): {e:?}"));
    assert!(report.quarantined.is_empty(), "{what}: {report:?}");
    let next = s.next_entry();
    let lower = match mode {
        Some(CrashMode::Process) | None => seen.durable.max(seen.flushed),
        Some(_) => seen.durable,
    };
    assert!(next >= lower, "{what}: next {next} < {lower}: synced entries lost or numbers reused; {report:?}");
    assert!(next <= seen.appended.max(seen.in_flight), "{what}: next {next} beyond what was appended");
    assert_eq!(s.durable_end(), next, "{what}");
    let first = s.first_entry();
    assert!(first <= seen.retain_target, "{what}: retention went past its target");
    assert!(report.missing.iter().all(|r| r.end <= first), "{what}: gap {report:?}");
    let damaged = check_entries(&s, first..next, seen.durable, mode, &what);
    let r = s.append(99_000, &[payload(next)]).unwrap();
    assert_eq!(r, next..next + 1, "{what}: numbering continues densely");
    s.sync().unwrap();
    assert_eq!(read_payload(&s, next).unwrap().0, payload(next), "{what}");
    drop(s);
    // Power fails right after recovery: what it published must be on disk.
    let img = mem.crash_image(CrashMode::Durable);
    let what = format!("power loss after reopening ({what})");
    let (s, report) =
        open_shard(&img, cfg(), RunLengthCompressor).unwrap_or_else(|e| panic!("open failed ({what}): {e:?}"));
    assert!(report.quarantined.is_empty(), "{what}: {report:?}");
    assert_eq!(s.next_entry(), next + 1, "{what}: {report:?}");
    check_entries(&s, s.first_entry()..next + 1, seen.durable, mode, &what);
    damaged
}

/// Checks entries `range` read back as appended; a torn image may leave
/// the last unsynced entry it recovered zero-filled (counted, returned).
fn check_entries<S: Storage>(
    s: &Shard<S>,
    range: std::ops::Range<u64>,
    durable: u64,
    mode: Option<CrashMode>,
    what: &str,
) -> u64
where
    S::Error: core::fmt::Debug,
{
    let torn = matches!(mode, Some(CrashMode::Torn { .. }));
    let mut damaged = 0;
    let mut prev_ts = 0;
    for e in range {
        match read_payload(s, e) {
            Ok((p, ts)) if p == payload(e) && ts >= prev_ts => prev_ts = ts,
            _ if torn && e >= durable && damaged == 0 => damaged += 1,
            other => panic!("{what}: entry {e} reads {other:?}"),
        }
    }
    damaged
}

fn images(mem: &MemDir, n: u64) -> Vec<(CrashMode, MemDir)> {
    let mut out = vec![
        (CrashMode::Durable, mem.crash_image(CrashMode::Durable)),
        (CrashMode::Process, mem.crash_image(CrashMode::Process)),
    ];
    for k in 0..3 {
        let mode = CrashMode::Torn { seed: n * 31 + k };
        out.push((mode, mem.crash_image(mode)));
    }
    out
}

/// Runs the workload on a fresh directory with `arm` applied first;
/// returns the directory and what the workload saw.
fn crashed_run(arm: impl FnOnce(&MemDir)) -> (MemDir, Seen) {
    let mem = MemDir::new();
    arm(&mem);
    let mut seen = Seen::default();
    // Open may itself hit the crash point.
    if let Ok((s, _)) = open_shard(&mem, cfg(), RunLengthCompressor) {
        let _ = workload(s, &mut seen);
    }
    (mem, seen)
}

#[test]
fn workload_completes_and_rotates_several_segments() {
    let (mem, seen) = crashed_run(|_| {});
    assert!(seen.closed && !mem.crashed());
    let segments = mem.names().iter().filter(|n| n.ends_with(".comet")).count();
    assert!(segments >= 5, "{:?}", mem.names());
    assert!(mem.sync_count() > 20 && mem.mutation_count() > 100);
    check_reopened(&mem, &mem, &seen, None);
}

#[test]
fn crash_at_every_sync_loses_nothing_synced() {
    let total = crashed_run(|_| {}).0.sync_count();
    let mut damaged = 0;
    for n in 1..=total {
        let (mem, seen) = crashed_run(|m| m.crash_at_sync(n));
        assert!(mem.crashed(), "sync {n} of {total} never happened");
        for (mode, img) in images(&mem, n) {
            damaged += check_reopened(&img, &img, &seen, Some(mode));
        }
    }
    eprintln!("{total} sync points x 5 images; torn-tail entries damaged: {damaged}");
}

#[test]
fn crash_at_every_mutation_loses_nothing_synced() {
    let total = crashed_run(|_| {}).0.mutation_count();
    let mut damaged = 0;
    for n in 1..=total {
        let (mem, seen) = crashed_run(|m| m.crash_at_mutation(n));
        assert!(mem.crashed(), "mutation {n} of {total} never happened");
        for (mode, img) in images(&mem, n) {
            damaged += check_reopened(&img, &img, &seen, Some(mode));
        }
    }
    eprintln!("{total} mutation points x 5 images; torn-tail entries damaged: {damaged}");
}

/// Injects `kind` at mutation `n` (sticky, like a full disk, or once, like
/// a transient EIO), checks the error reached the caller, heals, and checks
/// the log is readable and writable with nothing synced lost.
fn fault_at(n: u64, kind: ErrorKind, sticky: bool) {
    let fs = FailingStorage::new(MemDir::new());
    let faults = fs.faults();
    if sticky {
        faults.fail_at(n, kind);
    } else {
        faults.fail_once_at(n, kind);
    }
    let mut seen = Seen::default();
    let outcome = match open_shard(&fs, cfg(), RunLengthCompressor) {
        Ok((s, _)) => workload(s, &mut seen),
        Err(e) => Err(e),
    };
    let what = format!("{kind:?} at mutation {n} (sticky {sticky})");
    match &outcome {
        Ok(()) => assert!(
            faults.failures() == 0 || seen.unlink_errors > 0 || seen.journal_errors > 0,
            "{what}: failure swallowed"
        ),
        Err(Error::Storage { source, .. }) => {
            assert!(faults.failures() > 0, "{what}: error without a fault");
            if faults.failures() == 1 {
                assert_eq!(source.kind, kind, "{what}");
            }
        }
        Err(e) => panic!("{what}: {e:?}"),
    }
    faults.heal();
    // The application restarts (the page cache survived): everything synced
    // is there, and the log takes new entries.
    check_reopened(&fs, fs.inner(), &seen, None);
    let (s, report) = open_shard(&fs, cfg(), RunLengthCompressor).unwrap();
    assert!(report.quarantined.is_empty(), "{what}: {report:?}");
    s.close().unwrap();
}

#[test]
fn enospc_at_every_mutation_is_reported_and_recovers_after_healing() {
    let total = crashed_run(|_| {}).0.mutation_count();
    for n in 1..=total + 1 {
        fault_at(n, ErrorKind::StorageFull, true);
    }
}

#[test]
fn transient_eio_at_every_mutation_is_reported_and_recovers() {
    let total = crashed_run(|_| {}).0.mutation_count();
    for n in 1..=total + 1 {
        fault_at(n, ErrorKind::Other, false);
    }
}
