//! Propagation benchmark: two real Vexil replicas on one database and one
//! Redis, in this process.
//!
//! - latency: from UpdateFlag returning on replica A to the change arriving
//!   on a Watch stream on replica B, over 1,000 changes (p50/p99/max);
//! - fan-out: the time for one change to reach every one of 1,000 and of
//!   10,000 Watch subscribers on B, and to reach 1,000 subscribers when the
//!   flag carries a 10,000-id whitelist.
//!
//! Run: `cargo bench --bench propagation` (Redis at `VEXIL_BENCH_REDIS_URL`,
//! default redis://127.0.0.1:6379; database at `VEXIL_BENCH_DATABASE_URL`,
//! default a fresh SQLite file).

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use vexil::grpc::pb::{
    self, evaluation_service_client::EvaluationServiceClient,
    flag_service_client::FlagServiceClient, watch_response::Event,
};

const CHANGES: usize = 1000;
const FANOUTS: [usize; 2] = [1_000, 10_000];
const FANOUT_ROUNDS: usize = 5;
const FLAG: &str = "bench.propagation";
const LARGE_FLAG: &str = "bench.large";
const LARGE_FANOUT: usize = 1_000;

struct Replica {
    address: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<vexil::Result<()>>,
}

async fn start_replica(database_url: &str, redis_url: &str, channel: &str) -> Replica {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let config = vexil::Config {
        redis_url: Some(redis_url.to_string()),
        redis_channel: channel.to_string(),
        redis_max_connections: 4,
        cache_ttl_secs: 3600,
        watch_buffer: 4096,
        // A benchmark is one caller flooding on purpose.
        ..vexil::Config::with_database(database_url).without_caller_limits()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(vexil::run(config, listener, async {
        stopped.await.ok();
    }));
    let replica = Replica {
        address,
        stop,
        server,
    };
    wait_until_bus_serving(&replica).await;
    replica
}

async fn wait_until_bus_serving(replica: &Replica) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(replica));
    for _ in 0..300 {
        let request = tonic_health::pb::HealthCheckRequest {
            service: vexil::BUS_HEALTH_SERVICE.into(),
        };
        if let Ok(response) = health.check(request).await
            && response.into_inner().status == 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replica did not connect to redis");
}

fn channel(replica: &Replica) -> Channel {
    Channel::from_shared(format!("http://{}", replica.address))
        .expect("endpoint")
        .connect_lazy()
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

/// Opens `subscribers` watches of `name` on B's channels, then makes
/// FANOUT_ROUNDS changes to it through A and prints how long each took to
/// reach every subscriber. Returns the last revision.
async fn fan_out(
    flags: &mut FlagServiceClient<Channel>,
    channels: &[Channel],
    name: &str,
    subscribers: usize,
    mut revision: u64,
) -> u64 {
    let mut streams = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let mut client = EvaluationServiceClient::new(channels[i % channels.len()].clone());
        streams.push(subscribe_to(&mut client, name).await);
    }
    let mut rounds = Vec::with_capacity(FANOUT_ROUNDS);
    for round in 0..FANOUT_ROUNDS {
        // Revisions are gapless and only this benchmark writes: the next
        // change is `revision + 1`. Subscribers wait before it is made.
        let expected = revision + 1;
        let tasks: Vec<_> = streams
            .drain(..)
            .map(|mut stream| {
                tokio::spawn(async move {
                    await_change(&mut stream, expected).await;
                    (stream, Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        revision = update_flag(flags, name, round).await;
        assert_eq!(revision, expected);
        let written = Instant::now();
        let mut last = written;
        for task in tasks {
            let (stream, arrived) = task.await.expect("subscriber");
            last = last.max(arrived);
            streams.push(stream);
        }
        rounds.push(last.saturating_duration_since(written));
    }
    rounds.sort();
    println!(
        "fan-out of {name} to {subscribers} watch subscribers on B: one change reaches all in median {} (min {}, max {}) over {FANOUT_ROUNDS} changes",
        ms(percentile(&rounds, 0.5)),
        ms(rounds[0]),
        ms(rounds[rounds.len() - 1]),
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
    let redis =
        std::env::var("VEXIL_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let suffix = format!("{}-{nanos}", std::process::id());
    let sqlite = std::env::temp_dir().join(format!("vexil-bench-{suffix}.db"));
    let database = std::env::var("VEXIL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", sqlite.display()));
    let redis_channel = format!("vexil-bench:{suffix}");

    let a = start_replica(&database, &redis, &redis_channel).await;
    let b = start_replica(&database, &redis, &redis_channel).await;
    let mut flags = FlagServiceClient::new(channel(&a));
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
    let mut watcher = EvaluationServiceClient::new(channel(&b));
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
    let channels: Vec<Channel> = (0..16).map(|_| channel(&b)).collect();
    for subscribers in FANOUTS {
        revision = fan_out(&mut flags, &channels, FLAG, subscribers, revision).await;
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
    fan_out(&mut flags, &channels, LARGE_FLAG, LARGE_FANOUT, revision).await;

    for replica in [a, b] {
        let _ = replica.stop.send(());
        let _ = replica.server.await;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = sqlite.clone().into_os_string();
        file.push(suffix);
        std::fs::remove_file(file).ok();
    }
}
