//! The rules: pure and synchronous. They read no clock (`now` is passed
//! in), do no I/O and allocate nothing.

use chrono::{DateTime, Utc};

use crate::attributes::{Attr, AttrName, Attributes, Gathered};
use crate::bucket;
use crate::compiled::{CompiledServe, CompiledSplit, ON_INDEX, VariantIndex};
use crate::matcher::{Key, Scope, now_attr};
use crate::validation::limits;
use crate::value::FlagType;
use crate::{EvalContext, Evaluation, Flag, Reason};

/// The rules, in the order the engine checks them. `Prerequisites`,
/// `Targets`, `TargetingRules` and `Fallthrough` appear in explanations
/// only for flags that use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    FlagExists,
    Enabled,
    StartsAt,
    ExpiresAt,
    Environments,
    Prerequisites,
    Blacklist,
    Whitelist,
    Targets,
    EnvironmentOverride,
    TargetingRules,
    PercentageRollout,
    Fallthrough,
}

/// One rule checked: whether it decided the answer, and why, in words
/// ("user \"u1\" is not on the blacklist (3 ids)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub rule: Rule,
    pub decided: bool,
    pub detail: String,
}

/// One clause checked: which rule and clause, the attribute value seen
/// (`None`: absent), and whether it held (negation applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClauseCheck {
    pub rule: u16,
    pub clause: u16,
    pub attribute: String,
    pub seen: Option<String>,
    pub matched: bool,
}

/// A split reached: the user's bucket (`None` without a bucketing key)
/// and each variant's exclusive cumulative end, in basis points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitCheck {
    pub bucket: Option<u32>,
    pub ends: Vec<(u32, Option<VariantIndex>)>,
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
    /// Every targeting-rule clause checked, in order.
    pub clauses: Vec<ClauseCheck>,
    /// The split that decided, if one did.
    pub split: Option<SplitCheck>,
}

/// Decides one flag for one context. The first rule that applies wins:
/// missing, disabled, time window, allowed environments, prerequisites,
/// blacklist, whitelist, targets, environment override, targeting rules,
/// and the fallthrough (for boolean flags without one, the percentage
/// rollout).
pub fn evaluate(flag: Option<&Flag>, ctx: &EvalContext<'_>, now: DateTime<Utc>) -> Evaluation {
    decide(flag, ctx, now, &mut Silent, 0)
}

/// [`evaluate`], recording every rule and clause checked, the bucket and
/// the split. The same code decides both; only this one allocates.
pub fn explain(flag: Option<&Flag>, ctx: &EvalContext<'_>, now: DateTime<Utc>) -> Explanation {
    let mut trace = Trace::default();
    let evaluation = decide(flag, ctx, now, &mut trace, 0);
    Explanation {
        evaluation,
        steps: trace.steps,
        bucket: trace.bucket,
        threshold: trace.threshold,
        clauses: trace.clauses,
        split: trace.split,
    }
}

/// Whether `flag` gives every user in every environment the same answer
/// from `now` until the flag itself changes: killed, expired, or no lists,
/// targets, rules, prerequisites or environment rules, no time boundary
/// still ahead and a fallthrough that serves everyone alike. Such an
/// answer may be cached per flag (what OpenFeature calls STATIC); when
/// unsure, this says no.
pub fn is_static(flag: &Flag, now: DateTime<Utc>) -> bool {
    let spec = flag.spec();
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
    let compiled = flag.compiled();
    let fallthrough_alike = match &compiled.fallthrough {
        CompiledServe::Rollout { threshold } => *threshold == 0 || *threshold >= bucket::BUCKETS,
        CompiledServe::Variant(_) => true,
        CompiledServe::Split(split) => split.whole().is_some(),
    };
    spec.environments.is_empty()
        && spec.environment_overrides.is_empty()
        && spec.whitelist.is_empty()
        && spec.blacklist.is_empty()
        && spec.targets.is_empty()
        && spec.rules.is_empty()
        && spec.prerequisites.is_empty()
        && fallthrough_alike
}

/// Whether `flag`'s answer can depend on the time: a caller that reads the
/// clock only for such flags passes any `now` for the others.
pub fn needs_clock(flag: &Flag) -> bool {
    let spec = flag.spec();
    spec.starts_at.is_some() || spec.expires_at.is_some() || flag.compiled().reads_clock
}

