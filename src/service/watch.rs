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
//! A stream catches up (snapshot, replay) in a task of its own, through a
//! bounded channel. Once at the head it goes live: the subscription reads
//! the feed itself whenever its consumer asks for more, so a change costs a
//! live subscriber no task, channel or copy of its own, only the shared
//! encoding. A live subscriber that falls more than `buffer` revisions
//! behind the head is cut off with the revision to resume from, instead of
//! growing memory or slowing anyone else.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ahash::AHashSet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream as _;
use tokio_stream::wrappers::WatchStream;

use super::CacheSync;
use super::feed::FeedEntry;
use crate::domain::{Committed, Flag, Segment, limits, validate_name};
use crate::error::{Error, Result};

/// Most flags per snapshot message; a message also stops before the flag
/// that would take it past `SNAPSHOT_CHUNK_BYTES` (it always holds one).
/// Kept small: a message is encoded for its stream alone, and one waits
/// encoded per stream whose reader stalls.
const SNAPSHOT_CHUNK: usize = 100;
const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;

/// Changes taken from the feed per step.
const FEED_BATCH: usize = 256;

/// Changes read from the store per query when replaying, and the bytes of
/// flags (as `wire_size`) after which a query stops early.
const REPLAY_BATCH: u64 = 100;
const REPLAY_BATCH_BYTES: usize = 512 * 1024;

/// Replayed changes are decoded per stream, not shared: a stream queues at
/// most this many batches of them, and all streams together at most
/// [`REPLAY_BYTES`]; a replay that would go past that takes a snapshot
/// instead, which shares the hot cache's flags.
const REPLAY_BATCHES_PER_STREAM: usize = 2;
const REPLAY_BYTES: usize = 2 * limits::FLAG_BYTES;

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
        /// Every segment, whatever the stream's filter, in the chunks
        /// before the flags.
        segments: Vec<Arc<Segment>>,
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
    /// The subscriber fell more than `buffer` revisions behind the head
    /// while live, or did not read for `STALL_TIMEOUT` while catching up.
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
    replay_bytes: Arc<Semaphore>,
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
            replay_bytes: Arc::new(Semaphore::new(REPLAY_BYTES)),
        }
    }

    /// Opens a stream of the named flags (all when empty), resuming after
    /// `since_revision` when given. A resumed stream sends a heartbeat as
    /// soon as it is at the head, so its client knows at once that it is
    /// current (rather than at the first heartbeat, ~15 s later).
    pub async fn watch(
        &self,
        flag_names: Vec<String>,
        since_revision: Option<u64>,
    ) -> Result<Subscription> {
        self.open(flag_names, since_revision, true).await
    }

    async fn open(
        &self,
        flag_names: Vec<String>,
        since_revision: Option<u64>,
        acknowledge: bool,
    ) -> Result<Subscription> {
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
        let filter = Arc::new(Filter(flag_names.into_iter().collect()));
        let start = match since_revision {
            Some(since) if self.reaches(since).await => Start::Resume(since),
            _ => Start::Snapshot,
        };
        let catching_up = self.catch_up(filter.clone(), start, acknowledge);
        Ok(Subscription {
            watcher: self.clone(),
            filter,
            phase: Phase::CatchingUp(catching_up),
        })
    }

    /// Starts the task that brings a stream to the head of the feed.
    fn catch_up(
        &self,
        filter: Arc<Filter>,
        start: Start,
        acknowledge: bool,
    ) -> mpsc::Receiver<Step> {
        // One slot beyond the buffer is kept for the item that ends the stream.
        let (tx, rx) = mpsc::channel(self.buffer + 1);
        let stream = Stream {
            sync: self.sync.clone(),
            filter,
            tx,
            buffer: self.buffer,
            stop: self.stop.clone(),
            replays: self.replays.clone(),
            replay_bytes: self.replay_bytes.clone(),
            own_batches: Arc::new(Semaphore::new(REPLAY_BATCHES_PER_STREAM)),
            acknowledge,
        };
        tokio::spawn(stream.run(start));
        rx
    }

    /// Opens a stream of every change after those this replica has applied
    /// so far: no snapshot first (though one may come later, see above).
    pub async fn watch_from_now(&self) -> Result<Subscription> {
        let head = self.sync.feed().head();
        self.open(Vec::new(), Some(head), false).await
    }

    /// The last revision this replica applied.
    pub fn head(&self) -> u64 {
        self.sync.feed().head()
    }

    /// Whether this replica has applied `revision`, waiting a moment for
    /// one that another replica announced. A revision beyond anything
    /// applied or announced is answered at once: a caller naming one (a
    /// resume far ahead, a made-up ETag) must not hold anything waiting.
    pub async fn reaches(&self, revision: u64) -> bool {
        let head = self.sync.feed().head();
        if revision <= head {
            return true;
        }
        if revision > self.sync.announced() {
            return false;
        }
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

/// A snapshot's item.
enum Either {
    Flag(Arc<Flag>),
    Segment(Arc<Segment>),
}

impl Either {
    fn wire_size(&self) -> usize {
        match self {
            Self::Flag(flag) => flag.wire_size(),
            Self::Segment(segment) => segment.wire_size(),
        }
    }
}

impl Filter {
    fn matches(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.contains(name)
    }

    /// Whether the stream sends `change`: flags by name, every segment
    /// (any flag may refer to one).
    fn passes(&self, change: &Committed) -> bool {
        match change {
            Committed::Flag(change) => self.matches(change.flag_name.as_str()),
            Committed::Segment(_) => true,
        }
    }
}

/// What the catch-up task hands the subscription.
enum Step {
    Item(WatchItem),
    /// A replayed change, with the budget its batch holds until read.
    Replayed {
        item: WatchItem,
        _budget: Arc<ReplayBudget>,
    },
    /// The stream is at the head of the feed after `position`: the
    /// subscription reads on from there itself.
    Live {
        position: u64,
    },
}

/// An open Watch stream: its items in order, through
/// [`Subscription::recv`] or as a [`tokio_stream::Stream`].
pub struct Subscription {
    watcher: Watcher,
    filter: Arc<Filter>,
    phase: Phase,
}

enum Phase {
    CatchingUp(mpsc::Receiver<Step>),
    Live(Box<Live>),
    Ended,
}

impl Subscription {
    /// The next item; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<WatchItem> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl tokio_stream::Stream for Subscription {
    type Item = WatchItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchItem>> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::CatchingUp(steps) => match std::task::ready!(steps.poll_recv(cx)) {
                    Some(Step::Item(item) | Step::Replayed { item, .. }) => {
                        return Poll::Ready(Some(item));
                    }
                    Some(Step::Live { position }) => {
                        this.phase = Phase::Live(Box::new(Live::new(&this.watcher, position)));
                    }
                    None => this.phase = Phase::Ended,
                },
                Phase::Live(live) => match live.poll_next(&this.filter, cx) {
                    Poll::Ready(Next::Item(item)) => {
                        if item.is_err() {
                            this.phase = Phase::Ended;
                        }
                        return Poll::Ready(Some(item));
                    }
                    // The feed no longer holds the position (it was reset,
                    // or dropped it while the consumer was away): catch up
                    // again, from the store or with a snapshot.
                    Poll::Ready(Next::BehindFeed(position)) => {
                        let steps = this.watcher.catch_up(
                            this.filter.clone(),
                            Start::Resume(position),
                            false,
                        );
                        this.phase = Phase::CatchingUp(steps);
                    }
                    Poll::Pending => return Poll::Pending,
                },
                Phase::Ended => return Poll::Ready(None),
            }
        }
    }
}

