//! Segment writes and reads. A segment change takes the next global
//! revision and writes its audit row in the same transaction, exactly like
//! a flag change, so the change log stays one gapless sequence. References
//! (flags' and segments' `in_segment` clauses) are checked inside the
//! write's transaction: writes are serialized by the revision row, so no
//! concurrent change can slip between the check and the commit.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
};

use super::convert::{segment_from_model, segment_to_model};
use super::{Audited, DbResultExt, FlagStore, Write, bounded, check_revision, now};
use crate::domain::{
    AuditAction, Change, ClauseValue, FlagName, FlagSpec, Operator, Segment, SegmentSpec, echo,
    limits,
};
use crate::error::{Error, Result};
use crate::store::entities::{flag, segment};

impl FlagStore {
    pub async fn get_segment(&self, name: &str) -> Result<Option<Segment>> {
        bounded(async {
            segment::Entity::find_by_id(name)
                .one(&self.db)
                .await
                .db()?
                .map(segment_from_model)
                .transpose()
        })
        .await
    }

    #[tracing::instrument(name = "store.create_segment", skip_all, fields(segment = %name, revision = tracing::field::Empty))]
    pub async fn create_segment(
        &self,
        name: FlagName,
        spec: SegmentSpec,
        change: &Change,
    ) -> Result<Segment> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        if find_segment(&write.txn, name.as_str()).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "segment '{name}' already exists"
            )));
        }
        check_segment_graph(&write.txn, name.as_str(), &spec).await?;
        let now = now();
        let mut segment = Segment::new(name, spec, write.revision, now);
        segment.created_by.clone_from(&change.actor);
        segment.updated_by.clone_from(&change.actor);
        segment::Entity::insert(segment_to_model(&segment)?.into_active_model().reset_all())
            .exec_without_returning(&write.txn)
            .await
            .db()?;
        Audited::segment(segment.name.as_str())
            .record(&write, AuditAction::Create, change, None, Some(&segment))
            .await?;
        write.txn.commit().await.db()?;
        Ok(segment)
    }

    /// Replaces the segment's spec, if it exists and is at
    /// `expected_revision` (when given).
    #[tracing::instrument(name = "store.update_segment", skip_all, fields(segment = name, revision = tracing::field::Empty))]
    pub async fn update_segment(
        &self,
        name: &str,
        spec: SegmentSpec,
        expected_revision: Option<u64>,
        change: &Change,
    ) -> Result<Segment> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        let current = find_segment(&write.txn, name)
            .await?
            .ok_or_else(|| segment_not_found(name))?;
        check_revision(expected_revision, current.revision)?;
        check_segment_graph(&write.txn, name, &spec).await?;
        let mut updated = Segment::new(current.name.clone(), spec, write.revision, now());
        updated.created_at = current.created_at;
        updated.created_by.clone_from(&current.created_by);
        updated.updated_by.clone_from(&change.actor);
        segment::Entity::update(segment_to_model(&updated)?.into_active_model().reset_all())
            .exec(&write.txn)
            .await
            .db()?;
        Audited::segment(name)
            .record(
                &write,
                AuditAction::Update,
                change,
                Some(&current),
                Some(&updated),
            )
            .await?;
        write.txn.commit().await.db()?;
        Ok(updated)
    }

    /// Deletes the segment unless a flag or another segment refers to it;
    /// returns the deletion's revision.
    #[tracing::instrument(name = "store.delete_segment", skip_all, fields(segment = name, revision = tracing::field::Empty))]
    pub async fn delete_segment(
        &self,
        name: &str,
        expected_revision: Option<u64>,
        change: &Change,
    ) -> Result<u64> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        let current = find_segment(&write.txn, name)
            .await?
            .ok_or_else(|| segment_not_found(name))?;
        check_revision(expected_revision, current.revision)?;
        if let Some(user) = first_user_of(&write, name).await? {
            return Err(Error::FailedPrecondition(format!(
                "segment '{name}' is used by {user}; remove it there first"
            )));
        }
        segment::Entity::delete_by_id(name)
            .exec(&write.txn)
            .await
            .db()?;
        Audited::segment(name)
            .record(
                &write,
                AuditAction::Delete,
                change,
                Some(&current),
                None::<&Segment>,
            )
            .await?;
        let revision = write.revision;
        write.txn.commit().await.db()?;
        Ok(revision)
    }
}

async fn find_segment(txn: &DatabaseTransaction, name: &str) -> Result<Option<Segment>> {
    segment::Entity::find_by_id(name)
        .one(txn)
        .await
        .db()?
        .map(segment_from_model)
        .transpose()
}

fn segment_not_found(name: &str) -> Error {
    Error::NotFound(format!("segment '{name}' not found"))
}

