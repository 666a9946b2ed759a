//! The task that keeps the local copy current: one Watch stream at a time,
//! applied exactly as the proto documents (a snapshot, in chunks, replaces
//! the copy; changes apply in revision order; heartbeats move the revision
//! on), resumed with `since_revision` after every interruption, with
//! exponential backoff and full jitter, moving to the next endpoint each
//! time a stream ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch};
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::copy::{FlagMap, LocalCopy, SegmentMap};
use crate::pb::evaluation_service_client::EvaluationServiceClient;
use crate::pb::{self, watch_response::Event};
use crate::{ClientEvent, Status, convert};

/// Changes applied per swap of the copy, at most.
const BATCH: usize = 256;
/// Largest message accepted: the server's snapshot chunks stop at 3 MiB.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

pub struct Shared {
    pub copy: LocalCopy,
    /// Whether the copy holds a server's state (not only a bootstrap file's).
    pub from_server: AtomicBool,
    pub status: watch::Sender<Status>,
    pub events: broadcast::Sender<ClientEvent>,
}

impl Shared {
    fn set_status(&self, status: Status) {
        let changed = self.status.send_if_modified(|current| {
            let same = match (&*current, &status) {
                (Status::Ready { .. }, Status::Ready { .. }) => true,
                (Status::Stale { .. }, Status::Stale { .. }) => true,
                (a, b) => a == b,
            };
            *current = status.clone();
            !same
        });
        if changed {
            let _ = self.events.send(ClientEvent::Status(status));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub endpoints: Vec<String>,
    pub token: Option<String>,
    pub connect_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Runs until the client is dropped.
pub async fn run(shared: Arc<Shared>, options: Options) {
    let mut next_endpoint = 0;
    let mut failures: u32 = 0;
    // Only the server's own state is resumed from; a bootstrap copy is not.
    let mut resume: Option<u64> = None;
    loop {
        let endpoint = &options.endpoints[next_endpoint % options.endpoints.len()];
        next_endpoint += 1;
        let mut progressed = false;
        let error = session(&shared, &options, endpoint, &mut resume, &mut progressed).await;
        let last_error = format!("{endpoint}: {error}");
        tracing::debug!(error = %last_error, "Watch stream ended");
        if resume.is_some() || shared.copy.revision() > 0 {
            let since = match &*shared.status.borrow() {
                Status::Stale { since, .. } if !progressed => *since,
                _ => SystemTime::now(),
            };
            shared.set_status(Status::Stale { since, last_error });
        } else {
            shared.set_status(Status::Connecting {
                last_error: Some(last_error),
            });
        }
        failures = if progressed {
            0
        } else {
            failures.saturating_add(1)
        };
        tokio::time::sleep(backoff(&options, failures)).await;
    }
}

/// Full jitter: a random wait up to `base × 2^failures`, capped.
fn backoff(options: &Options, failures: u32) -> Duration {
    let ceiling = options
        .backoff_base
        .saturating_mul(1u32 << failures.min(16))
        .min(options.backoff_max);
    ceiling.mul_f64(fastrand::f64())
}

/// One Watch stream, until it fails; returns why.
async fn session(
    shared: &Shared,
    options: &Options,
    endpoint: &str,
    resume: &mut Option<u64>,
    progressed: &mut bool,
) -> String {
    let channel = match Endpoint::from_shared(endpoint.to_owned()) {
        Ok(channel) if endpoint.starts_with("https://") => {
            match channel.tls_config(ClientTlsConfig::new().with_enabled_roots()) {
                Ok(channel) => channel,
                Err(err) => return format!("TLS: {err}"),
            }
        }
        Ok(channel) => channel,
        Err(err) => return format!("invalid endpoint: {err}"),
    };
    let channel = channel
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let channel = match channel.connect().await {
        Ok(channel) => channel,
        Err(err) => return format!("cannot connect: {}", source_chain(&err)),
    };
    let mut client =
        EvaluationServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut request = tonic::Request::new(pb::WatchRequest {
        flag_names: Vec::new(),
        since_revision: *resume,
        engine: vexil_engine::ENGINE,
    });
    if let Some(token) = &options.token {
        match format!("Bearer {token}").parse() {
            Ok(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            Err(_) => return "the token is not a valid header value".into(),
        }
    }
    let mut stream = match client.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return describe(&status),
    };
    let mut snapshot: Option<(FlagMap, SegmentMap)> = None;
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return "the server ended the stream".into(),
            Err(status) => {
                // RESOURCE_EXHAUSTED and UNAVAILABLE name where to resume.
                if let (Some(since), Some(applied)) = (resume_point(status.message()), *resume) {
                    *resume = Some(since.min(applied));
                }
                return describe(&status);
            }
        };
        match message.event {
            Some(Event::Snapshot(chunk)) => {
                let (flags, segments) = snapshot.get_or_insert_with(Default::default);
                for flag in chunk.flags.into_iter().filter_map(convert::flag_from_pb) {
                    flags.insert(Arc::from(flag.name.as_str()), Arc::new(flag));
                }
                for segment in chunk
                    .segments
                    .into_iter()
                    .filter_map(convert::segment_from_pb)
                {
                    segments.insert(Arc::from(segment.name.as_str()), Arc::new(segment));
                }
                if chunk.last {
                    let (flags, segments) = snapshot.take().unwrap_or_default();
                    let count = flags.len();
                    shared.copy.replace(flags, segments, chunk.revision);
                    shared.from_server.store(true, Ordering::Release);
                    *resume = Some(chunk.revision);
                    *progressed = true;
                    // The event before the status: `connect` returns on
                    // Ready, and a subscriber from then on must not get the
                    // snapshot it already has.
                    let _ = shared.events.send(ClientEvent::Snapshot {
                        revision: chunk.revision,
                        flags: count,
                    });
                    shared.set_status(Status::Ready {
                        revision: chunk.revision,
                    });
                }
            }
            Some(Event::Change(change)) => {
                let mut batch = vec![change];
                // Whatever else already arrived goes into the same swap.
                while batch.len() < BATCH {
                    match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                        Ok(Ok(Some(pb::WatchResponse {
                            event: Some(Event::Change(change)),
                        }))) => batch.push(change),
                        Ok(Ok(Some(pb::WatchResponse {
                            event: Some(Event::Heartbeat(_)),
                        }))) => {}
                        // In revision order: the flags before it first.
                        Ok(Ok(Some(pb::WatchResponse {
                            event: Some(Event::SegmentChange(change)),
                        }))) => {
                            apply(shared, std::mem::take(&mut batch), resume, progressed);
                            apply_segment(shared, change, resume, progressed);
                            break;
                        }
                        Ok(Ok(Some(other))) => {
                            apply(shared, batch, resume, progressed);
                            return format!("unexpected message after changes: {other:?}");
                        }
                        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
                    }
                }
                apply(shared, batch, resume, progressed);
            }
            Some(Event::Heartbeat(heartbeat))
                if snapshot.is_none() && resume.is_some_and(|at| heartbeat.revision >= at) =>
            {
                shared.copy.advance(heartbeat.revision);
                *resume = Some(heartbeat.revision);
                *progressed = true;
                shared.set_status(Status::Ready {
                    revision: heartbeat.revision,
                });
            }
            Some(Event::SegmentChange(change)) => {
                apply_segment(shared, change, resume, progressed);
            }
            Some(Event::Heartbeat(_)) => {}
            None => {}
        }
    }
}

