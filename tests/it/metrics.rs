//! Evaluation metrics: counts written by every replica add up exactly in
//! GetMetrics (per reason and environment), distinct users are estimated
//! within 3%, the Redis layout agrees, a failed flush is retried and counted
//! once, FF_ENABLE_METRICS=false writes nothing, unknown names are listed,
//! ListFlags finds flags not evaluated since a time, and old hours go.

use std::collections::HashMap;
use std::time::Duration;

use fred::interfaces::{ClientLike, LuaInterface};
use sea_orm::{ConnectionTrait, Statement};
use vexil::grpc::pb::{self, Reason};
use vexil::metrics::hll::Sketch;

use crate::common::proxy::Proxy;
use crate::common::{Backend, TestApp, TestDatabase, eventually, redis_url, unique};

crate::backend_tests!(
    one_replica_counts_exactly,
    failed_flushes_count_once,
    disabled_metrics_write_nothing,
    old_hours_are_deleted,
    odd_environments_do_not_block_flushes,
    unchanged_users_keep_their_stored_sketch,
    unknown_names_add_this_replicas_older_hours,
    a_few_evaluations_have_latency_percentiles,
    invented_names_cannot_crowd_out_real_ones
);

const ENVIRONMENTS: [&str; 2] = ["prod", "staging"];
const FLUSH: Duration = Duration::from_millis(200);

fn fast_flush(config: vexil::Config) -> vexil::Config {
    vexil::Config {
        metrics_flush_interval: FLUSH,
        ..config
    }
}

/// Expected figures per (flag, environment): reason → count, and enabled.
type Expected = HashMap<(String, String), (HashMap<i32, u64>, u64)>;

/// A rollout flag and a whitelist flag, named after `prefix`.
async fn create_flags(app: &TestApp, prefix: &str) -> (String, String) {
    let rollout = format!("{prefix}.rollout");
    let listed = format!("{prefix}.listed");
    app.create_flag(pb::Flag {
        name: rollout.clone(),
        enabled: true,
        percentage: 40.0,
        ..pb::Flag::default()
    })
    .await;
    app.create_flag(pb::Flag {
        name: listed.clone(),
        enabled: true,
        whitelist: (0..50).map(|i| format!("user-{i}")).collect(),
        environments: vec!["prod".into()],
        ..pb::Flag::default()
    })
    .await;
    (rollout, listed)
}

/// Evaluates `flags` for users `users` over the apps in turn, recording
/// every answer in `expected`.
async fn evaluate_all(
    apps: &[&TestApp],
    flags: &[String],
    users: std::ops::Range<usize>,
    expected: &mut Expected,
) {
    for user in users {
        let app = apps[user % apps.len()];
        let environment = ENVIRONMENTS[user % ENVIRONMENTS.len()];
        let answers = app
            .evaluation
            .clone()
            .bulk_evaluate(pb::BulkEvaluateRequest {
                flag_names: flags.to_vec(),
                user_id: format!("user-{user}"),
                environment: environment.into(),
                context: None,
            })
            .await
            .expect("bulk evaluate")
            .into_inner();
        for answer in answers.results {
            let (reasons, enabled) = expected
                .entry((answer.flag_name.clone(), environment.to_string()))
                .or_default();
            *reasons.entry(answer.reason).or_default() += 1;
            *enabled += u64::from(answer.enabled);
        }
    }
}

async fn metrics(app: &TestApp, flag: &str, environment: Option<&str>) -> pb::GetMetricsResponse {
    app.flags
        .clone()
        .get_metrics(pb::GetMetricsRequest {
            flag_name: flag.into(),
            // Two hours: a run that crosses an hour still sees everything.
            hours: 2,
            environment: environment.map(Into::into),
        })
        .await
        .expect("get metrics")
        .into_inner()
}

