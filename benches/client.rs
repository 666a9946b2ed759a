//! The Rust client's local evaluation (criterion): `is_enabled` for each
//! decisive rule against a copy kept current by Watch from a real server
//! (in this process), first quiet, then while a background task changes
//! another flag through the server as fast as it can up to 1,000 changes/s
//! (on 2 cores, the server's writes compete with the benchmark). Prints heap allocations per evaluation
//! and the change rate achieved, then the timings.
//!
//! Run: `cargo bench --bench client`

#[path = "support/scratch.rs"]
mod scratch;

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::net::TcpListener;
use vexil::grpc::pb::{self, flag_service_client::FlagServiceClient};
use vexil_client::Client;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// (name, flag, user, environment): each case decided by a different rule.
fn cases() -> Vec<(&'static str, pb::Flag, &'static str, &'static str)> {
    let on = |name: &str, percentage: f64| pb::Flag {
        name: name.into(),
        enabled: true,
        percentage,
        ..pb::Flag::default()
    };
    let hours = |h: i64| {
        Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + h * 3600,
            nanos: 0,
        })
    };
    let ids = |prefix: &str| {
        (0..10_000)
            .map(|i| format!("{prefix}-{i}"))
            .collect::<Vec<_>>()
    };
    vec![
        ("missing", on("bench.unused", 0.0), "user-1", "production"),
        (
            "disabled",
            pb::Flag {
                enabled: false,
                ..on("bench.disabled", 100.0)
            },
            "user-1",
            "production",
        ),
        (
            "time window",
            pb::Flag {
                starts_at: hours(-1),
                expires_at: hours(1),
                ..on("bench.window", 100.0)
            },
            "user-1",
            "production",
        ),
        (
            "environment not allowed",
            pb::Flag {
                environments: vec!["production".into()],
                ..on("bench.envs", 100.0)
            },
            "user-1",
            "staging",
        ),
        (
            "blacklisted (10k ids)",
            pb::Flag {
                blacklist: ids("banned"),
                ..on("bench.blacklist", 100.0)
            },
            "banned-77",
            "production",
        ),
        (
            "whitelisted (10k ids)",
            pb::Flag {
                whitelist: ids("vip"),
                ..on("bench.whitelist", 0.0)
            },
            "vip-77",
            "production",
        ),
        (
            "environment override",
            pb::Flag {
                environment_overrides: [("staging".to_string(), true)].into(),
                ..on("bench.override", 0.0)
            },
            "user-1",
            "staging",
        ),
        (
            "percentage rollout",
            on("bench.rollout", 50.0),
            "user-12345",
            "production",
        ),
    ]
}

