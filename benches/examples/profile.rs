//! A small driver for instruction-level profiles of the hot paths, e.g.
//!
//! ```text
//! cargo build --profile bench -p comet-benches --example profile
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*hot_loop*' \
//!     target/release/examples/profile append100 200000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Modes: `append1`, `append100` (buffered appends of 100-byte entries),
//! `read100` (`Reader::read_batch`), `consume100` (read + ack, as the
//! `process` loop does), `ack1` (single acks), `random5` (random reads).
//! For open: `build <dir> <MiB> <segment MiB> [crash]` writes a shard of
//! 100-byte entries and closes it cleanly (or, with `crash`, syncs and
//! exits without closing); `open <dir>` (`Client::open` plus
//! `recover_shard`) and `read_tail <dir>` (a reader's first read of the
//! last entry) then profile opening it.
//! Only `hot_loop` is meant to be collected; setup is outside it. The
//! second argument is the number of entries. It prints the wall time per
//! entry (meaningless under valgrind, useful without).

use std::hint::black_box;
use std::time::Instant;

use comet::{Client, Message};
use comet_benches::data::{Rng, log_entries, log_entry};
use comet_benches::rig;

#[inline(never)]
fn hot_loop(mode: &str, client: &Client, n: u64) {
    let shard = rig::shard(0);
    let stream = rig::stream(0);
    match mode {
        "append1" => {
            let e = log_entry(1);
            for _ in 0..n {
                black_box(client.append(&stream, &[e.as_slice()]).unwrap());
            }
        }
        "append100" => {
            let batch = log_entries(100);
            for _ in 0..n / 100 {
                black_box(client.append(&stream, &batch).unwrap());
            }
        }
        "read100" => {
            let mut r = client.reader(shard).unwrap();
            let mut out: Vec<Message> = Vec::with_capacity(100);
            let mut from = 0;
            while from < n {
                out.clear();
                from += r.read_batch(from, 100, &mut out).unwrap() as u64;
                for m in &out {
                    black_box(m.data());
                }
            }
        }
        "consume100" => {
            let mut c = rig::consumer(client, "profile");
            let mut out: Vec<Message> = Vec::with_capacity(100);
            let mut ids = Vec::with_capacity(100);
            loop {
                out.clear();
                if c.read_shard(shard, 100, &mut out).unwrap() == 0 {
                    break;
                }
                ids.clear();
                ids.extend(out.iter().map(|m| m.id));
                c.ack(&ids).unwrap();
            }
        }
        "ack1" => {
            let mut c = rig::consumer(client, "profile");
            for e in 0..n {
                c.ack(&[rig::id(0, e)]).unwrap();
            }
        }
        "random5" => {
            let mut r = client.reader(shard).unwrap();
            let mut rng = Rng::new(3);
            for _ in 0..n / 5 {
                for _ in 0..5 {
                    black_box(r.read(rng.below(n)).unwrap().data().len());
                }
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

#[inline(never)]
fn hot_loop_open(mode: &str, dir: &std::path::Path) {
    let client = Client::open(dir, rig::config()).unwrap();
    if mode == "open" {
        black_box(client.recover_shard(rig::shard(0)).unwrap());
    } else {
        let end = client.durable_len(rig::shard(0)).unwrap();
        black_box(client.reader(rig::shard(0)).unwrap().read(end - 1).unwrap());
    }
    std::mem::forget(client); // closing is not part of opening
}

fn open_modes(mode: &str, mut args: impl Iterator<Item = String>) {
    let dir = std::path::PathBuf::from(args.next().expect("a directory"));
    if mode == "build" {
        let mib: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
        let seg: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
        let mut config = rig::config();
        config.storage.max_file_size = seg << 20;
        let client = Client::open(&dir, config).unwrap();
        let batch = log_entries(10_000);
        let n = (mib << 20) / comet_benches::data::STORED_LEN as u64;
        let mut done = 0;
        while done < n {
            client.append_shard(rig::shard(0), &batch).unwrap();
            done += batch.len() as u64;
        }
        if args.next().as_deref() == Some("crash") {
            // Synced, then gone without a clean close: a killed writer.
            client.sync().unwrap();
            std::process::exit(0);
        }
        client.close().unwrap();
        return;
    }
    let t0 = Instant::now();
    hot_loop_open(mode, &dir);
    eprintln!("{mode}: {:.2?}", t0.elapsed());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "append100".into());
    if matches!(mode.as_str(), "build" | "open" | "read_tail") {
        open_modes(&mode, args);
        return;
    }
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = comet_benches::mode::scratch_dir("profile");
    let client = Client::open(dir.path(), rig::config()).unwrap();
    client.recover_shard(rig::shard(0)).unwrap();
    if !mode.starts_with("append") {
        rig::fill(&client, 0, usize::try_from(n).unwrap(), log_entry);
        if mode == "consume100" || mode == "ack1" {
            // Create the group's slot outside the measured loop.
            rig::consumer(&client, "profile").ack(&[rig::id(0, 0)]).unwrap();
            rig::consumer(&client, "profile").reset_offset(rig::shard(0), 0).unwrap();
        }
    }
    let t0 = Instant::now();
    hot_loop(&mode, &client, n);
    let el = t0.elapsed();
    eprintln!("{mode}: {n} entries, {:.1} ns/entry", el.as_nanos() as f64 / n as f64);
    client.close().unwrap();
}
