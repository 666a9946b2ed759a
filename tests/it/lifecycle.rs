//! The flag lifecycle through the gRPC client: create, get, list, update
//! with a mask, delete, and the audit entry each leaves.

use tonic::Code;
use vexil::grpc::pb::{self, AuditAction};

use crate::common::{Backend, TestApp, TestDatabase, as_actor, assert_status, mask, unique};

crate::backend_tests!(
    create_get_update_delete_with_audit,
    list_filters_and_pagination,
    groups,
    missing_flags_are_not_found,
);

async fn create_get_update_delete_with_audit(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    let name = unique("lifecycle.");

    let created = flags
        .create_flag(as_actor(
            "alice",
            pb::CreateFlagRequest {
                flag: Some(pb::Flag {
                    name: name.clone(),
                    description: "new dashboard".into(),
                    enabled: true,
                    percentage: 10.0,
                    whitelist: vec!["b".into(), "a".into()],
                    tags: vec!["ui".into()],
                    environments: vec!["staging".into(), "production".into()],
                    environment_overrides: [("staging".to_string(), true)].into(),
                    revision: 999, // output only: ignored
                    ..pb::Flag::default()
                }),
                reason: "launch".into(),
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.name, name);
    assert_eq!(created.whitelist, vec!["a", "b"], "returned sorted");
    assert_eq!(created.created_by, "alice");
    assert_eq!(created.updated_by, "alice");
    assert!(created.revision > 0 && created.revision != 999);

    let duplicate = flags
        .create_flag(pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                name: name.clone(),
                ..pb::Flag::default()
            }),
            reason: String::new(),
        })
        .await;
    assert_status(duplicate, Code::AlreadyExists, &name);

    let fetched = flags
        .get_flag(pb::GetFlagRequest { name: name.clone() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, created);

    // Only the masked fields change: description is sent but not masked.
    let updated = flags
        .update_flag(as_actor(
            "bob",
            pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: name.clone(),
                    percentage: 25.0,
                    enabled: false,
                    description: "ignored".into(),
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["percentage"]),
                reason: "ramp to 25%".into(),
                expected_revision: Some(created.revision),
            },
        ))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.percentage, 25.0);
    assert!(updated.enabled, "enabled was not masked");
    assert_eq!(updated.description, "new dashboard");
    assert_eq!(updated.whitelist, created.whitelist);
    assert_eq!(updated.environment_overrides, created.environment_overrides);
    assert_eq!(updated.created_by, "alice");
    assert_eq!(updated.updated_by, "bob");
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.revision > created.revision);

    // Evaluation sees the change at once (write-through cache).
    let answer = app
        .evaluation
        .clone()
        .evaluate(pb::EvaluateRequest {
            flag_name: name.clone(),
            user_id: "a".into(),
            environment: "production".into(),
            context: None,
        })
        .await
        .expect("evaluate")
        .into_inner();
    assert_eq!(answer.revision, updated.revision);
    assert_eq!(answer.reason(), pb::Reason::Whitelisted);

    let deleted = flags
        .delete_flag(as_actor(
            "carol",
            pb::DeleteFlagRequest {
                name: name.clone(),
                reason: "rolled out".into(),
                expected_revision: Some(updated.revision),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.revision > updated.revision);
    assert_status(
        flags
            .get_flag(pb::GetFlagRequest { name: name.clone() })
            .await,
        Code::NotFound,
        &name,
    );
    assert_eq!(
        app.evaluate(&name, "a", "production").await,
        (false, pb::Reason::FlagNotFound)
    );

    let trail = app.audit_trail(&name).await;
    let actions: Vec<AuditAction> = trail.iter().map(|e| e.action()).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Delete,
            AuditAction::Update,
            AuditAction::Create
        ],
        "newest first"
    );
    let (delete, update, create) = (&trail[0], &trail[1], &trail[2]);
    assert_eq!(
        (create.actor.as_str(), create.reason.as_str()),
        ("alice", "launch")
    );
    assert_eq!(create.before, None);
    assert_eq!(create.after.as_ref(), Some(&created));
    assert_eq!(create.revision, created.revision);
    assert_eq!(
        (update.actor.as_str(), update.reason.as_str()),
        ("bob", "ramp to 25%")
    );
    assert_eq!(update.before.as_ref(), Some(&created));
    assert_eq!(update.after.as_ref(), Some(&updated));
    assert_eq!(update.revision, updated.revision);
    assert_eq!(
        (delete.actor.as_str(), delete.reason.as_str()),
        ("carol", "rolled out")
    );
    assert_eq!(delete.before.as_ref(), Some(&updated));
    assert_eq!(delete.after, None);
    assert_eq!(delete.revision, deleted.revision);
    assert!(
        trail
            .iter()
            .all(|e| e.flag_name == name && e.created_at.is_some())
    );

    // Paging the audit trail.
    let page = flags
        .get_audit_trail(pb::GetAuditTrailRequest {
            flag_name: name.clone(),
            skip: 1,
            limit: 1,
            segment_name: String::new(),
        })
        .await
        .expect("audit page")
        .into_inner();
    assert_eq!(page.total, 3);
    assert_eq!(page.entries, vec![update.clone()]);

    app.stop().await;
    db.remove().await;
}

