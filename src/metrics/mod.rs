//! Evaluation metrics: what the hot path counts (per flag × environment ×
//! UTC hour) and how replicas' figures add up into a report. No store, no
//! transport: `service::metrics` flushes and reads them.

pub mod hll;
mod recorder;
mod report;

pub use recorder::{
    ALWAYS_TIMED, Collected, FlagStats, FlagTotals, HourFigures, HourRecord, LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS, MAX_UNKNOWN_FLAGS, MAX_USER_SKETCHES, OTHER_VARIANTS, Observation, REASONS,
    Recorder, Totals, VARIANT_SLOTS,
};
pub use report::Report;
