//! A pre-fork deployment with real processes: 4 writers sharing one data
//! directory through process slots, 2 consumer processes in group `a`
//! (splitting shards by worker index) and 1 in group `b`. The supervisor
//! kills writers and consumers with SIGKILL at random moments, respawns
//! them, and checks: no synced entry is lost, numbering is continuous, a
//! killed writer's slot goes to its replacement, and within a group an
//! entry is handled twice only when the first handler died before acking
//! it (at-least-once, nothing more).
#![allow(clippy::cast_possible_truncation)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use comet::{Client, Config, Consumer, Error, MessageId, ProcessSlot, ShardId};
use comet_tests::child::{ChildTest, Running};

const ROLE: &str = "COMET_MP_ROLE";
const WRITERS: u32 = 4;
const SHARDS: u32 = 8;

fn config() -> Config {
    let mut c = comet_tests::small_config();
    c.concurrency.process_count = WRITERS;
    c.concurrency.shard_count = SHARDS;
    c.storage.flush_interval = Duration::from_millis(5);
    c.retention.cleanup_interval = None;
    c
}

fn payload(shard: u32, entry: u64) -> Vec<u8> {
    format!("s{shard}-e{entry}-{}", "p".repeat((entry % 50) as usize)).into_bytes()
}

fn writer(dir: &Path) {
    let c = Client::open_process(dir, config()).expect("open_process");
    let mut out = std::io::stdout().lock();
    writeln!(out, "slot {}", c.process_id()).expect("stdout");
    out.flush().expect("flush");
    let owned: Vec<ShardId> = (0..SHARDS).filter_map(ShardId::new).filter(|s| c.owns(*s)).collect();
    for &s in &owned {
        // take over: recover the dead writer's tail before numbering
        c.recover_shard(s).expect("recover");
    }
    let mut k = 0u64;
    loop {
        for &s in &owned {
            let next = c.shard_len(s).expect("len");
            let n = k % 3 + 1;
            let batch: Vec<Vec<u8>> = (next..next + n).map(|e| payload(s.get(), e)).collect();
            let ids = c.append_shard(s, &batch).expect("append");
            assert_eq!(ids.entries.start, next);
            k += 1;
            if k.is_multiple_of(4) {
                c.sync_shard(s).expect("sync");
                writeln!(out, "synced {} {}", s.get(), c.durable_len(s).expect("durable")).expect("stdout");
                out.flush().expect("flush");
            }
        }
    }
}

fn consumer(dir: &Path, group: &str, workers: u32) {
    let slot = ProcessSlot::acquire(dir, &format!("{group}-consumers"), workers).expect("consumer slot");
    let c = Client::open_read_only(dir, config()).expect("open");
    let mut g = Consumer::new(&c, group).expect("group");
    let mut out = std::io::stdout().lock();
    let mine: Vec<ShardId> = (0..SHARDS).filter(|s| s % workers == slot.index()).filter_map(ShardId::new).collect();
    loop {
        let (messages, errors) = g.read(&mine, 10).into_parts();
        assert!(errors.is_empty(), "{errors:?}");
        if messages.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        for m in &messages {
            assert_eq!(m.data(), &payload(m.id.shard.get(), m.id.entry)[..]);
            writeln!(out, "handled {} {}", m.id.shard.get(), m.id.entry).expect("stdout");
        }
        out.flush().expect("flush");
        let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
        g.ack(&ids).expect("ack");
        let mut high: BTreeMap<u32, u64> = BTreeMap::new();
        for id in ids {
            let h = high.entry(id.shard.get()).or_default();
            *h = (*h).max(id.entry + 1);
        }
        for (s, h) in high {
            writeln!(out, "acked {s} {h}").expect("stdout");
        }
        out.flush().expect("flush");
    }
}

struct Proc {
    role: String,
    child: Running,
    /// Lines seen so far.
    lines: Vec<String>,
}

fn spawn(role: &str, dir: &Path) -> Proc {
    let child = ChildTest::binary().env(ROLE, role).env("COMET_MP_DIR", dir).inherit_stderr().spawn();
    Proc { role: role.to_string(), child, lines: Vec::new() }
}

