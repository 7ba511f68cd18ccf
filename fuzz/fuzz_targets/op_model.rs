//! The op model (`comet_core::sim::model`): fuzzer bytes become a
//! configuration and a list of ops, run against the shard engine on
//! fault-injecting in-memory storage and checked against the model.
#![no_main]

use comet_core::sim::model::{decode, run_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cfg, ops) = decode(data);
    if let Err(e) = run_with(cfg, &ops) {
        panic!("{e}");
    }
});
