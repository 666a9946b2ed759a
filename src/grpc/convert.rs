//! Conversions between protobuf messages and domain types, and the one
//! mapping of [`Error`] to [`Status`]. Incoming messages are destructured
//! exhaustively so a new proto field fails the build until it is handled.

use crate::metrics::{HourFigures, LATENCY_BOUNDS_NS, REASONS};
use crate::service::FlagMetrics;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use tonic::Status;
use vexil_proto::convert as wire;
use vexil_proto::google::protobuf::Struct;

use super::pb;
use super::watch_route::Encoded;
use crate::domain::{
    AuditAction, AuditEntry, Committed, Flag, FlagChange, FlagField, FlagSpec, Group, Reason,
    Segment, SegmentSpec, Snapshot, Subject, echo,
};
use crate::engine::{Explanation, Rule};
use crate::error::{Error, Result};
use crate::service::{FlagResult, WatchEnd, WatchEvent, WatchItem};

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
    wire::reason_to_pb(reason)
}

fn audit_action(action: AuditAction) -> pb::AuditAction {
    match action {
        AuditAction::Create => pb::AuditAction::Create,
        AuditAction::Update => pb::AuditAction::Update,
        AuditAction::Delete => pb::AuditAction::Delete,
    }
}

pub use vexil_proto::convert::{flag_to_pb, segment_to_pb, timestamp_to_pb, value_to_pb};

pub fn timestamp_from_pb(field: &str, ts: Timestamp) -> Result<DateTime<Utc>> {
    Ok(wire::timestamp_from_pb(field, ts)?)
}

/// Splits an incoming flag into its name and spec (`vexil-proto`'s
/// conversion).
pub fn flag_from_pb(flag: pb::Flag) -> Result<(String, FlagSpec)> {
    Ok(wire::flag_from_pb(flag)?)
}

/// The update mask's paths as fields; `*` means all. Unknown paths are rejected.
pub fn segment_from_pb(segment: pb::Segment) -> Result<(String, SegmentSpec)> {
    Ok(wire::segment_from_pb(segment)?)
}

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
    let (mut before, mut after, mut segment_before, mut segment_after) = (None, None, None, None);
    for (snapshot, flag, segment) in [
        (&entry.before, &mut before, &mut segment_before),
        (&entry.after, &mut after, &mut segment_after),
    ] {
        match snapshot {
            Some(Snapshot::Flag(state)) => *flag = Some(flag_to_pb(state)),
            Some(Snapshot::Segment(state)) => *segment = Some(segment_to_pb(state)),
            None => {}
        }
    }
    let (flag_name, segment_name) = match entry.subject {
        Subject::Flag => (entry.name.clone(), String::new()),
        Subject::Segment => (String::new(), entry.name.clone()),
    };
    pb::AuditEntry {
        id: entry.id,
        flag_name,
        action: audit_action(entry.action) as i32,
        actor: entry.actor.clone(),
        reason: entry.reason.clone(),
        before,
        after,
        revision: entry.revision,
        created_at: Some(timestamp_to_pb(entry.created_at)),
        segment_name,
        segment_before,
        segment_after,
    }
}

/// How a stream's flags and segments are written.
#[derive(Clone, Copy)]
struct Writers {
    flag: fn(&Flag) -> pb::Flag,
    segment: fn(&Segment) -> pb::Segment,
}

const FULL: Writers = Writers {
    flag: flag_to_pb,
    segment: segment_to_pb,
};

const REDACTED: Writers = Writers {
    flag: redacted_flag_to_pb,
    segment: redacted_segment_to_pb,
};

/// One Watch item as the bytes of a `WatchResponse`. A change from the
/// feed is encoded once, the first time any subscriber sends it; every
/// other subscriber sends the same bytes.
pub fn watch_item_to_wire(item: WatchItem) -> std::result::Result<Encoded, Status> {
    Ok(match item.map_err(watch_end_to_status)? {
        WatchEvent::Change(entry) => Encoded(entry.wire(|change| encode_change(change, FULL).0)),
        event => encode_event(&event, FULL),
    })
}

/// [`watch_item_to_wire`] for a caller that may not read flags: each flag
/// without its lists, metadata, description and actors, each segment
/// without its lists and description. Encoded per stream (the shared
/// frames hold whole flags).
pub fn watch_item_to_redacted_wire(item: WatchItem) -> std::result::Result<Encoded, Status> {
    Ok(match item.map_err(watch_end_to_status)? {
        WatchEvent::Change(entry) => encode_change(&entry.change, REDACTED),
        event => encode_event(&event, REDACTED),
    })
}

