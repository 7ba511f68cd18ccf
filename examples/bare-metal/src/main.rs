//! The firmware: at boot it sets up a heap and a 16 KiB storage region,
//! calls [`comet_bare_metal::run`] once (append, sync, crash, recover, read
//! back, verify) and then sleeps, with the outcome in [`STATUS`] and
//! [`VERIFIED`] and the heap's high-water mark in `HEAP.peak` for a
//! debugger to read.
//!
//! Built for `thumbv7em-none-eabihf` it is `#![no_std]`/`#![no_main]` with
//! `cortex-m-rt`, `embedded-alloc` and `panic-halt`. Built for a host (as
//! `cargo test` and `cargo clippy --all-targets` do) it is an ordinary
//! program that runs the same scenario on a `Vec` and prints the report.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU32, Ordering};

use comet_bare_metal::{RamStorage, RunError, RunReport, Scenario, run};

/// 0 while [`run`] runs, 1 when it succeeded, 2 when it failed (a panic
/// halts in `panic-halt` instead).
pub static STATUS: AtomicU32 = AtomicU32::new(0);
/// Entries read back and checked by the run.
pub static VERIFIED: AtomicU32 = AtomicU32::new(0);

/// Runs the firmware's scenario on `storage` and records the outcome.
fn run_once(storage: &RamStorage<'_>) -> Result<RunReport, RunError> {
    let outcome = Scenario::small().map_err(RunError::from).and_then(|scenario| run(storage, &scenario));
    match &outcome {
        Ok(report) => {
            VERIFIED.store(u32::try_from(report.verified).unwrap_or(u32::MAX), Ordering::Relaxed);
            STATUS.store(1, Ordering::Release);
        }
        Err(_) => STATUS.store(2, Ordering::Release),
    }
    outcome
}

#[cfg(target_os = "none")]
mod device {
    use core::alloc::{GlobalAlloc, Layout};
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use comet_bare_metal::RamStorage;
    use comet_bare_metal::firmware::{ARENA_BYTES, HEAP_BYTES};
    use cortex_m_rt::entry;
    use embedded_alloc::LlffHeap;
    use panic_halt as _;

    /// `embedded-alloc`'s first-fit heap, with its live bytes and their
    /// high-water mark kept.
    struct Metered {
        heap: LlffHeap,
        live: AtomicUsize,
        peak: AtomicUsize,
    }

    // SAFETY: every call is forwarded to `LlffHeap` unchanged; the wrapper
    // only counts bytes.
    unsafe impl GlobalAlloc for Metered {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract for `alloc`, passed on.
            let p = unsafe { self.heap.alloc(layout) };
            if !p.is_null() {
                let now = self.live.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
                self.peak.fetch_max(now, Ordering::Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.live.fetch_sub(layout.size(), Ordering::Relaxed);
            // SAFETY: the caller's contract for `dealloc`, passed on.
            unsafe { self.heap.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static HEAP: Metered = Metered { heap: LlffHeap::empty(), live: AtomicUsize::new(0), peak: AtomicUsize::new(0) };

    #[entry]
    fn main() -> ! {
        // `#[entry]` turns these into `&'static mut` references, handed out
        // once: no other code can reach them. The storage value (its file
        // table and 1 KiB state region) lives here too, off the stack.
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
        static mut STORAGE: Option<RamStorage<'static>> = None;

        // SAFETY: `HEAP_MEM` is valid, writable memory of `HEAP_BYTES`
        // bytes that nothing else references (only its address is taken,
        // and the `&'static mut` is not used again), and `init` runs once,
        // before the first allocation.
        unsafe { HEAP.heap.init(HEAP_MEM.as_mut_ptr() as usize, HEAP_BYTES) };

        let storage = STORAGE.insert(RamStorage::new(ARENA));
        let outcome = super::run_once(storage);
        #[cfg(feature = "qemu")]
        super::qemu::report(&outcome, HEAP.peak.load(Ordering::Relaxed));
        drop(outcome);
        loop {
            cortex_m::asm::wfi();
        }
    }
}

/// Reporting under QEMU (feature `qemu`): semihosting output and exit.
#[cfg(all(target_os = "none", feature = "qemu"))]
mod qemu {
    use comet_bare_metal::firmware::HEAP_BYTES;
    use comet_bare_metal::{RunError, RunReport};
    use cortex_m_semihosting::{debug, hprintln};

    unsafe extern "C" {
        // Bounds of the stack, from cortex-m-rt's linker script (it paints
        // the words between them at reset, feature `paint-stack`).
        static _stack_end: u32;
        static _stack_start: u32;
    }

    /// The stack's high-water mark in bytes, and its size.
    fn stack_used() -> (usize, usize) {
        let bottom = &raw const _stack_end as usize;
        let top = &raw const _stack_start as usize;
        let mut p = bottom;
        while p < top {
            // SAFETY: `p` is 4-aligned (the linker script aligns both
            // bounds) and inside the stack's RAM, which is always readable;
            // nothing else runs (one core, no interrupts enabled).
            if unsafe { core::ptr::read_volatile(p as *const u32) } != cortex_m_rt::STACK_PAINT_VALUE {
                break;
            }
            p += 4;
        }
        (top - p, top - bottom)
    }

    /// Prints the outcome and the memory used, then ends QEMU with the
    /// run's status.
    pub fn report(outcome: &Result<RunReport, RunError>, heap_peak: usize) {
        match outcome {
            Ok(report) => hprintln!("{:?}", report),
            Err(e) => hprintln!("run failed: {}", e),
        }
        let (used, size) = stack_used();
        hprintln!("stack: {} of {} bytes used; heap: {} of {} bytes used", used, size, heap_peak, HEAP_BYTES);
        debug::exit(if outcome.is_ok() { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    }
}

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    let mut region = vec![0u8; comet_bare_metal::firmware::ARENA_BYTES];
    let storage = RamStorage::new(&mut region);
    match run_once(&storage) {
        Ok(report) => {
            println!("{report:#?}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("run failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
