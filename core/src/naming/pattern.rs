//! Shard patterns: one grammar for every tool that selects shards by a
//! stream pattern (`comet consume`/`seek`/`forward --stream`, the
//! forwarder's configuration), re-exported by the `comet` crate.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use super::{ShardId, parse_stream};
use crate::error::NameError;

/// One item of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// `*`.
    All,
    /// An inclusive range of ids (one id: `lo == hi`).
    Ids(u32, u32),
    /// A shard part with `*`/`?` (consecutive `*`s collapsed).
    Wild(Box<[u8]>),
}

/// A set of shards named by a stream pattern: comma-separated items, each
/// one of
///
/// * `*`, or a stream name whose shard part is only `*`
///   (`events:v1:shard:*`): every shard;
/// * a stream name (`events:v1:shard:0007`): that shard;
/// * a stream name whose shard part has `*`/`?` wildcards
///   (`events:v1:shard:00*`), matched against the 4-digit id and the plain
///   number (`*` any run of digits, `?` one digit): those shards;
/// * a shard id (`7`) or an inclusive range of ids (`0-15`).
///
/// Spaces around items are ignored. Stream prefixes are not stored on disk
/// (only the number selects the shard, docs/DECISIONS.md D-2), so
/// `events:v1:shard:*` selects every shard whatever its prefix. Matching
/// takes time linear in the pattern.
///
/// ```
/// use comet_core::{ShardId, ShardPattern};
///
/// let p: ShardPattern = "events:v1:shard:000?, 12-14".parse()?;
/// let ids: Vec<u32> = p.shards().map(ShardId::get).collect();
/// assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14]);
/// assert!(p.matches(ShardId::new(13).unwrap()));
/// assert!("logs:shard:*".parse::<ShardPattern>()?.is_all());
/// # Ok::<(), comet_core::PatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPattern {
    items: Vec<Item>,
}

/// Why a shard pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternErrorKind {
    /// The pattern is empty (or only spaces).
    Empty,
    /// An item between commas is empty.
    EmptyItem,
    /// The stream prefix before a wildcard shard part is not valid.
    BadPrefix(NameError),
    /// A wildcard shard part holds something besides digits, `*` and `?`.
    BadWildcard,
    /// A shard id or range bound is not decimal digits.
    BadId,
    /// A shard id above 9999.
    IdOutOfRange,
    /// A range whose start is above its end.
    ReversedRange,
    /// An item that is no stream name, shard id or range.
    NotAStream {
        /// The item.
        item: String,
        /// Why it is no stream name.
        error: NameError,
    },
}

/// A shard pattern that does not parse: the pattern and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pattern: String,
    kind: PatternErrorKind,
}

impl PatternError {
    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &PatternErrorKind {
        &self.kind
    }

    /// What is wrong, in a few words without the details (the item, the
    /// name error) that `Display` adds.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            PatternErrorKind::Empty => "empty pattern",
            PatternErrorKind::EmptyItem => "empty item between commas",
            PatternErrorKind::BadPrefix(_) => "invalid stream prefix",
            PatternErrorKind::BadWildcard => "the shard part of a pattern is digits, '*' and '?'",
            PatternErrorKind::BadId => "a shard id is decimal digits",
            PatternErrorKind::IdOutOfRange => "shard id above 9999",
            PatternErrorKind::ReversedRange => "range start above its end",
            PatternErrorKind::NotAStream { .. } => "not a stream name, a shard id or a range of ids",
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid stream pattern {:?}: ", self.pattern)?;
        match &self.kind {
            PatternErrorKind::BadPrefix(e) => write!(f, "invalid stream prefix: {e}"),
            PatternErrorKind::NotAStream { item, error } => {
                write!(f, "{item:?} is not a stream name ({error}), a shard id or a range of ids like 0-15")
            }
            _ => f.write_str(self.reason()),
        }
    }
}

impl core::error::Error for PatternError {}

