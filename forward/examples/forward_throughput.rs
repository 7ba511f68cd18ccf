//! Forwarding throughput to a running JetStream server.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 -sd /tmp/js &
//! cargo run --release -p comet-forward --example forward_throughput -- \
//!     nats://127.0.0.1:4222 [entries=200000] [bytes=100] [batch=512] [file|memory]
//! ```
//!
//! Appends `entries` entries of `bytes` bytes over 4 shards into a fresh
//! comet directory, syncs, then forwards them all into a new stream and
//! reports entries/s, MB/s and publish latency.

use std::time::{Duration, Instant};

use comet::{Client, Config, ShardId};
use comet_forward::{ForwardConfig, Forwarder, StreamSetup, StreamStorage};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().cloned().unwrap_or_else(|| "nats://127.0.0.1:4222".to_string());
    let entries: u64 = arg(&args, 1, 200_000);
    let bytes: usize = arg(&args, 2, 100);
    let batch: usize = arg(&args, 3, 512);
    let storage = match args.get(4).map(String::as_str) {
        Some("memory") => StreamStorage::Memory,
        _ => StreamStorage::File,
    };

    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path(), Config::default())?;
    let shards = 4u32;
    let payload = vec![b'x'; bytes];
    for s in 0..shards {
        let shard = ShardId::new(s).ok_or("shard id")?;
        let mut left = entries / u64::from(shards);
        while left > 0 {
            let k = left.min(1000);
            let chunk: Vec<&[u8]> = (0..k).map(|_| payload.as_slice()).collect();
            client.append_shard(shard, &chunk)?;
            left -= k;
        }
    }
    client.sync()?;
    let total: u64 = client.shards()?.into_iter().map(|s| client.durable_len(s)).sum::<Result<u64, _>>()?;

    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let prefix = format!("bench.{nonce}");
    let mut config = ForwardConfig::new("bench", url, &prefix);
    let mut setup = StreamSetup::new(format!("BENCH_{nonce}"));
    setup.storage = storage;
    config.stream = Some(setup);
    config.batch_size = batch;
    let mut forwarder = Forwarder::new(&client, config)?;
    let metrics = forwarder.metrics();

    // FORWARD_BENCH_THREADS=n: a multi-threaded runtime with n workers.
    let threads: usize = std::env::var("FORWARD_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    let rt = if threads == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    let started = Instant::now();
    let watch = metrics.clone();
    let snapshot = rt.block_on(forwarder.run(async move {
        while watch.snapshot().entries_forwarded < total {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }))?;
    let secs = started.elapsed().as_secs_f64();
    let l = snapshot.publish_latency;
    println!(
        "{total} entries x {bytes} B, batch {batch}, {storage:?} stream: {secs:.2} s, {:.0} entries/s, {:.1} MB/s; \
         publish->PubAck p50 {:?} p99 {:?}",
        total as f64 / secs,
        (total * bytes as u64) as f64 / secs / 1e6,
        l.p50,
        l.p99
    );
    Ok(())
}
