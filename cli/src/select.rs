//! Shard patterns for `--stream`, one grammar for every subcommand.
//!
//! A pattern is comma-separated items, each one of
//!
//! * `*`, or a stream name whose shard part is only `*`
//!   (`events:v1:shard:*`): every shard;
//! * a stream name (`events:v1:shard:0007`): that shard;
//! * a stream name whose shard part has `*`/`?` wildcards
//!   (`events:v1:shard:00*`), matched against the 4-digit id and the plain
//!   number: those shards;
//! * a shard id (`7`) or an inclusive range of ids (`0-15`).
//!
//! Stream prefixes are not stored on disk (only the number selects the
//! shard, docs/DECISIONS.md D-2), so `events:v1:shard:*` selects every
//! shard whatever its prefix. This is the grammar of `comet-forward`'s
//! `ShardSelect`; wildcards are matched by `globset` (linear time).

use comet::{ShardId, parse_stream};
use globset::{GlobBuilder, GlobMatcher};

/// One item of a pattern.
#[derive(Debug)]
enum Item {
    All,
    Ids(u32, u32),
    Glob(GlobMatcher),
}

/// A parsed `--stream` pattern.
#[derive(Debug)]
pub(crate) struct ShardPattern(Vec<Item>);

impl ShardPattern {
    /// Parses `pattern`; the error says what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<ShardPattern, String> {
        let bad = |why: &str| format!("invalid stream pattern {pattern:?}: {why}");
        if pattern.trim().is_empty() {
            return Err(bad("empty pattern"));
        }
        let mut items = Vec::new();
        for item in pattern.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(bad("empty item between commas"));
            }
            if item == "*" {
                items.push(Item::All);
                continue;
            }
            let (prefix, digits) = item.rsplit_once(':').map_or((None, item), |(p, d)| (Some(p), d));
            if digits.contains(['*', '?']) {
                if let Some(prefix) = prefix {
                    parse_stream(&format!("{prefix}:0000")).map_err(|e| bad(&format!("invalid stream prefix: {e}")))?;
                }
                if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'?') {
                    return Err(bad("the shard part of a pattern is digits, '*' and '?'"));
                }
                let glob = GlobBuilder::new(digits).build().map_err(|e| bad(&e.to_string()))?;
                items.push(Item::Glob(glob.compile_matcher()));
                continue;
            }
            if item.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let id = |s: &str| -> Result<u32, String> {
                    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(bad("a shard id is decimal digits"));
                    }
                    s.parse::<u32>()
                        .ok()
                        .and_then(ShardId::new)
                        .map(ShardId::get)
                        .ok_or_else(|| bad("shard id above 9999"))
                };
                let (lo, hi) = (id(a)?, id(b)?);
                if lo > hi {
                    return Err(bad("range start above its end"));
                }
                items.push(Item::Ids(lo, hi));
                continue;
            }
            let shard = parse_stream(item).map_err(|e| {
                bad(&format!("{item:?} is not a stream name ({e}), a shard id or a range of ids like 0-15"))
            })?;
            items.push(Item::Ids(shard.get(), shard.get()));
        }
        Ok(ShardPattern(items))
    }

    /// True if the pattern selects `shard`.
    pub(crate) fn matches(&self, shard: ShardId) -> bool {
        let (padded, plain) = (shard.to_string(), shard.get().to_string());
        self.0.iter().any(|item| match item {
            Item::All => true,
            Item::Ids(lo, hi) => (*lo..=*hi).contains(&shard.get()),
            Item::Glob(g) => g.is_match(&padded) || g.is_match(&plain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected(pattern: &str) -> Vec<u32> {
        let p = ShardPattern::parse(pattern).unwrap();
        (0..=ShardId::MAX.get()).filter(|&n| p.matches(ShardId::new(n).unwrap())).collect()
    }

    #[test]
    fn wildcards_ids_ranges_and_names() {
        assert_eq!(selected("*").len(), 10_000);
        assert_eq!(selected("events:v1:shard:*").len(), 10_000);
        assert_eq!(selected("events:v1:shard:000?"), (0..10).collect::<Vec<_>>());
        assert_eq!(selected("e:shard:00*3"), vec![3, 13, 23, 33, 43, 53, 63, 73, 83, 93]);
        // The plain number matches too (a 4-digit id never has 2 digits).
        assert_eq!(selected("e:shard:1?"), (10..20).collect::<Vec<_>>());
        assert_eq!(selected("e:shard:0007"), vec![7]);
        assert_eq!(selected("logs:v2:0007"), vec![7]);
        assert_eq!(selected("0-3,7"), vec![0, 1, 2, 3, 7]);
        assert_eq!(selected("9999"), vec![9999]);
        assert_eq!(selected("e:shard:001*"), (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn long_patterns_match_in_linear_time() {
        // The old recursive matcher took exponential time on this.
        let p = format!("e:shard:{}1", "*".repeat(200));
        assert_eq!(selected(&p).len(), 1000);
    }

    #[test]
    fn bad_patterns_say_why() {
        for (p, why) in [
            ("", "empty pattern"),
            ("0,,1", "empty item"),
            ("e:shard:0a*", "digits, '*' and '?'"),
            ("e:shard:[0-3]", "not a stream name"),
            ("bad/prefix:shard:*", "invalid stream prefix"),
            ("5-2", "range start above its end"),
            ("10000", "above 9999"),
            ("events", "not a stream name"),
        ] {
            let e = ShardPattern::parse(p).expect_err(p);
            assert!(e.contains(why), "{p:?}: {e}");
        }
    }
}
