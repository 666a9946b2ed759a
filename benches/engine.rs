//! Engine benchmarks (criterion): one evaluation per decisive rule, bulk
//! evaluation of 10, 100 and 1,000 flags, and bucketing alone. Before the
//! timings it prints heap allocations per evaluation, counted by an
//! instrumented global allocator.
//!
//! Run: `cargo bench --bench engine`

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use vexil::cache::FlagCache;
use vexil::domain::{Attributes, EvalContext, Flag, FlagName, FlagSpec, Gathered, Stamp};
use vexil::engine::{Reason, bucket, evaluate};
use vexil::metrics::{Observation, Recorder};
use vexil::service::Evaluator;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LIST_IDS: usize = 10_000;

/// The evaluations' clock: built once, since building a time costs as
/// much as a short evaluation (callers read the clock once per request).
fn now() -> DateTime<Utc> {
    static NOW: std::sync::LazyLock<DateTime<Utc>> =
        std::sync::LazyLock::new(|| DateTime::UNIX_EPOCH + TimeDelta::days(20_000));
    *NOW
}

fn flag(name: &str, spec: FlagSpec) -> Flag {
    Flag::new(
        FlagName::parse("name", name).expect("valid name"),
        spec,
        Stamp {
            revision: 1,
            created_at: now(),
            updated_at: now(),
            created_by: "bench".into(),
            updated_by: "bench".into(),
        },
    )
}

fn ids(prefix: &str) -> vexil::domain::UserSet {
    (0..LIST_IDS).map(|i| format!("{prefix}-{i}")).collect()
}

/// A realistic enabled flag: environments, a 10,000-id whitelist and
/// blacklist, an override for staging, a 50% rollout.
fn rich(name: &str) -> Flag {
    flag(
        name,
        FlagSpec {
            enabled: true,
            percentage: 50.0,
            whitelist: ids("vip"),
            blacklist: ids("banned"),
            environments: vec!["production".into(), "staging".into()],
            environment_overrides: [("staging".to_string(), true)].into(),
            ..FlagSpec::default()
        },
    )
}

/// A user inside (or outside) the 50% rollout of `flag`.
fn rollout_user(flag: &str, inside: bool) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|user| bucket::in_rollout(flag, user, 50.0) == inside)
        .expect("some user")
}

struct Case {
    name: &'static str,
    flag: Option<Flag>,
    user: String,
    environment: &'static str,
    /// The context's attributes (typed cases only).
    attributes: serde_json::Map<String, serde_json::Value>,
}

/// A typed flag from its JSON definition (as stored).
fn typed(name: &str, json: serde_json::Value) -> Flag {
    let spec: FlagSpec = serde_json::from_value(json).expect("a spec");
    spec.validate("flag").expect("valid");
    flag(name, spec)
}

/// A string flag whose first rule has 5 clauses (set, suffix, number,
/// version, presence), all holding for the context below.
fn five_clauses() -> Flag {
    typed(
        "bench.rule5",
        serde_json::json!({
            "enabled": true, "type": "string",
            "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}}],
            "rules": [{"clauses": [
                {"attribute": "plan", "op": "in", "values": ["enterprise", "team", "business"]},
                {"attribute": "email", "op": "ends_with", "values": ["@example.com"]},
                {"attribute": "seats", "op": "gte", "values": [10]},
                {"attribute": "app_version", "op": "semver_gte", "values": ["2.3.0"]},
                {"attribute": "country", "op": "exists"}
            ], "serve": {"variant": "b"}}],
            "fallthrough": {"variant": "a"}
        }),
    )
}

/// A string flag whose fallthrough splits users three ways.
fn three_way() -> Flag {
    typed(
        "bench.split3",
        serde_json::json!({
            "enabled": true, "type": "string",
            "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}},
                         {"name": "c", "value": {"string": "C"}}],
            "fallthrough": {"split": {"weights": [{"variant": "a", "weight": 3334},
                {"variant": "b", "weight": 3333}, {"variant": "c", "weight": 3333}]}}
        }),
    )
}

/// A context held in a hash map: the engine's cost with cheap lookups,
/// beside the ordered maps (`serde_json::Map`, protobuf `Struct`) that
/// requests arrive in.
struct Hashed(ahash::AHashMap<String, serde_json::Value>);

impl vexil::domain::Attributes for Hashed {
    fn get(&self, name: &str) -> Option<vexil::engine::Attr<'_>> {
        self.0.get(name).and_then(vexil::engine::json_attr)
    }
}

