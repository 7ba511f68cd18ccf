use super::*;

const S: u64 = 1_000_000_000;

fn segs(n: u64) -> [SegmentInfo; 8] {
    let mut out = [SegmentInfo { base: 0, end: 0, bytes: 0, last_ts: 0 }; 8];
    for i in 0..n.min(8) {
        out[i as usize] = SegmentInfo { base: i * 10, end: i * 10 + 10, bytes: 100, last_ts: (i + 1) * 10 * S };
    }
    out
}

#[test]
fn age_deletes_old_prefix_only() {
    let s = segs(5);
    let limits = ShardLimits { max_age_ns: Some(25 * S), ..Default::default() };
    // now = 60 s: segments with last_ts 10, 20, 30 s are older than 25 s
    let p = plan_shard(&s[..5], 50, &limits, None, 60 * S);
    assert_eq!(p, ShardPlan { delete: 3, protected: 0, by_age: 3, by_size: 0 });
    let p = plan_shard(&s[..5], 50, &limits, None, 20 * S);
    assert_eq!(p.delete, 0);
}

#[test]
fn size_limit_counts_active_bytes() {
    let s = segs(5);
    let limits = ShardLimits { max_shard_bytes: Some(260), ..Default::default() };
    // 500 sealed + 50 active = 550 -> delete 3 -> 250
    let p = plan_shard(&s[..5], 50, &limits, None, 0);
    assert_eq!(p, ShardPlan { delete: 3, protected: 0, by_age: 0, by_size: 3 });
}

#[test]
fn limits_combine_and_min_files_hold() {
    let s = segs(5);
    let limits = ShardLimits { max_age_ns: Some(25 * S), max_shard_bytes: Some(100), min_files_to_keep: 2 };
    let p = plan_shard(&s[..5], 0, &limits, None, 60 * S);
    assert_eq!(p.delete, 3, "size wants 4, min files keeps 2");
    assert_eq!((p.by_age, p.by_size), (3, 0));
}

#[test]
fn protection_keeps_unacked_segments() {
    let s = segs(5);
    let limits = ShardLimits { max_age_ns: Some(0), ..Default::default() };
    // a group has read up to entry 25 (next = 25): segments [0,10) and [10,20) are acked
    let p = plan_shard(&s[..5], 0, &limits, Some(25), 100 * S);
    assert_eq!(p, ShardPlan { delete: 2, protected: 3, by_age: 2, by_size: 0 });
    // a group at exactly a segment end: that segment is acked
    assert_eq!(plan_shard(&s[..5], 0, &limits, Some(30), 100 * S).delete, 3);
    // no groups, no protection
    assert_eq!(plan_shard(&s[..5], 0, &limits, None, 100 * S).delete, 5);
    assert_eq!(acked_prefix(&s[..5], Some(0)), 0);
}

#[test]
fn total_limit_takes_oldest_across_shards() {
    let a = segs(3); // last_ts 10, 20, 30
    let mut b = segs(3);
    for (i, g) in b.iter_mut().enumerate().take(3) {
        g.last_ts = (i as u64 * 10 + 15) * S; // 15, 25, 35
    }
    let shards = [
        TotalCandidate { sealed: &a[..3], active_bytes: 0, allowed: 3, keep: 0 },
        TotalCandidate { sealed: &b[..3], active_bytes: 0, allowed: 3, keep: 0 },
    ];
    let mut out = [TotalPlan::default(); 2];
    plan_total(&shards, 300, false, &mut out); // 600 -> delete 3: a10, b15, a20
    assert_eq!(out[0].delete, 2);
    assert_eq!(out[1].delete, 1);
}

#[test]
fn hard_cap_overrides_protection_and_counts_it() {
    let a = segs(4);
    let shards = [TotalCandidate { sealed: &a[..4], active_bytes: 50, allowed: 1, keep: 0 }];
    let mut out = [TotalPlan::default()];
    plan_total(&shards, 150, false, &mut out);
    assert_eq!((out[0].delete, out[0].forced), (1, 0));
    assert_eq!(out[0].protected, 3);
    plan_total(&shards, 150, true, &mut out);
    // 450 -> need to drop 3 segments; 1 allowed, 2 forced
    assert_eq!((out[0].delete, out[0].forced), (3, 2));
}

#[test]
fn plan_by_config_asks_for_the_low_water_mark_only_when_it_protects() {
    let s = segs(5);
    let mut cfg = RetentionConfig { max_age: None, max_shard_size: Some(260), ..RetentionConfig::default() };
    cfg.min_files_to_keep = 0;
    cfg.protect_unconsumed = true;
    // Groups acked up to entry 15: only the first segment (0..10) may go.
    let (p, lw, e) = plan_by_config(&s[..5], 50, &cfg, 0, || Ok::<_, ()>(Some(15)));
    assert_eq!((p.delete, p.protected, lw, e), (1, 2, Some(15), None));
    // Offsets that do not read protect everything, and the error comes back.
    let (p, lw, e) = plan_by_config(&s[..5], 50, &cfg, 0, || Err("offsets unreadable"));
    assert_eq!((p.delete, p.protected, lw, e), (0, 3, Some(0), Some("offsets unreadable")));
    cfg.protect_unconsumed = false;
    let (p, lw, e) = plan_by_config(&s[..5], 50, &cfg, 0, || -> Result<LowWater, ()> { panic!("not asked") });
    assert_eq!((p.delete, p.protected, lw, e), (3, 0, None, None));
}
