//! `append`, `read`, `tail` and `consume`.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use comet::{Client, Config, Consumer, Message, NameError, Reader, SeekTo, ShardId, ShardPattern, parse_stream};
use comet_core::platform::go::parse_go_segment_file_name;

use crate::out::{self, count as n_of, require_dir};
use crate::{CmdResult, Format};

/// Entries read per batch.
const BATCH: usize = 1000;

/// The shard a stream name selects; the error says how to name one.
pub(crate) fn stream_shard(stream: &str) -> Result<ShardId, String> {
    parse_stream(stream).map_err(|e| {
        let hint = match e {
            NameError::MissingShard | NameError::BadShardDigits => {
                let prefix = stream.split(':').next().filter(|p| !p.is_empty()).unwrap_or("events");
                let prefix = if parse_stream(&format!("{prefix}:shard:0000")).is_ok() { prefix } else { "events" };
                format!(
                    "; a stream name ends with its shard number, which alone selects the shard: \
                     use e.g. \"{prefix}:shard:0000\" (shards 0 to 9999)"
                )
            }
            _ => String::new(),
        };
        format!("invalid stream name {stream:?}: {e}{hint}")
    })
}

/// Appends stdin lines to `stream`.
pub(crate) fn append(dir: &Path, stream: &str, sync: bool, sync_every: Option<u64>) -> CmdResult {
    let shard = stream_shard(stream)?;
    let mut config = Config::default();
    config.storage.durable_appends = sync;
    config.retention.cleanup_interval = None;
    let client = Client::open(dir, config)?;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut w = stdout.lock();
    let (mut count, mut bytes, mut first, mut next) = (0u64, 0u64, None, 0u64);
    let mut line = Vec::new();
    let mut run = || -> CmdResult {
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let ids = client.append_shard(shard, &[&line])?;
            first.get_or_insert(ids.entries.start);
            next = ids.entries.end;
            count += 1;
            bytes += line.len() as u64;
            if let Some(n) = sync_every
                && count % n == 0
            {
                client.sync_shard(shard)?;
                writeln!(w, "synced {}", client.durable_len(shard)?)?;
                w.flush()?;
            }
        }
        client.sync()?;
        Ok(0)
    };
    if let Err(e) = run() {
        // Say what stands, so that a retry does not duplicate entries that
        // are already durable (or give up on ones that are not).
        let durable = client.durable_len(shard).map_or_else(|e| format!("unknown ({})", e.chain()), |d| d.to_string());
        match first {
            Some(a) => writeln!(
                w,
                "stopped: appended {} to shard {shard} as entries {a}..{next} before the error; {durable} durable",
                n_of(count, "entry", "entries")
            )?,
            None => writeln!(w, "stopped: appended 0 entries to shard {shard}; {durable} durable")?,
        }
        w.flush()?;
        return Err(e);
    }
    let durable = client.durable_len(shard)?;
    client.close()?;
    match first {
        Some(a) => writeln!(
            w,
            "appended {} ({}) to shard {shard} as entries {a}..{next}; {durable} durable",
            n_of(count, "entry", "entries"),
            n_of(bytes, "byte", "bytes")
        )?,
        None => writeln!(w, "appended 0 entries to shard {shard}; {durable} durable")?,
    }
    w.flush()?;
    Ok(0)
}

/// Fails if `shard` of `dir` was written by the Go package (readers would
/// see it as empty until it is imported).
fn check_native(dir: &Path, shard: ShardId) -> Result<(), Box<dyn std::error::Error>> {
    let Ok(files) = std::fs::read_dir(dir.join(format!("shard-{shard}"))) else { return Ok(()) };
    for f in files.flatten() {
        if f.file_name().to_str().and_then(parse_go_segment_file_name).is_some() {
            return Err(format!("shard {shard} was written by the Go comet package; run `comet import` first").into());
        }
    }
    Ok(())
}

/// Opens `dir` read-only and finds the stream's shard, which must exist
/// unless `may_be_missing`.
fn open_stream(
    dir: &Path,
    stream: &str,
    may_be_missing: bool,
) -> Result<(Client, ShardId), Box<dyn std::error::Error>> {
    let shard = stream_shard(stream)?;
    require_dir(dir)?;
    let client = Client::open_read_only(dir, Config::default())?;
    if !may_be_missing && !client.shards()?.contains(&shard) {
        return Err(format!("shard {shard} does not exist in {}", dir.display()).into());
    }
    check_native(dir, shard)?;
    Ok((client, shard))
}

/// Prints entries `from..to` of a reader.
fn print_range(
    reader: &mut Reader,
    from: u64,
    to: u64,
    format: Format,
    w: &mut impl Write,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    let mut at = from;
    while at < to {
        batch.clear();
        let want = usize::try_from(to - at).unwrap_or(BATCH).min(BATCH);
        let r = reader.read_batch(at, want, &mut batch);
        for m in &batch {
            out::entry(w, format, m)?;
        }
        at += batch.len() as u64;
        r?;
        if batch.is_empty() {
            break;
        }
    }
    Ok(at - from)
}

