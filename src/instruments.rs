//! Counters of events (gRPC calls, bus reconnects and lag, catch-ups,
//! store errors), shared by everything in the process and exported by
//! `/metrics` (see `crate::prometheus`). Recording is an atomic increment
//! (a label lookup for the labelled ones); no layer depends on the export.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// gRPC services whose methods are labelled by name; calls to anything
/// else (a scanner's random paths) count under "unknown".
const KNOWN_SERVICES: [&str; 7] = [
    "vexil.v1.EvaluationService",
    "vexil.v1.FlagService",
    "flagd.evaluation.v1.Service",
    "flagd.evaluation.v2.Service",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

pub(crate) type Labels = Vec<(&'static str, String)>;

/// Counters of events, shared by everything in the process.
pub struct Instruments {
    pub(crate) grpc_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) bus_reconnects: Counter,
    pub(crate) bus_lagged: Counter,
    pub(crate) catch_ups: Family<Labels, Counter>,
    pub(crate) store_errors: Family<Labels, Counter>,
}

fn grpc_histogram() -> Histogram {
    Histogram::new([
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The process's instruments.
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| Instruments {
        grpc_duration: Family::new_with_constructor(grpc_histogram),
        bus_reconnects: Counter::default(),
        bus_lagged: Counter::default(),
        catch_ups: Family::default(),
        store_errors: Family::default(),
    })
}

impl Instruments {
    /// One finished gRPC call: `path` is `/package.Service/Method`.
    pub fn grpc_call(&self, path: &str, code: i32, elapsed: Duration) {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            // UNIMPLEMENTED: a method that does not exist; its name is
            // the caller's invention, not a label worth a series.
            .filter(|(service, _)| KNOWN_SERVICES.contains(service) && code != 12)
            .unwrap_or(("unknown", "unknown"));
        let labels = vec![
            ("rpc_system", "grpc".to_string()),
            ("rpc_service", service.to_string()),
            ("rpc_method", method.to_string()),
            ("rpc_grpc_status_code", code.to_string()),
        ];
        self.grpc_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn bus_reconnected(&self) {
        self.bus_reconnects.inc();
    }

    pub fn bus_lagged(&self) {
        self.bus_lagged.inc();
    }

    pub fn catch_up(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.catch_ups
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// A store call failed: `kind` is `unavailable`, `conflict` or `internal`.
    pub fn store_error(&self, kind: &'static str) {
        self.store_errors
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }
}
