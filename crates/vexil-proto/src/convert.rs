//! The one conversion between `vexil.v1` messages and the engine's model.
//! Incoming messages are destructured exhaustively, so a new proto field
//! fails the build until it is handled. Errors name the field.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use vexil_engine::{
    Bucketing, Clause, ClauseValue, Flag, FlagName, FlagSpec, FlagType, Metadata, Operator,
    Prerequisite, Reason, Segment, SegmentRule, SegmentSpec, Serve, Split, Stamp, Target,
    TargetingRule, UserSet, ValidationError, Value, Variant, WeightedVariant, limits,
};

use crate::google::protobuf::{ListValue, Struct, Value as PbValue, value::Kind};
use crate::v1 as pb;

type Result<T> = std::result::Result<T, ValidationError>;

fn invalid<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(ValidationError::new(field, message))
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
        .ok_or_else(|| {
            ValidationError::new(field, "must be a valid timestamp between years 1 and 9999")
        })
}

pub fn struct_from_pb(field: &str, value: Struct) -> Result<Metadata> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| Ok((key, json_from_pb(field, value)?)))
        .collect()
}

pub fn json_from_pb(field: &str, value: PbValue) -> Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        // -0 becomes 0: not every store keeps the sign of zero, and every
        // path must give back the value stored, bit for bit.
        Some(Kind::NumberValue(n)) => match serde_json::Number::from_f64(n + 0.0) {
            Some(number) => Json::Number(number),
            None => return invalid(field, "numbers must be finite"),
        },
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .map(|v| json_from_pb(field, v))
                .collect::<Result<_>>()?,
        ),
        Some(Kind::StructValue(s)) => Json::Object(struct_from_pb(field, s)?),
    })
}

pub fn struct_to_pb(object: &Metadata) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.clone(), json_to_pb(value)))
            .collect(),
    }
}

pub fn json_to_pb(value: &serde_json::Value) -> PbValue {
    use serde_json::Value as Json;
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_pb).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_to_pb(map)),
    };
    PbValue { kind: Some(kind) }
}

pub fn reason_to_pb(reason: Reason) -> pb::Reason {
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
        Reason::PrerequisiteFailed => pb::Reason::PrerequisiteFailed,
        Reason::TargetMatch => pb::Reason::TargetMatch,
        Reason::RuleMatch => pb::Reason::RuleMatch,
        Reason::Split => pb::Reason::Split,
        Reason::Default => pb::Reason::Default,
    }
}

/// The engine's reason for a wire reason; `None` for UNSPECIFIED or a
/// reason this build does not know.
pub fn reason_from_pb(reason: i32) -> Option<Reason> {
    let reason = pb::Reason::try_from(reason).ok()?;
    Reason::ALL
        .into_iter()
        .find(|known| reason_to_pb(*known) == reason)
}

pub fn flag_type_to_pb(flag_type: FlagType) -> pb::FlagType {
    match flag_type {
        FlagType::Boolean => pb::FlagType::Boolean,
        FlagType::String => pb::FlagType::String,
        FlagType::Int => pb::FlagType::Int,
        FlagType::Float => pb::FlagType::Float,
        FlagType::Object => pb::FlagType::Object,
    }
}

pub fn flag_type_from_pb(field: &str, flag_type: i32) -> Result<FlagType> {
    match pb::FlagType::try_from(flag_type) {
        Ok(pb::FlagType::Boolean) => Ok(FlagType::Boolean),
        Ok(pb::FlagType::String) => Ok(FlagType::String),
        Ok(pb::FlagType::Int) => Ok(FlagType::Int),
        Ok(pb::FlagType::Float) => Ok(FlagType::Float),
        Ok(pb::FlagType::Object) => Ok(FlagType::Object),
        Err(_) => invalid(field, format!("unknown flag type {flag_type}")),
    }
}

pub fn value_to_pb(value: &Value) -> pb::TypedValue {
    use pb::typed_value::Value as V;
    pb::TypedValue {
        value: Some(match value {
            Value::Bool(b) => V::BoolValue(*b),
            Value::String(s) => V::StringValue(s.clone()),
            Value::Int(n) => V::IntValue(*n),
            Value::Float(n) => V::FloatValue(*n),
            Value::Object(object) => V::ObjectValue(struct_to_pb(object)),
        }),
    }
}

