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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, broadcast, watch};

use crate::bus::{BusEvent, BusMessage, ChangeBus};
use crate::cache::FlagCache;
use crate::domain::{Flag, FlagChange};
use crate::error::Result;
use crate::store::FlagStore;

/// Changes read from the store per query while catching up.
const CATCH_UP_BATCH: u64 = 200;

pub struct CacheSync {
    store: Arc<FlagStore>,
    cache: Arc<FlagCache>,
    /// The revision the cache reflects. Held while applying, so changes are
    /// applied and fed one at a time, in order.
    applied: Mutex<u64>,
    feed: broadcast::Sender<Arc<FlagChange>>,
}

impl CacheSync {
    /// Loads every flag from the store into `cache`. `feed_capacity` bounds
    /// how far a watcher may fall behind the feed before it must catch up
    /// from the store.
    pub async fn start(
        store: Arc<FlagStore>,
        cache: Arc<FlagCache>,
        feed_capacity: usize,
    ) -> Result<Self> {
        let (flags, revision) = store.load_all().await?;
        cache.replace_all(flags);
        Ok(Self {
            store,
            cache,
            applied: Mutex::new(revision),
            feed: broadcast::channel(feed_capacity.max(1)).0,
        })
    }

    pub fn store(&self) -> &Arc<FlagStore> {
        &self.store
    }

    /// Every change applied from now on, in revision order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FlagChange>> {
        self.feed.subscribe()
    }

    pub async fn applied(&self) -> u64 {
        *self.applied.lock().await
    }

    /// Every flag and the revision they are exactly current to.
    pub async fn snapshot(&self) -> (Vec<Arc<Flag>>, u64) {
        let applied = self.applied.lock().await;
        (self.cache.all(), *applied)
    }

    /// Applies a change this replica just committed. If earlier revisions
    /// (from other replicas) are still missing, catches up to it from the
    /// store instead, so the feed never skips one.
    pub async fn committed(&self, change: FlagChange) {
        {
            let mut applied = self.applied.lock().await;
            if change.revision <= *applied {
                return;
            }
            if change.revision == *applied + 1 {
                self.apply(&mut applied, change);
                return;
            }
        }
        if let Err(err) = self.catch_up().await {
            tracing::warn!(error = %err, revision = change.revision, "catching up after a local write failed; retrying later");
        }
    }

    /// Applies every change the store has after `applied`. The store is read
    /// without holding the lock (a slow store must not stall snapshots or
    /// writes); changes are then applied under it, skipping those another
    /// catch-up applied meanwhile.
    pub async fn catch_up(&self) -> Result<()> {
        loop {
            let from = self.applied().await;
            let changes = self.store.changes_after(from, CATCH_UP_BATCH).await?;
            let complete = (changes.len() as u64) < CATCH_UP_BATCH;
            let mut applied = self.applied.lock().await;
            for change in changes {
                if change.revision <= *applied {
                    continue;
                }
                if change.revision != *applied + 1 {
                    // Revisions commit in order, so the log has no holes;
                    // never apply past one. Retried at the next trigger.
                    tracing::error!(
                        expected = *applied + 1,
                        found = change.revision,
                        "gap in the audit log"
                    );
                    return Ok(());
                }
                self.apply(&mut applied, change);
            }
            if complete {
                return Ok(());
            }
        }
    }

    fn apply(&self, applied: &mut u64, change: FlagChange) {
        match &change.flag {
            Some(flag) => self.cache.upsert(flag.clone()),
            None => self
                .cache
                .remove(change.flag_name.as_str(), change.revision),
        }
        *applied = change.revision;
        // No watcher is fine.
        let _ = self.feed.send(Arc::new(change));
    }
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
                Ok(BusEvent::Message(message)) => message.revision > sync.applied().await,
                Ok(BusEvent::Reconnected) => {
                    announce = true;
                    true
                }
                Ok(BusEvent::Lagged) | Err(broadcast::error::RecvError::Lagged(_)) => true,
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
        if announce && outcome.is_ok() {
            bus.publish(BusMessage {
                revision: sync.applied().await,
                flag: None,
                kind: None,
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
