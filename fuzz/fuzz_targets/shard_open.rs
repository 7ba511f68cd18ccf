//! Opening a whole shard directory built from fuzzer bytes — either raw
//! files, or a valid shard with fuzzer-chosen damage (flipped, truncated,
//! extended, deleted or duplicated files). Open must complete (or refuse a
//! Go-written shard), every entry it calls durable must read without
//! panicking — and in a valid shard with one damaged file (any kind, any
//! damage), every read that succeeds returns exactly the bytes appended
//! under that number (reads never serve unverified bytes), also after a
//! repair — and the shard must take, sync and keep new entries across a
//! reopen. (With several damaged files, e.g. a segment and every
//! checksum that covers it, recovery may adopt bytes by framing alone:
//! DECISIONS D-7; then only the absence of panics is checked.)
#![no_main]

use comet_core::Error;
use comet_core::platform::naming::segment_file_name;
use comet_core::platform::shard::EngineConfig;
use comet_core::platform::wire::ZSTD_MAGIC;
use comet_core::sim::MemDir;
use comet_core::sim::model::{RunLengthCompressor, config_from_byte, open_shard, read_payload};
use libfuzzer_sys::fuzz_target;

fn take(input: &mut &[u8]) -> u8 {
    match input.split_first() {
        Some((&b, rest)) => {
            *input = rest;
            b
        }
        None => 0,
    }
}

fn take16(input: &mut &[u8]) -> u16 {
    u16::from_le_bytes([take(input), take(input)])
}

fn base_from(b: u8) -> u64 {
    match b % 4 {
        0 => u64::from(b / 4),
        1 => u64::from(b) * 100,
        2 => u64::MAX - u64::from(b),
        _ => 1 << 40,
    }
}

/// Raw files: `[kind][len u16][bytes]` records.
fn raw_dir(mut input: &[u8]) -> MemDir {
    let dir = MemDir::new();
    while !input.is_empty() {
        let kind = take(&mut input);
        let len = usize::from(take16(&mut input)).min(input.len());
        let (bytes, rest) = input.split_at(len);
        input = rest;
        let name = match kind % 8 {
            0..=2 => segment_file_name(base_from(kind / 8)).as_str().to_string(),
            3 => "index.bin".into(),
            4 => "comet.state".into(),
            5 => "index.bin.tmp".into(),
            6 => format!("{}.quarantined", segment_file_name(base_from(kind / 8))),
            _ => "log-0000000000000001.comet".into(), // Go-named
        };
        dir.set_file_bytes(&name, bytes);
    }
    dir
}

/// The payload appended as entry `i` of a damaged shard.
fn payload(i: u64) -> Vec<u8> {
    match i % 5 {
        0 => Vec::new(),
        1 => vec![i as u8; 100],
        2 => ZSTD_MAGIC.iter().copied().chain(0..20).collect(),
        _ => (0..(i * 37 % 300)).map(|k| (k ^ i) as u8).collect(),
    }
}

/// A valid shard, then damage: `[op][file][offset u16][value]` records.
/// Returns the directory, how many entries were synced (the rest were
/// only written: recovery may adopt them by framing alone, damaged or not,
/// D-7) and how many files were damaged.
fn damaged_dir(cfg: EngineConfig, mut input: &[u8]) -> (MemDir, u64, usize) {
    let dir = MemDir::new();
    let (mut s, _) = open_shard(&dir, cfg, RunLengthCompressor).expect("fresh shard");
    let n = u64::from(take(&mut input));
    for i in 0..n {
        s.append(1_000 + i, &[payload(i)]).expect("append");
        if i % 7 == 6 {
            s.sync().expect("sync");
        }
    }
    let synced = if n % 2 == 0 {
        s.close().expect("close");
        n
    } else {
        s.flush_buffer().expect("flush");
        n / 7 * 7
    };
    let mut damaged = std::collections::BTreeSet::new();
    while !input.is_empty() {
        let op = take(&mut input);
        let names = dir.names();
        if names.is_empty() {
            break;
        }
        let name = names[usize::from(take(&mut input)) % names.len()].clone();
        let off = take16(&mut input);
        let val = take(&mut input);
        let mut bytes = dir.file_bytes(&name).unwrap_or_default();
        let at = usize::from(off) % bytes.len().max(1);
        match op % 6 {
            0 if !bytes.is_empty() => bytes[at] ^= val.max(1),
            1 => bytes.truncate(at),
            2 => {
                dir.delete(&name);
                damaged.insert(name);
                continue;
            }
            3 if !bytes.is_empty() => bytes[at] = val,
            4 => bytes.extend(std::iter::repeat_n(val, usize::from(off % 512))),
            5 => {
                let copy = segment_file_name(u64::from(off)).as_str().to_string();
                dir.set_file_bytes(&copy, &bytes);
                damaged.insert(copy);
                continue;
            }
            _ => {}
        }
        dir.set_file_bytes(&name, &bytes);
        damaged.insert(name);
    }
    (dir, synced, damaged.len())
}

/// Every entry below `n` that reads at all reads as appended.
fn reads_are_verified(s: &comet_core::sim::model::FileShard<MemDir, RunLengthCompressor>, n: u64) {
    let (first, end) = (s.first_entry(), s.durable_end().min(n));
    for e in first..end.min(first.saturating_add(5_000)) {
        if let Ok((got, _)) = read_payload(s, e) {
            assert_eq!(got, payload(e), "entry {e} read back different bytes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let ctl = take(&mut input);
    let cfg = config_from_byte(ctl >> 1);
    let (dir, appended) = if ctl & 1 == 0 {
        (raw_dir(input), None)
    } else {
        let (d, n, files) = damaged_dir(cfg, input);
        (d, (files <= 1).then_some(n))
    };

    // Under cfg(fuzzing) the decoders skip their checksums: spoil what a
    // checksum would reject, as production sees it.
    comet_core::sim::model::reject_unchecked_metadata(&dir);
    let (mut s, _report) = match open_shard(&dir, cfg, RunLengthCompressor) {
        Ok(x) => x,
        Err(Error::ForeignFormat) => return,
        Err(e) => panic!("open failed: {e:?}"),
    };
    let (first, end) = (s.first_entry(), s.durable_end());
    assert!(end <= s.next_entry());
    for e in first..end.min(first.saturating_add(5_000)) {
        let _ = read_payload(&s, e);
    }
    let mut findings = Vec::new();
    let _ = comet_core::platform::check::check_shard(&dir, &mut findings, || {});
    if let Some(n) = appended {
        reads_are_verified(&s, n);
        s.repair().expect("repair");
        reads_are_verified(&s, n);
    }
    let batch: [&[u8]; 3] = [b"", b"fuzz", &[0x28, 0xB5, 0x2F, 0xFD, 1]];
    let next = s.next_entry();
    let r = s.append(7, &batch);
    if next.checked_add(3).is_none() {
        // Entry numbers are exhausted: a typed error, not a panic.
        assert!(r.is_err());
        return;
    }
    assert_eq!(r.expect("append after open"), next..next + 3);
    s.sync().expect("sync after open");
    drop(s);
    let (s, report) = open_shard(&dir, cfg, RunLengthCompressor).expect("reopen");
    assert!(s.next_entry() >= next + 3, "{report:?}");
    for (k, want) in batch.iter().enumerate() {
        let got = read_payload(&s, next + k as u64).expect("read back");
        assert_eq!(&got.0, want);
    }
});