impl Proc {
    fn pump(&mut self) {
        while let Some(l) = self.child.try_line() {
            self.lines.push(l);
        }
        if let Some(status) = self.child.exited() {
            panic!("{} exited on its own: {status}", self.role);
        }
    }

    fn wait_line(&mut self, prefix: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.lines.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            assert!(Instant::now() < end, "{} never printed {prefix:?}", self.role);
            if let Ok(l) = self.child.line_within(Duration::from_millis(10)) {
                self.lines.push(l);
            }
        }
    }

    /// Kills the process; returns every line it printed.
    fn kill(self) -> Vec<String> {
        let Proc { child, mut lines, .. } = self;
        lines.extend(child.kill().rest);
        lines
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Checks one group's history: every entry below the final offsets was
/// handled, and a repeat happened only after the first handler died
/// without acking it.
fn check_group(name: &str, lives: &[Vec<String>], ends: &HashMap<u32, u64>) {
    let mut first_by: HashMap<(u32, u64), usize> = HashMap::new();
    let mut repeats = 0;
    for (life, lines) in lines_by_life(lives) {
        let mut acked: HashMap<u32, u64> = HashMap::new();
        let _ = life;
        for l in lines {
            let mut it = l.split_whitespace();
            let (kind, s, e) = (it.next(), it.next(), it.next());
            let (Some(kind), Some(s), Some(e)) = (kind, s.and_then(|s| s.parse().ok()), e.and_then(|e| e.parse().ok()))
            else {
                continue;
            };
            match kind {
                "handled" => {
                    if let Some(&prev) = first_by.get(&(s, e)) {
                        repeats += 1;
                        // the earlier handler must have died before acking e
                        let prev_acked = final_acks(&lives[prev]).get(&s).copied().unwrap_or(0);
                        assert!(prev_acked <= e, "{name}: shard {s} entry {e} handled twice though acked");
                        assert_ne!(prev, life, "{name}: shard {s} entry {e} handled twice by one process");
                    } else {
                        first_by.insert((s, e), life);
                    }
                }
                "acked" => {
                    acked.insert(s, e);
                }
                _ => {}
            }
        }
    }
    for (&s, &end) in ends {
        for e in 0..end {
            assert!(first_by.contains_key(&(s, e)), "{name}: shard {s} entry {e} never handled");
        }
    }
    eprintln!("group {name}: {} entries handled, {repeats} redelivered after kills", first_by.len());
}

fn lines_by_life(lives: &[Vec<String>]) -> impl Iterator<Item = (usize, &Vec<String>)> {
    lives.iter().enumerate()
}

fn final_acks(lines: &[String]) -> HashMap<u32, u64> {
    let mut m = HashMap::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("acked ") {
            let mut it = rest.split_whitespace();
            if let (Some(Ok(s)), Some(Ok(h))) = (it.next().map(str::parse::<u32>), it.next().map(str::parse::<u64>)) {
                m.insert(s, h);
            }
        }
    }
    m
}

