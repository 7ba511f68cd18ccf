//! `comet demo`: the whole life of a log on an edge device, in one run.

use std::cell::Cell;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use comet::{Client, Config, Consumer, Flow, MessageId, ProcessOptions, ShardCount, Shards, pick_shard_stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

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

/// Segment size in the demo (the default is 256 MiB).
const SEGMENT: u64 = 64 << 10;

/// The stream prefix the demo writes.
const PREFIX: &str = "obs:v1";

/// How long a phase runs before its progress bar appears.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// Longest sample printed: logs, metrics and spans whole, stack traces cut.
const SAMPLE_WIDTH: usize = 320;

/// A progress bar on stderr that appears only on a terminal and only once
/// its phase has run for [`PROGRESS_AFTER`], so short runs and pipes stay
/// quiet.
struct Progress {
    bar: ProgressBar,
    start: Instant,
    terminal: bool,
    shown: bool,
}

impl Progress {
    /// A bar for `len` units of `what` (e.g. "events written").
    fn new(len: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template(&format!("{{bar:40}} {{human_pos}}/{{human_len}} {what} {{rate}} eta {{eta}}"))
        {
            bar.set_style(style.with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&out::rate(s.per_sec()));
            }));
        }
        Progress { bar, start: Instant::now(), terminal: io::stderr().is_terminal(), shown: false }
    }

    /// Moves the bar to `pos`, showing it once it is due.
    fn set(&mut self, pos: u64) {
        self.bar.set_position(pos);
        if !self.shown && show_progress(self.terminal, self.start.elapsed()) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    /// Removes the bar.
    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Whether a progress bar is due: on a terminal, after [`PROGRESS_AFTER`].
fn show_progress(terminal: bool, elapsed: Duration) -> bool {
    terminal && elapsed >= PROGRESS_AFTER
}

/// `s` cut to `width` characters, with `…` if it was longer.
fn clip(s: &str, width: usize) -> String {
    match s.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

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
    config.storage.max_file_size = SEGMENT;
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
    // The first event of each kind, to show what was written.
    let mut samples: [Option<MessageId>; 4] = [None; 4];
    let mut progress = Progress::new(n, "events written");
    let mut i = 0;
    while i < n {
        events.clear();
        while i < n && events.len() < 10_000 {
            let (kind, key, body) = event(i, &mut rng);
            counts[kind as usize] += 1;
            raw += body.len() as u64;
            events.push((kind, pick_shard_stream(PREFIX, key.as_bytes(), shards)?, body));
            i += 1;
        }
        let start = Instant::now();
        for (kind, stream, body) in &events {
            let ids = client.append(stream, &[body])?;
            if samples[*kind as usize].is_none() {
                samples[*kind as usize] = Some(MessageId { shard: ids.shard, entry: ids.entries.start });
            }
        }
        elapsed += start.elapsed();
        progress.set(i);
    }
    let start = Instant::now();
    client.sync()?;
    let wrote = (elapsed + start.elapsed()).as_secs_f64();
    progress.finish();
    let stats = client.stats()?;
    let c = &stats.counters;
    let stored = c.get(comet::Counter::StoredBytes);
    writeln!(
        w,
        "wrote      {} (logs {}, metrics {}, spans {}, large error logs {}) to {} in {wrote:.2}s: {:.0} events/s, {}/s",
        out::count(n, "event", "events"),
        counts[Kind::Log as usize],
        counts[Kind::Metric as usize],
        counts[Kind::Span as usize],
        counts[Kind::Large as usize],
        out::count(stats.shards.len() as u64, "shard", "shards"),
        per_sec(n, wrote),
        out::bytes_f64(per_sec(raw, wrote))
    )?;
    writeln!(
        w,
        "bytes      raw {} ({raw}), stored {} ({stored}); compression ratio {:.2}, {} compressed",
        out::bytes(raw),
        out::bytes(stored),
        stats.compression_ratio,
        out::count(c.get(comet::Counter::CompressedEntries), "entry", "entries")
    )?;

    // What an event looks like, read back from the log.
    if samples.iter().any(Option::is_some) {
        writeln!(w, "events     one of each kind, read back as stored (shard/entry  payload):")?;
    }
    for id in samples.iter().flatten() {
        let msg = client.reader(id.shard)?.read(id.entry)?;
        let text = String::from_utf8_lossy(msg.data());
        writeln!(w, "             {}/{:<6} {}", id.shard, id.entry, clip(&text, SAMPLE_WIDTH))?;
    }

    // 2. consume with a group
    let mut consumer = Consumer::new(&client, "demo")?;
    let seen = Cell::new((0u64, 0u64));
    let progress = std::cell::RefCell::new(Progress::new(n, "events consumed"));
    let start = Instant::now();
    let summary = consumer.process(
        |batch| {
            let (k, b) = seen.get();
            let k = k + batch.len() as u64;
            seen.set((k, b + batch.iter().map(|m| m.data().len() as u64).sum::<u64>()));
            progress.borrow_mut().set(k);
            Ok(Flow::Continue)
        },
        ProcessOptions { batch_size: 500, shards: Shards::All, until_idle: true, ..ProcessOptions::default() },
    )?;
    progress.into_inner().finish();
    let took = start.elapsed().as_secs_f64();
    let (consumed, consumed_bytes) = seen.get();
    writeln!(
        w,
        "consumed   {} ({}) as group \"demo\" in {}, {took:.2}s: {:.0} events/s",
        out::count(consumed, "event", "events"),
        out::bytes(consumed_bytes),
        out::count(summary.batches, "batch", "batches"),
        per_sec(consumed, took)
    )?;
    let mut lag = 0;
    for shard in client.shards()? {
        lag += consumer.lag(shard)?;
    }
    writeln!(
        w,
        "lag        {} behind across {}",
        out::count(lag, "entry", "entries"),
        out::count(stats.shards.len() as u64, "shard", "shards")
    )?;

    // 3. retention
    let r = client.run_retention_now()?;
    let entries_deleted: u64 = r.shards.iter().map(|s| s.entries_deleted).sum();
    writeln!(
        w,
        "retention  max {} per shard: deleted {} ({} acked), reclaimed {}",
        out::bytes(RETAIN),
        out::count(r.segments_deleted(), "segment", "segments"),
        out::count(entries_deleted, "entry", "entries"),
        out::bytes(r.bytes_reclaimed())
    )?;
    writeln!(
        w,
        "           demo settings: {} segments, {} kept per shard, so retention has work to do;",
        out::bytes(SEGMENT),
        out::bytes(RETAIN)
    )?;
    writeln!(
        w,
        "           by default comet keeps 7 days in {} segments and never deletes what a consumer group has not acked",
        out::bytes(Config::default().storage.max_file_size)
    )?;
    client.close()?;
    let (shard_dirs, segments, disk) = files(&dir)?;
    writeln!(
        w,
        "files      {}, {}, {} on disk",
        out::count(shard_dirs, "shard directory", "shard directories"),
        out::count(segments, "segment file", "segment files"),
        out::bytes(disk)
    )?;
    let client = Client::open_read_only(&dir, Config::default())?;
    let after = client.stats()?;
    let gone = n.saturating_sub(after.entries);
    let why = if gone == 0 {
        "nothing over the demo's cap yet".to_string()
    } else {
        format!("the other {gone} were consumed and acked, then deleted by the demo's cap")
    };
    writeln!(w, "entries    {} retained of {n} written ({why})", after.entries)?;
    next_steps(&mut w, &dir, kept, samples.iter().flatten().next().map(|id| id.shard))?;
    w.flush()?;
    Ok(0)
}

/// What to try next on the directory the demo wrote.
fn next_steps(w: &mut impl Write, dir: &Path, kept: bool, shard: Option<comet::ShardId>) -> io::Result<()> {
    let shown = dir.display().to_string();
    let d = if kept { shown.as_str() } else { "DIR" };
    let stream = format!("{PREFIX}:shard:{}", shard.map_or_else(|| "0000".to_string(), |s| s.to_string()));
    if kept {
        writeln!(w, "next       look at what the demo left in {d}:")?;
    } else {
        writeln!(w, "next       keep the data with `comet demo --dir DIR`, then look at it:")?;
    }
    let steps = [
        (format!("comet stat {d}"), "shards, segments, bytes, counters"),
        (format!("comet read {d} {stream} --count 3 --format jsonl"), "entries of one shard"),
        (format!("comet groups {d}"), "the demo group's offsets and lag"),
        (format!("comet verify {d}"), "check every checksum"),
        (format!("comet consume {d} --group mine --count 5"), "read as a new consumer group"),
    ];
    let width = steps.iter().map(|(cmd, _)| cmd.chars().count()).max().unwrap_or(0);
    for (cmd, what) in steps {
        writeln!(w, "             {cmd:<width$}  # {what}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_only_on_a_terminal_after_a_second() {
        assert!(!show_progress(true, Duration::from_millis(999)));
        assert!(show_progress(true, Duration::from_secs(1)));
        assert!(!show_progress(false, Duration::from_secs(60)));
    }

    #[test]
    fn samples_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("0123456789", 10), "0123456789");
        assert_eq!(clip("0123456789x", 10), "0123456789…");
        assert_eq!(clip("ééééé", 2), "éé…");
    }
}
