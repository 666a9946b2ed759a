//! Prometheus' scrape endpoint (`GET /metrics` on `VEXIL_METRICS_LISTEN`),
//! rendered by `prometheus-client`. Names and labels follow OpenTelemetry's
//! semantic conventions where they have one (dots become underscores):
//! `feature_flag_key`, `feature_flag_result_reason`, `rpc_method`,
//! `rpc_grpc_status_code`.
//!
//! Two kinds of figures: events counted as they happen by the process-wide
//! [`crate::instruments`] (gRPC calls, bus reconnects, catch-ups, store errors,
//! flush failures), and state read at scrape time by a collector (hot-cache
//! size and revision, Watch streams, bus connection, and the evaluation
//! counters the metrics recorder keeps anyway: no second count on the hot
//! path).

use std::fmt;
use std::sync::Arc;

use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::cache::FlagCache;
use crate::engine::Reason;
use crate::instruments::instruments;
use crate::metrics::{LATENCY_BOUNDS_NS, OTHER_VARIANTS, REASONS, Recorder, Totals};
use crate::service::{CacheSync, Metrics};

/// Flags (in order of first evaluation) whose evaluations get a
/// `feature_flag_key` label of their own; later ones are summed under
/// [`OTHER_FLAGS`], so a service with 100,000 flags does not make 100,000
/// series per reason.
pub const MAX_FLAG_LABELS: usize = 200;
pub const OTHER_FLAGS: &str = "__other__";
/// The `feature_flag_key` of evaluations of names that are not flags
/// (callers choose them: they get no label of their own).
pub const UNKNOWN_FLAGS: &str = "__unknown__";

/// What a replica's `/metrics` reads at scrape time.
pub struct Sources {
    pub cache: Arc<FlagCache>,
    pub sync: Arc<CacheSync>,
    pub recorder: Option<Arc<Recorder>>,
    pub metrics: Arc<Metrics>,
    pub watch_streams: Arc<dyn Fn() -> usize + Send + Sync>,
    pub bus_connected: watch::Receiver<bool>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sources")
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        single(
            &mut encoder,
            "vexil_cache_flags",
            "Flags in this replica's hot cache",
            ConstGauge::new(self.cache.len() as i64),
        )?;
        let revision = self.sync.feed().head();
        single(
            &mut encoder,
            "vexil_cache_revision",
            "Revision this replica's hot cache has applied",
            ConstGauge::new(revision as i64),
        )?;
        let announced = self.sync.announced();
        single(
            &mut encoder,
            "vexil_bus_lag_revisions",
            "Revisions announced on the change bus that this replica has not applied yet",
            ConstGauge::new(announced.saturating_sub(revision) as i64),
        )?;
        single(
            &mut encoder,
            "vexil_bus_connected",
            "1 while the change bus delivers messages (always, in process)",
            ConstGauge::new(i64::from(*self.bus_connected.borrow())),
        )?;
        single(
            &mut encoder,
            "vexil_watch_subscribers",
            "Open Watch (and flagd EventStream, OFREP SSE) streams",
            ConstGauge::new((self.watch_streams)() as i64),
        )?;
        let metrics = &self.metrics;
        single(
            &mut encoder,
            "vexil_metrics_flush_failures",
            "Evaluation-metrics flushes that failed (their figures are kept for the next)",
            ConstCounter::new(metrics.flush_failures()),
        )?;
        let Some(recorder) = &self.recorder else {
            return Ok(());
        };
        single(
            &mut encoder,
            "vexil_metrics_unknown_flags_dropped",
            "Unknown flag names no longer tracked: pushed out of the 1,000 kept by more frequent ones, or aged out",
            ConstCounter::new(recorder.unknown_pushed_out()),
        )?;
        let totals = recorder.totals();
        let mut by_label: std::collections::BTreeMap<(String, usize, bool), u64> =
            std::collections::BTreeMap::new();
        for flag in &totals.flags {
            let key = if flag.ordinal < MAX_FLAG_LABELS {
                flag.name.to_string()
            } else {
                OTHER_FLAGS.to_string()
            };
            for (reason, [off, on]) in flag.outcomes.iter().enumerate() {
                for (enabled, count) in [(false, *off), (true, *on)] {
                    if count > 0 {
                        *by_label.entry((key.clone(), reason, enabled)).or_default() += count;
                    }
                }
            }
        }
        if totals.unknown > 0 {
            let not_found = REASONS
                .iter()
                .position(|reason| *reason == Reason::FlagNotFound)
                .unwrap_or_default();
            by_label.insert(
                (UNKNOWN_FLAGS.to_string(), not_found, false),
                totals.unknown,
            );
        }
        let mut family = encoder.encode_descriptor(
            "feature_flag_evaluations",
            "Flag evaluations by flag key, reason and value (since this replica started)",
            None,
            MetricType::Counter,
        )?;
        for ((key, reason, enabled), count) in by_label {
            let labels = [
                ("feature_flag_key", key),
                (
                    "feature_flag_result_reason",
                    REASONS[reason].name().to_string(),
                ),
                ("feature_flag_result_value", enabled.to_string()),
            ];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        encode_variants(&mut encoder, &totals)?;
        let latency = &totals.latency;
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .zip(latency.latency.iter().copied())
            .collect();
        let count = latency
            .latency
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(*n));
        let family = encoder.encode_descriptor(
            "feature_flag_evaluation_duration_seconds",
            "Server-side evaluation time (cache lookup and rules)",
            None,
            MetricType::Histogram,
        )?;
        let mut family = family;
        family.encode_histogram::<NoLabelSet>(
            latency.latency_sum_ns as f64 / 1e9,
            count,
            &buckets,
            None,
        )
    }
}

