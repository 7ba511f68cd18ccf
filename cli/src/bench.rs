//! `comet bench`: append throughput and latency percentiles, then a read.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use comet::{Client, Config, ShardId};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::CmdResult;
use crate::demo::Rng;
use crate::out;

/// The `p`-th percentile (0..=1000, per mille) of sorted samples.
fn pct(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Lines appended and trained on per shard before a `--dict` run.
const PRIME: usize = 1000;

/// What `comet bench` appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payloads {
    /// Incompressible bytes of this size (stored raw).
    Random(usize),
    /// JSON log lines of 250-450 bytes, each compressed on its own.
    JsonLines,
    /// The same lines, compressed with a per-shard zstd dictionary.
    JsonLinesDict,
}

/// A JSON log line of 250-450 bytes (varied fields, shared shape).
fn json_line(rng: &mut Rng, i: u64) -> Vec<u8> {
    const LEVELS: [&str; 4] = ["info", "warn", "debug", "error"];
    const PATHS: [&str; 5] = ["/api/v1/items", "/api/v1/users/login", "/healthz", "/api/v2/orders/search", "/metrics"];
    const SERVICES: [&str; 5] = ["checkout", "auth", "search", "billing", "gateway"];
    let r = rng.next();
    let pad = usize::try_from(r % 120).unwrap_or(0);
    format!(
        r#"{{"ts":"2026-12-03T21:{:02}:{:02}.{:06}Z","level":"{}","service":"{}","host":"node-{}","trace_id":"{:016x}","msg":"request served","method":"GET","path":"{}","status":{},"duration_ms":{},"bytes":{},"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","note":"{}"}}"#,
        i / 60 % 60,
        i % 60,
        r % 1_000_000,
        LEVELS[(r >> 8) as usize % 4],
        SERVICES[(r >> 12) as usize % 5],
        (r >> 16) % 32,
        rng.next(),
        PATHS[(r >> 20) as usize % 5],
        [200, 200, 201, 404, 500][(r >> 24) as usize % 5],
        (r >> 28) % 900,
        (r >> 32) % 100_000,
        "abcdefghij".repeat(pad / 10 + 1).get(..pad).unwrap_or("")
    )
    .into_bytes()
}

