//! Keeps this replica's hot cache equal to the store, change by change, and
//! feeds every applied change to the replica's watchers.
//!
//! Revisions are gapless and commit-ordered (see the store), so the cache is
//! described by one number: `applied`, the revision up to which every change
//! is reflected. Changes are applied strictly in order, under one lock, from
//! three sources: this replica's own writes, the store's audit log when the
//! bus says there is something new (or may have dropped messages), and the
//! same audit log every `FF_CACHE_TTL` seconds. The cache therefore always
//! holds exactly the store's state at `applied`, and the feed carries every
//! revision once, in order.
//!
//! A hole in the audit log (rows pruned by hand or by a retention job) would
//! stop catch-up for good. One that is still there a moment later is taken
//! as permanent: every flag is reloaded from the flags table, the cache then
//! holds the store's state at its revision, and the feed starts afresh, so
//! Watch streams behind the hole start over with a snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, broadcast, watch};

use super::feed::{ChangeFeed, FeedEntry};
use super::to_completion;
use crate::bus::{BusEvent, BusMessage, ChangeBus};
use crate::cache::FlagCache;
use crate::domain::{Committed, Flag, Segment, limits};
use crate::error::Result;
use crate::instruments::instruments;
use crate::store::{FlagStore, Loaded};

/// Changes read from the store per query while catching up.
const CATCH_UP_BATCH: u64 = 200;
/// How long a hole in the audit log may last before it is taken as
/// permanent (no commit leaves one, even for a moment; this is caution).
const GAP_RECHECK: Duration = Duration::from_millis(500);
/// How long a local write waits for the revisions before it to be applied
/// (by their own writers or from the bus) before reading them from the store.
const IN_ORDER_WAIT: Duration = Duration::from_millis(100);
/// Longest a full load of the flags table may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Bounds of the in-memory change feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    pub changes: usize,
    /// Summed `Flag::wire_size` of the changes held.
    pub bytes: usize,
}

pub struct CacheSync {
    store: Arc<FlagStore>,
    cache: Arc<FlagCache>,
    /// The revision the cache reflects. Held while applying, so changes are
    /// applied and fed one at a time, in order.
    applied: Mutex<u64>,
    /// One catch-up (and reload) at a time: concurrent triggers wait for it
    /// and then find little or nothing left to do.
    catching_up: Mutex<()>,
    feed: ChangeFeed,
    /// Highest revision announced on the bus (the lag gauge's reference).
    announced: AtomicU64,
}

impl CacheSync {
    /// Loads every flag from the store into `cache`.
    pub async fn start(
        store: Arc<FlagStore>,
        cache: Arc<FlagCache>,
        feed: FeedLimits,
    ) -> Result<Self> {
        let Loaded {
            flags,
            segments,
            revision,
        } = load_all(&store).await?;
        warn_of_oversized(&flags);
        cache.replace_all(flags);
        cache.replace_segments(segments);
        Ok(Self {
            store,
            cache,
            applied: Mutex::new(revision),
            catching_up: Mutex::new(()),
            feed: ChangeFeed::new(revision, feed.changes, feed.bytes),
            announced: AtomicU64::new(revision),
        })
    }

    pub fn store(&self) -> &Arc<FlagStore> {
        &self.store
    }

    /// The hot cache this keeps current.
    pub fn cache(&self) -> &FlagCache {
        &self.cache
    }

    /// The recently applied changes, in revision order.
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// Highest revision announced on the bus so far.
    pub fn announced(&self) -> u64 {
        self.announced.load(Relaxed)
    }

    pub async fn applied(&self) -> u64 {
        *self.applied.lock().await
    }

