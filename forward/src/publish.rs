//! One publish round: headers, the size check as the server applies it,
//! publishing, awaiting PubAcks and acking in comet.

use std::collections::{HashMap, HashSet};
use std::future::IntoFuture;
use std::time::Instant;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;
use comet::{DirId, Message, MessageId, ShardId};

use crate::error::{ForwardError, SizeLimit};
use crate::forwarder::Forwarder;

/// Header with the data directory's identity (`comet.id`, 32 hex digits).
pub const HEADER_DIR: &str = "Comet-Dir";
/// Header with the entry's shard id (decimal).
pub const HEADER_SHARD: &str = "Comet-Shard";
/// Header with the entry's number within its shard (decimal).
pub const HEADER_ENTRY: &str = "Comet-Entry";
/// Header with the entry's append time, ns since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "Comet-Timestamp";

/// JetStream's "message size exceeds maximum allowed" PubAck error.
const MESSAGE_TOO_LARGE: u64 = 10054;

/// A failed publish round, retried after a backoff.
pub(crate) enum Failure {
    /// The client refused the publish.
    Publish(String),
    /// No PubAck in time.
    TimedOut,
    /// The server answered with an error (e.g. no stream for the subject).
    Ack(String),
    /// Looking up a subject's stream failed.
    Probe(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Publish(e) => write!(f, "publish: {e}"),
            Failure::TimedOut => f.write_str("no PubAck within the publish timeout"),
            Failure::Ack(e) => write!(f, "server: {e}"),
            Failure::Probe(e) => write!(f, "stream lookup: {e}"),
        }
    }
}

/// The `Nats-Msg-Id` of an entry: `<dir>-<shard>-<entry>`, unique across
/// data directories.
pub fn message_id(dir: DirId, id: MessageId) -> String {
    format!("{dir}-{id}")
}

/// The headers of an entry: `Nats-Msg-Id` for deduplication, the data
/// directory, shard, entry number and timestamp.
pub(crate) fn headers(dir: DirId, m: &Message) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in header_pairs(dir, m) {
        h.insert(k, v);
    }
    h
}