/// Applies changes newer than the copy, in order, in one swap.
fn apply(
    shared: &Shared,
    batch: Vec<pb::FlagChange>,
    resume: &mut Option<u64>,
    progressed: &mut bool,
) {
    let applied = shared.copy.revision();
    let fresh: Vec<pb::FlagChange> = batch
        .into_iter()
        .filter(|change| change.revision > applied)
        .collect();
    let Some(last) = fresh.last().map(|change| change.revision) else {
        return;
    };
    let names: Vec<(String, u64)> = fresh
        .iter()
        .map(|change| (change.flag_name.clone(), change.revision))
        .collect();
    shared.copy.apply(
        fresh.into_iter().map(|change| {
            let flag = change.flag.and_then(convert::flag_from_pb).map(Arc::new);
            (Arc::from(change.flag_name.as_str()), flag)
        }),
        last,
    );
    *resume = Some(last);
    *progressed = true;
    shared.set_status(Status::Ready { revision: last });
    for (flag, revision) in names {
        let _ = shared.events.send(ClientEvent::Changed { flag, revision });
    }
}

/// Applies a segment change newer than the copy.
fn apply_segment(
    shared: &Shared,
    change: pb::SegmentChange,
    resume: &mut Option<u64>,
    progressed: &mut bool,
) {
    if change.revision <= shared.copy.revision() {
        return;
    }
    let segment = change
        .segment
        .and_then(convert::segment_from_pb)
        .map(Arc::new);
    shared.copy.apply_segment(
        Arc::from(change.segment_name.as_str()),
        segment,
        change.revision,
    );
    *resume = Some(change.revision);
    *progressed = true;
    shared.set_status(Status::Ready {
        revision: change.revision,
    });
    let _ = shared.events.send(ClientEvent::SegmentChanged {
        segment: change.segment_name,
        revision: change.revision,
    });
}

/// `since_revision=N` in a status message; `None` when it names none.
fn resume_point(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("since_revision=")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_are_read_from_status_messages() {
        assert_eq!(
            resume_point(
                "subscriber fell more than 1024 events behind; resubscribe with since_revision=42"
            ),
            Some(42)
        );
        assert_eq!(
            resume_point(
                "server shutting down; reconnect with no since_revision, for a new snapshot"
            ),
            None
        );
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let options = Options {
            endpoints: vec![],
            token: None,
            connect_timeout: Duration::from_secs(1),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        };
        for failures in 0..40 {
            let wait = backoff(&options, failures);
            assert!(wait <= Duration::from_secs(5));
            assert!(wait <= Duration::from_millis(100) * 2u32.pow(failures.min(16)));
        }
    }
}