/// Whether `app`'s GetMetrics shows exactly `expected` for `flag`.
async fn shows_exactly(app: &TestApp, flag: &str, expected: &Expected) -> bool {
    for environment in ENVIRONMENTS {
        let Some((reasons, enabled)) = expected.get(&(flag.to_string(), environment.to_string()))
        else {
            continue;
        };
        let report = metrics(app, flag, Some(environment)).await;
        let totals = report.totals.unwrap_or_default();
        let got: HashMap<i32, u64> = totals.reasons.iter().map(|r| (r.reason, r.count)).collect();
        if &got != reasons || totals.enabled != *enabled {
            return false;
        }
        let hourly: u64 = report
            .hours
            .iter()
            .map(|hour| hour.stats.clone().unwrap_or_default().evaluations)
            .sum();
        if hourly != totals.evaluations {
            return false;
        }
    }
    true
}

fn assert_users_within(report: &pb::GetMetricsResponse, users: u64) {
    let estimate = report.totals.clone().unwrap_or_default().distinct_users;
    let error = (estimate as f64 - users as f64).abs() / users as f64;
    assert!(
        error <= 0.03,
        "distinct users estimated as {estimate} for {users}"
    );
}

async fn one_replica_counts_exactly(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(fast_flush(crate::common::config(&db.url))).await;
    let prefix = unique("metrics-");
    let (rollout, listed) = create_flags(&app, &prefix).await;
    let never = format!("{prefix}.never");
    app.create_flag(pb::Flag {
        name: never.clone(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let typo = format!("{prefix}.rolout");
    let flags = vec![rollout.clone(), listed.clone(), typo.clone()];
    let mut expected = Expected::new();
    evaluate_all(&[&app], &flags, 0..2_000, &mut expected).await;

    for flag in [&rollout, &listed] {
        assert!(
            shows_exactly(&app, flag, &expected).await,
            "{flag}: live figures"
        );
    }
    // After a flush, a second server on the same database (its own
    // counters empty) reads the same from the store.
    tokio::time::sleep(FLUSH * 3).await;
    app.stop().await;
    let reader = TestApp::start(&db.url).await;
    for flag in [&rollout, &listed] {
        assert!(
            shows_exactly(&reader, flag, &expected).await,
            "{flag}: stored figures"
        );
    }
    let report = metrics(&reader, &rollout, None).await;
    assert!(report.flag_exists);
    // By variant too, stored and read back: a boolean flag serves on or off.
    let totals = report.totals.clone().unwrap_or_default();
    let by_variant: std::collections::HashMap<&str, u64> = totals
        .variants
        .iter()
        .map(|count| (count.variant.as_str(), count.count))
        .collect();
    assert_eq!(
        by_variant,
        [("on", totals.enabled), ("off", totals.disabled)]
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect(),
        "{totals:?}"
    );
    assert_eq!(report.hours.len(), 2);
    assert_eq!(report.environments.len(), 2);
    assert!(report.last_evaluated_at.is_some());
    let latency = report
        .totals
        .clone()
        .unwrap_or_default()
        .latency
        .unwrap_or_default();
    // One evaluation in 8 is timed.
    assert!(
        latency.count >= 2_000 / 8 / 2 && latency.count <= 2_000,
        "{latency:?}"
    );
    assert!(
        latency.p50_ns > 0 && latency.p99_ns >= latency.p50_ns,
        "{latency:?}"
    );
    assert_users_within(&report, 2_000);

    // The typo is listed with its count and has metrics, though no flag.
    let unknown = reader
        .flags
        .clone()
        .list_unknown_flags(pb::ListUnknownFlagsRequest { hours: 2 })
        .await
        .expect("list unknown")
        .into_inner();
    assert_eq!(
        unknown.flags,
        vec![pb::UnknownFlag {
            name: typo.clone(),
            evaluations: 2_000
        }]
    );
    let typo_report = metrics(&reader, &typo, None).await;
    assert!(!typo_report.flag_exists);
    assert_eq!(typo_report.totals.unwrap_or_default().evaluations, 2_000);
    let missing = reader
        .flags
        .clone()
        .get_metrics(pb::GetMetricsRequest {
            flag_name: format!("{prefix}.nothing"),
            ..pb::GetMetricsRequest::default()
        })
        .await;
    assert_eq!(
        missing.expect_err("no flag, no evaluations").code(),
        tonic::Code::NotFound
    );
    let too_long = reader
        .flags
        .clone()
        .get_metrics(pb::GetMetricsRequest {
            flag_name: rollout.clone(),
            hours: 24 * 90 + 1,
            ..pb::GetMetricsRequest::default()
        })
        .await
        .expect_err("hours past 90 days");
    assert_eq!(too_long.code(), tonic::Code::InvalidArgument);
    assert!(
        too_long.message().contains("hours"),
        "{}",
        too_long.message()
    );

    // "Which flags can be removed?": only the never-evaluated one.
    let unused = reader
        .flags
        .clone()
        .list_flags(pb::ListFlagsRequest {
            not_evaluated_since: Some(prost_types::Timestamp {
                seconds: before.timestamp(),
                nanos: 0,
            }),
            ..pb::ListFlagsRequest::default()
        })
        .await
        .expect("list flags")
        .into_inner();
    let names: Vec<&str> = unused.flags.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec![never.as_str()]);
    assert_eq!(unused.total, 1);
    reader.stop().await;
    db.remove().await;
}

/// Two replicas on one PostgreSQL and Redis: every evaluation is counted
/// once, whichever replica answered and whichever is asked; Redis holds the
/// reference's hashes and a users HyperLogLog that counts as GetMetrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_add_up_in_the_store_and_in_redis() {
    let (Some(db), Some(redis)) = (TestDatabase::create(Backend::Postgres).await, redis_url())
    else {
        return;
    };
    let channel = unique("vexil-test:changes:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let start = async || {
        TestApp::start_with(fast_flush(vexil::Config {
            redis_url: Some(redis.clone()),
            redis_prefix: channel.clone(),
            redis_max_connections: 2,
            ..crate::common::config(&db.url)
        }))
        .await
    };
    let (a, b) = (start().await, start().await);
    let prefix = unique("metrics-");
    let (rollout, listed) = create_flags(&a, &prefix).await;
    eventually(Duration::from_secs(10), "B has the flags", async || {
        b.evaluate(&listed, "user-1", "prod").await.1 == Reason::Whitelisted
    })
    .await;
    // Those probes count too: start from B's figures after them.
    let flags = vec![rollout.clone(), listed.clone()];
    let mut expected = Expected::new();
    expected.insert((listed.clone(), "prod".into()), (HashMap::new(), 0));
    let probes = metrics(&b, &listed, Some("prod"))
        .await
        .totals
        .unwrap_or_default();
    let (reasons, enabled) = expected
        .get_mut(&(listed.clone(), "prod".into()))
        .expect("entry");
    for r in &probes.reasons {
        reasons.insert(r.reason, r.count);
    }
    *enabled = probes.enabled;
    evaluate_all(&[&a, &b], &flags, 0..10_000, &mut expected).await;

    for app in [&a, &b] {
        eventually(
            Duration::from_secs(30),
            "both replicas' counts",
            async || {
                shows_exactly(app, &rollout, &expected).await
                    && shows_exactly(app, &listed, &expected).await
            },
        )
        .await;
    }
    let report = metrics(&a, &rollout, None).await;
    assert_users_within(&report, 10_000);

    // Redis: the hour's hash adds up to GetMetrics' figures, and its users
    // sketch counts as GetMetrics does (the same HyperLogLog).
    let client = redis_client(&redis).await;
    let hour = chrono::Utc::now().timestamp().div_euclid(3600);
    let totals = report.totals.clone().unwrap_or_default();
    let hours_used = report
        .hours
        .iter()
        .filter(|h| h.stats.clone().unwrap_or_default().evaluations > 0)
        .count();
    eventually(Duration::from_secs(30), "Redis hashes", async || {
        let mut evaluations = 0;
        for h in [hour - 1, hour] {
            let key = vexil::redis_metrics::hour_key(&channel, &rollout, h);
            let count: Option<i64> = redis_call(&client, "HGET", key, &["evaluations"])
                .await
                .unwrap_or(None);
            evaluations += count.unwrap_or(0) as u64;
        }
        evaluations == totals.evaluations
    })
    .await;
    // By variant too: a boolean flag serves on or off.
    for (field, expected) in [
        ("variant:on", totals.enabled),
        ("variant:off", totals.disabled),
    ] {
        let mut served = 0;
        for h in [hour - 1, hour] {
            let key = vexil::redis_metrics::hour_key(&channel, &rollout, h);
            let count: Option<i64> = redis_call(&client, "HGET", key, &[field])
                .await
                .expect("hget");
            served += count.unwrap_or(0) as u64;
        }
        assert_eq!(served, expected, "{field}");
    }
    let mut any_users = false;
    for h in [hour - 1, hour] {
        let key = format!(
            "{}:users",
            vexil::redis_metrics::hour_key(&channel, &rollout, h)
        );
        let count: i64 = redis_call(&client, "PFCOUNT", key, &[])
            .await
            .expect("pfcount");
        if count > 0 {
            any_users = true;
            // Within one hour, the same sketch: the same count.
            if hours_used == 1 {
                assert_eq!(
                    count as u64, totals.distinct_users,
                    "PFCOUNT and GetMetrics"
                );
            }
        }
    }
    assert!(any_users, "a users HyperLogLog in Redis");
    client.quit().await.ok();
    a.stop().await;
    b.stop().await;
    db.remove().await;
}

/// Redis cut off for a while: every flush still reaches the database, and
/// the Redis batches wait and are sent once Redis is back, though nothing
/// new was counted since, each applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_batches_wait_for_redis_and_count_once() {
    let (Some(db), Some(redis)) = (TestDatabase::create(Backend::Sqlite).await, redis_url()) else {
        return;
    };
    let proxy = Proxy::start(&redis).await;
    let channel = unique("vexil-test:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let app = TestApp::start_with(fast_flush(vexil::Config {
        redis_url: Some(proxy.url()),
        redis_prefix: channel.clone(),
        ..crate::common::config(&db.url)
    }))
    .await;
    let prefix = unique("metrics-");
    let (rollout, _) = create_flags(&app, &prefix).await;
    let flags = std::slice::from_ref(&rollout);
    let client = redis_client(&redis).await;
    let in_redis = async || {
        let hour = chrono::Utc::now().timestamp().div_euclid(3600);
        let mut evaluations = 0;
        for h in [hour - 1, hour] {
            let key = vexil::redis_metrics::hour_key(&channel, &rollout, h);
            let count: Option<i64> = redis_call(&client, "HGET", key, &["evaluations"])
                .await
                .expect("hget");
            evaluations += count.unwrap_or(0);
        }
        evaluations
    };
    let mut expected = Expected::new();
    evaluate_all(&[&app], flags, 0..100, &mut expected).await;
    eventually(Duration::from_secs(10), "100 in Redis", async || {
        in_redis().await == 100
    })
    .await;

    proxy.sever();
    evaluate_all(&[&app], flags, 100..150, &mut expected).await;
    eventually(Duration::from_secs(10), "150 in the database", async || {
        table_sum(&db).await == 150
    })
    .await;
    // Longer than the Redis command timeout (5 s): the write fails and its
    // batch waits (a shorter outage only delays the write).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(in_redis().await, 100, "Redis is cut off");

    proxy.restore();
    eventually(
        Duration::from_secs(20),
        "the waiting batch in Redis",
        async || in_redis().await == 150,
    )
    .await;
    tokio::time::sleep(FLUSH * 5).await;
    assert_eq!(in_redis().await, 150, "once");
    app.stop().await;
    assert_eq!(in_redis().await, 150, "once, after the final flush");
    client.quit().await.ok();
    db.remove().await;
}