/// Prints durable entries of `stream`.
pub(crate) fn read(dir: &Path, stream: &str, from: Option<u64>, count: Option<u64>, format: Format) -> CmdResult {
    let (client, shard) = open_stream(dir, stream, false)?;
    let mut reader = client.reader(shard)?;
    let (first, end) = reader.bounds()?;
    let start = from.unwrap_or(first);
    let to = count.map_or(end, |c| start.saturating_add(c).min(end));
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let r = print_range(&mut reader, start, to, format, &mut w);
    w.flush()?;
    r?;
    // Say why nothing came out, on stderr (stdout stays the entries).
    if start >= end && count != Some(0) {
        let what = if first == end {
            format!("shard {shard} holds no durable entries")
        } else {
            format!("shard {shard} holds entries {first}..{end}")
        };
        let from = from.map_or(String::new(), |f| format!(", --from {f} is past the end"));
        let _ = writeln!(io::stderr(), "comet: nothing to read: {what}{from}");
    }
    Ok(0)
}

/// Prints the last `lines` entries, then follows new ones.
pub(crate) fn tail(dir: &Path, stream: &str, follow: bool, lines: u64, format: Format) -> CmdResult {
    let (client, shard) = open_stream(dir, stream, follow)?;
    let mut reader = client.reader(shard)?;
    let (first, end) = reader.bounds()?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let mut next = end.saturating_sub(lines).max(first);
    print_range(&mut reader, next, end, format, &mut w)?;
    w.flush()?;
    next = next.max(end);
    if !follow {
        return Ok(0);
    }
    loop {
        if !client.wait_for(shard, next, Duration::from_secs(1))? {
            continue;
        }
        let (first, end) = reader.bounds()?;
        // Retention may have deleted entries we had not printed yet.
        next = next.max(first);
        print_range(&mut reader, next, end, format, &mut w)?;
        w.flush()?;
        next = next.max(end);
    }
}

/// The shards `pattern` selects among those in `client`.
fn select_shards(client: &Client, pattern: Option<&str>) -> Result<Vec<ShardId>, Box<dyn std::error::Error>> {
    let all = client.shards()?;
    let Some(p) = pattern else { return Ok(all) };
    let pattern = ShardPattern::parse(p)?;
    Ok(all.into_iter().filter(|&s| pattern.matches(s)).collect())
}

/// Reads as a consumer group.
pub(crate) fn consume(
    dir: &Path,
    group: &str,
    pattern: Option<&str>,
    count: Option<u64>,
    no_ack: bool,
    format: Format,
) -> CmdResult {
    require_dir(dir)?;
    let client = Client::open_read_only(dir, Config::default())?;
    let mut consumer = Consumer::new(&client, group)?;
    let shards = select_shards(&client, pattern)?;
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let mut left = count.unwrap_or(u64::MAX);
    let mut read = 0u64;
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    for &shard in &shards {
        check_native(dir, shard)?;
    }
    for &shard in &shards {
        let mut next = consumer.offset(shard)?;
        let mut reader = client.reader(shard)?;
        let (_, end) = reader.bounds()?;
        while left > 0 && next < end {
            batch.clear();
            let want = usize::try_from(left.min(end - next)).unwrap_or(BATCH).min(BATCH);
            let r = reader.read_batch(next, want, &mut batch);
            for m in &batch {
                out::entry(&mut w, format, m)?;
            }
            let n = batch.len() as u64;
            if n > 0 && !no_ack {
                w.flush()?;
                consumer.ack_range(shard, next..next + n)?;
            }
            next += n;
            left -= n;
            read += n;
            if let Err(e) = r {
                return Err(match e {
                    comet::Error::Lost { end, .. } => format!(
                        "{e}; the group {group:?} stops here: move it past the lost entries \
                         with `comet seek {dir} --group {group} --entry {end}`",
                        dir = dir.display()
                    )
                    .into(),
                    comet::Error::Damaged { .. } => format!(
                        "{e}; the group {group:?} stops here: run `comet repair {dir}` to record the damaged \
                         entries as lost, then move the group past them with `comet seek`",
                        dir = dir.display()
                    )
                    .into(),
                    e => e.into(),
                });
            }
            if n == 0 {
                break;
            }
        }
    }
    w.flush()?;
    let mut lag = 0u64;
    for &shard in &shards {
        lag += consumer.lag(shard)?;
    }
    let acked = if no_ack { "not acked" } else { "acked" };
    let _ = writeln!(
        io::stderr(),
        "consumed {} from {} as group \"{}\" ({acked}); lag {lag}",
        n_of(read, "entry", "entries"),
        n_of(shards.len() as u64, "shard", "shards"),
        out::printable(group)
    );
    Ok(0)
}

/// Moves a consumer group's offsets on the selected shards.
pub(crate) fn seek(dir: &Path, group: &str, pattern: Option<&str>, to: SeekTo) -> CmdResult {
    require_dir(dir)?;
    let client = Client::open_read_only(dir, Config::default())?;
    let mut consumer = Consumer::new(&client, group)?;
    let shards = select_shards(&client, pattern)?;
    if shards.is_empty() {
        return Err(format!("no shard in {} matches {:?}", dir.display(), pattern.unwrap_or("*")).into());
    }
    for &shard in &shards {
        check_native(dir, shard)?;
    }
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    for &shard in &shards {
        let old = consumer.offset(shard)?;
        let new = consumer.seek(shard, to)?;
        let (first, end) = client.reader(shard)?.bounds()?;
        writeln!(w, "shard {shard}: group {group:?} offset {old} -> {new} (retained {first}..{end})")?;
    }
    w.flush()?;
    Ok(0)
}
