//! Use cases, independent of transport: evaluation from the hot cache, flag
//! management through the store, keeping the cache in step with the store,
//! and watch streams.

mod evaluate;
mod feed;
mod manage;
mod metrics;
pub mod openfeature;
mod segments;
mod sync;
mod watch;

pub use evaluate::{Evaluator, FlagResult, TIMED_EVERY};
pub use feed::FeedEntry;
pub use manage::{FlagFilter, FlagListing, FlagManager, Page, TRANSACTION_TIMEOUT};
pub use metrics::{FlagMetrics, Metrics, MetricsOptions, UnknownFlag};
pub use segments::SegmentManager;
pub use sync::{CacheSync, FeedLimits, keep_in_sync};
pub use watch::{Subscription, WatchEnd, WatchEvent, WatchItem, Watcher};

use std::time::Duration;

use crate::error::{Error, Result};

/// Runs a store transaction to completion even if the caller goes away: a
/// cancelled RPC drops its future, a change that committed must still be
/// applied and announced, and a sea-orm transaction dropped in the middle of
/// a query is not safe (it stalled the runtime in a test). The caller waits
/// at most `limit`: on a half-open connection the transaction itself may
/// hang until TCP gives up; it is left to finish on its own.
async fn to_completion<T: Send + 'static>(
    limit: Duration,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    // In the caller's span: the store's spans stay in the RPC's trace.
    let work = tracing::Instrument::in_current_span(work);
    match tokio::time::timeout(limit, tokio::spawn(work)).await {
        Ok(joined) => joined.map_err(|err| Error::Internal(format!("store task failed: {err}")))?,
        Err(_) => {
            tracing::warn!(timeout = ?limit, "a store transaction did not finish in time");
            // A write may still commit (and then propagate): like any
            // deadline, the outcome is unknown to the caller.
            Err(Error::Unavailable(
                "the flag store did not answer in time".into(),
            ))
        }
    }
}
