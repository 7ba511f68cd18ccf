//! The forwarding loop.
//!
//! Invariant: a comet ack for shard `s` up to entry `e` is written only
//! after JetStream acknowledged (PubAck, stored or duplicate) every entry
//! of `s` from the group's offset through `e`. So whatever the forwarder,
//! the server or the network does, nothing acked in comet is missing in
//! JetStream; what was published but not acked is published again from
//! the group's offset, and the server drops it as a duplicate by its
//! `Nats-Msg-Id` (within the stream's duplicate window).

use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, HeaderMap, ServerAddr};
use bytes::Bytes;
use comet::{Client, Consumer, Message, MessageId, ShardId};

use crate::config::{Auth, ForwardConfig, StreamStorage, redact_urls};
use crate::error::ForwardError;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::servers::resolve_servers;

/// Header with the entry's shard id (decimal).
pub const HEADER_SHARD: &str = "Comet-Shard";
/// Header with the entry's number within its shard (decimal).
pub const HEADER_ENTRY: &str = "Comet-Entry";
/// Header with the entry's append time, ns since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "Comet-Timestamp";
/// Upper bound of the header bytes a published entry carries (checked
/// against the server's `max_payload` together with the payload).
pub const HEADER_BYTES: u64 = 160;

/// How often the shard list is re-read from disk.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

/// Ships one comet consumer group's entries to JetStream.
pub struct Forwarder {
    client: Client,
    consumer: Consumer,
    config: ForwardConfig,
    /// Server addresses, without user-info.
    servers: Vec<ServerAddr>,
    /// `config.auth`, or the credentials the URLs carried.
    auth: Auth,
    metrics: Metrics,
    subjects: HashMap<ShardId, String>,
    /// The last read error logged per shard (to log each once).
    read_errors: HashMap<ShardId, String>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("config", &self.config).field("metrics", &self.metrics).finish()
    }
}

/// A failed publish round, retried after a backoff.
enum Failure {
    /// The client refused the publish (e.g. its buffer is full).
    Publish(String),
    /// No PubAck in time.
    TimedOut,
    /// The server answered with an error (e.g. no stream for the subject).
    Ack(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Publish(e) => write!(f, "publish: {e}"),
            Failure::TimedOut => f.write_str("no PubAck within the publish timeout"),
            Failure::Ack(e) => write!(f, "server: {e}"),
        }
    }
}

/// The stop future, polled without consuming it.
struct Stop<S> {
    fut: Pin<Box<S>>,
    done: bool,
}

impl<S: Future<Output = ()>> Stop<S> {
    /// True once the stop future has completed (polls it once).
    fn check(&mut self) -> bool {
        if !self.done {
            let mut cx = Context::from_waker(Waker::noop());
            self.done = self.fut.as_mut().poll(&mut cx).is_ready();
        }
        self.done
    }

    /// Sleeps `d`; false if stopped first.
    async fn sleep(&mut self, d: Duration) -> bool {
        if self.done {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.fut.as_mut() => {
                self.done = true;
                false
            }
        }
    }

    /// Runs `f` unless stopped first (`None`).
    async fn or_stop<T>(&mut self, f: impl Future<Output = T>) -> Option<T> {
        if self.done {
            return None;
        }
        tokio::select! {
            v = f => Some(v),
            () = self.fut.as_mut() => {
                self.done = true;
                None
            }
        }
    }
}

impl Forwarder {
    /// A forwarder reading through `client` (which may be read-only, or
    /// the writer itself) as consumer group `config.group`. Validates the
    /// config; connects only in [`run`](Forwarder::run).
    pub fn new(client: &Client, config: ForwardConfig) -> Result<Forwarder, ForwardError> {
        config.validate()?;
        let (servers, auth) = resolve_servers(&config)?;
        let consumer = Consumer::new(client, &config.group)?;
        Ok(Forwarder {
            client: client.clone(),
            consumer,
            config,
            servers,
            auth,
            metrics: Metrics::default(),
            subjects: HashMap::new(),
            read_errors: HashMap::new(),
        })
    }

