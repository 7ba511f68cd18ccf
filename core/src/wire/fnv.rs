//! Shard picking: 32-bit FNV-1a of the key modulo the shard count, the same
//! function as the Go package (reference §1.4), so keys route identically.

use crate::naming::ShardId;

const FNV_OFFSET: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// 32-bit FNV-1a over `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A validated number of shards, `1..=10_000` (shard ids are `0..=9999`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardCount(u16);

impl ShardCount {
    /// The default shard count of the Go package: 16.
    pub const DEFAULT: ShardCount = ShardCount(16);
    /// The largest shard count: every id `0..=9999`.
    pub const MAX: ShardCount = ShardCount(10_000);

    /// Validates `n`; `None` for 0 or more than 10 000.
    pub const fn new(n: u32) -> Option<ShardCount> {
        if n == 0 || n > 10_000 {
            None
        } else {
            #[allow(clippy::cast_possible_truncation)]
            Some(ShardCount(n as u16))
        }
    }

    /// The count as an integer.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// All shard ids `0..count`.
    pub fn ids(self) -> impl Iterator<Item = ShardId> {
        (0..self.0).filter_map(|i| ShardId::new(u32::from(i)))
    }
}

/// Picks the shard for `key` among `count` shards: `fnv1a32(key) % count`
/// (32-bit FNV-1a, as the Go package does).
pub fn pick_shard(key: &[u8], count: ShardCount) -> ShardId {
    let id = fnv1a32(key) % count.get();
    // `id < count <= 10_000`, so it is a valid shard id.
    ShardId::new(id).unwrap_or(ShardId::MIN)
}

/// The member of `members` a shard belongs to: `shard % members`, 0 when
/// there are fewer than two. The one assignment rule: which process of a
/// multi-process deployment writes a shard, and which worker of a
/// consumer's `process` loop reads it.
pub const fn shard_member(shard: ShardId, members: u32) -> u32 {
    if members <= 1 { 0 } else { shard.get() % members }
}

/// [`pick_shard`] among the shards `0..count` that belong to `member` of
/// `members` ([`shard_member`]): the key's hash picks one of them, so a
/// process appends by key only to shards it writes. A member that owns none
/// of `0..count` (`member >= count`) gets its lowest shard, `member`.
/// With fewer than two members this is [`pick_shard`].
pub fn pick_member_shard(key: &[u8], count: ShardCount, member: u32, members: u32) -> ShardId {
    if members <= 1 {
        return pick_shard(key, count);
    }
    let owned = (count.get() + members - 1).saturating_sub(member) / members;
    let k = fnv1a32(key) % owned.max(1);
    ShardId::new(member + k * members).unwrap_or(ShardId::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from reference/go-comet-spec.md §1.4.
    const VECTORS: &[(&str, u32, u32, u32, u32, u32)] = &[
        ("", 0x811c9dc5, 1, 5, 197, 453),
        ("alice", 0x872213e7, 3, 7, 231, 487),
        ("bob", 0x86c6a0d4, 0, 4, 212, 212),
        ("charlie", 0xd056a441, 1, 1, 65, 65),
        ("diana", 0x0f61f7b8, 0, 8, 184, 440),
        ("user123", 0x07463806, 2, 6, 6, 6),
        ("user-123", 0x8c93cc93, 3, 3, 147, 147),
        ("test", 0xafd071e5, 1, 5, 229, 485),
        ("test-group", 0x89a74bbb, 3, 11, 187, 443),
        ("default", 0x933b5bde, 2, 14, 222, 478),
    ];

    #[test]
    fn fnv1a_matches_go_vectors() {
        for &(key, h, m4, m16, m256, m512) in VECTORS {
            assert_eq!(fnv1a32(key.as_bytes()), h, "hash of {key:?}");
            for (n, want) in [(4, m4), (16, m16), (256, m256), (512, m512)] {
                let got = pick_shard(key.as_bytes(), ShardCount::new(n).unwrap());
                assert_eq!(got.get(), want, "{key:?} % {n}");
            }
        }
    }

    #[test]
    fn a_member_picks_only_its_own_shards_and_spreads_over_them() {
        for members in 1..=6u32 {
            for count in 1..=24u32 {
                let n = ShardCount::new(count).unwrap();
                for member in 0..members {
                    let mut seen = [false; 24];
                    for k in 0..400u32 {
                        let key = k.to_le_bytes();
                        let s = pick_member_shard(&key, n, member, members);
                        assert_eq!(shard_member(s, members), member, "{members} members, {count} shards");
                        if member < count {
                            assert!(s.get() < count, "{s} outside 0..{count}");
                            seen[s.get() as usize] = true;
                        } else {
                            assert_eq!(s.get(), member);
                        }
                        if members == 1 {
                            assert_eq!(s, pick_shard(&key, n));
                        }
                    }
                    let mut mine = (0..count).filter(|&i| shard_member(ShardId::new(i).unwrap(), members) == member);
                    assert!(member >= count || mine.all(|i| seen[i as usize]), "every owned shard is picked");
                }
            }
        }
        assert_eq!(shard_member(ShardId::new(7).unwrap(), 0), 0);
        assert_eq!(shard_member(ShardId::new(7).unwrap(), 3), 1);
    }

    #[test]
    fn shard_count_bounds() {
        assert!(ShardCount::new(0).is_none());
        assert!(ShardCount::new(10_001).is_none());
        assert_eq!(ShardCount::new(10_000), Some(ShardCount::MAX));
        assert_eq!(ShardCount::new(4).unwrap().ids().count(), 4);
    }
}
