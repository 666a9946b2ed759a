//! Load generator: Vexil against the gRPC ceiling on the same machine.
//!
//! Starts a real Vexil server (SQLite, N flags) and a bare tonic server that
//! answers the same RPCs with messages of the same sizes from a HashMap (the
//! ceiling), then drives each over real HTTP/2 connections with the same
//! settings: C requests in flight over K connections, for a fixed duration,
//! with varied user ids and flags. Prints requests/s and p50/p99/p99.9
//! latency for each, and the Vexil/ceiling ratios. Then compares two fresh
//! Vexil servers, evaluation metrics on and off, driven in turn
//! (`--metrics-control`: both on, to see the comparison's own noise).
//! Last, the server's CPU time per answer for every flag at once, OFREP's
//! bulk evaluation (JSON over HTTP/1.1) against gRPC BulkEvaluate, with
//! the server in its own process (`--ofrep-only`: just that).
//!
//! Run: `cargo bench --bench load` (options after `--`, e.g.
//! `cargo bench --bench load -- --duration 5 --concurrency 1,16,64`).

#[path = "support/http1.rs"]
mod http1;
#[allow(dead_code)] // its memory readings are for other benchmarks
#[path = "support/process.rs"]
mod process;
#[path = "support/scratch.rs"]
mod scratch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use vexil::grpc::pb::{
    self,
    evaluation_service_client::EvaluationServiceClient,
    evaluation_service_server::{EvaluationService, EvaluationServiceServer},
    flag_service_client::FlagServiceClient,
};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds of measurement per scenario, server and concurrency.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Requests in flight.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Flags on the server.
    #[arg(long, default_value_t = 1000)]
    flags: usize,
    /// Scenarios: evaluate, evaluate_context (a typed flag whose first
    /// rule has 5 clauses, with a 5-attribute context), bulkN
    /// (BulkEvaluate of N flags).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "evaluate,evaluate_context,bulk10,bulk25,bulk100"
    )]
    scenarios: Vec<String>,
    /// Metrics on/off comparison: pairs of runs per row (each pair runs
    /// both servers, the order alternating).
    #[arg(long, default_value_t = 4)]
    metrics_rounds: usize,
    /// Control for the metrics comparison: both servers with metrics on,
    /// so the ratio shows the comparison's own noise and bias.
    #[arg(long)]
    metrics_control: bool,
    /// Only the OFREP-bulk against BulkEvaluate comparison.
    #[arg(long)]
    ofrep_only: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Evaluate,
    EvaluateContext,
    Bulk(usize),
}

impl Scenario {
    fn parse(text: &str) -> Self {
        match text {
            "evaluate" => Self::Evaluate,
            "evaluate_context" => Self::EvaluateContext,
            bulk => Self::Bulk(
                bulk.strip_prefix("bulk")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unknown scenario {bulk}")),
            ),
        }
    }

    fn label(self) -> String {
        match self {
            Self::Evaluate => "Evaluate".into(),
            Self::EvaluateContext => "Evaluate+context".into(),
            Self::Bulk(n) => format!("BulkEvaluate({n})"),
        }
    }
}

fn flag_name(i: usize) -> String {
    format!("bench.flag.{i:05}")
}

/// Typed flags for `evaluate_context`.
const TYPED_FLAGS: usize = 100;

fn typed_name(i: usize) -> String {
    format!("bench.typed.{i:03}")
}

/// A string flag whose first rule has 5 clauses (all holding for
/// [`context`]) and whose fallthrough splits three ways.
fn typed_flag(name: &str) -> pb::Flag {
    let spec: vexil::domain::FlagSpec = serde_json::from_value(serde_json::json!({
        "enabled": true, "type": "string",
        "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}},
                     {"name": "c", "value": {"string": "C"}}],
        "rules": [{"id": "enterprise", "clauses": [
            {"attribute": "plan", "op": "in", "values": ["enterprise", "team", "business"]},
            {"attribute": "email", "op": "ends_with", "values": ["@example.com"]},
            {"attribute": "seats", "op": "gte", "values": [10]},
            {"attribute": "app_version", "op": "semver_gte", "values": ["2.3.0"]},
            {"attribute": "country", "op": "exists"}
        ], "serve": {"variant": "b"}}],
        "fallthrough": {"split": {"weights": [{"variant": "a", "weight": 3334},
            {"variant": "b", "weight": 3333}, {"variant": "c", "weight": 3333}]}}
    }))
    .expect("a spec");
    let stamp = vexil::domain::Stamp {
        revision: 0,
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        created_by: String::new(),
        updated_by: String::new(),
    };
    let name = vexil::domain::FlagName::parse("name", name.to_string()).expect("name");
    vexil_proto::convert::flag_to_pb(&vexil::domain::Flag::new(name, spec, stamp))
}

