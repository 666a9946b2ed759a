//! Use cases, independent of transport: evaluation from the hot cache, flag
//! management through the store, keeping the cache in step with the store,
//! and watch streams.

mod evaluate;
mod feed;
mod manage;
mod sync;
mod watch;

pub use evaluate::{Evaluator, FlagResult};
pub use feed::FeedEntry;
pub use manage::{FlagFilter, FlagManager, Page, TRANSACTION_TIMEOUT};
pub use sync::{CacheSync, FeedLimits, keep_in_sync};
pub use watch::{WatchEnd, WatchEvent, WatchItem, Watcher};
