//! The forwarding loop.
//!
//! Invariant: a comet ack for shard `s` up to entry `e` is written only
//! after JetStream acknowledged (PubAck, stored or duplicate) every entry
//! of `s` from the group's offset through `e`. So whatever the forwarder,
//! the server or the network does, nothing acked in comet is missing in
//! JetStream; what was published but not acked is published again from
//! the group's offset, and the server drops it as a duplicate by its
//! `Nats-Msg-Id` (within the stream's duplicate window).
//!
//! A shard stops (and only that shard) at an entry that cannot be
//! forwarded as it is: above a size limit, or damaged. Nothing of the
//! shard from that entry on is published or acked.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use comet::{Client, Consumer, DirId, ShardId};

use crate::config::{Auth, ForwardConfig, redact_urls};
use crate::error::{ConfigError, ForwardError};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::publish::Failure;
use crate::servers::{no_server_offers_tls, resolve_servers};
use crate::stream::{Setup, check_jetstream, ensure_stream};

/// How often the shard list is re-read from disk.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

/// What the forwarder keeps per shard.
pub(crate) struct ShardState {
    /// `<prefix>.<shard>`.
    pub subject: String,
    /// The highest entry published at least once (by this forwarder, or
    /// found as the subject's last message when the shard was probed):
    /// publishing an entry at or below it is a re-publish.
    pub published: Option<u64>,
    /// The stream's `max_msg_size` for the subject.
    pub max_msg_size: Option<u64>,
    /// Whether the subject's stream was looked up since the last failure.
    pub probed: bool,
    /// Whether the "foreign last message" warning was logged.
    pub warned_foreign: bool,
}

/// Ships one comet consumer group's entries to JetStream.
pub struct Forwarder {
    client: Client,
    pub(crate) consumer: Consumer,
    pub(crate) config: ForwardConfig,
    /// Server addresses, without user-info.
    servers: Vec<ServerAddr>,
    /// `config.auth`, or the credentials the URLs carried.
    auth: Auth,
    pub(crate) metrics: Metrics,
    /// The data directory's identity (in every message id).
    pub(crate) dir_id: DirId,
    shards: HashMap<ShardId, ShardState>,
    /// Shards stopped at an entry that cannot be forwarded, with why.
    pub(crate) stopped: BTreeMap<ShardId, ForwardError>,
    /// The configured stream's `max_msg_size`.
    pub(crate) stream_limit: Option<u64>,
    /// The last read error logged per shard (to log each once).
    read_errors: HashMap<ShardId, String>,
    /// Set by the client's event callback when the server refuses the
    /// credentials or a publish permission.
    refused: Refused,
}

/// What the server refused, from the client's event callback.
#[derive(Clone, Default)]
struct Refused(Arc<Mutex<Option<String>>>);