/// `feature_flag_variant_evaluations`: evaluations by flag and variant
/// served. Bounded like the flag label: flags past [`MAX_FLAG_LABELS`]
/// count under [`OTHER_FLAGS`] with the variant [`OTHER_VARIANTS`], and a
/// flag counts at most [`crate::metrics::VARIANT_SLOTS`] variant names
/// per environment (others under [`OTHER_VARIANTS`]).
fn encode_variants(encoder: &mut DescriptorEncoder, totals: &Totals) -> fmt::Result {
    let mut by_label: std::collections::BTreeMap<(String, String), u64> =
        std::collections::BTreeMap::new();
    for flag in &totals.flags {
        for (variant, count) in &flag.variants {
            let key = if flag.ordinal < MAX_FLAG_LABELS {
                (flag.name.to_string(), variant.clone())
            } else {
                (OTHER_FLAGS.to_string(), OTHER_VARIANTS.to_string())
            };
            *by_label.entry(key).or_default() += count;
        }
    }
    let mut family = encoder.encode_descriptor(
        "feature_flag_variant_evaluations",
        "Flag evaluations by flag key and the variant served (since this replica started)",
        None,
        MetricType::Counter,
    )?;
    for ((key, variant), count) in by_label {
        let labels = [("feature_flag_key", key), ("feature_flag_variant", variant)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One series without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> fmt::Result {
    let descriptor = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(descriptor)
}

/// A registry with the process's instruments and `sources`.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    let instruments = instruments();
    registry.register(
        "rpc_server_call_duration_seconds",
        "gRPC calls served, by method and status code, and their duration",
        instruments.grpc_duration.clone(),
    );
    registry.register(
        "vexil_bus_reconnects",
        "Times the change bus reconnected (each followed by a catch-up)",
        instruments.bus_reconnects.clone(),
    );
    registry.register(
        "vexil_bus_lagged",
        "Times this replica's bus listener fell behind and dropped messages",
        instruments.bus_lagged.clone(),
    );
    registry.register(
        "vexil_catch_ups",
        "Catch-ups of the hot cache from the store's change log, by outcome",
        instruments.catch_ups.clone(),
    );
    registry.register(
        "vexil_store_errors",
        "Failed store calls by kind (unavailable, conflict, internal)",
        instruments.store_errors.clone(),
    );
    registry.register_collector(Box::new(sources));
    registry
}

/// The scrape endpoint.
pub fn router(registry: Registry) -> axum::Router {
    let registry = Arc::new(registry);
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding the metrics failed",
                    )
                        .into_response(),
                }
            }
        }),
    )
}
