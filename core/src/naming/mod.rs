//! Names: what shards, files, directories and streams are called, and the
//! patterns that select shards by stream name. None of this is wire format:
//! stream names are never stored (only the number selects the shard,
//! docs/DECISIONS.md D-2), and file and directory names are the platform's
//! view of a data directory.
//!
//! * segments: `log-<20-digit base entry>.comet` (ours) and
//!   `log-<16-digit sequence>.comet` (written by the Go package);
//! * shard directories: `shard-NNNN`, exactly four digits, ids `0..=9999`;
//! * stream names: `<prefix>:shard:<digits>` or `<prefix>:<4 digits>` as in
//!   the Go package (reference §1.3); only the number selects the shard;
//! * shard patterns ([`ShardPattern`], feature `alloc`): the one grammar of
//!   every tool that selects shards by stream pattern.

use crate::error::NameError;

#[cfg(feature = "alloc")]
mod pattern;
#[cfg(feature = "alloc")]
pub use pattern::{PatternError, PatternErrorKind, ShardPattern};

/// A shard id, `0..=9999` (so directory names are always `shard-NNNN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(u16);

impl ShardId {
    /// Shard 0.
    pub const MIN: ShardId = ShardId(0);
    /// Shard 9999, the largest id.
    pub const MAX: ShardId = ShardId(9999);

    /// Validates `id`; `None` above 9999.
    pub const fn new(id: u32) -> Option<ShardId> {
        if id > 9999 {
            None
        } else {
            #[allow(clippy::cast_possible_truncation)]
            Some(ShardId(id as u16))
        }
    }

    /// The id as an integer.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }
}

impl core::fmt::Display for ShardId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// A short file name built without allocation (at most 48 bytes, ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileName {
    buf: [u8; 48],
    len: u8,
}

impl FileName {
    /// The empty name.
    pub const EMPTY: FileName = FileName { buf: [0; 48], len: 0 };

    /// Keeps the first 48 bytes of `s`, replacing non-ASCII bytes by `?`
    /// (for error messages).
    pub fn lossy(s: &str) -> FileName {
        let mut out = FileName::EMPTY;
        for (dst, &b) in out.buf.iter_mut().zip(s.as_bytes()) {
            *dst = if b.is_ascii() { b } else { b'?' };
            out.len += 1;
        }
        out
    }

    /// Builds a name from ASCII parts; `None` if the result exceeds 48 bytes
    /// or is not ASCII.
    pub fn from_parts(parts: &[&str]) -> Option<FileName> {
        let mut out = FileName { buf: [0; 48], len: 0 };
        for p in parts {
            out.push(p)?;
        }
        Some(out)
    }

    fn push(&mut self, s: &str) -> Option<()> {
        let at = usize::from(self.len);
        let end = at.checked_add(s.len()).filter(|&e| e <= self.buf.len())?;
        if !s.is_ascii() {
            return None;
        }
        self.buf[at..end].copy_from_slice(s.as_bytes());
        self.len = u8::try_from(end).ok()?;
        Some(())
    }

    fn push_decimal(&mut self, mut v: u64, width: usize) -> Option<()> {
        let mut digits = [b'0'; 20];
        let mut i = digits.len();
        while v > 0 {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let start = (digits.len() - width.min(20)).min(i);
        self.push(core::str::from_utf8(&digits[start..]).ok()?)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so this cannot fail.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl core::ops::Deref for FileName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl core::fmt::Debug for FileName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::fmt::Display for FileName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

const SEG_PREFIX: &str = "log-";
const SEG_SUFFIX: &str = ".comet";
const TABLE_SUFFIX: &str = ".chunks";

/// `log-<base entry, 20 digits>.comet`.
pub fn segment_file_name(base: u64) -> FileName {
    let mut n = FileName { buf: [0; 48], len: 0 };
    // 4 + 20 + 6 = 30 bytes always fit.
    let _ = n.push(SEG_PREFIX);
    let _ = n.push_decimal(base, 20);
    let _ = n.push(SEG_SUFFIX);
    n
}

/// `log-<base entry, 20 digits>.chunks`: the segment's chunk table.
pub fn chunk_table_file_name(base: u64) -> FileName {
    let mut n = FileName { buf: [0; 48], len: 0 };
    // 4 + 20 + 7 = 31 bytes always fit.
    let _ = n.push(SEG_PREFIX);
    let _ = n.push_decimal(base, 20);
    let _ = n.push(TABLE_SUFFIX);
    n
}

const DICT_PREFIX: &str = "dict-";
const DICT_SUFFIX: &str = ".zdict";

/// `dict-<dictionary id, 10 digits>.zdict`: a zstd dictionary of the shard
/// (format in `crate::dict`).
pub fn dict_file_name(id: u32) -> FileName {
    let mut n = FileName { buf: [0; 48], len: 0 };
    // 5 + 10 + 6 = 21 bytes always fit.
    let _ = n.push(DICT_PREFIX);
    let _ = n.push_decimal(u64::from(id), 10);
    let _ = n.push(DICT_SUFFIX);
    n
}

/// Parses a dictionary file's name, returning its dictionary id.
pub fn parse_dict_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(DICT_PREFIX)?.strip_suffix(DICT_SUFFIX)?;
    if digits.len() != 10 {
        return None;
    }
    parse_digits(digits).and_then(|v| u32::try_from(v).ok())
}

/// Parses a chunk table's name, returning its segment's base entry.
pub fn parse_chunk_table_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEG_PREFIX)?.strip_suffix(TABLE_SUFFIX)?;
    if digits.len() != 20 {
        return None;
    }
    parse_digits(digits)
}

