//! What the forwarder asks JetStream before publishing: is JetStream there,
//! is the configured stream there (created if missing) and does it capture
//! `<prefix>.<shard>`, what is a subject's `max_msg_size`, and which entry
//! of a shard did an earlier run publish last.
//!
//! Each answer is sorted into "retry" ([`Setup::Retry`]: timeouts, a
//! cluster without a leader, account limits an operator can raise) and
//! "stop" ([`Setup::Stop`]: what no retry can change).

use std::time::Duration;

use async_nats::RequestErrorKind;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamByNameErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, stream};
use comet::DirId;

use crate::config::{ForwardConfig, StreamStorage, redact_urls};
use crate::error::ForwardError;
use crate::publish::{HEADER_DIR, HEADER_ENTRY};

/// JetStream error codes a stream creation fails with that no retry fixes:
/// not enabled (10039 for the account, 10076 at all), an invalid config
/// (10052), invalid limits (10053), a name in use with another config
/// (10058), subjects overlapping another stream (10065), replicas above
/// what a non-clustered server supports (10074).
const PERMANENT: [u64; 7] = [10039, 10052, 10053, 10058, 10065, 10074, 10076];

/// The outcome of a setup step that failed.
pub(crate) enum Setup {
    /// Transient: back off and try again.
    Retry(String),
    /// Permanent: stop the forwarder.
    Stop(ForwardError),
}

/// Checks that the account has JetStream (`$JS.API.INFO`, read as text:
/// the client's typed account info does not parse 2.9 servers' answer).
/// "No responders" on a server whose INFO says it runs without JetStream
/// is permanent; on a JetStream server it is a cluster still electing its
/// leader, retried.
pub(crate) async fn check_jetstream(nats: &async_nats::Client, config: &ForwardConfig) -> Result<(), Setup> {
    let servers = || redact_urls(&config.nats_url);
    let request = nats.request("$JS.API.INFO", bytes::Bytes::new());
    match tokio::time::timeout(config.publish_timeout, request).await {
        Ok(Ok(m)) => {
            let body = String::from_utf8_lossy(&m.payload);
            match err_code(&body) {
                None => Ok(()),
                Some(code)
                    if code == ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT.0
                        || code == ErrorCode::JETSTREAM_NOT_ENABLED.0 =>
                {
                    Err(Setup::Stop(ForwardError::NoJetStream { servers: servers(), reason: body.into_owned() }))
                }
                Some(_) => Err(Setup::Retry(format!("JetStream account info: {body}"))),
            }
        }
        Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders && !nats.server_info().jetstream => {
            Err(Setup::Stop(ForwardError::NoJetStream {
                servers: servers(),
                reason: "the server runs without JetStream".into(),
            }))
        }
        Ok(Err(e)) => Err(Setup::Retry(format!("JetStream account info: {e}"))),
        Err(_) => Err(Setup::Retry("JetStream account info: timed out".into())),
    }
}