/// Two installations sharing one Redis (different VEXIL_REDIS_PREFIX, their
/// own databases) keep their metrics apart, though their flags have the
/// same names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_with_their_own_prefix_keep_separate_metrics() {
    let (Some(db_a), Some(db_b), Some(redis)) = (
        TestDatabase::create(Backend::Sqlite).await,
        TestDatabase::create(Backend::Sqlite).await,
        redis_url(),
    ) else {
        return;
    };
    let (prefix_a, prefix_b) = (unique("vexil-test-a:"), unique("vexil-test-b:"));
    let _keys =
        [&prefix_a, &prefix_b].map(|prefix| crate::common::RedisKeys::under(&redis, prefix));
    let start = async |db: &TestDatabase, prefix: &str| {
        TestApp::start_with(fast_flush(vexil::Config {
            redis_url: Some(redis.clone()),
            redis_prefix: prefix.to_owned(),
            ..crate::common::config(&db.url)
        }))
        .await
    };
    let (a, b) = (start(&db_a, &prefix_a).await, start(&db_b, &prefix_b).await);
    let name = unique("metrics-");
    let (rollout, _) = create_flags(&a, &name).await;
    create_flags(&b, &name).await;
    let flags = std::slice::from_ref(&rollout);
    evaluate_all(&[&a], flags, 0..30, &mut Expected::new()).await;
    evaluate_all(&[&b], flags, 0..7, &mut Expected::new()).await;

    let client = redis_client(&redis).await;
    let in_redis = async |prefix: &str| {
        let hour = chrono::Utc::now().timestamp().div_euclid(3600);
        let mut evaluations = 0;
        for h in [hour - 1, hour] {
            let key = vexil::redis_metrics::hour_key(prefix, &rollout, h);
            let count: Option<i64> = redis_call(&client, "HGET", key, &["evaluations"])
                .await
                .expect("hget");
            evaluations += count.unwrap_or(0);
        }
        evaluations
    };
    eventually(Duration::from_secs(10), "both in Redis", async || {
        in_redis(&prefix_a).await == 30 && in_redis(&prefix_b).await == 7
    })
    .await;
    let in_database =
        |report: pb::GetMetricsResponse| report.totals.unwrap_or_default().evaluations;
    assert_eq!(in_database(metrics(&a, &rollout, None).await), 30);
    assert_eq!(in_database(metrics(&b, &rollout, None).await), 7);
    // Nothing under the reference's default prefix.
    let hour = chrono::Utc::now().timestamp().div_euclid(3600);
    let default_key = vexil::redis_metrics::hour_key("ff", &rollout, hour);
    let count: Option<i64> = redis_call(&client, "HGET", default_key, &["evaluations"])
        .await
        .expect("hget");
    assert_eq!(count, None);
    client.quit().await.ok();
    a.stop().await;
    b.stop().await;
    db_a.remove().await;
    db_b.remove().await;
}

