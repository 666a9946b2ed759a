//! How Vexil's cost grows with the number of flags, and what writes cost.
//!
//! For 1,000 / 10,000 / 100,000 flags (1% of them with 1,000-id
//! whitelists), written straight into a fresh database: time from start to
//! ready and the memory the server takes (RSS of this process, which hosts
//! it), ListFlags pages of 100 (plain, filtered, deep `skip`), a Watch
//! snapshot of every flag, one Evaluate. Then writes: UpdateFlag with 1 and
//! 16 concurrent writers, writes/s and p50/p99. Then memory per idle Watch
//! stream, with 10,000 streams open (client and server in this process, so
//! the figure covers both ends).
//!
//! Run: `cargo bench --bench scale` (SQLite). With
//! `VEXIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` the
//! same on PostgreSQL too (a database per run, dropped afterwards).
//! Options after `--`: `--flags 1000,10000`, `--writes 300`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient,
};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    flags: Vec<usize>,
    /// Updates per writer-count scenario.
    #[arg(long, default_value_t = 320)]
    writes: usize,
    /// Idle Watch streams held open at once.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or_default()
        * 1024
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A fresh database: a SQLite file, or a new PostgreSQL database.
struct Db {
    url: String,
    admin: Option<(String, String)>,
}

impl Db {
    async fn create(postgres: Option<&str>, tag: &str) -> Self {
        match postgres {
            None => {
                let path = std::env::temp_dir()
                    .join(format!("vexil-scale-{tag}-{}.db", std::process::id()));
                let _ = std::fs::remove_file(&path);
                Db {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    admin: None,
                }
            }
            Some(admin) => {
                let name = format!("vexil_scale_{tag}_{}", std::process::id());
                let connection = Database::connect(admin).await.expect("postgres");
                connection
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await
                    .expect("drop");
                connection
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create");
                let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
                Db {
                    url: format!("{base}/{name}"),
                    admin: Some((admin.to_string(), name)),
                }
            }
        }
    }