    /// The counters (shared: keep the handle and read it while running).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ForwardConfig {
        &self.config
    }

    /// Forwards until `stop` completes; returns the final metrics.
    ///
    /// Connects (retrying with backoff while the server is unreachable),
    /// creates the configured stream if missing, then reads batches from
    /// the group's offsets, publishes each entry and acks it in comet once
    /// JetStream acknowledged it. Publish failures are retried after a
    /// capped exponential backoff while comet keeps buffering. A stop lets
    /// the batch in flight finish (bounded by `publish_timeout`), so a
    /// clean stop redelivers nothing.
    ///
    /// Errors only on what retrying cannot fix: an unreadable credentials
    /// file, an entry above the server's `max_payload`, a failed comet ack.
    pub async fn run<S: Future<Output = ()>>(&mut self, stop: S) -> Result<MetricsSnapshot, ForwardError> {
        let mut stop = Stop { fut: Box::pin(stop), done: false };
        let servers = redact_urls(&self.config.nats_url);
        let mut attempt = 0;
        let nats = loop {
            let options = self.connect_options().await?;
            let Some(r) = stop.or_stop(options.connect(self.servers.clone())).await else {
                return Ok(self.metrics.snapshot());
            };
            match r {
                Ok(c) => break c,
                Err(e) => {
                    self.metrics.connect_failure();
                    // Lag keeps growing while the server is away: show it.
                    let shards = self.selected_shards();
                    self.update_lag(&shards);
                    let delay = self.config.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(servers = %servers, error = %e, retry_in = ?delay, "cannot connect to NATS; comet keeps buffering");
                    if !stop.sleep(delay).await {
                        return Ok(self.metrics.snapshot());
                    }
                }
            }
        };
        tracing::info!(servers = %servers, group = %self.config.group, prefix = %self.config.subject_prefix, "forwarding");
        let js = jetstream::ContextBuilder::new().timeout(self.config.publish_timeout).build(nats.clone());
        let r = self.pump(&nats, &js, &mut stop).await;
        // Everything published was awaited; nothing is left to flush.
        drop(js);
        drop(nats);
        r.map(|()| self.metrics.snapshot())
    }

    /// [`run`](Forwarder::run) on a new single-threaded runtime, for
    /// callers without one.
    pub fn run_blocking<S: Future<Output = ()>>(&mut self, stop: S) -> Result<MetricsSnapshot, ForwardError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ForwardError::Runtime)?;
        rt.block_on(self.run(stop))
    }

    async fn connect_options(&self) -> Result<ConnectOptions, ForwardError> {
        let cfg = &self.config;
        let backoff = cfg.backoff;
        let metrics = self.metrics.clone();
        let mut o = ConnectOptions::new()
            .name(&cfg.client_name)
            .connection_timeout(cfg.connect_timeout)
            .request_timeout(Some(cfg.publish_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| backoff.delay(u32::try_from(attempts).unwrap_or(u32::MAX)))
            .event_callback(move |event| {
                let metrics = metrics.clone();
                async move { on_event(&metrics, &event) }
            });
        o = match &self.auth {
            Auth::None => o,
            Auth::Token(t) => o.token(t.expose().to_string()),
            Auth::UserPassword { user, password } => o.user_and_password(user.clone(), password.expose().to_string()),
            Auth::NKey(seed) => o.nkey(seed.expose().to_string()),
            Auth::CredentialsFile(path) => o
                .credentials_file(path)
                .await
                .map_err(|source| ForwardError::Credentials { path: path.clone(), source })?,
            Auth::Credentials(c) => o.credentials(c.expose()).map_err(|source| ForwardError::Credentials {
                path: "<inline credentials>".into(),
                source: std::io::Error::new(source.kind(), "invalid credentials"),
            })?,
        };
        let tls = &cfg.tls;
        if tls.required {
            o = o.require_tls(true);
        }
        for ca in &tls.root_certificates {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client_certificate {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        if tls.handshake_first {
            o = o.tls_first();
        }
        Ok(o)
    }

    async fn pump<S: Future<Output = ()>>(
        &mut self,
        nats: &async_nats::Client,
        js: &jetstream::Context,
        stop: &mut Stop<S>,
    ) -> Result<(), ForwardError> {
        let mut shards: Vec<ShardId> = Vec::new();
        let mut discovered: Option<Instant> = None;
        let mut failures: u32 = 0;
        let mut need_stream = self.config.stream.is_some();
        while !stop.check() {
            if need_stream {
                match self.ensure_stream(js).await {
                    Ok(()) => need_stream = false,
                    Err(e) => {
                        if !self.back_off(stop, &mut failures, &Failure::Ack(e)).await {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            if discovered.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY) {
                shards = self.selected_shards();
                discovered = Some(Instant::now());
            }
            let batch = self.consumer.read(&shards, self.config.batch_size);
            self.note_read_errors(&batch.errors);
            if batch.messages.is_empty() {
                self.update_lag(&shards);
                if !stop.sleep(self.config.poll_interval).await {
                    return Ok(());
                }
                continue;
            }
            match self.publish(nats, js, &batch.messages).await? {
                None => failures = 0,
                Some(f) => {
                    need_stream = self.config.stream.is_some() && matches!(f, Failure::Ack(_));
                    self.update_lag(&shards);
                    if !self.back_off(stop, &mut failures, &f).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            self.update_lag(&shards);
        }
        Ok(())
    }

    /// Logs `failure`, counts it and sleeps the next backoff delay; false
    /// if stopped meanwhile.
    async fn back_off<S: Future<Output = ()>>(
        &self,
        stop: &mut Stop<S>,
        failures: &mut u32,
        failure: &Failure,
    ) -> bool {
        self.metrics.publish_error();
        let delay = self.config.backoff.delay(*failures);
        *failures = failures.saturating_add(1);
        tracing::warn!(error = %failure, retry_in = ?delay, attempt = *failures, "forwarding paused; comet keeps buffering");
        stop.sleep(delay).await
    }

    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), String> {
        let Some(setup) = &self.config.stream else {
            return Ok(());
        };
        let config = stream::Config {
            name: setup.name.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            duplicate_window: setup.duplicate_window,
            storage: match setup.storage {
                StreamStorage::File => stream::StorageType::File,
                StreamStorage::Memory => stream::StorageType::Memory,
            },
            num_replicas: setup.replicas,
            ..Default::default()
        };
        match tokio::time::timeout(self.config.publish_timeout, js.get_or_create_stream(config)).await {
            Ok(Ok(_)) => {
                tracing::info!(stream = %setup.name, "JetStream stream ready");
                Ok(())
            }
            Ok(Err(e)) => Err(format!("cannot create stream {}: {e}", setup.name)),
            Err(_) => Err(format!("cannot create stream {}: timed out", setup.name)),
        }
    }

    fn note_read_errors(&mut self, errors: &[(ShardId, comet::Error)]) {
        for (shard, e) in errors {
            self.metrics.read_error();
            let text = e.to_string();
            if self.read_errors.get(shard) != Some(&text) {
                tracing::warn!(shard = shard.get(), error = %text, "read stopped at an unreadable entry; forwarding of this shard waits");
                self.read_errors.insert(*shard, text);
            }
        }
    }

    /// The selected shards on disk now (none if listing fails).
    fn selected_shards(&self) -> Vec<ShardId> {
        match self.client.shards() {
            Ok(all) => all.into_iter().filter(|s| self.config.shards.matches(*s)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list shards");
                Vec::new()
            }
        }
    }

    fn update_lag(&mut self, shards: &[ShardId]) {
        let lag = shards.iter().map(|&s| self.consumer.lag(s).unwrap_or(0)).sum();
        self.metrics.set_lag(lag);
    }

    fn subject(&mut self, shard: ShardId) -> String {
        let config = &self.config;
        self.subjects.entry(shard).or_insert_with(|| config.subject(shard)).clone()
    }

    /// Publishes `messages` (grouped by shard, in entry order), waits for
    /// their PubAcks and acks in comet, per shard, the longest prefix that
    /// JetStream acknowledged. Returns the failure that cut a round short.
    async fn publish(
        &mut self,
        nats: &async_nats::Client,
        js: &jetstream::Context,
        messages: &[Message],
    ) -> Result<Option<Failure>, ForwardError> {
        let timeout = self.config.publish_timeout;
        let max_payload = nats.server_info().max_payload as u64;
        let mut failure = None;
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let data = m.data();
            let bytes = data.len() as u64 + HEADER_BYTES;
            if max_payload > 0 && bytes > max_payload {
                return Err(ForwardError::EntryTooLarge { id: m.id, bytes, max_payload });
            }
            let subject = self.subject(m.id.shard);
            let started = Instant::now();
            let publish = js.publish_with_headers(subject, headers(m), Bytes::copy_from_slice(data));
            match tokio::time::timeout(timeout, publish).await {
                Ok(Ok(ack)) => pending.push((m, started, ack)),
                Ok(Err(e)) => {
                    failure = Some(Failure::Publish(e.to_string()));
                    break;
                }
                Err(_) => {
                    failure = Some(Failure::TimedOut);
                    break;
                }
            }
        }
        // One deadline for the whole round: PubAcks arrive concurrently.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut high: HashMap<ShardId, u64> = HashMap::new();
        let mut broken: HashSet<ShardId> = HashSet::new();
        for (m, started, ack) in pending {
            let shard = m.id.shard;
            match tokio::time::timeout_at(deadline, ack.into_future()).await {
                Ok(Ok(ack)) => {
                    self.metrics.latency(started.elapsed());
                    if ack.duplicate {
                        self.metrics.duplicate();
                    } else {
                        self.metrics.forwarded(m.data().len() as u64);
                    }
                    if !broken.contains(&shard) {
                        high.insert(shard, m.id.entry);
                    }
                }
                Ok(Err(e)) => {
                    broken.insert(shard);
                    failure.get_or_insert(Failure::Ack(e.to_string()));
                }
                Err(_) => {
                    broken.insert(shard);
                    failure.get_or_insert(Failure::TimedOut);
                }
            }
        }
        // A shard cut off mid-round acks only what precedes the cut.
        let ids: Vec<MessageId> = high.into_iter().map(|(shard, entry)| MessageId { shard, entry }).collect();
        if !ids.is_empty() {
            self.consumer.ack(&ids)?;
        }
        if failure.is_none() {
            self.metrics.batch();
        }
        Ok(failure)
    }
}

/// The headers of an entry: `Nats-Msg-Id` for deduplication, shard,
/// entry number and timestamp.
fn headers(m: &Message) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, m.id.to_string());
    h.insert(HEADER_SHARD, m.id.shard.get().to_string());
    h.insert(HEADER_ENTRY, m.id.entry.to_string());
    h.insert(HEADER_TIMESTAMP, m.timestamp.to_string());
    h
}

fn on_event(metrics: &Metrics, event: &async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            if metrics.connected() {
                tracing::info!("reconnected to NATS");
            }
        }
        async_nats::Event::Disconnected => {
            metrics.disconnected();
            tracing::warn!("disconnected from NATS; reconnecting with backoff");
        }
        other => tracing::warn!(event = %other, "NATS client event"),
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: a `stop` for
/// [`Forwarder::run`] in command-line tools. Must be polled inside a Tokio
/// runtime (as `run` and `run_blocking` do).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_is_checked_without_being_consumed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
        let Some(rt) = rt else { return };
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let mut stop = Stop {
                fut: Box::pin(async move {
                    let _ = rx.await;
                }),
                done: false,
            };
            assert!(!stop.check());
            assert!(stop.sleep(Duration::from_millis(1)).await);
            let _ = tx.send(());
            assert!(!stop.sleep(Duration::from_secs(60)).await);
            assert!(stop.check());
            assert_eq!(stop.or_stop(async { 1 }).await, None);
        });
    }
}