/// A string flag splitting everyone 50/50 between two variants: the
/// typed counterpart of the 50% rollout.
fn typed_split() -> pb::Flag {
    let variant = |name: &str| pb::Variant {
        name: name.into(),
        value: Some(pb::TypedValue {
            value: Some(pb::typed_value::Value::StringValue(name.to_uppercase())),
        }),
        description: String::new(),
    };
    let weight = |name: &str| pb::WeightedVariant {
        variant: name.into(),
        weight: 5_000,
    };
    pb::Flag {
        name: "bench.typed".into(),
        enabled: true,
        r#type: pb::FlagType::String.into(),
        variants: vec![variant("a"), variant("b")],
        fallthrough: Some(pb::Serve {
            kind: Some(pb::serve::Kind::Split(pb::Split {
                weights: vec![weight("a"), weight("b")],
                ..pb::Split::default()
            })),
        }),
        ..pb::Flag::default()
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let scratch = scratch::Scratch::create("client");
    let config = vexil::Config {
        sqlite_synchronous: vexil::config::SqliteSynchronous::Normal,
        ..vexil::Config::with_database(scratch.sqlite_url("bench.db")).without_caller_limits()
    };
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    runtime.spawn(vexil::run(config, listener, std::future::pending()));
    let endpoint = format!("http://{address}");
    let cases = cases();
    let (client, mut flags) = runtime.block_on(async {
        let mut flags = loop {
            match FlagServiceClient::connect(endpoint.clone()).await {
                Ok(flags) => break flags,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        for (name, flag, _, _) in &cases {
            if *name != "missing" {
                flags
                    .create_flag(pb::CreateFlagRequest {
                        flag: Some(flag.clone()),
                        reason: String::new(),
                    })
                    .await
                    .expect("create");
            }
        }
        flags
            .create_flag(pb::CreateFlagRequest {
                flag: Some(typed_split()),
                reason: String::new(),
            })
            .await
            .expect("create");
        flags
            .create_flag(pb::CreateFlagRequest {
                flag: Some(pb::Flag {
                    name: "bench.churn".into(),
                    enabled: true,
                    ..pb::Flag::default()
                }),
                reason: String::new(),
            })
            .await
            .expect("create");
        let client = Client::builder()
            .endpoints([endpoint.clone()])
            .build()
            .connect()
            .await
            .expect("connect");
        (client, flags)
    });
    let names: Vec<String> = cases
        .iter()
        .map(|(case, flag, _, _)| {
            if *case == "missing" {
                "bench.missing".to_string()
            } else {
                flag.name.clone()
            }
        })
        .collect();

    // Allocations per evaluation, before any timing.
    for ((case, _, user, environment), name) in cases.iter().zip(&names) {
        let region = Region::new(GLOBAL);
        for _ in 0..10_000 {
            black_box(client.is_enabled(black_box(name), black_box(user), black_box(environment)));
        }
        let stats = region.change();
        println!(
            "{case}: {} allocations per 10,000 evaluations",
            stats.allocations
        );
    }

    let mut criterion = Criterion::default().configure_from_args();
    // First with nothing else running, then while the copy changes.
    let mut quiet = criterion.benchmark_group("client is_enabled, quiet");
    for ((case, _, user, environment), name) in cases.iter().zip(&names) {
        quiet.bench_function(*case, |b| {
            b.iter(|| client.is_enabled(black_box(name), black_box(user), black_box(environment)))
        });
    }
    // A typed flag's 50/50 split, read without allocating, against the
    // boolean 50% rollout above (the goal: at most 1.2 times).
    quiet.bench_function("typed split (with_value)", |b| {
        b.iter(|| {
            client.with_value(
                black_box("bench.typed"),
                black_box("user-12345"),
                black_box("production"),
                &vexil_engine::NoAttributes,
                |variant, _| variant.map(str::len),
            )
        })
    });
    quiet.finish();

    // Changes through the server, at most 1,000/s, while the timings run.
    let running = Arc::new(AtomicBool::new(true));
    let applied = Arc::new(AtomicU64::new(0));
    let churn = {
        let (running, applied) = (running.clone(), applied.clone());
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                ticks.tick().await;
                i += 1;
                let update = pb::UpdateFlagRequest {
                    flag: Some(pb::Flag {
                        name: "bench.churn".into(),
                        percentage: (i % 100) as f64,
                        ..pb::Flag::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["percentage".into()],
                    }),
                    reason: "bench".into(),
                    expected_revision: None,
                };
                if flags.update_flag(update).await.is_ok() {
                    applied.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let started = Instant::now();
    let revision_before = client.revision();
    let mut group = criterion.benchmark_group("client is_enabled, 1,000 changes/s");
    for ((case, _, user, environment), name) in cases.iter().zip(&names) {
        group.bench_function(*case, |b| {
            b.iter(|| client.is_enabled(black_box(name), black_box(user), black_box(environment)))
        });
    }
    group.finish();
    running.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let _ = runtime.block_on(churn);
    println!(
        "background: {} changes through the server in {:.1} s ({:.0}/s); the client applied {} revisions meanwhile",
        applied.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        applied.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        client.revision() - revision_before,
    );
    criterion.final_summary();
    drop(client);
}
