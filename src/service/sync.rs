//! Keeps the hot cache in step with the store: a full reload at start and
//! every `FF_CACHE_TTL` seconds, which also repairs anything a replica missed.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::FlagCache;
use crate::error::Result;
use crate::store::FlagStore;

/// Reloads every flag from the store into the cache.
pub async fn refresh_cache(store: &FlagStore, cache: &FlagCache) -> Result<()> {
    let (flags, revision) = store.load_all().await?;
    cache.replace_all(flags, revision);
    Ok(())
}

/// Refreshes the cache every `every`, forever. A failure is logged once when
/// it starts and once when it ends, not at every attempt; the cache keeps
/// serving what it has meanwhile.
pub async fn refresh_periodically(store: Arc<FlagStore>, cache: Arc<FlagCache>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; the cache was just loaded
    let mut failing = false;
    loop {
        ticks.tick().await;
        match refresh_cache(&store, &cache).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(flags = cache.len(), "cache refresh recovered");
            }
            Ok(()) => tracing::debug!(flags = cache.len(), "cache refreshed"),
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "cache refresh failed; serving cached flags");
            }
            Err(_) => {}
        }
    }
}
