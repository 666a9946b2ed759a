//! Several replicas on one database and one Redis: changes reach every
//! replica's cache and Watch streams through Redis pub/sub, and replicas
//! converge when messages are lost (the bus cut by a TCP proxy).

use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use vexil::grpc::pb::{self, Reason};

use crate::common::proxy::Proxy;
use crate::common::{
    Backend, TestDatabase, eventually, next_change, read_snapshot, redis_url, replica, unique,
    wait_for_bus,
};

crate::backend_tests!(
    update_on_one_replica_reaches_the_other,
    lost_messages_are_recovered_within_the_cache_ttl,
    replicas_catch_up_moments_after_redis_returns,
);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn update_on_one_replica_reaches_the_other(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:changes:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    // A long cache TTL: only Redis can carry the changes in time.
    let a = replica(&db.url, redis.clone(), &channel, 3600).await;
    let b = replica(&db.url, redis, &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;

    let name = "propagated";
    a.create_flag(pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    eventually(Duration::from_secs(10), "creation reaches B", async || {
        b.evaluate(name, "u", "").await.1 != Reason::FlagNotFound
    })
    .await;

    let mut watch = b.watch(&[name], None).await;
    read_snapshot(&mut watch).await;
    let mut delays = Vec::new();
    for i in 1..=20 {
        let percentage = if i % 2 == 0 { 100.0 } else { 0.0 };
        let updated = a.set_percentage(name, percentage).await;
        let written = Instant::now();
        let change = next_change(&mut watch).await;
        delays.push(written.elapsed());
        assert_eq!(change.revision, updated.revision);
        assert_eq!(change.flag.as_ref(), Some(&updated));
        // B's cache holds the change before its watchers hear of it.
        let expected = if percentage == 100.0 {
            (true, Reason::PercentageRollout)
        } else {
            (false, Reason::OutsideRollout)
        };
        assert_eq!(b.evaluate(name, "u", "").await, expected);
    }
    delays.sort();
    println!(
        "propagation A->B through redis ({backend:?}): p50 {:?}, max {:?} over {} updates",
        percentile(&delays, 0.5),
        delays[delays.len() - 1],
        delays.len()
    );

    a.stop().await;
    b.stop().await;
    db.remove().await;
}

async fn lost_messages_are_recovered_within_the_cache_ttl(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:changes:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let proxy = Proxy::start(&redis).await;
    let a = replica(&db.url, redis, &channel, 3600).await;
    let b = replica(&db.url, proxy.url(), &channel, 1).await;
    wait_for_bus(&b, ServingStatus::Serving).await;

    proxy.sever();
    wait_for_bus(&b, ServingStatus::NotServing).await;
    a.create_flag(pb::Flag {
        name: "while-cut".into(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;
    // B hears nothing over the bus but catches up from the store.
    eventually(
        Duration::from_secs(10),
        "B catches up without the bus",
        async || b.evaluate("while-cut", "u", "").await == (true, Reason::PercentageRollout),
    )
    .await;
    // B still serves and accepts writes while cut off.
    let written = b.set_percentage("while-cut", 0.0).await;
    assert_eq!(
        b.evaluate("while-cut", "u", "").await,
        (false, Reason::OutsideRollout)
    );
    assert!(written.revision > 0);

    proxy.restore();
    wait_for_bus(&b, ServingStatus::Serving).await;

    a.stop().await;
    b.stop().await;
    db.remove().await;
}

async fn replicas_catch_up_moments_after_redis_returns(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:changes:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let proxy = Proxy::start(&redis).await;
    // Long TTLs: only the bus, or the catch-up on reconnect, can propagate.
    let a = replica(&db.url, redis, &channel, 3600).await;
    let b = replica(&db.url, proxy.url(), &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;
    for name in ["from-a", "from-b"] {
        a.create_flag(pb::Flag {
            name: name.into(),
            enabled: true,
            ..pb::Flag::default()
        })
        .await;
    }
    eventually(Duration::from_secs(10), "B sees both flags", async || {
        b.evaluate("from-b", "u", "").await.1 != Reason::FlagNotFound
    })
    .await;
    let mut watch_b = b.watch(&[], None).await;
    let (_, start) = read_snapshot(&mut watch_b).await;

    proxy.sever();
    wait_for_bus(&b, ServingStatus::NotServing).await;
    // Each side changes a flag while they cannot hear each other.
    let on_a = a.set_percentage("from-a", 100.0).await;
    let on_b = b.set_percentage("from-b", 100.0).await;
    assert_eq!(
        a.evaluate("from-b", "u", "").await,
        (false, Reason::OutsideRollout)
    );

    proxy.restore();
    wait_for_bus(&b, ServingStatus::Serving).await;
    // On reconnect B catches up with A's change and announces its own.
    eventually(Duration::from_secs(10), "B learns A's change", async || {
        b.evaluate("from-a", "u", "").await == (true, Reason::PercentageRollout)
    })
    .await;
    eventually(Duration::from_secs(10), "A learns B's change", async || {
        a.evaluate("from-b", "u", "").await == (true, Reason::PercentageRollout)
    })
    .await;
    // B's watcher saw both changes, in revision order, nothing skipped.
    let mut revisions = vec![next_change(&mut watch_b).await.revision];
    revisions.push(next_change(&mut watch_b).await.revision);
    let mut expected = vec![on_a.revision, on_b.revision];
    expected.sort();
    assert_eq!(revisions, expected);
    assert_eq!(expected[0], start + 1);

    a.stop().await;
    b.stop().await;
    db.remove().await;
}
