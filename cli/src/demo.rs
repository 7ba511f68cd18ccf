//! `comet demo`: the whole life of a log on an edge device, in one run.

use std::cell::Cell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use comet::{Client, Config, Consumer, Flow, ProcessOptions, ShardCount, Shards, pick_shard_stream};

use crate::CmdResult;
use crate::out;

/// A small deterministic PRNG (xorshift64*), so every run writes the same mix.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const SERVICES: [&str; 6] = ["checkout", "inventory", "gateway", "auth", "sensor-agent", "uplink"];
const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
const MESSAGES: [&str; 5] =
    ["request served", "cache miss", "retrying upstream call", "sensor reading out of range", "batch flushed"];
const SPANS: [&str; 5] = ["http.request", "db.query", "cache.get", "mqtt.publish", "fs.fsync"];
const METRICS: [&str; 5] = ["cpu.usage", "mem.rss", "disk.io_wait", "net.tx_bytes", "temp.celsius"];

/// Bytes retention keeps per shard in the demo.
const RETAIN: u64 = 256 << 10;

/// What kind of event, for the summary.
#[derive(Clone, Copy)]
enum Kind {
    Log,
    Metric,
    Span,
    Large,
}

/// One event and the key that routes it (service and host).
fn event(i: u64, rng: &mut Rng) -> (Kind, String, Vec<u8>) {
    let host = format!("edge-{:02}", rng.below(24));
    let service = rng.pick(&SERVICES);
    let ts = 1_700_000_000_000_000_000u64 + i * 1_000_000;
    let trace = rng.next();
    let roll = rng.below(100);
    let key = format!("{service}/{host}");
    let (kind, body) = if roll < 50 {
        let level = rng.pick(&LEVELS);
        let msg = rng.pick(&MESSAGES);
        let latency = rng.below(900);
        (
            Kind::Log,
            format!(
                r#"{{"ts":{ts},"level":"{level}","service":"{service}","host":"{host}","msg":"{msg}","trace_id":"{trace:016x}","latency_ms":{latency}}}"#
            ),
        )
    } else if roll < 80 {
        let metric = rng.pick(&METRICS);
        let v = rng.below(100_000);
        (Kind::Metric, format!("{metric},host={host},service={service} value={}.{:03} {ts}", v / 1000, v % 1000))
    } else if roll < 98 {
        let span = rng.pick(&SPANS);
        (
            Kind::Span,
            format!(
                r#"{{"trace_id":"{trace:016x}","span_id":"{:08x}","parent_id":"{:08x}","name":"{span}","service":"{service}","start_ns":{ts},"duration_us":{},"attrs":{{"host":"{host}","rows":{},"status":"ok"}}}}"#,
                rng.next() & 0xffff_ffff,
                rng.next() & 0xffff_ffff,
                rng.below(250_000),
                rng.below(500)
            ),
        )
    } else {
        // An error log with a stack trace: large enough to be compressed.
        let mut trace_text = String::new();
        for depth in 0..(60 + rng.below(60)) {
            trace_text.push_str(&format!(
                "\\n    at {service}::handlers::process_batch::{{closure}} (src/handlers/batch.rs:{})#{depth}",
                100 + depth * 7
            ));
        }
        (
            Kind::Large,
            format!(
                r#"{{"ts":{ts},"level":"error","service":"{service}","host":"{host}","msg":"panic in worker","trace_id":"{trace:016x}","stack":"{trace_text}"}}"#
            ),
        )
    };
    (kind, key, body.into_bytes())
}

