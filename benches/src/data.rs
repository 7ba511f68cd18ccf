//! Payloads: ~100-byte log entries (the Go benches' size) and realistic
//! JSON log lines for the compression benches.

/// Payload size of the append and read benches (112 bytes stored with the
/// 12-byte header).
pub const ENTRY_LEN: usize = 100;

/// Stored size of one [`ENTRY_LEN`] entry: 4-byte length, 8-byte
/// timestamp, payload.
pub const STORED_LEN: usize = ENTRY_LEN + 12;

/// A small, fast, deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; slight modulo bias is fine here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Entry `i` of a stream of typical log entries, exactly [`ENTRY_LEN`]
/// bytes: a JSON object padded with spaces.
pub fn log_entry(i: usize) -> Vec<u8> {
    let mut s = format!(
        r#"{{"level":"INFO","ts":"2024-01-01T10:00:{:02}Z","msg":"request processed","req":{i},"ms":{}"#,
        i % 60,
        i % 997
    );
    s.truncate(ENTRY_LEN - 1);
    while s.len() < ENTRY_LEN - 1 {
        s.push(' ');
    }
    s.push('}');
    s.into_bytes()
}

/// `n` consecutive [`log_entry`]s.
pub fn log_entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(log_entry).collect()
}

/// A realistic structured log line (about 250-450 bytes) from one of
/// several services: varying ids, trace ids, latencies and paths, the way
/// an edge agent would buffer them. Individually compressed with zstd
/// level 3, such lines shrink to roughly 60-75 %.
pub fn json_line(i: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = 1_704_103_200_000_000_000u64 + i as u64 * 1_250_000 + rng.below(1_000_000);
    let trace = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    let span = format!("{:016x}", rng.next_u64());
    let line = match i % 5 {
        0 => format!(
            r#"{{"ts":{ts},"level":"INFO","service":"api-gateway","trace_id":"{trace}","span_id":"{span}","method":"GET","path":"/api/v1/users/{}/orders","status":200,"duration_ms":{:.2},"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","client_ip":"10.0.{}.{}","bytes":{}}}"#,
            rng.below(100_000),
            rng.below(50_000) as f64 / 100.0,
            rng.below(256),
            rng.below(256),
            rng.below(64_000)
        ),
        1 => format!(
            r#"{{"ts":{ts},"level":"ERROR","service":"payment-service","trace_id":"{trace}","span_id":"{span}","error":"payment processing failed","code":"PAYMENT_DECLINED","user_id":{},"amount":{:.2},"currency":"EUR","retry":{},"stack":"at charge (pay.rs:123)\n at handle (server.rs:456)"}}"#,
            rng.below(1_000_000),
            rng.below(100_000) as f64 / 100.0,
            rng.below(4)
        ),
        2 => format!(
            r#"{{"ts":{ts},"level":"WARN","service":"inventory","trace_id":"{trace}","span_id":"{span}","msg":"low stock","sku":"SKU-{}","stock":{},"threshold":50,"warehouse":"eu-west-{}","supplier":"ACME Corp"}}"#,
            rng.below(100_000),
            rng.below(50),
            rng.below(3)
        ),
        3 => format!(
            r#"{{"ts":{ts},"level":"INFO","service":"user-service","trace_id":"{trace}","span_id":"{span}","event":"user_login","user_id":{},"method":"oauth2","provider":"google","session":"{:016x}","country":"DE","device":"mobile","app_version":"2.3.{}"}}"#,
            rng.below(1_000_000),
            rng.next_u64(),
            rng.below(20)
        ),
        _ => format!(
            r#"{{"ts":{ts},"level":"DEBUG","service":"cache","trace_id":"{trace}","span_id":"{span}","op":"cache_miss","key":"user:profile:{}","backend":"redis","node":"cache-{}","latency_ms":{:.3},"fallback":"database","ttl_s":3600}}"#,
            rng.below(1_000_000),
            rng.below(8),
            rng.below(10_000) as f64 / 1000.0
        ),
    };
    line.into_bytes()
}

/// `n` JSON lines from a fixed seed.
pub fn json_lines(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed);
    (0..n).map(|i| json_line(i, &mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_the_bench_size() {
        for i in [0, 7, 99_999, 12_345_678_901] {
            assert_eq!(log_entry(i).len(), ENTRY_LEN);
        }
        let lines = json_lines(100);
        assert!(
            lines.iter().all(|l| (150..600).contains(&l.len())),
            "{:?}",
            lines.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}
