//! Byte layouts of the two memory-mapped files: `comet.state` (durable head
//! and metrics) and `offsets.state` (consumer-group offsets); and of the
//! data directory's identity file `comet.id` (`identity`); beside them, in
//! [`shm`], the shared-memory protocols over the two mapped files.
//!
//! The layouts are offsets, plain structs and codecs, without atomics,
//! because `thumbv7em-none-eabihf` has no 64-bit atomics. The platforms map
//! the files and hand [`shm`] (compiled only where 64-bit atomics exist)
//! the mapping, which accesses the fields with atomics at these offsets.
//! Every multi-byte field is little-endian and naturally aligned.

mod head;
mod identity;
pub mod offsets;
#[cfg(all(target_has_atomic = "64", target_endian = "little"))]
pub mod shm;

#[cfg(feature = "alloc")]
pub use head::FileHeadStore;
pub use head::{
    Counter, DurableHead, HEAD_LINE, HeadStore, MAX_HEAD_INTERVAL, SEQ_OFFSET, STATE_FILE, STATE_LINE, STATE_MAGIC,
    STATE_SIZE, STATE_VERSION, state_image,
};
pub use identity::{DirId, IDENTITY_FILE, IDENTITY_LEN, IdentityDamage};

#[cfg(test)]
mod props {
    use super::offsets::{SLOT_SIZE, SlotView, check_header};
    use super::*;
    use crate::go::parse_legacy_offsets;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn heads_roundtrip(base in any::<u64>(), entries in 0u64..1 << 40, extra in 0u64..1 << 20, open_crc in any::<u32>(),
                           closed_hash in any::<u32>(), last_ts in any::<u64>(), clean in any::<bool>(), seq in any::<u64>(),
                           interval in 0u32..=MAX_HEAD_INTERVAL) {
            let base = base / 2;
            let h = DurableHead { base, entries, bytes: entries * 12 + extra, open_crc, closed_hash, last_ts, clean, interval };
            let seq = seq & !1;
            prop_assert_eq!(DurableHead::decode(&h.encode(seq)), Ok((h, seq)));
        }

        #[test]
        fn state_and_offsets_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), len in any::<u64>()) {
            let _ = DurableHead::decode(&bytes);
            let _ = SlotView::parse(&bytes).map(|v| v.state(2));
            let _ = check_header(&bytes, len);
            let _ = parse_legacy_offsets(&bytes, |_, _| {});
            if bytes.len() >= SLOT_SIZE {
                let v = SlotView::parse(&bytes).unwrap();
                let _ = v.state(1);
            }
        }
    }
}
