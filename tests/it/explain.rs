//! ExplainEvaluation agrees with Evaluate for every rule and 10,000 random
//! users and environments, names the deciding rule last, and reports the
//! bucket of the documented function (checked on the published vectors).

use vexil::grpc::pb::{self, EvaluationRule, Reason};

use crate::common::{Backend, Random, TestApp, TestDatabase, hours_from_now};

crate::backend_tests!(explanations_agree_with_evaluations);

const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "dev"];

fn deciding_rule(reason: Reason) -> EvaluationRule {
    match reason {
        Reason::FlagNotFound => EvaluationRule::FlagExists,
        Reason::Disabled => EvaluationRule::Enabled,
        Reason::NotStarted => EvaluationRule::StartsAt,
        Reason::Expired => EvaluationRule::ExpiresAt,
        Reason::EnvironmentNotAllowed => EvaluationRule::Environments,
        Reason::Blacklisted => EvaluationRule::Blacklist,
        Reason::Whitelisted => EvaluationRule::Whitelist,
        Reason::EnvironmentOverride => EvaluationRule::EnvironmentOverride,
        Reason::PercentageRollout | Reason::OutsideRollout => EvaluationRule::PercentageRollout,
        Reason::PrerequisiteFailed => EvaluationRule::Prerequisites,
        Reason::TargetMatch => EvaluationRule::Targets,
        Reason::RuleMatch => EvaluationRule::TargetingRules,
        Reason::Split | Reason::Default => EvaluationRule::Fallthrough,
        Reason::Unspecified => EvaluationRule::Unspecified,
    }
}

async fn explain(
    app: &TestApp,
    flag: &str,
    user: &str,
    environment: &str,
) -> pb::ExplainEvaluationResponse {
    app.flags
        .clone()
        .explain_evaluation(pb::ExplainEvaluationRequest {
            flag_name: flag.into(),
            user_id: user.into(),
            environment: environment.into(),
            at: None,
            context: None,
        })
        .await
        .expect("explain")
        .into_inner()
}

async fn explanations_agree_with_evaluations(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let on = |name: &str| pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    };
    for flag in [
        pb::Flag {
            percentage: 37.5,
            ..on("rollout")
        },
        pb::Flag {
            percentage: 20.0,
            whitelist: vec!["u7".into()],
            blacklist: vec!["u9".into()],
            ..on("lists")
        },
        pb::Flag {
            percentage: 50.0,
            environment_overrides: [("staging".to_string(), false), ("dev".to_string(), true)]
                .into(),
            ..on("overrides")
        },
        pb::Flag {
            percentage: 100.0,
            environments: vec!["prod".into()],
            ..on("prod-only")
        },
        pb::Flag {
            enabled: false,
            ..on("killed")
        },
        pb::Flag {
            starts_at: hours_from_now(1),
            ..on("later")
        },
        pb::Flag {
            expires_at: hours_from_now(-1),
            ..on("over")
        },
    ] {
        app.create_flag(flag).await;
    }
    let names = [
        "rollout",
        "lists",
        "overrides",
        "prod-only",
        "killed",
        "later",
        "over",
        "missing",
    ];

    let mut random = Random::seeded();
    let mut reasons = std::collections::HashSet::new();
    for i in 0..10_000 {
        let flag = names[i % names.len()];
        let environment = ENVIRONMENTS[(random.next_u64() % 3) as usize];
        let user = match random.next_u64() % 20 {
            0 => "u7".to_string(),
            1 => "u9".to_string(),
            2 => String::new(),
            _ => format!("user-{}", random.next_u64()),
        };
        let evaluated = app
            .evaluation
            .clone()
            .evaluate(pb::EvaluateRequest {
                flag_name: flag.into(),
                user_id: user.clone(),
                environment: environment.into(),
                context: None,
            })
            .await
            .expect("evaluate")
            .into_inner();
        let explained = explain(&app, flag, &user, environment).await;
        let case = format!("{flag} {user:?} {environment}");
        assert_eq!(
            (explained.enabled, explained.reason, explained.revision),
            (evaluated.enabled, evaluated.reason, evaluated.revision),
            "{case}"
        );
        let last = explained.steps.last().expect("steps");
        assert!(last.decided, "{case}");
        assert_eq!(last.rule(), deciding_rule(evaluated.reason()), "{case}");
        assert_eq!(explained.steps.iter().filter(|s| s.decided).count(), 1);
        // Every step says why it passed or decided.
        assert!(
            explained.steps.iter().all(|s| !s.detail.is_empty()),
            "{case}"
        );
        if last.rule() == EvaluationRule::PercentageRollout && !user.is_empty() {
            let bucket = vexil::engine::bucket::bucket(flag, &user);
            assert!(
                last.detail.contains(&format!("bucket {bucket} ")),
                "{case}: {last:?}"
            );
            assert_eq!(explained.bucket, Some(bucket), "{case}");
            assert_eq!(
                explained.enabled,
                bucket < explained.threshold.expect("threshold")
            );
        }
        reasons.insert(evaluated.reason);
    }
    assert_eq!(reasons.len(), 10, "every reason was exercised: {reasons:?}");

    // The bucket is the published function.
    #[derive(serde::Deserialize)]
    struct Vector {
        flag: String,
        user: String,
        bucket: u32,
    }
    let vectors: Vec<Vector> =
        serde_json::from_str(include_str!("../../docs/bucketing-vectors.json")).expect("vectors");
    let mut created = std::collections::HashSet::new();
    for vector in vectors.iter().filter(|v| !v.user.is_empty()) {
        if created.insert(vector.flag.clone()) {
            app.create_flag(pb::Flag {
                percentage: 50.0,
                ..on(&vector.flag)
            })
            .await;
        }
        let explained = explain(&app, &vector.flag, &vector.user, "").await;
        assert_eq!(
            explained.bucket,
            Some(vector.bucket),
            "{} {:?}",
            vector.flag,
            vector.user
        );
    }

    app.stop().await;
    db.remove().await;
}
