//! What hostile callers can make a server hold, and whether the kill switch
//! stays fast meanwhile: issue 19's figures, each against the `vexil`
//! binary in its own process (RSS is the server's alone).
//!
//! - Metrics cardinality: 1,000 flags evaluated in `production`, then 70
//!   BulkEvaluate calls of every flag, each in a new 256-byte environment.
//!   Server RSS growth over the warmed server, after three flushes.
//! - Stalled resumes: 10 Watch streams resuming from revision 1 over a
//!   history of 40 flags of ~450 KiB each, never read. RSS growth.
//! - Partial bodies without a token (authentication on): 64 CreateFlag
//!   calls declaring 4 MiB and sending 1 MiB, and 64 Evaluate calls
//!   declaring 256 KiB and sending 200 KiB, held open. RSS growth.
//! - UpdateFlag (one writer) while a replica flushes 100,000 metric rows
//!   (10,000 flags × 10 environments each names), against the same
//!   writer on the idle server: p50, p99, max.
//!
//! Run: `cargo bench --bench hostile` (SQLite). With
//! `VEXIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` the
//! flush scenario runs on PostgreSQL too (a database per run, dropped
//! afterwards).

#[allow(dead_code)]
#[path = "support/process.rs"]
mod process;

#[path = "support/database.rs"]
mod database;

use std::time::{Duration, Instant};

use database::Db;
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::transport::{Channel, Endpoint};
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient,
};

use process::ServerProcess;

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// RSS growth between `before` and now, once it has settled.
async fn growth(server: &ServerProcess, before: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.rss().saturating_sub(before)
}

/// Creates `count` flags named `{prefix}{i:05}` from `make`, 8 at a time.
async fn create_flags(
    channel: &Channel,
    prefix: &str,
    count: usize,
    make: impl Fn(usize) -> pb::Flag + Clone + Send + 'static,
) {
    let tasks: Vec<_> = (0..8)
        .map(|worker| {
            let mut admin = FlagServiceClient::new(channel.clone())
                .max_decoding_message_size(16 * 1024 * 1024)
                .max_encoding_message_size(16 * 1024 * 1024);
            let make = make.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                for i in (worker..count).step_by(8) {
                    let flag = pb::Flag {
                        name: format!("{prefix}{i:05}"),
                        ..make(i)
                    };
                    admin
                        .create_flag(pb::CreateFlagRequest {
                            flag: Some(flag),
                            reason: "hostile bench".into(),
                        })
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("creator");
    }
}

async fn bulk_evaluate_all(channel: &Channel, environment: &str, user: &str) {
    EvaluationServiceClient::new(channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024)
        .bulk_evaluate(pb::BulkEvaluateRequest {
            flag_names: Vec::new(),
            user_id: user.into(),
            environment: environment.into(),
            context: None,
        })
        .await
        .expect("bulk evaluate");
}

async fn metrics_cardinality() -> u64 {
    let db = Db::create(None, "hostile-metrics").await;
    let (server, _) = ServerProcess::start(
        &[
            ("DATABASE_URL", db.url.clone()),
            ("FF_ENABLE_METRICS", "true".into()),
            ("VEXIL_METRICS_FLUSH_INTERVAL", "1s".into()),
        ],
        "",
    )
    .await;
    let channel = server.channel();
    create_flags(&channel, "flag-", 1000, |_| pb::Flag {
        enabled: true,
        percentage: 50.0,
        ..Default::default()
    })
    .await;
    for user in 0..3 {
        bulk_evaluate_all(&channel, "production", &format!("user-{user}")).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = server.rss();
    for i in 0..70 {
        let environment = format!("{i:0>256}");
        bulk_evaluate_all(&channel, &environment, &format!("attacker-{i}")).await;
    }
    // Three flushes.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let grown = growth(&server, before).await;
    drop(server);
    drop(db);
    grown
}

/// A channel whose HTTP/2 windows are small, so a stream that is not read
/// stalls the server's sending at once.
fn small_windows(server: &ServerProcess) -> Channel {
    Endpoint::from_shared(format!("http://{}", server.address))
        .expect("endpoint")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect_lazy()
}

async fn stalled_resumes() -> u64 {
    let db = Db::create(None, "hostile-watch").await;
    let (server, _) = ServerProcess::start(
        &[
            ("DATABASE_URL", db.url.clone()),
            // Every resume replays from the store.
            ("VEXIL_WATCH_FEED", "1".into()),
        ],
        "",
    )
    .await;
    create_flags(&server.channel(), "large-", 40, |i| pb::Flag {
        enabled: true,
        whitelist: (0..10_000)
            .map(|id| format!("user-{i}-{id:06}-padded-to-forty-bytes"))
            .collect(),
        ..Default::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss();
    let mut streams = Vec::new();
    for _ in 0..10 {
        let stream = EvaluationServiceClient::new(small_windows(&server))
            .max_decoding_message_size(16 * 1024 * 1024)
            .watch(pb::WatchRequest {
                flag_names: Vec::new(),
                since_revision: Some(1),
                engine: vexil::engine::ENGINE,
            })
            .await
            .expect("watch");
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let grown = growth(&server, before).await;
    drop(streams);
    drop(server);
    drop(db);
    grown
}

/// Opens `calls` requests to `path` on one connection, each declaring a
/// message of `declared` bytes and sending `sent` of them; keeps them open.
async fn partial_bodies(
    server: &ServerProcess,
    path: &str,
    calls: usize,
    declared: u32,
    sent: usize,
) -> Vec<h2::SendStream<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut open = Vec::new();
    for _ in 0..calls {
        let mut client = client.clone().ready().await.expect("ready");
        let request = http::Request::post(format!("http://{}{path}", server.address))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let (_response, mut body) = client.send_request(request, false).expect("send");
        let mut partial = vec![0u8];
        partial.extend_from_slice(&declared.to_be_bytes());
        partial.extend(std::iter::repeat_n(0u8, sent));
        // A call refused from its headers is closed already.
        let _ = body.send_data(bytes::Bytes::from(partial), false);
        open.push(body);
    }
    open
}

async fn tokenless_partial_bodies() -> u64 {
    let db = Db::create(None, "hostile-bodies").await;
    let (server, _) = ServerProcess::start(
        &[
            ("DATABASE_URL", db.url.clone()),
            (
                "VEXIL_JWT_SECRET",
                "a-bench-secret-of-at-least-thirty-two-bytes".into(),
            ),
        ],
        "",
    )
    .await;
    let before = server.rss();
    let management = partial_bodies(
        &server,
        "/vexil.v1.FlagService/CreateFlag",
        64,
        4 * 1024 * 1024 - 16,
        1024 * 1024,
    )
    .await;
    let evaluation = partial_bodies(
        &server,
        "/vexil.v1.EvaluationService/Evaluate",
        64,
        256 * 1024 - 16,
        200 * 1024,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = growth(&server, before).await;
    drop((management, evaluation));
    drop(server);
    drop(db);
    grown
}

/// `count` UpdateFlag calls from one writer, one after another.
async fn update_timings(channel: &Channel, count: usize) -> Vec<Duration> {
    let mut admin = FlagServiceClient::new(channel.clone());
    let mut timings = Vec::with_capacity(count);
    for i in 0..count {
        let began = Instant::now();
        admin
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: "kill-switch00000".into(),
                    enabled: i % 2 == 0,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["enabled".into()],
                }),
                reason: "hostile bench".into(),
                expected_revision: None,
            })
            .await
            .expect("update");
        timings.push(began.elapsed());
    }
    timings.sort();
    timings
}

async fn metric_rows(url: &str) -> i64 {
    let connection = Database::connect(url).await.expect("connect");
    let row = connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            "SELECT COUNT(*) AS n FROM feature_flag_evaluations",
        ))
        .await
        .expect("count")
        .expect("a row");
    let rows: i64 = row.try_get("", "n").expect("n");
    connection.close().await.ok();
    rows
}

