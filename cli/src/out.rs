//! Output helpers: entry formats, JSON, times, sizes, plurals and escaping.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Format;

/// Fails unless `dir` is an existing directory.
pub(crate) fn require_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::other(format!("{}: not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(io::Error::other(format!("{}: no such directory", dir.display())))
        }
        Err(e) => Err(io::Error::other(format!("{}: {e}", dir.display()))),
    }
}

/// One entry as a `jsonl` line: `payload` when it is UTF-8, else
/// `payload_base64` (standard alphabet, padded).
#[derive(Serialize)]
struct JsonEntry<'a> {
    shard: u32,
    entry: u64,
    timestamp: u64,
    length: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// Writes one entry in `format`.
pub(crate) fn entry(w: &mut impl Write, format: Format, msg: &comet::Message) -> io::Result<()> {
    let data = msg.data();
    match format {
        Format::Text => {
            w.write_all(data)?;
            w.write_all(b"\n")
        }
        Format::Jsonl => {
            let text = std::str::from_utf8(data).ok();
            let line = JsonEntry {
                shard: msg.id.shard.get(),
                entry: msg.id.entry,
                timestamp: msg.timestamp,
                length: data.len(),
                payload: text,
                payload_base64: text.is_none().then(|| base64::engine::general_purpose::STANDARD.encode(data)),
            };
            json_line(w, &line)
        }
        Format::Hex => {
            let mut line = format!("{}\t", msg.id.entry);
            hex(&mut line, data);
            line.push('\n');
            w.write_all(line.as_bytes())
        }
        Format::Sha256 => {
            let mut line = format!("{}\t{}\t", msg.id.entry, data.len());
            hex(&mut line, &Sha256::digest(data));
            line.push('\n');
            w.write_all(line.as_bytes())
        }
    }
}

/// Writes `value` as one line of compact JSON.
pub(crate) fn json_line(w: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n")
}

/// A ratio serialized as a JSON number with exactly 4 decimals (`1.0000`),
/// as the JSON output has always printed it (`null` if not finite).
pub(crate) struct Ratio4(pub(crate) f64);

impl Serialize for Ratio4 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = if self.0.is_finite() { format!("{:.4}", self.0) } else { "null".into() };
        serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

/// Appends lowercase hex.
pub(crate) fn hex(out: &mut String, data: &[u8]) {
    for b in data {
        let _ = write!(out, "{b:02x}");
    }
}

/// Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds
/// truncated); `-` for 0.
pub(crate) fn time(ns: u64) -> String {
    if ns == 0 {
        return "-".into();
    }
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Above jiff's range (year 9999): show the raw number.
        Err(_) => format!("{ns}ns"),
    }
}

/// Parses a time given on the command line: nanoseconds since the Unix
/// epoch, or an RFC 3339 time such as `2026-11-28T10:00:00Z` or
/// `2026-11-28T11:00:00.5+01:00` (what [`time`] prints reads back).
/// Impossible dates and times (February 31, second 60) are refused.
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let want = "want nanoseconds since the epoch or UTC as YYYY-MM-DDTHH:MM:SS[.fff]Z";
    let bad = |why: &dyn std::fmt::Display| format!("invalid time {s:?}: {why}; {want}");
    let t: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| bad(&e))?;
    // jiff reads a leap second (`:60`) as `:59`; refuse it, since no clock
    // comet stamps with shows one and a typo should not pass as a time.
    if leap_second(s) {
        return Err(bad(&"second 60 (a leap second) is not a time comet stamps"));
    }
    let ns = t.as_nanosecond();
    u64::try_from(ns).map_err(|_| bad(&"before 1970-01-01T00:00:00Z"))
}

/// True if the seconds field of an RFC 3339 time is `60`.
fn leap_second(s: &str) -> bool {
    let Some((_, clock)) = s.split_once(['T', 't', ' ']) else { return false };
    clock.split(':').nth(2).is_some_and(|sec| sec.starts_with("60"))
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    bytes_f64(n as f64)
}

