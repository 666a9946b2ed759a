//! The rules: pure and synchronous. They read no clock (`now` is passed
//! in), do no I/O and allocate nothing.

use chrono::{DateTime, Utc};

use crate::bucket;
use crate::{EvalContext, Evaluation, Flag, Reason};

/// The rules, in the order the engine checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    FlagExists,
    Enabled,
    StartsAt,
    ExpiresAt,
    Environments,
    Blacklist,
    Whitelist,
    EnvironmentOverride,
    PercentageRollout,
}

/// One rule checked: whether it decided the answer, and why, in words
/// ("user \"u1\" is not on the blacklist (3 ids)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub rule: Rule,
    pub decided: bool,
    pub detail: String,
}

/// An evaluation with the steps that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub evaluation: Evaluation,
    pub steps: Vec<Step>,
    /// The user's bucket (0-9,999), when the rollout was reached with a
    /// non-empty user id.
    pub bucket: Option<u32>,
    /// The rollout threshold in basis points, when the rollout was reached.
    pub threshold: Option<u32>,
}

/// Decides one flag for one context. The first rule that applies wins:
/// missing, disabled, time window, allowed environments, blacklist,
/// whitelist, environment override, percentage rollout.
pub fn evaluate(flag: Option<&Flag>, ctx: &EvalContext<'_>, now: DateTime<Utc>) -> Evaluation {
    decide(flag, ctx, now, &mut Silent)
}

/// [`evaluate`], recording every rule checked, the bucket and the
/// threshold. The same code decides both; only this one allocates.
pub fn explain(flag: Option<&Flag>, ctx: &EvalContext<'_>, now: DateTime<Utc>) -> Explanation {
    let mut trace = Trace::default();
    let evaluation = decide(flag, ctx, now, &mut trace);
    Explanation {
        evaluation,
        steps: trace.steps,
        bucket: trace.bucket,
        threshold: trace.threshold,
    }
}

/// Whether `flag` gives every user in every environment the same answer
/// from `now` until the flag itself changes: killed, expired, or no lists,
/// no environment rules, no time boundary still ahead and a rollout of
/// nobody or everybody. Such an answer may be cached per flag (what
/// OpenFeature calls STATIC); when unsure, this says no.
pub fn is_static(flag: &Flag, now: DateTime<Utc>) -> bool {
    let spec = &flag.spec;
    if !spec.enabled {
        return true;
    }
    if spec.starts_at.is_some_and(|starts_at| now < starts_at) {
        return false;
    }
    match spec.expires_at {
        Some(expires_at) if now >= expires_at => return true,
        Some(_) => return false,
        None => {}
    }
    let threshold = bucket::threshold(spec.percentage);
    spec.environments.is_empty()
        && spec.environment_overrides.is_empty()
        && spec.whitelist.is_empty()
        && spec.blacklist.is_empty()
        && (threshold == 0 || threshold >= bucket::BUCKETS)
}

/// Whether `flag`'s answer can depend on the time: a caller that reads the
/// clock only for such flags passes any `now` for the others.
pub fn needs_clock(flag: &Flag) -> bool {
    flag.spec.starts_at.is_some() || flag.spec.expires_at.is_some()
}

/// Watches the engine decide. The plain path's observer does nothing and
/// compiles away.
trait Observer {
    /// `detail` says why, and is called only by observers that keep it.
    fn checked(&mut self, rule: Rule, decided: bool, detail: impl FnOnce(bool) -> String);
    fn rollout(&mut self, bucket: Option<u32>, threshold: u32);
}

struct Silent;

impl Observer for Silent {
    #[inline(always)]
    fn checked(&mut self, _: Rule, _: bool, _: impl FnOnce(bool) -> String) {}
    #[inline(always)]
    fn rollout(&mut self, _: Option<u32>, _: u32) {}
}

#[derive(Default)]
struct Trace {
    steps: Vec<Step>,
    bucket: Option<u32>,
    threshold: Option<u32>,
}

