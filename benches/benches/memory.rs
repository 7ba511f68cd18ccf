//! Memory (not a criterion bench; `cargo bench` runs it like the others):
//!
//! * **per idle shard** (docs/DESIGN.md §8: <= 256 KiB, std): a client opens N
//!   shards, appends one entry to each and syncs (`touched`); then each
//!   shard takes a burst that fills its write buffer and goes idle again
//!   (`after_burst`); then a consumer reads and acks every shard
//!   (`with_consumer`). Reported per shard: resident memory (`VmRSS`
//!   delta) and live heap (a counting global allocator).
//! * **peak RSS of a 1 GiB write**: a fresh process appends 1 GiB of
//!   100-byte entries in batches of 100 to one shard, syncs, and reports
//!   `VmHWM` against its baseline.
//!
//! Each part runs in a child process (this executable re-run with
//! `COMET_BENCH_CHILD`), so the figures start from a clean baseline.
//! `--test`: 16 shards and 32 MiB. Results also go to
//! `<criterion home>/comet-memory.txt`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};

use comet::{Client, Message};
use comet_benches::data::{STORED_LEN, log_entries, log_entry};
use comet_benches::mode::{is_test, pick, scratch_dir};
use comet_benches::rig;
use comet_benches::rss::status;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn heap() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// (RSS KiB, heap bytes) now.
fn snapshot() -> (i64, i64) {
    (status().rss as i64, heap())
}

fn idle(shards: u32) -> Vec<String> {
    let dir = scratch_dir("memory-idle");
    let mut out = Vec::new();
    let client = Client::open(dir.path(), rig::config()).unwrap();
    let base = snapshot();
    let entry = log_entry(1);
    for s in 0..shards {
        client.append_shard(rig::shard(s), &[entry.as_slice()]).unwrap();
    }
    client.sync().unwrap();
    let mut line = |what: &str, now: (i64, i64)| {
        let rss = (now.0 - base.0) as f64 / f64::from(shards);
        let heap = (now.1 - base.1) as f64 / 1024.0 / f64::from(shards);
        out.push(format!("idle_shard/{what}\t{shards} shards\tRSS {rss:.1} KiB/shard\theap {heap:.1} KiB/shard"));
    };
    line("touched", snapshot());
    let buffer = rig::config().storage.write_buffer_size as usize;
    let burst = log_entries(buffer / STORED_LEN + 1);
    for s in 0..shards {
        client.append_shard(rig::shard(s), &burst).unwrap();
    }
    client.sync().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    line("after_burst", snapshot());
    let mut consumer = rig::consumer(&client, "memory");
    let mut msgs: Vec<Message> = Vec::new();
    for s in 0..shards {
        msgs.clear();
        consumer.read_shard(rig::shard(s), 100, &mut msgs).unwrap();
        let ids: Vec<_> = msgs.iter().map(|m| m.id).collect();
        consumer.ack(&ids).unwrap();
    }
    msgs.clear();
    line("with_consumer", snapshot());
    let st = status();
    out.push(format!(
        "idle_shard/process\tVmRSS {} KiB\tRssAnon {} KiB\tRssFile {} KiB\tRssShmem {} KiB\tthreads {}",
        st.rss, st.anon, st.file, st.shmem, st.threads
    ));
    drop(consumer);
    client.close().unwrap();
    out
}

fn peak(bytes: u64) -> Vec<String> {
    let dir = scratch_dir("memory-peak");
    let before = status();
    let client = Client::open(dir.path(), rig::config()).unwrap();
    let batch = log_entries(100);
    let per = (100 * STORED_LEN) as u64;
    let t0 = std::time::Instant::now();
    let mut done = 0;
    while done < bytes {
        client.append_shard(rig::shard(0), &batch).unwrap();
        done += per;
    }
    client.sync().unwrap();
    let elapsed = t0.elapsed();
    let after = status();
    client.close().unwrap();
    vec![format!(
        "peak_rss/write_{}MiB\tbaseline VmRSS {} KiB\tpeak VmHWM {} KiB\tgrowth {} KiB\theap now {} KiB\t{:.2} GB/s",
        bytes >> 20,
        before.rss,
        after.hwm,
        after.hwm.saturating_sub(before.rss),
        heap() / 1024,
        done as f64 / elapsed.as_secs_f64() / 1e9
    )]
}

fn child(kind: &str) -> Vec<String> {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env("COMET_BENCH_CHILD", kind);
    if is_test() {
        cmd.arg("--test");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child {kind} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn main() {
    let shards = pick(16, 256, 1024);
    let bytes = pick(32 << 20, 1 << 30, 1 << 30);
    match std::env::var("COMET_BENCH_CHILD").as_deref() {
        Ok("idle") => {
            for l in idle(shards) {
                println!("{l}");
            }
            return;
        }
        Ok("peak") => {
            for l in peak(bytes) {
                println!("{l}");
            }
            return;
        }
        _ => {}
    }
    // `cargo bench` passes `--bench`; a name filter that matches nothing
    // here skips the run, as criterion would.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"memory idle_shard peak_rss".contains(filter.as_str())
    {
        return;
    }
    let mut lines = child("idle");
    lines.extend(child("peak"));
    for l in &lines {
        println!("{l}");
    }
    if !is_test() {
        let path = comet_benches::meter::criterion_home().join("comet-memory.txt");
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")));
        if let Ok(mut f) = std::fs::File::create(&path) {
            let _ = writeln!(f, "{}", lines.join("\n"));
        }
    }
}
