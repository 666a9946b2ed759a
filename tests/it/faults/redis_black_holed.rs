//! A black-holed Redis connection (the peer stops answering; nothing is
//! closed, as when its host vanishes or a NAT or load balancer drops idle
//! state) is noticed within seconds: the replica reports `vexil.bus`
//! NOT_SERVING, reconnects when Redis answers again, and catches up at
//! once, long before FF_CACHE_TTL would have repaired it.

use tonic_health::pb::health_check_response::ServingStatus;
use vexil::grpc::pb::{self, Reason};

use crate::common::proxy::Proxy;
use crate::common::{Backend, TestDatabase, eventually, redis_url, replica, unique, wait_for_bus};

crate::backend_tests!(black_holed_bus_is_noticed_and_recovered);

async fn black_holed_bus_is_noticed_and_recovered(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:black-hole:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let proxy = Proxy::start(&redis).await;
    // Long cache TTLs: without the bus, B would stay behind for an hour.
    let a = replica(&db.url, redis, &channel, 3600).await;
    let b = replica(&db.url, proxy.url(), &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;
    a.create_flag(pb::Flag {
        name: "dark".into(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    eventually(
        std::time::Duration::from_secs(10),
        "B sees the flag",
        async || b.evaluate("dark", "u", "").await.1 == Reason::OutsideRollout,
    )
    .await;

    proxy.pause();
    wait_for_bus(&b, ServingStatus::NotServing).await;
    // Published while B hears nothing.
    a.set_percentage("dark", 100.0).await;
    assert_eq!(
        b.evaluate("dark", "u", "").await,
        (false, Reason::OutsideRollout),
        "B cannot know yet"
    );

    proxy.resume();
    wait_for_bus(&b, ServingStatus::Serving).await;
    eventually(
        std::time::Duration::from_secs(30),
        "B catches up",
        async || b.evaluate("dark", "u", "").await == (true, Reason::PercentageRollout),
    )
    .await;

    a.stop().await;
    b.stop().await;
    drop(proxy);
    db.remove().await;
}