/// [`bytes`] for a measured (fractional) amount, e.g. a rate.
pub(crate) fn bytes_f64(mut v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{v:.0} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A duration in nanoseconds for people: `850ns`, `12.3µs`, `4.5ms`, `1.20s`.
pub(crate) fn nanos(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

/// A whole number with thousands separators: `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate for a progress line: `9,911/s` (whole units, separators).
pub(crate) fn rate(per_sec: f64) -> String {
    // A float-to-integer `as` saturates; NaN and negatives give 0.
    #[allow(clippy::cast_possible_truncation)]
    let n = if per_sec.is_finite() && per_sec > 0.0 { per_sec.round() as u64 } else { 0 };
    format!("{}/s", thousands(n))
}

/// `1 entry`, `2 entries`: `n` with the singular or plural noun.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A name read back from a file, safe to print: bytes outside printable
/// ASCII (`!`..=`~`) and the backslash are written as `\xNN`, so a name
/// can neither move the cursor nor fake a line or a column.
pub(crate) fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A message that may quote bytes read from a file, safe to print as one
/// line: control characters (newlines and escape sequences included) and
/// bidirectional-text overrides become `\u{..}` escapes; the rest, spaces
/// included, is kept.
pub(crate) fn line_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `jsonl` line of an entry, through a real client.
    fn jsonl(payload: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let client = comet::Client::open(dir.path(), comet::Config::default()).unwrap();
        client.append("t:shard:0002", &[payload]).unwrap();
        client.sync().unwrap();
        let m = client.reader(comet::ShardId::new(2).unwrap()).unwrap().read(0).unwrap();
        let mut out = Vec::new();
        entry(&mut out, Format::Jsonl, &m).unwrap();
        let line = String::from_utf8(out).unwrap();
        line.replace(&format!("\"timestamp\":{},", m.timestamp), "\"timestamp\":T,")
    }

    #[test]
    fn jsonl_lines_keep_the_documented_shape() {
        // Field order and spelling as README.md documents them.
        assert_eq!(
            jsonl(b"hi \"x\"\n"),
            "{\"shard\":2,\"entry\":0,\"timestamp\":T,\"length\":7,\"payload\":\"hi \\\"x\\\"\\n\"}\n"
        );
        assert_eq!(
            jsonl(b"\x01\\"),
            "{\"shard\":2,\"entry\":0,\"timestamp\":T,\"length\":2,\"payload\":\"\\u0001\\\\\"}\n"
        );
        // Not UTF-8: RFC 4648 base64 with padding.
        assert_eq!(
            jsonl(&[0xff, 0xfe, 0x00, b'f']),
            "{\"shard\":2,\"entry\":0,\"timestamp\":T,\"length\":4,\"payload_base64\":\"//4AZg==\"}\n"
        );
    }

    #[test]
    fn parse_time_reads_what_time_prints_and_plain_nanoseconds() {
        for ns in [1_000_000, 1_700_000_000_123_000_000, 951_782_400_000_000_000, 4_102_444_799_999_000_000] {
            assert_eq!(parse_time(&time(ns)), Ok(ns), "{}", time(ns));
        }
        assert_eq!(parse_time("1700000000123456789"), Ok(1_700_000_000_123_456_789));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.000000001Z"), Ok(1_700_000_000_000_000_001));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000_000_000_000));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000_000_000));
    }

    #[test]
    fn parse_time_refuses_impossible_and_malformed_times() {
        for bad in [
            "",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-12-31T23:59:60Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2023-11-14T22:13:20.0000000001Z",
            "23-11-14T22:13:20Z",
            "-5",
        ] {
            let e = parse_time(bad).expect_err(bad);
            assert!(e.contains("want nanoseconds"), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn times_are_utc_iso8601_with_milliseconds() {
        assert_eq!(time(0), "-");
        assert_eq!(time(1), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_700_000_000_123_000_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(time(1_700_000_000_123_999_999), "2023-11-14T22:13:20.123Z");
        assert_eq!(time(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(time(u64::MAX), "2554-07-21T23:34:33.709Z");
    }

    #[test]
    fn sizes_rates_and_plurals() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(nanos(850), "850ns");
        assert_eq!(nanos(12_345), "12.3µs");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rate(9_910.888_7), "9,911/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(0, "entry", "entries"), "0 entries");
        assert_eq!(count(2, "shard", "shards"), "2 shards");
    }

    #[test]
    fn line_safe_keeps_text_and_escapes_controls() {
        assert_eq!(line_safe("slot 3: group \"a b\" é"), "slot 3: group \"a b\" é");
        assert_eq!(line_safe("x\ny\u{1b}[31m\u{202e}"), "x\\u{a}y\\u{1b}[31m\\u{202e}");
    }

    #[test]
    fn printable_escapes_everything_but_visible_ascii() {
        assert_eq!(printable("demo-1.x"), "demo-1.x");
        assert_eq!(printable("a b\n\u{1b}[2J\\é\u{7f}"), "a\\x20b\\x0a\\x1b[2J\\x5c\\xc3\\xa9\\x7f");
    }
}
