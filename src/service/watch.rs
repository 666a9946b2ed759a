//! Watch: a stream of flag changes that lets a client keep a local copy.
//!
//! A stream starts with a snapshot of the matching flags (in chunks) at a
//! revision, or, when resuming, with the changes after the client's
//! revision read from the store. Then it forwards every change this replica
//! applies, in revision order, and a heartbeat when idle. The per-stream
//! buffer is bounded: a subscriber that lets it fill is cut off with the
//! revision to resume from, instead of growing memory or slowing anyone else.

use std::sync::Arc;
use std::time::Duration;

use ahash::AHashSet;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};

use super::CacheSync;
use crate::domain::{Flag, FlagChange, limits, validate_name};
use crate::error::{Error, Result};

/// Flags per snapshot message, so a large snapshot never makes one huge message.
const SNAPSHOT_CHUNK: usize = 100;

/// Changes read from the store per query when resuming.
const REPLAY_BATCH: u64 = 100;

/// How long a snapshot or replay waits for a subscriber that reads nothing
/// before cutting it off.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One item of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// Part of the matching flags' state at `revision`. The first chunk
    /// replaces the client's copy; `last` marks the final chunk.
    Snapshot {
        flags: Vec<Arc<Flag>>,
        revision: u64,
        last: bool,
    },
    /// One change, in revision order.
    Change(Arc<FlagChange>),
    /// Nothing matching changed; the stream is current to `revision`.
    Heartbeat { revision: u64 },
}

/// Why a stream ended, and the revision to resume after: `None` when the
/// stream ended before its snapshot was complete, so the client must start
/// over with a new snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// The subscriber let its buffer of `buffer` events fill up, or did not
    /// read for `STALL_TIMEOUT` while the stream was waiting for room.
    TooSlow {
        buffer: usize,
        resume_after: Option<u64>,
    },
    /// The server is shutting down.
    ShuttingDown { resume_after: Option<u64> },
    /// The store failed while the stream was replaying changes.
    StoreUnavailable { resume_after: Option<u64> },
}

pub type WatchItem = std::result::Result<WatchEvent, WatchEnd>;

#[derive(Clone)]
pub struct Watcher {
    sync: Arc<CacheSync>,
    heartbeat: Duration,
    buffer: usize,
    stop: watch::Receiver<bool>,
}

impl Watcher {
    /// `buffer` events may wait per subscriber; `stop` turning true ends
    /// every stream (server shutdown).
    pub fn new(
        sync: Arc<CacheSync>,
        heartbeat: Duration,
        buffer: usize,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            sync,
            heartbeat,
            buffer: buffer.max(1),
            stop,
        }
    }

    /// Opens a stream of the named flags (all when empty), resuming after
    /// `since_revision` when given and still servable.
    pub async fn watch(
        &self,
        flag_names: Vec<String>,
        since_revision: Option<u64>,
    ) -> Result<mpsc::Receiver<WatchItem>> {
        if flag_names.len() > limits::BULK_FLAGS {
            return Err(Error::invalid(
                "flag_names",
                format!("must list at most {} flags", limits::BULK_FLAGS),
            ));
        }
        for (i, name) in flag_names.iter().enumerate() {
            if let Err(err) = validate_name("flag_names", name) {
                return Err(Error::invalid(format!("flag_names[{i}]"), err.message));
            }
        }
        let filter = Filter(flag_names.into_iter().collect());
        // One slot beyond the buffer is kept for the item that ends the stream.
        let (tx, rx) = mpsc::channel(self.buffer + 1);
        // Subscribe before anything is read, so no change falls in between.
        let feed = self.sync.subscribe();
        let start = match since_revision {
            Some(since) if since <= self.sync.store().revision().await? => Start::Resume(since),
            _ => Start::Snapshot,
        };
        let stream = Stream {
            sync: self.sync.clone(),
            filter,
            tx,
            buffer: self.buffer,
            heartbeat: self.heartbeat,
            stop: self.stop.clone(),
        };
        tokio::spawn(stream.run(feed, start));
        Ok(rx)
    }
}

enum Start {
    Snapshot,
    Resume(u64),
}

struct Filter(AHashSet<String>);

impl Filter {
    fn matches(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.contains(name)
    }
}

struct Stream {
    sync: Arc<CacheSync>,
    filter: Filter,
    tx: mpsc::Sender<WatchItem>,
    buffer: usize,
    heartbeat: Duration,
    stop: watch::Receiver<bool>,
}

/// How the stream's live phase ended.
enum Live {
    /// The feed overran this stream: replay from the store, then go on.
    Lagged,
    Ended,
}

