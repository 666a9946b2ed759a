//! Watch: a stream of flag changes that lets a client keep a local copy.
//!
//! A stream starts with a snapshot of the matching flags (in chunks) at a
//! revision, or, when resuming, with the changes after the client's
//! revision. Then it forwards every change this replica applies, in
//! revision order, and a heartbeat when idle.
//!
//! Everything is served from memory: snapshots from the hot cache, changes
//! from the replica's change feed, at each stream's own position. Only a
//! position older than the feed reads the store's audit log, a few streams
//! at a time; a stream that cannot be replayed that way (the store is down,
//! too many replays queue, the log has a hole) starts over with a snapshot,
//! which the client applies like the first one. So Watch keeps working
//! while the database is down.
//!
//! The per-stream buffer is bounded: a live subscriber that lets it fill is
//! cut off with the revision to resume from, instead of growing memory or
//! slowing anyone else.

use std::sync::Arc;
use std::time::Duration;

use ahash::AHashSet;
use tokio::sync::{Semaphore, mpsc, watch};

use super::CacheSync;
use super::feed::FeedEntry;
use crate::domain::{Flag, FlagChange, limits, validate_name};
use crate::error::{Error, Result};

/// Most flags per snapshot message; a message also stops before the flag
/// that would take it past `limits::MESSAGE_BYTES`.
const SNAPSHOT_CHUNK: usize = 100;

/// Changes taken from the feed per step.
const FEED_BATCH: usize = 256;

/// Changes read from the store per query when replaying.
const REPLAY_BATCH: u64 = 100;

/// Store replays running at once on a replica: the pool serves writes and
/// API reads too.
const MAX_REPLAYS: usize = 4;

/// How long a stream waits for its turn to replay before it takes a
/// snapshot instead.
const REPLAY_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a resume from a revision this replica has not applied yet (the
/// client came from a replica further on) waits for this one to get there
/// before it takes a snapshot instead.
const AHEAD_WAIT: Duration = Duration::from_secs(1);

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
    Change(Arc<FeedEntry>),
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
}

pub type WatchItem = std::result::Result<WatchEvent, WatchEnd>;

#[derive(Clone)]
pub struct Watcher {
    sync: Arc<CacheSync>,
    heartbeat: Duration,
    buffer: usize,
    stop: watch::Receiver<bool>,
    replays: Arc<Semaphore>,
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
            replays: Arc::new(Semaphore::new(MAX_REPLAYS)),
        }
    }

    /// Opens a stream of the named flags (all when empty), resuming after
    /// `since_revision` when given.
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
        let start = match since_revision {
            Some(since) if self.reaches(since).await => Start::Resume(since),
            _ => Start::Snapshot,
        };
        // One slot beyond the buffer is kept for the item that ends the stream.
        let (tx, rx) = mpsc::channel(self.buffer + 1);
        let stream = Stream {
            sync: self.sync.clone(),
            filter,
            tx,
            buffer: self.buffer,
            heartbeat: self.heartbeat,
            stop: self.stop.clone(),
            replays: self.replays.clone(),
        };
        tokio::spawn(stream.run(start));
        Ok(rx)
    }

    /// Opens a stream of every change after those this replica has applied
    /// so far: no snapshot first (though one may come later, see above).
    pub async fn watch_from_now(&self) -> Result<mpsc::Receiver<WatchItem>> {
        let head = self.sync.feed().head();
        self.watch(Vec::new(), Some(head)).await
    }

    /// The last revision this replica applied.
    pub fn head(&self) -> u64 {
        self.sync.feed().head()
    }

    /// Whether this replica has applied `revision` (waiting a moment for it).
    pub async fn reaches(&self, revision: u64) -> bool {
        let mut head = self.sync.feed().subscribe();
        tokio::time::timeout(AHEAD_WAIT, head.wait_for(|head| *head >= revision))
            .await
            .is_ok_and(|reached| reached.is_ok())
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
    replays: Arc<Semaphore>,
}

/// How a replay from the store went.
enum Replay {
    /// The stream's position is within the feed again.
    Done,
    /// The store cannot fill the gap (down, busy, or the log has a hole).
    CannotServe,
    /// The stream ended meanwhile.
    Ended,
}

