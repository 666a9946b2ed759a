//! A database outage: management calls fail with UNAVAILABLE, evaluation
//! keeps answering from the cache, and everything recovers when the
//! database returns. PostgreSQL only (reached through a TCP proxy that the
//! test cuts); SQLite is a local file with no network to lose.

use std::time::Duration;

use tonic::Code;
use vexil::grpc::pb::{self, Reason};

use crate::common::proxy::Proxy;
use crate::common::{Backend, TestApp, TestDatabase, eventually, mask};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_is_unavailable_and_evaluation_keeps_serving_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start(&db.url).await;
    let app = TestApp::start(&proxy.route(&db.url)).await;
    app.create_flag(pb::Flag {
        name: "resilient".into(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;

    proxy.sever();
    assert_eq!(
        app.evaluate("resilient", "u", "").await,
        (true, Reason::PercentageRollout)
    );
    let mut flags = app.flags.clone();
    let read = flags
        .get_flag(pb::GetFlagRequest {
            name: "resilient".into(),
        })
        .await;
    assert_eq!(read.expect_err("store is down").code(), Code::Unavailable);
    let write = flags
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: "resilient".into(),
                percentage: 0.0,
                ..pb::Flag::default()
            }),
            update_mask: mask(&["percentage"]),
            reason: "during the outage".into(),
            expected_revision: None,
        })
        .await;
    assert_eq!(write.expect_err("store is down").code(), Code::Unavailable);
    // Nothing changed, and evaluation still answers.
    assert_eq!(
        app.evaluate("resilient", "u", "").await,
        (true, Reason::PercentageRollout)
    );

    proxy.restore();
    eventually(Duration::from_secs(30), "the store is back", async || {
        flags
            .get_flag(pb::GetFlagRequest {
                name: "resilient".into(),
            })
            .await
            .is_ok()
    })
    .await;
    assert_eq!(app.audit_trail("resilient").await.len(), 1);
    app.set_percentage("resilient", 0.0).await;
    assert_eq!(
        app.evaluate("resilient", "u", "").await,
        (false, Reason::OutsideRollout)
    );

    app.stop().await;
    drop(proxy);
    db.remove().await;
}