/// Watches the engine decide. The plain path's observer does nothing and
/// compiles away.
trait Observer {
    const TRACES: bool;
    /// `detail` says why, and is called only by observers that keep it.
    fn checked(&mut self, rule: Rule, decided: bool, detail: impl FnOnce(bool) -> String);
    fn rollout(&mut self, bucket: Option<u32>, threshold: u32);
    fn clause(&mut self, check: impl FnOnce() -> ClauseCheck);
    fn split(&mut self, bucket: Option<u32>, split: &CompiledSplit);
}

struct Silent;

impl Observer for Silent {
    const TRACES: bool = false;
    #[inline(always)]
    fn checked(&mut self, _: Rule, _: bool, _: impl FnOnce(bool) -> String) {}
    #[inline(always)]
    fn rollout(&mut self, _: Option<u32>, _: u32) {}
    #[inline(always)]
    fn clause(&mut self, _: impl FnOnce() -> ClauseCheck) {}
    #[inline(always)]
    fn split(&mut self, _: Option<u32>, _: &CompiledSplit) {}
}

#[derive(Default)]
struct Trace {
    steps: Vec<Step>,
    bucket: Option<u32>,
    threshold: Option<u32>,
    clauses: Vec<ClauseCheck>,
    split: Option<SplitCheck>,
}

impl Observer for Trace {
    const TRACES: bool = true;
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
    fn clause(&mut self, check: impl FnOnce() -> ClauseCheck) {
        self.clauses.push(check());
    }
    fn split(&mut self, bucket: Option<u32>, split: &CompiledSplit) {
        self.bucket = bucket;
        self.split = Some(SplitCheck {
            bucket,
            ends: split.ends.to_vec(),
        });
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

impl EvalScope<'_, '_> {
    /// The attributes every evaluation has: its user, environment and time.
    #[inline(never)]
    fn builtin(&self, key: &Key) -> Option<Attr<'_>> {
        match key {
            Key::UserId => (!self.ctx.user_id.is_empty()).then_some(Attr::Str(self.ctx.user_id)),
            Key::Environment => {
                (!self.ctx.environment.is_empty()).then_some(Attr::Str(self.ctx.environment))
            }
            Key::Now => Some(now_attr(self.now)),
            Key::Named(name) => self.attributes.named(name),
            Key::Path(path) => self.attributes.path(path),
        }
    }
}

/// Where clauses find the context's attributes.
#[derive(Clone, Copy)]
enum Lookup<'s> {
    Gathered(&'s Gathered<'s>),
    /// Read from the context as it came.
    InPlace(&'s dyn Attributes),
}

impl Lookup<'_> {
    #[inline(always)]
    fn named(&self, name: &AttrName) -> Option<Attr<'_>> {
        match self {
            Self::Gathered(gathered) => gathered.named(name),
            Self::InPlace(attributes) => attributes.get_named(name),
        }
    }

    fn path(&self, path: &[Box<str>]) -> Option<Attr<'_>> {
        match self {
            Self::Gathered(gathered) => gathered.get_path(path),
            Self::InPlace(attributes) => attributes.get_path(path),
        }
    }
}

/// What clauses read: the request's context, its clock, and how deep in
/// segments referring to segments the check is.
struct EvalScope<'s, 'c> {
    ctx: &'s EvalContext<'c>,
    attributes: Lookup<'s>,
    now: DateTime<Utc>,
    segment_depth: u8,
}

impl Scope for EvalScope<'_, '_> {
    // Inlined into every clause: named attributes are the common case.
    #[inline(always)]
    fn attr(&self, key: &Key) -> Option<Attr<'_>> {
        match key {
            Key::Named(name) => self.attributes.named(name),
            key => self.builtin(key),
        }
    }

    fn in_segment(&self, name: &str) -> bool {
        if self.segment_depth >= limits::SEGMENT_DEPTH {
            return false;
        }
        self.ctx.catalog.segment(name).is_some_and(|segment| {
            segment.contains(
                self.ctx.user_id,
                &EvalScope {
                    ctx: self.ctx,
                    attributes: self.attributes,
                    now: self.now,
                    segment_depth: self.segment_depth + 1,
                },
            )
        })
    }
}

/// A bucketing key read without allocating: a string attribute as is, an
/// integral number in decimal (so `42` and `"42"` bucket alike).
enum BucketKey<'a> {
    Text(&'a str),
    Digits([u8; 24], usize),
}

