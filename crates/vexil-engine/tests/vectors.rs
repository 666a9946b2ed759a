//! Property test: for random flags, whenever the engine reaches the rollout
//! for a published vector's flag and user, its answer is the one the
//! published bucket gives (`bucket < threshold(percentage)`), and it never
//! reaches the rollout for a listed user. The vectors are the contract
//! other languages implement.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use vexil_engine::{EvalContext, Flag, FlagName, FlagSpec, Reason, Stamp, bucket, evaluate};

#[derive(serde::Deserialize, Clone, Debug)]
struct Vector {
    flag: String,
    user: String,
    bucket: u32,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("../../../docs/bucketing-vectors.json")).expect("vectors")
}

fn now() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + TimeDelta::days(20_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn rollout_answers_follow_the_published_buckets(
        index in 0usize..1_000,
        percentage in prop_oneof![0.0..=100.0f64, Just(0.0), Just(100.0), Just(99.995), Just(0.005)],
        enabled in prop::bool::weighted(0.9),
        listed in prop::bool::weighted(0.2),
        blacklisted in prop::bool::weighted(0.2),
        environment in prop::sample::select(vec!["production", "staging", ""]),
        allowed in prop::bool::ANY,
        overridden in prop::option::of(prop::bool::ANY),
    ) {
        let vectors = vectors();
        let vector = &vectors[index % vectors.len()];
        let Ok(name) = FlagName::parse("name", vector.flag.clone()) else {
            return Ok(());
        };
        let user = vector.user.as_str();
        let spec = FlagSpec {
            enabled,
            percentage,
            whitelist: if listed && !user.is_empty() { [user.to_string()].into_iter().collect() } else { Default::default() },
            blacklist: if blacklisted && !user.is_empty() { [user.to_string()].into_iter().collect() } else { Default::default() },
            environments: if allowed { vec![] } else { vec!["production".into()] },
            environment_overrides: overridden.map(|on| [("staging".to_string(), on)].into()).unwrap_or_default(),
            ..FlagSpec::default()
        };
        let flag = Flag::new(name, spec, Stamp {
            revision: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            created_by: "test".into(),
            updated_by: "test".into(),
        });
        let answer = evaluate(Some(&flag), &EvalContext::bare(user, environment), now());
        match answer.reason {
            Reason::PercentageRollout | Reason::OutsideRollout => {
                let inside = if user.is_empty() {
                    bucket::threshold(percentage) >= bucket::BUCKETS
                } else {
                    vector.bucket < bucket::threshold(percentage)
                };
                prop_assert_eq!(answer.enabled, inside);
                prop_assert!(!(listed || blacklisted) || user.is_empty());
            }
            Reason::Disabled => prop_assert!(!enabled),
            Reason::Blacklisted => prop_assert!(blacklisted && !answer.enabled),
            Reason::Whitelisted => prop_assert!(listed && !blacklisted && answer.enabled),
            Reason::EnvironmentNotAllowed => prop_assert!(!allowed && environment != "production"),
            Reason::EnvironmentOverride => prop_assert_eq!(Some(answer.enabled), overridden),
            other => prop_assert!(false, "unexpected reason {:?}", other),
        }
    }
}
