//! The Go package's legacy `offsets.bin`, read once to migrate its groups
//! into `offsets.state`.

use crate::state::offsets::validate_group;
use crate::wire::{WireError, le};

/// Legacy Go offsets file, migrated on open.
pub const LEGACY_OFFSETS_FILE: &str = "offsets.bin";

/// Parses a legacy `offsets.bin`: `[u8 version=1][u32 LE count]` then
/// `count` x `[u8 len][name][u64 LE offset]`; stops at the first truncated
/// or invalid record. Calls `visit(name, offset)` for each valid record.
pub fn parse_legacy_offsets(bytes: &[u8], mut visit: impl FnMut(&str, u64)) -> Result<(), WireError> {
    if bytes.len() < 5 {
        return Err(WireError::Truncated { needed: 5, available: bytes.len() as u64 });
    }
    if bytes[0] != 1 {
        return Err(WireError::UnsupportedVersion(u32::from(bytes[0])));
    }
    let count = le::u32_at(bytes, 1).unwrap_or(0);
    let mut at = 5usize;
    for _ in 0..count {
        let Some(&len) = bytes.get(at) else { break };
        let start = at + 1;
        let end = start + usize::from(len);
        let (Some(name), Some(off)) = (bytes.get(start..end), le::u64_at(bytes, end)) else {
            break;
        };
        at = end + 8;
        if let Ok(name) = core::str::from_utf8(name)
            && validate_group(name).is_ok()
        {
            visit(name, off);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn legacy_offsets_parse() {
        let mut b = vec![1u8, 2, 0, 0, 0];
        b.push(3);
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&7u64.to_le_bytes());
        b.push(2);
        b.extend_from_slice(b"de"); // truncated offset
        let mut got = vec::Vec::new();
        parse_legacy_offsets(&b, |n, o| got.push((std::string::String::from(n), o))).unwrap();
        assert_eq!(got, [("abc".into(), 7)]);
        assert!(parse_legacy_offsets(&[2, 0, 0, 0, 0], |_, _| {}).is_err());
    }
}
