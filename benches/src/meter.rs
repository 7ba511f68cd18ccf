//! Wall time and CPU time of measured loops.
//!
//! Every bench measures through [`timed`] inside criterion's `iter_custom`:
//! the wall time goes back to criterion; wall, user and system CPU
//! (`getrusage(RUSAGE_SELF)`, so background threads such as comet's
//! flusher count too) and the number of entries are summed per bench id
//! here. [`finish`] prints the totals and writes them to
//! `<criterion home>/comet-cpu/<bench file>.tsv`, which the `report` tool
//! joins with criterion's medians.
//!
//! Linux splits a process's precise run time into user and system time by
//! sampling at every tick, so the split is statistical: good to a few per
//! cent over the seconds a bench runs, meaningless for a single short loop.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// User and system CPU time, in ns: of the whole process (`RUSAGE_SELF`,
/// background threads included) and of the calling thread
/// (`RUSAGE_THREAD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    /// User-space CPU of the process.
    pub user_ns: u64,
    /// Kernel CPU of the process.
    pub sys_ns: u64,
    /// User-space CPU of the calling thread.
    pub thread_user_ns: u64,
    /// Kernel CPU of the calling thread.
    pub thread_sys_ns: u64,
}

fn rusage(who: libc::c_int) -> (u64, u64) {
    // SAFETY: `getrusage` only writes the `rusage` we pass, which is
    // plain old data and valid when zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`; `who` is RUSAGE_SELF or
    // RUSAGE_THREAD, both valid on Linux. See getrusage(2).
    let rc = unsafe { libc::getrusage(who, &raw mut ru) };
    if rc != 0 {
        return (0, 0);
    }
    let ns = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_usec).unwrap_or(0) * 1000
    };
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

impl Cpu {
    /// CPU used so far by the process and by the calling thread.
    pub fn now() -> Cpu {
        let (user_ns, sys_ns) = rusage(libc::RUSAGE_SELF);
        let (thread_user_ns, thread_sys_ns) = rusage(libc::RUSAGE_THREAD);
        Cpu { user_ns, sys_ns, thread_user_ns, thread_sys_ns }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            thread_user_ns: self.thread_user_ns.saturating_sub(earlier.thread_user_ns),
            thread_sys_ns: self.thread_sys_ns.saturating_sub(earlier.thread_sys_ns),
        }
    }

    fn add(&mut self, other: Cpu) {
        self.user_ns += other.user_ns;
        self.sys_ns += other.sys_ns;
        self.thread_user_ns += other.thread_user_ns;
        self.thread_sys_ns += other.thread_sys_ns;
    }
}

/// Measures a loop, excluding paused stretches (resets, setup).
#[derive(Debug)]
pub struct Meter {
    wall: Duration,
    cpu: Cpu,
    running: Option<(Instant, Cpu)>,
}

impl Meter {
    fn start() -> Meter {
        let cpu = Cpu::now();
        Meter { wall: Duration::ZERO, cpu: Cpu::default(), running: Some((Instant::now(), cpu)) }
    }

    /// Stops the clocks (no-op if stopped).
    pub fn pause(&mut self) {
        if let Some((t0, c0)) = self.running.take() {
            self.wall += t0.elapsed();
            self.cpu.add(Cpu::now().since(c0));
        }
    }

    /// Restarts the clocks (no-op if running).
    pub fn resume(&mut self) {
        if self.running.is_none() {
            let cpu = Cpu::now();
            self.running = Some((Instant::now(), cpu));
        }
    }

    /// Adds an externally measured stretch of wall time (for benches that
    /// time events themselves, e.g. wake-up latencies); CPU is not
    /// attributed.
    pub fn add_wall(&mut self, d: Duration) {
        self.wall += d;
    }

    fn finish(mut self) -> (Duration, Cpu) {
        self.pause();
        (self.wall, self.cpu)
    }
}

