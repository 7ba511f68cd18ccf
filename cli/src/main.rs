//! `comet`: run, inspect and repair a comet log from the command line.
//!
//! Exit codes: 0 on success, 1 when `verify` (or the check after `repair`)
//! finds damage, 2 on usage or I/O errors. Errors go to stderr as one line
//! starting with `comet: `: the error and each of its sources, joined by
//! `: `.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

mod bench;
mod demo;
#[cfg(feature = "forward")]
mod forward;
mod inspect;
mod out;
mod rw;

/// The result of a command: the exit code on success.
type CmdResult = Result<u8, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(name = "comet", version, about = "An embedded segmented log for edge observability")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `stat` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StatFormat {
    /// A summary, a table per shard and every counter.
    Text,
    /// One JSON object (what `--json` prints).
    Json,
    /// OpenMetrics text exposition, for a Prometheus scrape.
    Prometheus,
}

/// How `read`, `tail` and `consume` print entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The payload as one line.
    Text,
    /// One JSON object per entry: shard, entry, timestamp, length and the
    /// payload (`payload` as a string if it is UTF-8, else `payload_base64`).
    Jsonl,
    /// `<entry>\t<payload as lowercase hex>`.
    Hex,
    /// `<entry>\t<payload length>\t<sha256 of the payload, hex>`.
    Sha256,
}