/// [`watch_item_to_wire`] for a client whose engine is older than this
/// server's: flags it cannot evaluate are left out of snapshots and sent
/// as deletions, and segments, before engine 2 (which has them), not at
/// all: a segment change becomes a heartbeat at its revision. Encoded per
/// stream. `redacted` as for [`watch_item_to_redacted_wire`].
pub fn watch_item_to_older_engine_wire(
    item: WatchItem,
    engine: u32,
    redacted: bool,
) -> std::result::Result<Encoded, Status> {
    /// The engine that brought segments.
    const SEGMENTS: u32 = 2;
    let writers = if redacted { REDACTED } else { FULL };
    let readable = |flag: &Flag| flag.spec().min_engine() <= engine.max(1);
    let segments_readable = engine >= SEGMENTS;
    Ok(match item.map_err(watch_end_to_status)? {
        WatchEvent::Change(entry) => match &entry.change {
            Committed::Flag(change) => match change.flag.as_deref() {
                Some(flag) if !readable(flag) => encode_change(
                    &FlagChange::deleted(change.flag_name.clone(), change.revision).into(),
                    writers,
                ),
                _ => encode_change(&entry.change, writers),
            },
            Committed::Segment(_) if segments_readable => encode_change(&entry.change, writers),
            Committed::Segment(change) => encode_event(
                &WatchEvent::Heartbeat {
                    revision: change.revision,
                },
                writers,
            ),
        },
        WatchEvent::Snapshot {
            flags,
            segments,
            revision,
            last,
        } => encode_event(
            &WatchEvent::Snapshot {
                flags: flags.into_iter().filter(|flag| readable(flag)).collect(),
                segments: if segments_readable {
                    segments
                } else {
                    Vec::new()
                },
                revision,
                last,
            },
            writers,
        ),
        event => encode_event(&event, writers),
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

/// A segment without what GetSegment keeps for `reader`.
fn redacted_segment_to_pb(segment: &Segment) -> pb::Segment {
    pb::Segment {
        included: Vec::new(),
        excluded: Vec::new(),
        description: String::new(),
        created_by: String::new(),
        updated_by: String::new(),
        ..segment_to_pb(segment)
    }
}

/// A snapshot chunk or a heartbeat (changes: [`encode_change`]).
fn encode_event(event: &WatchEvent, writers: Writers) -> Encoded {
    use pb::watch_response::Event;
    let event = match event {
        WatchEvent::Snapshot {
            flags,
            segments,
            revision,
            last,
        } => Event::Snapshot(pb::WatchSnapshot {
            flags: flags.iter().map(|flag| (writers.flag)(flag)).collect(),
            segments: segments
                .iter()
                .map(|segment| (writers.segment)(segment))
                .collect(),
            revision: *revision,
            last: *last,
        }),
        WatchEvent::Change(entry) => return encode_change(&entry.change, writers),
        WatchEvent::Heartbeat { revision } => Event::Heartbeat(pb::WatchHeartbeat {
            revision: *revision,
        }),
    };
    Encoded::frame(&pb::WatchResponse { event: Some(event) })
}

fn encode_change(change: &Committed, writers: Writers) -> Encoded {
    use pb::watch_response::Event;
    let kind = |exists: bool| {
        if exists {
            pb::ChangeKind::Upserted as i32
        } else {
            pb::ChangeKind::Deleted as i32
        }
    };
    let event = match change {
        Committed::Flag(change) => Event::Change(pb::FlagChange {
            revision: change.revision,
            flag_name: change.flag_name.to_string(),
            kind: kind(change.flag.is_some()),
            flag: change.flag.as_deref().map(writers.flag),
        }),
        Committed::Segment(change) => Event::SegmentChange(pb::SegmentChange {
            revision: change.revision,
            segment_name: change.name.to_string(),
            kind: kind(change.segment.is_some()),
            segment: change.segment.as_deref().map(writers.segment),
        }),
    };
    Encoded::frame(&pb::WatchResponse { event: Some(event) })
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

/// A request's context, checked against its limits (absent: empty).
pub fn context_of(context: Option<Struct>) -> Result<Struct> {
    let context = context.unwrap_or_default();
    vexil_proto::context::validate("context", &context)?;
    Ok(context)
}

/// What an answer says beyond on/off and the reason.
pub struct Answer {
    pub variant: String,
    pub value: Option<pb::TypedValue>,
    pub flag_type: i32,
    pub rule_index: Option<u32>,
    pub rule_id: String,
    pub failed_prerequisite: String,
}

pub fn answer_to_pb(result: &FlagResult) -> Answer {
    let variant = result.variant();
    let evaluation = &result.evaluation;
    let spec = result.flag.as_deref().map(Flag::spec);
    Answer {
        variant: variant.map(|v| v.name.clone()).unwrap_or_default(),
        value: variant.map(|v| value_to_pb(&v.value)),
        flag_type: wire::flag_type_to_pb(result.flag_type()) as i32,
        rule_index: evaluation.rule.map(u32::from),
        rule_id: evaluation
            .rule
            .and_then(|index| spec?.rules.get(usize::from(index)))
            .map(|rule| rule.id.clone())
            .unwrap_or_default(),
        failed_prerequisite: evaluation
            .prerequisite
            .and_then(|index| spec?.prerequisites.get(usize::from(index)))
            .map(|prerequisite| prerequisite.flag.clone())
            .unwrap_or_default(),
    }
}

pub fn explanation_to_pb(
    flag_name: String,
    explanation: &Explanation,
    flag: Option<&Flag>,
) -> pb::ExplainEvaluationResponse {
    let rule = |rule: Rule| match rule {
        Rule::FlagExists => pb::EvaluationRule::FlagExists,
        Rule::Enabled => pb::EvaluationRule::Enabled,
        Rule::StartsAt => pb::EvaluationRule::StartsAt,
        Rule::ExpiresAt => pb::EvaluationRule::ExpiresAt,
        Rule::Environments => pb::EvaluationRule::Environments,
        Rule::Prerequisites => pb::EvaluationRule::Prerequisites,
        Rule::Blacklist => pb::EvaluationRule::Blacklist,
        Rule::Whitelist => pb::EvaluationRule::Whitelist,
        Rule::Targets => pb::EvaluationRule::Targets,
        Rule::EnvironmentOverride => pb::EvaluationRule::EnvironmentOverride,
        Rule::TargetingRules => pb::EvaluationRule::TargetingRules,
        Rule::PercentageRollout => pb::EvaluationRule::PercentageRollout,
        Rule::Fallthrough => pb::EvaluationRule::Fallthrough,
    };
    let evaluation = &explanation.evaluation;
    let variant = flag
        .zip(evaluation.variant)
        .and_then(|(flag, index)| flag.variant(index));
    let variant_name = |index: Option<u16>| {
        flag.zip(index)
            .and_then(|(flag, index)| flag.variant(index))
            .map(|variant| variant.name.clone())
            .unwrap_or_default()
    };
    pb::ExplainEvaluationResponse {
        flag_name,
        enabled: evaluation.enabled,
        reason: reason(evaluation.reason) as i32,
        revision: flag.map_or(0, |flag| flag.revision),
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
        variant: variant.map(|v| v.name.clone()).unwrap_or_default(),
        value: variant.map(|v| value_to_pb(&v.value)),
        rule_index: evaluation.rule.map(u32::from),
        clauses: explanation
            .clauses
            .iter()
            .map(|check| pb::ClauseCheck {
                rule_index: u32::from(check.rule),
                clause_index: u32::from(check.clause),
                attribute: check.attribute.clone(),
                seen: check.seen.clone(),
                matched: check.matched,
            })
            .collect(),
        split: explanation.split.as_ref().map(|split| pb::SplitCheck {
            bucket: split.bucket,
            ranges: split
                .ends
                .iter()
                .scan(0, |start, (end, variant)| {
                    let range = pb::SplitRange {
                        variant: variant_name(*variant),
                        start: *start,
                        end: *end,
                    };
                    *start = *end;
                    Some(range)
                })
                .collect(),
        }),
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
        variants: figures
            .variants
            .iter()
            .map(|(variant, &count)| pb::VariantCount {
                variant: variant.clone(),
                count,
            })
            .collect(),
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
    use vexil_proto::google::protobuf::{ListValue, Value, value::Kind};

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
        assert_eq!(
            update_fields(mask(&["*"])).unwrap().len(),
            FlagField::ALL.len()
        );
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
        let back = wire::struct_from_pb("m", wire::struct_to_pb(&metadata)).unwrap();
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
                        .prop_map(|values| Kind::ListValue(ListValue { values })),
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
                typed in typed(),
            ) -> pb::Flag {
                pb::Flag {
                    name, description, enabled, percentage, whitelist, blacklist,
                    environments, environment_overrides, starts_at, expires_at, tags,
                    metadata, group, ..typed
                }
            }
        }

        fn typed_value() -> impl Strategy<Value = Option<pb::TypedValue>> {
            use pb::typed_value::Value as V;
            prop::option::of(
                prop_oneof![
                    any::<bool>().prop_map(V::BoolValue),
                    text().prop_map(V::StringValue),
                    any::<i64>().prop_map(V::IntValue),
                    number().prop_map(V::FloatValue),
                    prop::collection::btree_map(text(), value(), 0..3)
                        .prop_map(|fields| V::ObjectValue(Struct { fields })),
                ]
                .prop_map(|value| pb::TypedValue { value: Some(value) }),
            )
        }

        fn serve() -> impl Strategy<Value = Option<pb::Serve>> {
            use pb::serve::Kind as K;
            let names = prop_oneof![Just("a".to_string()), Just("on".to_string()), text()];
            prop::option::of(
                prop_oneof![
                    names.clone().prop_map(K::Variant),
                    (
                        prop::collection::vec(
                            (names, prop_oneof![any::<u32>(), 0..10_001u32]).prop_map(
                                |(variant, weight)| pb::WeightedVariant { variant, weight }
                            ),
                            0..4
                        ),
                        text(),
                        prop::option::of(text()),
                        prop_oneof![Just(0), Just(1), any::<i32>()],
                    )
                        .prop_map(|(weights, bucket_by, salt, bucketing)| {
                            K::Split(pb::Split {
                                weights,
                                bucket_by,
                                salt,
                                bucketing,
                            })
                        }),
                ]
                .prop_map(|kind| pb::Serve { kind: Some(kind) }),
            )
        }

        fn clause() -> impl Strategy<Value = pb::Clause> {
            use pb::clause_value::Value as V;
            let value = prop::option::of(prop_oneof![
                text().prop_map(V::StringValue),
                number().prop_map(V::NumberValue),
                any::<bool>().prop_map(V::BoolValue),
                Just(V::StringValue("1.2.3".into())),
                Just(V::StringValue("2026-01-01T00:00:00Z".into())),
                Just(V::StringValue("(a+)+$".into())),
            ])
            .prop_map(|value| pb::ClauseValue { value });
            (
                text(),
                -1..20i32,
                prop::collection::vec(value, 0..4),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(attribute, op, values, negate, case_insensitive)| {
                    pb::Clause {
                        attribute,
                        op,
                        values,
                        negate,
                        case_insensitive,
                    }
                })
        }

        prop_compose! {
            fn typed()(
                r#type in -1..6i32,
                variants in prop::collection::vec(
                    (prop_oneof![Just("a".to_string()), text()], typed_value())
                        .prop_map(|(name, value)| pb::Variant { name, value, description: String::new() }),
                    0..4,
                ),
                off_variant in prop::option::of(prop_oneof![Just("a".to_string()), text()]),
                targets in prop::collection::vec(
                    (text(), prop::collection::vec(text(), 0..3))
                        .prop_map(|(variant, user_ids)| pb::Target { variant, user_ids }),
                    0..3,
                ),
                rules in prop::collection::vec(
                    (text(), prop::collection::vec(clause(), 0..4), serve())
                        .prop_map(|(id, clauses, serve)| pb::TargetingRule {
                            id, clauses, serve, description: String::new(),
                        }),
                    0..3,
                ),
                fallthrough in serve(),
                prerequisites in prop::collection::vec(
                    (text(), prop::collection::vec(text(), 0..2))
                        .prop_map(|(flag, variants)| pb::Prerequisite { flag, variants }),
                    0..3,
                ),
            ) -> pb::Flag {
                pb::Flag {
                    r#type, variants, off_variant, targets, rules, fallthrough, prerequisites,
                    ..pb::Flag::default()
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
                                let back = flag_to_pb(&Flag::new(
                                    FlagName::parse("n", "n").expect("name"),
                                    spec.clone(),
                                    crate::domain::Stamp {
                                        revision: 1,
                                        created_at: DateTime::UNIX_EPOCH,
                                        updated_at: DateTime::UNIX_EPOCH,
                                        created_by: String::new(),
                                        updated_by: String::new(),
                                    },
                                ));
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