pub fn value_from_pb(field: &str, value: Option<pb::TypedValue>) -> Result<Value> {
    use pb::typed_value::Value as V;
    Ok(match value.and_then(|value| value.value) {
        None => return invalid(field, "must be set"),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::StringValue(s)) => Value::String(s),
        Some(V::IntValue(n)) => Value::Int(n),
        // -0 becomes 0, as everywhere.
        Some(V::FloatValue(n)) if n.is_finite() => Value::Float(n + 0.0),
        Some(V::FloatValue(_)) => return invalid(field, "must be a finite number"),
        Some(V::ObjectValue(object)) => Value::Object(struct_from_pb(field, object)?),
    })
}

const OPERATORS: [(Operator, pb::Operator); 18] = [
    (Operator::In, pb::Operator::In),
    (Operator::StartsWith, pb::Operator::StartsWith),
    (Operator::EndsWith, pb::Operator::EndsWith),
    (Operator::Contains, pb::Operator::Contains),
    (Operator::Lt, pb::Operator::Lt),
    (Operator::Lte, pb::Operator::Lte),
    (Operator::Gt, pb::Operator::Gt),
    (Operator::Gte, pb::Operator::Gte),
    (Operator::SemverEq, pb::Operator::SemverEq),
    (Operator::SemverLt, pb::Operator::SemverLt),
    (Operator::SemverLte, pb::Operator::SemverLte),
    (Operator::SemverGt, pb::Operator::SemverGt),
    (Operator::SemverGte, pb::Operator::SemverGte),
    (Operator::Before, pb::Operator::Before),
    (Operator::After, pb::Operator::After),
    (Operator::Exists, pb::Operator::Exists),
    (Operator::InSegment, pb::Operator::InSegment),
    (Operator::Matches, pb::Operator::Matches),
];

fn operator_to_pb(op: Operator) -> pb::Operator {
    OPERATORS
        .iter()
        .find(|(engine, _)| *engine == op)
        .map_or(pb::Operator::Unspecified, |(_, wire)| *wire)
}

fn operator_from_pb(field: &str, op: i32) -> Result<Operator> {
    OPERATORS
        .iter()
        .find(|(_, wire)| *wire as i32 == op)
        .map(|(engine, _)| *engine)
        .ok_or_else(|| ValidationError::new(field, "must name an operator"))
}

fn clause_to_pb(clause: &Clause) -> pb::Clause {
    use pb::clause_value::Value as V;
    pb::Clause {
        attribute: clause.attribute.clone(),
        op: operator_to_pb(clause.op) as i32,
        values: clause
            .values
            .iter()
            .map(|value| pb::ClauseValue {
                value: Some(match value {
                    ClauseValue::String(s) => V::StringValue(s.clone()),
                    ClauseValue::Number(n) => V::NumberValue(*n),
                    ClauseValue::Bool(b) => V::BoolValue(*b),
                }),
            })
            .collect(),
        negate: clause.negate,
        case_insensitive: clause.case_insensitive,
    }
}

fn clause_from_pb(field: &str, clause: pb::Clause) -> Result<Clause> {
    use pb::clause_value::Value as V;
    let pb::Clause {
        attribute,
        op,
        values,
        negate,
        case_insensitive,
    } = clause;
    if values.len() > limits::CLAUSE_VALUES {
        return invalid(
            format!("{field}.values"),
            format!("must hold at most {} values", limits::CLAUSE_VALUES),
        );
    }
    let values = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value.value {
            Some(V::StringValue(s)) => Ok(ClauseValue::String(s)),
            // -0 becomes 0, as everywhere.
            Some(V::NumberValue(n)) => Ok(ClauseValue::Number(n + 0.0)),
            Some(V::BoolValue(b)) => Ok(ClauseValue::Bool(b)),
            None => invalid(format!("{field}.values[{i}]"), "must be set"),
        })
        .collect::<Result<_>>()?;
    Ok(Clause {
        attribute,
        op: operator_from_pb(&format!("{field}.op"), op)?,
        values,
        negate,
        case_insensitive,
    })
}

fn serve_to_pb(serve: &Serve) -> pb::Serve {
    use pb::serve::Kind as K;
    pb::Serve {
        kind: Some(match serve {
            Serve::Variant(name) => K::Variant(name.clone()),
            Serve::Split(split) => K::Split(pb::Split {
                weights: split
                    .weights
                    .iter()
                    .map(|w| pb::WeightedVariant {
                        variant: w.variant.clone(),
                        weight: w.weight,
                    })
                    .collect(),
                bucket_by: split.bucket_by.clone(),
                salt: split.salt.clone(),
                bucketing: match split.bucketing {
                    Bucketing::Vexil => pb::Bucketing::Vexil,
                    Bucketing::Flagd => pb::Bucketing::Flagd,
                } as i32,
            }),
        }),
    }
}