/// What a live stream has next.
enum Next {
    Item(WatchItem),
    BehindFeed(u64),
}

/// A stream at the head: reads the feed at its position when polled, and
/// waits on the feed's head, the heartbeat and shutdown.
struct Live {
    sync: Arc<CacheSync>,
    position: u64,
    /// Changes read from the feed and not yet looked at.
    pending: VecDeque<Arc<FeedEntry>>,
    buffer: u64,
    head: WatchStream<u64>,
    stop: WatchStream<bool>,
    every: Duration,
    heartbeat: Pin<Box<Sleep>>,
    last_sent: Instant,
}

impl Live {
    fn new(watcher: &Watcher, position: u64) -> Self {
        let now = Instant::now();
        Self {
            sync: watcher.sync.clone(),
            position,
            pending: VecDeque::new(),
            buffer: watcher.buffer as u64,
            // Subscribed before the first read: a change pushed after that
            // read wakes the stream.
            head: WatchStream::from_changes(watcher.sync.feed().subscribe()),
            stop: WatchStream::from_changes(watcher.stop.clone()),
            every: watcher.heartbeat,
            heartbeat: Box::pin(tokio::time::sleep_until(now + watcher.heartbeat)),
            last_sent: now,
        }
    }

    fn poll_next(&mut self, filter: &Filter, cx: &mut Context<'_>) -> Poll<Next> {
        if Pin::new(&mut self.stop).poll_next(cx).is_ready() {
            return self.end(WatchEnd::ShuttingDown {
                resume_after: Some(self.position),
            });
        }
        loop {
            while let Some(change) = self.pending.pop_front() {
                self.position = change.revision();
                if filter.passes(&change.change) {
                    self.last_sent = Instant::now();
                    return Poll::Ready(Next::Item(Ok(WatchEvent::Change(change))));
                }
            }
            if self.sync.feed().head().saturating_sub(self.position) > self.buffer {
                return self.end(WatchEnd::TooSlow {
                    buffer: self.buffer as usize,
                    resume_after: Some(self.position),
                });
            }
            match self.sync.feed().read_after(self.position, FEED_BATCH) {
                Err(_) => return Poll::Ready(Next::BehindFeed(self.position)),
                Ok(changes) if !changes.is_empty() => {
                    self.pending.extend(changes);
                    continue;
                }
                Ok(_) => {}
            }
            match Pin::new(&mut self.head).poll_next(cx) {
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => {
                    return self.end(WatchEnd::ShuttingDown {
                        resume_after: Some(self.position),
                    });
                }
                Poll::Pending => {}
            }
            return self.poll_heartbeat(cx);
        }
    }