/// A handful of evaluations has meaningful percentiles (the first of each
/// flag, environment and hour are all timed), and the latency shows only
/// buckets that hold evaluations.
async fn a_few_evaluations_have_latency_percentiles(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(crate::common::config(&db.url)).await;
    let prefix = unique("latency-");
    let (rollout, _) = create_flags(&app, &prefix).await;
    for user in 0..5 {
        app.evaluate(&rollout, &format!("user-{user}"), "prod")
            .await;
    }
    let report = metrics(&app, &rollout, None).await;
    let totals = report.totals.unwrap_or_default();
    assert_eq!(totals.evaluations, 5);
    let latency = totals.latency.unwrap_or_default();
    assert_eq!(
        latency.count, 5,
        "every one of the first evaluations is timed"
    );
    assert!(
        latency.p50_ns > 0 && latency.p99_ns >= latency.p50_ns,
        "{latency:?}"
    );
    assert!(!latency.buckets.is_empty());
    assert!(
        latency.buckets.iter().all(|bucket| bucket.count > 0),
        "{latency:?}"
    );
    assert_eq!(latency.buckets.iter().map(|b| b.count).sum::<u64>(), 5);
    app.stop().await;
    db.remove().await;
}

/// The sketch is Redis's own: PFADD of the same ids gives the same dense
/// registers and the same count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sketches_match_redis_exactly() {
    let Some(redis) = redis_url() else {
        return;
    };
    let client = redis_client(&redis).await;
    let prefix = unique("vexil-test:hll:");
    let _keys = crate::common::RedisKeys::under(&redis, &prefix);
    let key = format!("{prefix}:sketch");
    let mut sketch = Sketch::default();
    let ids: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
    for chunk in ids.chunks(1_000) {
        let _: i64 = redis_call(
            &client,
            "PFADD",
            key.clone(),
            &chunk.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
        .expect("pfadd");
        for id in chunk {
            sketch.add(id.as_bytes());
        }
    }
    let count: i64 = redis_call(&client, "PFCOUNT", key.clone(), &[])
        .await
        .expect("pfcount");
    let dense: bytes::Bytes = redis_call(&client, "GET", key.clone(), &[])
        .await
        .expect("get");
    let _: i64 = redis_call(&client, "DEL", key, &[]).await.expect("del");
    assert_eq!(sketch.count(), count as u64, "PFCOUNT");
    assert_eq!(
        &dense[16..],
        &sketch.to_redis_dense()[16..],
        "dense registers"
    );
    client.quit().await.ok();
}