fn serve_from_pb(field: &str, serve: Option<pb::Serve>) -> Result<Serve> {
    use pb::serve::Kind as K;
    match serve.and_then(|serve| serve.kind) {
        None => invalid(field, "must serve a variant or a split"),
        Some(K::Variant(name)) => Ok(Serve::Variant(name)),
        Some(K::Split(pb::Split {
            weights,
            bucket_by,
            salt,
            bucketing,
        })) => {
            let bucketing = match pb::Bucketing::try_from(bucketing) {
                Ok(pb::Bucketing::Vexil) => Bucketing::Vexil,
                Ok(pb::Bucketing::Flagd) => Bucketing::Flagd,
                Err(_) => {
                    return invalid(
                        format!("{field}.split.bucketing"),
                        format!("unknown bucketing {bucketing}"),
                    );
                }
            };
            if weights.len() > limits::VARIANTS {
                return invalid(
                    format!("{field}.split.weights"),
                    format!("must hold at most {} variants", limits::VARIANTS),
                );
            }
            Ok(Serve::Split(Split {
                weights: weights
                    .into_iter()
                    .map(|w| WeightedVariant {
                        variant: w.variant,
                        weight: w.weight,
                    })
                    .collect(),
                bucket_by,
                salt,
                bucketing,
            }))
        }
    }
}

fn rule_to_pb(rule: &TargetingRule) -> pb::TargetingRule {
    pb::TargetingRule {
        id: rule.id.clone(),
        clauses: rule.clauses.iter().map(clause_to_pb).collect(),
        serve: Some(serve_to_pb(&rule.serve)),
        description: rule.description.clone(),
    }
}

fn rule_from_pb(field: &str, rule: pb::TargetingRule) -> Result<TargetingRule> {
    let pb::TargetingRule {
        id,
        clauses,
        serve,
        description,
    } = rule;
    if clauses.len() > limits::CLAUSES {
        return invalid(
            format!("{field}.clauses"),
            format!("must hold at most {} clauses", limits::CLAUSES),
        );
    }
    Ok(TargetingRule {
        id,
        description,
        clauses: clauses
            .into_iter()
            .enumerate()
            .map(|(j, clause)| clause_from_pb(&format!("{field}.clauses[{j}]"), clause))
            .collect::<Result<_>>()?,
        serve: serve_from_pb(&format!("{field}.serve"), serve)?,
    })
}

/// Refuses a repeated field longer than `max` before converting any of it.
fn at_most<T>(field: &str, items: &[T], max: usize, what: &str) -> Result<()> {
    if items.len() > max {
        return invalid(field, format!("must hold at most {max} {what}"));
    }
    Ok(())
}

/// Splits an incoming flag into its name and spec. Output-only fields are
/// ignored. Checks only what the conversion needs; limits are the engine's
/// (`FlagSpec::validate`).
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
        r#type,
        variants,
        off_variant,
        targets,
        rules,
        fallthrough,
        prerequisites,
        min_engine: _,
    } = flag;
    at_most(
        "flag.environment_overrides",
        &environment_overrides.keys().collect::<Vec<_>>(),
        limits::ENVIRONMENTS,
        "entries",
    )?;
    at_most("flag.variants", &variants, limits::VARIANTS, "variants")?;
    at_most("flag.targets", &targets, limits::VARIANTS, "targets")?;
    at_most("flag.rules", &rules, limits::RULES, "rules")?;
    at_most(
        "flag.prerequisites",
        &prerequisites,
        limits::PREREQUISITES,
        "prerequisites",
    )?;
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
            .map(|m| struct_from_pb("flag.metadata", m))
            .transpose()?
            .unwrap_or_default(),
        group: Some(group).filter(|group| !group.is_empty()),
        flag_type: flag_type_from_pb("flag.type", r#type)?,
        variants: variants
            .into_iter()
            .enumerate()
            .map(|(i, variant)| {
                let pb::Variant {
                    name,
                    value,
                    description,
                } = variant;
                Ok(Variant {
                    name,
                    value: value_from_pb(&format!("flag.variants[{i}].value"), value)?,
                    description,
                })
            })
            .collect::<Result<_>>()?,
        off_variant,
        targets: targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| {
                Ok(Target {
                    variant: target.variant,
                    user_ids: UserSet::parse(
                        &format!("flag.targets[{i}].user_ids"),
                        target.user_ids,
                    )?,
                })
            })
            .collect::<Result<_>>()?,
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule_from_pb(&format!("flag.rules[{i}]"), rule))
            .collect::<Result<_>>()?,
        fallthrough: fallthrough
            .map(|serve| serve_from_pb("flag.fallthrough", Some(serve)))
            .transpose()?,
        prerequisites: prerequisites
            .into_iter()
            .map(|p| Prerequisite {
                flag: p.flag,
                variants: p.variants,
            })
            .collect(),
    };
    Ok((name, spec))
}

