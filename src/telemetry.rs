//! Telemetry: logs as text or JSON lines, and traces exported over OTLP/gRPC
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, with a span for every gRPC call ([`grpc_tracing`]).
//!
//! Without an endpoint there is no OpenTelemetry layer at all: spans cost
//! what `tracing` spans cost. The SDK reads the other `OTEL_*` variables
//! itself (sampler, batch delays, headers, timeouts); only the service name
//! has a default of our own, `vexil`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::error::{Error, Result};

/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// names one.
const DEFAULT_SERVICE_NAME: &str = "vexil";
/// Where traces go, most specific first (the SDK reads them in this order).
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
/// The samplers the SDK builds from `OTEL_TRACES_SAMPLER`.
const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];
/// Crates on the exporter's own path: their spans are never exported, or
/// every export (at a verbose RUST_LOG) would trace itself.
const EXPORT_PATH_TARGETS: [&str; 6] = ["h2", "hyper", "tonic", "tower", "rustls", "opentelemetry"];

/// Logged without RUST_LOG: `info`, but not PostgreSQL's notices (the
/// migrator's `CREATE TABLE IF NOT EXISTS` says "already exists, skipping"
/// on every start).
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Names the replica on every log line, so the logs of several replicas can
/// be told apart once gathered: `replica=NAME` before a text line, a
/// `replica` key in a JSON object.
struct Replica<F> {
    name: String,
    /// `inner` writes one JSON object per line.
    json: bool,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Replica<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.json {
            write!(writer, "replica={} ", self.name)?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let name = serde_json::to_string(&self.name).map_err(|_| std::fmt::Error)?;
                write!(writer, "{{\"replica\":{name},{rest}")
            }
            None => writer.write_str(&line),
        }
    }
}

/// How log lines are written (`VEXIL_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("VEXIL_LOG_FORMAT (--log-format) must be `text` or `json`".into()),
        }
    }
}

/// The tracer provider, kept until [`Telemetry::shutdown`] flushes it.
#[must_use = "call `shutdown` before exiting, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's `tracing` subscriber: logs in `format` (filtered
/// by `RUST_LOG`, `info` by default) and, when an OTLP endpoint is set, the
/// OpenTelemetry layer exporting spans. Call inside the Tokio runtime: the
/// exporter's connection runs on it.
pub fn init(format: LogFormat, replica: &str) -> Result<Telemetry> {
    let provider = otlp_endpoint()
        .map(|endpoint| tracer_provider(&endpoint))
        .transpose()?;
    let traces = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exported = EXPORT_PATH_TARGETS.iter().fold(
            Targets::new().with_default(LevelFilter::TRACE),
            |targets, target| targets.with_target(*target, LevelFilter::OFF),
        );
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("vexil"))
            .with_filter(exported)
    });
    // Colour only for a person at a terminal, not in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let replica = replica.to_owned();
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .event_format(Replica {
                name: replica,
                json: false,
                inner: tracing_subscriber::fmt::format().with_ansi(ansi),
            })
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(Replica {
                name: replica,
                json: true,
                inner: tracing_subscriber::fmt::format().json(),
            })
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)))
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|err| Error::Internal(format!("setting up logging: {err}")))?;
    if provider.is_some() {
        tracing::info!(
            endpoint = otlp_endpoint().unwrap_or_default(),
            "exporting traces over OTLP"
        );
        check_sampler();
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // Blocks until the last batch is sent (5 s at most): off the async
        // threads, which drive the exporter's connection meanwhile.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "flushing traces failed"),
            Err(err) => tracing::warn!(error = %err, "flushing traces failed"),
        }
    }
}