fn header_pairs(dir: DirId, m: &Message) -> [(&'static str, String); 5] {
    [
        ("Nats-Msg-Id", message_id(dir, m.id)),
        (HEADER_DIR, dir.to_string()),
        (HEADER_SHARD, m.id.shard.get().to_string()),
        (HEADER_ENTRY, m.id.entry.to_string()),
        (HEADER_TIMESTAMP, m.timestamp.to_string()),
    ]
}

/// The bytes an entry takes on the wire as the server counts them against
/// `max_payload` and `max_msg_size`: the header block
/// (`NATS/1.0\r\n`, one `Key: Value\r\n` per header, `\r\n`) plus the
/// payload.
pub fn wire_size(dir: DirId, m: &Message) -> u64 {
    let block: usize = header_pairs(dir, m).iter().map(|(k, v)| k.len() + 2 + v.len() + 2).sum();
    (b"NATS/1.0\r\n".len() + block + 2 + m.data().len()) as u64
}

impl Forwarder {
    /// Publishes `messages` (grouped by shard, each in entry order), waits
    /// for their PubAcks and acks in comet, per shard, the longest prefix
    /// JetStream acknowledged. An entry above a size limit stops its shard
    /// before it (nothing of the shard after it is published). Returns the
    /// failure that cut the round short.
    pub(crate) async fn publish(
        &mut self,
        nats: &async_nats::Client,
        js: &jetstream::Context,
        messages: &[Message],
    ) -> Result<Option<Failure>, ForwardError> {
        let max_payload = nats.server_info().max_payload as u64;
        let mut failure = None;
        let mut pending = Vec::with_capacity(messages.len());
        let mut skipped: HashSet<ShardId> = HashSet::new();
        for m in messages {
            let shard = m.id.shard;
            if skipped.contains(&shard) || self.stopped.contains_key(&shard) {
                continue;
            }
            if let Err(f) = self.probe(js, shard).await {
                // Without the stream's limits the shard waits for the next round.
                skipped.insert(shard);
                failure.get_or_insert(f);
                continue;
            }
            let bytes = wire_size(self.dir_id, m);
            let state = self.shard_state(shard);
            let limit = [
                (Some(max_payload).filter(|&l| l > 0), SizeLimit::MaxPayload),
                (state.max_msg_size, SizeLimit::MaxMsgSize),
            ]
            .into_iter()
            .find_map(|(l, kind)| l.filter(|&l| bytes > l).map(|l| (l, kind)));
            if let Some((limit, kind)) = limit {
                self.stop_shard(shard, ForwardError::EntryTooLarge { id: m.id, bytes, limit, kind });
                continue;
            }
            let republish = state.published.is_some_and(|h| m.id.entry <= h);
            let subject = state.subject.clone();
            let started = Instant::now();
            match js.publish_with_headers(subject, headers(self.dir_id, m), Bytes::copy_from_slice(m.data())).await {
                Ok(ack) => {
                    if republish {
                        self.metrics.republished();
                    }
                    let state = self.shard_state(shard);
                    state.published = Some(state.published.map_or(m.id.entry, |h| h.max(m.id.entry)));
                    pending.push((m, started, ack));
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    // The server's max_payload changed under us (another
                    // server of the cluster): checked again next round.
                    skipped.insert(shard);
                    failure.get_or_insert(Failure::Publish(e.to_string()));
                }
                Err(e) => {
                    failure = Some(if e.kind() == PublishErrorKind::TimedOut {
                        Failure::TimedOut
                    } else {
                        Failure::Publish(e.to_string())
                    });
                    break;
                }
            }
        }
        // PubAcks arrive concurrently. The deadline moves on with every
        // PubAck: a round fails after `publish_timeout` without progress,
        // not after `publish_timeout` in all (a round of 100,000 entries
        // takes longer than that). Once it has passed, the PubAcks still
        // awaited are only checked for having arrived.
        let timeout = self.config.publish_timeout;
        let mut deadline = tokio::time::Instant::now() + timeout;
        let mut high: HashMap<ShardId, u64> = HashMap::new();
        let mut broken: HashSet<ShardId> = HashSet::new();
        for (m, started, ack) in pending {
            let shard = m.id.shard;
            let ack = match tokio::time::timeout_at(deadline, ack.into_future()).await {
                Ok(r) => r,
                Err(_) => Err(jetstream::context::PublishError::new(PublishErrorKind::TimedOut)),
            };
            match ack {
                Ok(ack) => {
                    deadline = tokio::time::Instant::now() + timeout;
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
                Err(e) => {
                    broken.insert(shard);
                    let too_large = std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<jetstream::Error>())
                        .is_some_and(|j| j.error_code().0 == MESSAGE_TOO_LARGE);
                    if too_large {
                        // The stream's max_msg_size changed since it was
                        // probed: probe again before the shard goes on.
                        self.shard_state(shard).probed = false;
                    }
                    failure.get_or_insert(if e.kind() == PublishErrorKind::TimedOut {
                        Failure::TimedOut
                    } else {
                        Failure::Ack(e.to_string())
                    });
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

    /// Probes `shard`'s subject once (again after a failed round).
    async fn probe(&mut self, js: &jetstream::Context, shard: ShardId) -> Result<(), Failure> {
        if self.shard_state(shard).probed {
            return Ok(());
        }
        let subject = self.shard_state(shard).subject.clone();
        let p = crate::stream::probe_subject(js, &self.config, &subject, self.dir_id, self.config.publish_timeout)
            .await
            .map_err(Failure::Probe)?;
        let stream_limit = self.stream_limit;
        let state = self.shard_state(shard);
        state.probed = true;
        state.max_msg_size = p.max_msg_size.or(stream_limit);
        if let Some(last) = p.last_entry {
            state.published = Some(state.published.map_or(last, |h| h.max(last)));
        }
        if p.foreign && !state.warned_foreign {
            state.warned_foreign = true;
            tracing::warn!(
                subject = %subject,
                "the subject's last message comes from another data directory (or a forwarder without \
                 directory ids): message ids stay unique, but the subject mixes two logs; give each device \
                 its own prefix"
            );
        }
        Ok(())
    }
}