impl BucketKey<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Text(text) => text,
            Self::Digits(buffer, start) => std::str::from_utf8(&buffer[*start..]).unwrap_or(""),
        }
    }
}

fn bucket_key<'a>(scope: &'a EvalScope<'_, '_>, key: &Key) -> Option<BucketKey<'a>> {
    match scope.attr(key)? {
        Attr::Str("") => None,
        Attr::Str(text) => Some(BucketKey::Text(text)),
        Attr::Num(number) if number.fract() == 0.0 && number.abs() <= 9_007_199_254_740_992.0 => {
            let mut value = number.abs() as u64;
            let mut buffer = [0u8; 24];
            let mut start = buffer.len();
            loop {
                start -= 1;
                buffer[start] = b'0' + (value % 10) as u8;
                value /= 10;
                if value == 0 {
                    break;
                }
            }
            if number < 0.0 {
                start -= 1;
                buffer[start] = b'-';
            }
            Some(BucketKey::Digits(buffer, start))
        }
        _ => None,
    }
}

/// Where a split places the scope's user: `Some(variant)` (which may be no
/// value), or `None` without a bucketing key when no variant holds every
/// bucket.
fn place(
    flag: &Flag,
    split: &CompiledSplit,
    scope: &EvalScope<'_, '_>,
    observer: &mut impl Observer,
) -> Option<Option<VariantIndex>> {
    match bucket_key(scope, &split.key) {
        Some(key) => {
            let bucket = split.bucket(flag.name.as_str(), key.as_str());
            observer.split(Some(bucket), split);
            Some(split.pick(bucket))
        }
        None => {
            observer.split(None, split);
            split.whole()
        }
    }
}

/// The answer serving `variant` for `reason`.
fn served(flag: &Flag, variant: Option<VariantIndex>, reason: Reason) -> Evaluation {
    Evaluation {
        enabled: match flag.flag_type() {
            FlagType::Boolean => variant == Some(ON_INDEX),
            _ => variant.is_some(),
        },
        reason,
        variant,
        rule: None,
        prerequisite: None,
    }
}

/// The off variant, for an off-path `reason`.
fn off(flag: &Flag, reason: Reason) -> Evaluation {
    Evaluation {
        enabled: false,
        reason,
        variant: flag.compiled().off,
        rule: None,
        prerequisite: None,
    }
}

