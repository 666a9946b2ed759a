//! Flags and their audit trail survive a restart of the server on the same
//! database, and the restarted server evaluates from its reloaded cache.

use vexil::grpc::pb;

use crate::common::{Backend, TestApp, TestDatabase, mask};

crate::backend_tests!(flags_and_audit_survive_a_restart);

async fn flags_and_audit_survive_a_restart(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(pb::Flag {
        name: "durable".into(),
        enabled: true,
        whitelist: vec!["vip".into()],
        metadata: Some(vexil_proto::google::protobuf::Struct {
            fields: [(
                "owner".to_string(),
                vexil_proto::google::protobuf::Value {
                    kind: Some(vexil_proto::google::protobuf::value::Kind::StringValue(
                        "growth".into(),
                    )),
                },
            )]
            .into(),
        }),
        ..pb::Flag::default()
    })
    .await;
    let updated = app
        .flags
        .clone()
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: "durable".into(),
                percentage: 12.5,
                ..pb::Flag::default()
            }),
            update_mask: mask(&["percentage"]),
            reason: "ramp".into(),
            expected_revision: None,
        })
        .await
        .expect("update")
        .into_inner();
    let trail = app.audit_trail("durable").await;
    app.stop().await;

    let restarted = TestApp::start(&db.url).await;
    let stored = restarted
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: "durable".into(),
        })
        .await
        .expect("get after restart")
        .into_inner();
    assert_eq!(stored, updated);
    assert_eq!(restarted.audit_trail("durable").await, trail);
    assert_eq!(trail.len(), 2);
    assert_eq!(
        restarted.evaluate("durable", "vip", "production").await,
        (true, pb::Reason::Whitelisted)
    );
    // Revisions keep increasing across the restart.
    let next = restarted
        .create_flag(pb::Flag {
            name: "after-restart".into(),
            ..pb::Flag::default()
        })
        .await;
    assert_eq!(next.revision, updated.revision + 1);

    restarted.stop().await;
    db.remove().await;
}

/// `VEXIL_NO_MIGRATE`: the server leaves the schema alone (for a database
/// role without DDL rights); it needs the schema migrated beforehand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_migrate_leaves_the_schema_to_vexil_migrate() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let config = vexil::Config {
        no_migrate: true,
        ..crate::common::config(&db.url)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let unmigrated = vexil::run(config.clone(), listener, async {}).await;
    assert!(unmigrated.is_err(), "no tables, and none created");

    vexil::migrate(&config).await.expect("vexil migrate");
    let app = TestApp::start_with(config).await;
    app.create_flag(pb::Flag {
        name: "migrated".into(),
        ..pb::Flag::default()
    })
    .await;
    app.stop().await;
    db.remove().await;
}