    /// The applied revision, held: no change is applied until the guard is
    /// dropped, so the cache stays exactly at it meanwhile.
    pub async fn applied_guard(&self) -> MutexGuard<'_, u64> {
        self.applied.lock().await
    }

    /// Every flag and segment and the revision they are exactly current to.
    pub async fn snapshot(&self) -> (Vec<Arc<Flag>>, Vec<Arc<Segment>>, u64) {
        let applied = self.applied.lock().await;
        (self.cache.all(), self.cache.segments(), *applied)
    }

    /// Applies a change this replica just committed. Earlier revisions may
    /// still be on their way: another writer on this replica that committed
    /// just before (concurrent writers finish in any order), or another
    /// replica's change on the bus. They are waited for briefly; if they do
    /// not arrive, the store fills the gap, so the feed never skips one.
    pub async fn committed(&self, change: Committed) {
        let revision = change.revision();
        let previous = revision - 1;
        let mut head = self.feed.subscribe();
        let _ = tokio::time::timeout(IN_ORDER_WAIT, head.wait_for(|head| *head >= previous)).await;
        {
            let mut applied = self.applied.lock().await;
            if revision <= *applied {
                return;
            }
            if revision == *applied + 1 {
                self.apply(&mut applied, change);
                return;
            }
        }
        if let Err(err) = self.catch_up().await {
            tracing::warn!(error = %err, revision, "catching up after a local write failed; retrying later");
        }
    }

    /// Applies every change the store has after `applied`. The store is read
    /// without holding the lock (a slow store must not stall snapshots or
    /// writes); changes are then applied under it, skipping those another
    /// catch-up applied meanwhile. A hole in the log that persists is
    /// repaired by a full reload.
    pub async fn catch_up(&self) -> Result<()> {
        let _single = self.catching_up.lock().await;
        let mut suspected_gap = None;
        loop {
            let from = self.applied().await;
            // The counter first: every change up to it is then visible in
            // the log, so an empty read below means they are missing.
            let stored = self.store.revision().await?;
            let changes = self.store.changes_after(from, CATCH_UP_BATCH).await?;
            let complete = (changes.len() as u64) < CATCH_UP_BATCH;
            let mut applied = self.applied.lock().await;
            let mut gap = (changes.is_empty() && stored > *applied).then_some(*applied + 1);
            for change in changes {
                if change.revision() <= *applied {
                    continue;
                }
                if change.revision() != *applied + 1 {
                    gap = Some(*applied + 1);
                    break;
                }
                self.apply(&mut applied, change);
            }
            drop(applied);
            match gap {
                Some(missing) if suspected_gap == Some(missing) => {
                    return self.reload(missing).await;
                }
                Some(missing) => {
                    // Look again in a moment before concluding anything.
                    suspected_gap = Some(missing);
                    tokio::time::sleep(GAP_RECHECK).await;
                }
                None if complete => return Ok(()),
                None => suspected_gap = None,
            }
        }
    }

    /// Replaces the cache with the flags table, past a hole in the audit
    /// log at `missing`, and restarts the feed at the loaded revision.
    async fn reload(&self, missing: u64) -> Result<()> {
        if self.applied().await >= missing {
            return Ok(());
        }
        let Loaded {
            flags,
            segments,
            revision,
        } = load_all(&self.store).await?;
        warn_of_oversized(&flags);
        let mut applied = self.applied.lock().await;
        if revision <= *applied {
            return Ok(());
        }
        tracing::error!(
            missing,
            from = *applied,
            to = revision,
            "the audit log has a hole (pruned rows?); reloaded every flag from the store; \
             Watch streams behind it start over with a snapshot"
        );
        self.cache.replace_all(flags);
        self.cache.replace_segments(segments);
        *applied = revision;
        self.feed.reset(revision);
        Ok(())
    }

    fn apply(&self, applied: &mut u64, change: Committed) {
        match &change {
            Committed::Flag(change) => match &change.flag {
                Some(flag) => self.cache.upsert(flag.clone()),
                None => self
                    .cache
                    .remove(change.flag_name.as_str(), change.revision),
            },
            Committed::Segment(change) => match &change.segment {
                Some(segment) => self.cache.upsert_segment(segment.clone()),
                None => self
                    .cache
                    .remove_segment(change.name.as_str(), change.revision),
            },
        }
        *applied = change.revision();
        self.feed.push(Arc::new(FeedEntry::new(change)));
    }
}

/// Flags stored before the size limit existed may be too large for
/// clients' default message limit: say so, once per load.
fn warn_of_oversized(flags: &[Flag]) {
    for flag in flags
        .iter()
        .filter(|flag| flag.wire_size() > limits::FLAG_BYTES)
    {
        tracing::warn!(
            flag = %flag.name,
            bytes = flag.wire_size(),
            limit = limits::FLAG_BYTES,
            "a stored flag exceeds the size limit (it predates it); clients with the default 4 MiB message limit may refuse answers carrying it; shrink its lists"
        );
    }
}

/// Every flag and segment and their revision, bounded in time.
async fn load_all(store: &Arc<FlagStore>) -> Result<Loaded> {
    let store = store.clone();
    to_completion(LOAD_TIMEOUT, async move { store.load_all().await }).await
}

/// Keeps the cache current until `stop`: catches up when the bus announces a
/// revision this replica lacks, when the bus (re)connects or may have dropped
/// messages, and every `every` regardless. After a reconnect it also
/// announces its revision, so replicas that missed its own announcements
/// while it was cut off catch up at once. Failures are logged once when they
/// start and once when they end; evaluation keeps serving the cache.
pub async fn keep_in_sync(
    sync: Arc<CacheSync>,
    bus: Arc<ChangeBus>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = bus.subscribe();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: it catches up with whatever committed
    // between the initial load and the subscription above.
    let mut failing = false;
    loop {
        let mut announce = false;
        let needed = tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => true,
            event = events.recv() => match event {
                Ok(BusEvent::Message(message)) => {
                    sync.announced.fetch_max(message.revision, Relaxed);
                    message.revision > sync.applied().await
                }
                Ok(BusEvent::Reconnected) => {
                    instruments().bus_reconnected();
                    announce = true;
                    true
                }
                Ok(BusEvent::Lagged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    instruments().bus_lagged();
                    true
                }
                Err(broadcast::error::RecvError::Closed) => {
                    events = bus.subscribe();
                    true
                }
            },
        };
        if !needed {
            continue;
        }
        let outcome = sync.catch_up().await;
        instruments().catch_up(outcome.is_ok());
        if announce && outcome.is_ok() {
            bus.publish(BusMessage {
                revision: sync.applied().await,
                ..BusMessage::default()
            });
        }
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("catch-up from the store recovered");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "catch-up from the store failed; serving cached flags");
            }
            Err(_) => {}
        }
    }
}