pub fn flag_to_pb(flag: &Flag) -> pb::Flag {
    let spec = flag.spec();
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
        metadata: Some(struct_to_pb(&spec.metadata)),
        group: spec.group.clone().unwrap_or_default(),
        revision: flag.revision,
        created_at: Some(timestamp_to_pb(flag.created_at)),
        updated_at: Some(timestamp_to_pb(flag.updated_at)),
        created_by: flag.created_by.clone(),
        updated_by: flag.updated_by.clone(),
        r#type: flag_type_to_pb(spec.flag_type) as i32,
        variants: spec
            .variants
            .iter()
            .map(|variant| pb::Variant {
                name: variant.name.clone(),
                value: Some(value_to_pb(&variant.value)),
                description: variant.description.clone(),
            })
            .collect(),
        off_variant: spec.off_variant.clone(),
        targets: spec
            .targets
            .iter()
            .map(|target| pb::Target {
                variant: target.variant.clone(),
                user_ids: target.user_ids.iter().map(str::to_owned).collect(),
            })
            .collect(),
        rules: spec.rules.iter().map(rule_to_pb).collect(),
        fallthrough: spec.fallthrough.as_ref().map(serve_to_pb),
        prerequisites: spec
            .prerequisites
            .iter()
            .map(|p| pb::Prerequisite {
                flag: p.flag.clone(),
                variants: p.variants.clone(),
            })
            .collect(),
        min_engine: spec.min_engine(),
    }
}

/// The engine's flag for a flag a server sent (the Watch stream): the
/// same conversion as a write's, with the bookkeeping kept.
pub fn stored_flag_from_pb(flag: pb::Flag) -> Result<Flag> {
    let stamp = Stamp {
        revision: flag.revision,
        created_at: flag
            .created_at
            .map(|ts| timestamp_from_pb("flag.created_at", ts))
            .transpose()?
            .unwrap_or_default(),
        updated_at: flag
            .updated_at
            .map(|ts| timestamp_from_pb("flag.updated_at", ts))
            .transpose()?
            .unwrap_or_default(),
        created_by: flag.created_by.clone(),
        updated_by: flag.updated_by.clone(),
    };
    let (name, spec) = flag_from_pb(flag)?;
    Ok(Flag::new(FlagName::parse("flag.name", name)?, spec, stamp))
}

