//! Helpers shared by the tests that run the `comet` binary.
#![allow(dead_code, clippy::cast_possible_truncation)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use comet::{Client, Config};

/// The `comet` binary with `args`.
pub fn comet<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(env!("CARGO_BIN_EXE_comet"));
    c.args(args);
    c.env_remove("COMET_DEBUG");
    c
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `comet args` with `stdin` and waits.
pub fn run_with_stdin<I, S>(args: I, stdin: &[u8]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child =
        comet(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn comet");
    // A child that fails before reading its input closes the pipe early.
    match child.stdin.take().expect("stdin").write_all(stdin) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
        _ => {}
    }
    child.wait_with_output().expect("wait for comet").into()
}

/// Runs `comet args` with empty stdin and waits.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_with_stdin(args, b"")
}

/// Asserts a usage or I/O failure: exit 2 and one `comet: ` line on stderr
/// containing `needle`.
pub fn assert_error(r: &Run, needle: &str) {
    assert_eq!(r.code, 2, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {r:?}");
    assert!(lines[0].starts_with("comet: "), "{r:?}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {r:?}");
}

/// A path as a `&str` argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Entries per segment in [`small_log`]: 100-byte entries, 4 KiB segments.
pub const PER_SEGMENT: u64 = 40;
/// Entries per checksum chunk in [`small_log`].
pub const INTERVAL: u64 = 10;

/// The payload of entry `i` in [`small_log`]: 88 bytes (100 with the header).
pub fn payload(i: u64) -> Vec<u8> {
    format!("entry {i:08} {}", "x".repeat(73)).into_bytes()
}

/// A data directory whose shard 1 holds `n` entries of 100 bytes in 4 KiB
/// segments (40 entries each) with chunks of 10 entries, closed cleanly.
pub fn small_log(root: &Path, n: u64) -> PathBuf {
    log_with_interval(root, n, INTERVAL as u32)
}

/// [`small_log`] with the default chunk interval (100 entries, so one chunk
/// per segment), as a shard opened with the default configuration expects
/// when it rebuilds a lost manifest.
pub fn default_interval_log(root: &Path, n: u64) -> PathBuf {
    log_with_interval(root, n, Config::default().indexing.boundary_interval)
}

fn log_with_interval(root: &Path, n: u64, interval: u32) -> PathBuf {
    let dir = root.join("log");
    let mut cfg = Config::default();
    cfg.storage.max_file_size = 4096;
    cfg.indexing.boundary_interval = interval;
    cfg.retention.cleanup_interval = None;
    let client = Client::open(&dir, cfg).expect("open");
    for i in 0..n {
        let p = payload(i);
        assert_eq!(p.len(), 88);
        client.append("test:shard:0001", &[p]).expect("append");
    }
    client.close().expect("close");
    dir
}

/// The path of segment `base` of shard 1 in [`small_log`].
pub fn segment(dir: &Path, base: u64) -> PathBuf {
    dir.join("shard-0001").join(format!("log-{base:020}.comet"))
}

/// Flips every bit of the byte at `offset` of `path`.
pub fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).expect("read");
    b[offset] ^= 0xff;
    std::fs::write(path, b).expect("write");
}

/// Every file under `dir` with its length and modification time.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}
