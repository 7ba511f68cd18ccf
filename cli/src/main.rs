//! `comet`: run, inspect and repair a comet log from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use comet::{Client, Config, ShardCount};

#[derive(Parser)]
#[command(name = "comet", version, about = "An embedded segmented log for edge observability")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a realistic mix of observability events across 16 shards, read
    /// them back and print what happened. Without --dir, uses a temporary
    /// directory.
    Demo {
        /// Data directory to use (kept afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Demo { dir } => demo(dir),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("comet: {e}");
            ExitCode::from(2)
        }
    }
}

fn event(i: u64) -> Vec<u8> {
    match i % 3 {
        0 => format!(
            r#"{{"ts":{i},"level":"info","service":"api","msg":"request served","status":200,"latency_ms":{}}}"#,
            i % 97
        )
        .into_bytes(),
        1 => format!("cpu.load,host=edge-{} value={}.{}", i % 8, i % 4, i % 100).into_bytes(),
        _ => format!(
            r#"{{"trace":"{i:016x}","span":"db.query","duration_us":{},"attrs":{}}}"#,
            i % 5000,
            "[1,2,3]".repeat((i % 900) as usize)
        )
        .into_bytes(),
    }
}

fn demo(dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let client = Client::open(&dir, Config::default())?;
    let shards = ShardCount::new(16).ok_or("shard count")?;
    let n = 100_000u64;
    let start = Instant::now();
    let mut raw = 0u64;
    for i in 0..n {
        let e = event(i);
        raw += e.len() as u64;
        let stream = comet::pick_shard_stream("obs:v1", format!("host-{}", i % 97).as_bytes(), shards)?;
        client.append(&stream, &[e])?;
    }
    client.sync()?;
    let wrote = start.elapsed();
    let start = Instant::now();
    let mut read = 0u64;
    for shard in client.shards()? {
        let mut r = client.reader(shard)?;
        let (first, end) = r.bounds()?;
        for i in first..end {
            read += r.read(i)?.data().len() as u64;
        }
    }
    let readt = start.elapsed();
    let stats = client.stats()?;
    println!("dir: {}", dir.display());
    println!("entries: {n} across {} shards", stats.shards.len());
    println!("bytes: raw {raw}, on disk {} (compression ratio {:.2})", stats.bytes, stats.compression_ratio);
    println!("append: {:.0} entries/s ({:?})", n as f64 / wrote.as_secs_f64(), wrote);
    println!("read back {read} bytes: {:.0} entries/s ({readt:?})", n as f64 / readt.as_secs_f64());
    client.close()?;
    Ok(())
}
