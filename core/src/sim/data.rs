//! Deterministic test payloads shared by the tests of every crate: bytes
//! that do not compress and JSON log lines that do.

use alloc::vec::Vec;

/// Fills `buf` with incompressible bytes: the low byte of a xorshift64
/// stream started from `seed` (any value; the same seed gives the same
/// bytes). Allocates nothing, for tests that count allocations.
pub fn fill_noise(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x.to_le_bytes()[0];
    }
}

/// `len` incompressible bytes (see [`fill_noise`]).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = alloc::vec![0u8; len];
    fill_noise(&mut out, seed);
    out
}

/// `n` newline-terminated JSON log lines (about 190 bytes each) as one
/// buffer: the shape of an edge agent's logs, repetitive enough for zstd
/// to find matches across lines.
pub fn json_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(
            alloc::format!(
                "{{\"ts\":\"2025-06-01T12:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"svc\":\"edge-agent\",\"host\":\"gw-{:03}\",\"msg\":\"sent batch\",\"batch\":{},\"bytes\":{},\"latency_ms\":{}}}\n",
                i / 60 % 60,
                i % 60,
                i * 7 % 1000,
                ["info", "warn", "debug"][i % 3],
                i % 17,
                i,
                1000 + i * 37 % 9000,
                i * 13 % 250
            )
            .as_bytes(),
        );
    }
    out
}