/// The `err_code` of a JetStream API error answer, if it is one.
fn err_code(body: &str) -> Option<u64> {
    let at = body.find("\"err_code\":")? + "\"err_code\":".len();
    let digits: String = body[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What [`ensure_stream`] learned about the configured stream.
pub(crate) struct StreamFacts {
    /// Its `max_msg_size` (`None`: unlimited).
    pub max_msg_size: Option<u64>,
}

/// Creates the configured stream if missing; checks that an existing one
/// captures `<prefix>.<shard>`, and warns when its duplicate window is
/// shorter than asked.
pub(crate) async fn ensure_stream(js: &jetstream::Context, config: &ForwardConfig) -> Result<StreamFacts, Setup> {
    let Some(setup) = &config.stream else {
        return Ok(StreamFacts { max_msg_size: None });
    };
    let wanted = stream::Config {
        name: setup.name.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        duplicate_window: setup.duplicate_window,
        storage: match setup.storage {
            StreamStorage::File => stream::StorageType::File,
            StreamStorage::Memory => stream::StorageType::Memory,
        },
        num_replicas: setup.replicas,
        ..Default::default()
    };
    let created = match tokio::time::timeout(config.publish_timeout, js.get_or_create_stream(wanted)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if let CreateStreamErrorKind::JetStream(j) = e.kind()
                && PERMANENT.contains(&j.error_code().0)
            {
                return Err(Setup::Stop(ForwardError::StreamRefused {
                    stream: setup.name.clone(),
                    code: j.error_code().0,
                    description: j.to_string(),
                }));
            }
            return Err(Setup::Retry(format!("cannot create stream {}: {e}", setup.name)));
        }
        Err(_) => return Err(Setup::Retry(format!("cannot create stream {}: timed out", setup.name))),
    };
    let info = created.cached_info();
    let subjects = &info.config.subjects;
    if !subjects.iter().any(|f| captures_shards(f, &config.subject_prefix)) {
        return Err(Setup::Stop(ForwardError::StreamMismatch {
            stream: setup.name.clone(),
            subjects: subjects.clone(),
            prefix: config.subject_prefix.clone(),
        }));
    }
    let window = info.config.duplicate_window;
    if window < setup.duplicate_window {
        tracing::warn!(
            stream = %setup.name,
            existing = ?window,
            asked = ?setup.duplicate_window,
            "the existing stream's duplicate window is shorter than asked; a redelivery later than it is \
             stored twice (counted as re-published)"
        );
    }
    tracing::info!(stream = %setup.name, duplicate_window = ?window, "JetStream stream ready");
    Ok(StreamFacts { max_msg_size: msg_size_limit(info.config.max_message_size) })
}

/// `max_msg_size` as a limit (`-1` and `0` mean none).
fn msg_size_limit(v: i32) -> Option<u64> {
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// What [`probe_subject`] found for one shard's subject.
pub(crate) struct Probe {
    /// The stream's `max_msg_size` (`None`: unlimited or no stream).
    pub max_msg_size: Option<u64>,
    /// The entry of the subject's last message, if it came from this
    /// data directory.
    pub last_entry: Option<u64>,
    /// The subject's last message came from another data directory (or
    /// from a forwarder before data directory ids).
    pub foreign: bool,
}

/// Looks up the stream capturing `subject` (the configured one, or by
/// subject), its `max_msg_size`, and the subject's last message. No stream
/// capturing the subject is not an error here: the publish will say so.
pub(crate) async fn probe_subject(
    js: &jetstream::Context,
    config: &ForwardConfig,
    subject: &str,
    dir: DirId,
    timeout: Duration,
) -> Result<Probe, String> {
    let mut probe = Probe { max_msg_size: None, last_entry: None, foreign: false };
    let name = match &config.stream {
        Some(s) => s.name.clone(),
        None => match tokio::time::timeout(timeout, js.stream_by_subject(subject)).await {
            Ok(Ok(name)) => name,
            Ok(Err(e)) if matches!(e.kind(), GetStreamByNameErrorKind::NotFound) => return Ok(probe),
            Ok(Err(e)) => return Err(format!("which stream captures {subject}: {e}")),
            Err(_) => return Err(format!("which stream captures {subject}: timed out")),
        },
    };
    let stream = match tokio::time::timeout(timeout, js.get_stream(&name)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("stream {name}: {e}")),
        Err(_) => return Err(format!("stream {name}: timed out")),
    };
    probe.max_msg_size = msg_size_limit(stream.cached_info().config.max_message_size);
    match tokio::time::timeout(timeout, stream.get_last_raw_message_by_subject(subject)).await {
        Ok(Ok(m)) => {
            let get = |k: &str| m.headers.get(k).map(|v| v.as_str().to_string());
            if get(HEADER_DIR).as_deref() == Some(dir.to_string().as_str()) {
                probe.last_entry = get(HEADER_ENTRY).and_then(|e| e.parse().ok());
            } else {
                probe.foreign = true;
            }
        }
        Ok(Err(e)) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {}
        // 2.9 servers answer "no message found" as a JetStream error.
        Ok(Err(e)) if matches!(e.kind(), LastRawMessageErrorKind::JetStream(j) if j.error_code().0 == 10037) => {}
        Ok(Err(e)) => return Err(format!("last message on {subject}: {e}")),
        Err(_) => return Err(format!("last message on {subject}: timed out")),
    }
    Ok(probe)
}

/// True if the subject filter `filter` captures `<prefix>.<t>` for every
/// single token `t` (the shard subjects).
pub(crate) fn captures_shards(filter: &str, prefix: &str) -> bool {
    let mut f = filter.split('.');
    for token in prefix.split('.') {
        match f.next() {
            Some(">") => return true,
            Some("*") => {}
            Some(t) if t == token => {}
            _ => return false,
        }
    }
    matches!((f.next(), f.next()), (Some("*" | ">"), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_that_capture_every_shard_subject() {
        for (filter, ok) in [
            ("site.dev.>", true),
            ("site.dev.*", true),
            ("site.*.>", true),
            ("site.>", true),
            (">", true),
            ("*.dev.*", true),
            ("site.dev.1", false),
            ("site.dev", false),
            ("site.dev.*.x", false),
            ("site.other.>", false),
            ("site.dev.>.x", false),
            ("site.*", false),
        ] {
            assert_eq!(captures_shards(filter, "site.dev"), ok, "{filter}");
        }
    }

    #[test]
    fn error_codes_come_from_api_answers() {
        let answer = r#"{"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":503,"err_code":10039,"description":"jetstream not enabled for account"}}"#;
        assert_eq!(err_code(answer), Some(10039));
        assert_eq!(err_code(r#"{"type":"x","memory":0,"streams":1}"#), None);
    }

    #[test]
    fn only_positive_message_sizes_are_limits() {
        assert_eq!(msg_size_limit(-1), None);
        assert_eq!(msg_size_limit(0), None);
        assert_eq!(msg_size_limit(2000), Some(2000));
    }
}
