//! Real crashes: this test binary re-runs itself as a child process that
//! writes (or consumes) and reports progress on stdout, and the supervisor
//! kills it with SIGKILL at random moments, reopens the directory and
//! checks the invariants:
//!
//! * every entry covered by a completed sync is readable, byte for byte,
//!   under its number;
//! * numbering continues with no gap and no reuse;
//! * open always completes (recovery never refuses);
//! * a consumer killed between handling and acking gets the batch again
//!   (at-least-once), and no entry below its offset was left unhandled.
//!
//! `harness = false`: `main` is the supervisor unless `COMET_CRASH_ROLE` says
//! otherwise (sled's `test_crash_recovery.rs` pattern).
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use comet::{Client, Consumer, Flow, ProcessOptions, ShardId, Shards};
use comet_tests::child::{ChildTest, Running};
use comet_tests::payload;

const STREAM: &str = "crash:v1:shard:0003";
const ROLE: &str = "COMET_CRASH_ROLE";

fn shard() -> ShardId {
    ShardId::new(3).unwrap()
}

fn config() -> comet::Config {
    let mut c = comet_tests::small_config();
    c.storage.flush_interval = Duration::from_millis(5);
    c.retention.cleanup_interval = None;
    c
}

/// Child: append forever, syncing every few entries and reporting
/// `synced <durable end>` after each completed sync.
fn writer(dir: &Path) {
    let c = Client::open(dir, config()).expect("open");
    let mut next = c.len(STREAM).expect("len");
    let mut out = std::io::stdout().lock();
    loop {
        let n = next % 7 + 1;
        let batch: Vec<Vec<u8>> = (next..next + n).map(payload).collect();
        let ids = c.append(STREAM, &batch).expect("append");
        assert_eq!(ids.entries.start, next, "numbering continues");
        next += n;
        if next.is_multiple_of(3) {
            c.sync().expect("sync");
            writeln!(out, "synced {next}").expect("stdout");
            out.flush().expect("flush");
        }
    }
}

/// Child: consume forever, reporting `handled <entry>` before acking and
/// `acked <entry>` after.
fn consumer(dir: &Path) {
    let c = Client::open(dir, config()).expect("open");
    let mut g = Consumer::new(&c, "crashers").expect("group");
    let mut out = std::io::stdout().lock();
    g.process(
        |msgs| {
            for m in msgs {
                assert_eq!(m.data(), &payload(m.id.entry)[..], "entry {}", m.id.entry);
                writeln!(out, "handled {}", m.id.entry).expect("stdout");
            }
            out.flush().expect("flush");
            Ok(Flow::Continue)
        },
        ProcessOptions {
            batch_size: 7,
            shards: Shards::Only(vec![shard()]),
            on_batch: Some(Box::new(|_| {})),
            ..Default::default()
        },
    )
    .expect("process");
}

fn spawn(role: &str, dir: &Path) -> Running {
    ChildTest::binary().env(ROLE, role).env("COMET_CRASH_DIR", dir).inherit_stderr().spawn()
}

/// A tiny seeded generator (no dependency).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Lets the child run for `ms` ms, passing each line it prints to
/// `on_line`, then kills it (and passes on the lines it printed before it
/// died).
fn run_for(mut child: Running, ms: u64, mut on_line: impl FnMut(&str)) {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        match child.line_within(Duration::from_millis(1)) {
            Ok(l) => on_line(&l),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(status) = child.exited() {
            panic!("child exited on its own: {status}");
        }
    }
    for l in child.kill().rest {
        on_line(&l);
    }
}

fn check_log(dir: &Path, synced: u64) -> u64 {
    let c = Client::open(dir, config()).expect("open after kill");
    let end = c.len(STREAM).expect("len");
    // open for writing too: recovery must complete
    c.recover_shard(shard()).expect("recovery");
    let end_after = c.len(STREAM).expect("len");
    assert!(end_after >= synced, "lost synced entries: end {end_after} < synced {synced}");
    assert!(end_after >= end);
    let mut r = c.reader(shard()).expect("reader");
    c.sync().expect("sync");
    for i in 0..end_after {
        let m = r.read(i).unwrap_or_else(|e| panic!("entry {i} of {end_after}: {e}"));
        assert_eq!(m.data(), &payload(i)[..], "entry {i}");
    }
    c.close().expect("close");
    end_after
}

fn supervise_writer(dir: &Path, rounds: u32, rng: &mut Rng) -> u64 {
    let mut synced = 0u64;
    let mut end = 0;
    for round in 0..rounds {
        let ms = 20 + rng.below(200);
        run_for(spawn("writer", dir), ms, |l| {
            if let Some(n) = l.strip_prefix("synced ") {
                synced = synced.max(n.parse().expect("number"));
            }
        });
        end = check_log(dir, synced);
        eprintln!("writer round {round}: killed after {ms} ms, synced {synced}, recovered end {end}");
    }
    end
}

fn supervise_consumer(dir: &Path, end: u64, rng: &mut Rng) {
    let mut handled = BTreeSet::new();
    let mut redelivered = 0u64;
    for round in 0..200 {
        let ms = 10 + rng.below(60);
        run_for(spawn("consumer", dir), ms, |l| {
            if let Some(n) = l.strip_prefix("handled ")
                && !handled.insert(n.parse::<u64>().expect("number"))
            {
                redelivered += 1;
            }
        });
        let c = Client::open(dir, config()).expect("open");
        let mut g = Consumer::new(&c, "crashers").expect("group");
        let offset = g.offset(shard()).expect("offset");
        // everything below the offset was handled at least once
        for i in 0..offset {
            assert!(handled.contains(&i), "entry {i} acked but never handled");
        }
        eprintln!("consumer round {round}: killed after {ms} ms, offset {offset}, handled {}", handled.len());
        if offset == end {
            eprintln!("consumer done: {redelivered} redeliveries across kills (at-least-once)");
            return;
        }
    }
    panic!("consumer never finished");
}

fn main() {
    let dir_env = std::env::var_os("COMET_CRASH_DIR");
    match (std::env::var(ROLE).as_deref(), dir_env) {
        (Ok("writer"), Some(d)) => return writer(Path::new(&d)),
        (Ok("consumer"), Some(d)) => return consumer(Path::new(&d)),
        _ => {}
    }
    // `cargo test -- --list` and filters: behave like a harness with one test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("crash_kill: test");
        return;
    }
    let seed = std::env::var("COMET_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    let rounds = std::env::var("COMET_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    eprintln!("crash_kill: seed {seed} (set COMET_CRASH_SEED to replay), {rounds} rounds");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let end = supervise_writer(dir.path(), rounds, &mut rng);
    assert!(end > 0, "the writer made progress");
    supervise_consumer(dir.path(), end, &mut rng);
    println!("test crash_kill ... ok");
}
