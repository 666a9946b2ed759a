//! Vexil: a feature-flag evaluation service over gRPC.
//!
//! Layers, each importing only downward: `grpc` (wire) → `service` (use
//! cases) → `engine` (pure evaluation), `cache` (hot flags) and `store`
//! (sea-orm). `domain` holds the types they share.

pub mod cache;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::cache::FlagCache;
pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::grpc::pb::evaluation_service_server::EvaluationServiceServer;
use crate::grpc::pb::flag_service_server::FlagServiceServer;
use crate::grpc::{EvaluationGrpc, FlagServiceGrpc, pb};
use crate::service::{Evaluator, FlagManager};
use crate::store::FlagStore;

/// Largest request message accepted: room for a flag with full 10,000-id
/// white- and blacklists of 256-byte ids.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// HTTP/2 keepalive: ping idle connections so half-open ones are freed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Connects to the database and applies pending migrations.
pub async fn migrate(config: &Config) -> Result<()> {
    let store = FlagStore::connect(&config.database_url).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// Runs the service on `listener` until `shutdown` completes: migrates the
/// database, loads every flag into the hot cache, keeps it refreshed, and
/// serves gRPC with health and reflection.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let store = Arc::new(FlagStore::connect(&config.database_url).await?);
    store.migrate().await?;
    let cache = Arc::new(FlagCache::new());
    service::refresh_cache(&store, &cache).await?;
    tracing::info!(
        flags = cache.len(),
        revision = cache.revision(),
        "flags loaded"
    );

    let refresher = tokio::spawn(service::refresh_periodically(
        store.clone(),
        cache.clone(),
        config.cache_ttl(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<EvaluationServiceServer<EvaluationGrpc>>()
        .await;
    health
        .set_serving::<FlagServiceServer<FlagServiceGrpc>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_error = |err| Error::Internal(format!("building reflection: {err}"));
    let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;

    let evaluation =
        EvaluationServiceServer::new(EvaluationGrpc::new(Evaluator::new(cache.clone())))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
    let flags = FlagServiceServer::new(FlagServiceGrpc::new(FlagManager::new(
        store.clone(),
        cache.clone(),
    )))
    .max_decoding_message_size(MAX_REQUEST_BYTES);

    let address = listener.local_addr().ok();
    tracing::info!(?address, "serving gRPC");
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(evaluation)
        .add_service(flags)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;

    refresher.abort();
    let _ = refresher.await;
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    tracing::info!("stopped");
    served.map_err(|err| Error::Internal(format!("serving gRPC: {err}")))
}
