//! Helpers shared by the integration tests.
#![allow(dead_code)]

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

pub fn json(i: u64) -> Vec<u8> {
    format!(
        "{{\"ts\":{},\"level\":\"info\",\"svc\":\"edge-agent\",\"msg\":\"sent batch\",\"seq\":{i},\"pad\":\"{}\"}}",
        1_700_000_000_000u64 + i,
        "x".repeat((i % 50) as usize)
    )
    .into_bytes()
}
