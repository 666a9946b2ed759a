//! Conversions between protobuf messages and domain types, and the one
//! mapping of [`Error`] to [`Status`]. Incoming messages are destructured
//! exhaustively so a new proto field fails the build until it is handled.

use crate::metrics::{HourFigures, LATENCY_BOUNDS_NS, REASONS};
use crate::service::FlagMetrics;
use chrono::{DateTime, Utc};
use prost_types::{Struct, Timestamp, Value, value::Kind};
use tonic::Status;

use super::pb;
use super::watch_route::Encoded;
use crate::domain::{
    AuditAction, AuditEntry, Flag, FlagChange, FlagField, FlagSpec, Group, Metadata, Reason,
    UserSet, echo, limits,
};
use crate::engine::{Explanation, Rule};
use crate::error::{Error, Result};
use crate::service::{WatchEnd, WatchEvent, WatchItem};

/// Longest status message sent: status messages travel in a header, and
/// clients refuse headers over 8-16 KiB. Inputs echoed in messages are
/// capped already ([`echo`]); this is the backstop.
const MAX_STATUS_MESSAGE: usize = 1024;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let status = status_of(err);
        if status.message().len() <= MAX_STATUS_MESSAGE {
            return status;
        }
        let mut end = MAX_STATUS_MESSAGE;
        while !status.message().is_char_boundary(end) {
            end -= 1;
        }
        Status::new(status.code(), format!("{}…", &status.message()[..end]))
    }
}

// The one mapping of these errors to this wire: every variant named.
#[deny(clippy::wildcard_enum_match_arm)]
fn status_of(err: Error) -> Status {
    match err {
        Error::InvalidArgument { field, message } => {
            Status::invalid_argument(format!("{field}: {message}"))
        }
        Error::NotFound(message) => Status::not_found(message),
        Error::AlreadyExists(message) => Status::already_exists(message),
        err @ Error::Conflict { .. } => Status::aborted(err.to_string()),
        Error::FailedPrecondition(message) => Status::failed_precondition(message),
        Error::PermissionDenied(message) => Status::permission_denied(message),
        Error::Unavailable(message) => Status::unavailable(message),
        // Logged where it arose; the client learns nothing internal.
        Error::Internal(_) => Status::internal("internal error"),
    }
}

pub fn reason(reason: Reason) -> pb::Reason {
    match reason {
        Reason::FlagNotFound => pb::Reason::FlagNotFound,
        Reason::Disabled => pb::Reason::Disabled,
        Reason::NotStarted => pb::Reason::NotStarted,
        Reason::Expired => pb::Reason::Expired,
        Reason::EnvironmentNotAllowed => pb::Reason::EnvironmentNotAllowed,
        Reason::Blacklisted => pb::Reason::Blacklisted,
        Reason::Whitelisted => pb::Reason::Whitelisted,
        Reason::EnvironmentOverride => pb::Reason::EnvironmentOverride,
        Reason::PercentageRollout => pb::Reason::PercentageRollout,
        Reason::OutsideRollout => pb::Reason::OutsideRollout,
    }
}

fn audit_action(action: AuditAction) -> pb::AuditAction {
    match action {
        AuditAction::Create => pb::AuditAction::Create,
        AuditAction::Update => pb::AuditAction::Update,
        AuditAction::Delete => pb::AuditAction::Delete,
    }
}

pub fn timestamp_to_pb(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// The range `google.protobuf.Timestamp` allows: 0001-01-01 to 9999-12-31.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A timestamp at the microsecond precision both stores keep, so limits
/// (starts_at before expires_at) are checked on the value that is stored.
pub fn timestamp_from_pb(field: &str, ts: Timestamp) -> Result<DateTime<Utc>> {
    let valid = TIMESTAMP_SECONDS.contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos);
    let nanos = u32::try_from(ts.nanos).unwrap_or_default();
    DateTime::from_timestamp(ts.seconds, nanos - nanos % 1_000)
        .filter(|_| valid)
        .ok_or_else(|| Error::invalid(field, "must be a valid timestamp between years 1 and 9999"))
}