async fn update_during_flush(backend: &str, postgres: Option<&str>) {
    const ENVIRONMENTS: usize = 10;
    let db = Db::create(postgres, "hostile-flush").await;
    let (server, _) = ServerProcess::start(
        &[
            ("DATABASE_URL", db.url.clone()),
            ("FF_ENABLE_METRICS", "true".into()),
            ("VEXIL_METRICS_FLUSH_INTERVAL", "5s".into()),
        ],
        "",
    )
    .await;
    let channel = server.channel();
    let environments: Vec<String> = (0..ENVIRONMENTS).map(|e| format!("env-{e}")).collect();
    let named = environments.clone();
    create_flags(&channel, "flag-", 10_000, move |_| pb::Flag {
        enabled: true,
        percentage: 50.0,
        environments: named.clone(),
        ..Default::default()
    })
    .await;
    create_flags(&channel, "kill-switch", 1, |_| pb::Flag::default()).await;
    let idle = update_timings(&channel, 200).await;
    for environment in &environments {
        bulk_evaluate_all(&channel, environment, "user-1").await;
    }
    // Writes through the next flush (every 5 s) and past it.
    let started = Instant::now();
    let mut during = Vec::new();
    while started.elapsed() < Duration::from_secs(12) {
        during.extend(update_timings(&channel, 50).await);
    }
    during.sort();
    let rows = metric_rows(&db.url).await;
    for (when, timings) in [("idle", &idle), ("during the flush", &during)] {
        println!(
            "| {backend} | {when} | {rows} | {} | {:.2} | {:.2} | {:.2} |",
            timings.len(),
            ms(percentile(timings, 0.5)),
            ms(percentile(timings, 0.99)),
            ms(*timings.last().expect("timings")),
        );
    }
    drop(server);
    drop(db);
}

#[tokio::main]
async fn main() {
    let postgres = std::env::var("VEXIL_BENCH_DATABASE_URL").ok();
    println!("| attack | server RSS growth MiB | goal MiB |");
    println!("|---|---|---|");
    let grown = metrics_cardinality().await;
    println!(
        "| metrics: 1,000 flags x 70 invented environments | {:.1} | 10 |",
        mib(grown)
    );
    let grown = stalled_resumes().await;
    println!(
        "| Watch: 10 stalled resumes over 40 flags of ~450 KiB | {:.1} | 20 |",
        mib(grown)
    );
    let grown = tokenless_partial_bodies().await;
    println!(
        "| bodies: 64 x 1 of 4 MiB (CreateFlag) + 64 x 200 of 256 KiB (Evaluate), no token | {:.1} | 5 |",
        mib(grown)
    );
    println!();
    println!("| backend | UpdateFlag | metric rows flushed | writes | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    update_during_flush("sqlite", None).await;
    if let Some(url) = postgres.as_deref() {
        update_during_flush("postgres", Some(url)).await;
    }
}
