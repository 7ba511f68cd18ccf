//! Interop between the two platform crates on one data directory: every
//! scenario runs with the writer from one crate and the reader, consumer,
//! retention or recovery from the other, both ways (issue 16, item 3).
//!
//! The two platforms are `comet` (std: [`Client`], zero-copy [`Reader`],
//! [`StdConsumer`], `zstd` compression) and `comet-embedded` ([`Log`],
//! `read_into` with `pread`, [`EmbeddedConsumer`], `ruzstd`
//! compression). Each is wrapped in a [`Side`] with the same small set of
//! operations, and each scenario is a function of the writing
//! [`Platform`] `a` (the other one is `b`); `both_ways!` runs it as two
//! tests, `std_then_embedded` and `embedded_then_std`.
//!
//! | scenario | what must hold |
//! |---|---|
//! | `write_read` | every entry `a` wrote and synced reads back from `b` byte for byte with its timestamp: empty payloads, payloads starting with the zstd magic, and payloads `a` compressed (std `zstd` / embedded `ruzstd` frames, each decoded by the other) |
//! | `reopen_append` | `b` reopens for writing, numbering continues with no gap, and each side reads both sides' entries |
//! | `consumer_groups` | `b`'s consumer of a group resumes exactly at the offset `a`'s consumer acked, acks further, and `a` sees `b`'s offset |
//! | `retention` | retention run by `b` deletes exactly the sealed segments a group has consumed; `a` reports the first retained entry and reads what is retained; the same with the roles swapped |
//! | `damage_repair` | a byte flipped in a sealed segment `a` wrote: `b` (and `a`) read that chunk as a typed `Damaged` error naming it, every other entry exactly; after `comet::repair` both read `Lost` there and exact bytes elsewhere |
//! | `damaged_state_files` | `comet.state` cut short and `offsets.state` lengthened after `a` wrote and a group acked: `b` sets both aside as `.corrupt`, reads every entry, keeps the group's offset, appends and consumes on, and `a` sees the result |
//! | `damaged_offsets_keep_their_shard_…` | `offsets.state`'s header damaged under each platform's open writer: its retention pass deletes nothing of that shard (never "no group has acked"), reports it, and cleans the other shard |
//! | `consumer_groups` (resets) | a reset past the durable end stops at it on both platforms, so entries appended later are delivered |
//! | `crash` | a child process writing with one platform is killed with `SIGKILL` mid-append (3 rounds each way, and 4 rounds alternating the writer); the other platform recovers the directory and reads every entry the child reported synced, exactly. While the child runs, the other platform's writer gets `Locked` naming the child's pid, and a std read-only client reads the live embedded child's entries |
//! | live, in one process | a std read-only client reads while an embedded `Log` appends in another thread (nothing unsynced is visible); consumer offsets are shared live through `offsets.state`; each platform's writer gets `Locked` with the pid on a shard the other holds |
//! | `large_entry_*` | a shard holding an entry above the opening platform's `max_entry_size` (the defaults differ: 16 MiB std, 32 KiB embedded) is opened without declaring synced data lost: stored lengths are judged by the format's limit, not the opener's (an opener whose read buffer cannot hold the entry gets a typed error for it alone) |
//!
//! Both sides use small segments so that rotations happen: the std side
//! `comet_tests::small_config()` (16 KiB segments, chunks of 8 entries,
//! compression from 512 bytes) and the embedded side [`embedded_config`]
//! (12 KiB segments, the same chunk interval and compression threshold).
//!
//! The crash tests re-run this test binary as a child (`crash_child`,
//! `#[ignore]`d, with `--exact --ignored`), told what to do through
//! environment variables; a cross-built binary runs through the emulator
//! named in `COMET_TEST_RUNNER`, as `.ci/cross.sh` sets it.
#![allow(clippy::cast_possible_truncation)]

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use comet::{Client, Config, Consumer as StdConsumer, MessageId, Reader, RecoveryReport, ShardId};
use comet_core::sim::noise;
use comet_embedded::{Consumer as EmbeddedConsumer, EmbeddedConfig, Log};
use comet_tests::child::{ChildTest, Running};
use comet_tests::small_config;

/// The shard every scenario uses (the embedded log opens shards
/// `0..shard_count`).
const SHARD: ShardId = ShardId::MIN;

/// The zstd frame magic.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Compression threshold of both sides.
const MIN_COMPRESS: u32 = 512;

/// Largest payload of [`payload`], with room to spare.
const MAX_ENTRY: u32 = 4096;

/// Payload of entry `i`: `comet_tests::payload` (empty, zstd-magic-prefixed
/// short, compressible JSON of 1-3 KiB, incompressible bytes), plus every
/// 11th a compressible payload that starts with the zstd magic.
fn payload(i: u64) -> Vec<u8> {
    if i % 11 == 10 {
        let mut p = MAGIC.to_vec();
        p.extend(format!("magic and compressible, entry {i}; ").repeat(30).into_bytes());
        return p;
    }
    comet_tests::payload(i)
}

/// Whether a payload is stored as a zstd frame by either writer: payloads
/// starting with the magic always (compressed or wrapped in raw blocks),
/// and ours from `MIN_COMPRESS` bytes on (all of them compress well).
fn stored_as_frame(p: &[u8]) -> bool {
    p.starts_with(&MAGIC) || p.len() >= MIN_COMPRESS as usize
}

/// The std side's configuration: small segments, no background retention.
fn std_config() -> Config {
    let mut c = small_config();
    assert_eq!(c.compression.min_compress_size, MIN_COMPRESS);
    c.retention.cleanup_interval = None;
    c.retention.max_age = None;
    c
}

/// The embedded side's configuration: small segments (not the std size,
/// so that the two rotate at different points), the std side's chunk
/// interval and compression threshold.
fn embedded_config() -> EmbeddedConfig {
    let std = std_config();
    let mut retention = EmbeddedConfig::default().retention;
    retention.max_age = None;
    retention.cleanup_interval = None;
    EmbeddedConfig {
        write_buffer_bytes: 8192,
        read_buffer_bytes: 16 << 10,
        max_entry_size: MAX_ENTRY,
        max_file_size: 12 * 1024,
        boundary_interval: std.indexing.boundary_interval,
        checkpoint_capacity: 1024,
        min_compress_size: Some(std.compression.min_compress_size),
        retention,
        ..EmbeddedConfig::default()
    }
}

fn now() -> u64 {
    comet_embedded::now_ns()
}

/// One of the two platform crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Std,
    Embedded,
}

