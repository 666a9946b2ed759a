//! The test app: a real Vexil server started through `vexil::run` on an
//! ephemeral port, with its own database, and real gRPC clients.
//!
//! Every app gets a fresh database: a new SQLite file (in a directory of
//! its own), or a new PostgreSQL database created on the server named by
//! `VEXIL_TEST_DATABASE_URL`. Without that variable the PostgreSQL variants
//! print a notice, are listed in `target/tmp/vexil-skipped.log` and pass,
//! except under `CI=true`, where they fail. Tests leave nothing behind:
//! databases, temp directories and Redis keys ([`RedisKeys`]) are removed
//! when their guards drop, on failure and panic too.

pub mod http;
pub mod proxy;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request};
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient,
};

pub const POSTGRES_URL_VAR: &str = "VEXIL_TEST_DATABASE_URL";
pub const REDIS_URL_VAR: &str = "VEXIL_TEST_REDIS_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A unique suffix for this process and call: test runs never collide.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{prefix}{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

/// A directory of the test's own under the temp directory, named
/// `vexil-test-…`, removed with everything in it when dropped: on a failing
/// or panicking test too.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn create() -> Self {
        let path = std::env::temp_dir().join(unique("vexil-test-"));
        std::fs::create_dir_all(&path).expect("create the test directory");
        Self(path)
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A database for one test, removed by [`Self::remove`] or, when the test
/// fails or panics before that, when dropped.
pub struct TestDatabase {
    pub url: String,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    /// The SQLite file and its `-wal` and `-shm` live in the directory.
    Sqlite(TestDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh, empty database on `backend`; `None` when PostgreSQL is not
    /// configured outside CI.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = TestDir::create();
                Some(Self {
                    url: format!("sqlite://{}?mode=rwc", dir.join("vexil.db").display()),
                    cleanup: Some(Cleanup::Sqlite(dir)),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_url()?;
                let name = format!(
                    "vexil_test_{}_{}",
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs(),
                    unique("").replace('-', "_")
                );
                let admin = connect_admin(&admin_url).await;
                drop_stale_databases(&admin).await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                Some(Self {
                    url: replace_database(&admin_url, &name),
                    cleanup: Some(Cleanup::Postgres { admin_url, name }),
                })
            }
        }
    }

    /// A direct connection, for what tests must do behind the server's back.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    pub async fn remove(mut self) {
        match self.cleanup.take() {
            Some(Cleanup::Postgres { admin_url, name }) => {
                drop_database(&admin_url, &name).await;
            }
            Some(Cleanup::Sqlite(dir)) => drop(dir),
            None => {}
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin_url, name }) = self.cleanup.take() {
            // Drop cannot await, and may run on a runtime's thread (where
            // another runtime cannot block): a thread and runtime of its own.
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| runtime.block_on(drop_database(&admin_url, &name)))
            })
            .join()
            .ok();
        }
    }
}

/// Drops `name` from a fresh connection, ending the sessions still on it
/// (a server a failed test left running); says so when it cannot.
async fn drop_database(admin_url: &str, name: &str) {
    let dropped = match Database::connect(admin_url).await {
        Ok(admin) => {
            let outcome = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map(|_| ());
            admin.close().await.ok();
            outcome
        }
        Err(err) => Err(err),
    };
    if let Err(err) = dropped {
        let notice = format!("could not drop the test database {name}: {err}\n");
        std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes()).ok();
    }
}

fn postgres_url() -> Option<String> {
    service_url(POSTGRES_URL_VAR, "the PostgreSQL variant")
}

/// The Redis server for tests that need one: `None` (with a notice)
/// outside CI when `VEXIL_TEST_REDIS_URL` is unset; a failure under CI.
pub fn redis_url() -> Option<String> {
    service_url(REDIS_URL_VAR, "tests that need Redis")
}

/// The Redis keys of one test, `{prefix}:*` (the servers' metrics under
/// their `redis_prefix`, anything the test writes itself), deleted when
/// dropped: on a failing or panicking test too. Declare it before the
/// servers, which write until they stop.
pub struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    pub fn under(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // As for databases: Drop cannot await, so a thread and runtime.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(delete_keys(&url, &prefix)))
        })
        .join()
        .ok();
    }
}

