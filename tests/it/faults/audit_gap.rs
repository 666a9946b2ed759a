//! A hole in the audit log (rows pruned by a retention job) neither freezes
//! a replica nor lets a Watch client skip changes silently: the replica
//! that finds the hole reloads every flag from the flags table, and a
//! stream that would have to cross it starts over with a snapshot.

use sea_orm::ConnectionTrait;
use vexil::grpc::pb::{self, Reason};

use crate::common::{Backend, TestApp, TestDatabase, eventually, next_event};

crate::backend_tests!(hole_in_the_audit_log_is_repaired_by_a_reload);

async fn hole_in_the_audit_log_is_repaired_by_a_reload(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    // Two replicas without a shared bus and with long cache TTLs: B learns
    // of A's changes only when it catches up, after a write of its own.
    let config = vexil::Config {
        cache_ttl_secs: 3600,
        ..crate::common::config(&db.url)
    };
    let a = TestApp::start_with(config.clone()).await;
    let b = TestApp::start_with(config.clone()).await;

    let first = a
        .create_flag(pb::Flag {
            name: "pruned".into(),
            enabled: true,
            ..pb::Flag::default()
        })
        .await
        .revision;
    for percentage in [25.0, 50.0, 75.0] {
        a.set_percentage("pruned", percentage).await;
    }
    let last_of_a = a.set_percentage("pruned", 100.0).await.revision;
    // The retention job: revisions first+1 and first+2 are gone. (On
    // PostgreSQL the audit table refuses deletes; an administrator's job
    // gets past the trigger as a superuser.)
    let bypass = match backend {
        Backend::Postgres => "SET session_replication_role = replica; ",
        Backend::Sqlite => "",
    };
    db.connect()
        .await
        .execute_unprepared(&format!(
            "{bypass}DELETE FROM feature_flag_audits WHERE revision IN ({}, {})",
            first + 1,
            first + 2
        ))
        .await
        .expect("prune audit rows");

    // B's own write makes it catch up across the hole.
    let own = b
        .create_flag(pb::Flag {
            name: "after-the-hole".into(),
            enabled: true,
            percentage: 100.0,
            ..pb::Flag::default()
        })
        .await
        .revision;
    assert_eq!(own, last_of_a + 1);
    eventually(
        std::time::Duration::from_secs(30),
        "B reloads",
        async || b.evaluate("pruned", "u", "").await == (true, Reason::PercentageRollout),
    )
    .await;
    assert_eq!(
        b.evaluate("after-the-hole", "u", "").await,
        (true, Reason::PercentageRollout)
    );

    // A stream resuming from before the hole, on B and on a replica started
    // after it (both must read the log): what can be replayed is, then a
    // snapshot replaces the client's copy; nothing after the hole arrives
    // as a change before it. (A still holds every change in memory and
    // would serve them exactly.)
    let c = TestApp::start_with(config).await;
    for app in [&b, &c] {
        let mut stream = app.watch(&[], Some(first)).await;
        let snapshot = loop {
            match next_event(&mut stream).await {
                pb::watch_response::Event::Snapshot(snapshot) => break snapshot,
                pb::watch_response::Event::Change(change) => {
                    panic!("change {} crossed the hole", change.revision)
                }
                pb::watch_response::Event::Heartbeat(_)
                | pb::watch_response::Event::SegmentChange(_) => {}
            }
        };
        assert!(snapshot.last);
        assert_eq!(snapshot.revision, own);
        let names: Vec<_> = snapshot
            .flags
            .iter()
            .map(|flag| flag.name.as_str())
            .collect();
        assert_eq!(names, ["after-the-hole", "pruned"]);
        assert_eq!(snapshot.flags[1].percentage, 100.0);
    }

    a.stop().await;
    b.stop().await;
    c.stop().await;
    db.remove().await;
}
