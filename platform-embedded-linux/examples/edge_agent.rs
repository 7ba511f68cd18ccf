//! An edge agent on a small ARM board: buffers JSON log lines in the
//! embedded log, ships them through a consumer group, and keeps the disk
//! bounded with retention — all from one thread calling `tick`.
//!
//! It reports its heap high-water mark (a counting global allocator)
//! against the configured budget, and its resident set size. Build for
//! armv7, stripped (numbers in BENCHMARKS.md, section "comet-embedded"):
//!
//! ```text
//! cargo build -p comet-embedded --example edge_agent --release \
//!     --target armv7-unknown-linux-gnueabihf
//! ```
//!
//! Usage: `edge_agent [DIR] [ENTRIES]` (default: a directory under /tmp,
//! 200000 entries).

#![allow(clippy::field_reassign_with_default)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use comet_embedded::{Consumer, EmbeddedConfig, Log, ShardId, now_ns};

/// Counts live heap bytes and their high-water mark.
struct Tracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// `VmHWM` and `VmRSS` from /proc/self/status, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn line(buf: &mut Vec<u8>, i: u64) {
    use std::io::Write;
    let _ = writeln!(
        buf,
        "{{\"ts\":{},\"level\":\"{}\",\"svc\":\"edge-agent\",\"host\":\"gw-{:03}\",\"msg\":\"sent batch\",\"batch\":{i},\"bytes\":{},\"latency_ms\":{}}}",
        1_700_000_000_000u64 + i * 7,
        ["info", "warn", "debug"][(i % 3) as usize],
        i % 17,
        1000 + i * 37 % 9000,
        i * 13 % 250
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| format!("/tmp/comet-edge-agent-{}", std::process::id()));
    let entries: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);

    let mut cfg = EmbeddedConfig::default();
    cfg.shard_count = 2;
    cfg.write_buffer_bytes = 32 << 10;
    cfg.max_entry_size = 16 << 10;
    cfg.read_buffer_bytes = 32 << 10;
    cfg.max_file_size = 1 << 20;
    cfg.min_compress_size = Some(2048);
    cfg.flush_interval = std::time::Duration::from_millis(200);
    cfg.retention.max_shard_size = Some(4 << 20);
    cfg.retention.cleanup_interval = Some(std::time::Duration::from_millis(500));
    cfg.retention.protect_unconsumed = true;
    let budget = cfg.heap_budget();

    let base = PEAK.load(Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    let mut log = Log::open(&dir, cfg, now_ns())?;
    let after_open = LIVE.load(Ordering::Relaxed);
    let mut shipper = Consumer::new("shipper")?;
    let shards = [ShardId::MIN, ShardId::new(1).ok_or("shard id")?];
    let mut out = vec![0u8; 32 << 10];
    let mut single = Vec::with_capacity(512);
    let mut bundle = Vec::with_capacity(8 << 10);
    let (mut shipped, mut shipped_bytes) = (0u64, 0u64);
    for i in 0..entries {
        let now = now_ns();
        let shard = shards[(i % 2) as usize];
        if i % 64 == 63 {
            // every 64th entry is a bundle of 40 lines (compressed)
            bundle.clear();
            for k in 0..40 {
                line(&mut bundle, i * 40 + k);
            }
            log.append(shard, now, &[&bundle])?;
        } else {
            single.clear();
            line(&mut single, i);
            log.append(shard, now, &[&single])?;
        }
        if i % 256 == 0 {
            log.tick(now)?;
            for &s in &shards {
                while let Some(e) = shipper.next(&mut log, s, &mut out)? {
                    shipped += 1;
                    shipped_bytes += e.len as u64;
                }
                shipper.ack(&log, s)?;
            }
        }
    }
    log.sync_all(now_ns())?;
    let (mut raw, mut stored, mut deleted, mut compressed) = (0, 0, 0, 0);
    for &s in &shards {
        use comet_embedded::Counter as C;
        raw += log.counter(s, C::RawBytes)?;
        stored += log.counter(s, C::StoredBytes)?;
        deleted += log.counter(s, C::SegmentsDeleted)?;
        compressed += log.counter(s, C::CompressedEntries)?;
    }
    log.close()?;
    let elapsed = t0.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let (hwm, rss) = rss_kib();
    println!("entries appended     {entries} ({shipped} shipped, {shipped_bytes} payload bytes)");
    println!("elapsed              {:.2} s", elapsed.as_secs_f64());
    println!("heap after open      {after_open} B");
    println!("heap high-water      {peak} B");
    println!(
        "heap budget          {} B (shared {} + 2 x per-shard {})",
        budget.total(2),
        budget.shared,
        budget.per_shard
    );
    println!("RSS high-water       {hwm} KiB (now {rss} KiB)");
    println!("stored/raw           {stored}/{raw} = ratio {:.2}", raw as f64 / stored.max(1) as f64);
    println!("segments deleted     {deleted} (retention)");
    println!("compressed entries   {compressed} (40-line bundles)");
    let _ = std::fs::remove_dir_all(&dir);
    if peak > budget.total(2) {
        eprintln!("heap high-water above the configured budget");
        std::process::exit(1);
    }
    Ok(())
}