fn decide<O: Observer>(
    flag: Option<&Flag>,
    ctx: &EvalContext<'_>,
    now: DateTime<Utc>,
    observer: &mut O,
    prerequisite_depth: u8,
) -> Evaluation {
    let Some(flag) = flag else {
        check(observer, Rule::FlagExists, true, |_| {
            "no flag has this name".into()
        });
        return Evaluation::not_found();
    };
    check(observer, Rule::FlagExists, false, |_| {
        format!("the flag exists, at revision {}", flag.revision)
    });
    let spec = flag.spec();
    let compiled = flag.compiled();
    if check(observer, Rule::Enabled, !spec.enabled, |killed| {
        if killed {
            "enabled is false: the flag is off for everyone".into()
        } else {
            "enabled is true".into()
        }
    }) {
        return off(flag, Reason::Disabled);
    }
    let not_started = spec.starts_at.is_some_and(|starts_at| now < starts_at);
    if check(observer, Rule::StartsAt, not_started, |_| {
        match spec.starts_at {
            None => "no start time".into(),
            Some(at) if not_started => format!("starts at {}, after {}", time(at), time(now)),
            Some(at) => format!("started at {}", time(at)),
        }
    }) {
        return off(flag, Reason::NotStarted);
    }
    let expired = spec.expires_at.is_some_and(|expires_at| now >= expires_at);
    if check(observer, Rule::ExpiresAt, expired, |_| {
        match spec.expires_at {
            None => "no expiry time".into(),
            Some(at) if expired => format!("expired at {}", time(at)),
            Some(at) => format!("expires at {}, after {}", time(at), time(now)),
        }
    }) {
        return off(flag, Reason::Expired);
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
        return off(flag, Reason::EnvironmentNotAllowed);
    }
    for (index, prerequisite) in compiled.prerequisites.iter().enumerate() {
        let required = ctx.catalog.flag(&prerequisite.flag);
        // One level deep: a prerequisite's own prerequisites count as failed.
        let answer = required
            .as_deref()
            .filter(|_| prerequisite_depth == 0)
            .map(|required| (required, decide(Some(required), ctx, now, &mut Silent, 1)));
        let holds = answer.as_ref().is_some_and(|(required, answer)| {
            if prerequisite.variants.is_empty() {
                answer.enabled
            } else {
                answer
                    .variant
                    .and_then(|variant| required.variant(variant))
                    .is_some_and(|variant| {
                        prerequisite
                            .variants
                            .iter()
                            .any(|wanted| **wanted == *variant.name)
                    })
            }
        });
        let last = index + 1 == compiled.prerequisites.len();
        if !holds || last {
            check(observer, Rule::Prerequisites, !holds, |failed| {
                let served = |answer: &Option<(&Flag, Evaluation)>| match answer {
                    None => "does not exist".to_string(),
                    Some((required, answer)) => format!(
                        "serves {:?} ({})",
                        answer
                            .variant
                            .and_then(|v| required.variant(v))
                            .map_or("no value", |v| v.name.as_str()),
                        answer.reason.name()
                    ),
                };
                if failed {
                    format!(
                        "prerequisite {:?} {}, not {}",
                        prerequisite.flag,
                        served(&answer),
                        if prerequisite.variants.is_empty() {
                            "on".to_string()
                        } else {
                            format!("{:?}", prerequisite.variants)
                        }
                    )
                } else {
                    format!("all {} prerequisites hold", compiled.prerequisites.len())
                }
            });
        }
        if !holds {
            return Evaluation {
                prerequisite: u16::try_from(index).ok(),
                ..off(flag, Reason::PrerequisiteFailed)
            };
        }
    }
    // Typed flags have no lists (writes refuse them): their explanations
    // skip these steps.
    let boolean = flag.flag_type() == FlagType::Boolean;
    if boolean
        && check(
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
        )
    {
        return off(flag, Reason::Blacklisted);
    }
    if boolean
        && check(
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
        )
    {
        return Evaluation::on(Reason::Whitelisted);
    }
    if !spec.targets.is_empty() {
        let hit = (!ctx.user_id.is_empty())
            .then(|| {
                spec.targets
                    .iter()
                    .position(|target| target.user_ids.contains(ctx.user_id))
            })
            .flatten();
        check(observer, Rule::Targets, hit.is_some(), |_| match hit {
            Some(index) => format!(
                "user {:?} is a target of variant {:?}",
                ctx.user_id, spec.targets[index].variant
            ),
            None => format!("user {:?} is in no target", ctx.user_id),
        });
        if let Some(index) = hit {
            return served(flag, compiled.targets[index], Reason::TargetMatch);
        }
    }
    let overridden = spec.environment_overrides.get(ctx.environment).copied();
    if let Some(enabled) = overridden {
        check(observer, Rule::EnvironmentOverride, true, |_| {
            let state = if enabled { "on" } else { "off" };
            format!("environment {:?} is overridden: {state}", ctx.environment)
        });
        return Evaluation::boolean(enabled, Reason::EnvironmentOverride);
    }
    if flag.flag_type() == FlagType::Boolean {
        check(observer, Rule::EnvironmentOverride, false, |_| {
            format!("no override for environment {:?}", ctx.environment)
        });
    }
    // Callers that evaluate several flags for one request gather its
    // attributes once; for one flag, gathering costs about what it saves.
    let attributes = match ctx.attributes.gathered() {
        Some(gathered) => Lookup::Gathered(gathered),
        None => Lookup::InPlace(ctx.attributes),
    };
    by_rules(flag, ctx, attributes, now, observer)
}

