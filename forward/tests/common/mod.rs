//! Shared test helpers: a real `nats-server -js` on 127.0.0.1 with a
//! temporary store, comet data, and a reader of everything a stream holds.
//!
//! Without a `nats-server` binary the tests fail (a test that did not run
//! must not pass): `.ci/nats.sh --install-only` installs Debian's, or set
//! `NATS_SERVER` to one.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::thread::JoinHandle;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use comet::{Client, Config, MessageId};
use comet_forward::{Backoff, ForwardConfig, ForwardError, Forwarder, Metrics, MetricsSnapshot, StreamSetup};
use futures_util::StreamExt;

/// The JetStream stream every test forwards into.
pub const STREAM: &str = "COMET";

/// Finds `nats-server`: `$NATS_SERVER`, then `PATH`, then the Debian
/// package's `/usr/sbin`.
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// The `nats-server` binary; fails the test if there is none.
pub fn available_binary() -> PathBuf {
    nats_server_binary().expect(
        "no nats-server binary: these tests run a real `nats-server -js`; install it with \
         `.ci/nats.sh --install-only` (Debian package nats-server) or set NATS_SERVER",
    )
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A `nats-server -js` child process; killed on drop.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server on a free port.
    pub fn start() -> NatsServer {
        NatsServer::start_on(free_port())
    }

    /// Starts a server on `port`.
    pub fn start_on(port: u16) -> NatsServer {
        NatsServer::start_full(port, &["-js"])
    }

    /// Starts a server on a free port with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let mut args = vec!["-js"];
        args.extend_from_slice(extra);
        NatsServer::start_full(free_port(), &args)
    }

    /// Starts a server without JetStream.
    pub fn start_without_jetstream() -> NatsServer {
        NatsServer::start_full(free_port(), &[])
    }

    /// Starts a server with JetStream and this configuration file text
    /// (the port, store and log still come from the command line).
    pub fn start_with_config(config: &str) -> NatsServer {
        let store = tempfile::tempdir().expect("store dir");
        let path = store.path().join("server.conf");
        std::fs::write(&path, config).expect("write config");
        let path = path.to_str().expect("utf-8 path").to_string();
        NatsServer::launch_new(free_port(), store, &["-js", "-c", &path])
    }

    fn start_full(port: u16, extra: &[&str]) -> NatsServer {
        NatsServer::launch_new(port, tempfile::tempdir().expect("store dir"), extra)
    }

    fn launch_new(port: u16, store: tempfile::TempDir, extra: &[&str]) -> NatsServer {
        let binary = available_binary();
        let extra = extra.iter().map(|a| (*a).to_string()).collect();
        let mut s = NatsServer { binary, port, store, child: None, extra };
        s.launch();
        s
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = self.store.path().join("server.log");
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path().join("js"))
            .arg("-l")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("nats-server exited with {status}: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "nats-server did not listen on {} within 15 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully (SIGTERM; SIGKILL after 15 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        signal(&child, libc::SIGTERM);
        if !wait_child(&mut child, Duration::from_secs(15)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Starts it again after a [`stop`](NatsServer::stop).
    pub fn resume(&mut self) {
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to a child process.
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits up to `timeout` for `child` to exit; true if it did.
pub fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return false,
        }
    }
}

/// Polls `done` every 20 ms until it holds; panics with `what` after
/// `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A payload that says where it belongs (so the stream's copy can be
/// checked byte for byte), `i`-dependent in size, some compressible.
pub fn payload(shard: u32, i: u64) -> Vec<u8> {
    let mut p = format!("shard {shard} item {i} ").into_bytes();
    let extra = usize::try_from(i % 7).unwrap_or(0) * 40;
    p.extend(std::iter::repeat_n(b'a' + u8::try_from(i % 26).unwrap_or(0), extra));
    p
}

/// Appends `n` entries to each of `shards` and syncs.
pub fn append(client: &Client, shards: &[u32], n: u64) {
    for &s in shards {
        let shard = comet::ShardId::new(s).expect("shard id");
        let start = client.shard_len(shard).expect("len");
        let entries: Vec<Vec<u8>> = (start..start + n).map(|i| payload(s, i)).collect();
        client.append_shard(shard, &entries).expect("append");
    }
    client.sync().expect("sync");
}

/// The group's lag summed over every shard on disk.
pub fn group_lag(client: &Client, group: &str) -> u64 {
    let mut c = comet::Consumer::new(client, group).expect("consumer");
    client.shards().expect("shards").into_iter().map(|s| c.lag(s).expect("lag")).sum()
}

/// Durable entries in every shard.
pub fn durable_total(client: &Client) -> u64 {
    client.shards().expect("shards").into_iter().map(|s| client.durable_len(s).expect("durable len")).sum()
}

/// One message as stored in the stream.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its subject.
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub msg_id: String,
    /// `Comet-Dir`.
    pub dir: String,
    /// `Comet-Shard` and `Comet-Entry`.
    pub shard: u32,
    /// The entry number.
    pub entry: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Every message of `stream` on the server at `url`, in stream order.
pub fn stream_contents(url: &str, stream: &str) -> Vec<Stored> {
    stream_contents_with(url, stream, async_nats::ConnectOptions::new())
}

/// [`stream_contents`] connecting with `options` (e.g. credentials).
pub fn stream_contents_with(url: &str, stream: &str, options: async_nats::ConnectOptions) -> Vec<Stored> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = tokio::time::timeout(Duration::from_secs(10), options.connect(url))
            .await
            .expect("connect in time")
            .expect("connect");
        let js = jetstream::new(client);
        let mut s = js.get_stream(stream).await.expect("stream exists");
        let total = s.info().await.expect("stream info").state.messages;
        let consumer = s.create_consumer(OrderedConfig::default()).await.expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut out = Vec::new();
        while (out.len() as u64) < total {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("next message in time")
                .expect("stream not ended")
                .expect("message");
            let h = m.headers.clone().unwrap_or_default();
            let get = |k: &str| h.get(k).map(|v| v.as_str().to_string()).unwrap_or_default();
            out.push(Stored {
                subject: m.subject.to_string(),
                msg_id: get("Nats-Msg-Id"),
                dir: get(comet_forward::HEADER_DIR),
                shard: get(comet_forward::HEADER_SHARD).parse().expect("Comet-Shard"),
                entry: get(comet_forward::HEADER_ENTRY).parse().expect("Comet-Entry"),
                payload: m.payload.to_vec(),
            });
        }
        out
    })
}