/// The first endpoint variable set (to more than blanks).
fn otlp_endpoint() -> Option<String> {
    ENDPOINT_VARS.into_iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .filter(|endpoint| !endpoint.trim().is_empty())
    })
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let https = endpoint
        .parse::<http::Uri>()
        .is_ok_and(|uri| uri.scheme() == Some(&http::uri::Scheme::HTTPS));
    if https {
        // The exporter turns TLS on for https but trusts no root by itself.
        exporter =
            exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = exporter
        .build()
        .map_err(|err| Error::invalid("the OTLP trace exporter", err.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// The SDK reads the sampler variables while the provider is built, before
/// logging is up, and falls back without a word: say it now.
fn check_sampler() {
    let Ok(sampler) = std::env::var("OTEL_TRACES_SAMPLER") else {
        return;
    };
    if !SAMPLERS.contains(&sampler.as_str()) {
        tracing::warn!(
            %sampler,
            "OTEL_TRACES_SAMPLER is not one of {}; sampling parentbased_always_on",
            SAMPLERS.join(", ")
        );
    } else if sampler.ends_with("traceidratio")
        && !std::env::var("OTEL_TRACES_SAMPLER_ARG").is_ok_and(|arg| arg.parse::<f64>().is_ok())
    {
        tracing::warn!("OTEL_TRACES_SAMPLER_ARG is not a ratio (0.0 to 1.0); sampling every trace");
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
/// named `vexil` when neither names the service.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|name| !name.is_empty())
        || EnvResourceDetector::new()
            .detect()
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some();
    let resource = Resource::builder();
    if named {
        resource.build()
    } else {
        resource.with_service_name(DEFAULT_SERVICE_NAME).build()
    }
}

/// A tower layer giving every gRPC call a span, as OpenTelemetry's RPC
/// conventions have it: named `package.Service/Method`, with `rpc.system`,
/// `rpc.service`, `rpc.method` and `rpc.grpc.status_code`. When traces are
/// exported, W3C `traceparent`/`tracestate` metadata continues the caller's
/// trace. For tonic's `Server::builder().layer(...)`.
pub fn grpc_tracing() -> GrpcTracingLayer {
    GrpcTracingLayer
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTracingLayer;

impl<S> tower_layer::Layer<S> for GrpcTracingLayer {
    type Service = GrpcTracing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTracing { inner }
    }
}

/// The service [`GrpcTracingLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct GrpcTracing<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for GrpcTracing<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GrpcCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = rpc_span(&request);
        let uri = request.uri().clone();
        let call = span.in_scope(|| self.inner.call(request));
        GrpcCall {
            call,
            span,
            uri,
            started: std::time::Instant::now(),
        }
    }
}

fn rpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
    );
    // Without exported traces the propagator is the no-op one and there
    // is no OpenTelemetry layer; the header check keeps untraced calls free.
    if request.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Metadata(request.headers()))
        });
        if parent.span().span_context().is_valid() {
            // Fails only when the span is filtered out: nothing to continue.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// Request metadata as the propagator reads it.
struct Metadata<'a>(&'a http::HeaderMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

pin_project_lite::pin_project! {
    /// A call in its span; records the gRPC status once the response
    /// headers are known, and counts the call (`/metrics`).
    pub struct GrpcCall<F> {
        #[pin]
        call: F,
        span: tracing::Span,
        uri: http::Uri,
        started: std::time::Instant,
    }
}

impl<F, R, E> Future for GrpcCall<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let outcome = ready!(this.call.poll(cx));
        let code = match &outcome {
            Ok(response) => response_status(response),
            Err(_) => UNKNOWN,
        };
        this.span.record("rpc.grpc.status_code", code);
        crate::instruments::instruments().grpc_call(
            this.uri.path(),
            i32::try_from(code).unwrap_or(2),
            this.started.elapsed(),
        );
        if is_server_error(code) {
            this.span.record("otel.status_code", "ERROR");
        }
        Poll::Ready(outcome)
    }
}

const UNKNOWN: i64 = 2;

/// The status the response headers carry. A trailers-only response (an
/// error, mostly) has it there; otherwise the call is OK so far: a unary
/// answer's status follows in its trailers and a stream's at its end, which
/// is not waited for.
fn response_status<R>(response: &http::Response<R>) -> i64 {
    match response.headers().get("grpc-status") {
        Some(code) => code
            .to_str()
            .ok()
            .and_then(|code| code.parse().ok())
            .unwrap_or(UNKNOWN),
        None if response.status().is_success() => 0,
        None => UNKNOWN,
    }
}

/// The codes OpenTelemetry counts as a server span's error: the server's
/// fault, not the caller's.
fn is_server_error(code: i64) -> bool {
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, grpc_status: Option<&str>) -> http::Response<()> {
        let mut response = http::Response::builder().status(status);
        if let Some(code) = grpc_status {
            response = response.header("grpc-status", code);
        }
        response.body(()).unwrap()
    }

    #[test]
    fn status_comes_from_the_headers() {
        assert_eq!(response_status(&response(200, None)), 0);
        assert_eq!(response_status(&response(200, Some("5"))), 5);
        assert_eq!(response_status(&response(200, Some("x"))), UNKNOWN);
        assert_eq!(response_status(&response(503, None)), UNKNOWN);
    }

    #[test]
    fn log_format_names_its_variable() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert!(err.contains("VEXIL_LOG_FORMAT"), "{err}");
    }
}
