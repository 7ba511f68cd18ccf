//! How big the setups are: `--test` (criterion's run-once mode), the
//! default, and `COMET_BENCH_FULL=1`.

use std::path::PathBuf;
use std::time::Duration;

/// Criterion was started with `--test`: each bench runs once, so setups
/// must be small (the whole set stays under about a minute).
pub fn is_test() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// `COMET_BENCH_FULL=1`: the large setups (a 10 GiB shard for the open
/// bench, ...), which take minutes and many GiB of disk.
pub fn is_full() -> bool {
    !is_test() && std::env::var("COMET_BENCH_FULL").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Picks a size by mode: `test` under `--test`, `full` with
/// `COMET_BENCH_FULL=1`, `default` otherwise.
pub fn pick<T>(test: T, default: T, full: T) -> T {
    if is_test() {
        test
    } else if is_full() {
        full
    } else {
        default
    }
}

/// Where scratch directories go: `COMET_BENCH_DIR`, else the system temp
/// directory. It must be a real disk file system (not tmpfs) for the
/// fsync figures to mean anything.
pub fn scratch_root() -> PathBuf {
    std::env::var_os("COMET_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A fresh scratch directory under [`scratch_root`], removed on drop.
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    let root = scratch_root();
    let _ = std::fs::create_dir_all(&root);
    tempfile::Builder::new()
        .prefix(&format!("comet-bench-{tag}-"))
        .tempdir_in(root)
        .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"))
}

/// Criterion settings for one group: few samples and short phases in test
/// mode does not matter (criterion runs once), so these only shape real
/// runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Samples per bench.
    pub samples: usize,
    /// Warm-up time.
    pub warm_up: Duration,
    /// Measurement time.
    pub measure: Duration,
}

impl Timing {
    /// Fast operations (ns to µs): criterion's defaults, shortened.
    pub const FAST: Timing = Timing { samples: 50, warm_up: Duration::from_secs(2), measure: Duration::from_secs(4) };
    /// Operations of 100 µs or more (fsync, open, wake-ups).
    pub const SLOW: Timing = Timing { samples: 20, warm_up: Duration::from_secs(1), measure: Duration::from_secs(4) };

    /// Applies the settings to a group.
    pub fn apply<M: criterion::measurement::Measurement>(self, g: &mut criterion::BenchmarkGroup<'_, M>) {
        g.sample_size(self.samples.max(10)).warm_up_time(self.warm_up).measurement_time(self.measure);
    }
}