/// The 5-attribute context `evaluate_context` sends (built once, cloned
/// per request).
fn context() -> vexil_proto::google::protobuf::Struct {
    static CONTEXT: std::sync::LazyLock<vexil_proto::google::protobuf::Struct> =
        std::sync::LazyLock::new(build_context);
    CONTEXT.clone()
}

fn build_context() -> vexil_proto::google::protobuf::Struct {
    vexil_proto::convert::struct_to_pb(
        serde_json::json!({
            "plan": "enterprise", "email": "ann@example.com", "seats": 25,
            "app_version": "2.10.1", "country": "DE"
        })
        .as_object()
        .expect("an object"),
    )
}

// ---------------------------------------------------------------- servers

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn start_vexil(flags: usize, database: &str, metrics: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    // The load generator is one caller flooding on purpose.
    let config = vexil::Config {
        max_in_flight: 1_000_000,
        enable_metrics: metrics,
        ..vexil::Config::with_database(database).without_caller_limits()
    };
    let task = tokio::spawn(async move {
        vexil::run(config, listener, async {
            stopped.await.ok();
        })
        .await
        .expect("vexil runs");
    });
    seed(
        &mut FlagServiceClient::new(connect(address).await),
        flags,
        TYPED_FLAGS,
    )
    .await;
    Server {
        address,
        stop,
        task,
    }
}

/// Creates `boolean` flags named by [`flag_name`] (rollouts with a
/// whitelist, environments and an override) and `typed` ones named by
/// [`typed_name`].
async fn seed(admin: &mut FlagServiceClient<Channel>, boolean: usize, typed: usize) {
    for i in 0..boolean {
        admin
            .create_flag(pb::CreateFlagRequest {
                flag: Some(pb::Flag {
                    name: flag_name(i),
                    enabled: true,
                    percentage: (i * 7 % 100) as f64,
                    whitelist: (0..100).map(|u| format!("vip-{u}")).collect(),
                    environments: vec!["production".into(), "staging".into()],
                    environment_overrides: [("staging".to_string(), true)].into(),
                    tags: vec!["bench".into()],
                    ..pb::Flag::default()
                }),
                reason: "benchmark".into(),
            })
            .await
            .expect("seed flag");
    }
    for i in 0..typed {
        admin
            .create_flag(pb::CreateFlagRequest {
                flag: Some(typed_flag(&typed_name(i))),
                reason: "benchmark".into(),
            })
            .await
            .expect("seed typed flag");
    }
}

/// The ceiling: the same service answered from a HashMap of ready-made
/// responses, with the same message sizes, and nothing else.
struct Ceiling {
    answers: HashMap<String, pb::EvaluateResponse>,
}

#[tonic::async_trait]
impl EvaluationService for Ceiling {
    type WatchStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let request = request.into_inner();
        self.answers
            .get(&request.flag_name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no such flag"))
    }

    async fn bulk_evaluate(
        &self,
        request: Request<pb::BulkEvaluateRequest>,
    ) -> Result<Response<pb::BulkEvaluateResponse>, Status> {
        let request = request.into_inner();
        let results = request
            .flag_names
            .into_iter()
            .map(|name| {
                let answer = self.answers.get(&name);
                pb::FlagEvaluation {
                    enabled: answer.is_some_and(|a| a.enabled),
                    reason: answer.map_or(1, |a| a.reason),
                    revision: answer.map_or(0, |a| a.revision),
                    variant: answer.map(|a| a.variant.clone()).unwrap_or_default(),
                    value: answer.and_then(|a| a.value.clone()),
                    flag_name: name,
                    ..pb::FlagEvaluation::default()
                }
            })
            .collect();
        Ok(Response::new(pb::BulkEvaluateResponse {
            results,
            evaluation_time_ms: 0.001,
        }))
    }

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not part of the ceiling"))
    }
}

