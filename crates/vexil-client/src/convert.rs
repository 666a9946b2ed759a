//! Flags as the wire carries them, to the engine's model.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use vexil_engine::{Flag, FlagName, FlagSpec, Metadata};

use crate::pb;

/// The engine's flag for a flag the server sent; `None` for a name the
/// engine would not accept (a server never sends one).
pub fn flag_from_pb(flag: pb::Flag) -> Option<Flag> {
    let name = FlagName::parse("name", flag.name).ok()?;
    Some(Flag {
        name,
        spec: FlagSpec {
            description: flag.description,
            enabled: flag.enabled,
            percentage: flag.percentage,
            whitelist: flag.whitelist.into_iter().collect(),
            blacklist: flag.blacklist.into_iter().collect(),
            environments: flag.environments,
            environment_overrides: flag.environment_overrides.into_iter().collect(),
            starts_at: flag.starts_at.and_then(time),
            expires_at: flag.expires_at.and_then(time),
            tags: flag.tags,
            metadata: flag.metadata.map(metadata).unwrap_or_default(),
            group: (!flag.group.is_empty()).then_some(flag.group),
        },
        revision: flag.revision,
        created_at: flag.created_at.and_then(time).unwrap_or_default(),
        updated_at: flag.updated_at.and_then(time).unwrap_or_default(),
        created_by: flag.created_by,
        updated_by: flag.updated_by,
    })
}

fn time(ts: prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

fn metadata(fields: prost_types::Struct) -> Metadata {
    fields
        .fields
        .into_iter()
        .map(|(key, value)| (key, json(value)))
        .collect()
}

fn json(value: prost_types::Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(value)) => value.into(),
        Some(Kind::NumberValue(value)) => serde_json::Number::from_f64(value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(value)) => value.into(),
        Some(Kind::ListValue(list)) => list.values.into_iter().map(json).collect(),
        Some(Kind::StructValue(fields)) => serde_json::Value::Object(metadata(fields)),
    }
}