/// A Redis client for reading what Vexil wrote.
async fn redis_client(url: &str) -> fred::clients::Client {
    let client = fred::clients::Client::new(
        fred::prelude::Config::from_url(url).expect("redis url"),
        None,
        None,
        None,
    );
    client.init().await.expect("connect to redis");
    client
}

/// One Redis command on one key, through EVAL (Vexil builds fred with
/// scripts but without its typed hash and HyperLogLog commands).
async fn redis_call<R: fred::types::FromValue>(
    client: &fred::clients::Client,
    command: &str,
    key: String,
    args: &[&str],
) -> Result<R, fred::error::Error> {
    client
        .eval(
            format!("return redis.call('{command}', KEYS[1], unpack(ARGV))"),
            vec![key],
            args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>(),
        )
        .await
}

/// Writes an hourly row as a replica's flush would: `count` evaluations
/// for `reason` (enabled when it is WHITELISTED) in unix hour `hour`, for
/// hours a test cannot wait for.
async fn insert_hour_row(
    conn: &sea_orm::DatabaseConnection,
    flag: &str,
    replica: &str,
    hour: i64,
    reason: &str,
    count: i64,
) {
    let at = chrono::DateTime::from_timestamp(hour * 3600, 0).expect("time");
    let (enabled, not_found, outcome) = match reason {
        "WHITELISTED" => (count, 0, [0, count]),
        "FLAG_NOT_FOUND" => (0, count, [count, 0]),
        _ => (0, 0, [count, 0]),
    };
    let reasons = serde_json::json!({ reason: outcome });
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        format!(
            "INSERT INTO feature_flag_evaluations (flag_name, environment, hour, replica, \
             evaluations, enabled, not_found, reasons, latency_sum_ns, latency_buckets, \
             users, updated_at) VALUES ($1, '', $2, $3, {count}, {enabled}, {not_found}, \
             '{reasons}', 0, '[]', NULL, $2)"
        ),
        vec![flag.into(), at.into(), replica.into()],
    ))
    .await
    .expect("insert an hourly row");
}