fn parse_digits(s: &str) -> Option<u64> {
    parse_digit_bytes(s.as_bytes())
}

/// Decimal digits only (no sign, no space), at least one; `None` on overflow.
fn parse_digit_bytes(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The number in `log-<width digits>.comet`; shared with the Go names in
/// `crate::go`.
pub(crate) fn segment_digits(name: &str, width: usize) -> Option<u64> {
    let digits = name.strip_prefix(SEG_PREFIX)?.strip_suffix(SEG_SUFFIX)?;
    if digits.len() != width {
        return None;
    }
    parse_digits(digits)
}

/// Parses one of our segment names, returning its base entry number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    segment_digits(name, 20)
}

/// `shard-NNNN`.
pub fn shard_dir_name(id: ShardId) -> FileName {
    let mut n = FileName { buf: [0; 48], len: 0 };
    let _ = n.push("shard-");
    let _ = n.push_decimal(u64::from(id.0), 4);
    n
}

/// Parses `shard-NNNN` (exactly four digits).
pub fn parse_shard_dir_name(name: &str) -> Option<ShardId> {
    let digits = name.strip_prefix("shard-")?;
    if digits.len() != 4 {
        return None;
    }
    ShardId::new(u32::try_from(parse_digits(digits)?).ok()?)
}

/// Longest accepted stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 255;

/// Byte classes for stream names: `FORBIDDEN` (NUL and the other control
/// bytes, DEL, `/`, `\`), `DOT` and `COLON`; one table lookup per byte.
const FORBIDDEN: u8 = 1;
const DOT: u8 = 2;
const COLON: u8 = 4;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        // `b < 256`, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let c = b as u8;
        t[b] = if c.is_ascii_control() || c == b'/' || c == b'\\' {
            FORBIDDEN
        } else if c == b'.' {
            DOT
        } else if c == b':' {
            COLON
        } else {
            0
        };
        b += 1;
    }
    t
};

/// One pass over a stream name (or prefix): the checks of
/// [`parse_stream`]'s contract, in its order of precedence (empty, too
/// long, the first forbidden byte, `..`). Returns the position of the last
/// `:`, if any.
fn scan_stream_bytes(s: &str) -> Result<Option<usize>, NameError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_STREAM_LEN {
        return Err(NameError::TooLong { len: bytes.len(), max: MAX_STREAM_LEN });
    }
    // Branch-free per byte: the classes seen and the classes seen twice in
    // a row; errors are sorted out after the loop.
    let mut seen = 0u8;
    let mut pairs = 0u8;
    let mut prev = 0u8;
    for &b in bytes {
        let class = CLASS[usize::from(b)];
        seen |= class;
        pairs |= class & prev;
        prev = class;
    }
    if seen & FORBIDDEN != 0
        && let Some((at, &byte)) = bytes.iter().enumerate().find(|&(_, &b)| CLASS[usize::from(b)] & FORBIDDEN != 0)
    {
        return Err(NameError::ForbiddenByte { byte, at });
    }
    if pairs & DOT != 0 {
        return Err(NameError::DotDot);
    }
    // The shard number is at the end: search from there.
    Ok(if seen & COLON != 0 { bytes.iter().rposition(|&b| b == b':') } else { None })
}

/// Validates a stream prefix (the part before `:shard:NNNN`).
pub fn validate_stream_prefix(prefix: &str) -> Result<(), NameError> {
    scan_stream_bytes(prefix).map(|_| ())
}

