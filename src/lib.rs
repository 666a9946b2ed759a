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
pub mod console;
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
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

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
use crate::grpc::{EvaluationGrpc, FlagServiceGrpc, FlagdV1, FlagdV2};
use crate::metrics::Recorder;
use crate::service::openfeature::Resolver;
use crate::service::{
    CacheSync, Evaluator, FeedLimits, FlagManager, Metrics, MetricsOptions, SegmentManager, Watcher,
};
use crate::store::FlagStore;

/// Most bytes of flags (as `Flag::wire_size`) the change feed keeps for
/// Watch streams that resume or fall behind; `VEXIL_WATCH_FEED` bounds
/// the number of changes.
const FEED_BYTES: usize = 64 * 1024 * 1024;
/// How long shutdown waits for the cache's catch-up to stop and the
/// database connections to close (a half-open connection must not hold it).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
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
    pub console: Option<TcpListener>,
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
            console: match config.console_listen {
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

impl Listeners {
    fn all(&self) -> impl Iterator<Item = &TcpListener> {
        [
            Some(&self.grpc),
            self.flagd.as_ref(),
            self.ofrep.as_ref(),
            self.console.as_ref(),
            self.metrics.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Self {
        Self {
            grpc,
            flagd: None,
            ofrep: None,
            console: None,
            metrics: None,
        }
    }
}

/// Runs the service until `shutdown` completes: migrates the database,
/// loads every flag into the hot cache, keeps it in step with the store and
/// the other replicas, and serves gRPC with health and reflection (and
/// flagd's API, OFREP and `/metrics` when given listeners). On shutdown,
/// Watch streams end with UNAVAILABLE so clients move on.
pub async fn run(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let listeners = listeners.into();
    let gate = Arc::new(gatekeeper(&config, listeners.all())?);
    let app = App::start(&config, gate).await?;
    let (grpc_tls, https) = tls_acceptors(&config)?;
    listener::raise_open_files_limit();
    let shared = grpc::Shared {
        gate: app.gate.clone(),
        watcher: app.watcher.clone(),
        health: app.health_service.clone(),
        tls: grpc_tls,
        bodies: grpc::BodyBudget::new(grpc::BODY_BYTES, grpc::BODY_BYTES_PER_ADDRESS),
    };
    let mut side_servers = Vec::new();
    if let Some(listener) = listeners.flagd {
        side_servers.push(serve_flagd(&app, shared.clone(), listener).await);
    }
    if let Some(listener) = listeners.ofrep {
        side_servers.push(serve_ofrep(
            &app,
            &config.ofrep_cors_origins,
            https.clone(),
            listener,
        ));
    }
    if let Some(listener) = listeners.console {
        side_servers.push(serve_console(&app, &shared, https, listener));
    }
    if let Some(listener) = listeners.metrics {
        side_servers.push(serve_metrics(&app, listener));
    }
    tracing::info!(
        address = %local_address(&listeners.grpc),
        tls = shared.tls.is_some(),
        "serving gRPC"
    );
    let served = grpc::serve_vexil(
        listeners.grpc,
        shared,
        app.vexil_services(),
        app.stopping(shutdown),
    )
    .await;
    app.stop.send_replace(true);
    stop_side_servers(side_servers).await;
    app.stop().await;
    served
}

/// What every listener serves from, and the tasks that keep it current.
struct App {
    gate: Arc<Gatekeeper>,
    store: Arc<FlagStore>,
    cache: Arc<FlagCache>,
    sync: Arc<CacheSync>,
    bus: Arc<ChangeBus>,
    recorder: Option<Arc<Recorder>>,
    metrics: Arc<Metrics>,
    watcher: Watcher,
    health: HealthReporter,
    health_service: HealthServer<HealthService>,
    /// Turns true at shutdown: streams end and the side listeners stop.
    stop: watch::Sender<bool>,
    /// Stops the metrics flush, after the servers (its final flush counts
    /// every answer).
    stop_flushing: watch::Sender<bool>,
    flushing: Option<JoinHandle<()>>,
    syncing: JoinHandle<()>,
    /// Aborted at shutdown.
    helpers: Vec<JoinHandle<()>>,
}

impl App {
    async fn start(config: &Config, gate: Arc<Gatekeeper>) -> Result<Self> {
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
        let bus = Arc::new(change_bus(config)?);

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
        let health = HealthReporter::new();
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        health
            .set_serving::<EvaluationServiceServer<EvaluationGrpc>>()
            .await;
        health
            .set_serving::<FlagServiceServer<FlagServiceGrpc>>()
            .await;
        let mut helpers = vec![
            tokio::spawn(report_bus_health(health.clone(), bus.connected())),
            tokio::spawn(keep_house(gate.clone())),
        ];
        helpers.extend(gate.key_fetcher().map(tokio::spawn));
        let watcher = Watcher::new(
            sync.clone(),
            config.watch_heartbeat(),
            config.watch_buffer as usize,
            stopping,
        );
        Ok(Self {
            gate,
            store,
            cache,
            sync,
            bus,
            recorder,
            metrics,
            watcher,
            health,
            health_service,
            stop,
            stop_flushing,
            flushing,
            syncing,
            helpers,
        })
    }

    fn vexil_services(&self) -> grpc::VexilServices {
        grpc::VexilServices {
            evaluator: Evaluator::new(self.cache.clone(), self.recorder.clone()),
            explainer: Evaluator::new(self.cache.clone(), None),
            manager: FlagManager::new(self.store.clone(), self.sync.clone(), self.bus.clone()),
            segments: SegmentManager::new(self.store.clone(), self.sync.clone(), self.bus.clone()),
            metrics: self.metrics.clone(),
        }
    }

    fn resolver(&self) -> Resolver {
        Resolver::new(Evaluator::new(self.cache.clone(), self.recorder.clone()))
    }

    /// Completes once the side listeners and streams should stop.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stop.subscribe();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    }

    /// `shutdown`, then what comes before the gRPC port drains: load
    /// balancers are told to stop sending work, and streams end.
    fn stopping(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = ()> + Send {
        let health = self.health.clone();
        let stop = self.stop.clone();
        async move {
            shutdown.await;
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
        }
    }

    /// After the servers: the final metrics flush, the catch-up, the bus
    /// and the store, each within [`SHUTDOWN_DRAIN`].
    async fn stop(self) {
        self.stop_flushing.send_replace(true);
        if let Some(flushing) = self.flushing {
            let abort = flushing.abort_handle();
            if tokio::time::timeout(SHUTDOWN_DRAIN, flushing)
                .await
                .is_err()
            {
                tracing::warn!("the final metrics flush did not finish in time; abandoning it");
                abort.abort();
            }
        }
        drop(self.metrics);
        let catch_up = self.syncing.abort_handle();
        if tokio::time::timeout(SHUTDOWN_DRAIN, self.syncing)
            .await
            .is_err()
        {
            tracing::warn!("the cache's catch-up did not stop in time; abandoning it");
            catch_up.abort();
        }
        for helper in self.helpers {
            helper.abort();
        }
        self.bus.close().await;
        drop((self.sync, self.watcher, self.gate, self.cache));
        if let Ok(store) = Arc::try_unwrap(self.store) {
            store.close().await;
        }
        tracing::info!("stopped");
    }
}

/// Redis pub/sub when `REDIS_URL` is set, else the in-process bus.
fn change_bus(config: &Config) -> Result<ChangeBus> {
    match &config.redis_url {
        Some(url) => {
            tracing::info!(
                redis = %redis_address(url),
                channel = %config.redis_channel(),
                "announcing changes through Redis"
            );
            ChangeBus::redis(RedisBusConfig {
                url: url.clone(),
                pool_size: config.redis_max_connections as usize,
                channel: config.redis_channel(),
            })
        }
        None => {
            tracing::info!("announcing changes in process (one replica; REDIS_URL unset)");
            Ok(ChangeBus::in_process())
        }
    }
}

/// TLS for the gRPC ports (HTTP/2 only) and OFREP (HTTP/2 and 1.1), when
/// a certificate is configured; client certificates when a CA is.
fn tls_acceptors(
    config: &Config,
) -> Result<(
    Option<tokio_rustls::TlsAcceptor>,
    Option<tokio_rustls::TlsAcceptor>,
)> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok((None, None));
    };
    let files = tls::TlsFiles {
        cert,
        key,
        client_ca: config.tls_client_ca_file.as_deref(),
    };
    Ok((
        Some(tls::acceptor(&files, &[b"h2"])?),
        Some(tls::acceptor(&files, &[b"h2", b"http/1.1"])?),
    ))
}

type SideServer = JoinHandle<Result<()>>;

async fn serve_flagd(app: &App, shared: grpc::Shared, listener: TcpListener) -> SideServer {
    app.health.set_serving::<FlagdV1Server<FlagdV1>>().await;
    app.health.set_serving::<FlagdV2Server<FlagdV2>>().await;
    tracing::info!(address = %local_address(&listener), "serving flagd's evaluation API");
    tokio::spawn(grpc::serve_flagd(
        listener,
        shared,
        app.resolver(),
        app.stopped(),
    ))
}

fn serve_ofrep(
    app: &App,
    cors_origins: &[String],
    https: Option<tokio_rustls::TlsAcceptor>,
    listener: TcpListener,
) -> SideServer {
    let router = ofrep::Ofrep::new(app.resolver(), app.watcher.clone(), app.gate.clone())
        .router(cors_origins);
    // OFREP over TLS with the gRPC port's certificate, requiring client
    // certificates when gRPC does.
    tracing::info!(address = %local_address(&listener), tls = https.is_some(), "serving OFREP");
    let stopping = app.stop.subscribe();
    tokio::spawn(async move {
        http_listener::serve(listener, router, https, stopping).await;
        Ok(())
    })
}

/// The console's page and, on the same origin, Vexil's API as gRPC-Web,
/// with the gRPC port's certificate (HTTP/1.1 and HTTP/2 offered).
fn serve_console(
    app: &App,
    shared: &grpc::Shared,
    https: Option<tokio_rustls::TlsAcceptor>,
    listener: TcpListener,
) -> SideServer {
    let router = console::router(
        grpc::grpc_web(shared, app.vexil_services()),
        !app.gate.checks_tokens(),
    );
    tracing::info!(address = %local_address(&listener), tls = https.is_some(), "serving the console");
    let stopping = app.stop.subscribe();
    tokio::spawn(async move {
        http_listener::serve(listener, router, https, stopping).await;
        Ok(())
    })
}

fn serve_metrics(app: &App, listener: TcpListener) -> SideServer {
    let gate = app.gate.clone();
    let registry = prometheus::registry(prometheus::Sources {
        cache: app.cache.clone(),
        sync: app.sync.clone(),
        recorder: app.recorder.clone(),
        metrics: app.metrics.clone(),
        watch_streams: Arc::new(move || gate.open_watch_streams()),
        bus_connected: app.bus.connected(),
    });
    tracing::info!(address = %local_address(&listener), "serving Prometheus metrics at /metrics");
    let stopping = app.stop.subscribe();
    tokio::spawn(async move {
        http_listener::serve(listener, prometheus::router(registry), None, stopping).await;
        Ok(())
    })
}

/// Waits up to [`grpc::SHUTDOWN_GRACE`] for each side server to stop.
async fn stop_side_servers(side_servers: Vec<SideServer>) {
    for side in side_servers {
        let abort = side.abort_handle();
        match tokio::time::timeout(grpc::SHUTDOWN_GRACE, side).await {
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "a side server failed"),
            Ok(_) => {}
            Err(_) => abort.abort(),
        }
    }
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
