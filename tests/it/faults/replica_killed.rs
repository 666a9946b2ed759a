//! A replica killed in the middle of a write (it holds the revision lock,
//! its transaction open) blocks no one for long and loses nothing: the
//! database rolls its transaction back when its connection dies, the
//! waiting write of another replica goes through with the next revision,
//! and no revision is skipped or used twice. PostgreSQL only: replicas
//! share it over the network.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use vexil::grpc::pb;

use crate::common::{Backend, TestApp, TestDatabase, next_change, read_snapshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_mid_write_loses_nothing_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let created = app
        .create_flag(pb::Flag {
            name: "contended".into(),
            enabled: true,
            ..pb::Flag::default()
        })
        .await;
    let mut watch = app.watch(&[], None).await;
    read_snapshot(&mut watch).await;

    // The doomed replica: mid-write, holding the revision row.
    let doomed = db.connect().await;
    let transaction = doomed.begin().await.expect("begin");
    transaction
        .execute_unprepared("UPDATE feature_flag_revision SET revision = revision + 1 WHERE id = 1")
        .await
        .expect("take the next revision");
    let doomed_pid: i32 = transaction
        .query_one_raw(sea_orm::Statement::from_string(
            transaction.get_database_backend(),
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("pid")
        .expect("a row")
        .try_get("", "pid")
        .expect("pid column");

    // A write on the live replica waits for the lock...
    let writer = tokio::spawn({
        let app_flags = app.flags.clone();
        async move {
            let mut flags = app_flags;
            flags
                .update_flag(pb::UpdateFlagRequest {
                    flag: Some(pb::Flag {
                        name: "contended".into(),
                        percentage: 42.0,
                        ..pb::Flag::default()
                    }),
                    update_mask: crate::common::mask(&["percentage"]),
                    reason: "while another replica dies".into(),
                    expected_revision: None,
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ... until the doomed replica's process dies (its connection with it).
    db.connect()
        .await
        .execute_unprepared(&format!("SELECT pg_terminate_backend({doomed_pid})"))
        .await
        .expect("kill the doomed replica's connection");
    drop(transaction);

    let written = writer
        .await
        .expect("task")
        .expect("the write goes through once the lock is released")
        .into_inner();
    assert_eq!(
        written.revision,
        created.revision + 1,
        "no revision skipped"
    );
    assert_eq!(written.percentage, 42.0);
    assert_eq!(next_change(&mut watch).await.revision, written.revision);
    let trail = app.audit_trail("contended").await;
    let revisions: Vec<u64> = trail.iter().map(|entry| entry.revision).collect();
    assert_eq!(revisions, [written.revision, created.revision]);

    app.stop().await;
    db.remove().await;
}