/// Deletes every key matching `{prefix}:*` (SCAN and DEL, in one script);
/// says so when it cannot.
async fn delete_keys(url: &str, prefix: &str) {
    const SCRIPT: &str = r"
local cursor = '0'
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    redis.call('DEL', key)
  end
until cursor == '0'
return 0
";
    let escaped: String = prefix
        .chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let deleted = async {
        use fred::interfaces::{ClientLike, LuaInterface};
        let config = fred::prelude::Config::from_url(url)?;
        let client = fred::clients::Client::new(config, None, None, None);
        client.init().await?;
        let outcome = client
            .eval::<i64, _, _, _>(SCRIPT, Vec::<String>::new(), vec![format!("{escaped}:*")])
            .await;
        client.quit().await.ok();
        outcome
    };
    let failure = match tokio::time::timeout(Duration::from_secs(10), deleted).await {
        Ok(Ok(_)) => return,
        Ok(Err(err)) => err.to_string(),
        Err(_) => "no answer within 10 s".to_owned(),
    };
    let notice = format!("could not delete the test's Redis keys {prefix}:*: {failure}\n");
    std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes()).ok();
}

fn service_url(var: &str, what: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|url| !url.is_empty());
    if url.is_none() && std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{var} must be set when CI=true");
    }
    // The run's skipped tests, one line each (the first reason), in a file
    // this process starts afresh.
    type Log = (Option<std::fs::File>, std::collections::HashSet<String>);
    static SKIPPED: std::sync::LazyLock<std::sync::Mutex<Log>> = std::sync::LazyLock::new(|| {
        let file = std::fs::File::create(SKIPPED_LOG).ok();
        std::sync::Mutex::new((file, Default::default()))
    });
    let mut skipped = SKIPPED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if url.is_none() {
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let notice = format!("skipped: {test}: set {var} to run {what}\n");
        // Written to the stderr handle itself, which the test harness does
        // not capture, so the notice shows on a passing run.
        std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes()).ok();
        let (log, tests) = &mut *skipped;
        if let Some(log) = log
            && tests.insert(test)
        {
            std::io::Write::write_all(log, notice.as_bytes()).ok();
        }
    }
    url
}

/// Where the skips of the last run that reached a test needing PostgreSQL
/// or Redis are listed (`target/tmp/vexil-skipped.log`).
const SKIPPED_LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/vexil-skipped.log");

async fn connect_admin(url: &str) -> DatabaseConnection {
    Database::connect(url)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL at {POSTGRES_URL_VAR} is unreachable: {err}"))
}

/// Drops test databases left behind by runs that died over an hour ago.
async fn drop_stale_databases(admin: &DatabaseConnection) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'vexil_test_%'",
        ))
        .await
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let created = name
            .strip_prefix("vexil_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > 3600) {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok();
        }
    }
}

/// `postgres://user@host:port/db?opts` with `db` replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

/// The server's defaults for `database_url`, except the rate limits: every
/// test client shares one address (127.0.0.1), and many tests write in
/// quick succession on purpose. Tests of the limits set their own.
pub fn config(database_url: impl Into<String>) -> vexil::Config {
    vexil::Config::with_database(database_url).without_caller_limits()
}

/// `hours` from now, as a protobuf timestamp.
pub fn hours_from_now(hours: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + hours * 3600,
        nanos: 0,
    })
}

/// A running server with clients connected to it.
pub struct TestApp {
    pub evaluation: EvaluationServiceClient<Channel>,
    pub flags: FlagServiceClient<Channel>,
    pub address: std::net::SocketAddr,
    /// flagd's API, when started with [`Self::start_openfeature`].
    pub flagd: Option<std::net::SocketAddr>,
    /// OFREP, when started with [`Self::start_openfeature`].
    pub ofrep: Option<std::net::SocketAddr>,
    /// Prometheus' `/metrics`, when started with [`Self::start_prometheus`].
    pub prometheus: Option<std::net::SocketAddr>,
    /// The console, when started with [`Self::start_console`].
    pub console: Option<std::net::SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<vexil::Result<()>>,
}

