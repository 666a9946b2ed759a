//! A boolean flag's `percentage` and its equivalent in the new model (a
//! fallthrough split with `on` first, salted by the flag's name) give
//! every user the same answer; raising `on`'s weight only adds users.

use chrono::DateTime;
use proptest::prelude::*;
use vexil_engine::{
    EvalContext, Flag, FlagName, FlagSpec, Reason, Serve, Split, Stamp, WeightedVariant, bucket,
    evaluate,
};

fn build(name: &str, spec: FlagSpec) -> Flag {
    let stamp = Stamp {
        revision: 1,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
        created_by: String::new(),
        updated_by: String::new(),
    };
    Flag::new(
        FlagName::parse("name", name.to_string()).expect("name"),
        spec,
        stamp,
    )
}

fn split(on: u32) -> Serve {
    Serve::Split(Split {
        weights: vec![
            WeightedVariant {
                variant: "on".into(),
                weight: on,
            },
            WeightedVariant {
                variant: "off".into(),
                weight: bucket::BUCKETS - on,
            },
        ],
        bucket_by: String::new(),
        salt: None,
        bucketing: Default::default(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn a_rollout_and_its_split_agree(
        name in "[a-z][a-z0-9._-]{0,20}",
        user in "[ -~]{0,24}",
        percentage in prop_oneof![0.0..=100.0f64, Just(0.0), Just(100.0), Just(99.995), Just(0.005)],
    ) {
        let threshold = bucket::threshold(percentage);
        let legacy = build(&name, FlagSpec { enabled: true, percentage, ..FlagSpec::default() });
        let modern = build(&name, FlagSpec { enabled: true, fallthrough: Some(split(threshold)), ..FlagSpec::default() });
        prop_assert_eq!(modern.spec().validate("flag"), Ok(()));
        let ctx = EvalContext::bare(&user, "production");
        let now = DateTime::UNIX_EPOCH;
        let old = evaluate(Some(&legacy), &ctx, now);
        let new = evaluate(Some(&modern), &ctx, now);
        prop_assert_eq!(old.enabled, new.enabled);
        prop_assert_eq!(old.variant, new.variant);
        prop_assert!(matches!(old.reason, Reason::PercentageRollout | Reason::OutsideRollout));
        if user.is_empty() && threshold < bucket::BUCKETS && threshold > 0 {
            prop_assert_eq!(new.reason, Reason::Default);
        } else {
            prop_assert_eq!(new.reason, Reason::Split);
        }
    }

    #[test]
    fn raising_on_only_adds_users(
        user in "[a-z0-9]{1,16}",
        low in 0u32..=10_000,
        raise in 0u32..=10_000,
    ) {
        let high = (low + raise).min(bucket::BUCKETS);
        let at = |on: u32| {
            let flag = build("exp", FlagSpec { enabled: true, fallthrough: Some(split(on)), ..FlagSpec::default() });
            evaluate(Some(&flag), &EvalContext::bare(&user, ""), DateTime::UNIX_EPOCH).enabled
        };
        prop_assert!(!at(low) || at(high));
    }
}
