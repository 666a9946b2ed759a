//! Vexil: a feature-flag evaluation service over gRPC.
//!
//! Layers, each importing only downward: `grpc`, `ofrep` and `prometheus`
//! (wire, served through `listener`, `tls` and `http_listener`) →
//! `admission` (who may call, for every transport) and `service` (use
//! cases) → `engine` (pure evaluation: the `vexil-engine` crate, shared
//! with `vexil-client`), `cache` (hot flags), `store` (sea-orm) and `bus`
//! (change announcements). `domain` holds the types they share (the flag
//! model comes from the engine crate). `.ci/layering` keeps tonic, axum,
//! sea_orm and the configuration in their layers.

pub mod admission;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod config;
pub mod domain;
/// The evaluation engine, shared with the client (`crates/vexil-engine`).
pub use vexil_engine as engine;
pub mod error;
pub mod grpc;
pub mod http_listener;
pub mod instruments;
pub mod listener;
pub mod metrics;
pub mod ofrep;
pub mod prometheus;
pub mod redis_metrics;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::admission::{Gatekeeper, Limits};
use crate::auth::Authenticator;
use crate::bus::{ChangeBus, RedisBusConfig};
use crate::cache::FlagCache;
pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::grpc::evaluation_server::evaluation_service_server::EvaluationServiceServer;
use crate::grpc::flagd::v1::service_server::ServiceServer as FlagdV1Server;
use crate::grpc::flagd::v2::service_server::ServiceServer as FlagdV2Server;
use crate::grpc::pb::flag_service_server::FlagServiceServer;
use crate::grpc::{EvaluationGrpc, EvaluationRoutes, FlagServiceGrpc, Flagd, FlagdV1, FlagdV2, pb};
use crate::metrics::Recorder;
use crate::service::openfeature::Resolver;
use crate::service::{
    CacheSync, Evaluator, FeedLimits, FlagManager, Metrics, MetricsOptions, Watcher,
};
use crate::store::FlagStore;

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
/// Most bytes of flags (as `Flag::wire_size`) the change feed keeps for
/// Watch streams that resume or fall behind; `VEXIL_WATCH_FEED` bounds
/// the number of changes.
const FEED_BYTES: usize = 64 * 1024 * 1024;
/// How long shutdown waits for the cache's catch-up to stop and the
/// database connections to close (a half-open connection must not hold it).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections (a Watch client that stopped
/// reading cannot take its final status) before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often idle callers are dropped from the rate limiters, and key files
/// re-read (a rotated JWKS).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
/// Health service name whose status tells whether cross-replica
/// propagation is live (NOT_SERVING while Redis is unreachable).
pub const BUS_HEALTH_SERVICE: &str = "vexil.bus";

/// Connects to the database and applies pending migrations.
pub async fn migrate(config: &Config) -> Result<()> {
    let store = FlagStore::connect(&config.store_options()).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// A development token signed with the configured HS256 secret.
pub fn dev_token(args: &config::TokenArgs) -> Result<String> {
    let signing = &args.signing;
    let secret = signing
        .jwt_secret()
        .map_err(|err| Error::invalid("VEXIL_JWT_SECRET", err))?
        .ok_or_else(|| {
            Error::invalid(
                "VEXIL_JWT_SECRET",
                "is needed to sign development tokens (or VEXIL_JWT_SECRET_FILE)",
            )
        })?;
    let token = auth::DevToken {
        subject: args.subject.clone(),
        roles: args.roles.clone(),
        environments: (!args.environments.is_empty()).then(|| args.environments.clone()),
        ttl: args.ttl,
        issuer: signing.jwt_issuer.clone(),
        audience: signing.jwt_audience.clone(),
    };
    auth::mint(
        &secret,
        &token,
        &signing.jwt_roles_claim,
        &signing.jwt_environments_claim,
    )
    .map_err(Error::Internal)
}

/// The sockets Vexil serves: gRPC always; flagd's gRPC API and OFREP (HTTP)
/// for OpenFeature providers, and Prometheus' `/metrics`, when configured.
pub struct Listeners {
    pub grpc: TcpListener,
    pub flagd: Option<TcpListener>,
    pub ofrep: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> Result<Self> {
        let bind = |address: std::net::SocketAddr| async move {
            TcpListener::bind(address)
                .await
                .map_err(|err| Error::Unavailable(format!("binding {address}: {err}")))
        };
        Ok(Self {
            grpc: bind(config.listen).await?,
            flagd: match config.flagd_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            },
            ofrep: match config.ofrep_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            },
            metrics: match config.metrics_listen {
                Some(address) => Some(bind(address).await?),
                None => None,
            },
        })
    }
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Self {
        Self {
            grpc,
            flagd: None,
            ofrep: None,
            metrics: None,
        }
    }
}