async fn start_ceiling(flags: usize) -> Server {
    let answers = (0..flags)
        .map(|i| {
            let name = flag_name(i);
            let answer = pb::EvaluateResponse {
                flag_name: name.clone(),
                enabled: i % 2 == 0,
                reason: pb::Reason::PercentageRollout as i32,
                revision: i as u64 + 1,
                evaluation_time_ms: 0.001,
                // The same answer Vexil gives: the variant and its value.
                variant: if i % 2 == 0 { "on" } else { "off" }.to_string(),
                value: Some(pb::TypedValue {
                    value: Some(pb::typed_value::Value::BoolValue(i % 2 == 0)),
                }),
                ..pb::EvaluateResponse::default()
            };
            (name, answer)
        })
        .chain((0..TYPED_FLAGS).map(|i| {
            let name = typed_name(i);
            // What Vexil answers for the context sent: the rule's variant.
            let answer = pb::EvaluateResponse {
                flag_name: name.clone(),
                enabled: true,
                reason: pb::Reason::RuleMatch as i32,
                revision: (flags + i) as u64 + 1,
                evaluation_time_ms: 0.001,
                variant: "b".into(),
                value: Some(pb::TypedValue {
                    value: Some(pb::typed_value::Value::StringValue("B".into())),
                }),
                r#type: pb::FlagType::String as i32,
                rule_index: Some(0),
                rule_id: "enterprise".into(),
                ..pb::EvaluateResponse::default()
            };
            (name, answer)
        }))
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(EvaluationServiceServer::new(Ceiling { answers }))
            .serve_with_incoming_shutdown(incoming, async {
                stopped.await.ok();
            })
            .await
            .expect("ceiling serves");
    });
    Server {
        address,
        stop,
        task,
    }
}

// ----------------------------------------------------------------- driver

async fn connect(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect")
}

struct Outcome {
    latency: Histogram<u64>,
    requests: u64,
    elapsed: Duration,
    server_ms: f64,
}

/// A small deterministic generator, so both servers see the same traffic.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

async fn worker(
    mut client: EvaluationServiceClient<Channel>,
    scenario: Scenario,
    flags: usize,
    seed: u64,
    warm_until: Instant,
    until: Instant,
) -> (Histogram<u64>, u64, f64) {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut random = Lcg(seed);
    let mut requests = 0;
    let mut server_ms = 0.0;
    loop {
        let started = Instant::now();
        if started >= until {
            return (latency, requests, server_ms);
        }
        let user_id = format!("user-{}", random.next() % 1_000_000);
        let reported = match scenario {
            Scenario::Evaluate => {
                let flag_name = flag_name(random.next() as usize % flags);
                client
                    .evaluate(pb::EvaluateRequest {
                        flag_name,
                        user_id,
                        environment: "production".into(),
                        context: None,
                    })
                    .await
                    .expect("evaluate")
                    .into_inner()
                    .evaluation_time_ms
            }
            Scenario::EvaluateContext => {
                let flag_name = typed_name(random.next() as usize % TYPED_FLAGS);
                client
                    .evaluate(pb::EvaluateRequest {
                        flag_name,
                        user_id,
                        environment: "production".into(),
                        context: Some(context()),
                    })
                    .await
                    .expect("evaluate")
                    .into_inner()
                    .evaluation_time_ms
            }
            Scenario::Bulk(count) => {
                let first = random.next() as usize;
                let flag_names = (0..count).map(|i| flag_name((first + i) % flags)).collect();
                let response = client
                    .bulk_evaluate(pb::BulkEvaluateRequest {
                        flag_names,
                        user_id,
                        environment: "production".into(),
                        context: None,
                    })
                    .await
                    .expect("bulk evaluate")
                    .into_inner();
                assert_eq!(response.results.len(), count);
                response.evaluation_time_ms
            }
        };
        if started >= warm_until {
            let nanos = started.elapsed().as_nanos() as u64;
            latency.record(nanos.max(1)).expect("record");
            requests += 1;
            server_ms += reported;
        }
    }
}