async fn table_sum(db: &TestDatabase) -> i64 {
    let conn = db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COALESCE(SUM(evaluations), 0) AS total FROM feature_flag_evaluations",
        ))
        .await
        .expect("sum")
        .expect("a row");
    let total: i64 = row.try_get("", "total").unwrap_or_else(|_| {
        // PostgreSQL's SUM of bigint is numeric.
        let text: sea_orm::prelude::Decimal = row.try_get("", "total").expect("numeric total");
        text.to_string().parse().expect("integer")
    });
    conn.close().await.ok();
    total
}

/// Flushes fail while the table is gone; the counts wait and are written
/// once when it is back, and writing the same figures again changes nothing.
async fn failed_flushes_count_once(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(fast_flush(crate::common::config(&db.url))).await;
    let prefix = unique("metrics-");
    let (rollout, _) = create_flags(&app, &prefix).await;
    let conn = db.connect().await;
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    conn.execute_unprepared(&rename(
        "feature_flag_evaluations",
        "feature_flag_evaluations_away",
    ))
    .await
    .expect("hide the table");
    let mut expected = Expected::new();
    evaluate_all(
        &[&app],
        std::slice::from_ref(&rollout),
        0..300,
        &mut expected,
    )
    .await;
    // Several flushes fail meanwhile.
    tokio::time::sleep(FLUSH * 5).await;
    conn.execute_unprepared(&rename(
        "feature_flag_evaluations_away",
        "feature_flag_evaluations",
    ))
    .await
    .expect("restore the table");
    eventually(Duration::from_secs(10), "the retried flush", async || {
        table_sum(&db).await == 300
    })
    .await;
    // More flushes of the same figures (nothing new evaluated) keep it at 300.
    tokio::time::sleep(FLUSH * 5).await;
    assert_eq!(table_sum(&db).await, 300);
    conn.close().await.ok();
    app.stop().await;
    assert_eq!(table_sum(&db).await, 300, "after the final flush");
    // The users went with the retried write, though taken by a failed one.
    let reader = TestApp::start(&db.url).await;
    assert_users_within(&metrics(&reader, &rollout, None).await, 300);
    reader.stop().await;
    db.remove().await;
}

