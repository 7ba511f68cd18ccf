//! The firmware's heap budget: [`run`] with the firmware's scenario must
//! stay within `firmware::HEAP_BYTES`, with room to spare for the device
//! allocator's overhead. Its own test binary, so no other test allocates
//! while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use comet_bare_metal::firmware::{ARENA_BYTES, HEAP_BYTES};
use comet_bare_metal::{PowerLoss, RamStorage, Scenario, open, payload, run};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Room left for the device allocator's per-block overhead and
/// fragmentation (the host's 64-bit pointers already overcount).
const MARGIN: usize = 16 * 1024;

/// Runs `f` and returns its heap high-water mark above what was live before.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

/// One test (they would run in parallel threads and share the counters).
#[test]
fn run_fits_the_firmware_heap() {
    let scenario = Scenario::small().unwrap();

    let mut region = vec![0u8; ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    let peak = peak_of(|| assert!(run(&storage, &scenario).unwrap().verified > 0));
    println!("heap high-water mark of run: {peak} bytes (firmware heap {HEAP_BYTES})");
    assert!(peak + MARGIN <= HEAP_BYTES, "run peaks at {peak} B; the firmware heap is {HEAP_BYTES} B");

    // The engine alone (no verify): open, append, sync, crash, recover, read.
    let mut region = vec![0u8; ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    let engine = peak_of(|| {
        let (mut shard, _) = open(&storage, scenario.engine).unwrap();
        for i in 0..100 {
            shard.append(i + 1, &[payload(i)]).unwrap();
            if i % 10 == 9 {
                shard.sync().unwrap();
            }
        }
        drop(shard);
        storage.power_loss(PowerLoss::DropUnsynced).unwrap();
        let (shard, _) = open(&storage, scenario.engine).unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            out.clear();
            shard.read(i, &mut out).unwrap();
        }
        shard.close().unwrap();
    });
    println!("heap high-water mark of the engine alone: {engine} bytes");
    // Recovery's 64 KiB scan buffer is most of it.
    assert!(engine < 80 * 1024, "the engine alone peaks at {engine} B");
}
