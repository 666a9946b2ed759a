//! Optimistic concurrency: of several updates made against the same
//! expected revision, exactly one wins.

use tonic::Code;
use vexil::grpc::pb::{self, AuditAction};

use crate::common::{Backend, TestApp, TestDatabase, as_actor, mask};

crate::backend_tests!(
    same_expected_revision_exactly_one_wins,
    stale_delete_is_aborted
);

async fn same_expected_revision_exactly_one_wins(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let created = app
        .create_flag(pb::Flag {
            name: "contested".into(),
            ..pb::Flag::default()
        })
        .await;

    let admins = 8;
    let updates = (0..admins).map(|admin| {
        let mut flags = app.flags.clone();
        let revision = created.revision;
        tokio::spawn(async move {
            flags
                .update_flag(as_actor(
                    &format!("admin-{admin}"),
                    pb::UpdateFlagRequest {
                        flag: Some(pb::Flag {
                            name: "contested".into(),
                            percentage: f64::from(admin) * 10.0,
                            ..pb::Flag::default()
                        }),
                        update_mask: mask(&["percentage"]),
                        reason: format!("admin {admin} ramps"),
                        expected_revision: Some(revision),
                    },
                ))
                .await
        })
    });
    let outcomes = futures_join(updates.collect()).await;

    let winners: Vec<&pb::Flag> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().map(|r| r.get_ref()))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one update wins: {outcomes:?}");
    for outcome in &outcomes {
        if let Err(status) = outcome {
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
            assert!(status.message().contains("revision"), "{status:?}");
        }
    }

    let stored = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: "contested".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(&stored, winners[0]);

    let trail = app.audit_trail("contested").await;
    let updates: Vec<&pb::AuditEntry> = trail
        .iter()
        .filter(|e| e.action() == AuditAction::Update)
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].after.as_ref(), Some(&stored));
    assert_eq!(updates[0].actor, stored.updated_by);

    app.stop().await;
    db.remove().await;
}

async fn stale_delete_is_aborted(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let created = app
        .create_flag(pb::Flag {
            name: "kept".into(),
            ..pb::Flag::default()
        })
        .await;
    let outcome = app
        .flags
        .clone()
        .delete_flag(pb::DeleteFlagRequest {
            name: "kept".into(),
            reason: "stale".into(),
            expected_revision: Some(created.revision + 1),
        })
        .await;
    assert_eq!(outcome.expect_err("stale").code(), Code::Aborted);
    assert_eq!(app.total_flags().await, 1);
    assert_eq!(app.audit_trail("kept").await.len(), 1);

    app.stop().await;
    db.remove().await;
}

/// Awaits every task, in order.
async fn futures_join<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    outcomes
}

/// A write whose caller gives up (deadline, cancel) after the commit has
/// started still reaches the cache and the watchers. PostgreSQL only: the
/// commit is slowed with a trigger that sleeps, which SQLite cannot do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_write_still_propagates_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(pb::Flag {
        name: "slow".into(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    let conn = db.connect().await;
    for statement in [
        "CREATE FUNCTION slow_audit() RETURNS trigger AS $$
         BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER slow_audit BEFORE INSERT ON feature_flag_audits
         FOR EACH ROW WHEN (NEW.flag_name = 'slow') EXECUTE FUNCTION slow_audit()",
    ] {
        sea_orm::ConnectionTrait::execute_unprepared(&conn, statement)
            .await
            .expect("install trigger");
    }
    conn.close().await.ok();
    let mut watch = app.watch(&["slow"], None).await;
    let (_, start) = crate::common::read_snapshot(&mut watch).await;

    let mut request = tonic::Request::new(pb::UpdateFlagRequest {
        flag: Some(pb::Flag {
            name: "slow".into(),
            percentage: 100.0,
            ..pb::Flag::default()
        }),
        update_mask: mask(&["percentage"]),
        reason: "impatient".into(),
        expected_revision: None,
    });
    request.set_timeout(std::time::Duration::from_millis(200));
    // The server drops the handler when the deadline passes (tonic honours
    // grpc-timeout), as it does when a client cancels.
    let outcome = app.flags.clone().update_flag(request).await;
    let code = outcome.expect_err("deadline").code();
    assert!(
        matches!(code, Code::Cancelled | Code::DeadlineExceeded),
        "{code:?}"
    );

    // The write committed after the caller left, and was still applied and fed.
    let change = crate::common::next_change(&mut watch).await;
    assert_eq!(change.revision, start + 1);
    assert_eq!(
        app.evaluate("slow", "u", "").await,
        (true, pb::Reason::PercentageRollout)
    );
    assert_eq!(app.audit_trail("slow").await.len(), 2);

    app.stop().await;
    db.remove().await;
}
