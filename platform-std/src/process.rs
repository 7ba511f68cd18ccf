//! Process slots for multi-process deployments: `comet_linux`'s slots
//! (`<root>/processes/<role>-NNNN.lock`, held with `flock` for the life of
//! the process) with this crate's errors and logs.

use std::path::Path;

use comet_linux::Result;

/// A held process slot; released on drop (or by the kernel at exit).
pub struct ProcessSlot(comet_linux::ProcessSlot);

impl ProcessSlot {
    /// Takes the lowest free slot of `role` (1..=47 bytes, no NUL or `/`)
    /// among `count` under the data directory `root`.
    pub fn acquire(root: &Path, role: &str, count: u32) -> Result<ProcessSlot> {
        let slot = comet_linux::ProcessSlot::acquire(root, role, count)?;
        tracing::debug!(role, index = slot.index(), count, "acquired process slot");
        Ok(ProcessSlot(slot))
    }

    /// This process's index, `0..count`.
    pub fn index(&self) -> u32 {
        self.0.index()
    }

    /// The number of slots.
    pub fn count(&self) -> u32 {
        self.0.count()
    }
}

impl std::fmt::Debug for ProcessSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