impl Refused {
    fn set(&self, why: String) {
        let mut r = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.get_or_insert(why);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("config", &self.config)
            .field("dir_id", &self.dir_id)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
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
    /// config, and reads the data directory's identity (`comet.id`),
    /// creating it if the directory has none yet; connects only in
    /// [`run`](Forwarder::run).
    pub fn new(client: &Client, config: ForwardConfig) -> Result<Forwarder, ForwardError> {
        config.validate()?;
        let (servers, auth) = resolve_servers(&config)?;
        if let Auth::NKey(seed) = &auth
            && nkeys::KeyPair::from_seed(seed.expose().trim()).is_err()
        {
            return Err(ConfigError::InvalidNKeySeed.into());
        }
        let consumer = Consumer::new(client, &config.group)?;
        let dir_id = comet::dir_identity(client.dir(), true).map_err(ForwardError::Identity)?;
        Ok(Forwarder {
            client: client.clone(),
            consumer,
            config,
            servers,
            auth,
            metrics: Metrics::default(),
            dir_id,
            shards: HashMap::new(),
            stopped: BTreeMap::new(),
            stream_limit: None,
            read_errors: HashMap::new(),
            refused: Refused::default(),
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

    /// The data directory's identity, part of every `Nats-Msg-Id`.
    pub fn dir_id(&self) -> DirId {
        self.dir_id
    }

    /// Shards whose forwarding stopped at an entry that cannot be
    /// forwarded ([`ForwardError::EntryTooLarge`],
    /// [`ForwardError::Damaged`]), in shard order. The other shards go on;
    /// once every selected shard is stopped, [`run`](Forwarder::run)
    /// returns [`ForwardError::ShardsStopped`], which then holds them
    /// (and this list is empty).
    pub fn stopped_shards(&self) -> impl Iterator<Item = (ShardId, &ForwardError)> + '_ {
        self.stopped.iter().map(|(s, e)| (*s, e))
    }

    /// Forwards until `stop` completes; returns the final metrics.
    ///
    /// Connects (retrying with backoff while the server is unreachable),
    /// checks that JetStream is there, creates the configured stream if
    /// missing, then reads batches from the group's offsets, publishes each
    /// entry and acks it in comet once JetStream acknowledged it. Transient
    /// failures (an unreachable server, a timed-out publish or PubAck, a
    /// stream that cannot be created yet) are retried after a capped
    /// exponential backoff while comet keeps buffering. A stop lets the
    /// batch in flight finish (each PubAck bounded by `publish_timeout`),
    /// so a clean stop redelivers nothing.
    ///
    /// Errors on what retrying cannot fix: refused credentials, TLS
    /// required but not offered, no JetStream, a stream the server refuses
    /// to create or that does not capture the prefix, an unreadable
    /// credentials file, a failed comet ack, and every selected shard
    /// stopped (see [`stopped_shards`](Forwarder::stopped_shards)).
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
                Err(e)
                    if matches!(
                        e.kind(),
                        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
                    ) =>
                {
                    self.metrics.connect_failure();
                    return Err(ForwardError::Unauthorized { servers, reason: e.to_string() });
                }
                Err(e) => {
                    self.metrics.connect_failure();
                    let tls = &self.config.tls;
                    if tls.required
                        && !tls.handshake_first
                        && no_server_offers_tls(&self.servers, self.config.connect_timeout).await
                    {
                        return Err(ForwardError::TlsUnavailable { servers });
                    }
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
        tracing::info!(servers = %servers, group = %self.config.group, prefix = %self.config.subject_prefix, dir = %self.dir_id, "forwarding");
        // The client allows `max_ack_inflight` publishes awaiting their
        // PubAck (5,000 by default) and makes the next one wait: a round
        // publishes a whole batch before awaiting any, so allow a batch.
        let js = jetstream::ContextBuilder::new()
            .timeout(self.config.publish_timeout)
            .max_ack_inflight(self.config.batch_size)
            .build(nats.clone());
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
        let refused = self.refused.clone();
        let mut o = ConnectOptions::new()
            .name(&cfg.client_name)
            .connection_timeout(cfg.connect_timeout)
            .request_timeout(Some(cfg.publish_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| backoff.delay(u32::try_from(attempts).unwrap_or(u32::MAX)))
            .event_callback(move |event| {
                let (metrics, refused) = (metrics.clone(), refused.clone());
                async move { on_event(&metrics, &refused, &event) }
            });
        o = match &self.auth {
            Auth::None => o,
            Auth::Token(t) => o.token(t.expose().to_string()),
            Auth::UserPassword { user, password } => o.user_and_password(user.clone(), password.expose().to_string()),
            Auth::NKey(seed) => o.nkey(seed.expose().trim().to_string()),
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
        let mut need_setup = true;
        while !stop.check() {
            if let Some(reason) = self.refused.take() {
                return Err(ForwardError::Unauthorized { servers: redact_urls(&self.config.nats_url), reason });
            }
            if discovered.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY) {
                shards = self.selected_shards();
                discovered = Some(Instant::now());
            }
            if need_setup {
                match self.setup(nats, js).await {
                    Ok(()) => need_setup = false,
                    Err(Setup::Stop(e)) => return Err(e),
                    Err(Setup::Retry(e)) => {
                        // Entries pend meanwhile: the lag says how many.
                        self.update_lag(&shards);
                        self.metrics.stream_error();
                        if !self.back_off(stop, &mut failures, &e).await {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            if !shards.is_empty() && shards.iter().all(|s| self.stopped.contains_key(s)) {
                self.update_lag(&shards);
                let stopped = std::mem::take(&mut self.stopped).into_iter().collect();
                return Err(ForwardError::ShardsStopped(stopped));
            }
            let readable: Vec<ShardId> = shards.iter().copied().filter(|s| !self.stopped.contains_key(s)).collect();
            let (messages, errors) = self.consumer.read(&readable, self.config.batch_size).into_parts();
            self.note_read_errors(errors, &messages);
            if messages.is_empty() {
                self.update_lag(&shards);
                if !stop.sleep(self.config.poll_interval).await {
                    return Ok(());
                }
                continue;
            }
            match self.publish(nats, js, &messages).await? {
                None => failures = 0,
                Some(f) => {
                    // The stream may have gone or changed: look again.
                    need_setup = matches!(f, Failure::Ack(_));
                    for state in self.shards.values_mut() {
                        state.probed = false;
                    }
                    self.update_lag(&shards);
                    if matches!(f, Failure::Probe(_)) {
                        self.metrics.stream_error();
                    } else {
                        self.metrics.publish_error();
                    }
                    if !self.back_off(stop, &mut failures, &f.to_string()).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            self.update_lag(&shards);
        }
        Ok(())
    }

    /// Checks JetStream and the configured stream.
    async fn setup(&mut self, nats: &async_nats::Client, js: &jetstream::Context) -> Result<(), Setup> {
        check_jetstream(nats, &self.config).await?;
        let facts = ensure_stream(js, &self.config).await?;
        self.stream_limit = facts.max_msg_size;
        Ok(())
    }

    /// Logs `failure` and sleeps the next backoff delay; false if stopped
    /// meanwhile.
    async fn back_off<S: Future<Output = ()>>(&self, stop: &mut Stop<S>, failures: &mut u32, failure: &str) -> bool {
        let delay = self.config.backoff.delay(*failures);
        *failures = failures.saturating_add(1);
        tracing::warn!(error = %failure, retry_in = ?delay, attempt = *failures, "forwarding paused; comet keeps buffering");
        stop.sleep(delay).await
    }

    /// Stops forwarding `shard` at an entry that cannot be forwarded.
    pub(crate) fn stop_shard(&mut self, shard: ShardId, why: ForwardError) {
        tracing::error!(shard = shard.get(), error = %comet::ErrorChain(&why), "forwarding of this shard stopped; the others go on");
        self.metrics.shard_stopped();
        self.stopped.insert(shard, why);
    }

    /// Counts and logs read errors. A damaged entry stops its shard once
    /// it is the first entry the group has not acked (no message of the
    /// shard before it in this batch): the entries before it are forwarded
    /// and acked first.
    fn note_read_errors(&mut self, errors: Vec<(ShardId, comet::Error)>, read: &[comet::Message]) {
        for (shard, e) in errors {
            self.metrics.read_error();
            if matches!(
                e,
                comet::Error::Corrupt { .. } | comet::Error::Damaged { .. } | comet::Error::Decompress { .. }
            ) {
                if !read.iter().any(|m| m.id.shard == shard) {
                    // Damage does not heal: forwarding past it would ack
                    // an entry JetStream never got.
                    self.stop_shard(shard, ForwardError::Damaged { shard, source: e });
                }
                continue;
            }
            let text = e.chain().to_string();
            if self.read_errors.get(&shard) != Some(&text) {
                tracing::warn!(shard = shard.get(), error = %text, "read stopped at an unreadable entry; forwarding of this shard waits");
                self.read_errors.insert(shard, text);
            }
        }
    }

    /// The selected shards on disk now (none if listing fails).
    fn selected_shards(&self) -> Vec<ShardId> {
        match self.client.shards() {
            Ok(all) => all.into_iter().filter(|s| self.config.shards.matches(*s)).collect(),
            Err(e) => {
                tracing::warn!(error = %e.chain(), "cannot list shards");
                Vec::new()
            }
        }
    }

    fn update_lag(&mut self, shards: &[ShardId]) {
        let lag = shards.iter().map(|&s| self.consumer.lag(s).unwrap_or(0)).sum();
        self.metrics.set_lag(lag);
    }

    /// The state of `shard`, made on first use.
    pub(crate) fn shard_state(&mut self, shard: ShardId) -> &mut ShardState {
        let config = &self.config;
        self.shards.entry(shard).or_insert_with(|| ShardState {
            subject: config.subject(shard),
            published: None,
            max_msg_size: None,
            probed: false,
            warned_foreign: false,
        })
    }
}

fn on_event(metrics: &Metrics, refused: &Refused, event: &async_nats::Event) {
    match event {
        // Permanent: credentials revoked (seen on a reconnect), or no
        // permission to publish to the subjects. `pump` stops on it.
        async_nats::Event::ServerError(e @ async_nats::ServerError::AuthorizationViolation) => {
            refused.set(e.to_string());
        }
        async_nats::Event::ServerError(async_nats::ServerError::Other(e)) if e.contains("Permissions Violation") => {
            refused.set(e.clone());
        }
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