/// Segment files and bytes under `dir`.
fn files(dir: &Path) -> io::Result<(u64, u64, u64)> {
    let (mut shards, mut segments, mut bytes) = (0, 0, 0);
    for shard in std::fs::read_dir(dir)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        shards += 1;
        for f in std::fs::read_dir(shard.path())? {
            let f = f?;
            let meta = f.metadata()?;
            bytes += meta.len();
            if f.file_name().to_string_lossy().ends_with(".comet") {
                segments += 1;
            }
        }
    }
    Ok((shards, segments, bytes))
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Runs the demo in `dir` (a temporary directory if `None`).
pub(crate) fn run(dir: Option<PathBuf>, n: u64) -> CmdResult {
    let tmp;
    let (dir, kept) = match dir {
        Some(d) => (d, true),
        None => {
            tmp = tempfile::tempdir()?;
            (tmp.path().to_path_buf(), false)
        }
    };
    // Small segments and a per-shard cap, so retention has work to do.
    let mut config = Config::default();
    config.storage.max_file_size = 64 << 10;
    config.retention.max_shard_size = Some(RETAIN);
    config.retention.cleanup_interval = None;
    let client = Client::open(&dir, config)?;
    let shards = ShardCount::new(16).ok_or("shard count")?;
    let stdout = io::stdout();
    let mut w = stdout.lock();
    let how = if kept { "kept" } else { "temporary, removed on exit" };
    writeln!(w, "dir        {} ({how})", dir.display())?;

    // 1. write
    let mut rng = Rng::new(0x00C0_FFEE);
    let mut counts = [0u64; 4];
    let mut raw = 0u64;
    // Generate in chunks and time only the appends and the final sync, so
    // the figures are the log's, not the generator's.
    let mut elapsed = Duration::ZERO;
    let mut events = Vec::with_capacity(10_000);
    let mut i = 0;
    while i < n {
        events.clear();
        while i < n && events.len() < 10_000 {
            let (kind, key, body) = event(i, &mut rng);
            counts[kind as usize] += 1;
            raw += body.len() as u64;
            events.push((pick_shard_stream("obs:v1", key.as_bytes(), shards)?, body));
            i += 1;
        }
        let start = Instant::now();
        for (stream, body) in &events {
            client.append(stream, &[body])?;
        }
        elapsed += start.elapsed();
    }
    let start = Instant::now();
    client.sync()?;
    let wrote = (elapsed + start.elapsed()).as_secs_f64();
    let stats = client.stats()?;
    let c = &stats.counters;
    let stored = c.get(comet::Counter::StoredBytes);
    writeln!(
        w,
        "wrote      {n} events (logs {}, metrics {}, spans {}, large error logs {}) to {} shards in {wrote:.2}s: {:.0} events/s, {}/s",
        counts[Kind::Log as usize],
        counts[Kind::Metric as usize],
        counts[Kind::Span as usize],
        counts[Kind::Large as usize],
        stats.shards.len(),
        per_sec(n, wrote),
        out::bytes_f64(per_sec(raw, wrote))
    )?;
    writeln!(
        w,
        "bytes      raw {} ({raw}), stored {} ({stored}); compression ratio {:.2}, {} entries compressed",
        out::bytes(raw),
        out::bytes(stored),
        stats.compression_ratio,
        c.get(comet::Counter::CompressedEntries)
    )?;

    // 2. consume with a group
    let mut consumer = Consumer::new(&client, "demo")?;
    let seen = Cell::new((0u64, 0u64));
    let start = Instant::now();
    let summary = consumer.process(
        |batch| {
            let (k, b) = seen.get();
            seen.set((k + batch.len() as u64, b + batch.iter().map(|m| m.data().len() as u64).sum::<u64>()));
            Ok(Flow::Continue)
        },
        ProcessOptions { batch_size: 500, shards: Shards::All, until_idle: true, ..ProcessOptions::default() },
    )?;
    let took = start.elapsed().as_secs_f64();
    let (consumed, consumed_bytes) = seen.get();
    writeln!(
        w,
        "consumed   {consumed} events ({}) as group \"demo\" in {} batches, {took:.2}s: {:.0} events/s",
        out::bytes(consumed_bytes),
        summary.batches,
        per_sec(consumed, took)
    )?;
    let mut lag = 0;
    for shard in client.shards()? {
        lag += consumer.lag(shard)?;
    }
    writeln!(w, "lag        {lag} entries behind across {} shards", stats.shards.len())?;

    // 3. retention
    let r = client.run_retention_now()?;
    let entries_deleted: u64 = r.shards.iter().map(|s| s.entries_deleted).sum();
    writeln!(
        w,
        "retention  max {} per shard: deleted {} segments ({entries_deleted} acked entries), reclaimed {}",
        out::bytes(RETAIN),
        r.segments_deleted(),
        out::bytes(r.bytes_reclaimed())
    )?;
    client.close()?;
    let (shard_dirs, segments, disk) = files(&dir)?;
    writeln!(w, "files      {shard_dirs} shard directories, {segments} segment files, {} on disk", out::bytes(disk))?;
    let client = Client::open_read_only(&dir, Config::default())?;
    let after = client.stats()?;
    writeln!(w, "entries    {} retained of {n} written", after.entries)?;
    w.flush()?;
    Ok(0)
}