async fn list_filters_and_pagination(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    flags
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "checkout".into(),
                description: "checkout flags".into(),
                created_at: None,
            }),
        })
        .await
        .expect("create group");

    let flag = |name: &str, enabled, environments: &[&str], tags: &[&str], group: &str| pb::Flag {
        name: name.into(),
        enabled,
        environments: environments.iter().map(|e| e.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        group: group.into(),
        ..pb::Flag::default()
    };
    for f in [
        flag("a.everywhere", true, &[], &["ui"], ""),
        flag("b.prod", true, &["production"], &["ui", "beta"], "checkout"),
        flag("c.staging", false, &["staging"], &["beta"], "checkout"),
        flag("d.off", false, &[], &[], ""),
        flag("e.prod", true, &["production", "staging"], &["api"], ""),
    ] {
        app.create_flag(f).await;
    }

    let list = |request: pb::ListFlagsRequest| {
        let mut flags = flags.clone();
        async move {
            let response = flags.list_flags(request).await.expect("list").into_inner();
            let names: Vec<String> = response.flags.into_iter().map(|f| f.name).collect();
            (names, response.total)
        }
    };
    let all = list(pb::ListFlagsRequest::default()).await;
    assert_eq!(
        all,
        (
            vec!["a.everywhere", "b.prod", "c.staging", "d.off", "e.prod"]
                .into_iter()
                .map(String::from)
                .collect(),
            5
        )
    );
    let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        list(pb::ListFlagsRequest {
            environment: Some("production".into()),
            ..Default::default()
        })
        .await,
        (names(&["a.everywhere", "b.prod", "d.off", "e.prod"]), 4)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            tag: Some("beta".into()),
            ..Default::default()
        })
        .await,
        (names(&["b.prod", "c.staging"]), 2)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            enabled: Some(false),
            ..Default::default()
        })
        .await,
        (names(&["c.staging", "d.off"]), 2)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            group: Some("checkout".into()),
            ..Default::default()
        })
        .await,
        (names(&["b.prod", "c.staging"]), 2)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            environment: Some("staging".into()),
            enabled: Some(true),
            tag: Some("api".into()),
            ..Default::default()
        })
        .await,
        (names(&["e.prod"]), 1)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            skip: 1,
            limit: 2,
            ..Default::default()
        })
        .await,
        (names(&["b.prod", "c.staging"]), 5)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            skip: 4,
            limit: 10,
            ..Default::default()
        })
        .await,
        (names(&["e.prod"]), 5)
    );
    assert_eq!(
        list(pb::ListFlagsRequest {
            skip: 10,
            ..Default::default()
        })
        .await,
        (vec![], 5)
    );

    app.stop().await;
    db.remove().await;
}

async fn groups(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    let group = |name: &str| pb::CreateGroupRequest {
        group: Some(pb::Group {
            name: name.into(),
            description: format!("{name} flags"),
            created_at: None,
        }),
    };

    let created = flags
        .create_group(group("payments"))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.name, "payments");
    assert!(created.created_at.is_some());
    assert_status(
        flags.create_group(group("payments")).await,
        Code::AlreadyExists,
        "payments",
    );
    flags.create_group(group("admin")).await.expect("create");
    let listed: Vec<String> = flags
        .list_groups(pb::ListGroupsRequest {})
        .await
        .expect("list")
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(listed, vec!["admin", "payments"]);

    // A flag may name only an existing group.
    let orphan = flags
        .create_flag(pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                name: "orphan".into(),
                group: "nope".into(),
                ..pb::Flag::default()
            }),
            reason: String::new(),
        })
        .await;
    assert_status(orphan, Code::FailedPrecondition, "nope");
    assert_eq!(app.total_flags().await, 0);

    let member = app
        .create_flag(pb::Flag {
            name: "payments.new_checkout".into(),
            group: "payments".into(),
            ..pb::Flag::default()
        })
        .await;
    assert_eq!(member.group, "payments");
    assert_status(
        flags
            .delete_group(pb::DeleteGroupRequest {
                name: "payments".into(),
            })
            .await,
        Code::FailedPrecondition,
        "payments",
    );

    // Moving the flag out frees the group.
    flags
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: member.name.clone(),
                ..pb::Flag::default()
            }),
            update_mask: mask(&["group"]),
            reason: "ungroup".into(),
            expected_revision: None,
        })
        .await
        .expect("ungroup");
    flags
        .delete_group(pb::DeleteGroupRequest {
            name: "payments".into(),
        })
        .await
        .expect("delete group");
    assert_status(
        flags
            .delete_group(pb::DeleteGroupRequest {
                name: "payments".into(),
            })
            .await,
        Code::NotFound,
        "payments",
    );

    app.stop().await;
    db.remove().await;
}

async fn missing_flags_are_not_found(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    assert_status(
        flags
            .get_flag(pb::GetFlagRequest {
                name: "absent".into(),
            })
            .await,
        Code::NotFound,
        "absent",
    );
    assert_status(
        flags
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: "absent".into(),
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["enabled"]),
                reason: "r".into(),
                expected_revision: None,
            })
            .await,
        Code::NotFound,
        "absent",
    );
    assert_status(
        flags
            .delete_flag(pb::DeleteFlagRequest {
                name: "absent".into(),
                reason: "r".into(),
                expected_revision: None,
            })
            .await,
        Code::NotFound,
        "absent",
    );
    assert!(app.audit_trail("absent").await.is_empty());
    app.stop().await;
    db.remove().await;
}