use Platform::{Embedded, Std};

impl Platform {
    fn other(self) -> Platform {
        match self {
            Std => Embedded,
            Embedded => Std,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Std => "std",
            Embedded => "embedded",
        }
    }

    fn from_name(name: &str) -> Option<Platform> {
        [Std, Embedded].into_iter().find(|p| p.name() == name)
    }

    /// Opens `dir` for writing shard [`SHARD`] (running recovery), with no
    /// retention limit.
    fn open(self, dir: &Path) -> Box<dyn Side> {
        self.open_with(dir, None)
    }

    /// [`Platform::open`] with `retention.max_shard_size` set (protection
    /// of unconsumed entries is on, the default of both crates).
    fn open_with(self, dir: &Path, max_shard_size: Option<u64>) -> Box<dyn Side> {
        match self {
            Std => {
                let mut c = std_config();
                c.retention.max_shard_size = max_shard_size;
                assert!(c.retention.protect_unconsumed);
                let client = Client::open(dir, c).expect("std: open");
                let report = client.recover_shard(SHARD).expect("std: open the shard for writing");
                Box::new(StdSide { client, reader: None, report })
            }
            Embedded => {
                let mut c = embedded_config();
                c.retention.max_shard_size = max_shard_size;
                assert!(c.retention.protect_unconsumed);
                let log = Log::open(dir, c, now()).expect("embedded: open");
                let report = log.recovery(SHARD).expect("embedded: recovery report").clone();
                Box::new(EmbeddedSide { log, buf: vec![0; 64 << 10], report })
            }
        }
    }
}

/// A read as either platform reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    /// The payload, its timestamp, and whether it was stored as a frame.
    Data { data: Vec<u8>, timestamp: u64, framed: bool },
    /// The entry's chunk fails its check.
    Damaged { segment: u64, chunk: u32, first: u64, end: u64 },
    /// The entry lies in a range recorded as lost.
    Lost { start: u64, end: u64 },
    /// Not retained or not durable.
    Unavailable { first: u64, end: u64 },
}

impl Got {
    fn data(self, entry: u64) -> (Vec<u8>, u64, bool) {
        match self {
            Got::Data { data, timestamp, framed } => (data, timestamp, framed),
            other => panic!("entry {entry}: {other:?}"),
        }
    }
}

/// What the scenarios do with a platform: one shard, open for writing.
trait Side {
    fn platform(&self) -> Platform;
    /// What recovery did when the shard was opened.
    fn recovery(&self) -> &RecoveryReport;
    fn append(&mut self, payloads: &[Vec<u8>]) -> Range<u64>;
    fn sync(&mut self);
    /// The next entry number the writer assigns.
    fn next_entry(&mut self) -> u64;
    /// First retained entry and durable end.
    fn bounds(&mut self) -> (u64, u64);
    fn read(&mut self, entry: u64) -> Got;
    /// Reads up to `max` entries with a new consumer of `group` (from its
    /// stored offset) and acks all of them.
    fn consume(&mut self, group: &str, max: usize) -> Vec<(u64, Vec<u8>)>;
    /// The stored offset of `group` (the next entry it reads).
    fn offset(&mut self, group: &str) -> u64;
    /// Moves `group` to `entry` (`reset_offset`); returns where it now is.
    fn reset(&mut self, group: &str, entry: u64) -> u64;
    /// Runs one retention pass; returns the segments deleted.
    fn retain(&mut self) -> u64 {
        let who = self.platform().name();
        self.try_retain().unwrap_or_else(|e| panic!("{who}: retention: {e:?}"))
    }
    /// [`Side::retain`], its error returned.
    fn try_retain(&mut self) -> Result<u64, comet::Error>;
    fn close(self: Box<Self>);
}

/// What a read of `entry` that failed says (both platforms raise the same
/// error type), or a panic for an error no scenario expects.
fn unreadable(platform: Platform, entry: u64, e: comet::Error) -> Got {
    match e {
        comet::Error::Damaged { shard, damage } if shard == SHARD => {
            Got::Damaged { segment: damage.segment, chunk: damage.chunk, first: damage.first, end: damage.end }
        }
        comet::Error::Lost { shard, entry: e, start, end } if (shard, e) == (SHARD, entry) => Got::Lost { start, end },
        comet::Error::Unavailable { shard, entry: e, first, end } if (shard, e) == (SHARD, entry) => {
            Got::Unavailable { first, end }
        }
        e => panic!("{platform:?}: read {entry}: {e:?}"),
    }
}

struct StdSide {
    client: Client,
    reader: Option<Reader>,
    report: RecoveryReport,
}

impl StdSide {
    fn reader(&mut self) -> &mut Reader {
        let client = &self.client;
        self.reader.get_or_insert_with(|| client.reader(SHARD).expect("std: reader"))
    }
}

impl Side for StdSide {
    fn platform(&self) -> Platform {
        Std
    }

    fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    fn append(&mut self, payloads: &[Vec<u8>]) -> Range<u64> {
        self.client.append_shard(SHARD, payloads).expect("std: append").entries
    }

    fn sync(&mut self) {
        self.client.sync_shard(SHARD).expect("std: sync");
    }

    fn next_entry(&mut self) -> u64 {
        self.client.shard_len(SHARD).expect("std: len")
    }

    fn bounds(&mut self) -> (u64, u64) {
        self.reader().bounds().expect("std: bounds")
    }

    fn read(&mut self, entry: u64) -> Got {
        match self.reader().read(entry) {
            Ok(m) => Got::Data { framed: !m.is_zero_copy(), timestamp: m.timestamp, data: m.into_vec() },
            Err(e) => unreadable(Std, entry, e),
        }
    }

    fn consume(&mut self, group: &str, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut c = StdConsumer::new(&self.client, group).expect("std: consumer");
        let mut out = Vec::new();
        c.read_shard(SHARD, max, &mut out).expect("std: consume");
        c.ack_batch(&out).expect("std: ack");
        out.into_iter().map(|m| (m.id.entry, m.into_vec())).collect()
    }

    fn offset(&mut self, group: &str) -> u64 {
        StdConsumer::new(&self.client, group).expect("std: consumer").offset(SHARD).expect("std: offset")
    }

    fn reset(&mut self, group: &str, entry: u64) -> u64 {
        let mut c = StdConsumer::new(&self.client, group).expect("std: consumer");
        c.reset_offset(SHARD, entry).expect("std: reset")
    }