    /// A heartbeat once `every` has passed since the last item sent.
    fn poll_heartbeat(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        while self.heartbeat.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let due = self.last_sent + self.every;
            if due <= now {
                self.last_sent = now;
                self.heartbeat.as_mut().reset(now + self.every);
                return Poll::Ready(Next::Item(Ok(WatchEvent::Heartbeat {
                    revision: self.position,
                })));
            }
            // Something was sent since the timer was set: wait from then.
            self.heartbeat.as_mut().reset(due);
        }
        Poll::Pending
    }

    fn end(&self, end: WatchEnd) -> Poll<Next> {
        Poll::Ready(Next::Item(Err(end)))
    }
}

/// The task that brings a stream to the head: a snapshot, a replay from
/// the store, or the feed from the stream's position, then hands over.
struct Stream {
    sync: Arc<CacheSync>,
    filter: Arc<Filter>,
    tx: mpsc::Sender<Step>,
    buffer: usize,
    stop: watch::Receiver<bool>,
    replays: Arc<Semaphore>,
    replay_bytes: Arc<Semaphore>,
    own_batches: Arc<Semaphore>,
    /// Send a heartbeat on reaching the head after a resume.
    acknowledge: bool,
}

/// A replayed batch's share of the stream's and every stream's budget.
struct ReplayBudget {
    _own: OwnedSemaphorePermit,
    _shared: OwnedSemaphorePermit,
}