/// Runs the benchmark.
pub(crate) fn run(dir: Option<PathBuf>, entries: u64, payloads: Payloads, batch: u64, shards: u32) -> CmdResult {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut config = Config::default();
    config.retention.cleanup_interval = None;
    match payloads {
        Payloads::Random(_) => {}
        Payloads::JsonLines => config.compression.min_compress_size = 256,
        Payloads::JsonLinesDict => config.compression.dictionary = true,
    }
    let client = Client::open(&dir, config)?;
    let ids: Vec<ShardId> = (0..shards).filter_map(ShardId::new).collect();
    let batch_len = usize::try_from(batch).map_err(|_| "batch too large")?;
    let mut rng = Rng::new(42);
    let owned: Vec<Vec<u8>> = match payloads {
        // Incompressible payloads: one pseudo-random pool, entries are windows.
        Payloads::Random(size) => {
            let pool: Vec<u8> = (0..size + 4096).map(|_| rng.next().to_le_bytes()[0]).collect();
            (0..batch_len).map(|i| pool[i * 31 % 4096..i * 31 % 4096 + size].to_vec()).collect()
        }
        // Lines: a pool of 4096, cycled through batch by batch.
        Payloads::JsonLines | Payloads::JsonLinesDict => (0..4096).map(|i| json_line(&mut rng, i)).collect(),
    };
    let size = owned.iter().map(Vec::len).sum::<usize>() / owned.len().max(1);
    let pool: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let next_batch = |k: usize, n: usize| -> Vec<&[u8]> { (0..n).map(|i| pool[(k * n + i) % pool.len()]).collect() };

    if payloads == Payloads::JsonLinesDict {
        // Not timed: each shard's first PRIME lines, stored raw, and its
        // dictionary trained on them (by the sync when the lines reach
        // `dict_sample_bytes`, else here: one dictionary either way).
        for &shard in &ids {
            client.append_shard(shard, &pool[..PRIME])?;
        }
        client.sync()?;
        for &shard in &ids {
            if client.shard_stats(shard)?.dictionaries.is_empty() {
                client.train_dictionary(shard)?;
            }
        }
    }
    let bar = ProgressBar::new(entries);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} entries {rate} eta {eta}")
            .map_err(|e| e.to_string())?
            .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&out::rate(s.per_sec()));
            }),
    );
    let mut latencies = Vec::with_capacity(usize::try_from(entries / batch + 1).unwrap_or(0).min(1 << 20));
    let mut done = 0u64;
    let mut k = 0usize;
    let start = Instant::now();
    while done < entries {
        let n = usize::try_from((entries - done).min(batch)).unwrap_or(batch_len);
        let shard = ids[k % ids.len()];
        k += 1;
        let batch_payloads = next_batch(k, n);
        let t = Instant::now();
        client.append_shard(shard, &batch_payloads)?;
        latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        done += n as u64;
        bar.inc(n as u64);
    }
    let appended = start.elapsed();
    let t = Instant::now();
    client.sync()?;
    let sync = t.elapsed();
    let total = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // Read everything back.
    let t = Instant::now();
    let mut read = 0u64;
    let mut buf = Vec::with_capacity(1024);
    for &shard in &ids {
        let mut reader = client.reader(shard)?;
        let (first, end) = reader.bounds()?;
        let mut at = first;
        while at < end {
            buf.clear();
            let got = reader.read_batch(at, 1024, &mut buf)?;
            read += got as u64;
            at += got as u64;
            if got == 0 {
                break;
            }
        }
    }
    let read_secs = t.elapsed().as_secs_f64();
    let stats = client.stats()?;
    client.close()?;

    latencies.sort_unstable();
    let bytes = stats.counters.get(comet::Counter::RawBytes);
    let stdout = io::stdout();
    let mut w = stdout.lock();
    writeln!(
        w,
        "bench      {} of {}{size} B in batches of {batch} over {} in {}",
        out::count(entries, "entry", "entries"),
        match payloads {
            Payloads::Random(_) => "",
            Payloads::JsonLines => "JSON lines (zstd each) of ~",
            Payloads::JsonLinesDict => "JSON lines (zstd + dictionary) of ~",
        },
        out::count(u64::from(shards), "shard", "shards"),
        dir.display()
    )?;
    let secs = appended.as_secs_f64();
    writeln!(
        w,
        "append     {secs:.3}s: {:.0} entries/s, {}/s",
        rate(entries, secs),
        out::bytes_f64(rate(bytes, secs))
    )?;
    writeln!(
        w,
        "latency    per append call of {batch}: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        out::nanos(pct(&latencies, 500)),
        out::nanos(pct(&latencies, 900)),
        out::nanos(pct(&latencies, 990)),
        out::nanos(pct(&latencies, 999)),
        out::nanos(latencies.last().copied().unwrap_or(0))
    )?;
    let per_entry = |p: usize| pct(&latencies, p) / batch.max(1);
    writeln!(w, "per entry  p50 {}  p99 {}", out::nanos(per_entry(500)), out::nanos(per_entry(990)))?;
    writeln!(
        w,
        "sync       {} (durable throughput {:.0} entries/s)",
        out::nanos(u64::try_from(sync.as_nanos()).unwrap_or(u64::MAX)),
        rate(entries, total)
    )?;
    writeln!(
        w,
        "read       {} in {read_secs:.3}s: {:.0} entries/s",
        out::count(read, "entry", "entries"),
        rate(read, read_secs)
    )?;
    writeln!(
        w,
        "stored     {} in {}; compression ratio {:.2} (raw / stored payload bytes)",
        out::bytes(stats.bytes),
        out::count(stats.shards.iter().map(|s| s.segments).sum::<u64>(), "segment", "segments"),
        stats.compression_ratio
    )?;
    w.flush()?;
    Ok(0)
}
