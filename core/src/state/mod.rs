//! Byte layouts of the two memory-mapped files: `comet.state` (durable head
//! and metrics) and `offsets.state` (consumer-group offsets).
//!
//! The core only defines layouts (offsets, plain structs, codecs); it holds
//! no atomics, because `thumbv7em-none-eabihf` has no 64-bit atomics. The
//! platforms map the files and access the fields with atomics at these
//! offsets. Every multi-byte field is little-endian and naturally aligned.

mod head;
pub mod offsets;

#[cfg(feature = "alloc")]
pub use head::FileHeadStore;
pub use head::{
    Counter, DurableHead, HEAD_LINE, HeadStore, SEQ_OFFSET, STATE_FILE, STATE_LINE, STATE_MAGIC, STATE_SIZE,
    STATE_VERSION,
};
