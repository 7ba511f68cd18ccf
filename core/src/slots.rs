//! [`ShardSlots`]: a threaded platform's per-shard objects by id, created
//! on first use and found without a lock (feature `std`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::{Mutex, OnceLock};

use crate::naming::ShardId;

/// Shard ids per page.
const PAGE: usize = 128;
/// Pages covering every shard id (`0..=9999`).
const PAGES: usize = (ShardId::MAX.get() as usize + 1).div_ceil(PAGE);

/// One page: `PAGE` slots, each set once.
type Page<T> = Box<[OnceLock<Arc<T>>]>;

/// Per-shard objects by id, each created on first use and kept until the
/// table is dropped. Shard ids are dense and below 10,000, so a lookup is
/// an index into a two-level table — two atomic loads, no lock, no hash,
/// no reference count — and pages of 128 slots are allocated only for ids
/// in use (1.3 KiB of page pointers, 2 KiB per page on 64-bit).
#[derive(Debug)]
pub struct ShardSlots<T> {
    pages: Box<[OnceLock<Page<T>>]>,
    /// Every object, in creation order.
    all: Mutex<Vec<Arc<T>>>,
}

impl<T> Default for ShardSlots<T> {
    fn default() -> Self {
        ShardSlots { pages: (0..PAGES).map(|_| OnceLock::new()).collect(), all: Mutex::new(Vec::new()) }
    }
}

impl<T> ShardSlots<T> {
    fn index(shard: ShardId) -> (usize, usize) {
        let i = shard.get() as usize;
        (i / PAGE, i % PAGE)
    }

    /// The object of `shard`, if it was created.
    #[inline]
    pub fn get(&self, shard: ShardId) -> Option<&Arc<T>> {
        let (page, at) = Self::index(shard);
        self.pages.get(page)?.get()?.get(at)?.get()
    }

    /// The object of `shard`, created by `make` if it was not (once per
    /// shard: concurrent callers get the same one).
    #[inline]
    pub fn get_or_insert(&self, shard: ShardId, make: impl FnOnce() -> T) -> &Arc<T> {
        match self.get(shard) {
            Some(s) => s,
            None => self.insert(shard, make),
        }
    }

    #[cold]
    #[inline(never)]
    fn insert(&self, shard: ShardId, make: impl FnOnce() -> T) -> &Arc<T> {
        let (page, at) = Self::index(shard);
        // `ShardId` is at most 9999, inside the table by construction.
        let page = self.pages[page].get_or_init(|| (0..PAGE).map(|_| OnceLock::new()).collect());
        page[at].get_or_init(|| {
            let slot = Arc::new(make());
            self.all.lock().unwrap_or_else(|p| p.into_inner()).push(slot.clone());
            slot
        })
    }

    /// Every object, in creation order.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_gets_one_object_created_once_even_under_races() {
        let slots: ShardSlots<u32> = ShardSlots::default();
        assert!(slots.get(ShardId::MAX).is_none());
        let made = core::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for id in [0u32, 127, 128, 9999, 5000] {
                        let shard = ShardId::new(id).unwrap_or(ShardId::MIN);
                        let v = slots.get_or_insert(shard, || {
                            made.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                            id
                        });
                        assert_eq!(**v, id);
                    }
                });
            }
        });
        assert_eq!(made.load(core::sync::atomic::Ordering::Relaxed), 5, "one object per shard");
        let mut all: Vec<u32> = slots.all().iter().map(|v| **v).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 127, 128, 5000, 9999]);
        assert_eq!(slots.get(ShardId::new(128).unwrap()).map(|v| **v), Some(128));
        assert!(slots.get(ShardId::new(129).unwrap()).is_none(), "a page's other slots stay empty");
    }
}
