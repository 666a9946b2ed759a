//! Propagation benchmark: two real Vexil replicas (the release binary, each
//! in its own process) on one database and one Redis.
//!
//! - latency: from UpdateFlag returning on replica A to the change arriving
//!   on a Watch stream on replica B, over 1,000 changes (p50/p99/max);
//! - fan-out: the time for one change made on A to reach every one of 1,000
//!   and of 10,000 Watch subscribers on B, and to reach 1,000 subscribers
//!   when the flag carries a 10,000-id whitelist; with B's CPU time, the
//!   subscribers' CPU time (this process) and the rise of B's peak memory
//!   over the round. `fanout_ceiling` runs the same subscribers against a
//!   bare HTTP/2 server, for comparison.
//!
//! The fan-out subscribers read each message's revision and skip the flag
//! (as bytes on the wire, not decoded): on this machine they share the
//! server's cores, and decoding 1,000 copies of a 10,000-id flag would
//! measure the clients. Every message still crosses the connection whole.
//!
//! Run: `cargo bench --bench propagation` (Redis at `VEXIL_BENCH_REDIS_URL`,
//! default redis://127.0.0.1:6379; database at `VEXIL_BENCH_DATABASE_URL`,
//! default a fresh SQLite file). Options after `--`: `--connections 16`
//! (HTTP/2 connections the subscribers share), `--fanouts 1000,10000`.

#[path = "support/arrival.rs"]
mod arrival;
#[path = "support/process.rs"]
mod process;
#[path = "support/scratch.rs"]
mod scratch;

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient, watch_response::Event,
};

use arrival::watch_light;
use process::ServerProcess;

const CHANGES: usize = 1000;
const FLAG: &str = "bench.propagation";
const LARGE_FLAG: &str = "bench.large";
const LARGE_FANOUT: usize = 1_000;

#[derive(Debug, Parser)]
struct Args {
    /// HTTP/2 connections the fan-out subscribers share.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fanouts: Vec<usize>,
    /// Changes per fan-out.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

async fn start_replica(database_url: &str, redis_url: &str, channel: &str) -> ServerProcess {
    let env = [
        ("DATABASE_URL", database_url.to_string()),
        ("REDIS_URL", redis_url.to_string()),
        ("VEXIL_REDIS_CHANNEL", channel.to_string()),
        ("REDIS_MAX_CONNECTIONS", "4".to_string()),
        ("FF_CACHE_TTL", "3600".to_string()),
        ("VEXIL_WATCH_BUFFER", "4096".to_string()),
        ("VEXIL_MAX_WATCH_STREAMS", "100000".to_string()),
    ];
    ServerProcess::start(&env, vexil::BUS_HEALTH_SERVICE)
        .await
        .0
}

async fn update(flags: &mut FlagServiceClient<Channel>, i: usize) -> u64 {
    update_flag(flags, FLAG, i).await
}

async fn update_flag(flags: &mut FlagServiceClient<Channel>, name: &str, i: usize) -> u64 {
    flags
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: name.into(),
                percentage: (i % 101) as f64,
                ..pb::Flag::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["percentage".into()],
            }),
            reason: "benchmark".into(),
            expected_revision: None,
        })
        .await
        .expect("update")
        .into_inner()
        .revision
}

/// Opens a watch and reads its snapshot.
async fn subscribe(
    client: &mut EvaluationServiceClient<Channel>,
) -> tonic::Streaming<pb::WatchResponse> {
    subscribe_to(client, FLAG).await
}

async fn subscribe_to(
    client: &mut EvaluationServiceClient<Channel>,
    name: &str,
) -> tonic::Streaming<pb::WatchResponse> {
    let mut stream = client
        .watch(pb::WatchRequest {
            flag_names: vec![name.into()],
            since_revision: None,
            engine: vexil::engine::ENGINE,
        })
        .await
        .expect("watch")
        .into_inner();
    loop {
        let event = stream.message().await.expect("event").expect("open").event;
        if let Some(Event::Snapshot(snapshot)) = event
            && snapshot.last
        {
            return stream;
        }
    }
}

/// Waits for the change with `revision`, skipping heartbeats.
async fn await_change(stream: &mut tonic::Streaming<pb::WatchResponse>, revision: u64) {
    loop {
        match stream.message().await.expect("event").expect("open").event {
            Some(Event::Change(change)) if change.revision == revision => return,
            Some(Event::Change(change)) => assert!(change.revision < revision),
            _ => {}
        }
    }
}

/// One change reaching every subscriber, as B saw it.
struct Round {
    delay: Duration,
    cpu: Duration,
    client_cpu: Duration,
    peak_rss_rise: u64,
}

