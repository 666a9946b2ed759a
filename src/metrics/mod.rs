//! Evaluation metrics: what the hot path counts (per flag × environment ×
//! UTC hour) and how replicas' figures add up into a report. No store, no
//! transport: `service::metrics` flushes and reads them.

pub mod hll;
mod recorder;
mod report;

pub use recorder::{
    ALWAYS_TIMED, Collected, FlagStats, HourFigures, HourRecord, LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS, MAX_UNKNOWN_FLAGS, MAX_USER_SKETCHES, Observation, REASONS, Recorder, Totals,
};
pub use report::Report;