    fn try_retain(&mut self) -> Result<u64, comet::Error> {
        let r = self.client.run_retention_now()?;
        // The reader's cached maps may name deleted segments.
        self.reader = None;
        Ok(r.segments_deleted())
    }

    fn close(self: Box<Self>) {
        let StdSide { client, reader, .. } = *self;
        drop(reader);
        client.close().expect("std: close");
    }
}

struct EmbeddedSide {
    log: Log,
    buf: Vec<u8>,
    report: RecoveryReport,
}

impl Side for EmbeddedSide {
    fn platform(&self) -> Platform {
        Embedded
    }

    fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    fn append(&mut self, payloads: &[Vec<u8>]) -> Range<u64> {
        self.log.append(SHARD, now(), payloads).expect("embedded: append")
    }

    fn sync(&mut self) {
        self.log.sync(SHARD, now()).expect("embedded: sync");
    }

    fn next_entry(&mut self) -> u64 {
        self.log.next_entry(SHARD).expect("embedded: next entry")
    }

    fn bounds(&mut self) -> (u64, u64) {
        (self.log.first_entry(SHARD).expect("embedded: first"), self.log.durable_end(SHARD).expect("embedded: end"))
    }

    fn read(&mut self, entry: u64) -> Got {
        match self.log.read_into(SHARD, entry, &mut self.buf) {
            Ok(e) => {
                assert_eq!((e.shard, e.entry), (SHARD, entry));
                Got::Data { data: self.buf[..e.len].to_vec(), timestamp: e.timestamp, framed: e.compressed }
            }
            Err(e) => unreadable(Embedded, entry, e),
        }
    }

    fn consume(&mut self, group: &str, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut c = EmbeddedConsumer::new(group).expect("embedded: consumer");
        let mut out = Vec::new();
        while out.len() < max {
            match c.next(&mut self.log, SHARD, &mut self.buf).expect("embedded: consume") {
                Some(e) => out.push((e.entry, self.buf[..e.len].to_vec())),
                None => break,
            }
        }
        if let Some(&(last, _)) = out.last() {
            assert_eq!(c.ack(&self.log, SHARD).expect("embedded: ack"), last + 1);
        }
        out
    }

    fn offset(&mut self, group: &str) -> u64 {
        let stored = self.log.group_offset(SHARD, group).expect("embedded: group offset");
        stored.unwrap_or_else(|| panic!("embedded: group {group} has no offset"))
    }

    fn reset(&mut self, group: &str, entry: u64) -> u64 {
        self.log.reset_offset(SHARD, group, entry).expect("embedded: reset")
    }

    fn try_retain(&mut self) -> Result<u64, comet::Error> {
        Ok(self.log.run_retention(now())?.segments)
    }

    fn close(self: Box<Self>) {
        self.log.close().expect("embedded: close");
    }
}

/// Appends `range` (entry `i` gets `payload(i)`) in batches of 1 to 13
/// entries and checks the numbers each batch got.
fn write(side: &mut dyn Side, range: Range<u64>) {
    let mut i = range.start;
    assert_eq!(side.next_entry(), i, "{}: numbering continues", side.platform().name());
    while i < range.end {
        let n = (i % 13 + 1).min(range.end - i);
        let batch: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
        assert_eq!(side.append(&batch), i..i + n, "{}: batch at {i}", side.platform().name());
        i += n;
    }
}

/// Reads `range` and checks every payload and how it was stored; returns
/// the timestamps.
fn check(side: &mut dyn Side, range: Range<u64>) -> Vec<u64> {
    let name = side.platform().name();
    let mut ts = Vec::new();
    for i in range {
        let (data, timestamp, framed) = side.read(i).data(i);
        let want = payload(i);
        assert_eq!(data, want, "{name}: entry {i}");
        assert_eq!(framed, stored_as_frame(&want), "{name}: entry {i} stored as a frame");
        assert!(timestamp > 0, "{name}: entry {i}");
        ts.push(timestamp);
    }
    assert!(ts.is_sorted(), "{name}: timestamps never decrease");
    ts
}

/// The shard's directory.
fn shard_dir(root: &Path) -> PathBuf {
    root.join("shard-0000")
}

/// Base entries of the shard's segment files, sorted.
fn segment_bases(root: &Path) -> Vec<u64> {
    comet_tests::segments(&shard_dir(root)).into_iter().map(|(base, _)| base).collect()
}

fn segment_path(root: &Path, base: u64) -> PathBuf {
    shard_dir(root).join(format!("log-{base:020}.comet"))
}

/// Runs a scenario both ways: `std_then_embedded` (std writes first) and
/// `embedded_then_std`.
macro_rules! both_ways {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn std_then_embedded() {
                super::$scenario(super::Std);
            }

            #[test]
            fn embedded_then_std() {
                super::$scenario(super::Embedded);
            }
        }
    )*};
}

both_ways!(write_read, reopen_append, consumer_groups, retention, damage_repair, damaged_state_files);

/// 1. `a` writes, syncs and closes; `b` reads every entry exactly, with
///    the timestamps `a` reads.
fn write_read(a: Platform) {
    const N: u64 = 500;
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    let mut w = a.open(t.path());
    write(&mut *w, 0..N);
    w.sync();
    assert_eq!(w.bounds(), (0, N));
    let ts_a = check(&mut *w, 0..N);
    w.close();
    assert!(segment_bases(t.path()).len() >= 3, "rotations happened: {:?}", segment_bases(t.path()));

    let mut r = b.open(t.path());
    assert!(r.recovery().clean, "{} after {}'s close: {:?}", b.name(), a.name(), r.recovery());
    assert_eq!(r.bounds(), (0, N));
    assert_eq!(r.next_entry(), N);
    let ts_b = check(&mut *r, 0..N);
    assert_eq!(ts_b, ts_a, "timestamps");
    assert_eq!(r.read(N), Got::Unavailable { first: 0, end: N });
    // The payload kinds all occurred, compressed ones among them.
    let kinds = |f: &dyn Fn(&[u8]) -> bool| (0..N).filter(|&i| f(&payload(i))).count();
    assert!(kinds(&|p| p.is_empty()) > 10);
    assert!(kinds(&|p| p.starts_with(&MAGIC) && p.len() < MIN_COMPRESS as usize) > 10);
    assert!(kinds(&|p| p.starts_with(&MAGIC) && p.len() >= MIN_COMPRESS as usize) > 10);
    assert!(kinds(&|p| !p.starts_with(&MAGIC) && p.len() >= MIN_COMPRESS as usize) > 10);
    r.close();
}