impl TestApp {
    /// Starts a server with default settings on `database_url`.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(crate::common::config(database_url)).await
    }

    pub async fn start_with(config: vexil::Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(config, listener.into()).await
    }

    /// Starts a server on `address` (to restart one where it was).
    pub async fn start_at(config: vexil::Config, address: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind(address)
            .await
            .expect("bind the address again");
        Self::start_on(config, listener.into()).await
    }

    /// Starts a server that also serves flagd's API and OFREP.
    pub async fn start_openfeature(config: vexil::Config) -> Self {
        let bind = async || TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listeners = vexil::Listeners {
            grpc: bind().await,
            flagd: Some(bind().await),
            ofrep: Some(bind().await),
            console: None,
            metrics: None,
        };
        Self::start_on(config, listeners).await
    }

    /// Starts a server that also serves the console.
    pub async fn start_console(config: vexil::Config) -> Self {
        let bind = async || TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listeners = vexil::Listeners {
            grpc: bind().await,
            flagd: None,
            ofrep: None,
            console: Some(bind().await),
            metrics: None,
        };
        Self::start_on(config, listeners).await
    }

    /// Starts a server that also serves Prometheus' `/metrics`.
    pub async fn start_prometheus(config: vexil::Config) -> Self {
        let bind = async || TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listeners = vexil::Listeners {
            grpc: bind().await,
            flagd: Some(bind().await),
            ofrep: None,
            console: None,
            metrics: Some(bind().await),
        };
        Self::start_on(config, listeners).await
    }

    async fn start_on(config: vexil::Config, listeners: vexil::Listeners) -> Self {
        let address = listeners.grpc.local_addr().expect("local address");
        let side = |listener: &Option<TcpListener>| {
            listener
                .as_ref()
                .map(|listener| listener.local_addr().expect("local address"))
        };
        let (flagd, ofrep) = (side(&listeners.flagd), side(&listeners.ofrep));
        let prometheus = side(&listeners.metrics);
        let console = side(&listeners.console);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(vexil::run(config, listeners, async {
            stopped.await.ok();
        }));
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let app = Self {
            evaluation: EvaluationServiceClient::new(channel.clone()),
            flags: FlagServiceClient::new(channel),
            address,
            flagd,
            ofrep,
            prometheus,
            console,
            shutdown: Some(shutdown),
            server,
        };
        app.wait_until_serving().await;
        app
    }

    /// Waits for the health service to answer SERVING (the server migrates
    /// and loads its cache before it accepts calls).
    async fn wait_until_serving(&self) {
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .connect_lazy();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        for _ in 0..300 {
            let request = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(response) = health.check(request).await
                && response.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
            assert!(
                !self.server.is_finished(),
                "the server stopped during start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become healthy");
    }

    /// Shuts the server down gracefully and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        let outcome = (&mut self.server).await.expect("server task");
        outcome.expect("server stopped cleanly");
    }

    pub async fn create_flag(&self, flag: pb::Flag) -> pb::Flag {
        self.flags
            .clone()
            .create_flag(as_actor(
                "tester",
                pb::CreateFlagRequest {
                    flag: Some(flag),
                    reason: "test".into(),
                },
            ))
            .await
            .expect("create flag")
            .into_inner()
    }

    pub async fn evaluate(&self, flag: &str, user: &str, environment: &str) -> (bool, pb::Reason) {
        let answer = self
            .evaluation
            .clone()
            .evaluate(pb::EvaluateRequest {
                flag_name: flag.into(),
                user_id: user.into(),
                environment: environment.into(),
                context: None,
            })
            .await
            .expect("evaluate")
            .into_inner();
        (answer.enabled, answer.reason())
    }

    pub async fn audit_trail(&self, flag: &str) -> Vec<pb::AuditEntry> {
        self.flags
            .clone()
            .get_audit_trail(pb::GetAuditTrailRequest {
                flag_name: flag.into(),
                skip: 0,
                limit: 1000,
                segment_name: String::new(),
            })
            .await
            .expect("audit trail")
            .into_inner()
            .entries
    }

    pub async fn total_flags(&self) -> u64 {
        self.flags
            .clone()
            .list_flags(pb::ListFlagsRequest::default())
            .await
            .expect("list flags")
            .into_inner()
            .total
    }
}

