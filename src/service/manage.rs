//! Flag and group management: validate, write through the store (flag and
//! audit in one transaction), then update this replica's cache.

use std::collections::HashSet;
use std::sync::Arc;

use super::{CacheSync, to_completion};
use crate::auth::Principal;
use crate::bus::{BusMessage, ChangeBus, ChangeKind};
use chrono::{DateTime, Utc};

use crate::domain::{
    AuditEntry, Change, Committed, Flag, FlagChange, FlagField, FlagName, FlagSpec, FlagType,
    Group, Snapshot, Subject, limits, validate_name, validate_text,
};
use crate::error::{Error, Result};
use crate::store::FlagStore;

/// Longest a caller waits for a store transaction: the write queue (10 s),
/// a connection (5 s) and the statements (10 s on PostgreSQL), with margin.
pub const TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Page size when the caller asks for none.
const DEFAULT_PAGE: u32 = 100;
/// Largest page served.
const MAX_PAGE: u32 = 1000;

/// Pagination: `limit` 0 means the default, and it is capped at the maximum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    pub skip: u32,
    pub limit: u32,
}

impl Page {
    fn limit(self) -> u32 {
        match self.limit {
            0 => DEFAULT_PAGE,
            limit => limit.min(MAX_PAGE),
        }
    }
}

/// ListFlags filters; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct FlagFilter {
    /// Flags that may be on in this environment.
    pub environment: Option<String>,
    pub tag: Option<String>,
    pub enabled: Option<bool>,
    pub group: Option<String>,
    /// Text the name, the description or a tag contains (ASCII
    /// case-insensitive); empty matches everything.
    pub query: String,
    pub flag_type: Option<FlagType>,
    /// Only flags whose `expires_at` is at or before this time.
    pub expired_at: Option<DateTime<Utc>>,
    /// Flags to leave out: those evaluated since ListFlags'
    /// `not_evaluated_since` (see `service::Metrics::evaluated_since`).
    pub evaluated: Option<HashSet<String>>,
}

impl FlagFilter {
    fn matches(&self, flag: &Flag) -> bool {
        let spec = flag.spec();
        self.environment
            .as_ref()
            .is_none_or(|env| spec.environments.is_empty() || spec.environments.contains(env))
            && self.tag.as_ref().is_none_or(|tag| spec.tags.contains(tag))
            && self.enabled.is_none_or(|enabled| spec.enabled == enabled)
            && self
                .evaluated
                .as_ref()
                .is_none_or(|evaluated| !evaluated.contains(flag.name.as_str()))
            && self
                .group
                .as_ref()
                .is_none_or(|group| spec.group.as_ref() == Some(group))
            && self
                .flag_type
                .is_none_or(|flag_type| spec.flag_type == flag_type)
            && self
                .expired_at
                .is_none_or(|now| spec.expires_at.is_some_and(|expires| expires <= now))
            && (self.query.is_empty()
                || contains_folded(flag.name.as_str(), &self.query)
                || contains_folded(&spec.description, &self.query)
                || spec
                    .tags
                    .iter()
                    .any(|tag| contains_folded(tag, &self.query)))
    }
}