async fn drive(
    address: SocketAddr,
    scenario: Scenario,
    concurrency: usize,
    args: &Args,
) -> Outcome {
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections.min(concurrency).max(1) {
        channels.push(connect(address).await);
    }
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let until = warm_until + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = EvaluationServiceClient::new(channels[i % channels.len()].clone());
            tokio::spawn(worker(
                client,
                scenario,
                args.flags,
                i as u64 + 1,
                warm_until,
                until,
            ))
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut requests = 0;
    let mut server_ms = 0.0;
    for worker in workers {
        let (histogram, count, reported) = worker.await.expect("worker");
        latency.add(histogram).expect("merge");
        requests += count;
        server_ms += reported;
    }
    Outcome {
        latency,
        requests,
        elapsed: until - warm_until,
        server_ms: server_ms / requests.max(1) as f64,
    }
}

fn rate(outcome: &Outcome) -> f64 {
    outcome.requests as f64 / outcome.elapsed.as_secs_f64()
}

fn micros(outcome: &Outcome, quantile: f64) -> f64 {
    outcome.latency.value_at_quantile(quantile) as f64 / 1e3
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = args.scenarios.iter().map(|s| Scenario::parse(s)).collect();
    let scratch = scratch::Scratch::create("load");
    let database = scratch.sqlite_url("vexil.db");
    if args.ofrep_only {
        ofrep_against_bulk(&args, &scratch).await;
        return;
    }

    let vexil = start_vexil(args.flags, &database, true).await;
    let ceiling = start_ceiling(args.flags).await;
    println!(
        "{} flags; {} s per run after {} s warm-up; up to {} HTTP/2 connections; {} cores",
        args.flags,
        args.duration,
        args.warmup,
        args.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<18} {:>4} | {:>9} {:>8} {:>8} {:>8} | {:>9} {:>8} {:>8} {:>8} | {:>6} {:>6} {:>6} | {:>9}",
        "scenario",
        "C",
        "vexil/s",
        "p50µs",
        "p99µs",
        "p99.9µs",
        "ceiling/s",
        "p50µs",
        "p99µs",
        "p99.9µs",
        "tput",
        "p50",
        "p99",
        "server µs"
    );
    for scenario in &scenarios {
        for &concurrency in &args.concurrency {
            let v = drive(vexil.address, *scenario, concurrency, &args).await;
            let c = drive(ceiling.address, *scenario, concurrency, &args).await;
            println!(
                "{:<18} {:>4} | {:>9.0} {:>8.1} {:>8.1} {:>8.1} | {:>9.0} {:>8.1} {:>8.1} {:>8.1} | {:>5.0}% {:>6.2} {:>6.2} | {:>9.1}",
                scenario.label(),
                concurrency,
                rate(&v),
                micros(&v, 0.5),
                micros(&v, 0.99),
                micros(&v, 0.999),
                rate(&c),
                micros(&c, 0.5),
                micros(&c, 0.99),
                micros(&c, 0.999),
                100.0 * rate(&v) / rate(&c),
                micros(&v, 0.5) / micros(&c, 0.5),
                micros(&v, 0.99) / micros(&c, 0.99),
                v.server_ms * 1e3,
            );
        }
    }
    println!(
        "tput = Vexil/ceiling requests per second; p50, p99 = Vexil/ceiling latency; server µs = Vexil's evaluation_time_ms"
    );

    // Evaluation metrics (FF_ENABLE_METRICS) on vs off, the same run: two
    // fresh servers seeded alike, on databases of their own, driven in
    // turn with the order alternating (off-on, on-off, ...), so drift on a
    // shared machine and being second hit both alike.
    let metrics_on = start_vexil(args.flags, &scratch.sqlite_url("on.db"), true).await;
    let metrics_off = start_vexil(
        args.flags,
        &scratch.sqlite_url("off.db"),
        args.metrics_control,
    )
    .await;
    println!();
    if args.metrics_control {
        println!("control: both servers have metrics on (the ratio is the comparison's own noise)");
    }
    println!(
        "{:<18} {:>4} | {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>6} {:>13}",
        "metrics on/off",
        "C",
        "on/s",
        "p50µs",
        "p99µs",
        "off/s",
        "p50µs",
        "p99µs",
        "on/off",
        "pairs min-max"
    );
    for (scenario, concurrency) in [Scenario::Evaluate, Scenario::Bulk(25)]
        .into_iter()
        .flat_map(|scenario| args.concurrency.iter().map(move |&c| (scenario, c)))
    {
        let mut on = Vec::new();
        let mut off = Vec::new();
        for round in 0..args.metrics_rounds.max(1) {
            if round % 2 == 0 {
                off.push(drive(metrics_off.address, scenario, concurrency, &args).await);
                on.push(drive(metrics_on.address, scenario, concurrency, &args).await);
            } else {
                on.push(drive(metrics_on.address, scenario, concurrency, &args).await);
                off.push(drive(metrics_off.address, scenario, concurrency, &args).await);
            }
        }
        let mean = |runs: &[Outcome], f: &dyn Fn(&Outcome) -> f64| {
            runs.iter().map(f).sum::<f64>() / runs.len() as f64
        };
        let pairs: Vec<f64> = on
            .iter()
            .zip(&off)
            .map(|(a, b)| rate(a) / rate(b))
            .collect();
        let lowest = pairs.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = pairs.iter().copied().fold(0.0, f64::max);
        let (on_rate, off_rate) = (mean(&on, &rate), mean(&off, &rate));
        println!(
            "{:<18} {:>4} | {:>11.0} {:>8.1} {:>8.1} | {:>11.0} {:>8.1} {:>8.1} | {:>6.3} {:>6.2}-{:<6.2}",
            scenario.label(),
            concurrency,
            on_rate,
            mean(&on, &|o| micros(o, 0.5)),
            mean(&on, &|o| micros(o, 0.99)),
            off_rate,
            mean(&off, &|o| micros(o, 0.5)),
            mean(&off, &|o| micros(o, 0.99)),
            on_rate / off_rate,
            lowest,
            highest,
        );
    }
    metrics_on.stop().await;
    metrics_off.stop().await;

    vexil.stop().await;
    ceiling.stop().await;

    ofrep_against_bulk(&args, &scratch).await;
}