/// Rows per replay query, and the bytes a batch is budgeted for: as many
/// of the largest flag there is as fit in [`REPLAY_BATCH_BYTES`] (at least
/// one), since a driver reads a query's rows ahead of their use (SQLite's
/// up to 50) and a history holds versions of the flags there are.
fn replay_batch(cache: &crate::cache::FlagCache) -> (u64, usize) {
    let largest = cache.largest_wire_size().max(1);
    let rows = (REPLAY_BATCH_BYTES / largest).clamp(1, REPLAY_BATCH as usize);
    (rows as u64, REPLAY_BATCH_BYTES.max(largest))
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
        let resumed = matches!(start, Start::Resume(_));
        let mut position = match start {
            Start::Snapshot => match self.send_snapshot().await {
                Some(revision) => revision,
                None => return,
            },
            Start::Resume(since) => since,
        };
        loop {
            let changes = match self.sync.feed().read_after(position, FEED_BATCH) {
                Ok(changes) => changes,
                Err(_) => match self.replay(&mut position).await {
                    Replay::Done => continue,
                    Replay::Ended => return,
                    Replay::CannotServe => match self.send_snapshot().await {
                        Some(revision) => {
                            position = revision;
                            continue;
                        }
                        None => return,
                    },
                },
            };
            if changes.is_empty() {
                if self.acknowledge
                    && resumed
                    && !self
                        .send_waiting(
                            Step::Item(Ok(WatchEvent::Heartbeat { revision: position })),
                            Some(position),
                        )
                        .await
                {
                    return;
                }
                // At the head: the subscription reads on by itself.
                self.send_waiting(Step::Live { position }, Some(position))
                    .await;
                return;
            }
            for change in changes {
                let revision = change.revision();
                if self.filter.passes(&change.change)
                    && !self
                        .send_waiting(Step::Item(Ok(WatchEvent::Change(change))), Some(position))
                        .await
                {
                    return;
                }
                position = revision;
            }
        }
    }

    /// Sends the matching flags in chunks bounded by count and bytes;
    /// returns their revision.
    async fn send_snapshot(&mut self) -> Option<u64> {
        let (mut flags, segments, revision) = self.sync.snapshot().await;
        flags.retain(|flag| self.filter.matches(flag.name.as_str()));
        let mut matching = segments
            .into_iter()
            .map(Either::Segment)
            .chain(flags.into_iter().map(Either::Flag))
            .peekable();
        loop {
            let (mut flags, mut segments) = (Vec::new(), Vec::new());
            let mut bytes = 0;
            while let Some(item) = matching.peek() {
                let size = item.wire_size();
                let held = flags.len() + segments.len();
                if held == SNAPSHOT_CHUNK || (held > 0 && bytes + size > SNAPSHOT_CHUNK_BYTES) {
                    break;
                }
                bytes += size;
                match matching.next() {
                    Some(Either::Flag(flag)) => flags.push(flag),
                    Some(Either::Segment(segment)) => segments.push(segment),
                    None => {}
                }
            }
            let last = matching.peek().is_none();
            let event = WatchEvent::Snapshot {
                flags,
                segments,
                revision,
                last,
            };
            // Until the last chunk is out, the client has no state to resume.
            if !self.send_waiting(Step::Item(Ok(event)), None).await {
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
        let (rows, batch_bytes) = replay_batch(self.sync.cache());
        let permits = u32::try_from(batch_bytes.min(REPLAY_BYTES)).unwrap_or(u32::MAX);
        loop {
            // Room for a batch in this stream's queue first: a batch is not
            // read, and held, for a reader that is not reading.
            let own = match self.room_for_a_batch(*position).await {
                Ok(own) => own,
                Err(replay) => return replay,
            };
            // Then in every stream's budget, not waited for: past it, a
            // snapshot, with nothing read.
            let Ok(shared) = self.replay_bytes.clone().try_acquire_many_owned(permits) else {
                return Replay::CannotServe;
            };
            // The permit covers the query only: a slow reader must not keep
            // other streams from the store.
            let Some(changes) = self.read_store(*position, rows).await else {
                return Replay::CannotServe;
            };
            let read_bytes: usize = changes.iter().map(Committed::wire_size).sum();
            let complete = (changes.len() as u64) < rows && read_bytes < REPLAY_BATCH_BYTES;
            let budget = Arc::new(ReplayBudget {
                _own: own,
                _shared: shared,
            });
            for change in changes {
                let revision = change.revision();
                if revision > self.sync.feed().head() {
                    // The store is ahead of this replica: what follows comes
                    // through the feed once applied, so the stream never
                    // runs ahead of the state its snapshots would show.
                    return Replay::Done;
                }
                if revision != *position + 1 {
                    // A hole in the log: never skip a change silently.
                    return Replay::CannotServe;
                }
                if self.filter.passes(&change)
                    && !self
                        .send_waiting(
                            Step::Replayed {
                                item: Ok(WatchEvent::Change(Arc::new(FeedEntry::new(change)))),
                                _budget: budget.clone(),
                            },
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

    /// A place for one more replayed batch in the stream's queue, waiting
    /// for its reader as [`Self::send_waiting`] does.
    async fn room_for_a_batch(
        &mut self,
        position: u64,
    ) -> std::result::Result<OwnedSemaphorePermit, Replay> {
        let resume_after = Some(position);
        tokio::select! {
            permit = self.own_batches.clone().acquire_owned() => permit.map_err(|_| Replay::Ended),
            _ = tokio::time::sleep(STALL_TIMEOUT) => {
                self.end(WatchEnd::TooSlow { buffer: self.buffer, resume_after });
                Err(Replay::Ended)
            }
            _ = self.stop.changed() => {
                self.end(WatchEnd::ShuttingDown { resume_after });
                Err(Replay::Ended)
            }
        }
    }

    /// One batch of changes after `position` from the store, waiting at most
    /// `REPLAY_QUEUE_TIMEOUT` for a turn; `None` when there is none or the
    /// store fails.
    async fn read_store(&self, position: u64, rows: u64) -> Option<Vec<Committed>> {
        let permit =
            tokio::time::timeout(REPLAY_QUEUE_TIMEOUT, self.replays.clone().acquire_owned());
        let Ok(Ok(_permit)) = permit.await else {
            return None;
        };
        self.sync
            .store()
            .replay_after(position, rows, REPLAY_BATCH_BYTES)
            .await
            .ok()
    }

    /// Queues `step`, waiting for room (snapshot and catching up), unless
    /// the server stops, the client leaves, or it reads nothing for
    /// `STALL_TIMEOUT`. Waits for two free slots and uses one, so the slot
    /// for the end of the stream stays free. False when the stream ended.
    async fn send_waiting(&mut self, step: Step, resume_after: Option<u64>) -> bool {
        tokio::select! {
            permits = self.tx.reserve_many(2) => match permits {
                Ok(mut permits) => {
                    if let Some(permit) = permits.next() {
                        permit.send(step);
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
        let _ = self.tx.try_send(Step::Item(Err(end)));
    }
}