/// Parses the shard id out of a stream name.
///
/// Accepted forms (as the Go package, reference §1.3, but validated):
/// `<prefix>:shard:<1..=4 digits>` and `<prefix>:<exactly 4 digits>`. The
/// name must be non-empty, at most 255 bytes, without NUL, control bytes,
/// `/`, `\` or `..`; the id must be `0..=9999`.
pub fn parse_stream(stream: &str) -> Result<ShardId, NameError> {
    let Some(colon) = scan_stream_bytes(stream)? else {
        return Err(NameError::MissingShard);
    };
    let (head, tail) = stream.as_bytes().split_at_checked(colon).ok_or(NameError::MissingShard)?;
    let tail = tail.get(1..).unwrap_or_default();
    if tail.is_empty() {
        return Err(NameError::MissingShard);
    }
    let legacy = head.ends_with(b":shard") || head == b"shard";
    let ok_width = if legacy { (1..=4).contains(&tail.len()) } else { tail.len() == 4 };
    let value = parse_digit_bytes(tail).ok_or(NameError::BadShardDigits)?;
    if !ok_width {
        return Err(if value > 9999 { NameError::ShardOutOfRange { value } } else { NameError::BadShardDigits });
    }
    u32::try_from(value).ok().and_then(ShardId::new).ok_or(NameError::ShardOutOfRange { value })
}

/// `<prefix>:shard:NNNN`, the stream name for shard `id`.
#[cfg(feature = "alloc")]
pub fn shard_stream_name(prefix: &str, id: ShardId) -> Result<alloc::string::String, NameError> {
    validate_stream_prefix(prefix)?;
    let name = alloc::format!("{prefix}:shard:{id}");
    if name.len() > MAX_STREAM_LEN {
        return Err(NameError::TooLong { len: name.len(), max: MAX_STREAM_LEN });
    }
    Ok(name)
}

