//! A change whose audit write fails leaves no change behind. The failure is
//! injected in the real database: a trigger that rejects audit rows for one
//! flag name.

use sea_orm::{ConnectionTrait, DbBackend};
use tonic::Code;
use vexil::grpc::pb;

use crate::common::{Backend, TestApp, TestDatabase, mask};

crate::backend_tests!(failed_audit_write_rolls_back_the_change);

const DOOMED: &str = "audit-fails";

async fn reject_audits_for(db: &TestDatabase, flag: &str) {
    let conn = db.connect().await;
    let statements: Vec<String> = match conn.get_database_backend() {
        DbBackend::Sqlite => vec![format!(
            "CREATE TRIGGER reject_audit BEFORE INSERT ON feature_flag_audits
             WHEN NEW.flag_name = '{flag}'
             BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"
        )],
        _ => vec![
            "CREATE FUNCTION reject_audit() RETURNS trigger AS $$
             BEGIN RAISE EXCEPTION 'injected audit failure'; END $$ LANGUAGE plpgsql"
                .to_string(),
            format!(
                "CREATE TRIGGER reject_audit BEFORE INSERT ON feature_flag_audits
                 FOR EACH ROW WHEN (NEW.flag_name = '{flag}') EXECUTE FUNCTION reject_audit()"
            ),
        ],
    };
    for statement in statements {
        conn.execute_unprepared(&statement)
            .await
            .expect("install trigger");
    }
    conn.close().await.ok();
}

async fn failed_audit_write_rolls_back_the_change(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    let original = app
        .create_flag(pb::Flag {
            name: DOOMED.into(),
            percentage: 5.0,
            ..pb::Flag::default()
        })
        .await;
    reject_audits_for(&db, DOOMED).await;

    let update = flags
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: DOOMED.into(),
                percentage: 90.0,
                enabled: true,
                ..pb::Flag::default()
            }),
            update_mask: mask(&["percentage", "enabled"]),
            reason: "should not stick".into(),
            expected_revision: None,
        })
        .await;
    assert_eq!(update.expect_err("audit failure").code(), Code::Internal);

    let delete = flags
        .delete_flag(pb::DeleteFlagRequest {
            name: DOOMED.into(),
            reason: "should not stick".into(),
            expected_revision: None,
        })
        .await;
    assert_eq!(delete.expect_err("audit failure").code(), Code::Internal);

    // Nothing changed: not the row, not the audit trail, not the cache.
    let stored = flags
        .get_flag(pb::GetFlagRequest {
            name: DOOMED.into(),
        })
        .await
        .expect("still there")
        .into_inner();
    assert_eq!(stored, original);
    assert_eq!(app.audit_trail(DOOMED).await.len(), 1);
    assert_eq!(
        app.evaluate(DOOMED, "u", "").await,
        (false, pb::Reason::Disabled)
    );

    // The revision counter rolled back too: the next change takes the next number.
    let other = app
        .create_flag(pb::Flag {
            name: "unaffected".into(),
            ..pb::Flag::default()
        })
        .await;
    assert_eq!(other.revision, original.revision + 1);

    app.stop().await;
    db.remove().await;
}
