//! The op model (`comet_core::sim::model`) run with many seeds: random
//! appends, syncs, rotations, reopens, crashes of every kind, reads,
//! corrupted bytes, retention passes and injected ENOSPC/EIO, each checked
//! against a reference model of what must have survived.
//!
//! A failure prints the seed, the configuration and a shrunk op list.

use comet_core::platform::shard::EngineConfig;
use comet_core::platform::storage::ErrorKind;
use comet_core::sim::model::Fill::{Magic, Pattern, Run};
use comet_core::sim::model::{Fill, Op, Payload, Stats, config_from_byte, run_with};

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

fn payloads(list: &[(u16, u8, Fill)]) -> Vec<Payload> {
    list.iter().map(|&(len, seed, fill)| Payload { len, seed, fill }).collect()
}

fn append(list: &[(u16, u8, Fill)]) -> Op {
    Op::Append { payloads: payloads(list), back: false }
}

/// Found by a wider seed sweep: a batch larger than the buffer fails after
/// part of it reached the file and cutting the file back fails too (the
/// disk is full). The next appends are buffered at the old end; the close
/// fails, and a restart found those appends' first bytes followed by the
/// failed batch's stale bytes, which parsed as an entry that was never
/// appended at that number. The engine now cuts a dirty tail off before
/// it writes anything after it.
#[test]
fn a_failed_cut_back_is_finished_before_the_next_write() {
    let cfg = config_from_byte(2);
    let ops = vec![
        Op::Fail { after: 3, kind: ErrorKind::StorageFull, once: false },
        append(&[
            (0, 137, Pattern),
            (21, 145, Pattern),
            (459, 56, Pattern),
            (537, 197, Magic),
            (0, 237, Run),
            (449, 145, Pattern),
            (105, 0, Magic),
            (0, 0, Pattern),
        ]),
        append(&[(13, 134, Pattern), (16, 103, Pattern)]),
        append(&[(0, 240, Pattern)]),
        append(&[(5, 116, Pattern), (9, 238, Magic), (0, 73, Pattern), (3, 9, Run)]),
        append(&[(356, 122, Magic), (284, 69, Magic), (4, 87, Magic)]),
        Op::Reopen,
    ];
    let stats = run_with(cfg, &ops).unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.injected > 0 && stats.torn > 0, "the scenario happened: {stats:?}");
}

/// Found by a wider seed sweep: a byte of a sealed segment corrupted while
/// no shard was open (its open had failed). The model's taint for it must
/// end where the next segment starts, not run on into the active segment.
#[test]
fn corruption_while_closed_taints_only_that_segment() {
    let cfg = config_from_byte(3);
    let ops = vec![
        append(&[
            (5, 132, Pattern),
            (99, 115, Magic),
            (303, 232, Pattern),
            (8, 42, Magic),
            (264, 72, Pattern),
            (61, 180, Run),
        ]),
        Op::Fail { after: 13, kind: ErrorKind::Other, once: false },
        append(&[
            (151, 23, Pattern),
            (31, 19, Pattern),
            (142, 14, Pattern),
            (91, 126, Magic),
            (26, 86, Pattern),
            (448, 108, Pattern),
            (0, 108, Pattern),
        ]),
        append(&[(0, 183, Run), (23, 242, Magic)]),
        Op::Reopen,
        Op::Corrupt { file: 198, offset: 58398, mask: 79 },
    ];
    let stats = run_with(cfg, &ops).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.corruptions, 1, "{stats:?}");
}

/// The wider sweep that found the dirty-tail bug (seed 500498; see
/// `a_failed_cut_back_is_finished_before_the_next_write`): 300 ops per
/// seed, corrupted bytes left out. By default 20 seeds around that one;
/// `COMET_MODEL_SEEDS=N` runs N seeds from 500000, and
/// `COMET_MODEL_CORRUPT=1` keeps corruption in, e.g.
/// `COMET_MODEL_SEEDS=30000 cargo test --release -p comet-core --test model model_sweep`.
#[test]
fn model_sweep() {
    let (from, n) = match std::env::var("COMET_MODEL_SEEDS").ok().and_then(|s| s.parse().ok()) {
        Some(n) => (500_000, n),
        None => (500_490, 20),
    };
    let corrupt = std::env::var_os("COMET_MODEL_CORRUPT").is_some();
    let s = run_seeds(from..from + n, 300, |op| corrupt || !matches!(op, Op::Corrupt { .. }));
    assert!(s.appended > 0 && s.injected > 0, "{s:?}");
}