fn bench_context_maps(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate_context");
    let flag = five_clauses();
    let ordered = five_attributes();
    let hashed = Hashed(ordered.clone().into_iter().collect());
    let proto = vexil_proto::convert::struct_to_pb(&ordered);
    // Read in place, per clause, as a single-flag caller's context is.
    for (name, attributes) in [
        (
            "rule_5_clauses/json_map",
            &ordered as &dyn vexil::domain::Attributes,
        ),
        ("rule_5_clauses/protobuf_struct", &proto),
        ("rule_5_clauses/hash_map", &hashed),
    ] {
        let ctx = EvalContext {
            attributes,
            ..EvalContext::bare("user-1", "production")
        };
        group.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(Some(&flag)), black_box(&ctx), now()))
        });
    }
    // Gathered once beforehand, as the server's evaluator does per request.
    Gathered::gather(&ordered, |gathered| {
        let ctx = EvalContext {
            attributes: gathered,
            ..EvalContext::bare("user-1", "production")
        };
        group.bench_function("rule_5_clauses/gathered", |b| {
            b.iter(|| evaluate(black_box(Some(&flag)), black_box(&ctx), now()))
        });
    });
    // The gathering alone (and one lookup).
    for (name, attributes) in [
        (
            "gather_5_attributes/json_map",
            &ordered as &dyn vexil::domain::Attributes,
        ),
        ("gather_5_attributes/protobuf_struct", &proto),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                Gathered::gather(black_box(attributes), |gathered| {
                    black_box(gathered).get("plan").is_some()
                })
            })
        });
    }
    group.finish();
}

/// Five attributes, as an Evaluate request's context would hold them.
fn five_attributes() -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({
        "plan": "enterprise", "email": "ann@example.com", "seats": 25,
        "app_version": "2.10.1", "country": "DE"
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn cases() -> Vec<Case> {
    let disabled = flag(
        "bench.disabled",
        FlagSpec {
            whitelist: ids("vip"),
            ..FlagSpec::default()
        },
    );
    vec![
        Case {
            name: "not_found",
            flag: None,
            user: "user-1".into(),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "disabled",
            flag: Some(disabled),
            user: "vip-5000".into(),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "whitelist_hit_10k",
            flag: Some(rich("bench.rich")),
            user: "vip-5000".into(),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "blacklist_hit_10k",
            flag: Some(rich("bench.rich")),
            user: "banned-5000".into(),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "environment_override",
            flag: Some(rich("bench.rich")),
            user: "user-1".into(),
            environment: "staging",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "rollout_in",
            flag: Some(rich("bench.rich")),
            user: rollout_user("bench.rich", true),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "rollout_out",
            flag: Some(rich("bench.rich")),
            user: rollout_user("bench.rich", false),
            environment: "production",
            attributes: serde_json::Map::new(),
        },
        Case {
            name: "typed_rule_5_clauses",
            flag: Some(five_clauses()),
            user: "user-1".into(),
            environment: "production",
            attributes: five_attributes(),
        },
        Case {
            name: "typed_split_3_way",
            flag: Some(three_way()),
            user: "user-1".into(),
            environment: "production",
            attributes: five_attributes(),
        },
    ]
}

/// A cache of `count` flags and their names.
fn bulk_setup(count: usize) -> (Evaluator, Vec<String>) {
    let cache = Arc::new(FlagCache::new());
    let names: Vec<String> = (0..count).map(|i| format!("bench.bulk.{i:04}")).collect();
    let lean = FlagSpec {
        enabled: true,
        percentage: 50.0,
        environments: vec!["production".into(), "staging".into()],
        environment_overrides: [("staging".to_string(), true)].into(),
        ..FlagSpec::default()
    };
    for name in &names {
        cache.upsert(Arc::new(flag(name, lean.clone())));
    }
    (Evaluator::new(cache, None), names)
}

/// A case's context as the server's evaluator hands it to the engine:
/// its attributes gathered (once per request).
fn context_of<'a>(case: &'a Case, gathered: &'a Gathered<'a>) -> EvalContext<'a> {
    EvalContext {
        attributes: gathered,
        ..EvalContext::bare(&case.user, case.environment)
    }
}

fn allocations_per_call(calls: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm: one-time lazy allocations are not per call
    let region = Region::new(GLOBAL);
    for _ in 0..calls {
        f();
    }
    region.change().allocations as f64 / calls as f64
}

fn report_allocations() {
    println!("heap allocations per call:");
    for case in cases() {
        let per_call = Gathered::gather(&case.attributes, |gathered| {
            let ctx = context_of(&case, gathered);
            allocations_per_call(10_000, || {
                black_box(evaluate(black_box(case.flag.as_ref()), &ctx, now()));
            })
        });
        println!("  engine::evaluate {:<22} {per_call:.2}", case.name);
    }
    let ctx = EvalContext::bare("user-1", "production");
    let (evaluator, names) = bulk_setup(1);
    let per_call = allocations_per_call(10_000, || {
        black_box(evaluator.evaluate(&names[0], &ctx, now()).expect("valid"));
    });
    println!("  Evaluator::evaluate (cache lookup + engine)  {per_call:.2}");
    for count in [10, 100, 1000] {
        let (evaluator, names) = bulk_setup(count);
        let mut inputs: Vec<Vec<String>> = (0..100).map(|_| names.clone()).collect();
        let per_call = allocations_per_call(99, || {
            let input = inputs.pop().expect("prepared input");
            black_box(evaluator.bulk_evaluate(input, &ctx, now()).expect("valid"));
        });
        println!(
            "  Evaluator::bulk_evaluate({count}) {per_call:.2} (the result Vec; names move from the request)"
        );
    }
}