impl Stream {
    async fn run(mut self, mut feed: broadcast::Receiver<Arc<FlagChange>>, start: Start) {
        let mut position = match start {
            Start::Snapshot => match self.send_snapshot().await {
                Some(revision) => revision,
                None => return,
            },
            Start::Resume(since) => since,
        };
        loop {
            match self.replay(&mut position).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(end) => return self.end(end),
            }
            match self.forward(&mut feed, &mut position).await {
                Live::Ended => return,
                Live::Lagged => feed = self.sync.subscribe(),
            }
        }
    }

    /// Sends the matching flags in chunks; returns their revision.
    async fn send_snapshot(&mut self) -> Option<u64> {
        let (flags, revision) = self.sync.snapshot().await;
        let matching: Vec<Arc<Flag>> = flags
            .into_iter()
            .filter(|flag| self.filter.matches(flag.name.as_str()))
            .collect();
        let chunks = matching.len().div_ceil(SNAPSHOT_CHUNK).max(1);
        let mut flags = matching.into_iter();
        for chunk in 0..chunks {
            let event = WatchEvent::Snapshot {
                flags: flags.by_ref().take(SNAPSHOT_CHUNK).collect(),
                revision,
                last: chunk + 1 == chunks,
            };
            // Until the last chunk is out, the client has no state to resume.
            if !self.send_waiting(event, None).await {
                return None;
            }
        }
        Some(revision)
    }

    /// Sends the store's changes after `position` until it has no more.
    /// `Ok(false)` when the stream ended meanwhile.
    async fn replay(&mut self, position: &mut u64) -> std::result::Result<bool, WatchEnd> {
        loop {
            let changes = self
                .sync
                .store()
                .changes_after(*position, REPLAY_BATCH)
                .await
                .map_err(|_| WatchEnd::StoreUnavailable {
                    resume_after: Some(*position),
                })?;
            let complete = (changes.len() as u64) < REPLAY_BATCH;
            for change in changes {
                let revision = change.revision;
                if self.filter.matches(change.flag_name.as_str())
                    && !self
                        .send_waiting(WatchEvent::Change(Arc::new(change)), Some(*position))
                        .await
                {
                    return Ok(false);
                }
                *position = revision;
            }
            if complete {
                return Ok(true);
            }
        }
    }

    /// Forwards live changes after `position`, with heartbeats, never
    /// waiting on the subscriber.
    async fn forward(
        &mut self,
        feed: &mut broadcast::Receiver<Arc<FlagChange>>,
        position: &mut u64,
    ) -> Live {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = self.stop.changed() => {
                    self.end(WatchEnd::ShuttingDown { resume_after: Some(*position) });
                    return Live::Ended;
                }
                _ = self.tx.closed() => return Live::Ended,
                _ = heartbeat.tick() => {
                    if !self.offer(WatchEvent::Heartbeat { revision: *position }, *position) {
                        return Live::Ended;
                    }
                }
                change = feed.recv() => match change {
                    Ok(change) if change.revision <= *position => {}
                    Ok(change) if change.revision == *position + 1 => {
                        let revision = change.revision;
                        if self.filter.matches(change.flag_name.as_str()) {
                            if !self.offer(WatchEvent::Change(change), *position) {
                                return Live::Ended;
                            }
                            heartbeat.reset();
                        }
                        *position = revision;
                    }
                    // A gap (or a lagged feed): fill it from the store.
                    Ok(_) | Err(RecvError::Lagged(_)) => return Live::Lagged,
                    Err(RecvError::Closed) => {
                        self.end(WatchEnd::ShuttingDown { resume_after: Some(*position) });
                        return Live::Ended;
                    }
                },
            }
        }
    }

    /// Queues `event` if the buffer has room; otherwise cuts the subscriber
    /// off, telling it to resume after `position`. False when the stream ended.
    fn offer(&self, event: WatchEvent, position: u64) -> bool {
        if self.tx.capacity() <= 1 {
            self.end(WatchEnd::TooSlow {
                buffer: self.buffer,
                resume_after: Some(position),
            });
            return false;
        }
        self.tx.try_send(Ok(event)).is_ok()
    }

    /// Queues `event`, waiting for room (snapshot and replay), unless the
    /// server stops, the client leaves, or it reads nothing for
    /// `STALL_TIMEOUT`. Waits for two free slots and uses one, so the slot
    /// for the end of the stream stays free. False when the stream ended.
    async fn send_waiting(&mut self, event: WatchEvent, resume_after: Option<u64>) -> bool {
        tokio::select! {
            permits = self.tx.reserve_many(2) => match permits {
                Ok(mut permits) => {
                    if let Some(permit) = permits.next() {
                        permit.send(Ok(event));
                    }
                    true
                }
                Err(_) => false,
            },
            _ = tokio::time::sleep(STALL_TIMEOUT) => {
                self.end(WatchEnd::TooSlow { buffer: self.buffer, resume_after });
                false
            }
            _ = self.stop.changed() => {
                self.end(WatchEnd::ShuttingDown { resume_after });
                false
            }
        }
    }

    /// Ends the stream with `end`, in the slot kept free for it.
    fn end(&self, end: WatchEnd) {
        let _ = self.tx.try_send(Err(end));
    }
}
