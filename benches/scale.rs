//! How Vexil's cost grows with the number of flags, and what writes cost.
//!
//! Every server here is the `vexil` binary in its own process, so memory and
//! time are the server's alone. For 1,000 / 10,000 / 100,000 flags written
//! straight into a fresh database, mixed (1% of them with 1,000-id
//! whitelists) and plain: time from start to ready and the server's RSS
//! over an empty server's, ListFlags pages of 100 (plain, filtered, deep
//! `skip`), a Watch snapshot of every flag, one Evaluate. Then the RSS of a
//! server after 10,000 flags were created through CreateFlag, and after a
//! restart on the same database. Then writes: UpdateFlag with 1 and 16
//! concurrent writers, writes/s and p50/p99. Then the server's memory per
//! idle Watch stream, with 10,000 streams open.
//!
//! Run: `cargo bench --bench scale` (SQLite). With
//! `VEXIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` the
//! same on PostgreSQL too (a database per run, dropped afterwards).
//! Options after `--`: `--flags 1000,10000`, `--writes 300`, `--created 10000`.

// Shared with the propagation benchmark, which uses all of it.
#[path = "support/database.rs"]
mod database;
#[path = "support/populate.rs"]
mod populate;
#[allow(dead_code)]
#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use clap::Parser;
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient,
};

use database::Db;
use populate::populate;
use process::ServerProcess;

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
    /// Flags created through CreateFlag before the restart comparison.
    #[arg(long, default_value_t = 10_000)]
    created: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Starts the binary on `url` and waits until it serves.
async fn start(url: &str) -> (ServerProcess, Duration) {
    ServerProcess::start(&[("DATABASE_URL", url.to_string())], "").await
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

/// RSS of a server with no flags.
async fn empty_rss(postgres: Option<&str>) -> u64 {
    let db = Db::create(postgres, "empty").await;
    populate(&db.url, 0, false).await;
    let (server, _) = start(&db.url).await;
    let rss = server.rss();
    drop(server);
    drop(db);
    rss
}

async fn flag_scaling(
    backend: &str,
    postgres: Option<&str>,
    flags: usize,
    lists: bool,
    empty_rss: u64,
) {
    let kind = if lists { "mixed" } else { "plain" };
    let db = Db::create(postgres, &format!("f{flags}{kind}")).await;
    populate(&db.url, flags, lists).await;
    let (server, ready) = start(&db.url).await;
    let rss = server.rss().saturating_sub(empty_rss);
    let channel = server.channel();
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
                context: None,
            })
            .await
            .expect("evaluate");
    })
    .await;
    println!(
        "| {backend} | {kind} | {flags} | {:.0} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.3} |",
        ms(ready),
        rss as f64 / (1024.0 * 1024.0),
        rss as f64 / flags as f64,
        ms(plain),
        ms(filtered),
        ms(deep),
        ms(snapshot),
        ms(evaluate),
    );

    drop(server);
    drop(db);
}

/// The server's RSS after `count` flags were created through CreateFlag
/// (16 callers), and after a restart on the same database.
async fn created_vs_restarted(backend: &str, postgres: Option<&str>, count: usize, empty_rss: u64) {
    let db = Db::create(postgres, "created").await;
    populate(&db.url, 0, false).await;
    let (server, _) = start(&db.url).await;
    let channel = server.channel();
    let callers = 16;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let mut admin = FlagServiceClient::new(channel.clone());
            tokio::spawn(async move {
                for i in (caller..count).step_by(callers) {
                    admin
                        .create_flag(pb::CreateFlagRequest {
                            flag: Some(pb::Flag {
                                name: format!("flag-{i:06}"),
                                enabled: true,
                                percentage: 50.0,
                                environments: vec!["prod".into()],
                                tags: vec![format!("t{}", i % 10)],
                                ..Default::default()
                            }),
                            reason: "scale bench".into(),
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
    let created = server.rss().saturating_sub(empty_rss);
    drop(server);
    let (server, _) = start(&db.url).await;
    let restarted = server.rss().saturating_sub(empty_rss);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "| {backend} | {count} | {:.1} | {:.0} | {:.1} | {:.0} |",
        mib(created),
        created as f64 / count as f64,
        mib(restarted),
        restarted as f64 / count as f64,
    );
    drop(server);
    drop(db);
}

async fn writes(backend: &str, postgres: Option<&str>, total: usize) {
    let db = Db::create(postgres, "writes").await;
    populate(&db.url, 1000, true).await;
    let (server, _) = start(&db.url).await;
    let channel = server.channel();
    for writers in [1usize, 16] {
        let per_writer = (total / writers).max(1);
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
    drop(server);
    drop(db);
}

async fn idle_streams(count: usize) {
    let db = Db::create(None, "streams").await;
    populate(&db.url, 100, false).await;
    let (server, _) = start(&db.url).await;
    // HTTP/2 allows 4,096 concurrent streams per connection.
    let mut channels = Vec::new();
    for _ in 0..count.div_ceil(4000) {
        channels.push(server.channel());
    }
    let before = server.rss();
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut client = EvaluationServiceClient::new(channels[i % channels.len()].clone());
        let mut stream = client
            .watch(pb::WatchRequest {
                flag_names: vec![format!("flag-{:06}", i % 100)],
                since_revision: None,
                engine: vexil::engine::ENGINE,
            })
            .await
            .expect("watch")
            .into_inner();
        // The snapshot (one flag) arrives; then the stream idles.
        stream.message().await.expect("snapshot").expect("open");
        streams.push(stream);
    }
    let opened = started.elapsed();
    let grown = server.rss().saturating_sub(before);
    println!(
        "| {count} | {:.0} | {:.1} | {:.0} |",
        ms(opened),
        grown as f64 / (1024.0 * 1024.0),
        grown as f64 / count as f64
    );
    drop(streams);
    drop(server);
    drop(db);
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
        "| backend | flags | count | ready ms | RSS MiB over empty | bytes/flag | ListFlags 100 ms | filtered ms | skip N/2 ms | snapshot ms | Evaluate ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut empty = Vec::new();
    for (backend, url) in &backends {
        let empty_rss = empty_rss(*url).await;
        empty.push(empty_rss);
        for lists in [true, false] {
            for flags in &args.flags {
                flag_scaling(backend, *url, *flags, lists, empty_rss).await;
            }
        }
    }
    println!();
    println!(
        "| backend | flags created | RSS MiB over empty | bytes/flag | after restart MiB | bytes/flag |"
    );
    println!("|---|---|---|---|---|---|");
    for ((backend, url), empty_rss) in backends.iter().zip(&empty) {
        created_vs_restarted(backend, *url, args.created, *empty_rss).await;
    }
    println!();
    println!("| backend | writers | writes | writes/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (backend, url) in &backends {
        writes(backend, *url, args.writes).await;
    }
    println!();
    println!("| idle Watch streams | open ms | server RSS MiB | bytes/stream |");
    println!("|---|---|---|---|");
    idle_streams(args.streams).await;
}
