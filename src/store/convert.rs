//! Conversions between sea-orm models and domain types, and the
//! classification of database errors into the service's [`Error`].

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::entities::{audit, flag, group, segment};
use std::sync::Arc;

use crate::domain::{
    AuditAction, AuditEntry, Committed, Flag, FlagChange, FlagName, FlagSpec, FlagType, Group,
    Prerequisite, Segment, SegmentChange, SegmentSpec, Serve, Snapshot, Stamp, Subject, Target,
    TargetingRule, Variant,
};
use crate::error::Error;
use crate::instruments::instruments;

/// Maps a database error to what the caller can do about it: connection
/// trouble, lock timeouts and a busy database are UNAVAILABLE (retry), a
/// unique violation ALREADY_EXISTS, a foreign-key violation
/// FAILED_PRECONDITION, anything else INTERNAL. Details are logged, not
/// returned.
pub(super) fn db_error(err: DbErr) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => {
            instruments().store_error("conflict");
            tracing::debug!(%detail, "unique violation");
            return Error::AlreadyExists("it already exists".into());
        }
        Some(SqlErr::ForeignKeyConstraintViolation(detail)) => {
            instruments().store_error("conflict");
            tracing::debug!(%detail, "foreign-key violation");
            return Error::FailedPrecondition("it refers to something that does not exist".into());
        }
        _ => {}
    }
    if is_unavailable(&err) {
        instruments().store_error("unavailable");
        tracing::warn!(error = %err, "database unavailable");
        return Error::Unavailable("the flag store is unavailable".into());
    }
    instruments().store_error("internal");
    tracing::error!(error = %err, "database error");
    Error::Internal(format!("database error: {err}"))
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            sqlx
        }
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// Database error codes that mean "try again later": PostgreSQL connection
/// exceptions (class 08), shutdown or restart (57P01-57P03), lock and
/// statement timeouts (55P03, 57014), too many connections (53300); SQLite
/// BUSY and LOCKED (primary codes 5 and 6). SQLSTATEs have five
/// characters; SQLite's (extended) result codes at most four digits.
fn unavailable_code(code: &str) -> bool {
    if code.len() < 5 {
        return code
            .parse::<i32>()
            .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6));
    }
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "55P03" | "57014" | "53300"
        )
}

/// A flag's type, variants and targeting, stored in one JSON column.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Targeting {
    #[serde(rename = "type")]
    flag_type: FlagType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    variants: Vec<Variant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    off_variant: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    targets: Vec<Target>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<TargetingRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallthrough: Option<Serve>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prerequisites: Vec<Prerequisite>,
}

impl Targeting {
    /// `None` for a plain boolean flag (the column stays NULL).
    fn of(spec: &FlagSpec) -> Option<Self> {
        let plain = spec.flag_type == FlagType::Boolean
            && spec.variants.is_empty()
            && spec.off_variant.is_none()
            && spec.targets.is_empty()
            && spec.rules.is_empty()
            && spec.fallthrough.is_none()
            && spec.prerequisites.is_empty();
        (!plain).then(|| Self {
            flag_type: spec.flag_type,
            variants: spec.variants.clone(),
            off_variant: spec.off_variant.clone(),
            targets: spec.targets.clone(),
            rules: spec.rules.clone(),
            fallthrough: spec.fallthrough.clone(),
            prerequisites: spec.prerequisites.clone(),
        })
    }

    fn into_spec(self) -> FlagSpec {
        FlagSpec {
            flag_type: self.flag_type,
            variants: self.variants,
            off_variant: self.off_variant,
            targets: self.targets,
            rules: self.rules,
            fallthrough: self.fallthrough,
            prerequisites: self.prerequisites,
            ..FlagSpec::default()
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|err| Error::Internal(format!("encoding json: {err}")))
}

fn from_json<T: DeserializeOwned>(column: &str, value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|err| Error::Internal(format!("decoding stored {column}: {err}")))
}

fn to_revision(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or_default()
}

pub(super) fn from_revision(revision: u64) -> Result<i64, Error> {
    i64::try_from(revision).map_err(|_| Error::Internal("revision overflow".into()))
}

pub(super) fn flag_to_model(flag: &Flag) -> Result<flag::Model, Error> {
    let spec = flag.spec();
    Ok(flag::Model {
        name: flag.name.to_string(),
        description: spec.description.clone(),
        enabled: spec.enabled,
        percentage: spec.percentage,
        whitelist: to_json(&spec.whitelist)?,
        blacklist: to_json(&spec.blacklist)?,
        environments: to_json(&spec.environments)?,
        environment_overrides: to_json(&spec.environment_overrides)?,
        starts_at: spec.starts_at,
        expires_at: spec.expires_at,
        tags: to_json(&spec.tags)?,
        metadata: serde_json::Value::Object(spec.metadata.clone()),
        group_name: spec.group.clone(),
        targeting: Targeting::of(spec).map(|t| to_json(&t)).transpose()?,
        revision: from_revision(flag.revision)?,
        created_at: flag.created_at,
        updated_at: flag.updated_at,
        created_by: flag.created_by.clone(),
        updated_by: flag.updated_by.clone(),
    })
}