fn metadata_from_pb(field: &str, value: Struct) -> Result<Metadata> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| Ok((key, json_from_pb(field, value)?)))
        .collect()
}

fn json_from_pb(field: &str, value: Value) -> Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        // -0 becomes 0: not every store keeps the sign of zero, and every
        // path must give back the value stored, bit for bit.
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n + 0.0)
            .map(Json::Number)
            .ok_or_else(|| Error::invalid(field, "numbers must be finite"))?,
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .map(|v| json_from_pb(field, v))
                .collect::<Result<_>>()?,
        ),
        Some(Kind::StructValue(s)) => Json::Object(metadata_from_pb(field, s)?),
    })
}

fn metadata_to_pb(metadata: &Metadata) -> Struct {
    Struct {
        fields: metadata
            .iter()
            .map(|(key, value)| (key.clone(), json_to_pb(value)))
            .collect(),
    }
}

fn json_to_pb(value: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_pb).collect(),
        }),
        Json::Object(map) => Kind::StructValue(metadata_to_pb(map)),
    };
    Value { kind: Some(kind) }
}

/// Splits an incoming flag into its name and spec. Output-only fields are
/// ignored. Checks only what the conversion needs; limits are the domain's.
pub fn flag_from_pb(flag: pb::Flag) -> Result<(String, FlagSpec)> {
    let pb::Flag {
        name,
        description,
        enabled,
        percentage,
        whitelist,
        blacklist,
        environments,
        environment_overrides,
        starts_at,
        expires_at,
        tags,
        metadata,
        group,
        revision: _,
        created_at: _,
        updated_at: _,
        created_by: _,
        updated_by: _,
    } = flag;
    if environment_overrides.len() > limits::ENVIRONMENTS {
        return Err(Error::invalid(
            "flag.environment_overrides",
            format!("must hold at most {} entries", limits::ENVIRONMENTS),
        ));
    }
    let spec = FlagSpec {
        description,
        enabled,
        // -0 becomes 0 (SQLite stores it as 0), so every path agrees bit for bit.
        percentage: percentage + 0.0,
        whitelist: UserSet::parse("flag.whitelist", whitelist)?,
        blacklist: UserSet::parse("flag.blacklist", blacklist)?,
        environments,
        environment_overrides: environment_overrides.into_iter().collect(),
        starts_at: starts_at
            .map(|ts| timestamp_from_pb("flag.starts_at", ts))
            .transpose()?,
        expires_at: expires_at
            .map(|ts| timestamp_from_pb("flag.expires_at", ts))
            .transpose()?,
        tags,
        metadata: metadata
            .map(|m| metadata_from_pb("flag.metadata", m))
            .transpose()?
            .unwrap_or_default(),
        group: Some(group).filter(|group| !group.is_empty()),
    };
    Ok((name, spec))
}

pub fn flag_to_pb(flag: &Flag) -> pb::Flag {
    let spec = &flag.spec;
    pb::Flag {
        name: flag.name.to_string(),
        description: spec.description.clone(),
        enabled: spec.enabled,
        percentage: spec.percentage,
        whitelist: spec.whitelist.iter().map(str::to_owned).collect(),
        blacklist: spec.blacklist.iter().map(str::to_owned).collect(),
        environments: spec.environments.clone(),
        environment_overrides: spec
            .environment_overrides
            .iter()
            .map(|(env, on)| (env.clone(), *on))
            .collect(),
        starts_at: spec.starts_at.map(timestamp_to_pb),
        expires_at: spec.expires_at.map(timestamp_to_pb),
        tags: spec.tags.clone(),
        metadata: Some(metadata_to_pb(&spec.metadata)),
        group: spec.group.clone().unwrap_or_default(),
        revision: flag.revision,
        created_at: Some(timestamp_to_pb(flag.created_at)),
        updated_at: Some(timestamp_to_pb(flag.updated_at)),
        created_by: flag.created_by.clone(),
        updated_by: flag.updated_by.clone(),
    }
}