impl ShardPattern {
    /// Parses `pattern` (see [`ShardPattern`]); the error says what is
    /// wrong with it.
    pub fn parse(pattern: &str) -> Result<ShardPattern, PatternError> {
        let bad = |kind: PatternErrorKind| PatternError { pattern: pattern.to_string(), kind };
        if pattern.trim().is_empty() {
            return Err(bad(PatternErrorKind::Empty));
        }
        let mut items = Vec::new();
        for item in pattern.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(bad(PatternErrorKind::EmptyItem));
            }
            if item == "*" {
                items.push(Item::All);
                continue;
            }
            let (prefix, digits) = item.rsplit_once(':').map_or((None, item), |(p, d)| (Some(p), d));
            if digits.contains(['*', '?']) {
                if let Some(prefix) = prefix {
                    parse_stream(&format!("{prefix}:0000")).map_err(|e| bad(PatternErrorKind::BadPrefix(e)))?;
                }
                if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'?') {
                    return Err(bad(PatternErrorKind::BadWildcard));
                }
                let mut glob = digits.as_bytes().to_vec();
                glob.dedup_by(|a, b| *a == b'*' && *b == b'*');
                items.push(if glob == b"*" { Item::All } else { Item::Wild(glob.into_boxed_slice()) });
                continue;
            }
            if item.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let id = |s: &str| -> Result<u32, PatternError> {
                    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(bad(PatternErrorKind::BadId));
                    }
                    s.parse::<u32>()
                        .ok()
                        .and_then(ShardId::new)
                        .map(ShardId::get)
                        .ok_or_else(|| bad(PatternErrorKind::IdOutOfRange))
                };
                let (lo, hi) = (id(a)?, id(b)?);
                if lo > hi {
                    return Err(bad(PatternErrorKind::ReversedRange));
                }
                items.push(Item::Ids(lo, hi));
                continue;
            }
            let shard = parse_stream(item)
                .map_err(|error| bad(PatternErrorKind::NotAStream { item: item.to_string(), error }))?;
            items.push(Item::Ids(shard.get(), shard.get()));
        }
        Ok(ShardPattern { items })
    }

    /// True if the pattern selects `shard`.
    pub fn matches(&self, shard: ShardId) -> bool {
        let n = shard.get();
        // The 4-digit id and the plain number, without allocating.
        let padded = [n / 1000, n / 100 % 10, n / 10 % 10, n % 10].map(|d| b'0' + u8::try_from(d).unwrap_or(0));
        let plain = &padded[padded.iter().take(3).take_while(|&&d| d == b'0').count()..];
        self.items.iter().any(|item| match item {
            Item::All => true,
            Item::Ids(lo, hi) => (*lo..=*hi).contains(&n),
            Item::Wild(glob) => wildcard(glob, &padded) || wildcard(glob, plain),
        })
    }

    /// True if the pattern selects every shard id (`*`, `<prefix>:*`,
    /// `0-9999`, ...), including shards created later.
    pub fn is_all(&self) -> bool {
        self.items.contains(&Item::All) || self.shards().count() == ShardId::MAX.get() as usize + 1
    }

    /// Every shard id the pattern selects, in order.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        (0..=ShardId::MAX.get()).filter_map(ShardId::new).filter(|&s| self.matches(s))
    }
}

impl FromStr for ShardPattern {
    type Err = PatternError;

    fn from_str(pattern: &str) -> Result<ShardPattern, PatternError> {
        ShardPattern::parse(pattern)
    }
}

/// Matches `name` against a glob of `*` (any run) and `?` (one byte),
/// in O(pattern × name) time (backtracking only to the last `*`).
fn wildcard(glob: &[u8], name: &[u8]) -> bool {
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte.
                Some((sg, sn)) => {
                    star = Some((sg, sn + 1));
                    g = sg + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

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
        assert_eq!(selected("e:shard:0"), vec![0]);
        assert_eq!(selected("e:shard:?"), (0..10).collect::<Vec<_>>());
        assert_eq!(
            selected("e:shard:*0*0*"),
            (0..10_000)
                .filter(|n| format!("{n:04}").matches('0').count() >= 2 || format!("{n}").matches('0').count() >= 2)
                .collect::<Vec<_>>()
        );
        assert!(ShardPattern::parse("e:shard:**").unwrap().is_all());
        assert!(ShardPattern::parse("0-9999").unwrap().is_all());
        assert!(!ShardPattern::parse("0-9998").unwrap().is_all());
    }

    #[test]
    fn the_matcher_agrees_with_a_reference_on_every_id() {
        // A plain recursive reference (fine for these short patterns).
        fn reference(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
                Some((b'?', rest)) => !s.is_empty() && reference(rest, &s[1..]),
                Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
            }
        }
        for glob in ["*1", "1*", "?0?", "*9*9", "0*", "??", "?*?*?", "1?3*", "*12", "0?0?", "00?*"] {
            let p = ShardPattern::parse(&format!("e:shard:{glob}")).unwrap();
            for n in 0..=9999u32 {
                let want = reference(glob.as_bytes(), format!("{n:04}").as_bytes())
                    || reference(glob.as_bytes(), n.to_string().as_bytes());
                assert_eq!(p.matches(ShardId::new(n).unwrap()), want, "{glob} {n}");
            }
        }
    }

    #[test]
    fn long_patterns_match_in_linear_time() {
        let p = format!("e:shard:{}1", "*".repeat(200));
        assert_eq!(selected(&p).len(), 1000);
        let p = format!("e:shard:{}1", "*?".repeat(200));
        assert!(selected(&p).is_empty());
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
            ("1-", "decimal digits"),
            ("*,x", "not a stream name"),
        ] {
            let e = ShardPattern::parse(p).expect_err(p);
            assert!(e.to_string().contains(why), "{p:?}: {e}");
            assert!(e.to_string().starts_with(&format!("invalid stream pattern {p:?}: ")), "{e}");
            assert_eq!(e.pattern(), p);
        }
        let e = ShardPattern::parse("events").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid stream pattern \"events\": \"events\" is not a stream name (stream name has no `:<shard>` \
             suffix), a shard id or a range of ids like 0-15"
        );
        assert_eq!(e.reason(), "not a stream name, a shard id or a range of ids");
    }
}
