//! Shared pieces of the comet benches (`benches/*.rs`, one file per
//! subsystem) and their tools.
//!
//! * [`meter`] — wall time *and* user/system CPU (`getrusage`) of every
//!   measured loop, summed per bench and written next to criterion's
//!   results, so each figure comes with the CPU the library spent on it;
//! * [`floor`] — the bare-syscall floors appends are judged against
//!   (`write(2)` of the same bytes in the same buffer-sized chunks, and
//!   `write` + `fdatasync` for durable appends);
//! * [`data`] — payloads: ~100-byte log entries and realistic JSON lines;
//! * [`rig`] — clients in scratch directories that reset themselves
//!   (outside the measured time) before the disk or the page cache fills;
//! * [`mode`] — `--test` (each bench once, small setups) and
//!   `COMET_BENCH_FULL=1` (the large setups: a 10 GiB shard, ...).
//!
//! DESIGN.md §8 lists the targets; `BENCHMARKS.md` at the repository root
//! reports the figures. Timings on a shared virtual machine drift, so only
//! ratios measured in the same run mean something.
#![warn(missing_docs)]

pub mod data;
pub mod floor;
pub mod meter;
pub mod mode;
pub mod rig;
pub mod rss;
