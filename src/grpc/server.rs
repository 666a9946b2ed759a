//! The gRPC ports: Vexil's (evaluation, Watch, management) and flagd's,
//! each built from the use cases `run()` hands over, with what every gRPC
//! port gets: HTTP/2 keepalive, a stream limit, tracing, RESOURCE_EXHAUSTED
//! for oversized messages, bounded request bodies, health and reflection,
//! and TLS, NODELAY and connection caps on accepted sockets (`incoming`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpConnectInfo;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;
use tower_layer::{Identity, Layer, Stack};

use super::body_budget::{BodyBudget, BodyBudgetLayer};
use super::evaluation::EvaluationGrpc;
use super::flagd::{self, Flagd, FlagdV1, FlagdV2};
use super::flags::FlagServiceGrpc;
use super::oversize::OversizeLayer;
use super::pre_admission::PreAdmitted;
use super::watch_route::EvaluationRoutes;
use super::{incoming, pb};
use crate::admission::Gatekeeper;
use crate::error::{Error, Result};
use crate::listener::PeerAddr;
use crate::service::openfeature::Resolver;
use crate::service::{Evaluator, FlagManager, Metrics, SegmentManager, Watcher};
use crate::telemetry::{self, GrpcTracingLayer};

/// Largest management request accepted: a flag of the largest size allowed
/// (`limits::FLAG_BYTES`) with room to spare; what gRPC clients accept by
/// default too.
const MAX_MANAGEMENT_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest evaluation or Watch request: 1,000 flag names of 128 characters,
/// a user id and an environment, with room to spare.
const MAX_EVALUATION_REQUEST_BYTES: usize = 256 * 1024;
/// HTTP/2 keepalive: ping idle connections so half-open ones (dead Watch
/// clients) are freed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 4096;
/// How long shutdown waits for open connections (a Watch client that stopped
/// reading cannot take its final status) before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Services that authenticate from the headers before reading a message:
/// their bodies are bounded in time only.
const AUTHENTICATED_FIRST: &[&str] = &["/vexil.v1.FlagService/"];

type Layers = Stack<BodyBudgetLayer, Stack<OversizeLayer, GrpcTracingLayer>>;

/// What both gRPC ports share.
#[derive(Clone)]
pub struct Shared {
    pub gate: Arc<Gatekeeper>,
    pub watcher: Watcher,
    pub health: HealthServer<HealthService>,
    pub tls: Option<TlsAcceptor>,
    /// Request bodies being read, on both ports together.
    pub bodies: Arc<BodyBudget>,
}

/// The use cases behind Vexil's own port.
pub struct VexilServices {
    pub evaluator: Evaluator,
    /// ExplainEvaluation's: a diagnosis, not a use, so not counted.
    pub explainer: Evaluator,
    pub manager: FlagManager,
    pub segments: SegmentManager,
    pub metrics: Arc<Metrics>,
}

/// What every gRPC request passes through, outermost first: tracing,
/// RESOURCE_EXHAUSTED for oversized messages, bounded request bodies.
fn layers(shared: &Shared) -> Layers {
    Stack::new(
        BodyBudgetLayer::new(shared.bodies.clone(), AUTHENTICATED_FIRST),
        Stack::new(OversizeLayer, telemetry::grpc_tracing()),
    )
}

fn server(shared: &Shared) -> Server<Stack<Layers, Identity>> {
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .layer(layers(shared))
}

/// Reflection (v1 and v1alpha) over `descriptor_sets` and health's.
fn reflection(
    descriptor_sets: &[&'static [u8]],
) -> Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        descriptor_sets.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
    };
    let failed = |err| Error::Internal(format!("building reflection: {err}"));
    Ok((
        builder().build_v1().map_err(failed)?,
        builder().build_v1alpha().map_err(failed)?,
    ))
}

/// Vexil's own services, admitted from their headers.
struct VexilApi {
    evaluation: PreAdmitted<EvaluationRoutes>,
    flags: PreAdmitted<pb::flag_service_server::FlagServiceServer<FlagServiceGrpc>>,
}

