use super::*;
use crate::ShardId;
use crate::state::shm::OFFSETS_WORDS;
use core::sync::atomic::Ordering;
use std::vec::Vec;

fn words(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn noop() {}

fn shard(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

#[test]
fn a_group_resumes_at_its_offset_raised_to_the_first_retained_entry() {
    assert_eq!(resume_point(None, 0), 0);
    assert_eq!(resume_point(None, 7), 7, "never acked: from the first retained entry");
    assert_eq!(resume_point(Some(3), 7), 7, "retention deleted what it skipped");
    assert_eq!(resume_point(Some(9), 7), 9);
    assert_eq!(lag(None, 7, 10), 3);
    assert_eq!(lag(Some(9), 7, 10), 1);
    assert_eq!(lag(Some(12), 0, 10), 0, "never negative");
}

#[test]
fn seek_targets_resolve_against_the_bounds() {
    let no_time = |_| -> Result<u64, ()> { panic!("not a time seek") };
    assert_eq!(SeekTo::Start.target(5, 20, no_time), Ok(5));
    assert_eq!(SeekTo::End.target(5, 20, no_time), Ok(20));
    assert_eq!(SeekTo::Entry(2).target(5, 20, no_time), Ok(2), "clamping is the reader's");
    assert_eq!(SeekTo::FromEnd(3).target(5, 20, no_time), Ok(17));
    assert_eq!(SeekTo::FromEnd(30).target(5, 20, no_time), Ok(0));
    assert_eq!(SeekTo::Time(99).target(5, 20, |ts| Ok::<_, ()>(ts / 10)), Ok(9));
    assert_eq!(SeekTo::Time(99).target(5, 20, |_| Err("probe failed")), Err("probe failed"));
}

#[test]
fn an_ack_range_may_not_leave_a_hole_or_pass_the_end() {
    assert_eq!(check_ack_range(&(3..8), 5, 10), Ok(()));
    assert_eq!(check_ack_range(&(5..10), 5, 10), Ok(()));
    assert_eq!(check_ack_range(&(6..8), 5, 10), Err(AckRangeError::Gap { offset: 5, start: 6 }));
    assert_eq!(check_ack_range(&(6..6), 5, 10), Err(AckRangeError::Gap { offset: 5, start: 6 }));
    assert_eq!(check_ack_range(&(4..11), 5, 10), Err(AckRangeError::PastEnd { entry: 10 }));
}

#[test]
fn the_durable_end_is_read_only_when_an_ack_passes_the_end_seen() {
    let mut link = GroupLink::default();
    let mut reads = 0;
    let mut end = |e: u64| {
        reads += 1;
        Ok::<_, ()>(e)
    };
    assert_eq!(link.cap(5, || end(10)), Ok(5));
    assert_eq!(link.cap(8, || -> Result<u64, ()> { panic!("below the end seen") }), Ok(8));
    assert_eq!(link.cap(12, || end(11)), Ok(11), "capped at the durable end");
    assert_eq!(link.cap(12, || end(9)), Ok(11), "the end seen never decreases");
    assert_eq!(link.cap(0, || Err(())), Ok(0));
    assert_eq!(link.cap(20, || Err(())), Err(()));
    assert_eq!(reads, 3);
}

#[test]
fn advances_go_through_the_cached_slot_and_never_move_backwards() {
    let w = words(OFFSETS_WORDS);
    let mut link = GroupLink::default();
    assert_eq!(link.stored(&w, "billing", noop), Ok(None), "an uninitialised table: no groups");
    assert_eq!(link.advance_cached(&w, 3, 1), None, "no slot yet");
    assert_eq!(link.advance(&w, "billing", 4, 1, noop), Ok(4));
    assert_eq!(link.advance(&w, "billing", 2, 2, noop), Ok(4), "never backwards");
    assert_eq!(link.advance_cached(&w, 6, 3), Some(0));
    assert_eq!(link.stored(&w, "billing", noop), Ok(Some(6)));
    let t = OffsetsTable::open(&w, noop).unwrap();
    let g = t.get("billing").unwrap().unwrap();
    assert_eq!((g.offset, g.last_update, g.updates), (6, 3, 2), "the fast path's ack is stored, not counted yet");
    assert_eq!(link.publish(&w), 1);
    assert_eq!(link.publish(&w), 0);
    assert_eq!(t.get("billing").unwrap().unwrap().updates, 3);
    // Another member (another link) sees and moves the same offset.
    let mut other = GroupLink::default();
    assert_eq!(other.stored(&w, "billing", noop), Ok(Some(6)));
    assert_eq!(other.advance(&w, "billing", 9, 4, noop), Ok(9));
    assert_eq!(link.stored(&w, "billing", noop), Ok(Some(9)));
    // A replay (set) is seen through the cached slot.
    t.set("billing", 2, 5).unwrap();
    assert_eq!(link.stored(&w, "billing", noop), Ok(Some(2)));
    // Other groups are untouched.
    assert_eq!(GroupLink::default().stored(&w, "audit", noop), Ok(None));
    assert_eq!(t.get("audit").unwrap(), None, "a lookup never claims");
}

#[test]
fn a_table_changed_under_a_cached_slot_is_looked_up_again() {
    let w = words(OFFSETS_WORDS);
    let mut link = GroupLink::default();
    assert_eq!(link.advance(&w, "billing", 4, 1, noop), Ok(4));
    // The file is replaced by an empty one (repair, or a new shard).
    for x in &w {
        x.store(0, Ordering::Relaxed);
    }
    assert_eq!(link.advance_cached(&w, 6, 2), None, "the slot no longer holds the group");
    assert_eq!(link.stored(&w, "billing", noop), Ok(None));
    assert_eq!(link.advance(&w, "billing", 6, 2, noop), Ok(6), "claimed again");
    assert!(link.advance_cached(&w, 7, 3).is_some());
    assert_eq!(OffsetsTable::open(&w, noop).unwrap().get("billing").unwrap().unwrap().offset, 7);
    // Bad layouts are typed errors.
    let short = words(10);
    assert!(link.advance(&short, "billing", 1, 4, noop).is_err());
    assert!(link.stored(&short, "billing", noop).is_err());
    assert!(matches!(GroupLink::default().advance(&w, "", 1, 4, noop), Err(OffsetsError::Name(_))));
}

fn highs(ids: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    ack_highs(ids.iter().map(|&(s, e)| (shard(s), e)), |s, to| {
        out.push((s.get(), to));
        Ok::<_, ()>(())
    })
    .unwrap();
    out
}

#[test]
fn acks_are_grouped_by_shard_to_the_highest_id_plus_one() {
    assert_eq!(highs(&[]), []);
    assert_eq!(highs(&[(1, 4), (1, 5), (1, 3)]), [(1, 6)]);
    assert_eq!(highs(&[(2, 1), (1, 9), (2, 7), (1, 0)]), [(2, 8), (1, 10)]);
    assert_eq!(highs(&[(1, u64::MAX)]), [(1, u64::MAX)], "saturates");
    // More shards than the inline array: the rest sorted by shard, each once.
    let mut ids: Vec<(u32, u64)> = (0..12).map(|s| (s, u64::from(s) * 10)).collect();
    ids.extend([(11, 500), (9, 1), (10, 300)]);
    let mut want: Vec<(u32, u64)> = (0..8).map(|s| (s, u64::from(s) * 10 + 1)).collect();
    want.extend([(8, 81), (9, 91), (10, 301), (11, 501)]);
    assert_eq!(highs(&ids), want);
}

#[test]
fn an_ack_stops_at_the_first_failing_shard() {
    let mut seen = Vec::new();
    let r = ack_highs([(shard(1), 1), (shard(2), 2), (shard(3), 3)].into_iter(), |s, _| {
        seen.push(s.get());
        if s.get() == 2 { Err(s) } else { Ok(()) }
    });
    assert_eq!(r, Err(shard(2)));
    assert_eq!(seen, [1, 2]);
}

#[test]
fn fast_path_acks_are_counted_within_the_delay() {
    const T: u64 = 1_700_000_000_000_000_000; // ns since the epoch
    const D: u64 = ACK_COUNT_DELAY_NS;
    let w = words(OFFSETS_WORDS);
    let mut link = GroupLink::default();
    assert_eq!(link.advance(&w, "billing", 1, T, noop), Ok(1));
    let updates = || OffsetsTable::open(&w, noop).unwrap().get("billing").unwrap().unwrap().updates;
    // The first fast-path ack counts itself (nothing was counted before).
    assert_eq!(link.advance_cached(&w, 2, T + 10), Some(1));
    assert_eq!(updates(), 2);
    // Then acks within the delay are noted, also when the offset does not move.
    assert_eq!(link.advance_cached(&w, 3, T + 30), Some(0));
    assert_eq!(link.advance_cached(&w, 2, T + 40), Some(0));
    assert_eq!(link.advance_cached(&w, 4, T + 10 + D - 1), Some(0));
    assert_eq!((link.uncounted(), updates()), (3, 2));
    assert_eq!(link.stored(&w, "billing", noop), Ok(Some(4)), "the offsets are stored at once");
    // The first ack at the delay counts them all, itself included.
    assert_eq!(link.advance_cached(&w, 5, T + 10 + D), Some(4));
    assert_eq!((link.uncounted(), updates()), (0, 6));
    assert_eq!(link.stored(&w, "billing", noop), Ok(Some(5)));
    // A table replaced under the slot drops the noted acks, never an error.
    assert_eq!(link.advance_cached(&w, 6, T + 11 + D), Some(0));
    for x in &w {
        x.store(0, Ordering::Relaxed);
    }
    assert_eq!(link.publish(&w), 1);
    assert_eq!(link.uncounted(), 0);
}