/// The targeting rules and the fallthrough.
fn by_rules<O: Observer>(
    flag: &Flag,
    ctx: &EvalContext<'_>,
    attributes: Lookup<'_>,
    now: DateTime<Utc>,
    observer: &mut O,
) -> Evaluation {
    let spec = flag.spec();
    let compiled = flag.compiled();
    let scope = EvalScope {
        ctx,
        attributes,
        now,
        segment_depth: 0,
    };
    for (index, rule) in compiled.rules.iter().enumerate() {
        let matched = rule
            .clauses
            .iter()
            .enumerate()
            .all(|(clause_index, clause)| {
                let matched = clause.matches(&scope);
                if O::TRACES {
                    observer.clause(|| ClauseCheck {
                        rule: index as u16,
                        clause: clause_index as u16,
                        attribute: spec.rules[index].clauses[clause_index].attribute.clone(),
                        seen: scope.attr(&clause.key).map(|attr| format!("{attr:?}")),
                        matched,
                    });
                }
                matched
            })
            && !rule.clauses.is_empty();
        let placed = if matched {
            match &rule.serve {
                CompiledServe::Variant(variant) => Some(*variant),
                CompiledServe::Split(split) => place(flag, split, &scope, observer),
                CompiledServe::Rollout { .. } => None,
            }
        } else {
            None
        };
        if let Some(variant) = placed {
            check(observer, Rule::TargetingRules, true, |_| {
                let id = &spec.rules[index].id;
                let named = if id.is_empty() {
                    String::new()
                } else {
                    format!(" ({id:?})")
                };
                format!("rule {index}{named} matched")
            });
            return Evaluation {
                rule: u16::try_from(index).ok(),
                ..served(flag, variant, Reason::RuleMatch)
            };
        }
    }
    if !compiled.rules.is_empty() {
        check(observer, Rule::TargetingRules, false, |_| {
            format!("none of {} rules matched", compiled.rules.len())
        });
    }
    match &compiled.fallthrough {
        CompiledServe::Rollout { threshold } => rollout(flag, ctx, *threshold, observer),
        CompiledServe::Variant(variant) => {
            check(observer, Rule::Fallthrough, true, |_| {
                "the fallthrough serves its variant".into()
            });
            served(flag, *variant, Reason::Default)
        }
        CompiledServe::Split(split) => match place(flag, split, &scope, observer) {
            Some(variant) => {
                check(observer, Rule::Fallthrough, true, |_| {
                    "the fallthrough's split placed the user".into()
                });
                served(flag, variant, Reason::Split)
            }
            None => {
                check(observer, Rule::Fallthrough, true, |_| {
                    "no bucketing key for the fallthrough's split: the off variant".into()
                });
                off(flag, Reason::Default)
            }
        },
    }
}

/// A boolean flag's `percentage` rollout, as `bucket::in_rollout` defines it.
fn rollout(
    flag: &Flag,
    ctx: &EvalContext<'_>,
    threshold: u32,
    observer: &mut impl Observer,
) -> Evaluation {
    let spec = flag.spec();
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
        Flag::new(
            FlagName::parse("name", "checkout.v2").unwrap(),
            spec,
            crate::Stamp {
                revision: 1,
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
                created_by: "test".into(),
                updated_by: "test".into(),
            },
        )
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
        let ctx = EvalContext::bare(USER, ENV);
        for (case, spec, expected) in cases {
            assert_eq!(evaluate(Some(&flag(spec)), &ctx, now()), expected, "{case}");
        }
    }

    #[test]
    fn missing_flag_is_off() {
        let ctx = EvalContext::bare(USER, ENV);
        assert_eq!(evaluate(None, &ctx, now()), Evaluation::not_found());
    }

    #[test]
    fn empty_user_is_inside_only_when_everyone_is() {
        let ctx = EvalContext::bare("", ENV);
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
                    let ctx = EvalContext::bare(&user, environment);
                    let explained = explain(Some(flag), &ctx, now());
                    assert_eq!(explained.evaluation, evaluate(Some(flag), &ctx, now()));
                    let last = explained.steps.last().expect("a step");
                    assert!(last.decided);
                    assert_eq!(explained.steps.iter().filter(|s| s.decided).count(), 1);
                    if last.rule == Rule::PercentageRollout {
                        assert_eq!(
                            explained.evaluation.enabled,
                            bucket::in_rollout(flag.name.as_str(), &user, flag.spec().percentage)
                        );
                        assert_eq!(
                            explained.bucket,
                            (!user.is_empty()).then(|| bucket::bucket(flag.name.as_str(), &user))
                        );
                    }
                }
            }
        }
        let missing = explain(None, &EvalContext::bare("u", ENV), now());
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
        let ctx = EvalContext::bare(USER, ENV);
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
        let refused = explain(Some(&flag), &EvalContext::bare("u9", "dev"), now());
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
                    let ctx = EvalContext::bare(&user, environment);
                    let answer = evaluate(Some(&flag), &ctx, at);
                    (answer.enabled, answer.reason)
                })
                .collect();
            assert_eq!(answers.len() == 1, expected, "{case}: {answers:?}");
        }
    }
}