/// The update mask's paths as fields; `*` means all. Unknown paths are rejected.
pub fn update_fields(mask: Option<prost_types::FieldMask>) -> Result<Vec<FlagField>> {
    let paths = mask.map(|mask| mask.paths).unwrap_or_default();
    if paths.iter().any(|path| path == "*") {
        if paths.len() > 1 {
            return Err(Error::invalid("update_mask", "\"*\" must be the only path"));
        }
        return Ok(FlagField::ALL.to_vec());
    }
    let mut fields = Vec::with_capacity(paths.len());
    for path in &paths {
        let field = FlagField::from_path(path).ok_or_else(|| {
            Error::invalid(
                "update_mask",
                format!("unknown or immutable field path '{}'", echo(path)),
            )
        })?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

pub fn audit_entry_to_pb(entry: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        id: entry.id,
        flag_name: entry.flag_name.clone(),
        action: audit_action(entry.action) as i32,
        actor: entry.actor.clone(),
        reason: entry.reason.clone(),
        before: entry.before.as_ref().map(flag_to_pb),
        after: entry.after.as_ref().map(flag_to_pb),
        revision: entry.revision,
        created_at: Some(timestamp_to_pb(entry.created_at)),
    }
}

/// One Watch item as the bytes of a `WatchResponse`. A change from the
/// feed is encoded once, the first time any subscriber sends it; every
/// other subscriber sends the same bytes.
pub fn watch_item_to_wire(item: WatchItem) -> std::result::Result<Encoded, Status> {
    Ok(match item.map_err(watch_end_to_status)? {
        WatchEvent::Change(entry) => {
            Encoded(entry.wire(|change| encode_change(change, flag_to_pb).0))
        }
        event => encode_event(&event, flag_to_pb),
    })
}

/// [`watch_item_to_wire`] for a caller that may not read flags: each flag
/// without its lists, metadata, description and actors. Encoded per stream
/// (the shared frames hold whole flags).
pub fn watch_item_to_redacted_wire(item: WatchItem) -> std::result::Result<Encoded, Status> {
    Ok(match item.map_err(watch_end_to_status)? {
        WatchEvent::Change(entry) => encode_change(&entry.change, redacted_flag_to_pb),
        event => encode_event(&event, redacted_flag_to_pb),
    })
}

/// A flag without what GetFlag keeps for `reader`.
fn redacted_flag_to_pb(flag: &Flag) -> pb::Flag {
    pb::Flag {
        whitelist: Vec::new(),
        blacklist: Vec::new(),
        description: String::new(),
        metadata: None,
        created_by: String::new(),
        updated_by: String::new(),
        ..flag_to_pb(flag)
    }
}

/// A snapshot chunk or a heartbeat (changes: [`encode_change`]).
fn encode_event(event: &WatchEvent, to_pb: fn(&Flag) -> pb::Flag) -> Encoded {
    use pb::watch_response::Event;
    let event = match event {
        WatchEvent::Snapshot {
            flags,
            revision,
            last,
        } => Event::Snapshot(pb::WatchSnapshot {
            flags: flags.iter().map(|flag| to_pb(flag)).collect(),
            revision: *revision,
            last: *last,
        }),
        WatchEvent::Change(entry) => return encode_change(&entry.change, to_pb),
        WatchEvent::Heartbeat { revision } => Event::Heartbeat(pb::WatchHeartbeat {
            revision: *revision,
        }),
    };
    Encoded::frame(&pb::WatchResponse { event: Some(event) })
}

fn encode_change(change: &FlagChange, to_pb: fn(&Flag) -> pb::Flag) -> Encoded {
    let message = pb::WatchResponse {
        event: Some(pb::watch_response::Event::Change(pb::FlagChange {
            revision: change.revision,
            flag_name: change.flag_name.to_string(),
            kind: match change.flag {
                Some(_) => pb::ChangeKind::Upserted,
                None => pb::ChangeKind::Deleted,
            } as i32,
            flag: change.flag.as_deref().map(to_pb),
        })),
    };
    Encoded::frame(&message)
}

fn watch_end_to_status(end: WatchEnd) -> Status {
    let resume = |resume_after: Option<u64>| match resume_after {
        Some(revision) => format!("since_revision={revision}"),
        None => "no since_revision, for a new snapshot".to_string(),
    };
    match end {
        WatchEnd::TooSlow {
            buffer,
            resume_after,
        } => Status::resource_exhausted(format!(
            "subscriber fell more than {buffer} events behind; resubscribe with {}",
            resume(resume_after)
        )),
        WatchEnd::ShuttingDown { resume_after } => Status::unavailable(format!(
            "server shutting down; reconnect with {}",
            resume(resume_after)
        )),
    }
}

pub fn explanation_to_pb(
    flag_name: String,
    explanation: &Explanation,
    revision: u64,
) -> pb::ExplainEvaluationResponse {
    let rule = |rule: Rule| match rule {
        Rule::FlagExists => pb::EvaluationRule::FlagExists,
        Rule::Enabled => pb::EvaluationRule::Enabled,
        Rule::StartsAt => pb::EvaluationRule::StartsAt,
        Rule::ExpiresAt => pb::EvaluationRule::ExpiresAt,
        Rule::Environments => pb::EvaluationRule::Environments,
        Rule::Blacklist => pb::EvaluationRule::Blacklist,
        Rule::Whitelist => pb::EvaluationRule::Whitelist,
        Rule::EnvironmentOverride => pb::EvaluationRule::EnvironmentOverride,
        Rule::PercentageRollout => pb::EvaluationRule::PercentageRollout,
    };
    pb::ExplainEvaluationResponse {
        flag_name,
        enabled: explanation.evaluation.enabled,
        reason: reason(explanation.evaluation.reason) as i32,
        revision,
        steps: explanation
            .steps
            .iter()
            .map(|step| pb::EvaluationStep {
                rule: rule(step.rule) as i32,
                decided: step.decided,
                detail: step.detail.clone(),
            })
            .collect(),
        bucket: explanation.bucket,
        threshold: explanation.threshold,
    }
}

pub fn group_to_pb(group: &Group) -> pb::Group {
    pb::Group {
        name: group.name.clone(),
        description: group.description.clone(),
        created_at: Some(timestamp_to_pb(group.created_at)),
    }
}

fn evaluation_stats_to_pb(figures: &HourFigures) -> pb::EvaluationStats {
    let evaluations = figures.evaluations();
    let enabled = figures.enabled();
    let buckets: Vec<pb::LatencyBucket> = LATENCY_BOUNDS_NS
        .iter()
        .chain(std::iter::once(&0))
        .zip(figures.latency.iter())
        .filter(|(_, count)| **count > 0)
        .map(|(&le_ns, &count)| pb::LatencyBucket { le_ns, count })
        .collect();
    pb::EvaluationStats {
        evaluations,
        enabled,
        disabled: evaluations.saturating_sub(enabled),
        reasons: REASONS
            .iter()
            .map(|&r| (r, figures.count(r)))
            .filter(|(_, count)| *count > 0)
            .map(|(r, count)| pb::ReasonCount {
                reason: reason(r).into(),
                count,
            })
            .collect(),
        distinct_users: figures.distinct_users(),
        latency: Some(pb::LatencyStats {
            count: figures
                .latency
                .iter()
                .fold(0u64, |sum, n| sum.saturating_add(*n)),
            sum_ns: figures.latency_sum_ns,
            p50_ns: figures.latency_quantile(0.5).unwrap_or(0),
            p99_ns: figures.latency_quantile(0.99).unwrap_or(0),
            buckets,
        }),
    }
}

pub fn flag_metrics_to_pb(flag_name: String, metrics: &FlagMetrics) -> pb::GetMetricsResponse {
    let report = &metrics.report;
    pb::GetMetricsResponse {
        flag_name,
        hours: report
            .hours
            .iter()
            .map(|(hour, figures)| pb::HourlyMetrics {
                hour: Some(Timestamp {
                    seconds: hour.saturating_mul(3600),
                    nanos: 0,
                }),
                stats: Some(evaluation_stats_to_pb(figures)),
            })
            .collect(),
        totals: Some(evaluation_stats_to_pb(&report.totals)),
        environments: report
            .environments
            .iter()
            .map(|(environment, figures)| pb::EnvironmentMetrics {
                environment: environment.to_string(),
                stats: Some(evaluation_stats_to_pb(figures)),
            })
            .collect(),
        last_evaluated_at: metrics.last_evaluated.map(timestamp_to_pb),
        flag_exists: metrics.flag_exists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_field(err: Error) -> String {
        let status = Status::from(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        status
            .message()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn rejects_bad_timestamps_naming_the_field() {
        let flag = pb::Flag {
            starts_at: Some(Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..pb::Flag::default()
        };
        assert_eq!(
            invalid_field(flag_from_pb(flag).unwrap_err()),
            "flag.starts_at"
        );
    }

    #[test]
    fn timestamps_are_bounded_and_kept_to_the_microsecond() {
        let at = |seconds, nanos| timestamp_from_pb("t", Timestamp { seconds, nanos });
        assert_eq!(invalid_field(at(-62_135_596_801, 0).unwrap_err()), "t");
        assert_eq!(invalid_field(at(253_402_300_800, 0).unwrap_err()), "t");
        assert_eq!(at(100, 1_999).unwrap().timestamp_subsec_nanos(), 1_000);
    }

    #[test]
    fn rejects_non_finite_metadata_numbers() {
        let metadata = Struct {
            fields: [(
                "x".to_string(),
                Value {
                    kind: Some(Kind::NumberValue(f64::INFINITY)),
                },
            )]
            .into(),
        };
        let flag = pb::Flag {
            metadata: Some(metadata),
            ..pb::Flag::default()
        };
        assert_eq!(
            invalid_field(flag_from_pb(flag).unwrap_err()),
            "flag.metadata"
        );
    }

    #[test]
    fn update_masks() {
        let mask = |paths: &[&str]| {
            Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            })
        };
        assert_eq!(
            update_fields(mask(&["percentage", "enabled"])).unwrap(),
            vec![FlagField::Percentage, FlagField::Enabled]
        );
        assert_eq!(update_fields(mask(&["*"])).unwrap().len(), 12);
        assert_eq!(
            invalid_field(update_fields(mask(&["name"])).unwrap_err()),
            "update_mask"
        );
        assert_eq!(
            invalid_field(update_fields(mask(&["*", "tags"])).unwrap_err()),
            "update_mask"
        );
    }

    #[test]
    fn metadata_round_trips() {
        let json = serde_json::json!({"a": 1.5, "b": [true, null, "s"], "c": {"d": 2.0}});
        let metadata = json.as_object().unwrap().clone();
        let back = metadata_from_pb("m", metadata_to_pb(&metadata)).unwrap();
        assert_eq!(back, metadata);
    }

    /// Property tests: whatever a client sends, conversion and validation
    /// never panic, and every rejection is INVALID_ARGUMENT naming a field
    /// of the flag.
    mod hostile {
        use proptest::prelude::*;

        use super::*;
        use crate::domain::FlagName;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => any::<String>(),
                1 => "[a-z0-9._-]{1,140}",
                1 => ".{250,300}",
                1 => Just(String::new()),
                1 => Just("a\0b".to_string()),
            ]
        }

        fn number() -> impl Strategy<Value = f64> {
            prop_oneof![
                3 => any::<f64>(),
                3 => 0.0..=100.0f64,
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
                1 => Just(-0.0),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Kind::NullValue(0)),
                any::<bool>().prop_map(Kind::BoolValue),
                number().prop_map(Kind::NumberValue),
                text().prop_map(Kind::StringValue),
                Just(Kind::NullValue(7)),
            ]
            .prop_map(|kind| Value { kind: Some(kind) });
            leaf.prop_recursive(24, 64, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4)
                        .prop_map(|values| Kind::ListValue(prost_types::ListValue { values })),
                    prop::collection::btree_map(text(), inner, 0..4)
                        .prop_map(|fields| Kind::StructValue(Struct { fields })),
                ]
                .prop_map(|kind| Value { kind: Some(kind) })
            })
        }

        fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
            prop::option::of(
                prop_oneof![
                    (any::<i64>(), any::<i32>()),
                    (-62_135_596_800i64..=253_402_300_799, 0..1_000_000_000i32),
                ]
                .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
            )
        }

        prop_compose! {
            fn flag()(
                name in text(),
                description in text(),
                enabled in any::<bool>(),
                percentage in number(),
                whitelist in prop::collection::vec(text(), 0..8),
                blacklist in prop::collection::vec(text(), 0..8),
                environments in prop::collection::vec(text(), 0..4),
                environment_overrides in prop::collection::hash_map(text(), any::<bool>(), 0..4),
                starts_at in timestamp(),
                expires_at in timestamp(),
                tags in prop::collection::vec(text(), 0..4),
                metadata in prop::option::of(
                    prop::collection::btree_map(text(), value(), 0..4)
                        .prop_map(|fields| Struct { fields })
                ),
                group in text(),
            ) -> pb::Flag {
                pb::Flag {
                    name, description, enabled, percentage, whitelist, blacklist,
                    environments, environment_overrides, starts_at, expires_at, tags,
                    metadata, group, ..pb::Flag::default()
                }
            }
        }

        #[track_caller]
        fn names_a_flag_field(err: Error) {
            let status = Status::from(err);
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            let field = status.message().split(": ").next().unwrap_or_default();
            assert!(
                field == "flag" || field.starts_with("flag."),
                "{:?} names no flag field",
                status.message()
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10_000))]

            #[test]
            fn any_flag_is_converted_or_rejected_naming_its_field(flag in flag()) {
                match flag_from_pb(flag) {
                    Err(err) => names_a_flag_field(err),
                    Ok((name, spec)) => {
                        if let Err(err) = FlagName::parse("flag.name", name) {
                            names_a_flag_field(err.into());
                        }
                        match spec.validate("flag") {
                            Err(err) => names_a_flag_field(err.into()),
                            // What is accepted converts back to itself.
                            Ok(()) => {
                                let back = flag_to_pb(&Flag {
                                    name: FlagName::parse("n", "n").expect("name"),
                                    spec: spec.clone(),
                                    revision: 1,
                                    created_at: DateTime::UNIX_EPOCH,
                                    updated_at: DateTime::UNIX_EPOCH,
                                    created_by: String::new(),
                                    updated_by: String::new(),
                                });
                                let (_, again) = flag_from_pb(back).expect("reconverts");
                                prop_assert_eq!(again, spec);
                            }
                        }
                    }
                }
            }

            #[test]
            fn any_update_mask_is_read_or_rejected(paths in prop::collection::vec(text(), 0..5)) {
                if let Err(err) = update_fields(Some(prost_types::FieldMask { paths })) {
                    let status = Status::from(err);
                    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                    prop_assert!(status.message().starts_with("update_mask: "));
                    prop_assert!(status.message().len() < 300);
                }
            }
        }
    }
}
