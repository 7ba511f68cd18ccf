//! Consumer groups: offsets in `offsets.state`, shared across processes.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use comet_core::error::IoOp;
use comet_core::shm::{OFFSETS_WORDS, OffsetsTable};
use comet_core::state::offsets::{FILE_SIZE, OFFSETS_FILE};

use crate::error::{Error, Result};
use crate::metrics::GroupStats;
use crate::mmap::SharedWords;

/// Maps a shard's `offsets.state`; `None` if it does not exist and `create`
/// is false.
pub(crate) fn map_offsets(dir: &Path, create: bool) -> Result<Option<SharedWords>> {
    let path = dir.join(OFFSETS_FILE);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o644)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
        Err(e) => return Err(Error::io(IoOp::Open, &path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io(IoOp::Len, &path, e))?
        .len();
    if len == 0 && create {
        file.set_len(FILE_SIZE as u64)
            .map_err(|e| Error::io(IoOp::SetLen, &path, e))?;
    } else if len != FILE_SIZE as u64 {
        return Err(Error::io(
            IoOp::Open,
            &path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("offsets.state is {len} bytes, expected {FILE_SIZE}"),
            ),
        ));
    }
    debug_assert_eq!(OFFSETS_WORDS * 8, FILE_SIZE);
    SharedWords::map(&file, FILE_SIZE)
        .map(Some)
        .map_err(|e| Error::io(IoOp::Open, &path, e))
}

/// Every group of a shard with its offset and lag against `durable_end`.
pub(crate) fn group_stats(dir: &Path, durable_end: u64) -> Result<Vec<GroupStats>> {
    let Some(words) = map_offsets(dir, false)? else {
        return Ok(Vec::new());
    };
    let Ok(table) = OffsetsTable::open(words.words(), std::thread::yield_now) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    table.for_each(|group, o| {
        out.push(GroupStats {
            group: group.to_string(),
            offset: o.offset,
            lag: durable_end.saturating_sub(o.offset),
            last_ack_ns: o.last_update,
        });
    });
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}