/// Opens `subscribers` watches of `name` on B over `channels`, then makes
/// `rounds` changes to it through A and prints how long each took to
/// reach every subscriber, B's CPU time and peak memory rise meanwhile.
/// Returns the last revision.
async fn fan_out(
    flags: &mut FlagServiceClient<Channel>,
    b: &ServerProcess,
    channels: &[Channel],
    name: &str,
    subscribers: usize,
    rounds: usize,
    mut revision: u64,
) -> u64 {
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut readers = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let mut stream = watch_light(&channels[i % channels.len()], name).await;
        let arrived = arrived.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(message)) = stream.message().await {
                if let Some(change) = message.change
                    && arrived.send((change.revision, Instant::now())).is_err()
                {
                    return;
                }
            }
        }));
    }
    let changes = rounds;
    let mut rounds = Vec::with_capacity(changes);
    for round in 0..changes {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.reset_peak_rss();
        let rss = b.rss();
        let cpu = b.cpu_time();
        let client_cpu = process::cpu::own_cpu();
        // Revisions are gapless and only this benchmark writes.
        let expected = revision + 1;
        revision = update_flag(flags, name, round).await;
        assert_eq!(revision, expected);
        let written = Instant::now();
        let mut last = written;
        let mut reached = 0;
        while reached < subscribers {
            let (arrived, at) = arrivals.recv().await.expect("a subscriber");
            // Older: the flag's creation, when B applied it after a
            // subscriber's snapshot.
            if arrived == revision {
                reached += 1;
                last = last.max(at);
            }
        }
        rounds.push(Round {
            delay: last - written,
            cpu: b.cpu_time().saturating_sub(cpu),
            client_cpu: process::cpu::own_cpu().saturating_sub(client_cpu),
            peak_rss_rise: b.peak_rss().saturating_sub(rss),
        });
    }
    for reader in readers {
        reader.abort();
    }
    let median = |mut values: Vec<Duration>| {
        values.sort();
        (
            percentile(&values, 0.5),
            values[0],
            values[values.len() - 1],
        )
    };
    let (delay, fastest, slowest) = median(rounds.iter().map(|round| round.delay).collect());
    let (cpu, _, _) = median(rounds.iter().map(|round| round.cpu).collect());
    let (client_cpu, _, _) = median(rounds.iter().map(|round| round.client_cpu).collect());
    let rise = rounds.iter().map(|round| round.peak_rss_rise).max();
    println!(
        "fan-out of {name} to {subscribers} watch subscribers on B ({} connections): one change reaches all in median {} (min {}, max {}); B's CPU {}, the subscribers' CPU {} (medians over {changes} changes), B's peak RSS rise at most {:.1} MB",
        channels.len(),
        ms(delay),
        ms(fastest),
        ms(slowest),
        ms(cpu),
        ms(client_cpu),
        rise.unwrap_or_default() as f64 / (1024.0 * 1024.0),
    );
    revision
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let redis =
        std::env::var("VEXIL_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let suffix = format!("{}-{nanos}", std::process::id());
    let scratch = scratch::Scratch::create("propagation");
    let database = std::env::var("VEXIL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| scratch.sqlite_url("vexil.db"));
    let redis_channel = format!("vexil-bench:{suffix}");

    let a = start_replica(&database, &redis, &redis_channel).await;
    let b = start_replica(&database, &redis, &redis_channel).await;
    let mut flags = FlagServiceClient::new(a.channel());
    flags
        .create_flag(pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                name: FLAG.into(),
                enabled: true,
                ..pb::Flag::default()
            }),
            reason: "benchmark".into(),
        })
        .await
        .ok();

    // Latency A -> B.
    let mut watcher = EvaluationServiceClient::new(b.channel());
    let mut stream = subscribe(&mut watcher).await;
    let mut delays = Vec::with_capacity(CHANGES);
    let mut revision = 0;
    for i in 0..CHANGES {
        revision = update(&mut flags, i).await;
        let written = Instant::now();
        await_change(&mut stream, revision).await;
        delays.push(written.elapsed());
    }
    drop(stream);
    delays.sort();
    println!(
        "propagation A->B via redis, {CHANGES} changes: p50 {}  p99 {}  max {}",
        ms(percentile(&delays, 0.50)),
        ms(percentile(&delays, 0.99)),
        ms(delays[delays.len() - 1]),
    );

    // Fan-out on B: a lean flag, then a flag with a 10,000-id whitelist
    // (every change carries the full flag to every subscriber).
    let channels: Vec<Channel> = (0..args.connections.max(1)).map(|_| b.channel()).collect();
    for subscribers in args.fanouts {
        revision = fan_out(
            &mut flags,
            &b,
            &channels,
            FLAG,
            subscribers,
            args.rounds,
            revision,
        )
        .await;
    }
    flags
        .create_flag(pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                name: LARGE_FLAG.into(),
                enabled: true,
                whitelist: (0..10_000).map(|i| format!("vip-{i}")).collect(),
                ..pb::Flag::default()
            }),
            reason: "benchmark".into(),
        })
        .await
        .expect("create large flag");
    revision += 1;
    fan_out(
        &mut flags,
        &b,
        &channels,
        LARGE_FLAG,
        LARGE_FANOUT,
        args.rounds,
        revision,
    )
    .await;

    drop((a, b));
}
