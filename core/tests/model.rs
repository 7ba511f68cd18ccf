//! The op model (`comet_core::sim::model`) run with many seeds: random
//! appends, syncs, rotations, reopens, crashes of every kind, reads,
//! corrupted bytes, retention passes and injected ENOSPC/EIO, each checked
//! against a reference model of what must have survived.
//!
//! A failure prints the seed, the configuration and a shrunk op list.

use comet_core::shard::EngineConfig;
use comet_core::sim::model::{Op, Stats, config_from_byte, run_with};

/// Removes ops while the run still fails, so a failure is reported with a
/// short reproduction.
fn shrink(cfg: EngineConfig, mut ops: Vec<Op>) -> (Vec<Op>, String) {
    let mut err = run_with(cfg, &ops).err().unwrap_or_default();
    let mut chunk = ops.len() / 2;
    while chunk >= 1 {
        let mut i = 0;
        while i < ops.len() {
            let mut fewer = ops.clone();
            fewer.drain(i..(i + chunk).min(ops.len()));
            match run_with(cfg, &fewer) {
                Err(e) => {
                    ops = fewer;
                    err = e;
                }
                Ok(_) => i += chunk,
            }
        }
        chunk /= 2;
    }
    (ops, err)
}

fn run_seeds(seeds: std::ops::Range<u64>, ops: usize, filter: impl Fn(&Op) -> bool) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        let cfg = config_from_byte((seed % 4) as u8);
        let list: Vec<Op> = Op::seeded(seed, ops).into_iter().filter(&filter).collect();
        match run_with(cfg, &list) {
            Ok(s) => total += s,
            Err(e) => {
                let (small, small_err) = shrink(cfg, list);
                panic!("seed {seed} ({cfg:?}) failed: {e}\n\nshrunk to {} ops: {small_err}\n{small:#?}", small.len());
            }
        }
    }
    eprintln!("{total:?}");
    total
}

#[test]
fn model_holds_without_corruption() {
    let s = run_seeds(0..100, 200, |op| !matches!(op, Op::Corrupt { .. }));
    assert!(s.crashes > 100 && s.injected > 50 && s.appended > 10_000, "{s:?}");
}

#[test]
fn model_holds_with_corrupted_bytes() {
    let s = run_seeds(1000..1060, 200, |_| true);
    assert!(s.corruptions > 50, "{s:?}");
}

#[test]
fn model_holds_with_crashes_and_syncs_only() {
    run_seeds(2000..2040, 200, |op| {
        matches!(
            op,
            Op::Append { .. }
                | Op::Sync
                | Op::Flush
                | Op::Rotate
                | Op::Crash(_)
                | Op::CrashAtNextSync(_)
                | Op::CrashAtMutation { .. }
                | Op::Read { .. }
        )
    });
}