#[derive(Subcommand)]
enum Command {
    /// Write a realistic mix of observability events across 16 shards,
    /// consume them with a group, run a retention pass and print what
    /// happened. Without --dir, uses a temporary directory.
    Demo {
        /// Data directory to use (kept afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of events to write.
        #[arg(long, default_value_t = 100_000)]
        entries: u64,
    },
    /// Append stdin to a stream, one entry per line (newline stripped).
    /// Creates DIR if needed.
    Append {
        /// Data directory.
        dir: PathBuf,
        /// Stream name, e.g. `events:v1:shard:0003`.
        stream: String,
        /// Make every entry durable before appending the next one.
        #[arg(long)]
        sync: bool,
        /// Sync after every N entries and print `synced <durable entries>`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        sync_every: Option<u64>,
    },
    /// Print durable entries of a stream.
    Read {
        /// Data directory.
        dir: PathBuf,
        /// Stream name.
        stream: String,
        /// First entry to print (default: the first retained one).
        #[arg(long)]
        from: Option<u64>,
        /// Most entries to print (default: up to the durable end).
        #[arg(long)]
        count: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the last entries of a stream; with --follow, keep printing new
    /// durable entries as they arrive.
    Tail {
        /// Data directory.
        dir: PathBuf,
        /// Stream name.
        stream: String,
        /// Keep waiting for new entries (until interrupted).
        #[arg(short, long)]
        follow: bool,
        /// How many of the last entries to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Read entries as a consumer group from its stored offsets, acking
    /// them unless --no-ack.
    Consume {
        /// Data directory.
        dir: PathBuf,
        /// Consumer group name (1 to 47 bytes).
        #[arg(long)]
        group: String,
        /// Streams to read: one stream name, or a pattern whose shard part
        /// has `*`/`?` wildcards (e.g. `events:v1:shard:*`). Default: all
        /// shards.
        #[arg(long, value_name = "PATTERN")]
        stream: Option<String>,
        /// Most entries to read.
        #[arg(long)]
        count: Option<u64>,
        /// Do not move the group's offsets.
        #[arg(long)]
        no_ack: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Move a consumer group's offsets: replay from the start, a time or an
    /// entry, skip to the end, or step past entries lost to damage (a
    /// consumer stops at such a gap until it is moved). Prints each shard's
    /// old and new offset.
    Seek {
        /// Data directory.
        dir: PathBuf,
        /// Consumer group name (1 to 47 bytes).
        #[arg(long)]
        group: String,
        /// Streams to move: one stream name or a pattern with `*`/`?` in
        /// the shard part. Default: all shards.
        #[arg(long, value_name = "PATTERN")]
        stream: Option<String>,
        /// Where to.
        #[command(flatten)]
        to: SeekArgs,
    },
    /// List consumer groups with their offset and lag on every shard
    /// (a shard a group never acked counts from its first retained entry).
    Groups {
        /// Data directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Accept a directory without comet data (no shard-NNNN
        /// directories) instead of failing.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Shards, segments, entries, bytes, age span and metrics.
    Stat {
        /// Data directory.
        dir: PathBuf,
        /// Print JSON (same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatFormat::Text)]
        format: StatFormat,
        /// Accept a directory without comet data (no shard-NNNN
        /// directories) instead of failing.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Check every checksum, framing, manifest, durable head and offsets
    /// slot without changing anything. Exits 1 if anything is damaged.
    Verify {
        /// Data directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Accept a directory without comet data (no shard-NNNN
        /// directories) instead of failing.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Quarantine damaged segments, truncate torn tails, rebuild manifests,
    /// report each action, then verify again (exit 1 if damage remains).
    Repair {
        /// Data directory.
        dir: PathBuf,
    },
    /// Import, in place, the shards of a directory written by the Go comet
    /// package (crash-safe and resumable; every entry keeps its number).
    Import {
        /// Data directory.
        dir: PathBuf,
    },
    /// Ship durable entries to NATS JetStream as a consumer group (subject
    /// PREFIX.SHARD, Nats-Msg-Id DIR-SHARD-ENTRY), acking each after its
    /// PubAck, until SIGINT or SIGTERM.
    #[cfg(feature = "forward")]
    Forward(Box<forward::ForwardArgs>),
    /// Measure append throughput and latency, then read everything back.
    Bench {
        /// Data directory to use (kept afterwards; default: temporary).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Entries to append.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Payload size in bytes (at most 16 MiB, the default maximum entry).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=16 << 20))]
        size: u32,
        /// Entries per append call.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
        /// Shards to spread the appends over.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        shards: u32,
        /// Append 250-450-byte JSON log lines instead of incompressible
        /// bytes (`--size` is then ignored), compressed one by one with
        /// zstd (`compression.min_compress_size = 256`).
        #[arg(long)]
        json_lines: bool,
        /// With `--json-lines`: compress with a per-shard zstd dictionary
        /// instead (`compression.dictionary`), trained before the timed run
        /// on 1000 lines appended to each shard (stored raw; they count in
        /// the ratio, not in the timings).
        #[arg(long, requires = "json_lines")]
        dict: bool,
    },
}

/// Where `comet seek` moves a group (exactly one).
#[derive(Args)]
#[group(required = true, multiple = false)]
struct SeekArgs {
    /// The first retained entry (replay everything kept).
    #[arg(long)]
    start: bool,
    /// The durable end (skip everything written so far).
    #[arg(long)]
    end: bool,
    /// Entry number N (clamped to the retained range).
    #[arg(long, value_name = "N")]
    entry: Option<u64>,
    /// N entries before the durable end (replay the last N).
    #[arg(long, value_name = "N")]
    last: Option<u64>,
    /// The first entry stamped at or after TIME: nanoseconds since the
    /// epoch, or UTC as `2026-11-28T10:00:00Z`.
    #[arg(long, value_name = "TIME", value_parser = out::parse_time)]
    time: Option<u64>,
}

impl SeekArgs {
    fn target(&self) -> comet::SeekTo {
        use comet::SeekTo;
        match (self.entry, self.last, self.time) {
            (Some(n), _, _) => SeekTo::Entry(n),
            (_, Some(n), _) => SeekTo::FromEnd(n),
            (_, _, Some(t)) => SeekTo::Time(t),
            _ if self.end => SeekTo::End,
            _ => SeekTo::Start,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // `comet forward` installs its own (it caps the NATS client's level).
    #[cfg(feature = "forward")]
    let forwarding = matches!(cli.command, Command::Forward(_));
    #[cfg(not(feature = "forward"))]
    let forwarding = false;
    if !forwarding {
        debug_log_from_env();
    }
    let r = match cli.command {
        Command::Demo { dir, entries } => demo::run(dir, entries),
        Command::Append { dir, stream, sync, sync_every } => rw::append(&dir, &stream, sync, sync_every),
        Command::Read { dir, stream, from, count, format } => rw::read(&dir, &stream, from, count, format),
        Command::Tail { dir, stream, follow, lines, format } => rw::tail(&dir, &stream, follow, lines, format),
        Command::Consume { dir, group, stream, count, no_ack, format } => {
            rw::consume(&dir, &group, stream.as_deref(), count, no_ack, format)
        }
        Command::Seek { dir, group, stream, to } => rw::seek(&dir, &group, stream.as_deref(), to.target()),
        Command::Groups { dir, json, allow_empty } => inspect::groups(&dir, json, allow_empty),
        Command::Stat { dir, json, format, allow_empty } => {
            inspect::stat(&dir, if json { StatFormat::Json } else { format }, allow_empty)
        }
        Command::Verify { dir, json, allow_empty } => inspect::verify(&dir, json, allow_empty),
        Command::Repair { dir } => inspect::repair(&dir),
        Command::Import { dir } => inspect::import(&dir),
        #[cfg(feature = "forward")]
        Command::Forward(args) => forward::run(&args),
        Command::Bench { dir, entries, size, batch, shards, json_lines, dict } => {
            let payloads = match (json_lines, dict) {
                (false, _) => bench::Payloads::Random(size as usize),
                (true, false) => bench::Payloads::JsonLines,
                (true, true) => bench::Payloads::JsonLinesDict,
            };
            bench::run(dir, entries, payloads, batch, shards)
        }
    };
    match r {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`comet read ... | head`) is not an error.
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The whole chain on one line: comet's messages leave their
            // source (the OS error) to `source()`.
            let _ = writeln!(io::stderr(), "comet: {}", one_line(&comet::ErrorChain(&*e).to_string()));
            ExitCode::from(2)
        }
    }
}

/// With `COMET_DEBUG` set (to anything but empty, `0` or `false`), sends
/// `tracing` events at debug level and above — comet's, under targets
/// `comet::*` — to stderr. The library never installs a subscriber: this
/// is the application's (here the CLI's) choice.
fn debug_log_from_env() {
    let on = std::env::var("COMET_DEBUG").is_ok_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false"));
    if on {
        let filter = tracing_subscriber::EnvFilter::new("debug");
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).try_init();
    }
}

/// Prints a command-line error as one `comet: ` line with a hint to
/// `--help` (exit 2); help and version go to stdout (exit 0).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // `comet` alone: the help, as a usage error.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    // Which help to point at: the subcommand's, if one was named.
    let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    let command = match std::env::args().skip(1).find(|a| names.contains(a)) {
        Some(sub) => format!("comet {sub}"),
        None => "comet".into(),
    };
    let _ = writeln!(io::stderr(), "comet: {}", usage_line(&e.render().to_string(), &command));
    ExitCode::from(2)
}

/// Folds clap's multi-line error text into one line: the message with
/// the lines that continue it (missing arguments, possible values), its
/// tips, and which `--help` to read.
fn usage_line(text: &str, command: &str) -> String {
    let mut message = Vec::new();
    let mut tips = Vec::new();
    let mut in_message = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(m) = trimmed.strip_prefix("error: ") {
            message.push(m.to_string());
            in_message = true;
        } else if let Some(t) = trimmed.strip_prefix("tip: ") {
            tips.push(format!(" ({t})"));
            in_message = false;
        } else if trimmed.is_empty() {
            in_message = false;
        } else if in_message && line.starts_with(' ') {
            message.push(trimmed.to_string());
        }
    }
    let message = match message.split_first() {
        Some((first, rest)) if !rest.is_empty() => format!("{first} {}", rest.join(", ")),
        Some((first, _)) => first.clone(),
        None => text.to_string(),
    };
    let message = one_line(&message);
    format!("{message}{}; see '{command} --help'", tips.concat())
}

/// Keeps an error message on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