/// Every `in_segment` value of `rules`' clauses, with its field.
fn segment_references<'a>(
    prefix: &'a str,
    rules: impl Iterator<Item = &'a [crate::domain::Clause]> + 'a,
) -> impl Iterator<Item = (String, &'a str)> + 'a {
    rules.enumerate().flat_map(move |(i, clauses)| {
        clauses
            .iter()
            .enumerate()
            .filter(|(_, clause)| clause.op == Operator::InSegment)
            .flat_map(move |(j, clause)| {
                clause.values.iter().filter_map(move |value| match value {
                    ClauseValue::String(name) => Some((
                        format!("{prefix}.rules[{i}].clauses[{j}].values"),
                        name.as_str(),
                    )),
                    _ => None,
                })
            })
    })
}

/// A flag's `in_segment` clauses must name existing segments.
pub(super) async fn ensure_flag_segments_exist(
    txn: &DatabaseTransaction,
    spec: &FlagSpec,
) -> Result<()> {
    let rules = spec.rules.iter().map(|rule| rule.clauses.as_slice());
    let mut known = HashSet::new();
    for (field, name) in segment_references("flag", rules) {
        if known.contains(name) {
            continue;
        }
        if find_segment(txn, name).await?.is_none() {
            return Err(Error::invalid(
                field,
                format!("no segment named {:?}", echo(name)),
            ));
        }
        known.insert(name);
    }
    Ok(())
}

/// With `name` holding `spec`, every segment named must exist, and the
/// references must form no cycle nor a chain longer than
/// [`limits::SEGMENT_DEPTH`] segments (evaluation stops following there).
/// Reads every segment: segment writes are rare and segments few.
async fn check_segment_graph(
    txn: &DatabaseTransaction,
    name: &str,
    spec: &SegmentSpec,
) -> Result<()> {
    let mut graph: HashMap<String, Vec<String>> = segment::Entity::find()
        .all(txn)
        .await
        .db()?
        .into_iter()
        .map(|model| {
            let segment = segment_from_model(model)?;
            let refs = segment
                .spec()
                .referenced_segments()
                .map(str::to_owned)
                .collect();
            Ok((segment.name.to_string(), refs))
        })
        .collect::<Result<_>>()?;
    let rules = spec.rules.iter().map(|rule| rule.clauses.as_slice());
    for (field, referenced) in segment_references("segment", rules) {
        if referenced == name {
            return Err(Error::invalid(field, "a segment cannot contain itself"));
        }
        if !graph.contains_key(referenced) {
            return Err(Error::invalid(
                field,
                format!("no segment named {:?}", echo(referenced)),
            ));
        }
    }
    graph.insert(
        name.to_owned(),
        spec.referenced_segments().map(str::to_owned).collect(),
    );
    let mut depths = HashMap::new();
    let mut path = Vec::new();
    for start in graph.keys() {
        chain_length(&graph, start, &mut depths, &mut path)?;
    }
    Ok(())
}

/// The number of segments in the longest chain of references from `node`,
/// refusing cycles and chains longer than the limit.
fn chain_length<'g>(
    graph: &'g HashMap<String, Vec<String>>,
    node: &'g str,
    depths: &mut HashMap<&'g str, usize>,
    path: &mut Vec<&'g str>,
) -> Result<usize> {
    if let Some(depth) = depths.get(node) {
        return Ok(*depth);
    }
    if path.contains(&node) {
        return Err(Error::invalid(
            "segment.rules",
            format!(
                "segments would refer to each other in a cycle: {} -> {node}",
                path.join(" -> ")
            ),
        ));
    }
    path.push(node);
    let mut longest = 0;
    for next in graph.get(node).into_iter().flatten() {
        if graph.contains_key(next.as_str()) {
            longest = longest.max(chain_length(graph, next, depths, path)?);
        }
    }
    path.pop();
    let depth = longest + 1;
    if depth > usize::from(limits::SEGMENT_DEPTH) {
        return Err(Error::invalid(
            "segment.rules",
            format!(
                "segments would refer to each other more than {} deep (from '{node}')",
                limits::SEGMENT_DEPTH
            ),
        ));
    }
    depths.insert(node, depth);
    Ok(depth)
}

/// A flag or segment whose clauses name the segment `name`, if any.
async fn first_user_of(write: &Write<'_>, name: &str) -> Result<Option<String>> {
    let segments = segment::Entity::find().all(&write.txn).await.db()?;
    for model in segments {
        let segment = segment_from_model(model)?;
        if segment
            .spec()
            .referenced_segments()
            .any(|used| used == name)
        {
            return Ok(Some(format!("segment '{}'", segment.name)));
        }
    }
    // Flags with targeting only; the JSON text is searched before a flag is
    // decoded, so most never are.
    let flags = flag::Entity::find()
        .filter(flag::Column::Targeting.is_not_null())
        .all(&write.txn)
        .await
        .db()?;
    for model in flags {
        let mentions = model
            .targeting
            .as_ref()
            .is_some_and(|targeting| targeting.to_string().contains(name));
        if !mentions {
            continue;
        }
        let flag = super::convert::flag_from_model(model)?;
        if flag.spec().referenced_segments().any(|used| used == name) {
            return Ok(Some(format!("flag '{}'", flag.name)));
        }
    }
    Ok(None)
}