impl TestApp {
    /// Opens a Watch stream on this server.
    pub async fn watch(
        &self,
        flag_names: &[&str],
        since_revision: Option<u64>,
    ) -> tonic::Streaming<pb::WatchResponse> {
        self.evaluation
            .clone()
            .watch(pb::WatchRequest {
                flag_names: flag_names.iter().map(|name| name.to_string()).collect(),
                since_revision,
                engine: vexil::engine::ENGINE,
            })
            .await
            .expect("watch")
            .into_inner()
    }

    /// Opens a Watch of every flag over a connection of its own with 64 KiB
    /// HTTP/2 windows: a subscriber that stops reading fills them after a
    /// few large changes (see `churn_descriptions`).
    pub async fn watch_with_small_windows(&self) -> tonic::Streaming<pb::WatchResponse> {
        self.watch_with_small_windows_from(None).await
    }

    /// [`Self::watch_with_small_windows`], resuming after `since_revision`.
    pub async fn watch_with_small_windows_from(
        &self,
        since_revision: Option<u64>,
    ) -> tonic::Streaming<pb::WatchResponse> {
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect_lazy();
        EvaluationServiceClient::new(channel)
            .watch(pb::WatchRequest {
                flag_names: Vec::new(),
                since_revision,
                engine: vexil::engine::ENGINE,
            })
            .await
            .expect("watch")
            .into_inner()
    }

    /// Updates `name`'s description `count` times, to `{i}` and 4,000 bytes
    /// more (i from 0), so that each change is a large message.
    pub async fn churn_descriptions(&self, name: &str, count: u64) {
        let padding = "x".repeat(4000);
        let mut flags = self.flags.clone();
        for i in 0..count {
            flags
                .update_flag(pb::UpdateFlagRequest {
                    flag: Some(pb::Flag {
                        name: name.into(),
                        description: format!("{i}{padding}"),
                        ..pb::Flag::default()
                    }),
                    update_mask: mask(&["description"]),
                    reason: "churn".into(),
                    expected_revision: None,
                })
                .await
                .expect("update");
        }
    }

    /// Changes a flag's percentage, returning the updated flag.
    pub async fn set_percentage(&self, name: &str, percentage: f64) -> pb::Flag {
        self.flags
            .clone()
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: name.into(),
                    percentage,
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["percentage"]),
                reason: "test".into(),
                expected_revision: None,
            })
            .await
            .expect("update")
            .into_inner()
    }

    /// The serving status of one health service name.
    pub async fn health(&self, service: &str) -> i32 {
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .connect_lazy();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|response| response.into_inner().status)
            .unwrap_or_default()
    }
}

/// A replica on `database_url`, publishing on `channel` through `redis_url`.
pub async fn replica(
    database_url: &str,
    redis_url: String,
    channel: &str,
    cache_ttl_secs: u64,
) -> TestApp {
    TestApp::start_with(vexil::Config {
        redis_url: Some(redis_url),
        redis_prefix: channel.to_string(),
        redis_max_connections: 2,
        cache_ttl_secs,
        ..crate::common::config(database_url)
    })
    .await
}

/// Waits until the replica's bus health reports `status`.
pub async fn wait_for_bus(
    app: &TestApp,
    status: tonic_health::pb::health_check_response::ServingStatus,
) {
    eventually(Duration::from_secs(30), "bus health", async || {
        app.health(vexil::BUS_HEALTH_SERVICE).await == status as i32
    })
    .await;
}

/// A small deterministic generator (splitmix64) for test inputs; the seed
/// is printed so a failure can be replayed.
pub struct Random(u64);

impl Random {
    pub fn seeded() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        println!("random seed {seed}");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A double in [0, 100), any of the 2^53 evenly spaced ones.
    pub fn percentage(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }

    /// Any finite double, from any bit pattern.
    pub fn finite(&mut self) -> f64 {
        loop {
            let value = f64::from_bits(self.next_u64());
            if value.is_finite() {
                return value;
            }
        }
    }
}

/// The next event on a Watch stream (waiting at most 30 s, so a broken
/// stream fails the test instead of hanging it).
pub async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> pb::watch_response::Event {
    let item = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a watch event within 30 s")
        .expect("a watch event, not an error")
        .expect("the stream to stay open");
    item.event.expect("an event")
}