/// A flush writes a sketch only when it changed: the same users again
/// change the counts, not the sketch, and the stored sketch stays.
async fn unchanged_users_keep_their_stored_sketch(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(fast_flush(crate::common::config(&db.url))).await;
    let prefix = unique("metrics-");
    let (rollout, _) = create_flags(&app, &prefix).await;
    let flags = std::slice::from_ref(&rollout);
    let mut expected = Expected::new();
    evaluate_all(&[&app], flags, 0..1_000, &mut expected).await;
    eventually(Duration::from_secs(10), "the first flush", async || {
        table_sum(&db).await == 1_000
    })
    .await;
    evaluate_all(&[&app], flags, 0..1_000, &mut expected).await;
    eventually(Duration::from_secs(10), "the second flush", async || {
        table_sum(&db).await == 2_000
    })
    .await;
    app.stop().await;
    let reader = TestApp::start(&db.url).await;
    assert!(shows_exactly(&reader, &rollout, &expected).await);
    assert_users_within(&metrics(&reader, &rollout, None).await, 1_000);
    reader.stop().await;
    db.remove().await;
}

async fn disabled_metrics_write_nothing(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        enable_metrics: false,
        ..fast_flush(crate::common::config(&db.url))
    })
    .await;
    let prefix = unique("metrics-");
    let (rollout, listed) = create_flags(&app, &prefix).await;
    let mut expected = Expected::new();
    evaluate_all(
        &[&app],
        &[rollout.clone(), listed, format!("{prefix}.typo")],
        0..200,
        &mut expected,
    )
    .await;
    tokio::time::sleep(FLUSH * 5).await;
    let report = metrics(&app, &rollout, None).await;
    assert_eq!(report.totals.unwrap_or_default().evaluations, 0);
    assert!(report.last_evaluated_at.is_none());
    app.stop().await;
    assert_eq!(table_sum(&db).await, 0);
    db.remove().await;
}

/// Hourly rows older than VEXIL_METRICS_RETENTION_DAYS are deleted by the
/// flush task; younger ones stay.
async fn old_hours_are_deleted(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    // Create the tables, then add a row from 3 days ago and one from 1 hour ago.
    TestApp::start(&db.url).await.stop().await;
    let conn = db.connect().await;
    let hour = chrono::Utc::now().timestamp().div_euclid(3600);
    for (name, hours_ago) in [("old", 72), ("recent", 1)] {
        insert_hour_row(&conn, name, "gone", hour - hours_ago, "WHITELISTED", 1).await;
    }
    let app = TestApp::start_with(vexil::Config {
        metrics_retention_days: 2,
        ..fast_flush(crate::common::config(&db.url))
    })
    .await;
    eventually(Duration::from_secs(10), "the old row deleted", async || {
        table_sum(&db).await == 1
    })
    .await;
    let recent = metrics(&app, "recent", None).await;
    assert_eq!(recent.totals.unwrap_or_default().evaluations, 1);
    conn.close().await.ok();
    app.stop().await;
    db.remove().await;
}

/// Callers choose environment strings: one PostgreSQL cannot store (NUL)
/// and a hundred distinct ones do not stop the flushes, and a flag keeps 64
/// environments it does not name of its own (the rest together under
/// `__other__`).
async fn odd_environments_do_not_block_flushes(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(fast_flush(crate::common::config(&db.url))).await;
    let prefix = unique("metrics-");
    let (rollout, _) = create_flags(&app, &prefix).await;
    app.evaluate(&rollout, "user-1", "nul\0here").await;
    for i in 0..100 {
        app.evaluate(&rollout, "user-1", &format!("env-{i}")).await;
    }
    eventually(Duration::from_secs(10), "all 101 written", async || {
        table_sum(&db).await == 101
    })
    .await;
    app.stop().await;
    let reader = TestApp::start(&db.url).await;
    let report = metrics(&reader, &rollout, None).await;
    assert_eq!(report.totals.unwrap_or_default().evaluations, 101);
    // 64 environments of their own, and the rest together.
    assert_eq!(report.environments.len(), 65);
    assert!(
        report
            .environments
            .iter()
            .any(|e| e.environment == "__other__")
    );
    reader.stop().await;
    db.remove().await;
}

