//! Every evaluation reason and rule precedence, over gRPC, plus bulk
//! evaluation order and the periodic cache refresh between replicas.

use std::time::Duration;

use vexil::grpc::pb::{self, Reason};

use crate::common::{Backend, TestApp, TestDatabase, as_actor, hours_from_now, mask};

crate::backend_tests!(
    every_reason_in_rule_order,
    bulk_evaluate_keeps_request_order,
    cache_refreshes_from_the_store,
);

fn users(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

async fn every_reason_in_rule_order(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let on = |name: &str| pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    };
    let flags = [
        pb::Flag {
            enabled: false,
            whitelist: users(&["u"]),
            percentage: 100.0,
            ..on("disabled-beats-whitelist")
        },
        pb::Flag {
            starts_at: hours_from_now(1),
            whitelist: users(&["u"]),
            ..on("not-started")
        },
        pb::Flag {
            expires_at: hours_from_now(-1),
            whitelist: users(&["u"]),
            ..on("expired")
        },
        pb::Flag {
            starts_at: hours_from_now(-1),
            expires_at: hours_from_now(1),
            percentage: 100.0,
            ..on("in-window")
        },
        pb::Flag {
            environments: users(&["staging"]),
            whitelist: users(&["u"]),
            ..on("env-not-allowed")
        },
        pb::Flag {
            whitelist: users(&["u"]),
            blacklist: users(&["u"]),
            percentage: 100.0,
            ..on("blacklist-beats-whitelist")
        },
        pb::Flag {
            whitelist: users(&["u"]),
            environment_overrides: [("production".to_string(), false)].into(),
            ..on("whitelist-beats-override")
        },
        pb::Flag {
            environment_overrides: [("production".to_string(), false)].into(),
            percentage: 100.0,
            ..on("override-beats-rollout")
        },
        pb::Flag {
            percentage: 100.0,
            ..on("everyone")
        },
        on("no-one"),
    ];
    for flag in flags {
        app.create_flag(flag).await;
    }

    let expect = [
        ("disabled-beats-whitelist", false, Reason::Disabled),
        ("not-started", false, Reason::NotStarted),
        ("expired", false, Reason::Expired),
        ("in-window", true, Reason::PercentageRollout),
        ("env-not-allowed", false, Reason::EnvironmentNotAllowed),
        ("blacklist-beats-whitelist", false, Reason::Blacklisted),
        ("whitelist-beats-override", true, Reason::Whitelisted),
        ("override-beats-rollout", false, Reason::EnvironmentOverride),
        ("everyone", true, Reason::PercentageRollout),
        ("no-one", false, Reason::OutsideRollout),
        ("never-created", false, Reason::FlagNotFound),
    ];
    for (flag, enabled, reason) in expect {
        assert_eq!(
            app.evaluate(flag, "u", "production").await,
            (enabled, reason),
            "{flag}"
        );
    }
    // An empty user is inside a rollout only at 100%.
    assert_eq!(
        app.evaluate("everyone", "", "production").await,
        (true, Reason::PercentageRollout)
    );

    // A percentage rollout splits users by their bucket, stably.
    let mut flags = app.flags.clone();
    flags
        .update_flag(as_actor(
            "ops",
            pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    percentage: 50.0,
                    ..on("no-one")
                }),
                update_mask: mask(&["percentage"]),
                reason: "half".into(),
                expected_revision: None,
            },
        ))
        .await
        .expect("update");
    let mut inside = 0;
    for i in 0..200 {
        let user = format!("user-{i}");
        let (enabled, reason) = app.evaluate("no-one", &user, "production").await;
        let expected_inside = vexil::engine::bucket::in_rollout("no-one", &user, 50.0);
        assert_eq!(enabled, expected_inside, "{user}");
        assert_eq!(
            reason,
            if enabled {
                Reason::PercentageRollout
            } else {
                Reason::OutsideRollout
            }
        );
        inside += usize::from(enabled);
    }
    assert!(
        (60..=140).contains(&inside),
        "{inside} of 200 inside a 50% rollout"
    );

    app.stop().await;
    db.remove().await;
}

async fn bulk_evaluate_keeps_request_order(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    for (name, percentage) in [("zeta", 100.0), ("alpha", 0.0), ("mid", 100.0)] {
        app.create_flag(pb::Flag {
            name: name.into(),
            enabled: true,
            percentage,
            ..pb::Flag::default()
        })
        .await;
    }
    let mut evaluation = app.evaluation.clone();
    let bulk = |names: &[&str]| pb::BulkEvaluateRequest {
        flag_names: names.iter().map(|n| n.to_string()).collect(),
        user_id: "u".into(),
        environment: "production".into(),
        context: None,
    };
    let answer = evaluation
        .bulk_evaluate(bulk(&["zeta", "unknown", "alpha", "zeta"]))
        .await
        .expect("bulk")
        .into_inner();
    let got: Vec<(String, bool, Reason)> = answer
        .results
        .iter()
        .map(|r| (r.flag_name.clone(), r.enabled, r.reason()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("zeta".into(), true, Reason::PercentageRollout),
            ("unknown".into(), false, Reason::FlagNotFound),
            ("alpha".into(), false, Reason::OutsideRollout),
            ("zeta".into(), true, Reason::PercentageRollout),
        ]
    );
    assert!(answer.results[0].revision > 0);
    assert_eq!(answer.results[1].revision, 0);

    let everything = evaluation
        .bulk_evaluate(bulk(&[]))
        .await
        .expect("bulk all")
        .into_inner();
    let names: Vec<&str> = everything
        .results
        .iter()
        .map(|r| r.flag_name.as_str())
        .collect();
    assert_eq!(names, vec!["alpha", "mid", "zeta"]);

    app.stop().await;
    db.remove().await;
}

/// Two servers on one database: a change through A reaches B's cache by the
/// periodic refresh (FF_CACHE_TTL, here 1 s), without any bus.
async fn cache_refreshes_from_the_store(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let a = TestApp::start(&db.url).await;
    let b = TestApp::start_with(vexil::Config {
        cache_ttl_secs: 1,
        ..crate::common::config(&db.url)
    })
    .await;
    a.create_flag(pb::Flag {
        name: "shared".into(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;

    let mut seen = (false, Reason::FlagNotFound);
    for _ in 0..100 {
        seen = b.evaluate("shared", "u", "").await;
        if seen.1 != Reason::FlagNotFound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (true, Reason::PercentageRollout));

    a.flags
        .clone()
        .delete_flag(pb::DeleteFlagRequest {
            name: "shared".into(),
            reason: "cleanup".into(),
            expected_revision: None,
        })
        .await
        .expect("delete");
    for _ in 0..100 {
        seen = b.evaluate("shared", "u", "").await;
        if seen.1 == Reason::FlagNotFound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (false, Reason::FlagNotFound));

    a.stop().await;
    b.stop().await;
    db.remove().await;
}