/// A segment's name and spec from a write (output-only fields ignored).
pub fn segment_from_pb(segment: pb::Segment) -> Result<(String, SegmentSpec)> {
    let pb::Segment {
        name,
        description,
        included,
        excluded,
        rules,
        revision: _,
        created_at: _,
        updated_at: _,
        created_by: _,
        updated_by: _,
    } = segment;
    at_most("segment.rules", &rules, limits::RULES, "rules")?;
    let rules = rules
        .into_iter()
        .enumerate()
        .map(|(i, rule)| {
            let field = format!("segment.rules[{i}]");
            let pb::SegmentRule {
                clauses,
                description,
            } = rule;
            at_most(
                &format!("{field}.clauses"),
                &clauses,
                limits::CLAUSES,
                "clauses",
            )?;
            Ok(SegmentRule {
                description,
                clauses: clauses
                    .into_iter()
                    .enumerate()
                    .map(|(j, clause)| clause_from_pb(&format!("{field}.clauses[{j}]"), clause))
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((
        name,
        SegmentSpec {
            description,
            included: UserSet::parse("segment.included", included)?,
            excluded: UserSet::parse("segment.excluded", excluded)?,
            rules,
        },
    ))
}

pub fn segment_to_pb(segment: &Segment) -> pb::Segment {
    let spec = segment.spec();
    pb::Segment {
        name: segment.name.to_string(),
        description: spec.description.clone(),
        included: spec.included.iter().map(str::to_owned).collect(),
        excluded: spec.excluded.iter().map(str::to_owned).collect(),
        rules: spec
            .rules
            .iter()
            .map(|rule| pb::SegmentRule {
                clauses: rule.clauses.iter().map(clause_to_pb).collect(),
                description: rule.description.clone(),
            })
            .collect(),
        revision: segment.revision,
        created_at: Some(timestamp_to_pb(segment.created_at)),
        updated_at: Some(timestamp_to_pb(segment.updated_at)),
        created_by: segment.created_by.clone(),
        updated_by: segment.updated_by.clone(),
    }
}

/// The engine's segment for one a server sent (Watch).
pub fn stored_segment_from_pb(segment: pb::Segment) -> Result<Segment> {
    let at = |field: &str, ts: Option<Timestamp>| {
        ts.map(|ts| timestamp_from_pb(field, ts))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let created_at = at("segment.created_at", segment.created_at)?;
    let updated_at = at("segment.updated_at", segment.updated_at)?;
    let (revision, created_by, updated_by) = (
        segment.revision,
        segment.created_by.clone(),
        segment.updated_by.clone(),
    );
    let (name, spec) = segment_from_pb(segment)?;
    let mut segment = Segment::new(
        FlagName::parse("segment.name", name)?,
        spec,
        revision,
        created_at,
    );
    segment.updated_at = updated_at;
    segment.created_by = created_by;
    segment.updated_by = updated_by;
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_round_trips() {
        let spec: SegmentSpec = serde_json::from_value(serde_json::json!({
            "description": "d", "included": ["a"], "excluded": ["b"],
            "rules": [{"description": "r", "clauses": [
                {"attribute": "plan", "op": "in", "values": ["x", 2, true], "negate": true}]}]
        }))
        .expect("a spec");
        assert_eq!(spec.validate("segment"), Ok(()));
        let name = FlagName::parse("name", "beta".to_string()).expect("name");
        let mut segment = Segment::new(name, spec.clone(), 4, DateTime::UNIX_EPOCH);
        segment.created_by = "a".into();
        segment.updated_by = "b".into();
        let wire = segment_to_pb(&segment);
        let (_, back) = segment_from_pb(wire.clone()).expect("converted back");
        assert_eq!(back, spec);
        assert_eq!(stored_segment_from_pb(wire).expect("stored"), segment);
    }

    /// Engine 3's features: flagd's bucketing and a path into the context.
    #[test]
    fn a_flagd_split_round_trips_and_needs_engine_3() {
        let spec: FlagSpec = serde_json::from_value(serde_json::json!({
            "type": "string", "enabled": true,
            "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}}],
            "fallthrough": {"split": {"weights": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 3}],
                "bucket_by": "$.user.name", "salt": "", "bucketing": "flagd"}}
        }))
        .expect("a spec");
        assert_eq!(spec.validate("flag"), Ok(()));
        let name = FlagName::parse("name", "moved".to_string()).expect("name");
        let stamp = Stamp {
            revision: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            created_by: String::new(),
            updated_by: String::new(),
        };
        let wire = flag_to_pb(&Flag::new(name, spec.clone(), stamp));
        assert_eq!(wire.min_engine, 3);
        let (_, back) = flag_from_pb(wire).expect("converted back");
        assert_eq!(back, spec);
    }

    #[test]
    fn a_typed_flag_round_trips() {
        let spec: FlagSpec = serde_json::from_value(serde_json::json!({
            "enabled": true, "type": "int",
            "variants": [{"name": "low", "value": {"int": 1}}, {"name": "high", "value": {"int": 9}}],
            "off_variant": "low",
            "targets": [{"variant": "high", "user_ids": ["a"]}],
            "rules": [{"id": "r", "clauses": [
                {"attribute": "plan", "op": "in", "values": ["x", 2, true], "negate": true},
                {"attribute": "v", "op": "semver_gte", "values": ["2.3.0"], "case_insensitive": true}
            ], "serve": {"split": {"weights": [{"variant": "low", "weight": 5000},
                {"variant": "high", "weight": 5000}], "bucket_by": "org", "salt": "s"}}}],
            "fallthrough": {"variant": "high"},
            "prerequisites": [{"flag": "other", "variants": ["on"]}]
        }))
        .expect("a spec");
        assert_eq!(spec.validate("flag"), Ok(()));
        let name = FlagName::parse("name", "typed".to_string()).expect("name");
        let flag = Flag::new(
            name,
            spec.clone(),
            Stamp {
                revision: 3,
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
                created_by: "a".into(),
                updated_by: "b".into(),
            },
        );
        let wire = flag_to_pb(&flag);
        assert_eq!(wire.min_engine, 2, "typed, without engine 3's features");
        let (_, back) = flag_from_pb(wire.clone()).expect("converted back");
        assert_eq!(back, spec);
        assert_eq!(stored_flag_from_pb(wire).expect("stored"), flag);
    }

    #[test]
    fn every_reason_and_operator_has_a_wire_value() {
        for reason in Reason::ALL {
            assert_eq!(reason_from_pb(reason_to_pb(reason) as i32), Some(reason));
        }
        for op in Operator::ALL {
            assert_eq!(operator_from_pb("op", operator_to_pb(op) as i32), Ok(op));
        }
        assert!(operator_from_pb("op", 0).is_err());
    }
}