    async fn remove(self) {
        match self.admin {
            Some((admin, name)) => {
                let connection = Database::connect(&admin).await.expect("postgres");
                let _ = connection
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
            None => {
                let path = self
                    .url
                    .trim_start_matches("sqlite://")
                    .trim_end_matches("?mode=rwc")
                    .to_string();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

fn config(url: &str) -> vexil::Config {
    vexil::Config::with_database(url).without_caller_limits()
}

/// Writes `count` flags straight into the (migrated) database, with their
/// revisions, as if created one by one.
async fn populate(url: &str, count: usize) {
    vexil::migrate(&config(url)).await.expect("migrate");
    let connection = Database::connect(url).await.expect("connect");
    let backend = connection.get_database_backend();
    let now = chrono::Utc::now();
    let columns = "name, description, enabled, percentage, whitelist, blacklist, environments, \
                   environment_overrides, starts_at, expires_at, tags, metadata, group_name, \
                   revision, created_at, updated_at, created_by, updated_by";
    const PER_STATEMENT: usize = 400;
    let transaction = connection.begin().await.expect("begin");
    for start in (0..count).step_by(PER_STATEMENT) {
        let end = (start + PER_STATEMENT).min(count);
        let mut values: Vec<Value> = Vec::new();
        let mut rows = Vec::new();
        for i in start..end {
            let whitelist: Vec<String> = if i % 100 == 0 {
                (0..1000).map(|u| format!("user-{u:06}")).collect()
            } else {
                Vec::new()
            };
            let row: [Value; 18] = [
                format!("flag-{i:06}").into(),
                String::new().into(),
                true.into(),
                50.0f64.into(),
                serde_json::json!(whitelist).into(),
                serde_json::json!([]).into(),
                serde_json::json!(["prod"]).into(),
                serde_json::json!({}).into(),
                Value::ChronoDateTimeUtc(None),
                Value::ChronoDateTimeUtc(None),
                serde_json::json!([format!("t{}", i % 10)]).into(),
                serde_json::json!({}).into(),
                Value::String(None),
                (i as i64 + 1).into(),
                now.into(),
                now.into(),
                "bench".into(),
                "bench".into(),
            ];
            let base = values.len();
            let placeholders: Vec<String> = (0..row.len())
                .map(|k| match backend {
                    DbBackend::Postgres => format!("${}", base + k + 1),
                    _ => "?".to_string(),
                })
                .collect();
            rows.push(format!("({})", placeholders.join(", ")));
            values.extend(row);
        }
        let sql = format!(
            "INSERT INTO feature_flags ({columns}) VALUES {}",
            rows.join(", ")
        );
        transaction
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .expect("insert flags");
    }
    transaction
        .execute_unprepared(&format!(
            "UPDATE feature_flag_revision SET revision = {count} WHERE id = 1"
        ))
        .await
        .expect("revision");
    transaction.commit().await.expect("commit");
    connection.close().await.ok();
}

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(url: &str) -> (Server, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(vexil::run(config(url), listener, async {
        stopped.await.ok();
    }))
    .map_ok();
    let channel = connect(address).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    loop {
        let serving = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|answer| answer.into_inner().status == 1);
        if serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (
        Server {
            address,
            stop,
            task,
        },
        started.elapsed(),
    )
}

trait MapOk {
    fn map_ok(self) -> tokio::task::JoinHandle<()>;
}

impl MapOk for tokio::task::JoinHandle<vexil::Result<()>> {
    fn map_ok(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Ok(Err(err)) = self.await {
                eprintln!("server failed: {err}");
            }
        })
    }
}

async fn connect(address: SocketAddr) -> Channel {
    loop {
        if let Ok(channel) = Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Median of `runs` timings of `call`.
async fn median(runs: usize, mut call: impl AsyncFnMut()) -> Duration {
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        call().await;
        timings.push(started.elapsed());
    }
    timings.sort();
    percentile(&timings, 0.5)
}

async fn flag_scaling(backend: &str, postgres: Option<&str>, flags: usize) {
    let db = Db::create(postgres, &format!("f{flags}")).await;
    populate(&db.url, flags).await;
    let before = rss_bytes();
    let (server, ready) = start(&db.url).await;
    let rss = rss_bytes().saturating_sub(before);
    let channel = connect(server.address).await;
    let admin = FlagServiceClient::new(channel.clone());
    let mut evaluation = EvaluationServiceClient::new(channel);

    let list = |request: pb::ListFlagsRequest| {
        let mut admin = admin.clone();
        async move {
            admin.list_flags(request).await.expect("list");
        }
    };
    let plain = median(30, async || {
        list(pb::ListFlagsRequest {
            limit: 100,
            ..Default::default()
        })
        .await
    })
    .await;
    let filtered = median(30, async || {
        list(pb::ListFlagsRequest {
            limit: 100,
            tag: Some("t3".into()),
            ..Default::default()
        })
        .await
    })
    .await;
    let deep = median(30, async || {
        list(pb::ListFlagsRequest {
            limit: 100,
            skip: (flags / 2) as u32,
            ..Default::default()
        })
        .await
    })
    .await;
    let snapshot = median(3, async || {
        let mut stream = evaluation
            .watch(pb::WatchRequest::default())
            .await
            .expect("watch")
            .into_inner();
        loop {
            match stream
                .message()
                .await
                .expect("message")
                .expect("open")
                .event
            {
                Some(pb::watch_response::Event::Snapshot(chunk)) if chunk.last => break,
                _ => {}
            }
        }
    })
    .await;
    let evaluate = median(200, async || {
        evaluation
            .evaluate(pb::EvaluateRequest {
                flag_name: format!("flag-{:06}", flags / 3),
                user_id: "user-42".into(),
                environment: "prod".into(),
            })
            .await
            .expect("evaluate");
    })
    .await;
    println!(
        "| {backend} | {flags} | {:.0} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.3} |",
        ms(ready),
        rss as f64 / (1024.0 * 1024.0),
        rss as f64 / flags as f64,
        ms(plain),
        ms(filtered),
        ms(deep),
        ms(snapshot),
        ms(evaluate),
    );

    server.stop.send(()).ok();
    server.task.await.ok();
    db.remove().await;
}

async fn writes(backend: &str, postgres: Option<&str>, total: usize) {
    let db = Db::create(postgres, "writes").await;
    populate(&db.url, 1000).await;
    let (server, _) = start(&db.url).await;
    let channel = connect(server.address).await;
    for writers in [1usize, 16] {
        let per_writer = total / writers;
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let mut admin = FlagServiceClient::new(channel.clone());
                tokio::spawn(async move {
                    let mut timings = Vec::with_capacity(per_writer);
                    for i in 0..per_writer {
                        let began = Instant::now();
                        admin
                            .update_flag(pb::UpdateFlagRequest {
                                flag: Some(pb::Flag {
                                    name: format!("flag-{:06}", w * 50 + i % 50),
                                    percentage: (i % 100) as f64,
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["percentage".into()],
                                }),
                                reason: "scale bench".into(),
                                expected_revision: None,
                            })
                            .await
                            .expect("update");
                        timings.push(began.elapsed());
                    }
                    timings
                })
            })
            .collect();
        let mut timings = Vec::new();
        for task in tasks {
            timings.extend(task.await.expect("writer"));
        }
        let elapsed = started.elapsed();
        timings.sort();
        println!(
            "| {backend} | {writers} | {} | {:.0} | {:.2} | {:.2} |",
            timings.len(),
            timings.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&timings, 0.5)),
            ms(percentile(&timings, 0.99)),
        );
    }
    server.stop.send(()).ok();
    server.task.await.ok();
    db.remove().await;
}

