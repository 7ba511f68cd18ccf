//! Multi-process appends and cross-process read latency (not a criterion
//! bench; `cargo bench` runs it like the others). Every process involved
//! is this executable re-run with `COMET_BENCH_MP_ROLE`, so nothing else
//! needs building.
//!
//! * **`mp_append`**: writer processes append single 100-byte entries,
//!   round-robin over 4 shards each, from one thread, and time every
//!   `append_shard` call (two clock reads around it). Cases, interleaved
//!   round by round so that each round's figures compare:
//!   `single_process` (one process, `Client::open`, shards 0, 4, 8, 12:
//!   the comparison base), `4_processes` (the pre-fork pattern: 4
//!   processes, each `Client::open_process` with `process_count` = 4,
//!   writing its own shards `shard % 4 == slot`) and `2_processes` (as
//!   many writers as the machine has cores). The children start together
//!   on a signal from the parent; each round writes into a fresh
//!   directory. Reported per case: per-append latency (median, p99) over
//!   all processes and rounds, the per-round medians, aggregate throughput
//!   (all appends over the span from the first start to the last end) and
//!   user/system CPU per append (`getrusage` of each writer process). The
//!   figure judged against issue 10's target is the median of
//!   `4_processes` over the median of `single_process` (target: <= 2).
//! * **`mp_read_latency`**: a writer process appends one entry every 1-3
//!   ms (random gaps) whose payload carries its send time
//!   (`CLOCK_REALTIME` ns, comparable across processes), then syncs the
//!   shard; a reader process on a read-only client waits for it
//!   (`Client::wait_for` + `Reader::read_batch`, or `Consumer::tail` +
//!   `ack`) and records receipt - send. A writer in another process cannot
//!   wake the reader: the reader polls the shard's head every
//!   `storage.flush_interval` of *its* configuration, at most 100 ms
//!   (`Client::wait_for`), so that poll interval bounds the latency.
//!   Variants: a 1 ms poll, the default (1 s flush interval, so a 100 ms
//!   poll), and a writer that does not sync but relies on a 10 ms periodic
//!   flush. Reported: send -> receipt (median, p99, max) and, for syncing
//!   writers, sync() returned -> receipt.
//!
//! `--test`: one round of 2,000 appends per process and a few dozen
//! latency samples (a few seconds). Results also go to
//! `<criterion home>/comet-multi-process.txt` (the `report` tool prints
//! it).

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use comet::{Client, Config, Consumer, Message, ShardId};
use comet_benches::data::{ENTRY_LEN, Rng, log_entries};
use comet_benches::meter::{Cpu, fmt_ns};
use comet_benches::mode::{is_test, pick, scratch_dir};
use comet_benches::rig;

const ROLE: &str = "COMET_BENCH_MP_ROLE";
const DIR: &str = "COMET_BENCH_MP_DIR";
const ARGS: &str = "COMET_BENCH_MP_ARGS";

