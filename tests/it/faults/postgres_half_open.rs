//! A half-open database connection (the peer stops answering, nothing is
//! closed: a failover, a dropped NAT entry) costs bounded time: reads and
//! writes answer UNAVAILABLE within their timeouts instead of waiting for
//! TCP to give up, evaluation keeps serving, shutdown completes, and all
//! recovers when the database answers again. PostgreSQL only, through a
//! TCP proxy the test pauses.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use tonic::Code;
use vexil::grpc::pb::{self, Reason};

use crate::common::proxy::Proxy;
use crate::common::{Backend, TestApp, TestDatabase, eventually, mask};

/// A guard against hanging, far above every bound the server keeps.
const HANG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_database_costs_bounded_time_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start(&db.url).await;
    let app = TestApp::start(&proxy.route(&db.url)).await;
    app.create_flag(pb::Flag {
        name: "silent".into(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;

    // Calls in flight when the database goes silent: a read and a write
    // held up by a table lock, then the connection stops moving bytes (the
    // lock's release never reaches them).
    let locker = db.connect().await;
    let lock = locker.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE feature_flags IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the flags table");
    let mut flags = app.flags.clone();
    let read = tokio::spawn({
        let mut flags = flags.clone();
        async move {
            flags
                .get_flag(pb::GetFlagRequest {
                    name: "silent".into(),
                })
                .await
        }
    });
    let write = tokio::spawn({
        let mut flags = flags.clone();
        async move {
            flags
                .update_flag(pb::UpdateFlagRequest {
                    flag: Some(pb::Flag {
                        name: "silent".into(),
                        percentage: 0.0,
                        ..pb::Flag::default()
                    }),
                    update_mask: mask(&["percentage"]),
                    reason: "while silent".into(),
                    expected_revision: None,
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.pause();
    lock.commit().await.expect("release the lock");

    let read = tokio::time::timeout(HANG, read)
        .await
        .expect("a read in flight answers while the database is silent")
        .expect("task");
    assert_eq!(read.expect_err("unavailable").code(), Code::Unavailable);
    let write = tokio::time::timeout(HANG, write)
        .await
        .expect("a write in flight answers while the database is silent")
        .expect("task");
    assert_eq!(write.expect_err("unavailable").code(), Code::Unavailable);
    assert_eq!(
        app.evaluate("silent", "u", "").await,
        (true, Reason::PercentageRollout)
    );

    proxy.resume();
    eventually(
        Duration::from_secs(60),
        "the store answers again",
        async || {
            flags
                .get_flag(pb::GetFlagRequest {
                    name: "silent".into(),
                })
                .await
                .is_ok()
        },
    )
    .await;
    eventually(Duration::from_secs(60), "writes work again", async || {
        flags
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: "silent".into(),
                    percentage: 0.0,
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["percentage"]),
                reason: "after".into(),
                expected_revision: None,
            })
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        app.evaluate("silent", "u", "").await,
        (false, Reason::OutsideRollout)
    );

    // Shutdown while the database is silent again still completes.
    proxy.pause();
    let _ = flags
        .get_flag(pb::GetFlagRequest {
            name: "silent".into(),
        })
        .await;
    tokio::time::timeout(HANG, app.stop())
        .await
        .expect("shutdown completes while the database is silent");
    drop(proxy);
    db.remove().await;
}