fn bench_rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for case in cases() {
        Gathered::gather(&case.attributes, |gathered| {
            let ctx = context_of(&case, gathered);
            group.bench_function(case.name, |b| {
                b.iter(|| evaluate(black_box(case.flag.as_ref()), black_box(&ctx), now()))
            });
        });
    }
    group.finish();
}

fn bench_bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk_evaluate");
    let ctx = EvalContext::bare("user-1", "production");
    for count in [10, 100, 1000] {
        let (evaluator, names) = bulk_setup(count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &names, |b, names| {
            b.iter_batched(
                || names.clone(),
                |input| evaluator.bulk_evaluate(input, &ctx, now()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The load benchmark's data: 1,000 flags with 100-id whitelists; each call
/// evaluates 100 consecutive flags from a moving start for a new user, so
/// the working set is the whole cache, as in the server.
fn bench_bulk_realistic(c: &mut Criterion) {
    const FLAGS: usize = 1000;
    let cache = Arc::new(FlagCache::new());
    let names: Vec<String> = (0..FLAGS).map(|i| format!("bench.flag.{i:05}")).collect();
    for (i, name) in names.iter().enumerate() {
        let spec = FlagSpec {
            enabled: true,
            percentage: (i * 7 % 100) as f64,
            whitelist: (0..100).map(|u| format!("vip-{u}")).collect(),
            environments: vec!["production".into(), "staging".into()],
            environment_overrides: [("staging".to_string(), true)].into(),
            tags: vec!["bench".into()],
            ..FlagSpec::default()
        };
        cache.upsert(Arc::new(flag(name, spec)));
    }
    let evaluator = Evaluator::new(cache, None);
    let users: Vec<String> = (0..4096)
        .map(|i| format!("user-{}", i * 7919 % 1_000_000))
        .collect();
    let mut call = 0usize;
    let mut group = c.benchmark_group("bulk_evaluate_1000_rich_flags");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100", |b| {
        b.iter_batched(
            || {
                call += 1;
                let start = call * 37 % FLAGS;
                let input: Vec<String> = (0..100)
                    .map(|i| names[(start + i) % FLAGS].clone())
                    .collect();
                (input, users[call % users.len()].clone())
            },
            |(input, user)| {
                let ctx = EvalContext::bare(&user, "production");
                evaluator.bulk_evaluate(input, &ctx, now())
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_bucket(c: &mut Criterion) {
    c.bench_function("hll_position", |b| {
        b.iter(|| vexil::metrics::hll::position(black_box(b"user-123456")))
    });
    c.bench_function("bucket", |b| {
        b.iter(|| {
            bucket::bucket(
                black_box("ui.dashboard.new_layout"),
                black_box("user-123456"),
            )
        })
    });
}

/// The hot path's metrics: recording one evaluation into a flag's
/// counters (relaxed atomics and the distinct-user sketch), and a whole
/// evaluation with metrics off and on (on adds two clock reads).
fn bench_metrics(c: &mut Criterion) {
    let recorder = Recorder::new();
    let stats = recorder.flag("bench.metrics");
    let users: Vec<String> = (0..4096).map(|i| format!("user-{i}")).collect();
    let at = now().timestamp();
    let mut group = c.benchmark_group("metrics");
    let mut i = 0usize;
    group.bench_function("record", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            recorder.record(
                &stats,
                black_box(&Observation {
                    environment: "production",
                    user_id: &users[i % users.len()],
                    reason: Reason::PercentageRollout,
                    enabled: true,
                    variant: Some((0, "on")),
                    latency_ns: None,
                    at,
                }),
                || false,
            )
        })
    });
    // Without a user id: the counters alone, no distinct-user sketch.
    group.bench_function("record_anonymous", |b| {
        b.iter(|| {
            recorder.record(
                &stats,
                black_box(&Observation {
                    environment: "production",
                    user_id: "",
                    reason: Reason::PercentageRollout,
                    enabled: true,
                    variant: Some((0, "on")),
                    latency_ns: None,
                    at,
                }),
                || false,
            )
        })
    });
    let cache = Arc::new(FlagCache::new());
    cache.upsert(Arc::new(flag(
        "bench.metrics",
        FlagSpec {
            enabled: true,
            percentage: 50.0,
            ..FlagSpec::default()
        },
    )));
    for (name, metrics) in [
        ("evaluate_off", None),
        ("evaluate_on", Some(Arc::new(Recorder::new()))),
    ] {
        let evaluator = Evaluator::new(cache.clone(), metrics);
        group.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let ctx = EvalContext::bare(&users[i % users.len()], "production");
                evaluator.evaluate(black_box("bench.metrics"), &ctx, now())
            })
        });
    }
    group.finish();
}

fn main() {
    report_allocations();
    let mut criterion = Criterion::default().configure_from_args();
    bench_rules(&mut criterion);
    bench_context_maps(&mut criterion);
    bench_bulk(&mut criterion);
    bench_bulk_realistic(&mut criterion);
    bench_bucket(&mut criterion);
    bench_metrics(&mut criterion);
    criterion.final_summary();
}