/// Totals of one bench id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Iterations measured.
    pub iters: u64,
    /// Entries (or other elements) those iterations processed.
    pub entries: u64,
    /// Wall time.
    pub wall_ns: u64,
    /// CPU time.
    pub cpu: Cpu,
}

static TOTALS: Mutex<BTreeMap<String, Totals>> = Mutex::new(BTreeMap::new());

/// Runs `body` (which performs `iters` iterations of `entries_per_iter`
/// entries each) with the clocks running, records the totals under `id`
/// (criterion's `group/function/parameter`) and returns the wall time.
pub fn timed(id: &str, iters: u64, entries_per_iter: u64, body: impl FnOnce(&mut Meter)) -> Duration {
    let mut m = Meter::start();
    body(&mut m);
    let (wall, cpu) = m.finish();
    let mut all = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    let t = all.entry(id.to_string()).or_default();
    t.iters += iters;
    t.entries += iters * entries_per_iter;
    t.wall_ns += u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
    t.cpu.add(cpu);
    wall
}

/// Where criterion keeps its results (`CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion` next to the
/// bench executable).
pub fn criterion_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    // <target>/<profile>/[deps/]<exe>; cargo marks <target> with CACHEDIR.TAG.
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).map(|t| t.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Prints the CPU totals of this bench file and, unless in `--test` mode,
/// merges them into `<criterion home>/comet-cpu/<file>.tsv` (columns: id,
/// iterations, entries, wall ns, process user ns, process sys ns, calling
/// thread user ns, calling thread sys ns; benches filtered out of this run
/// keep their earlier rows).
pub fn finish(file: &str) {
    let all = std::mem::take(&mut *TOTALS.lock().unwrap_or_else(|p| p.into_inner()));
    if all.is_empty() {
        return;
    }
    eprintln!("\nCPU per entry (getrusage, whole process, all measured iterations):");
    eprintln!(
        "{:<52} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "bench", "entries", "wall ns", "user ns", "sys ns", "thr user ns", "thr sys ns"
    );
    let mut tsv = String::from("id\titers\tentries\twall_ns\tuser_ns\tsys_ns\tthread_user_ns\tthread_sys_ns\n");
    for (id, t) in &all {
        let per = |v: u64| if t.entries == 0 { 0.0 } else { v as f64 / t.entries as f64 };
        eprintln!(
            "{id:<52} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>12.1} {:>12.1}",
            t.entries,
            per(t.wall_ns),
            per(t.cpu.user_ns),
            per(t.cpu.sys_ns),
            per(t.cpu.thread_user_ns),
            per(t.cpu.thread_sys_ns)
        );
        tsv.push_str(&format!(
            "{id}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            t.iters, t.entries, t.wall_ns, t.cpu.user_ns, t.cpu.sys_ns, t.cpu.thread_user_ns, t.cpu.thread_sys_ns
        ));
    }
    if crate::mode::is_test() || std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    let dir = criterion_home().join("comet-cpu");
    let path = dir.join(format!("{file}.tsv"));
    // Keep the figures of benches this run filtered out.
    if let Ok(old) = std::fs::read_to_string(&path) {
        for line in old.lines().skip(1) {
            if line.split('\t').next().is_some_and(|id| !all.contains_key(id)) {
                tsv.push_str(line);
                tsv.push('\n');
            }
        }
    }
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&path)?.write_all(tsv.as_bytes()));
    match written {
        Ok(()) => eprintln!("CPU totals written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// `criterion_main!` plus [`finish`]: runs the groups, criterion's final
/// summary, then the CPU report of this bench file.
#[macro_export]
macro_rules! bench_main {
    ($file:expr; $($group:path),+ $(,)?) => {
        fn main() {
            $( $group(); )+
            criterion::Criterion::default().configure_from_args().final_summary();
            $crate::meter::finish($file);
        }
    };
}

/// `1.23 µs`-style formatting of a duration in nanoseconds, for reports.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}
