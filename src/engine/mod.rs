//! The evaluation engine: pure and synchronous. It reads no clock (`now` is
//! passed in), does no I/O and allocates nothing. No tonic, sea_orm or tokio.

pub mod bucket;

use chrono::{DateTime, Utc};

use crate::domain::{EvalContext, Evaluation, Flag, Reason};

/// Decides one flag for one context. The first rule that applies wins:
/// missing, disabled, time window, allowed environments, blacklist,
/// whitelist, environment override, percentage rollout.
pub fn evaluate(flag: Option<&Flag>, ctx: &EvalContext<'_>, now: DateTime<Utc>) -> Evaluation {
    let Some(flag) = flag else {
        return Evaluation::off(Reason::FlagNotFound);
    };
    let spec = &flag.spec;
    if !spec.enabled {
        return Evaluation::off(Reason::Disabled);
    }
    if spec.starts_at.is_some_and(|starts_at| now < starts_at) {
        return Evaluation::off(Reason::NotStarted);
    }
    if spec.expires_at.is_some_and(|expires_at| now >= expires_at) {
        return Evaluation::off(Reason::Expired);
    }
    if !spec.environments.is_empty() && !spec.environments.iter().any(|env| env == ctx.environment)
    {
        return Evaluation::off(Reason::EnvironmentNotAllowed);
    }
    if spec.blacklist.contains(ctx.user_id) {
        return Evaluation::off(Reason::Blacklisted);
    }
    if spec.whitelist.contains(ctx.user_id) {
        return Evaluation::on(Reason::Whitelisted);
    }
    if let Some(&enabled) = spec.environment_overrides.get(ctx.environment) {
        return Evaluation {
            enabled,
            reason: Reason::EnvironmentOverride,
        };
    }
    if bucket::in_rollout(flag.name.as_str(), ctx.user_id, spec.percentage) {
        Evaluation::on(Reason::PercentageRollout)
    } else {
        Evaluation::off(Reason::OutsideRollout)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{FlagName, FlagSpec};

    const USER: &str = "user-1";
    const ENV: &str = "production";

    fn flag(spec: FlagSpec) -> Flag {
        Flag {
            name: FlagName::parse("name", "checkout.v2").unwrap(),
            spec,
            revision: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            created_by: "test".into(),
            updated_by: "test".into(),
        }
    }

    fn users(ids: &[&str]) -> crate::domain::UserSet {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn on(spec: FlagSpec) -> FlagSpec {
        FlagSpec {
            enabled: true,
            ..spec
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::days(20_000)
    }

    /// Table of (case, spec, expected). Each row isolates one rule or one
    /// precedence between two rules.
    #[test]
    fn rules_apply_in_order() {
        let hour = TimeDelta::hours(1);
        let cases: Vec<(&str, FlagSpec, Evaluation)> = vec![
            (
                "disabled beats whitelist",
                FlagSpec {
                    enabled: false,
                    whitelist: users(&[USER]),
                    percentage: 100.0,
                    ..FlagSpec::default()
                },
                Evaluation::off(Reason::Disabled),
            ),
            (
                "not started",
                on(FlagSpec {
                    starts_at: Some(now() + hour),
                    whitelist: users(&[USER]),
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::NotStarted),
            ),
            (
                "starts_at is inclusive",
                on(FlagSpec {
                    starts_at: Some(now()),
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                Evaluation::on(Reason::PercentageRollout),
            ),
            (
                "expires_at is exclusive",
                on(FlagSpec {
                    expires_at: Some(now()),
                    whitelist: users(&[USER]),
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::Expired),
            ),
            (
                "inside the window",
                on(FlagSpec {
                    starts_at: Some(now() - hour),
                    expires_at: Some(now() + hour),
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                Evaluation::on(Reason::PercentageRollout),
            ),
            (
                "environment not allowed beats whitelist",
                on(FlagSpec {
                    environments: vec!["staging".into()],
                    whitelist: users(&[USER]),
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::EnvironmentNotAllowed),
            ),
            (
                "blacklist beats whitelist",
                on(FlagSpec {
                    environments: vec![ENV.into()],
                    whitelist: users(&[USER]),
                    blacklist: users(&[USER]),
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::Blacklisted),
            ),
            (
                "whitelist beats override",
                on(FlagSpec {
                    whitelist: users(&[USER]),
                    environment_overrides: [(ENV.to_string(), false)].into(),
                    ..FlagSpec::default()
                }),
                Evaluation::on(Reason::Whitelisted),
            ),
            (
                "override off beats rollout",
                on(FlagSpec {
                    environment_overrides: [(ENV.to_string(), false)].into(),
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::EnvironmentOverride),
            ),
            (
                "override on beats rollout",
                on(FlagSpec {
                    environment_overrides: [(ENV.to_string(), true)].into(),
                    ..FlagSpec::default()
                }),
                Evaluation::on(Reason::EnvironmentOverride),
            ),
            (
                "override for another environment is ignored",
                on(FlagSpec {
                    environment_overrides: [("staging".to_string(), true)].into(),
                    ..FlagSpec::default()
                }),
                Evaluation::off(Reason::OutsideRollout),
            ),
            (
                "100 percent is everyone",
                on(FlagSpec {
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                Evaluation::on(Reason::PercentageRollout),
            ),
            (
                "0 percent is no one",
                on(FlagSpec::default()),
                Evaluation::off(Reason::OutsideRollout),
            ),
        ];
        let ctx = EvalContext {
            user_id: USER,
            environment: ENV,
        };
        for (case, spec, expected) in cases {
            assert_eq!(evaluate(Some(&flag(spec)), &ctx, now()), expected, "{case}");
        }
    }

    #[test]
    fn missing_flag_is_off() {
        let ctx = EvalContext {
            user_id: USER,
            environment: ENV,
        };
        assert_eq!(
            evaluate(None, &ctx, now()),
            Evaluation::off(Reason::FlagNotFound)
        );
    }

    #[test]
    fn empty_user_is_inside_only_when_everyone_is() {
        let ctx = EvalContext {
            user_id: "",
            environment: ENV,
        };
        let at = |percentage| {
            evaluate(
                Some(&flag(on(FlagSpec {
                    percentage,
                    ..FlagSpec::default()
                }))),
                &ctx,
                now(),
            )
        };
        assert_eq!(at(99.99), Evaluation::off(Reason::OutsideRollout));
        assert_eq!(
            at(99.994_999_999_999_99),
            Evaluation::off(Reason::OutsideRollout)
        );
        // Rounds to a threshold of 10,000 basis points: everyone.
        assert_eq!(at(99.995), Evaluation::on(Reason::PercentageRollout));
        assert_eq!(at(100.0), Evaluation::on(Reason::PercentageRollout));
    }
}