/// 2. `b` reopens `a`'s shard for writing and appends; numbering goes on
///    and each side reads both sides' entries.
fn reopen_append(a: Platform) {
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    let mut w = a.open(t.path());
    write(&mut *w, 0..150);
    w.sync();
    w.close();
    let after_a = segment_bases(t.path());

    let mut w = b.open(t.path());
    assert_eq!(w.bounds(), (0, 150));
    write(&mut *w, 150..300);
    w.sync();
    assert_eq!(w.bounds(), (0, 300));
    check(&mut *w, 0..300);
    w.close();
    let after_b = segment_bases(t.path());
    assert!(after_b.len() > after_a.len(), "{} rotated: {after_a:?} -> {after_b:?}", b.name());

    let mut w = a.open(t.path());
    assert_eq!(w.bounds(), (0, 300));
    let ts = check(&mut *w, 0..300);
    write(&mut *w, 300..350);
    w.close(); // close syncs

    let mut r = b.open(t.path());
    assert_eq!(r.bounds(), (0, 350));
    assert_eq!(check(&mut *r, 0..300), ts);
    check(&mut *r, 300..350);
    r.close();
}

/// Checks that `got` are entries `range`, with their payloads.
fn assert_consumed(got: &[(u64, Vec<u8>)], range: Range<u64>, who: &str) {
    let entries: Vec<u64> = got.iter().map(|(e, _)| *e).collect();
    assert_eq!(entries, range.collect::<Vec<_>>(), "{who}: entries consumed");
    for (e, data) in got {
        assert_eq!(data, &payload(*e), "{who}: entry {e}");
    }
}

/// `a` writes entries `0..n` to a new shard in `dir`, syncs, `group`
/// consumes and acks the first `acked` of them, and `a` closes.
fn written_and_consumed(a: Platform, dir: &Path, n: u64, group: &str, acked: u64) {
    let mut s = a.open(dir);
    write(&mut *s, 0..n);
    s.sync();
    assert_consumed(&s.consume(group, acked as usize), 0..acked, a.name());
    assert_eq!(s.offset(group), acked, "{}", a.name());
    s.close();
}

/// 3. Consumer groups: `b`'s consumer resumes at `a`'s ack, and `a` sees
///    `b`'s.
fn consumer_groups(a: Platform) {
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    written_and_consumed(a, t.path(), 200, "g", 30);

    let mut s = b.open(t.path());
    assert_eq!(s.offset("g"), 30, "{} sees {}'s offset", b.name(), a.name());
    assert_consumed(&s.consume("g", 45), 30..75, b.name());
    assert_eq!(s.offset("g"), 75);
    assert_consumed(&s.consume("other", 10), 0..10, b.name());
    write(&mut *s, 200..220);
    s.sync();
    s.close();

    let mut s = a.open(t.path());
    assert_eq!(s.offset("g"), 75, "{} sees {}'s offset", a.name(), b.name());
    assert_eq!(s.offset("other"), 10);
    assert_consumed(&s.consume("g", 1000), 75..220, a.name());
    assert_eq!(s.offset("g"), 220);
    s.close();

    let mut s = b.open(t.path());
    assert_eq!(s.offset("g"), 220);
    assert_eq!(s.consume("g", 10), Vec::new(), "caught up");
    assert_consumed(&s.consume("other", 5), 10..15, b.name());
    // A reset past the durable end stops at it: entries appended later
    // are delivered, not skipped.
    assert_eq!(s.reset("late", 1_000_000), 220, "{}: reset past the end", b.name());
    assert_eq!(s.offset("late"), 220);
    write(&mut *s, 220..230);
    s.sync();
    assert_consumed(&s.consume("late", 100), 220..230, b.name());
    assert_eq!(s.reset("late", 3), 3, "{}: replay", b.name());
    s.close();

    let mut s = a.open(t.path());
    assert_eq!(s.reset("late2", u64::MAX), 230, "{}: reset past the end", a.name());
    assert_consumed(&s.consume("late", 2), 3..5, a.name());
    s.close();
}

/// Retention with offsets it cannot read: a group protects entries of
/// shard 0, then its `offsets.state` header is damaged under the open
/// writer. The pass deletes nothing of shard 0 (never reading the damage as
/// "no group has acked"), says so in its report, and still cleans shard 1:
/// damage to one shard's offsets stays in that shard.
#[test]
fn damaged_offsets_keep_their_shard_and_only_their_shard() {
    let s1 = ShardId::new(1).unwrap();
    for a in [Std, Embedded] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let shard_bases = |s: ShardId| {
            let dir = root.join(format!("shard-{:04}", s.get()));
            comet_tests::segments(&dir).into_iter().map(|(b, _)| b).collect::<Vec<u64>>()
        };
        let payloads: Vec<Vec<u8>> = (0..600).map(payload).collect();
        let damage = || {
            let offsets = shard_dir(root).join("offsets.state");
            let mut f = std::fs::OpenOptions::new().write(true).open(offsets).unwrap();
            f.write_all(b"garbage!").unwrap();
        };
        let (before0, before1, report) = match a {
            Std => {
                let mut c = std_config();
                c.retention.max_shard_size = Some(1);
                let client = Client::open(root, c).unwrap();
                for s in [SHARD, s1] {
                    for p in payloads.chunks(10) {
                        client.append_shard(s, p).unwrap();
                    }
                }
                client.sync().unwrap();
                let mut g = StdConsumer::new(&client, "slow").unwrap();
                g.ack_up_to(MessageId { shard: SHARD, entry: 9 }).unwrap();
                let (b0, b1) = (shard_bases(SHARD), shard_bases(s1));
                damage();
                let r = client.run_retention_now().expect("std: the pass goes on");
                let r0 = r.shards.iter().find(|x| x.shard == Some(SHARD)).unwrap();
                assert_eq!(r0.segments_deleted, 0);
                let why = r0.skipped.as_deref().unwrap_or_default();
                assert!(why.contains("offsets"), "std: {why:?}");
                let r1 = r.shards.iter().find(|x| x.shard == Some(s1)).unwrap();
                let deleted1 = r1.segments_deleted;
                // retention's view plans shard 0 as the pass treats it
                let st = client.retention_stats().expect("std: retention stats");
                let next0 = st.iter().find(|x| x.shard == SHARD).unwrap().next;
                assert!(next0.delete == 0 && next0.protected > 0, "std: {next0:?}");
                client.close().unwrap();
                (b0, b1, deleted1)
            }
            Embedded => {
                let mut c = embedded_config();
                c.shard_count = 2;
                c.retention.max_shard_size = Some(1);
                let mut log = Log::open(root, c, now()).unwrap();
                for s in [SHARD, s1] {
                    for p in payloads.chunks(10) {
                        log.append(s, now(), p).unwrap();
                    }
                }
                log.sync_all(now()).unwrap();
                log.ack(SHARD, "slow", 10).unwrap();
                let (b0, b1) = (shard_bases(SHARD), shard_bases(s1));
                damage();
                let r = log.run_retention(now()).expect("embedded: the pass goes on");
                assert_eq!(r.offsets_unreadable, 1, "{r:?}");
                log.close().unwrap();
                (b0, b1, r.segments)
            }
        };
        assert!(before0.len() > 2 && before1.len() > 2, "{before0:?} {before1:?}");
        assert_eq!(shard_bases(SHARD), before0, "{}: nothing of shard 0 deleted", a.name());
        assert!(report > 0 && shard_bases(s1).len() < before1.len(), "{}: shard 1 cleaned", a.name());
        // `comet`'s stats name the damage instead of listing no groups.
        let c = Client::open_read_only(root, std_config()).unwrap();
        let stats = c.shard_stats(SHARD).unwrap();
        assert!(stats.groups.is_empty());
        assert!(stats.groups_error.as_deref().is_some_and(|e| e.contains("offsets")), "{:?}", stats.groups_error);
        c.close().unwrap();
    }
}