async fn idle_streams(count: usize) {
    let db = Db::create(None, "streams").await;
    populate(&db.url, 100).await;
    let (server, _) = start(&db.url).await;
    // HTTP/2 allows 4,096 concurrent streams per connection.
    let mut channels = Vec::new();
    for _ in 0..count.div_ceil(4000) {
        channels.push(connect(server.address).await);
    }
    let before = rss_bytes();
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = EvaluationServiceClient::new(channels[i % channels.len()].clone());
        let mut stream = client
            .watch(pb::WatchRequest {
                flag_names: vec![format!("flag-{:06}", i % 100)],
                since_revision: None,
            })
            .await
            .expect("watch")
            .into_inner();
        // The snapshot (one flag) arrives; then the stream idles.
        stream.message().await.expect("snapshot").expect("open");
        streams.push(stream);
    }
    let opened = started.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "| {count} | {:.0} | {:.1} | {:.0} |",
        ms(opened),
        grown as f64 / (1024.0 * 1024.0),
        grown as f64 / count as f64
    );
    drop(streams);
    server.stop.send(()).ok();
    server.task.await.ok();
    db.remove().await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let postgres = std::env::var("VEXIL_BENCH_DATABASE_URL").ok();
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = postgres.as_deref() {
        backends.push(("postgres", Some(url)));
    }
    println!(
        "| backend | flags | ready ms | RSS MiB | RSS bytes/flag | ListFlags 100 ms | filtered ms | skip N/2 ms | snapshot ms | Evaluate ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (backend, url) in &backends {
        for flags in &args.flags {
            flag_scaling(backend, *url, *flags).await;
        }
    }
    println!();
    println!("| backend | writers | writes | writes/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (backend, url) in &backends {
        writes(backend, *url, args.writes).await;
    }
    println!();
    println!("| idle Watch streams | open ms | RSS MiB | bytes/stream |");
    println!("|---|---|---|---|");
    idle_streams(args.streams).await;
}