// ------------------------------------------------ OFREP bulk vs BulkEvaluate

/// Flags on the OFREP comparison's server: 22, as in the comparison with
/// Unleash Edge's `/api/frontend`; 17 boolean rollouts and 5 typed flags
/// with a 5-clause rule.
const OFREP_BOOLEAN_FLAGS: usize = 17;
const OFREP_TYPED_FLAGS: usize = 5;

/// The same question both ways: every flag on the server for one user with
/// the 5-attribute context, as OFREP's bulk evaluation (JSON over
/// HTTP/1.1) and as gRPC BulkEvaluate naming the flags. The server runs in
/// its own process, so its CPU time per answer is measured apart from this
/// generator's.
async fn ofrep_against_bulk(args: &Args, scratch: &scratch::Scratch) {
    let ofrep = process::free_port();
    let (server, _) = process::ServerProcess::start(
        &[
            ("DATABASE_URL", scratch.sqlite_url("ofrep.db")),
            ("FF_ENABLE_METRICS", "true".into()),
            ("VEXIL_OFREP_LISTEN", ofrep.to_string()),
        ],
        "",
    )
    .await;
    seed(
        &mut FlagServiceClient::new(server.channel()),
        OFREP_BOOLEAN_FLAGS,
        OFREP_TYPED_FLAGS,
    )
    .await;
    let names: Vec<String> = (0..OFREP_BOOLEAN_FLAGS)
        .map(flag_name)
        .chain((0..OFREP_TYPED_FLAGS).map(typed_name))
        .collect();
    let answer = http1::Connection::open(ofrep)
        .await
        .post_json(OFREP_BULK_PATH, &ofrep_body("user-1"))
        .await;
    let answer: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(answer["flags"].as_array().map(Vec::len), Some(names.len()));

    println!();
    println!(
        "{:<22} {:>4} | {:>9} {:>8} {:>8} {:>10} | {:>9}",
        "all 22 flags, one user", "C", "answers/s", "p50µs", "p99µs", "server µs", "OFREP/gRPC"
    );
    for &concurrency in &args.concurrency {
        let bulk = measure(&server, args, concurrency, |seed, warm_until, until| {
            let caller = BulkCaller {
                client: EvaluationServiceClient::new(server.channel()),
                flag_names: names.clone(),
            };
            tokio::spawn(timed(caller, seed, warm_until, until))
        })
        .await;
        let ofrep = measure(&server, args, concurrency, |seed, warm_until, until| {
            tokio::spawn(async move {
                let caller = OfrepCaller(http1::Connection::open(ofrep).await);
                timed(caller, seed, warm_until, until).await
            })
        })
        .await;
        for (label, run) in [
            ("gRPC BulkEvaluate", &bulk),
            ("OFREP bulk (HTTP/1.1)", &ofrep),
        ] {
            println!(
                "{:<22} {:>4} | {:>9.0} {:>8.1} {:>8.1} {:>10.1} | {:>9.2}",
                label,
                concurrency,
                rate(&run.outcome),
                micros(&run.outcome, 0.5),
                micros(&run.outcome, 0.99),
                run.server_cpu_micros(),
                run.server_cpu_micros() / bulk.server_cpu_micros(),
            );
        }
    }
    println!(
        "server µs = the server process's CPU time (every thread, user and system) per answer; \
         OFREP/gRPC = its ratio to BulkEvaluate's (goal: ≤ 2)"
    );
}