/// Stream names for every shard `0..count`.
#[cfg(feature = "alloc")]
pub fn all_shard_streams(
    prefix: &str,
    count: crate::wire::ShardCount,
) -> Result<alloc::vec::Vec<alloc::string::String>, NameError> {
    count.ids().map(|id| shard_stream_name(prefix, id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_roundtrip() {
        assert_eq!(segment_file_name(0).as_str(), "log-00000000000000000000.comet");
        assert_eq!(segment_file_name(209).as_str(), "log-00000000000000000209.comet");
        assert_eq!(segment_file_name(u64::MAX).as_str(), "log-18446744073709551615.comet");
        for base in [0, 1, 209, 10_000_000_000, u64::MAX] {
            assert_eq!(parse_segment_file_name(&segment_file_name(base)), Some(base));
        }
        assert_eq!(parse_segment_file_name("log-0000000000000001.comet"), None);
        assert_eq!(crate::go::parse_go_segment_file_name("log-0000000000000001.comet"), Some(1));
        assert_eq!(parse_segment_file_name("log-0000000000000000000a.comet"), None);
        assert_eq!(parse_segment_file_name("log-99999999999999999999.comet"), None, "overflow");
        assert_eq!(parse_segment_file_name("log-00000000000000000000.comet.tmp"), None);
    }

    #[test]
    fn shard_dirs_roundtrip() {
        for id in [0, 7, 42, 9999] {
            let s = ShardId::new(id).unwrap();
            assert_eq!(parse_shard_dir_name(&shard_dir_name(s)), Some(s));
        }
        assert_eq!(shard_dir_name(ShardId::new(7).unwrap()).as_str(), "shard-0007");
        assert_eq!(parse_shard_dir_name("shard-12345"), None);
        assert_eq!(parse_shard_dir_name("shard-007"), None);
        assert_eq!(parse_shard_dir_name("shard-00a7"), None);
        assert!(ShardId::new(10_000).is_none());
    }

    #[test]
    fn stream_names_as_go() {
        let id = |s| parse_stream(s).map(ShardId::get);
        assert_eq!(id("events:v1:shard:0007"), Ok(7));
        assert_eq!(id("x:shard:7"), Ok(7));
        assert_eq!(id("events:v1:0042"), Ok(42));
        assert_eq!(id("shard:0001"), Ok(1));
        assert_eq!(id("events:v1:42"), Err(NameError::BadShardDigits));
        assert_eq!(id("events:v1:shard:00A7"), Err(NameError::BadShardDigits));
        assert_eq!(id("events"), Err(NameError::MissingShard));
        assert_eq!(id("events:"), Err(NameError::MissingShard));
        assert_eq!(id("events:v1:shard:-1"), Err(NameError::BadShardDigits));
        assert_eq!(id("events:v1:shard: 1"), Err(NameError::BadShardDigits));
    }

    #[test]
    fn shard_id_12345_is_rejected_up_front() {
        assert_eq!(parse_stream("events:v1:shard:12345"), Err(NameError::ShardOutOfRange { value: 12345 }));
        assert_eq!(parse_stream("events:v1:12345"), Err(NameError::ShardOutOfRange { value: 12345 }));
    }

    #[test]
    fn stream_names_reject_path_tricks() {
        assert!(matches!(parse_stream("a/b:shard:0001"), Err(NameError::ForbiddenByte { byte: b'/', .. })));
        assert!(matches!(parse_stream("a\\b:shard:0001"), Err(NameError::ForbiddenByte { .. })));
        assert!(matches!(parse_stream("a\0:shard:0001"), Err(NameError::ForbiddenByte { byte: 0, .. })));
        assert_eq!(parse_stream("..:shard:0001"), Err(NameError::DotDot));
        assert_eq!(parse_stream(""), Err(NameError::Empty));
        let long = "a".repeat(300) + ":shard:0001";
        assert!(matches!(parse_stream(&long), Err(NameError::TooLong { .. })));
    }

    #[test]
    fn stream_name_helpers() {
        let s = shard_stream_name("events:v1", ShardId::new(7).unwrap()).unwrap();
        assert_eq!(s, "events:v1:shard:0007");
        assert_eq!(parse_stream(&s).unwrap().get(), 7);
        let all = all_shard_streams("m", crate::wire::ShardCount::new(3).unwrap()).unwrap();
        assert_eq!(all, ["m:shard:0000", "m:shard:0001", "m:shard:0002"]);
        assert!(shard_stream_name("a/b", ShardId::MIN).is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The stream-name rules written out plainly (the parser before it was
    /// made single-pass): `parse_stream` must agree with it on every
    /// input, errors included.
    fn reference_check(s: &str) -> Result<(), NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > 255 {
            return Err(NameError::TooLong { len: s.len(), max: 255 });
        }
        if let Some((at, b)) =
            s.bytes().enumerate().find(|&(_, b)| b == 0 || b == b'/' || b == b'\\' || b.is_ascii_control())
        {
            return Err(NameError::ForbiddenByte { byte: b, at });
        }
        if s.contains("..") {
            return Err(NameError::DotDot);
        }
        Ok(())
    }

    fn reference_digits(s: &str) -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.bytes().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))
    }

    fn reference_parse(stream: &str) -> Result<ShardId, NameError> {
        reference_check(stream)?;
        let Some(colon) = stream.rfind(':') else {
            return Err(NameError::MissingShard);
        };
        let (head, tail) = (&stream[..colon], &stream[colon + 1..]);
        if tail.is_empty() {
            return Err(NameError::MissingShard);
        }
        let legacy = head.ends_with(":shard") || head == "shard";
        let ok_width = if legacy { (1..=4).contains(&tail.len()) } else { tail.len() == 4 };
        let value = reference_digits(tail).ok_or(NameError::BadShardDigits)?;
        if !ok_width {
            return Err(if value > 9999 { NameError::ShardOutOfRange { value } } else { NameError::BadShardDigits });
        }
        u32::try_from(value).ok().and_then(ShardId::new).ok_or(NameError::ShardOutOfRange { value })
    }

    /// Stream-like strings: the pieces the rules care about, so that valid
    /// names, every error and their combinations all come up often.
    fn stream_like() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            ".{0,300}",
            "(shard|:shard:|:|[0-9]{1,6}|[0-9]{4}|[0-9]{20,21}|[.]|/|\\\\|a|é|\\x7f|\\x00|\\x1f| |-){0,12}",
            "[a-z:.]{240,260}:shard:[0-9]{1,5}",
        ]
    }

    proptest! {
        #[test]
        fn stream_names_roundtrip(id in 0u32..10_000, prefix in "[a-z][a-z0-9:._-]{0,30}") {
            prop_assume!(!prefix.contains(".."));
            let s = shard_stream_name(&prefix, ShardId::new(id).unwrap()).unwrap();
            prop_assert_eq!(parse_stream(&s).unwrap().get(), id);
        }

        #[test]
        fn stream_parsing_matches_the_reference(s in stream_like()) {
            prop_assert_eq!(parse_stream(&s), reference_parse(&s), "{:?}", s);
            prop_assert_eq!(validate_stream_prefix(&s), reference_check(&s), "{:?}", s);
        }

        #[test]
        fn stream_parsing_never_panics(s in ".{0,300}") {
            let _ = parse_stream(&s);
            let _ = parse_shard_dir_name(&s);
            let _ = parse_segment_file_name(&s);
        }
    }
}
