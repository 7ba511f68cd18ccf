//! Opening a large shard of many segments: `Client::open` plus
//! `Client::recover_shard` (the shard's open for writing, with recovery),
//!
//! * `open_clean` — after a clean close (docs/DESIGN.md §8: <= 10 ms for a
//!   10 GiB shard; open must cost O(tail), not O(log));
//! * `open_after_crash` — of a copy of the directory taken while the
//!   writing client was still open (after its last sync): the state of a
//!   killed process. Recovery verifies the active segment's synced bytes
//!   against the head's checksums;
//! * `open_read_tail` — `Client::open` plus a `Reader` reading the last
//!   entry, the path of a consumer process starting up.
//!
//! Each shard holds 100-byte entries and ends with a half-full active
//! segment. Sizes: `8MiB` in `--test` mode; 256 MiB and 1 GiB (64 MiB
//! segments) by default; with `COMET_BENCH_FULL=1` also 4 GiB (64 MiB
//! segments) and 10 GiB with the default 256 MiB segments. The function id
//! names the size and the segment count.
#![allow(clippy::cast_possible_truncation)] // bench sizes fit in usize on the 64-bit hosts benches run on

use std::path::{Path, PathBuf};
use std::time::Instant;

use comet::Client;
use comet_benches::data::{STORED_LEN, log_entries};
use comet_benches::meter::timed;
use comet_benches::mode::{Timing, pick, scratch_dir};
use comet_benches::rig;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

struct Case {
    /// Nominal shard size.
    total: u64,
    /// `storage.max_file_size`.
    segment: u64,
}

impl Case {
    fn label(&self) -> String {
        let size =
            if self.total >= GIB { format!("{}GiB", self.total / GIB) } else { format!("{}MiB", self.total / MIB) };
        format!("{size}_{}_segments", self.total.div_ceil(self.segment))
    }

    fn config(&self) -> comet::Config {
        let mut c = rig::config();
        c.storage.max_file_size = self.segment;
        c
    }
}

fn cases() -> Vec<Case> {
    let c = |total, segment| Case { total, segment };
    pick(
        vec![c(8 * MIB, MIB)],
        vec![c(256 * MIB, 64 * MIB), c(GIB, 64 * MIB)],
        vec![c(256 * MIB, 64 * MIB), c(GIB, 64 * MIB), c(4 * GIB, 64 * MIB), c(10 * GIB, 256 * MIB)],
    )
}

/// Files of the shard directory: (sealed segments, everything else).
fn split_files(shard_dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut segs: Vec<PathBuf> = Vec::new();
    let mut other = Vec::new();
    for e in std::fs::read_dir(shard_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "comet") {
            segs.push(p);
        } else {
            other.push(p);
        }
    }
    segs.sort();
    // The last (highest base) segment is the active one: copy it.
    if let Some(active) = segs.pop() {
        other.push(active);
    }
    (segs, other)
}

/// Materialises a crash image of `src` (a data directory) at `dst`:
/// sealed segments are hard-linked (they never change), everything else
/// copied.
fn materialise(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            let (sealed, other) = split_files(&p);
            for f in sealed {
                std::fs::hard_link(&f, to.join(f.file_name().unwrap())).unwrap();
            }
            for f in other {
                if f.is_file() {
                    std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
                }
            }
        } else if p.is_file() {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

/// Fills shard 0 of a new directory to about `case.total` bytes (ending
/// with a half-full active segment), snapshots a crash image while the
/// client is open, then closes it cleanly.
fn build(case: &Case) -> (tempfile::TempDir, tempfile::TempDir) {
    let clean = scratch_dir("open-clean");
    let crash = scratch_dir("open-crash");
    let segments = case.total.div_ceil(case.segment).max(1);
    let bytes = (segments - 1) * case.segment + case.segment / 2;
    let n = bytes / STORED_LEN as u64;
    let t0 = Instant::now();
    let client = Client::open(clean.path(), case.config()).unwrap();
    let batch = log_entries(10_000);
    let shard = rig::shard(0);
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(batch.len() as u64) as usize;
        client.append_shard(shard, &batch[..k]).unwrap();
        done += k as u64;
    }
    client.sync().unwrap();
    materialise(clean.path(), &crash.path().join("image"));
    client.close().unwrap();
    let files = std::fs::read_dir(clean.path().join("shard-0000")).unwrap().count();
    let manifest = std::fs::metadata(clean.path().join("shard-0000/index.bin")).map_or(0, |m| m.len());
    eprintln!(
        "open/{}: {n} entries, {files} files, index.bin {manifest} bytes, built in {:.1?}",
        case.label(),
        t0.elapsed()
    );
    (clean, crash)
}

fn bench_case(g: &mut BenchmarkGroup<'_, WallTime>, op: &str, case: &Case, clean: &Path, crash: &Path) {
    let label = case.label();
    let id = format!("{op}/{label}");
    let config = case.config();
    let shard = rig::shard(0);
    let mut reported = false;
    g.bench_function(&label, |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for i in 0..iters {
                let dir = match op {
                    "open_after_crash" => {
                        let d = crash.join(format!("run-{i}"));
                        let _ = std::fs::remove_dir_all(&d);
                        materialise(&crash.join("image"), &d);
                        d
                    }
                    _ => clean.to_path_buf(),
                };
                let mut client = None;
                total += timed(&id, 1, 1, |_| {
                    let c = Client::open(&dir, config).unwrap();
                    if op == "open_read_tail" {
                        let mut r = c.reader(shard).unwrap();
                        let end = c.durable_len(shard).unwrap();
                        std::hint::black_box(r.read(end - 1).unwrap());
                    } else {
                        let report = c.recover_shard(shard).unwrap();
                        if !reported {
                            eprintln!("{id}: {report:?}");
                            reported = true;
                        }
                    }
                    client = Some(c);
                });
                if let Some(c) = client {
                    c.close().unwrap();
                }
                if op == "open_after_crash" {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            total
        });
    });
}

fn open(c: &mut Criterion) {
    for case in cases() {
        let (clean, crash) = build(&case);
        for op in ["open_clean", "open_after_crash", "open_read_tail"] {
            let mut g = c.benchmark_group(op);
            Timing::SLOW.apply(&mut g);
            g.sample_size(10);
            bench_case(&mut g, op, &case, clean.path(), crash.path());
            g.finish();
        }
    }
}

criterion::criterion_group!(benches, open);
comet_benches::bench_main!("open"; benches);