/// Whether `text` contains `needle`, ASCII letters compared case-blind.
fn contains_folded(text: &str, needle: &str) -> bool {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || text
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// One page of ListFlags.
pub struct FlagListing {
    pub flags: Vec<Arc<Flag>>,
    /// Flags matching the filter, on every page.
    pub total: u64,
    /// The revision the listing is exact at.
    pub revision: u64,
}

#[derive(Clone)]
pub struct FlagManager {
    store: Arc<FlagStore>,
    sync: Arc<CacheSync>,
    bus: Arc<ChangeBus>,
}

impl FlagManager {
    pub fn new(store: Arc<FlagStore>, sync: Arc<CacheSync>, bus: Arc<ChangeBus>) -> Self {
        Self { store, sync, bus }
    }

    async fn propagate(&self, change: FlagChange) {
        propagate(&self.sync, &self.bus, change.into()).await;
    }

    /// Creates a flag. `caller` (when authentication is on) must be allowed
    /// every environment the flag touches.
    pub async fn create_flag(
        &self,
        name: String,
        spec: FlagSpec,
        change: Change,
        caller: Option<&Principal>,
    ) -> Result<Flag> {
        let name = FlagName::parse("flag.name", name)?;
        spec.validate("flag")?;
        validate_change(&change, false)?;
        check_scope(caller, &spec)?;
        self.check_references(name.as_str(), &spec)?;
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let flag = this.store.create_flag(name, spec, &change).await?;
            tracing::info!(flag = %flag.name, revision = flag.revision, actor = %change.actor, "flag created");
            let flag = Arc::new(flag);
            this.propagate(FlagChange::upserted(flag.clone())).await;
            Ok(Arc::unwrap_or_clone(flag))
        })
        .await
    }

    /// References a write may not break: a flag others require may not
    /// require flags itself (prerequisites are one level deep). That
    /// prerequisites and segments exist is checked by the store, in the
    /// write's transaction.
    fn check_references(&self, name: &str, spec: &FlagSpec) -> Result<()> {
        if !spec.prerequisites.is_empty()
            && let Some(dependent) = self.dependents(name).first()
        {
            return Err(Error::invalid(
                "flag.prerequisites",
                format!(
                    "'{dependent}' requires this flag, and prerequisites are one level deep: \
                     a required flag cannot have prerequisites"
                ),
            ));
        }
        Ok(())
    }

    /// The flags that name `name` as a prerequisite (from this replica's cache).
    fn dependents(&self, name: &str) -> Vec<String> {
        let mut dependents = Vec::new();
        self.sync.cache().scan(|flag| {
            if flag
                .spec()
                .prerequisites
                .iter()
                .any(|prerequisite| prerequisite.flag == name)
            {
                dependents.push(flag.name.to_string());
            }
            true
        });
        dependents
    }

    pub async fn get_flag(&self, name: &str) -> Result<Flag> {
        validate_name("name", name)?;
        self.store
            .get_flag(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("flag '{name}' not found")))
    }

    /// One page of the flags matching `filter`, ordered by name, and the
    /// number of matches. Served from the hot cache, which holds exactly
    /// the store's state at the revision this replica has applied (its own
    /// writes included; other replicas' within the propagation delay): no
    /// flag is loaded or parsed. The page stops before the flag that would
    /// take it past [`limits::MESSAGE_BYTES`] (but holds at least one).
    pub async fn list_flags(&self, filter: &FlagFilter, page: Page) -> FlagListing {
        let (skip, limit) = (page.skip as usize, page.limit() as usize);
        // Held while scanning, so the page is exact at `revision`.
        let revision = self.sync.applied_guard().await;
        let mut total = 0usize;
        let mut bytes = 0;
        let mut full = false;
        let mut flags = Vec::new();
        self.sync.cache().scan(|flag| {
            if !filter.matches(flag) {
                return true;
            }
            total += 1;
            if total > skip && !full {
                bytes += flag.wire_size();
                if flags.len() < limit && (flags.is_empty() || bytes <= limits::MESSAGE_BYTES) {
                    flags.push(flag.clone());
                } else {
                    full = true;
                }
            }
            true
        });
        FlagListing {
            flags,
            total: total as u64,
            revision: *revision,
        }
    }

    /// Copies `fields` from `values` onto the stored flag.
    pub async fn update_flag(
        &self,
        name: String,
        values: FlagSpec,
        fields: Vec<FlagField>,
        change: Change,
        expected_revision: Option<u64>,
        caller: Option<&Principal>,
    ) -> Result<Flag> {
        validate_name("flag.name", &name)?;
        let caller = caller.cloned();
        if fields.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "must name at least one field (or \"*\")",
            ));
        }
        validate_change(&change, true)?;
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let flag = this
                .store
                .update_flag(&name, expected_revision, &change, |current| {
                    check_scope(caller.as_ref(), current.spec())?;
                    let mut spec = current.spec().clone();
                    spec.merge(values, &fields);
                    spec.validate("flag")?;
                    check_scope(caller.as_ref(), &spec)?;
                    this.check_references(&name, &spec)?;
                    check_buckets_kept(current, &spec)?;
                    Ok(spec)
                })
                .await?;
            tracing::info!(flag = %flag.name, revision = flag.revision, actor = %change.actor, "flag updated");
            let flag = Arc::new(flag);
            this.propagate(FlagChange::upserted(flag.clone())).await;
            Ok(Arc::unwrap_or_clone(flag))
        })
        .await
    }

    /// Deletes a flag; returns the deletion's revision.
    pub async fn delete_flag(
        &self,
        name: &str,
        change: Change,
        expected_revision: Option<u64>,
        caller: Option<&Principal>,
    ) -> Result<u64> {
        let flag_name = FlagName::parse("name", name)?;
        validate_change(&change, true)?;
        let caller = caller.cloned();
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let revision = this
                .store
                .delete_flag(flag_name.as_str(), expected_revision, &change, |current| {
                    check_scope(caller.as_ref(), current.spec())?;
                    match this.dependents(current.name.as_str()).first() {
                        Some(dependent) => Err(Error::FailedPrecondition(format!(
                            "flag '{}' is a prerequisite of '{dependent}'; remove it there first",
                            current.name
                        ))),
                        None => Ok(()),
                    }
                })
                .await?;
            tracing::info!(flag = %flag_name, revision, actor = %change.actor, "flag deleted");
            this.propagate(FlagChange::deleted(flag_name, revision))
                .await;
            Ok(revision)
        })
        .await
    }

    /// Puts a flag back as it was after its change at `revision`, as a new
    /// audited change: every field replaced, or the flag created again when
    /// it has been deleted since.
    pub async fn restore_flag(
        &self,
        name: String,
        revision: u64,
        change: Change,
        expected_revision: Option<u64>,
        caller: Option<&Principal>,
    ) -> Result<Flag> {
        validate_name("name", &name)?;
        validate_change(&change, true)?;
        let entry = self
            .store
            .flag_change_at(&name, revision)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "flag '{name}' has no change at revision {revision}"
                ))
            })?;
        let Some(Snapshot::Flag(then)) = entry.after else {
            return Err(Error::FailedPrecondition(format!(
                "revision {revision} deleted flag '{name}': restore a revision before it"
            )));
        };
        let spec = then.spec().clone();
        match self.store.get_flag(&name).await? {
            Some(now) if now.flag_type() != then.flag_type() => {
                Err(Error::FailedPrecondition(format!(
                    "flag '{name}' is a {} flag now and was a {} flag at revision {revision}: \
                     a flag's type is fixed",
                    now.flag_type().name(),
                    then.flag_type().name()
                )))
            }
            Some(_) => {
                self.update_flag(
                    name,
                    spec,
                    FlagField::ALL.to_vec(),
                    change,
                    expected_revision,
                    caller,
                )
                .await
            }
            // Revision 0: no flag.
            None if let Some(expected) = expected_revision => Err(Error::Conflict {
                expected,
                actual: 0,
            }),
            None => self.create_flag(name, spec, change, caller).await,
        }
    }

    /// One page of a flag's or a segment's audit trail, and its total.
    pub async fn audit_trail(
        &self,
        subject: Subject,
        name: &str,
        page: Page,
    ) -> Result<(Vec<AuditEntry>, u64)> {
        let field = match subject {
            Subject::Flag => "flag_name",
            Subject::Segment => "segment_name",
        };
        validate_name(field, name)?;
        // A read transaction (page and total from one snapshot): like the
        // writes, it must not be dropped halfway by a cancelled call.
        let store = self.store.clone();
        let name = name.to_string();
        to_completion(TRANSACTION_TIMEOUT, async move {
            store
                .audit_trail(
                    subject,
                    &name,
                    u64::from(page.skip),
                    u64::from(page.limit()),
                )
                .await
        })
        .await
    }

    pub async fn create_group(&self, name: String, description: String) -> Result<Group> {
        validate_name("group.name", &name)?;
        if description.len() > limits::TEXT_BYTES {
            return Err(Error::invalid(
                "group.description",
                format!("must be at most {} bytes", limits::TEXT_BYTES),
            ));
        }
        validate_text("group.description", &description)?;
        let store = self.store.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            store.create_group(name, description).await
        })
        .await
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        self.store.list_groups().await
    }

    pub async fn delete_group(&self, name: &str) -> Result<()> {
        validate_name("name", name)?;
        let store = self.store.clone();
        let name = name.to_string();
        to_completion(TRANSACTION_TIMEOUT, async move {
            store.delete_group(&name).await
        })
        .await
    }
}