const OFREP_BULK_PATH: &str = "/ofrep/v1/evaluate/flags";

/// OFREP's request: the targeting key, the environment and the same five
/// attributes as [`context`].
fn ofrep_body(user_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"context": {
        "targetingKey": user_id, "environment": "production",
        "plan": "enterprise", "email": "ann@example.com", "seats": 25,
        "app_version": "2.10.1", "country": "DE"
    }}))
    .expect("JSON")
}

struct CpuRun {
    outcome: Outcome,
    server_cpu: Duration,
}

impl CpuRun {
    fn server_cpu_micros(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.outcome.requests.max(1) as f64
    }
}

type WorkerResult = (Histogram<u64>, u64);

/// Runs `concurrency` workers from `spawn` and reads the server's CPU time
/// over the measured part (after the warm-up).
async fn measure(
    server: &process::ServerProcess,
    args: &Args,
    concurrency: usize,
    spawn: impl Fn(u64, Instant, Instant) -> tokio::task::JoinHandle<WorkerResult>,
) -> CpuRun {
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let until = warm_until + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| spawn(i as u64 + 1, warm_until, until))
        .collect();
    tokio::time::sleep_until(warm_until.into()).await;
    let cpu_before = server.cpu_time();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut requests = 0;
    for worker in workers {
        let (histogram, count) = worker.await.expect("worker");
        latency.add(histogram).expect("merge");
        requests += count;
    }
    CpuRun {
        server_cpu: server.cpu_time().saturating_sub(cpu_before),
        outcome: Outcome {
            latency,
            requests,
            elapsed: until - warm_until,
            server_ms: 0.0,
        },
    }
}

/// One request in flight at a time, over one connection.
trait Caller {
    async fn call(&mut self, user_id: String);
}

/// gRPC BulkEvaluate naming every flag.
struct BulkCaller {
    client: EvaluationServiceClient<Channel>,
    flag_names: Vec<String>,
}

impl Caller for BulkCaller {
    async fn call(&mut self, user_id: String) {
        let request = pb::BulkEvaluateRequest {
            flag_names: self.flag_names.clone(),
            user_id,
            environment: "production".into(),
            context: Some(context()),
        };
        let answer = self
            .client
            .bulk_evaluate(request)
            .await
            .expect("bulk evaluate");
        assert_eq!(answer.into_inner().results.len(), self.flag_names.len());
    }
}

/// OFREP's bulk evaluation over a keep-alive HTTP/1.1 connection.
struct OfrepCaller(http1::Connection);

impl Caller for OfrepCaller {
    async fn call(&mut self, user_id: String) {
        let answer = self
            .0
            .post_json(OFREP_BULK_PATH, &ofrep_body(&user_id))
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

/// Calls `caller` (with a varied user id) until `until`, recording the
/// latency of the calls started after `warm_until`.
async fn timed(
    mut caller: impl Caller,
    seed: u64,
    warm_until: Instant,
    until: Instant,
) -> WorkerResult {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut random = Lcg(seed);
    let mut requests = 0;
    loop {
        let started = Instant::now();
        if started >= until {
            return (latency, requests);
        }
        caller
            .call(format!("user-{}", random.next() % 1_000_000))
            .await;
        if started >= warm_until {
            latency
                .record((started.elapsed().as_nanos() as u64).max(1))
                .expect("record");
            requests += 1;
        }
    }
}