fn vexil_api(shared: &Shared, services: VexilServices) -> VexilApi {
    let evaluation = PreAdmitted::evaluation(
        EvaluationRoutes::new(
            EvaluationGrpc::new(
                services.evaluator,
                shared.watcher.clone(),
                shared.gate.clone(),
            ),
            MAX_EVALUATION_REQUEST_BYTES,
        ),
        shared.gate.clone(),
    );
    // Authenticated from the headers before its message is read.
    let flags = PreAdmitted::management(
        pb::flag_service_server::FlagServiceServer::new(FlagServiceGrpc::new(
            services.manager,
            services.segments,
            services.explainer,
            services.metrics,
            shared.gate.clone(),
        ))
        .max_decoding_message_size(MAX_MANAGEMENT_REQUEST_BYTES),
        shared.gate.clone(),
    );
    VexilApi { evaluation, flags }
}

/// Vexil's API as the console's browser speaks it: the same services with
/// the same admission, limits and tracing as Vexil's port, as gRPC-Web
/// (HTTP/1.1 or HTTP/2). Each request's peer comes from its
/// [`PeerAddr`] extension, as `incoming` records it on the gRPC ports, so
/// per-address limits hold here too.
pub fn grpc_web<B>(
    shared: &Shared,
    services: VexilServices,
) -> impl tower_service::Service<
    http::Request<B>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + std::fmt::Display,
{
    let VexilApi { evaluation, flags } = vexil_api(shared, services);
    let routes = Routes::new(evaluation).add_service(flags).prepare();
    Peered(tonic_web::GrpcWebLayer::new().layer(layers(shared).layer(routes)))
}

/// Records each request's [`PeerAddr`] where tonic and admission read a
/// peer (`TcpConnectInfo`).
#[derive(Clone)]
struct Peered<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for Peered<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>().copied() {
            request.extensions_mut().insert(TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(peer),
            });
        }
        self.0.call(request)
    }
}

/// Serves Vexil's port until `shutdown` completes and its connections
/// drain, or [`SHUTDOWN_GRACE`] after that.
pub async fn serve_vexil(
    listener: TcpListener,
    shared: Shared,
    services: VexilServices,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (reflection_v1, reflection_v1alpha) = reflection(&[pb::FILE_DESCRIPTOR_SET])?;
    let VexilApi { evaluation, flags } = vexil_api(&shared, services);
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let serving = server(&shared)
        .add_service(shared.health.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(evaluation)
        .add_service(flags)
        .serve_with_incoming_shutdown(incoming(listener, shared.tls.clone()), shutdown);
    let grace_expired = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = serving => served.map_err(|err| Error::Internal(format!("serving gRPC: {err}"))),
        () = grace_expired => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// Serves flagd's evaluation API (v1 and v2) until `stopped` completes.
pub async fn serve_flagd(
    listener: TcpListener,
    shared: Shared,
    resolver: Resolver,
    stopped: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (reflection_v1, reflection_v1alpha) = reflection(&[flagd::FILE_DESCRIPTOR_SET])?;
    let flagd = Flagd::new(resolver, shared.watcher.clone(), shared.gate.clone());
    let v1 = flagd::v1::service_server::ServiceServer::new(FlagdV1(flagd.clone()))
        .max_decoding_message_size(MAX_EVALUATION_REQUEST_BYTES);
    let v2 = flagd::v2::service_server::ServiceServer::new(FlagdV2(flagd))
        .max_decoding_message_size(MAX_EVALUATION_REQUEST_BYTES);
    server(&shared)
        .add_service(shared.health.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(PreAdmitted::evaluation(v1, shared.gate.clone()))
        .add_service(PreAdmitted::evaluation(v2, shared.gate.clone()))
        .serve_with_incoming_shutdown(incoming(listener, shared.tls.clone()), stopped)
        .await
        .map_err(|err| Error::Internal(format!("serving flagd: {err}")))
}