/// ListUnknownFlags: this replica's live hour replaces its stored row of
/// that hour, and its stored rows of earlier hours count as they are.
async fn unknown_names_add_this_replicas_older_hours(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(fast_flush(crate::common::config(&db.url))).await;
    let typo = unique("metrics-typo-");
    for _ in 0..5 {
        app.evaluate(&typo, "user-1", "prod").await;
    }
    eventually(Duration::from_secs(10), "the flush", async || {
        table_sum(&db).await == 5
    })
    .await;
    let conn = db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT replica FROM feature_flag_evaluations",
        ))
        .await
        .expect("select")
        .expect("the flushed row");
    let replica: String = row.try_get("", "replica").expect("replica");
    let hour = chrono::Utc::now().timestamp().div_euclid(3600);
    insert_hour_row(&conn, &typo, &replica, hour - 1, "FLAG_NOT_FOUND", 7).await;
    let listed = app
        .flags
        .clone()
        .list_unknown_flags(pb::ListUnknownFlagsRequest { hours: 3 })
        .await
        .expect("list unknown")
        .into_inner();
    assert_eq!(
        listed.flags,
        vec![pb::UnknownFlag {
            name: typo,
            evaluations: 12
        }]
    );
    conn.close().await.ok();
    app.stop().await;
    db.remove().await;
}

/// Issue 19, item 1, scaled down: a caller inventing environments and flag
/// names first cannot take the places real ones need. An environment the
/// flag names is counted on its own after 100 invented ones; a typo code
/// asks for often is listed after a thousand one-off names before and
/// after it; and `/metrics` labels real flags, not invented names.
async fn invented_names_cannot_crowd_out_real_ones(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_prometheus(fast_flush(crate::common::config(&db.url))).await;
    let prefix = unique("metrics-crowd-");
    let named = format!("{prefix}.named");
    app.create_flag(pb::Flag {
        name: named.clone(),
        enabled: true,
        percentage: 100.0,
        environments: vec!["production".into()],
        ..pb::Flag::default()
    })
    .await;
    for i in 0..100 {
        app.evaluate(&named, "user-1", &format!("invented-{i}"))
            .await;
    }
    for _ in 0..3 {
        app.evaluate(&named, "user-1", "production").await;
    }
    let junk = |round: usize| -> Vec<String> {
        (0..1000)
            .map(|i| format!("{prefix}.junk-{round}-{i}"))
            .collect()
    };
    let bulk = async |names: Vec<String>| {
        app.evaluation
            .clone()
            .bulk_evaluate(pb::BulkEvaluateRequest {
                flag_names: names,
                user_id: "user-1".into(),
                environment: "production".into(),
                context: None,
            })
            .await
            .expect("bulk evaluate");
    };
    bulk(junk(0)).await;
    let typo = format!("{prefix}.chekout");
    bulk(vec![typo.clone(); 50]).await;
    bulk(junk(1)).await;

    let production = metrics(&app, &named, Some("production")).await;
    assert_eq!(production.totals.unwrap_or_default().evaluations, 3);
    let listed = app
        .flags
        .clone()
        .list_unknown_flags(pb::ListUnknownFlagsRequest { hours: 2 })
        .await
        .expect("list unknown")
        .into_inner();
    assert!(
        listed
            .flags
            .iter()
            .any(|flag| flag.name == typo && flag.evaluations == 50),
        "the typo is listed with its 50 evaluations"
    );
    let address = app.prometheus.expect("a /metrics listener");
    let reply = crate::common::http::request(address, "GET", "/metrics", &[], "").await;
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    assert!(text.contains(&format!("feature_flag_key=\"{named}\"")));
    assert!(!text.contains(".junk-"), "invented names get no label");
    assert!(text.contains("feature_flag_key=\"__unknown__\""));
    app.stop().await;
    db.remove().await;
}