impl Stream {
    async fn run(mut self, start: Start) {
        let mut head = self.sync.feed().subscribe();
        let (mut position, mut live) = match start {
            Start::Snapshot => match self.send_snapshot().await {
                Some(revision) => (revision, false),
                None => return,
            },
            Start::Resume(since) => (since, false),
        };
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        // After a long snapshot or replay: one heartbeat, not a burst.
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            // Mark the head seen before reading, so a change pushed after the
            // read wakes the wait below.
            head.borrow_and_update();
            let changes = match self.sync.feed().read_after(position, FEED_BATCH) {
                Ok(changes) => changes,
                Err(_) => match self.replay(&mut position).await {
                    Replay::Done => continue,
                    Replay::Ended => return,
                    Replay::CannotServe => match self.send_snapshot().await {
                        Some(revision) => {
                            (position, live) = (revision, false);
                            heartbeat.reset();
                            continue;
                        }
                        None => return,
                    },
                },
            };
            if changes.is_empty() {
                // At the head: from now on a subscriber that lets its
                // buffer fill is cut off rather than waited for.
                live = true;
                if !self.idle(&mut head, &mut heartbeat, position).await {
                    return;
                }
                continue;
            }
            for change in changes {
                let revision = change.revision;
                if self.filter.matches(change.flag_name.as_str()) {
                    let event = WatchEvent::Change(change);
                    let sent = if live {
                        self.offer(event, position)
                    } else {
                        self.send_waiting(event, Some(position)).await
                    };
                    if !sent {
                        return;
                    }
                    heartbeat.reset();
                }
                position = revision;
            }
        }
    }

    /// Waits for a new change, sending heartbeats meanwhile. False when the
    /// stream ended.
    async fn idle(
        &mut self,
        head: &mut watch::Receiver<u64>,
        heartbeat: &mut tokio::time::Interval,
        position: u64,
    ) -> bool {
        tokio::select! {
            _ = self.stop.changed() => {
                self.end(WatchEnd::ShuttingDown { resume_after: Some(position) });
                false
            }
            _ = self.tx.closed() => false,
            _ = heartbeat.tick() => self.offer(WatchEvent::Heartbeat { revision: position }, position),
            changed = head.changed() => {
                if changed.is_err() {
                    self.end(WatchEnd::ShuttingDown { resume_after: Some(position) });
                }
                changed.is_ok()
            }
        }
    }

    /// Sends the matching flags in chunks bounded by count and bytes;
    /// returns their revision.
    async fn send_snapshot(&mut self) -> Option<u64> {
        let (mut flags, revision) = self.sync.snapshot().await;
        flags.retain(|flag| self.filter.matches(flag.name.as_str()));
        let mut matching = flags.into_iter().peekable();
        loop {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(flag) = matching.peek() {
                let size = flag.wire_size();
                if chunk.len() == SNAPSHOT_CHUNK
                    || (!chunk.is_empty() && bytes + size > limits::MESSAGE_BYTES)
                {
                    break;
                }
                bytes += size;
                chunk.extend(matching.next());
            }
            let last = matching.peek().is_none();
            let event = WatchEvent::Snapshot {
                flags: chunk,
                revision,
                last,
            };
            // Until the last chunk is out, the client has no state to resume.
            if !self.send_waiting(event, None).await {
                return None;
            }
            if last {
                return Some(revision);
            }
        }
    }

    /// Sends the store's changes after `position` until the position is
    /// within the feed again.
    async fn replay(&mut self, position: &mut u64) -> Replay {
        loop {
            // The permit covers the query only: a slow reader must not keep
            // other streams from the store.
            let Some(changes) = self.read_store(*position).await else {
                return Replay::CannotServe;
            };
            let complete = (changes.len() as u64) < REPLAY_BATCH;
            for change in changes {
                if change.revision > self.sync.feed().head() {
                    // The store is ahead of this replica: what follows comes
                    // through the feed once applied, so the stream never
                    // runs ahead of the state its snapshots would show.
                    return Replay::Done;
                }
                if change.revision != *position + 1 {
                    // A hole in the log: never skip a change silently.
                    return Replay::CannotServe;
                }
                let revision = change.revision;
                if self.filter.matches(change.flag_name.as_str())
                    && !self
                        .send_waiting(
                            WatchEvent::Change(Arc::new(FeedEntry::new(change))),
                            Some(*position),
                        )
                        .await
                {
                    return Replay::Ended;
                }
                *position = revision;
            }
            if self.sync.feed().read_after(*position, 0).is_ok() {
                return Replay::Done;
            }
            if complete {
                // The log ends before the feed begins: a hole at its end.
                return Replay::CannotServe;
            }
        }
    }

    /// One batch of changes after `position` from the store, waiting at most
    /// `REPLAY_QUEUE_TIMEOUT` for a turn; `None` when there is none or the
    /// store fails.
    async fn read_store(&self, position: u64) -> Option<Vec<FlagChange>> {
        let permit =
            tokio::time::timeout(REPLAY_QUEUE_TIMEOUT, self.replays.clone().acquire_owned());
        let Ok(Ok(_permit)) = permit.await else {
            return None;
        };
        self.sync
            .store()
            .replay_after(position, REPLAY_BATCH)
            .await
            .ok()
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

    /// Queues `event`, waiting for room (snapshot and catching up), unless
    /// the server stops, the client leaves, or it reads nothing for
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