/// 6. State files of the wrong size: `a` writes and a group acks, then
///    `comet.state` is cut short and `offsets.state` has bytes appended.
///    `b`'s writer sets both aside under their `.corrupt` names (the same
///    names and rule in both crates), rebuilds the head from the segments,
///    salvages the group's offset, and reads, appends and consumes on.
fn damaged_state_files(a: Platform) {
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    written_and_consumed(a, t.path(), 200, "g", 50);
    let sd = shard_dir(t.path());
    std::fs::write(sd.join("comet.state"), b"short").unwrap();
    let mut offsets = std::fs::read(sd.join("offsets.state")).unwrap();
    offsets.extend_from_slice(&[0xAB; 100]);
    std::fs::write(sd.join("offsets.state"), &offsets).unwrap();

    let mut s = b.open(t.path());
    assert!(!s.recovery().clean, "{}: {:?}", b.name(), s.recovery());
    assert_eq!(s.bounds(), (0, 200), "{}", b.name());
    check(&mut *s, 0..200);
    assert_eq!(s.offset("g"), 50, "{}: the group's offset salvaged", b.name());
    write(&mut *s, 200..210);
    s.sync();
    assert_consumed(&s.consume("g", 1000), 50..210, b.name());
    s.close();
    for name in ["comet.state.corrupt", "offsets.state.corrupt"] {
        assert!(sd.join(name).exists(), "{}: {name}", b.name());
    }
    let mut s = a.open(t.path());
    assert_eq!(s.offset("g"), 210);
    check(&mut *s, 0..210);
    s.close();
}

/// The base of the segment holding `entry`.
fn segment_of(bases: &[u64], entry: u64) -> u64 {
    *bases.iter().rev().find(|&&b| b <= entry).expect("a segment holds the entry")
}

/// Checks the retained entries and the boundary below them.
fn check_retained(s: &mut dyn Side, first: u64, end: u64) {
    assert_eq!(s.bounds(), (first, end), "{}: bounds", s.platform().name());
    assert_eq!(s.read(first - 1), Got::Unavailable { first, end }, "{}", s.platform().name());
    check(s, first..end);
}

/// 4. Retention by one side deletes exactly the segments a group consumed
///    (protect-unconsumed); the other side reads what is retained and
///    reports the first retained entry. Then the roles swap.
fn retention(a: Platform) {
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    written_and_consumed(a, t.path(), 600, "slow", 250);

    let bases = segment_bases(t.path());
    let first = segment_of(&bases, 250);
    assert!(first > 0 && first < *bases.last().unwrap(), "{first} in {bases:?}");
    // Every limit wants everything gone; the group protects from 250 on.
    let mut s = b.open_with(t.path(), Some(1));
    assert_eq!(s.retain(), bases.iter().filter(|&&x| x < first).count() as u64, "{} retention", b.name());
    assert_eq!(segment_bases(t.path()), bases.iter().copied().filter(|&x| x >= first).collect::<Vec<_>>());
    check_retained(&mut *s, first, 600);
    assert_eq!(s.offset("slow"), 250);
    assert_eq!(s.retain(), 0, "nothing more may go");
    s.close();

    let mut s = a.open(t.path());
    check_retained(&mut *s, first, 600);
    assert_eq!(s.offset("slow"), 250);
    assert_consumed(&s.consume("slow", 250), 250..500, a.name());
    s.close();

    // Now `a` runs retention with the group at 500, and `b` reads.
    let bases = segment_bases(t.path());
    let first = segment_of(&bases, 500);
    assert!(first > bases[0], "{first} in {bases:?}");
    let mut s = a.open_with(t.path(), Some(1));
    assert_eq!(s.retain(), bases.iter().filter(|&&x| x < first).count() as u64, "{} retention", a.name());
    check_retained(&mut *s, first, 600);
    s.close();

    let mut s = b.open(t.path());
    check_retained(&mut *s, first, 600);
    assert_eq!(s.offset("slow"), 500);
    write(&mut *s, 600..620);
    s.sync();
    check(&mut *s, 600..620);
    s.close();
}