/// Runs the service until `shutdown` completes: migrates the database,
/// loads every flag into the hot cache, keeps it in step with the store and
/// the other replicas, and serves gRPC with health and reflection (and
/// flagd's API and OFREP when given listeners). On shutdown, Watch streams
/// end with UNAVAILABLE so clients move on.
pub async fn run(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let Listeners {
        grpc: listener,
        flagd: flagd_listener,
        ofrep: ofrep_listener,
        metrics: metrics_listener,
    } = listeners.into();
    let served = [
        Some(&listener),
        flagd_listener.as_ref(),
        ofrep_listener.as_ref(),
        metrics_listener.as_ref(),
    ];
    let gate = Arc::new(gatekeeper(&config, served.into_iter().flatten())?);
    tracing::info!(
        database = %FlagStore::describe(&config.database_url),
        "storing flags"
    );
    let store = Arc::new(FlagStore::connect(&config.store_options()).await?);
    if !config.no_migrate {
        store.migrate().await?;
    }
    let cache = Arc::new(FlagCache::new());
    let feed = FeedLimits {
        changes: config.watch_feed as usize,
        bytes: FEED_BYTES,
    };
    let sync = Arc::new(CacheSync::start(store.clone(), cache.clone(), feed).await?);
    let revision = sync.applied().await;
    tracing::info!(flags = cache.len(), revision, "flags loaded");

    let bus = Arc::new(match &config.redis_url {
        Some(url) => ChangeBus::redis(RedisBusConfig {
            url: url.clone(),
            pool_size: config.redis_max_connections as usize,
            channel: config.redis_channel(),
        })?,
        None => ChangeBus::in_process(),
    });
    match &config.redis_url {
        Some(url) => tracing::info!(
            redis = %redis_address(url),
            channel = %config.redis_channel(),
            "announcing changes through Redis"
        ),
        None => tracing::info!("announcing changes in process (one replica; REDIS_URL unset)"),
    }

    // Counters only when metrics are on; reads (GetMetrics) either way.
    let recorder = config.enable_metrics.then(|| Arc::new(Recorder::new()));
    match &recorder {
        Some(_) => tracing::info!(
            flush_interval = ?config.metrics_flush_interval,
            redis = config.redis_url.is_some(),
            "counting evaluations"
        ),
        None => tracing::info!("evaluation metrics are off (FF_ENABLE_METRICS=false)"),
    }
    let metrics = Arc::new(Metrics::new(
        recorder.clone().unwrap_or_default(),
        store.clone(),
        cache.clone(),
        config.redis_url.as_deref(),
        MetricsOptions {
            flush_interval: config.metrics_flush_interval,
            retention_days: config.metrics_retention_days,
            redis_prefix: config.redis_prefix.clone(),
        },
    )?);
    // Stopped after the servers, so the final flush counts every answer.
    let (stop_flushing, flushing_stopped) = watch::channel(false);
    let flushing = recorder
        .is_some()
        .then(|| tokio::spawn(metrics.clone().run(flushing_stopped)));

    let (stop, stopping) = watch::channel(false);
    let syncing = tokio::spawn(service::keep_in_sync(
        sync.clone(),
        bus.clone(),
        config.cache_ttl(),
        stopping.clone(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<EvaluationServiceServer<EvaluationGrpc>>()
        .await;
    health
        .set_serving::<FlagServiceServer<FlagServiceGrpc>>()
        .await;
    let reporting = tokio::spawn(report_bus_health(health.clone(), bus.connected()));
    let housekeeping = tokio::spawn(keep_house(gate.clone()));
    let fetching_keys = gate.key_fetcher().map(tokio::spawn);

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_error = |err| Error::Internal(format!("building reflection: {err}"));
    let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;

    let watcher = Watcher::new(
        sync.clone(),
        config.watch_heartbeat(),
        config.watch_buffer as usize,
        stopping.clone(),
    );
    // TLS for the gRPC ports (HTTP/2 only) and OFREP (HTTP/2 and 1.1).
    let tls = |alpn: &[&[u8]]| -> Result<Option<tokio_rustls::TlsAcceptor>> {
        let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
            return Ok(None);
        };
        let files = tls::TlsFiles {
            cert,
            key,
            client_ca: config.tls_client_ca_file.as_deref(),
        };
        tls::acceptor(&files, alpn).map(Some)
    };
    let grpc_tls = tls(&[b"h2"])?;
    let https = tls(&[b"h2", b"http/1.1"])?;
    listener::raise_open_files_limit();
    let http_stopping = stopping.clone();
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    // Request bodies being read, shared by both gRPC listeners.
    let bodies = grpc::BodyBudget::new(grpc::BODY_BYTES, grpc::BODY_BYTES_PER_ADDRESS);
    let mut side_servers = Vec::new();
    if let Some(listener) = flagd_listener {
        let flagd = Flagd::new(
            Resolver::new(cache.clone(), recorder.clone()),
            watcher.clone(),
            gate.clone(),
        );
        health.set_serving::<FlagdV1Server<FlagdV1>>().await;
        health.set_serving::<FlagdV2Server<FlagdV2>>().await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(grpc::flagd::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;
        tracing::info!(address = %local_address(&listener), "serving flagd's evaluation API");
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
            .layer(telemetry::grpc_tracing())
            .layer(grpc::OversizeLayer)
            .layer(grpc::BodyBudgetLayer::new(bodies.clone(), &[]))
            .add_service(health_service.clone())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(grpc::PreAdmitted::evaluation(
                FlagdV1Server::new(FlagdV1(flagd.clone()))
                    .max_decoding_message_size(MAX_EVALUATION_REQUEST_BYTES),
                gate.clone(),
            ))
            .add_service(grpc::PreAdmitted::evaluation(
                FlagdV2Server::new(FlagdV2(flagd))
                    .max_decoding_message_size(MAX_EVALUATION_REQUEST_BYTES),
                gate.clone(),
            ))
            .serve_with_incoming_shutdown(grpc::incoming(listener, grpc_tls.clone()), stopped());
        side_servers.push(tokio::spawn(async move {
            server
                .await
                .map_err(|err| Error::Internal(format!("serving flagd: {err}")))
        }));
    }
    if let Some(listener) = ofrep_listener {
        let router = ofrep::Ofrep::new(
            Resolver::new(cache.clone(), recorder.clone()),
            watcher.clone(),
            gate.clone(),
        )
        .router(&config.ofrep_cors_origins);
        // OFREP over TLS with the gRPC port's certificate, requiring client
        // certificates when gRPC does.
        let https = https.clone();
        tracing::info!(
            address = %local_address(&listener),
            tls = https.is_some(),
            "serving OFREP"
        );
        let stopping = http_stopping.clone();
        side_servers.push(tokio::spawn(async move {
            http_listener::serve(listener, router, https, stopping).await;
            Ok(())
        }));
    }
    if let Some(listener) = metrics_listener {
        let gate = gate.clone();
        let registry = prometheus::registry(prometheus::Sources {
            cache: cache.clone(),
            sync: sync.clone(),
            recorder: recorder.clone(),
            metrics: metrics.clone(),
            watch_streams: Arc::new(move || gate.open_watch_streams()),
            bus_connected: bus.connected(),
        });
        tracing::info!(address = %local_address(&listener), "serving Prometheus metrics at /metrics");
        let stopping = http_stopping.clone();
        side_servers.push(tokio::spawn(async move {
            http_listener::serve(listener, prometheus::router(registry), None, stopping).await;
            Ok(())
        }));
    }
    let evaluation = grpc::PreAdmitted::evaluation(
        EvaluationRoutes::new(
            EvaluationGrpc::new(
                Evaluator::new(cache.clone(), recorder.clone()),
                watcher,
                gate.clone(),
            ),
            MAX_EVALUATION_REQUEST_BYTES,
        ),
        gate.clone(),
    );
    // Authenticated from the headers before its message is read.
    let flags = grpc::PreAdmitted::management(
        FlagServiceServer::new(FlagServiceGrpc::new(
            FlagManager::new(store.clone(), sync.clone(), bus.clone()),
            // ExplainEvaluation is a diagnosis, not a use: not counted.
            Evaluator::new(cache.clone(), None),
            metrics.clone(),
            gate.clone(),
        ))
        .max_decoding_message_size(MAX_MANAGEMENT_REQUEST_BYTES),
        gate.clone(),
    );

    // Streams end before the server waits for them to finish.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        // Load balancers stop sending work; streams end; then the server drains.
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        health
            .set_not_serving::<EvaluationServiceServer<EvaluationGrpc>>()
            .await;
        health
            .set_not_serving::<FlagServiceServer<FlagServiceGrpc>>()
            .await;
        stop.send_replace(true);
        let _ = signalled.send(());
    };
    let grace_expired = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };

    tracing::info!(
        address = %local_address(&listener),
        tls = grpc_tls.is_some(),
        "serving gRPC"
    );
    // NODELAY, keepalive, caps and TLS with a handshake deadline on accepted
    // connections (`grpc::incoming`).
    let incoming = grpc::incoming(listener, grpc_tls);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .layer(telemetry::grpc_tracing())
        .layer(grpc::OversizeLayer)
        // FlagService authenticates from the headers before reading.
        .layer(grpc::BodyBudgetLayer::new(
            bodies,
            &["/vexil.v1.FlagService/"],
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(evaluation)
        .add_service(flags)
        .serve_with_incoming_shutdown(incoming, shutdown);
    let served = tokio::select! {
        served = server => served,
        () = grace_expired => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    };

    for side in side_servers {
        let abort = side.abort_handle();
        match tokio::time::timeout(SHUTDOWN_GRACE, side).await {
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "a side server failed"),
            Ok(_) => {}
            Err(_) => abort.abort(),
        }
    }

    stop_flushing.send_replace(true);
    if let Some(flushing) = flushing {
        let abort = flushing.abort_handle();
        if tokio::time::timeout(SHUTDOWN_DRAIN, flushing)
            .await
            .is_err()
        {
            tracing::warn!("the final metrics flush did not finish in time; abandoning it");
            abort.abort();
        }
    }
    drop(metrics);

    let catch_up = syncing.abort_handle();
    if tokio::time::timeout(SHUTDOWN_DRAIN, syncing).await.is_err() {
        tracing::warn!("the cache's catch-up did not stop in time; abandoning it");
        catch_up.abort();
    }
    reporting.abort();
    housekeeping.abort();
    if let Some(fetching) = fetching_keys {
        fetching.abort();
    }
    bus.close().await;
    drop(sync);
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    tracing::info!("stopped");
    served.map_err(|err| Error::Internal(format!("serving gRPC: {err}")))
}

/// The gatekeeper for `config`. Without keys, management is open, which is
/// allowed only when every listener is on a loopback address (or with
/// `--insecure-no-auth`): flagd's API, OFREP and `/metrics` tell what the
/// flags are, too.
fn gatekeeper<'a>(
    config: &Config,
    listeners: impl Iterator<Item = &'a TcpListener>,
) -> Result<Gatekeeper> {
    let auth = config
        .auth()
        .map_err(|err| Error::invalid("authentication", err))?
        .map(Authenticator::new)
        .transpose()
        .map_err(|err| Error::invalid("authentication", err))?;
    let addresses = listeners
        .map(TcpListener::local_addr)
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|err| Error::Internal(format!("reading the listen addresses: {err}")))?;
    let exposed = addresses.iter().find(|address| !address.ip().is_loopback());
    let address = exposed
        .or(addresses.first())
        .copied()
        .ok_or_else(|| Error::Internal("no listener".into()))?;
    match (&auth, exposed.is_none(), config.insecure_no_auth) {
        (Some(_), _, _) => tracing::info!("management calls require a bearer token"),
        (None, true, _) => tracing::warn!(
            %address,
            "authentication is off: anyone who can reach this loopback address can change flags \
             (set VEXIL_JWT_SECRET, VEXIL_JWT_PUBLIC_KEY_FILE or VEXIL_JWKS_FILE to turn it on)"
        ),
        (None, false, true) => tracing::warn!(
            %address,
            "authentication is off on a non-loopback address (--insecure-no-auth): \
             anyone who can reach it can change every flag"
        ),
        (None, false, false) => {
            return Err(Error::invalid(
                "authentication",
                format!(
                    "refusing to serve {address} without authentication: set VEXIL_JWT_SECRET \
                     (or VEXIL_JWT_SECRET_FILE, VEXIL_JWT_PUBLIC_KEY_FILE, VEXIL_JWKS_FILE), \
                     listen on a loopback address, or pass --insecure-no-auth \
                     (VEXIL_INSECURE_NO_AUTH=true)"
                ),
            ));
        }
    }
    Ok(Gatekeeper::new(
        auth,
        config.auth_evaluation,
        config.watch_auth,
        Limits {
            management_rate: config.management_rate,
            management_burst: config.management_burst,
            evaluation_rate: config.evaluation_rate,
            evaluation_burst: config.evaluation_burst,
            max_in_flight: config.max_in_flight,
            max_watch_streams: config.max_watch_streams,
            max_watch_streams_per_caller: config.max_watch_streams_per_caller,
        },
    ))
}

/// Keeps the rate limiters' memory bounded and picks up rotated keys.
async fn keep_house(gate: Arc<Gatekeeper>) {
    let mut ticks = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        ticks.tick().await;
        gate.forget_idle_callers();
        gate.refresh_keys();
    }
}

/// Mirrors the bus's connection state into the health service.
async fn report_bus_health(health: HealthReporter, mut connected: watch::Receiver<bool>) {
    loop {
        let status = if *connected.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status(BUS_HEALTH_SERVICE, status).await;
        if connected.changed().await.is_err() {
            return;
        }
    }
}

/// A listener's address for the log (`127.0.0.1:50051`).
fn local_address(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(
        |err| format!("unknown ({err})"),
        |address| address.to_string(),
    )
}

/// Redis's host and port, without credentials.
fn redis_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(6379)
        ),
        Err(_) => "an unparsable REDIS_URL".to_owned(),
    }
}