fn main() {
    if let (Ok(role), Some(dir)) = (std::env::var(ROLE), std::env::var_os("COMET_MP_DIR")) {
        let dir = Path::new(&dir);
        match role.as_str() {
            "writer" => writer(dir),
            "consumer-a" => consumer(dir, "a", 2),
            "consumer-b" => consumer(dir, "b", 1),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("multi_process: test");
        return;
    }
    let seed = std::env::var("COMET_MP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("multi_process: seed {seed} (COMET_MP_SEED replays)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // a shard owned by another process is a typed error naming the owner
    {
        let mut cfg = config();
        cfg.concurrency.process_id = 1;
        let c = Client::open(dir, cfg).expect("open");
        match c.append_shard(ShardId::MIN, &[b"x"]) {
            Err(Error::NotOwned { shard, owner: 0, process: 1 }) => assert_eq!(shard, ShardId::MIN),
            other => panic!("{other:?}"),
        }
        c.close().expect("close");
    }

    let mut procs: Vec<Proc> = Vec::new();
    let mut slots = Vec::new();
    for _ in 0..WRITERS {
        let mut p = spawn("writer", dir);
        slots.push(p.wait_line("slot ").clone());
        procs.push(p);
    }
    slots.sort();
    assert_eq!(slots, ["slot 0", "slot 1", "slot 2", "slot 3"]);
    assert!(matches!(ProcessSlot::acquire(dir, "writers", WRITERS), Err(Error::NoFreeSlot { .. })));
    for role in ["consumer-a", "consumer-a", "consumer-b"] {
        procs.push(spawn(role, dir));
    }

    let mut synced: HashMap<u32, u64> = HashMap::new();
    let mut dead: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    let note_synced = |lines: &[String], synced: &mut HashMap<u32, u64>| {
        for l in lines {
            if let Some(rest) = l.strip_prefix("synced ") {
                let mut it = rest.split_whitespace();
                if let (Some(Ok(s)), Some(Ok(n))) = (it.next().map(str::parse), it.next().map(str::parse)) {
                    let v = synced.entry(s).or_insert(0);
                    *v = (*v).max(n);
                }
            }
        }
    };
    for round in 0..16 {
        let until = Instant::now() + Duration::from_millis(50 + rng.below(150));
        while Instant::now() < until {
            for p in &mut procs {
                p.pump();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let victim = rng.below(procs.len() as u64) as usize;
        let role = procs[victim].role.clone();
        let old = procs.swap_remove(victim);
        let slot_line = old.lines.iter().find(|l| l.starts_with("slot ")).cloned();
        let lines = old.kill();
        note_synced(&lines, &mut synced);
        dead.entry(role.clone()).or_default().push(lines);
        let mut p = spawn(&role, dir);
        if role == "writer" {
            assert_eq!(Some(p.wait_line("slot ")), slot_line, "the replacement takes the dead writer's slot");
        }
        eprintln!("round {round}: killed a {role}, respawned");
        procs.push(p);
    }
    // stop the writers; keep the consumers until they have caught up
    let (writers, consumers): (Vec<Proc>, Vec<Proc>) = procs.into_iter().partition(|p| p.role == "writer");
    for w in writers {
        let lines = w.kill();
        note_synced(&lines, &mut synced);
    }
    let c = Client::open_read_only(dir, config()).expect("open");
    let mut ends = HashMap::new();
    for s in 0..SHARDS {
        let id = ShardId::new(s).expect("shard");
        // recovery of the killed writers' shards happens on the next write
        // open; readers see every durable entry already
        let end = c.durable_len(id).expect("durable");
        assert!(end >= synced.get(&s).copied().unwrap_or(0), "shard {s}: synced entries lost");
        let mut r = c.reader(id).expect("reader");
        for e in 0..end {
            assert_eq!(r.read(e).expect("read").data(), &payload(s, e)[..], "shard {s} entry {e}");
        }
        ends.insert(s, end);
    }
    let mut consumers = consumers;
    let deadline = Instant::now() + Duration::from_secs(60);
    for group in ["a", "b"] {
        let mut g = Consumer::new(&c, group).expect("group");
        for s in 0..SHARDS {
            let id = ShardId::new(s).expect("shard");
            while g.offset(id).expect("offset") < ends[&s] {
                assert!(Instant::now() < deadline, "group {group} never caught up on shard {s}");
                for p in &mut consumers {
                    p.pump();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    for p in consumers {
        let role = p.role.clone();
        let lines = p.kill();
        dead.entry(role).or_default().push(lines);
    }
    check_group("a", &dead["consumer-a"], &ends);
    check_group("b", &dead["consumer-b"], &ends);
    // the writers' slots are free again
    let slot = ProcessSlot::acquire(dir, "writers", WRITERS).expect("slot after all writers died");
    assert_eq!(slot.index(), 0);
    // and a new writer continues numbering where durable data ended
    drop(slot);
    let c2 = Client::open_process(dir, config()).expect("writer");
    let s0 = ShardId::new(c2.process_id()).expect("shard");
    let durable = c2.durable_len(s0).expect("durable");
    let report = c2.recover_shard(s0).expect("recover the dead writer's tail");
    let end = c2.shard_len(s0).expect("len");
    assert!(end >= durable, "{report:?}");
    assert_eq!(c2.append_shard(s0, &[payload(s0.get(), end)]).expect("append").entries.start, end);
    println!("test multi_process ... ok");
}