/// Shards each writer process appends to (round-robin).
const SHARDS_PER_PROCESS: u32 = 4;

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`): the same clock in
/// every process.
fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The role's arguments: whitespace-separated numbers.
fn args() -> Vec<u64> {
    env(ARGS).split_whitespace().map(|a| a.parse().unwrap_or_else(|e| panic!("{ARGS}: {a:?}: {e}"))).collect()
}

/// Configuration of `processes` writer processes (1: a single-process
/// deployment).
fn append_config(processes: u32) -> Config {
    let mut c = rig::config();
    c.concurrency.process_count = processes;
    c.concurrency.shard_count = processes * SHARDS_PER_PROCESS;
    c
}

fn wait_go() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap_or_else(|e| panic!("stdin: {e}"));
    assert_eq!(line.trim(), "go", "unexpected start signal");
}

/// Child: one writer process of the append bench. Args: processes,
/// appends. Writes its latencies (u32 ns, little-endian) to
/// `<dir>/lat-<slot>.bin` and prints `done <start> <end> <user> <sys>`.
fn append_child(dir: &Path) {
    let a = args();
    let (processes, appends) = (u32::try_from(a[0]).unwrap_or(1), a[1]);
    let config = append_config(processes);
    let client = if processes == 1 { Client::open(dir, config) } else { Client::open_process(dir, config) }
        .unwrap_or_else(|e| panic!("open: {e}"));
    let slot = client.process_id();
    let shards: Vec<ShardId> = (0..SHARDS_PER_PROCESS).map(|k| rig::shard(slot + k * processes)).collect();
    for &s in &shards {
        assert!(client.owns(s));
        client.recover_shard(s).unwrap_or_else(|e| panic!("open shard {s}: {e}"));
    }
    let entries = log_entries(1000);
    let mut lat: Vec<u32> = Vec::with_capacity(usize::try_from(appends).unwrap_or(0));
    println!("ready");
    wait_go();
    let cpu0 = Cpu::now();
    let start = realtime_ns();
    let mut k = 0usize;
    for i in 0..appends {
        let s = shards[k];
        k = (k + 1) % shards.len();
        let e = &entries[usize::try_from(i % 1000).unwrap_or(0)];
        let t = Instant::now();
        client.append_shard(s, &[e.as_slice()]).unwrap_or_else(|e| panic!("append: {e}"));
        lat.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let end = realtime_ns();
    let cpu = Cpu::now();
    let bytes: Vec<u8> = lat.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("lat-{slot}.bin")), bytes).unwrap_or_else(|e| panic!("write latencies: {e}"));
    println!(
        "done {start} {end} {} {}",
        cpu.user_ns.saturating_sub(cpu0.user_ns),
        cpu.sys_ns.saturating_sub(cpu0.sys_ns)
    );
    client.close().unwrap_or_else(|e| panic!("close: {e}"));
}

/// Child: the latency bench's writer. Args: entries, sync (0/1), flush
/// interval in ms, max gap in µs. Prints `synced <entry> <ns>` per entry
/// when syncing, then `done`.
fn latency_writer(dir: &Path) {
    let a = args();
    let (count, sync, flush_ms, max_gap_us) = (a[0], a[1] == 1, a[2], a[3]);
    let mut config = rig::config();
    config.storage.flush_interval = Duration::from_millis(flush_ms);
    let client = Client::open_process(dir, config).unwrap_or_else(|e| panic!("open: {e}"));
    let shard = rig::shard(client.process_id());
    client.recover_shard(shard).unwrap_or_else(|e| panic!("open shard: {e}"));
    client.sync().unwrap_or_else(|e| panic!("sync: {e}"));
    println!("ready");
    wait_go();
    let mut rng = Rng::new(0x1a7e);
    let mut synced = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut payload = vec![b' '; ENTRY_LEN];
    for i in 0..count {
        std::thread::sleep(Duration::from_micros(max_gap_us / 3 + rng.below(max_gap_us * 2 / 3)));
        payload[..8].copy_from_slice(&realtime_ns().to_le_bytes());
        payload[8..16].copy_from_slice(&i.to_le_bytes());
        client.append_shard(shard, &[payload.as_slice()]).unwrap_or_else(|e| panic!("append: {e}"));
        if sync {
            client.sync_shard(shard).unwrap_or_else(|e| panic!("sync: {e}"));
            synced.push(realtime_ns());
        }
    }
    let mut out = std::io::stdout().lock();
    for (i, ns) in synced.iter().enumerate() {
        let _ = writeln!(out, "synced {i} {ns}");
    }
    let _ = writeln!(out, "done");
    let _ = out.flush();
    // Keep the writer (and its slot) until the reader has seen everything.
    wait_go();
    client.close().unwrap_or_else(|e| panic!("close: {e}"));
}

/// Child: the latency bench's reader. Args: entries, poll (= its
/// `flush_interval`) in ms, kind (0: `wait_for` + `read_batch`, 1:
/// `Consumer::tail` + `ack`). Prints `got <entry> <send ns> <receipt ns>`.
fn latency_reader(dir: &Path) {
    let a = args();
    let (count, poll_ms, tail) = (a[0], a[1], a[2] == 1);
    let mut config = rig::config();
    config.storage.flush_interval = Duration::from_millis(poll_ms);
    let client = Client::open_read_only(dir, config).unwrap_or_else(|e| panic!("open: {e}"));
    let shard = rig::shard(0);
    let mut reader = client.reader(shard).unwrap_or_else(|e| panic!("reader: {e}"));
    let mut consumer = tail.then(|| Consumer::new(&client, "mp-bench").unwrap_or_else(|e| panic!("consumer: {e}")));
    let mut got: Vec<(u64, u64, u64)> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut msgs: Vec<Message> = Vec::new();
    println!("ready");
    let timeout = Duration::from_secs(30);
    let mut next = 0u64;
    while next < count {
        msgs.clear();
        if let Some(c) = consumer.as_mut() {
            msgs = c.tail(shard, 1000, timeout).unwrap_or_else(|e| panic!("tail: {e}"));
        } else if client.wait_for(shard, next, timeout).unwrap_or_else(|e| panic!("wait_for: {e}")) {
            reader.read_batch(next, 1000, &mut msgs).unwrap_or_else(|e| panic!("read: {e}"));
        }
        assert!(!msgs.is_empty(), "nothing arrived within {timeout:?} (entry {next})");
        let now = realtime_ns();
        for m in &msgs {
            let d = m.data();
            let send = u64::from_le_bytes(d[..8].try_into().unwrap_or_default());
            let i = u64::from_le_bytes(d[8..16].try_into().unwrap_or_default());
            assert_eq!((i, m.id.entry), (next, next), "entries out of order");
            got.push((i, send, now));
            next += 1;
        }
        if let (Some(c), Some(m)) = (consumer.as_mut(), msgs.last()) {
            c.ack(&[m.id]).unwrap_or_else(|e| panic!("ack: {e}"));
        }
    }
    let mut out = std::io::stdout().lock();
    for (i, send, now) in got {
        let _ = writeln!(out, "got {i} {send} {now}");
    }
    let _ = out.flush();
}

/// A child process with piped stdin/stdout.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    role: &'static str,
}

impl Proc {
    fn spawn(role: &'static str, dir: &Path, args: &str) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}")))
            .env(ROLE, role)
            .env(DIR, dir)
            .env(ARGS, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {role}: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| unreachable!("piped"));
        let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| unreachable!("piped")));
        Proc { child, stdin, stdout, role }
    }

    /// The next line of output (panics if the child exited).
    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.stdout.read_line(&mut l).unwrap_or_else(|e| panic!("{} stdout: {e}", self.role));
        assert!(n > 0, "{} exited early: {:?}", self.role, self.child.wait());
        l.trim_end().to_string()
    }

    fn expect(&mut self, what: &str) {
        let l = self.line();
        assert_eq!(l, what, "{}", self.role);
    }

    fn go(&mut self) {
        self.stdin.write_all(b"go\n").and_then(|()| self.stdin.flush()).unwrap_or_else(|e| panic!("signal: {e}"));
    }

    /// The rest of the output; checks that the child succeeded.
    fn finish(mut self) -> Vec<String> {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap_or_else(|e| panic!("{} stdout: {e}", self.role));
        let status = self.child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        assert!(status.success(), "{} failed: {status}", self.role);
        rest.lines().map(str::to_string).collect()
    }
}

fn nums(line: &str, prefix: &str) -> Vec<u64> {
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// Percentile of sorted values, in per mille (500: the median).
fn pct<T: Copy + Default>(sorted: &[T], per_mille: usize) -> T {
    match sorted.len() {
        0 => T::default(),
        n => sorted[((n - 1) * per_mille + 500) / 1000],
    }
}

/// One case of one round: latencies, appends, span, CPU.
#[derive(Default)]
struct Round {
    lat: Vec<u32>,
    appends: u64,
    span_ns: u64,
    user_ns: u64,
    sys_ns: u64,
}

fn append_round(processes: u32, appends: u64) -> Round {
    let dir = scratch_dir("mp-append");
    let args = format!("{processes} {appends}");
    let mut procs: Vec<Proc> = (0..processes).map(|_| Proc::spawn("append", dir.path(), &args)).collect();
    for p in &mut procs {
        p.expect("ready");
    }
    for p in &mut procs {
        p.go();
    }
    let mut r = Round::default();
    let (mut first, mut last) = (u64::MAX, 0u64);
    for mut p in procs {
        let v = nums(&p.line(), "done ");
        first = first.min(v[0]);
        last = last.max(v[1]);
        r.user_ns += v[2];
        r.sys_ns += v[3];
        p.finish();
        r.appends += appends;
    }
    for slot in 0..processes {
        let bytes = std::fs::read(dir.path().join(format!("lat-{slot}.bin")))
            .unwrap_or_else(|e| panic!("latencies of writer {slot}: {e}"));
        r.lat.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    }
    assert_eq!(r.lat.len() as u64, r.appends, "every append timed");
    r.span_ns = last.saturating_sub(first).max(1);
    r
}

fn append_bench(out: &mut Vec<String>) {
    let rounds = pick(1, 5, 5);
    let appends = pick(2_000u64, 500_000, 2_000_000);
    let cases: [(&str, u32); 3] = [("single_process", 1), ("4_processes", 4), ("2_processes", 2)];
    let mut all: Vec<Vec<Round>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, &(name, n)) in cases.iter().enumerate() {
            let r = append_round(n, appends);
            let mut sorted = r.lat.clone();
            sorted.sort_unstable();
            eprintln!(
                "mp_append/{name} round {round}: median {} p99 {} {:.2} M appends/s",
                fmt_ns(f64::from(pct(&sorted, 500))),
                fmt_ns(f64::from(pct(&sorted, 990))),
                r.appends as f64 / r.span_ns as f64 * 1e3
            );
            all[i].push(r);
        }
    }
    out.push(format!(
        "mp_append: {rounds} round(s), {appends} single 100-byte appends per process, {SHARDS_PER_PROCESS} shards per process, 1 thread per process"
    ));
    let mut medians = Vec::new();
    for (i, &(name, n)) in cases.iter().enumerate() {
        let rs = &all[i];
        let mut lat: Vec<u32> = rs.iter().flat_map(|r| r.lat.iter().copied()).collect();
        lat.sort_unstable();
        let appends: u64 = rs.iter().map(|r| r.appends).sum();
        let span: u64 = rs.iter().map(|r| r.span_ns).sum();
        let (user, sys): (u64, u64) = (rs.iter().map(|r| r.user_ns).sum(), rs.iter().map(|r| r.sys_ns).sum());
        let per_round: Vec<String> = rs
            .iter()
            .map(|r| {
                let mut s = r.lat.clone();
                s.sort_unstable();
                fmt_ns(f64::from(pct(&s, 500)))
            })
            .collect();
        let median = f64::from(pct(&lat, 500));
        let mean = lat.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / lat.len().max(1) as f64;
        medians.push(median);
        out.push(format!(
            "mp_append/{name}\t{n} process(es)\tmedian {}\tmean {}\tp99 {}\tp99.9 {}\tmax {}\t{:.2} M appends/s aggregate\tuser {} sys {} per append\tround medians {}",
            fmt_ns(median),
            fmt_ns(mean),
            fmt_ns(f64::from(pct(&lat, 990))),
            fmt_ns(f64::from(pct(&lat, 999))),
            fmt_ns(f64::from(lat.last().copied().unwrap_or(0))),
            appends as f64 / span as f64 * 1e3,
            fmt_ns(user as f64 / appends as f64),
            fmt_ns(sys as f64 / appends as f64),
            per_round.join(", ")
        ));
    }
    // Per-round ratios (each round's cases ran back to back).
    let ratio = |case: usize| -> (f64, Vec<String>) {
        let per: Vec<String> = all[case]
            .iter()
            .zip(&all[0])
            .map(|(m, s)| {
                let (mut a, mut b) = (m.lat.clone(), s.lat.clone());
                a.sort_unstable();
                b.sort_unstable();
                format!("{:.2}", f64::from(pct(&a, 500)) / f64::from(pct(&b, 500)))
            })
            .collect();
        (medians[case] / medians[0], per)
    };
    let (r4, per4) = ratio(1);
    let (r2, per2) = ratio(2);
    out.push(format!(
        "mp_append ratio 4_processes / single_process (median per append): {r4:.2} (per round {}; target <= 2.00; the Go package: 33 µs per multi-process append)",
        per4.join(", ")
    ));
    out.push(format!("mp_append ratio 2_processes / single_process: {r2:.2} (per round {})", per2.join(", ")));
}

/// One latency variant: (name, entries, writer syncs, writer flush ms,
/// reader poll ms, reader uses `Consumer::tail`).
type Variant = (&'static str, u64, bool, u64, u64, bool);

fn latency_variant(v: Variant, max_gap_us: u64) -> String {
    let (name, count, sync, flush_ms, poll_ms, tail) = v;
    let dir = scratch_dir("mp-latency");
    let mut w =
        Proc::spawn("latency-writer", dir.path(), &format!("{count} {} {flush_ms} {max_gap_us}", u8::from(sync)));
    w.expect("ready");
    let mut r = Proc::spawn("latency-reader", dir.path(), &format!("{count} {poll_ms} {}", u8::from(tail)));
    r.expect("ready");
    w.go();
    let mut synced: Vec<u64> = Vec::new();
    loop {
        let l = w.line();
        if l == "done" {
            break;
        }
        let v = nums(&l, "synced ");
        assert_eq!(v[0], synced.len() as u64);
        synced.push(v[1]);
    }
    let got = r.finish();
    w.go();
    w.finish();
    let mut total = Vec::new();
    let mut after_sync = Vec::new();
    let mut sync_took = Vec::new();
    for l in &got {
        let v = nums(l, "got ");
        let (i, send, now) = (v[0], v[1], v[2]);
        total.push(now.saturating_sub(send));
        if let Some(&s) = synced.get(usize::try_from(i).unwrap_or(usize::MAX)) {
            after_sync.push(now.saturating_sub(s));
            sync_took.push(s.saturating_sub(send));
        }
    }
    assert_eq!(total.len() as u64, count, "every entry received");
    total.sort_unstable();
    after_sync.sort_unstable();
    sync_took.sort_unstable();
    let stats = |v: &[u64]| {
        format!(
            "median {} p99 {} max {}",
            fmt_ns(pct(v, 500) as f64),
            fmt_ns(pct(v, 990) as f64),
            fmt_ns(v.last().copied().unwrap_or(0) as f64)
        )
    };
    let line = format!(
        "mp_read_latency/{name}\t{count} entries\tsend -> receipt: {}{}",
        stats(&total),
        if after_sync.is_empty() {
            String::new()
        } else {
            format!("\tsync() returned -> receipt: {}\tappend + sync() took: {}", stats(&after_sync), stats(&sync_took))
        }
    );
    eprintln!("{line}");
    line
}

fn latency_bench(out: &mut Vec<String>) {
    let n = pick(20, 1_000, 1_000);
    let slow = pick(5, 200, 200);
    let variants: [Variant; 4] = [
        ("sync_wait_for_poll_1ms", n, true, 1_000, 1, false),
        ("sync_tail_poll_1ms", n, true, 1_000, 1, true),
        ("sync_wait_for_poll_100ms_default", slow, true, 1_000, 1_000, false),
        ("flush_10ms_wait_for_poll_1ms", n, false, 10, 1, false),
    ];
    out.push(format!(
        "mp_read_latency: writer process appends 1 entry every 1-3 ms (random gaps); reader process on a read-only client; {n} entries ({slow} with the 100 ms poll)"
    ));
    for v in variants {
        out.push(latency_variant(v, 3_000));
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let dir = PathBuf::from(env(DIR));
        match role.as_str() {
            "append" => append_child(&dir),
            "latency-writer" => latency_writer(&dir),
            "latency-reader" => latency_reader(&dir),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; a name filter selects the parts
    // whose name contains it, as criterion would.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |part: &str| filter.as_deref().is_none_or(|f| part.contains(f) || "multi_process".contains(f));
    let mut lines = Vec::new();
    if wanted("mp_append") {
        append_bench(&mut lines);
    }
    if wanted("mp_read_latency") {
        latency_bench(&mut lines);
    }
    if lines.is_empty() {
        return;
    }
    for l in &lines {
        println!("{l}");
    }
    if !is_test() {
        let path = comet_benches::meter::criterion_home().join("comet-multi-process.txt");
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        if let Ok(mut f) = std::fs::File::create(&path) {
            let _ = writeln!(f, "{}", lines.join("\n"));
        }
    }
}
