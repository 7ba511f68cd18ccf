//! Output helpers: entry formats, JSON strings, base64, times and sizes.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

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

/// Writes one entry in `format`.
pub(crate) fn entry(w: &mut impl Write, format: Format, msg: &comet::Message) -> io::Result<()> {
    let data = msg.data();
    match format {
        Format::Text => {
            w.write_all(data)?;
            w.write_all(b"\n")
        }
        Format::Jsonl => {
            let mut line = format!(
                r#"{{"shard":{},"entry":{},"timestamp":{},"length":{},"#,
                msg.id.shard.get(),
                msg.id.entry,
                msg.timestamp,
                data.len()
            );
            match std::str::from_utf8(data) {
                Ok(s) => {
                    line.push_str(r#""payload":"#);
                    json_str(&mut line, s);
                }
                Err(_) => {
                    line.push_str(r#""payload_base64":""#);
                    base64(&mut line, data);
                    line.push('"');
                }
            }
            line.push_str("}\n");
            w.write_all(line.as_bytes())
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

/// Appends `s` as a JSON string literal.
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string literal.
pub(crate) fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    json_str(&mut out, s);
    out
}

/// Appends standard base64 (RFC 4648, with padding).
pub(crate) fn base64(out: &mut String, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

/// Appends lowercase hex.
pub(crate) fn hex(out: &mut String, data: &[u8]) {
    for b in data {
        let _ = write!(out, "{b:02x}");
    }
}

/// Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC); `-` for 0.
pub(crate) fn time(ns: u64) -> String {
    if ns == 0 {
        return "-".into();
    }
    let secs = ns / 1_000_000_000;
    let millis = ns / 1_000_000 % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses a time given on the command line: nanoseconds since the Unix
/// epoch, or UTC as `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what [`time`]
/// prints).
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    let bad = || format!("invalid time {s:?}: want nanoseconds since the epoch or YYYY-MM-DDTHH:MM:SS[.fff]Z");
    let rest = s.strip_suffix(['Z', 'z']).ok_or_else(bad)?;
    let (date, clock) = rest.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let (clock, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let num = |part: &str, len: usize| -> Result<i64, String> {
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    let ([y, mo, da], [h, mi, se]) = (d.as_slice(), c.as_slice()) else { return Err(bad()) };
    let (year, month, day) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    let (hour, min, sec) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse::<i64>().map_err(|_| bad())? };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec;
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(u64::try_from(nanos).ok()?))
        .ok_or_else(bad)
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

/// Matches `name` against a glob with `*` (any run) and `?` (one byte).
pub(crate) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && glob(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, want) in cases {
            let mut s = String::new();
            base64(&mut s, raw.as_bytes());
            assert_eq!(s, want, "{raw:?}");
        }
        let mut s = String::new();
        base64(&mut s, &[0xff, 0xfe, 0x00]);
        assert_eq!(s, "//4A");
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
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
        for bad in
            ["", "yesterday", "2023-11-14", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "1969-12-31T23:59:59Z"]
        {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        for bad in ["2023-11-14T22:13:20.0000000001Z", "23-11-14T22:13:20Z", "2023-11-14T25:00:00Z", "-5"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_are_utc_iso8601() {
        assert_eq!(time(0), "-");
        assert_eq!(time(1), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_700_000_000_123_000_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(time(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn globs() {
        assert!(glob(b"*", b"0003"));
        assert!(glob(b"000?", b"0003"));
        assert!(glob(b"00*3", b"0003"));
        assert!(!glob(b"001*", b"0003"));
        assert!(!glob(b"000", b"0003"));
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(nanos(850), "850ns");
        assert_eq!(nanos(12_345), "12.3µs");
    }
}
