//! Use cases, independent of transport: evaluation from the hot cache, flag
//! management through the store, and keeping the cache in step with the store.

mod evaluate;
mod manage;
mod sync;

pub use evaluate::{Evaluator, FlagResult};
pub use manage::{FlagFilter, FlagManager, Page};
pub use sync::{refresh_cache, refresh_periodically};