/// Byte offsets of the entries of a segment file (walking the framing).
fn entry_offsets(seg: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= seg.len() && seg[at..at + 12] != [0; 12] {
        out.push(at);
        at += 12 + u32::from_le_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(at, seg.len(), "a sealed segment is whole entries");
    out
}

/// 5. A byte flipped in a sealed segment `a` wrote: `b` reads the chunk as
///    `Damaged`, the rest exactly; `comet::repair` records it as lost and
///    both sides read `Lost` there.
fn damage_repair(a: Platform) {
    let b = a.other();
    let t = tempfile::tempdir().unwrap();
    let mut w = a.open(t.path());
    write(&mut *w, 0..300);
    w.sync();
    w.close();

    let bases = segment_bases(t.path());
    assert!(bases.len() >= 3, "{bases:?}");
    let (seg, next) = (bases[1], bases[2]);
    assert!(next - seg >= 24, "the sealed segment has three chunks of 8: {bases:?}");
    let path = segment_path(t.path(), seg);
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = entry_offsets(&bytes);
    assert_eq!(offsets.len() as u64, next - seg);
    // The low byte of entry seg+10's timestamp: chunk 1 (entries 8..16).
    bytes[offsets[10] + 4] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let damaged = seg + 8..seg + 16;

    for side in [b, a] {
        let mut r = side.open(t.path());
        assert_eq!(r.bounds(), (0, 300));
        for i in 0..300 {
            if damaged.contains(&i) {
                let want = Got::Damaged { segment: seg, chunk: 1, first: damaged.start, end: damaged.end };
                assert_eq!(r.read(i), want, "{}: entry {i}", side.name());
            } else {
                assert_eq!(r.read(i).data(i).0, payload(i), "{}: entry {i}", side.name());
            }
        }
        r.close();
    }

    let repaired = comet::repair(t.path()).expect("repair");
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].repair.lost_chunks, vec![(seg, 1)], "{:?}", repaired[0]);

    for side in [Embedded, Std] {
        let mut r = side.open(t.path());
        assert_eq!(r.bounds(), (0, 300));
        for i in 0..300 {
            if damaged.contains(&i) {
                assert_eq!(r.read(i), Got::Lost { start: damaged.start, end: damaged.end }, "{}: {i}", side.name());
            } else {
                assert_eq!(r.read(i).data(i).0, payload(i), "{}: entry {i}", side.name());
            }
        }
        r.close();
    }
    // Both keep writing after the repair.
    let mut w = b.open(t.path());
    write(&mut *w, 300..320);
    w.close();
    let mut r = a.open(t.path());
    check(&mut *r, 300..320);
    assert_eq!(r.read(seg + 9), Got::Lost { start: damaged.start, end: damaged.end });
    r.close();
}

// ---------------------------------------------------------------------------
// 6. Crashes: a writer process killed with SIGKILL.

const CHILD_DIR: &str = "COMET_INTEROP_CHILD_DIR";
const CHILD_PLATFORM: &str = "COMET_INTEROP_CHILD_PLATFORM";