impl Observer for Trace {
    fn checked(&mut self, rule: Rule, decided: bool, detail: impl FnOnce(bool) -> String) {
        self.steps.push(Step {
            rule,
            decided,
            detail: detail(decided),
        });
    }
    fn rollout(&mut self, bucket: Option<u32>, threshold: u32) {
        self.bucket = bucket;
        self.threshold = Some(threshold);
    }
}

/// Checks `rule`: tells the observer (with why, in words, for the ones
/// that keep it), and answers whether it decided.
#[inline(always)]
fn check(
    observer: &mut impl Observer,
    rule: Rule,
    decided: bool,
    detail: impl FnOnce(bool) -> String,
) -> bool {
    observer.checked(rule, decided, detail);
    decided
}

/// `at` as RFC 3339, to the second.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A list's size in words.
fn ids(count: usize) -> String {
    match count {
        1 => "1 id".to_owned(),
        n => format!("{n} ids"),
    }
}

fn decide(
    flag: Option<&Flag>,
    ctx: &EvalContext<'_>,
    now: DateTime<Utc>,
    observer: &mut impl Observer,
) -> Evaluation {
    let Some(flag) = flag else {
        check(observer, Rule::FlagExists, true, |_| {
            "no flag has this name".into()
        });
        return Evaluation::off(Reason::FlagNotFound);
    };
    check(observer, Rule::FlagExists, false, |_| {
        format!("the flag exists, at revision {}", flag.revision)
    });
    let spec = &flag.spec;
    if check(observer, Rule::Enabled, !spec.enabled, |killed| {
        if killed {
            "enabled is false: the flag is off for everyone".into()
        } else {
            "enabled is true".into()
        }
    }) {
        return Evaluation::off(Reason::Disabled);
    }
    let not_started = spec.starts_at.is_some_and(|starts_at| now < starts_at);
    if check(observer, Rule::StartsAt, not_started, |_| {
        match spec.starts_at {
            None => "no start time".into(),
            Some(at) if not_started => format!("starts at {}, after {}", time(at), time(now)),
            Some(at) => format!("started at {}", time(at)),
        }
    }) {
        return Evaluation::off(Reason::NotStarted);
    }
    let expired = spec.expires_at.is_some_and(|expires_at| now >= expires_at);
    if check(observer, Rule::ExpiresAt, expired, |_| {
        match spec.expires_at {
            None => "no expiry time".into(),
            Some(at) if expired => format!("expired at {}", time(at)),
            Some(at) => format!("expires at {}, after {}", time(at), time(now)),
        }
    }) {
        return Evaluation::off(Reason::Expired);
    }
    if check(
        observer,
        Rule::Environments,
        !spec.environments.is_empty()
            && !spec.environments.iter().any(|env| env == ctx.environment),
        |refused| match (spec.environments.is_empty(), refused) {
            (true, _) => "allowed in every environment".into(),
            (false, true) => format!(
                "environment {:?} is not among the allowed {:?}",
                ctx.environment, spec.environments
            ),
            (false, false) => format!("environment {:?} is allowed", ctx.environment),
        },
    ) {
        return Evaluation::off(Reason::EnvironmentNotAllowed);
    }
    if check(
        observer,
        Rule::Blacklist,
        spec.blacklist.contains(ctx.user_id),
        |listed| match listed {
            true => format!("user {:?} is on the blacklist", ctx.user_id),
            false => format!(
                "user {:?} is not on the blacklist ({})",
                ctx.user_id,
                ids(spec.blacklist.len())
            ),
        },
    ) {
        return Evaluation::off(Reason::Blacklisted);
    }
    if check(
        observer,
        Rule::Whitelist,
        spec.whitelist.contains(ctx.user_id),
        |listed| match listed {
            true => format!("user {:?} is on the whitelist", ctx.user_id),
            false => format!(
                "user {:?} is not on the whitelist ({})",
                ctx.user_id,
                ids(spec.whitelist.len())
            ),
        },
    ) {
        return Evaluation::on(Reason::Whitelisted);
    }
    let overridden = spec.environment_overrides.get(ctx.environment).copied();
    if let Some(enabled) = overridden {
        check(observer, Rule::EnvironmentOverride, true, |_| {
            let state = if enabled { "on" } else { "off" };
            format!("environment {:?} is overridden: {state}", ctx.environment)
        });
        return Evaluation {
            enabled,
            reason: Reason::EnvironmentOverride,
        };
    }
    check(observer, Rule::EnvironmentOverride, false, |_| {
        format!("no override for environment {:?}", ctx.environment)
    });
    // The rollout, as `bucket::in_rollout` defines it.
    let threshold = bucket::threshold(spec.percentage);
    let (bucket, inside) = if ctx.user_id.is_empty() {
        (None, threshold >= bucket::BUCKETS)
    } else {
        let bucket = bucket::bucket(flag.name.as_str(), ctx.user_id);
        (Some(bucket), bucket < threshold)
    };
    observer.rollout(bucket, threshold);
    check(observer, Rule::PercentageRollout, true, |_| {
        let side = if inside { "inside" } else { "outside" };
        match bucket {
            None => format!(
                "no user id: inside only at 100% (threshold {threshold} of {}): {side}",
                bucket::BUCKETS
            ),
            Some(bucket) if inside => format!(
                "bucket {bucket} is below the threshold {threshold} ({}%): {side}",
                spec.percentage
            ),
            Some(bucket) => format!(
                "bucket {bucket} is not below the threshold {threshold} ({}%): {side}",
                spec.percentage
            ),
        }
    });
    if inside {
        Evaluation::on(Reason::PercentageRollout)
    } else {
        Evaluation::off(Reason::OutsideRollout)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::{FlagName, FlagSpec};

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

    fn users(ids: &[&str]) -> crate::UserSet {
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

    #[test]
    fn explanations_agree_with_evaluations_and_the_rollout_function() {
        let flags: Vec<Flag> = vec![
            flag(on(FlagSpec {
                percentage: 37.5,
                ..FlagSpec::default()
            })),
            flag(on(FlagSpec {
                percentage: 0.09499999999999999,
                whitelist: ["u7".to_string()].into_iter().collect(),
                blacklist: ["u9".to_string()].into_iter().collect(),
                environment_overrides: [("staging".to_string(), false)].into(),
                ..FlagSpec::default()
            })),
            flag(FlagSpec::default()),
        ];
        for flag in &flags {
            for environment in [ENV, "staging"] {
                for i in 0..2_000 {
                    let user = if i == 0 {
                        String::new()
                    } else {
                        format!("u{i}")
                    };
                    let ctx = EvalContext {
                        user_id: &user,
                        environment,
                    };
                    let explained = explain(Some(flag), &ctx, now());
                    assert_eq!(explained.evaluation, evaluate(Some(flag), &ctx, now()));
                    let last = explained.steps.last().expect("a step");
                    assert!(last.decided);
                    assert_eq!(explained.steps.iter().filter(|s| s.decided).count(), 1);
                    if last.rule == Rule::PercentageRollout {
                        assert_eq!(
                            explained.evaluation.enabled,
                            bucket::in_rollout(flag.name.as_str(), &user, flag.spec.percentage)
                        );
                        assert_eq!(
                            explained.bucket,
                            (!user.is_empty()).then(|| bucket::bucket(flag.name.as_str(), &user))
                        );
                    }
                }
            }
        }
        let missing = explain(
            None,
            &EvalContext {
                user_id: "u",
                environment: ENV,
            },
            now(),
        );
        assert_eq!(
            missing.steps,
            [Step {
                rule: Rule::FlagExists,
                decided: true,
                detail: "no flag has this name".into(),
            }]
        );
    }

    /// Each step says why, in words, with the values it compared.
    #[test]
    fn explanations_say_why_each_rule_passed_or_decided() {
        let flag = flag(on(FlagSpec {
            percentage: 25.0,
            environments: vec![ENV.into(), "staging".into()],
            blacklist: users(&["u8", "u9"]),
            whitelist: users(&["u7"]),
            expires_at: Some(now() + TimeDelta::hours(1)),
            ..FlagSpec::default()
        }));
        let ctx = EvalContext {
            user_id: USER,
            environment: ENV,
        };
        let explained = explain(Some(&flag), &ctx, now());
        let details: Vec<&str> = explained.steps.iter().map(|s| s.detail.as_str()).collect();
        let bucket = bucket::bucket(flag.name.as_str(), USER);
        let side = if bucket < 2500 {
            format!("bucket {bucket} is below the threshold 2500 (25%): inside")
        } else {
            format!("bucket {bucket} is not below the threshold 2500 (25%): outside")
        };
        assert_eq!(
            details,
            [
                "the flag exists, at revision 1",
                "enabled is true",
                "no start time",
                "expires at 2024-10-04T01:00:00Z, after 2024-10-04T00:00:00Z",
                "environment \"production\" is allowed",
                "user \"user-1\" is not on the blacklist (2 ids)",
                "user \"user-1\" is not on the whitelist (1 id)",
                "no override for environment \"production\"",
                side.as_str(),
            ]
        );
        let refused = explain(
            Some(&flag),
            &EvalContext {
                user_id: "u9",
                environment: "dev",
            },
            now(),
        );
        assert_eq!(
            refused.steps.last().map(|s| s.detail.as_str()),
            Some("environment \"dev\" is not among the allowed [\"production\", \"staging\"]")
        );
    }

    /// A static flag answers alike for every user, environment and later
    /// moment; each rule that can tell users, environments or moments apart
    /// makes a flag not static.
    #[test]
    fn static_flags_answer_alike_for_everyone_and_later() {
        let hour = TimeDelta::hours(1);
        let cases: Vec<(&str, FlagSpec, bool)> = vec![
            (
                "killed",
                FlagSpec {
                    whitelist: users(&["u1"]),
                    ..FlagSpec::default()
                },
                true,
            ),
            (
                "everyone",
                on(FlagSpec {
                    percentage: 100.0,
                    ..FlagSpec::default()
                }),
                true,
            ),
            ("nobody", on(FlagSpec::default()), true),
            (
                "rounds to everyone",
                on(FlagSpec {
                    percentage: 99.995,
                    ..FlagSpec::default()
                }),
                true,
            ),
            (
                "expired",
                on(FlagSpec {
                    percentage: 50.0,
                    expires_at: Some(now() - hour),
                    ..FlagSpec::default()
                }),
                true,
            ),
            (
                "started",
                on(FlagSpec {
                    percentage: 100.0,
                    starts_at: Some(now() - hour),
                    ..FlagSpec::default()
                }),
                true,
            ),
            (
                "partial rollout",
                on(FlagSpec {
                    percentage: 50.0,
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "one percent",
                on(FlagSpec {
                    percentage: 1.0,
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "whitelist",
                on(FlagSpec {
                    whitelist: users(&["u1"]),
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "blacklist",
                on(FlagSpec {
                    percentage: 100.0,
                    blacklist: users(&["u1"]),
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "environments",
                on(FlagSpec {
                    percentage: 100.0,
                    environments: vec![ENV.into()],
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "override",
                on(FlagSpec {
                    environment_overrides: [("staging".to_string(), true)].into(),
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "not started",
                on(FlagSpec {
                    percentage: 100.0,
                    starts_at: Some(now() + hour),
                    ..FlagSpec::default()
                }),
                false,
            ),
            (
                "expires later",
                on(FlagSpec {
                    percentage: 100.0,
                    expires_at: Some(now() + hour),
                    ..FlagSpec::default()
                }),
                false,
            ),
        ];
        for (case, spec, expected) in cases {
            let flag = flag(spec);
            assert_eq!(is_static(&flag, now()), expected, "{case}");
            let answers: ahash::AHashSet<(bool, Reason)> = [now(), now() + hour * 2]
                .into_iter()
                .flat_map(|at| {
                    [ENV, "staging", ""]
                        .into_iter()
                        .flat_map(move |environment| {
                            (0..200).map(move |i| (at, environment, format!("u{i}")))
                        })
                })
                .map(|(at, environment, user)| {
                    let ctx = EvalContext {
                        user_id: &user,
                        environment,
                    };
                    let answer = evaluate(Some(&flag), &ctx, at);
                    (answer.enabled, answer.reason)
                })
                .collect();
            assert_eq!(answers.len() == 1, expected, "{case}: {answers:?}");
        }
    }
}