/// After a commit: this replica's cache first (read-your-writes), then
/// the other replicas.
pub(super) async fn propagate(sync: &CacheSync, bus: &ChangeBus, change: Committed) {
    let mut message = BusMessage {
        revision: change.revision(),
        ..BusMessage::default()
    };
    let exists = match &change {
        Committed::Flag(change) => {
            message.flag = Some(change.flag_name.to_string());
            change.flag.is_some()
        }
        Committed::Segment(change) => {
            message.segment = Some(change.name.to_string());
            change.segment.is_some()
        }
    };
    message.kind = Some(if exists {
        ChangeKind::Upsert
    } else {
        ChangeKind::Delete
    });
    sync.committed(change).await;
    bus.publish(message);
}

/// Once a flag may have served traffic (it is enabled), its splits keep
/// their bucketing: a new salt or key reshuffles every user. Splits are
/// matched by rule id (rules without one are new rules) and the
/// fallthrough by position.
fn check_buckets_kept(current: &Flag, spec: &FlagSpec) -> Result<()> {
    use crate::domain::{Serve, Split};
    if !current.spec().enabled {
        return Ok(());
    }
    let bucketing = |split: &Split| (split.salt.clone(), split.bucket_by.clone(), split.bucketing);
    let split_of = |serve: Option<&Serve>| match serve {
        Some(Serve::Split(split)) => Some(bucketing(split)),
        _ => None,
    };
    let refuse = |field: String| {
        Err(Error::FailedPrecondition(format!(
            "{field}: the split's salt, bucket_by and bucketing cannot change while the flag is enabled \
             (every user would be reshuffled); disable the flag first, or add a new rule"
        )))
    };
    if let (Some(old), Some(new)) = (
        split_of(current.spec().fallthrough.as_ref()),
        split_of(spec.fallthrough.as_ref()),
    ) && old != new
    {
        return refuse("flag.fallthrough.split".into());
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        if rule.id.is_empty() {
            continue;
        }
        let old = current
            .spec()
            .rules
            .iter()
            .find(|old| old.id == rule.id)
            .and_then(|old| split_of(Some(&old.serve)));
        if let (Some(old), Some(new)) = (old, split_of(Some(&rule.serve)))
            && old != new
        {
            return refuse(format!("flag.rules[{i}].serve.split"));
        }
    }
    Ok(())
}

/// A caller scoped to environments may only hold flags that touch nothing
/// else (see [`Principal::may_touch`]).
fn check_scope(caller: Option<&Principal>, spec: &FlagSpec) -> Result<()> {
    match caller {
        Some(caller) if !caller.may_touch(spec) => Err(Error::PermissionDenied(
            "the token is scoped to environments this flag reaches beyond \
             (a flag with no environments listed reaches all of them)"
                .into(),
        )),
        _ => Ok(()),
    }
}

pub(super) fn validate_change(change: &Change, reason_required: bool) -> Result<()> {
    if reason_required && change.reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required"));
    }
    if change.reason.len() > limits::TEXT_BYTES {
        return Err(Error::invalid(
            "reason",
            format!("must be at most {} bytes", limits::TEXT_BYTES),
        ));
    }
    validate_text("reason", &change.reason)?;
    if change.actor.len() > limits::ID_BYTES {
        return Err(Error::invalid(
            "x-actor",
            format!("must be at most {} bytes", limits::ID_BYTES),
        ));
    }
    Ok(())
}