/// Asserts that `stored` holds every durable entry of `dir` exactly once,
/// under the right subject, headers and bytes. Returns the count.
pub fn assert_exactly_once(dir: &Path, stored: &[Stored], prefix: &str) -> u64 {
    let client = Client::open_read_only(dir, Config::default()).expect("open read-only");
    let dir_id = comet::dir_identity(dir, false).expect("the forwarder gave the directory an identity");
    let mut seen: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    for (i, m) in stored.iter().enumerate() {
        if let Some(first) = seen.insert((m.shard, m.entry), i) {
            panic!("entry {}-{} stored twice (stream positions {first} and {i})", m.shard, m.entry);
        }
        assert_eq!(m.msg_id, format!("{dir_id}-{}-{}", m.shard, m.entry), "Nats-Msg-Id");
        assert_eq!(m.dir, dir_id.to_string(), "Comet-Dir");
        assert_eq!(m.subject, format!("{prefix}.{}", m.shard), "subject");
    }
    let mut total = 0;
    for shard in client.shards().expect("shards") {
        let mut reader = client.reader(shard).expect("reader");
        let (first, end) = reader.bounds().expect("bounds");
        for entry in first..end {
            let Some(&at) = seen.get(&(shard.get(), entry)) else {
                panic!("entry {} is missing from the stream", MessageId { shard, entry });
            };
            let local = reader.read(entry).expect("read");
            assert_eq!(stored[at].payload, local.data(), "payload of {shard}-{entry}");
            total += 1;
        }
    }
    assert_eq!(total, stored.len() as u64, "the stream holds entries comet does not");
    total
}

/// A temporary comet directory.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

/// Opens a writer client on `dir` with a short flush interval.
pub fn writer(dir: &Path) -> Client {
    Client::open(dir, Config::default()).expect("open comet")
}

/// A writer whose checksum chunks hold 4 entries: damage costs (and stops
/// forwarding at) the 4-entry chunk it lands in.
pub fn writer_small_chunks(dir: &Path) -> Client {
    let mut cfg = Config::default();
    cfg.indexing.boundary_interval = 4;
    Client::open(dir, cfg).expect("open comet")
}

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// A subscriber writing into this, everything at TRACE except the NATS
    /// client, held at INFO as `log_to_stderr` does (at TRACE it logs its
    /// CONNECT line, password included).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,async_nats=info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }
}

/// The consumer group the tests forward as.
pub const GROUP: &str = "jetstream";