pub(super) fn flag_from_model(model: flag::Model) -> Result<Flag, Error> {
    let name = FlagName::parse("name", model.name)
        .map_err(|err| Error::Internal(format!("stored flag name is invalid: {}", err.message)))?;
    Ok(Flag::new(
        name,
        FlagSpec {
            description: model.description,
            enabled: model.enabled,
            percentage: model.percentage,
            whitelist: from_json("whitelist", model.whitelist)?,
            blacklist: from_json("blacklist", model.blacklist)?,
            environments: from_json("environments", model.environments)?,
            environment_overrides: from_json("environment_overrides", model.environment_overrides)?,
            starts_at: model.starts_at,
            expires_at: model.expires_at,
            tags: from_json("tags", model.tags)?,
            metadata: from_json("metadata", model.metadata)?,
            group: model.group_name,
            ..model
                .targeting
                .map(|t| from_json::<Targeting>("targeting", t))
                .transpose()?
                .unwrap_or_default()
                .into_spec()
        },
        Stamp {
            revision: to_revision(model.revision),
            created_at: model.created_at,
            updated_at: model.updated_at,
            created_by: model.created_by,
            updated_by: model.updated_by,
        },
    ))
}

pub(super) fn snapshot<T: Serialize>(
    state: Option<&T>,
) -> Result<Option<serde_json::Value>, Error> {
    state.map(to_json).transpose()
}

fn subject_of(stored: &str) -> Result<Subject, Error> {
    Subject::parse(stored)
        .ok_or_else(|| Error::Internal(format!("stored audit subject is invalid: {stored}")))
}

/// A stored before/after snapshot of `subject`.
fn snapshot_from_json(
    subject: Subject,
    column: &str,
    value: serde_json::Value,
) -> Result<Snapshot, Error> {
    Ok(match subject {
        Subject::Flag => Snapshot::Flag(Box::new(from_json(column, value)?)),
        Subject::Segment => Snapshot::Segment(Box::new(from_json(column, value)?)),
    })
}

pub(super) fn audit_from_model(model: audit::Model) -> Result<AuditEntry, Error> {
    let action = AuditAction::parse(&model.action).ok_or_else(|| {
        Error::Internal(format!("stored audit action is invalid: {}", model.action))
    })?;
    let subject = subject_of(&model.subject)?;
    Ok(AuditEntry {
        id: to_revision(model.id),
        subject,
        name: model.flag_name,
        action,
        actor: model.actor,
        reason: model.reason,
        before: model
            .before
            .map(|v| snapshot_from_json(subject, "before", v))
            .transpose()?,
        after: model
            .after
            .map(|v| snapshot_from_json(subject, "after", v))
            .transpose()?,
        revision: to_revision(model.revision),
        created_at: model.created_at,
    })
}

/// The change an audit entry records: its revision and the flag or
/// segment after it.
pub(super) fn change_from_row(
    revision: i64,
    name: String,
    subject: String,
    after: Option<serde_json::Value>,
) -> Result<Committed, Error> {
    let name = FlagName::parse("flag_name", name).map_err(|err| {
        Error::Internal(format!(
            "stored audit flag name is invalid: {}",
            err.message
        ))
    })?;
    let revision = to_revision(revision);
    Ok(match subject_of(&subject)? {
        Subject::Flag => {
            let flag: Option<Flag> = after.map(|v| from_json("after", v)).transpose()?;
            Committed::Flag(FlagChange {
                revision,
                flag_name: name,
                flag: flag.map(Arc::new),
            })
        }
        Subject::Segment => {
            let segment: Option<Segment> = after.map(|v| from_json("after", v)).transpose()?;
            Committed::Segment(SegmentChange {
                revision,
                name,
                segment: segment.map(Arc::new),
            })
        }
    })
}

pub(super) fn segment_to_model(segment: &Segment) -> Result<segment::Model, Error> {
    let spec = segment.spec();
    Ok(segment::Model {
        name: segment.name.to_string(),
        description: spec.description.clone(),
        included: to_json(&spec.included)?,
        excluded: to_json(&spec.excluded)?,
        rules: to_json(&spec.rules)?,
        revision: from_revision(segment.revision)?,
        created_at: segment.created_at,
        updated_at: segment.updated_at,
        created_by: segment.created_by.clone(),
        updated_by: segment.updated_by.clone(),
    })
}

pub(super) fn segment_from_model(model: segment::Model) -> Result<Segment, Error> {
    let name = FlagName::parse("name", model.name).map_err(|err| {
        Error::Internal(format!("stored segment name is invalid: {}", err.message))
    })?;
    let spec = SegmentSpec {
        description: model.description,
        included: from_json("included", model.included)?,
        excluded: from_json("excluded", model.excluded)?,
        rules: from_json("rules", model.rules)?,
    };
    let mut segment = Segment::new(name, spec, to_revision(model.revision), model.created_at);
    segment.updated_at = model.updated_at;
    segment.created_by = model.created_by;
    segment.updated_by = model.updated_by;
    Ok(segment)
}

pub(super) fn group_from_model(model: group::Model) -> Group {
    Group {
        name: model.name,
        description: model.description,
        created_at: model.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn classifies_codes_of_both_backends() {
        for code in ["08006", "57P01", "55P03", "5", "6", "517", "262"] {
            assert!(unavailable_code(code), "{code}");
        }
        // 42501 (insufficient privilege) & 0xff would be 5, SQLite's BUSY.
        for code in ["42501", "23505", "40001", "1", "19"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }
}
