//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use comet_embedded::{EmbeddedConfig, ShardId};

pub const S0: ShardId = ShardId::MIN;

pub fn small() -> EmbeddedConfig {
    let mut c = EmbeddedConfig::default();
    c.write_buffer_bytes = 4096;
    c.read_buffer_bytes = 4096;
    c.max_entry_size = 1024;
    c.max_file_size = 8192;
    c.boundary_interval = 4;
    c.checkpoint_capacity = 64;
    c.retention.max_age = None;
    c.retention.cleanup_interval = None;
    c
}

pub fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 200) as usize;
    (0..len).map(|k| (i as u8).wrapping_add(k as u8)).collect()
}

/// Shard 0's segment files under the data directory `root`, `(base,
/// path)` in entry order.
pub fn segments(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(root.join("shard-0000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "comet"))
        .map(|p| (p.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap(), p))
        .collect();
    segs.sort();
    segs
}

/// XORs the byte at `at` of the file `path` with `mask`.
pub fn flip(path: &Path, at: u64, mask: u8) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, at).unwrap();
}

pub fn json(i: u64) -> Vec<u8> {
    format!(
        "{{\"ts\":{},\"level\":\"info\",\"svc\":\"edge-agent\",\"msg\":\"sent batch\",\"seq\":{i},\"pad\":\"{}\"}}",
        1_700_000_000_000u64 + i,
        "x".repeat((i % 50) as usize)
    )
    .into_bytes()
}