/// The child half of the crash tests: appends forever with the platform
/// `COMET_INTEROP_CHILD_PLATFORM` names, syncing after every third batch
/// and printing `synced <end>` after each completed sync (between syncs
/// full write buffers are flushed, so a kill finds unsynced bytes in the
/// files). Not a test of its own.
#[test]
#[ignore = "the child half of the interop crash tests, which run it in a child process and kill it"]
fn crash_child() {
    let dir = std::env::var(CHILD_DIR)
        .unwrap_or_else(|_| panic!("only the interop crash tests run this (they set {CHILD_DIR})"));
    let platform = std::env::var(CHILD_PLATFORM).ok().and_then(|p| Platform::from_name(&p)).expect(CHILD_PLATFORM);
    let mut w = platform.open(Path::new(&dir));
    let mut i = w.next_entry();
    let mut out = std::io::stdout().lock();
    for batch in 0u64.. {
        let n = i % 7 + 1;
        let entries: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
        assert_eq!(w.append(&entries), i..i + n);
        i += n;
        if batch % 3 == 2 {
            w.sync();
            writeln!(out, "synced {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// Starts [`crash_child`] writing with `platform` in `dir`.
fn spawn_child(dir: &Path, platform: Platform) -> Running {
    ChildTest::new("crash_child").env(CHILD_DIR, dir).env(CHILD_PLATFORM, platform.name()).spawn()
}

/// The end a `synced <end>` line of [`crash_child`] reports.
fn synced_end(line: &str) -> Option<u64> {
    line.strip_prefix("synced ").map(|n| n.parse().unwrap())
}

/// While a child of the other platform writes: this platform's writer is
/// refused with `Locked` naming the child's pid, and (std) a read-only
/// client reads what the child synced.
fn check_live(dir: &Path, me: Platform, child_pid: u32, synced: u64) {
    match me {
        Std => {
            let c = Client::open(dir, std_config()).unwrap();
            match c.append_shard(SHARD, &[b"intruder"]) {
                Err(comet::Error::Locked { shard, pid }) => assert_eq!((shard, pid), (SHARD, Some(child_pid))),
                other => panic!("std append while the embedded child writes: {other:?}"),
            }
            c.close().unwrap();
            let ro = Client::open_read_only(dir, std_config()).unwrap();
            let mut r = ro.reader(SHARD).unwrap();
            let (first, end) = r.bounds().unwrap();
            assert!(first == 0 && end >= synced, "live bounds {first}..{end}, synced {synced}");
            for i in 0..synced {
                let m = r.read(i).unwrap_or_else(|e| panic!("live read {i}: {e:?}"));
                assert_eq!(m.data(), &payload(i)[..], "live read {i}");
            }
            ro.close().unwrap();
        }
        Embedded => match Log::open(dir, embedded_config(), now()) {
            Err(comet_embedded::Error::Locked { shard, pid }) => assert_eq!((shard, pid), (SHARD, Some(child_pid))),
            other => panic!("embedded open while the std child writes: {other:?}"),
        },
    }
}

/// Kill rounds: in round `k` a child writes with `children[k]` until it
/// synced at least 250 more entries and is killed; the other platform then
/// recovers, reads every entry up to its durable end (which covers
/// everything the child reported synced) exactly, appends a few entries of
/// its own and closes.
fn crash_rounds(children: &[Platform]) {
    let t = tempfile::tempdir().unwrap();
    let mut start = 0;
    for (round, &platform) in children.iter().enumerate() {
        let me = platform.other();
        let child = spawn_child(t.path(), platform);
        let mut synced = start;
        let mut live_checked = false;
        while synced < start + 250 || !live_checked {
            match child.line_within(Duration::from_secs(60)) {
                Ok(line) => synced = synced_end(&line).unwrap_or(synced),
                Err(e) => {
                    let stderr = child.kill().stderr;
                    panic!("round {round}: the {} child stopped reporting ({e}); stderr: {stderr}", platform.name());
                }
            }
            if !live_checked && synced >= start + 50 {
                check_live(t.path(), me, child.pid(), synced);
                live_checked = true;
            }
        }
        // A few ms more, so that the kill lands anywhere in the loop.
        std::thread::sleep(Duration::from_millis(round as u64 * 3 % 10));
        let killed = child.kill(); // SIGKILL, mid-append
        // Lines read after the loop stopped were synced too.
        synced = killed.rest.iter().filter_map(|l| synced_end(l)).fold(synced, u64::max);

        let mut s = me.open(t.path());
        let report = s.recovery().clone();
        assert!(!report.clean, "round {round}: the child was killed, not closed: {report:?}");
        let (first, end) = s.bounds();
        assert_eq!(first, 0, "round {round}");
        assert!(end >= synced, "round {round}: {} lost synced entries: end {end} < {synced}: {report:?}", me.name());
        assert_eq!(s.next_entry(), end, "round {round}: {report:?}");
        check(&mut *s, 0..end);
        write(&mut *s, end..end + 5);
        s.sync();
        s.close();
        eprintln!(
            "round {round}: {} child killed after syncing {synced}; {} recovered {end} entries \
             ({} torn tails, {} bytes scanned)",
            platform.name(),
            me.name(),
            report.torn.len(),
            report.scanned_bytes
        );
        start = end + 5;
    }
    let mut s = children[0].open(t.path());
    assert_eq!(s.bounds(), (0, start));
    check(&mut *s, 0..start);
    s.close();
}

#[test]
fn crash_std_writer_killed_embedded_recovers() {
    crash_rounds(&[Std, Std, Std]);
}

#[test]
fn crash_embedded_writer_killed_std_recovers() {
    crash_rounds(&[Embedded, Embedded, Embedded]);
}

#[test]
fn crash_alternating_writers_killed() {
    crash_rounds(&[Std, Embedded, Std, Embedded]);
}

// ---------------------------------------------------------------------------
// 7. Both platforms live in one process.

/// A std read-only client reads entries while an embedded `Log` in another
/// thread appends them; what is not synced is not visible.
#[test]
fn live_std_reader_while_embedded_writes_in_another_thread() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), embedded_config(), now()).unwrap();
    log.append(SHARD, now(), &[payload(0)]).unwrap();
    log.sync(SHARD, now()).unwrap();
    let ro = Client::open_read_only(t.path(), std_config()).unwrap();
    let mut r = ro.reader(SHARD).unwrap();
    assert_eq!(r.bounds().unwrap(), (0, 1));
    // Appended but not synced: invisible to the other platform.
    log.append(SHARD, now(), &[payload(1)]).unwrap();
    assert_eq!(r.bounds().unwrap(), (0, 1));
    assert!(matches!(r.read(1), Err(comet::Error::Unavailable { entry: 1, first: 0, end: 1, .. })));
    log.sync(SHARD, now()).unwrap();
    assert_eq!(r.bounds().unwrap(), (0, 2));

    const N: u64 = 1500;
    let writer = std::thread::spawn(move || {
        let mut i = 2;
        while i < N {
            let n = (i % 9 + 1).min(N - i);
            let batch: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
            assert_eq!(log.append(SHARD, now(), &batch).unwrap(), i..i + n);
            i += n;
            log.sync(SHARD, now()).unwrap();
        }
        log.close().unwrap();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut next = 0;
    let mut polls = 0;
    while next < N {
        let (_, end) = r.bounds().unwrap();
        polls += 1;
        for i in next..end {
            let m = r.read(i).unwrap_or_else(|e| panic!("entry {i} of {end}: {e:?}"));
            assert_eq!(m.data(), &payload(i)[..], "entry {i}");
            assert_eq!(m.is_zero_copy(), !stored_as_frame(&payload(i)), "entry {i}");
        }
        next = end;
        assert!(std::time::Instant::now() < deadline, "the reader saw only {next} of {N} entries");
        std::thread::yield_now();
    }
    writer.join().unwrap();
    assert_eq!(r.bounds().unwrap(), (0, N));
    assert!(polls > 1, "the reader read while the writer wrote");
    assert!(segment_bases(t.path()).len() > 10);
    ro.close().unwrap();
}

/// Offsets are shared live: a std consumer acks while the embedded `Log`
/// holds the shard, and each side sees the other's offset at once.
#[test]
fn live_offsets_are_shared_between_platforms() {
    let t = tempfile::tempdir().unwrap();
    let mut log = Log::open(t.path(), embedded_config(), now()).unwrap();
    let batch: Vec<Vec<u8>> = (0..100).map(payload).collect();
    log.append(SHARD, now(), &batch).unwrap();
    log.sync(SHARD, now()).unwrap();
    let client = Client::open(t.path(), std_config()).unwrap();
    let mut sc = StdConsumer::new(&client, "live").unwrap();
    let mut out = Vec::new();
    assert_eq!(sc.read_shard(SHARD, 20, &mut out).unwrap(), 20);
    assert_eq!(out[19].data(), &payload(19)[..]);
    sc.ack_through(&out[19]).unwrap();
    assert_eq!(log.group_offset(SHARD, "live").unwrap(), Some(20));
    assert_eq!(log.lag(SHARD, "live").unwrap(), 80);

    let mut ec = EmbeddedConsumer::new("live").unwrap();
    let mut buf = vec![0; 64 << 10];
    for i in 20..50 {
        let e = ec.next(&mut log, SHARD, &mut buf).unwrap().unwrap();
        assert_eq!((e.entry, &buf[..e.len]), (i, &payload(i)[..]));
    }
    assert_eq!(ec.ack(&log, SHARD).unwrap(), 50);
    assert_eq!(sc.offset(SHARD).unwrap(), 50);
    assert_eq!(sc.lag(SHARD).unwrap(), 50);
    out.clear();
    sc.read_shard(SHARD, 1, &mut out).unwrap();
    assert_eq!(out[0].id.entry, 50);
    // Offsets never move back, whichever side acks.
    sc.ack(&[MessageId { shard: SHARD, entry: 10 }]).unwrap();
    assert_eq!(log.group_offset(SHARD, "live").unwrap(), Some(50));
    assert_eq!(log.ack(SHARD, "live", 30).unwrap(), 50);
    assert_eq!(sc.offset(SHARD).unwrap(), 50);
    client.close().unwrap();
    log.close().unwrap();
}

/// A shard one platform writes is `Locked` for the other's writer, which
/// names this process; once released, the other opens it.
#[test]
fn live_a_held_shard_is_locked_for_the_other_platform() {
    let me = std::process::id();
    let t = tempfile::tempdir().unwrap();

    let mut log = Log::open(t.path(), embedded_config(), now()).unwrap();
    log.append(SHARD, now(), &[payload(0)]).unwrap();
    log.sync(SHARD, now()).unwrap();
    let client = Client::open(t.path(), std_config()).unwrap();
    match client.append_shard(SHARD, &[b"x"]) {
        Err(comet::Error::Locked { shard, pid }) => assert_eq!((shard, pid), (SHARD, Some(me))),
        other => panic!("std append on the embedded log's shard: {other:?}"),
    }
    assert!(matches!(client.recover_shard(SHARD), Err(comet::Error::Locked { pid: Some(p), .. }) if p == me));
    // Reading needs no lock.
    assert_eq!(client.reader(SHARD).unwrap().read(0).unwrap().data(), &payload(0)[..]);
    log.close().unwrap();
    assert_eq!(client.append_shard(SHARD, &[payload(1)]).unwrap().entries, 1..2);
    client.sync().unwrap();

    match Log::open(t.path(), embedded_config(), now()) {
        Err(comet_embedded::Error::Locked { shard, pid }) => assert_eq!((shard, pid), (SHARD, Some(me))),
        other => panic!("embedded open of the std client's shard: {other:?}"),
    }
    client.close().unwrap();
    let mut log = Log::open(t.path(), embedded_config(), now()).unwrap();
    assert_eq!(log.durable_end(SHARD).unwrap(), 2);
    let mut buf = vec![0; 4096];
    let e = log.read_into(SHARD, 1, &mut buf).unwrap();
    assert_eq!(&buf[..e.len], &payload(1)[..]);
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// Entries larger than the other platform's `max_entry_size`.

/// `a` (configured for entries of up to 16 KiB) writes an incompressible
/// 10 000-byte entry between two small ones and closes cleanly; `b`,
/// configured for entries of up to 4 KiB, opens the shard for writing and
/// closes it. `b` may refuse the large entry with an error, but it must not
/// declare the synced, checksummed chunk lost on disk: afterwards `a`
/// still reads all three entries.
fn larger_entry_than_the_opener_allows(a: Platform) {
    let t = tempfile::tempdir().unwrap();
    let big = noise(10_000, 0x1234_5678_9abc_def1);
    let entries = [payload(3), big, payload(4)];
    let mut std_cfg = std_config();
    std_cfg.storage.max_entry_size = if a == Std { 16 << 10 } else { MAX_ENTRY };
    let mut emb_cfg = embedded_config();
    if a == Embedded {
        emb_cfg.max_entry_size = 16 << 10;
        emb_cfg.write_buffer_bytes = 32 << 10;
        emb_cfg.read_buffer_bytes = 32 << 10;
    }
    match a {
        Std => {
            let c = Client::open(t.path(), std_cfg).unwrap();
            assert_eq!(c.append_shard(SHARD, &entries).unwrap().entries, 0..3);
            c.close().unwrap();
        }
        Embedded => {
            let mut log = Log::open(t.path(), emb_cfg, now()).unwrap();
            assert_eq!(log.append(SHARD, now(), &entries).unwrap(), 0..3);
            log.close().unwrap();
        }
    }
    let report = match a.other() {
        Std => {
            let c = Client::open(t.path(), std_cfg).unwrap();
            let report = c.recover_shard(SHARD).unwrap();
            c.close().unwrap();
            report
        }
        Embedded => {
            let log = Log::open(t.path(), embedded_config(), now()).unwrap();
            let report = log.recovery(SHARD).unwrap().clone();
            log.close().unwrap();
            report
        }
    };
    if a.other() == Embedded {
        // The opener's read buffer cannot hold the big entry: a typed error
        // for that entry alone; its neighbours in the same chunk read.
        let mut log = Log::open(t.path(), embedded_config(), now()).unwrap();
        let mut buf = vec![0; 64 << 10];
        for i in [0u64, 2] {
            let e = log.read_into(SHARD, i, &mut buf).unwrap_or_else(|e| panic!("entry {i}: {e:?}"));
            assert_eq!(&buf[..e.len], &entries[i as usize][..], "entry {i}");
        }
        match log.read_into(SHARD, 1, &mut buf) {
            Ok(e) => assert_eq!(&buf[..e.len], &entries[1][..]),
            Err(comet_embedded::Error::BufferTooSmall { .. }) => {}
            Err(e) => panic!("entry 1: {e:?}"),
        }
        log.close().unwrap();
    }
    let check_all = |what: &str| match a {
        Std => {
            let c = Client::open_read_only(t.path(), std_cfg).unwrap();
            let mut r = c.reader(SHARD).unwrap();
            for (i, want) in entries.iter().enumerate() {
                let m = r.read(i as u64).unwrap_or_else(|e| panic!("{what}: std reads entry {i}: {e:?}"));
                assert_eq!(m.data(), &want[..], "{what}: entry {i}");
            }
        }
        Embedded => {
            let mut log = Log::open(t.path(), emb_cfg, now()).unwrap();
            let mut buf = vec![0; 32 << 10];
            for (i, want) in entries.iter().enumerate() {
                let e = log
                    .read_into(SHARD, i as u64, &mut buf)
                    .unwrap_or_else(|e| panic!("{what}: embedded reads entry {i}: {e:?}"));
                assert_eq!(&buf[..e.len], &want[..], "{what}: entry {i}");
            }
            log.close().unwrap();
        }
    };
    assert!(report.lost_chunks.is_empty() && report.missing.is_empty(), "{} recovery: {report:?}", a.other().name());
    check_all("after the other platform's open");
}

#[test]
fn large_entry_std_writes_embedded_opens() {
    larger_entry_than_the_opener_allows(Std);
}

#[test]
fn large_entry_embedded_writes_std_opens() {
    larger_entry_than_the_opener_allows(Embedded);
}

/// A data directory path that is no directory (a file, a FIFO, a symlink to
/// a device) is refused the same way by both platforms' opens and by
/// `verify`/`repair`: one error type, the path, and `not a directory`,
/// without hanging on the FIFO.
#[test]
fn a_data_directory_that_is_no_directory_is_refused_alike() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let fifo = t.path().join("fifo");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
    let device = t.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    for path in [file, fifo, device] {
        let errors = [
            ("comet open", Client::open(&path, std_config()).map(drop)),
            ("comet read-only open", Client::open_read_only(&path, std_config()).map(drop)),
            ("comet-embedded open", Log::open(&path, embedded_config(), now()).map(drop)),
            ("verify", comet::verify(&path).map(drop)),
            ("repair", comet_embedded::repair(&path).map(drop)),
        ];
        for (what, r) in errors {
            let e = r.expect_err(what);
            let comet::Error::Io { path: p, source, .. } = &e else { panic!("{what} on {}: {e:?}", path.display()) };
            assert_eq!((p, source.kind()), (&path, std::io::ErrorKind::NotADirectory), "{what}: {e:?}");
            assert_eq!(e.chain().to_string(), format!("open {}: not a directory", path.display()), "{what}");
        }
    }
}