/// A Watch stream of every flag for a client declaring `engine`, and its
/// first message (a one-chunk snapshot in these tests).
pub async fn watch_engine(
    app: &TestApp,
    engine: u32,
) -> (pb::WatchSnapshot, tonic::Streaming<pb::WatchResponse>) {
    let mut stream = app
        .evaluation
        .clone()
        .watch(pb::WatchRequest {
            flag_names: Vec::new(),
            since_revision: None,
            engine,
        })
        .await
        .expect("watch")
        .into_inner();
    match next_event(&mut stream).await {
        pb::watch_response::Event::Snapshot(snapshot) => (snapshot, stream),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// The next change on a Watch stream, skipping heartbeats.
pub async fn next_change(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::FlagChange {
    loop {
        match next_event(stream).await {
            pb::watch_response::Event::Change(change) => return change,
            pb::watch_response::Event::Heartbeat(_)
            | pb::watch_response::Event::SegmentChange(_) => {}
            pb::watch_response::Event::Snapshot(snapshot) => {
                panic!("unexpected snapshot at revision {}", snapshot.revision)
            }
        }
    }
}

/// Reads a stream's opening snapshot (all chunks): its flags and revision.
pub async fn read_snapshot(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> (Vec<pb::Flag>, u64) {
    let mut flags = Vec::new();
    loop {
        match next_event(stream).await {
            pb::watch_response::Event::Snapshot(snapshot) => {
                flags.extend(snapshot.flags);
                if snapshot.last {
                    return (flags, snapshot.revision);
                }
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
}

/// Polls `probe` every 50 ms until it returns true; panics after `limit`.
/// A bound against hanging, not a timing assertion.
pub async fn eventually(limit: Duration, what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// Wraps a message in a request made by `actor`.
pub fn as_actor<T>(actor: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-actor", actor.parse().expect("ascii actor"));
    request
}

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| path.to_string()).collect(),
    })
}

/// Asserts a failed call's code and that its message names `field`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    outcome: Result<T, tonic::Status>,
    code: Code,
    mentions: &str,
) {
    let status = outcome.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "message {:?} should mention {mentions:?}",
        status.message()
    );
}

/// Runs each listed `async fn(Backend)` test once per backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// One flag per evaluation rule, named `{prefix}.{rule}`, with the
/// OpenFeature reason its answers carry: STATIC (a killed flag too) or
/// TARGETING_MATCH.
pub async fn rule_flags(app: &TestApp, prefix: &str) -> Vec<(String, &'static str)> {
    let on = |suffix: &str, percentage: f64| pb::Flag {
        name: format!("{prefix}.{suffix}"),
        enabled: true,
        percentage,
        ..pb::Flag::default()
    };
    let flags = [
        (on("everyone", 100.0), "STATIC"),
        (on("nobody", 0.0), "STATIC"),
        (
            pb::Flag {
                enabled: false,
                whitelist: vec!["user-1".into()],
                ..on("killed", 100.0)
            },
            "STATIC",
        ),
        (on("rollout", 37.5), "TARGETING_MATCH"),
        (on("fraction", 0.09499999999999999), "TARGETING_MATCH"),
        (
            pb::Flag {
                whitelist: (0..50).map(|i| format!("user-{i}")).collect(),
                blacklist: (40..60).map(|i| format!("user-{i}")).collect(),
                ..on("lists", 50.0)
            },
            "TARGETING_MATCH",
        ),
        (
            pb::Flag {
                environments: vec!["production".into()],
                ..on("environments", 60.0)
            },
            "TARGETING_MATCH",
        ),
        (
            pb::Flag {
                environment_overrides: [("staging".to_string(), true), ("dev".to_string(), false)]
                    .into(),
                ..on("override", 0.0)
            },
            "TARGETING_MATCH",
        ),
        (
            pb::Flag {
                starts_at: hours_from_now(24),
                ..on("later", 100.0)
            },
            "TARGETING_MATCH",
        ),
        (
            pb::Flag {
                expires_at: hours_from_now(-24),
                ..on("expired", 100.0)
            },
            "STATIC",
        ),
        (
            pb::Flag {
                starts_at: hours_from_now(-1),
                expires_at: hours_from_now(1),
                ..on("window", 80.0)
            },
            "TARGETING_MATCH",
        ),
    ];
    let mut named = Vec::new();
    for (flag, kind) in flags {
        named.push((app.create_flag(flag).await.name, kind));
    }
    named
}