/// A config for a test: stream `STREAM` created if missing, batches of
/// 100, short timeouts and backoff.
pub fn config(url: &str, prefix: &str) -> ForwardConfig {
    let mut c = ForwardConfig::new(GROUP, url, prefix);
    c.stream = Some(StreamSetup::new(STREAM));
    c.batch_size = 100;
    c.poll_interval = Duration::from_millis(10);
    c.publish_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_secs(1);
    c.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    c
}

/// A forwarder running on its own thread.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: JoinHandle<(Forwarder, Result<MetricsSnapshot, ForwardError>)>,
    /// The forwarder's metrics.
    pub metrics: Metrics,
}

/// Starts a forwarder on its own thread.
pub fn spawn(client: &Client, config: ForwardConfig) -> Running {
    let mut forwarder = Forwarder::new(client, config).expect("forwarder");
    let metrics = forwarder.metrics();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        let r = forwarder.run_blocking(async move {
            let _ = rx.await;
        });
        (forwarder, r)
    });
    Running { stop, handle, metrics }
}

impl Running {
    /// Stops it; its final metrics.
    pub fn stop(self) -> MetricsSnapshot {
        self.finish().1.expect("forwarder run")
    }

    /// Stops it; the forwarder and what `run` returned.
    pub fn finish(self) -> (Forwarder, Result<MetricsSnapshot, ForwardError>) {
        let _ = self.stop.send(());
        wait_until(Duration::from_secs(30), "the forwarder to stop", || self.handle.is_finished());
        self.handle.join().expect("forwarder thread")
    }

    /// Waits up to 30 s for the forwarder to end by itself (it is never
    /// asked to stop); what `run` returned.
    pub fn ended(self) -> Result<MetricsSnapshot, ForwardError> {
        wait_until(Duration::from_secs(30), "the forwarder to end by itself", || self.handle.is_finished());
        self.handle.join().expect("forwarder thread").1
    }

    /// Waits until the forwarder has forwarded everything durable.
    pub fn wait_caught_up(&self, client: &Client, timeout: Duration) {
        wait_until(timeout, "the group to catch up", || group_lag(client, GROUP) == 0);
    }
}

/// Runs `f` with a JetStream context on the server at `url` (to set up
/// streams as an operator would).
pub fn with_js<F: std::future::Future>(url: &str, f: impl FnOnce(jetstream::Context) -> F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url))
            .await
            .expect("connect in time")
            .expect("connect");
        f(jetstream::new(client)).await
    })
}

/// Runs a forwarder on this thread, capturing its `tracing` events, until
/// it ends by itself or `done` holds (checked every 20 ms; at most
/// `for_at_most`).
pub fn run_captured(
    client: &Client,
    config: ForwardConfig,
    for_at_most: Duration,
    done: impl Fn(&MetricsSnapshot) -> bool + 'static,
) -> (Result<MetricsSnapshot, ForwardError>, String) {
    let logs = Captured::default();
    let mut forwarder = Forwarder::new(client, config).expect("forwarder");
    let metrics = forwarder.metrics();
    let r = tracing::subscriber::with_default(logs.subscriber(), || {
        forwarder.run_blocking(async move {
            let deadline = tokio::time::Instant::now() + for_at_most;
            while !done(&metrics.snapshot()) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    (r, logs.text())
}

/// The header block the forwarder sends with an entry, as the server
/// counts it (`NATS/1.0\r\n`, `Key: Value\r\n` each, `\r\n`), written out
/// independently of the forwarder's own computation.
pub fn header_block_len(dir: &comet::DirId, shard: u32, entry: u64, timestamp: u64) -> usize {
    let lines = [
        format!("Nats-Msg-Id: {dir}-{shard}-{entry}\r\n"),
        format!("Comet-Dir: {dir}\r\n"),
        format!("Comet-Shard: {shard}\r\n"),
        format!("Comet-Entry: {entry}\r\n"),
        format!("Comet-Timestamp: {timestamp}\r\n"),
    ];
    "NATS/1.0\r\n".len() + lines.iter().map(String::len).sum::<usize>() + 2
}

/// Appends `entries` to `shard` and syncs.
pub fn append_raw(client: &Client, shard: u32, entries: &[Vec<u8>]) {
    client.append_shard(comet::ShardId::new(shard).expect("shard id"), entries).expect("append");
    client.sync().expect("sync");
}

/// The group's offset in `shard`.
pub fn group_offset(client: &Client, group: &str, shard: u32) -> u64 {
    comet::Consumer::new(client, group)
        .expect("consumer")
        .offset(comet::ShardId::new(shard).expect("id"))
        .expect("offset")
}
