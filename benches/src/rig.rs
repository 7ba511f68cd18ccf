//! Clients in scratch directories.

use comet::{Client, Config, Consumer, MessageId, ShardId};

/// Shard `id` (panics above 9999).
pub fn shard(id: u32) -> ShardId {
    ShardId::new(id).unwrap_or_else(|| panic!("shard id {id} out of range"))
}

/// `bench:v1:shard:NNNN`.
pub fn stream(id: u32) -> String {
    comet::shard_stream_name("bench:v1", shard(id)).unwrap_or_else(|e| panic!("stream name: {e}"))
}

/// The default configuration with the background retention pass off (it
/// never has work in a bench and would only add a thread).
pub fn config() -> Config {
    let mut c = Config::default();
    c.retention.cleanup_interval = None;
    c
}

/// A client writing into a scratch directory, with one shard opened for
/// writing up front (so the first measured append does not create it).
/// When [`note`](Rig::note) reports that `reset_at` bytes were appended,
/// [`reset`](Rig::reset) — called outside the measured time — closes the
/// client and starts over in a fresh directory: the disk does not fill and
/// the page cache of the deleted files is reused, as in the floor.
#[derive(Debug)]
pub struct Rig {
    client: Option<Client>,
    dir: Option<tempfile::TempDir>,
    config: Config,
    shards: Vec<ShardId>,
    bytes: u64,
    reset_at: u64,
    root: Option<std::path::PathBuf>,
}

impl Rig {
    /// A rig writing `shards` with `config`.
    pub fn new(config: Config, shards: &[u32], reset_at: u64) -> Rig {
        Rig::new_in(None, config, shards, reset_at)
    }

    /// A rig whose directories go under `root` (default: the scratch
    /// root, see [`crate::mode::scratch_root`]).
    pub fn new_in(root: Option<std::path::PathBuf>, config: Config, shards: &[u32], reset_at: u64) -> Rig {
        let mut r = Rig {
            client: None,
            dir: None,
            config,
            shards: shards.iter().map(|&s| shard(s)).collect(),
            bytes: 0,
            reset_at,
            root,
        };
        r.reset();
        r
    }

    /// The client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap_or_else(|| unreachable!("a rig always holds a client"))
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.client().dir()
    }

    /// Counts appended stored bytes; true once a reset is due.
    #[inline]
    pub fn note(&mut self, bytes: u64) -> bool {
        self.bytes += bytes;
        self.bytes >= self.reset_at
    }

    /// True once a reset is due.
    pub fn needs_reset(&self) -> bool {
        self.bytes >= self.reset_at
    }

    /// Closes the client, deletes its directory, opens a fresh one.
    pub fn reset(&mut self) {
        if let Some(c) = self.client.take() {
            c.close().unwrap_or_else(|e| panic!("close: {e}"));
        }
        self.dir = None;
        let dir = match &self.root {
            Some(root) => tempfile::Builder::new()
                .prefix("comet-bench-rig-")
                .tempdir_in(root)
                .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}")),
            None => crate::mode::scratch_dir("rig"),
        };
        let client = Client::open(dir.path(), self.config).unwrap_or_else(|e| panic!("open: {e}"));
        for &s in &self.shards {
            client.recover_shard(s).unwrap_or_else(|e| panic!("open shard {s}: {e}"));
        }
        self.client = Some(client);
        self.dir = Some(dir);
        self.bytes = 0;
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close();
        }
    }
}

/// Fills `shard` with `n` entries (batches of 1,000 of `entry(i)`), syncs,
/// and returns the number of entries now durable.
pub fn fill(client: &Client, id: u32, n: usize, entry: impl Fn(usize) -> Vec<u8>) -> u64 {
    let s = shard(id);
    let mut i = 0;
    while i < n {
        let k = (n - i).min(1000);
        let batch: Vec<Vec<u8>> = (i..i + k).map(&entry).collect();
        client.append_shard(s, &batch).unwrap_or_else(|e| panic!("append: {e}"));
        i += k;
    }
    client.sync().unwrap_or_else(|e| panic!("sync: {e}"));
    client.durable_len(s).unwrap_or_else(|e| panic!("durable_len: {e}"))
}

/// A consumer of `group`.
pub fn consumer(client: &Client, group: &str) -> Consumer {
    Consumer::new(client, group).unwrap_or_else(|e| panic!("consumer: {e}"))
}

/// Message id helper.
pub fn id(shard_id: u32, entry: u64) -> MessageId {
    MessageId { shard: shard(shard_id), entry }
}
