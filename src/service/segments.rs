//! Segment management: validate, write through the store (segment and
//! audit in one transaction, references checked there), then propagate
//! like a flag change.

use std::sync::Arc;

use super::manage::{TRANSACTION_TIMEOUT, propagate, validate_change};
use super::{CacheSync, to_completion};
use crate::auth::Principal;
use crate::bus::ChangeBus;
use crate::domain::{Change, FlagName, Segment, SegmentChange, SegmentSpec, validate_name};
use crate::error::{Error, Result};
use crate::store::FlagStore;

#[derive(Clone)]
pub struct SegmentManager {
    store: Arc<FlagStore>,
    sync: Arc<CacheSync>,
    bus: Arc<ChangeBus>,
}

impl SegmentManager {
    pub fn new(store: Arc<FlagStore>, sync: Arc<CacheSync>, bus: Arc<ChangeBus>) -> Self {
        Self { store, sync, bus }
    }

    pub async fn create_segment(
        &self,
        name: String,
        spec: SegmentSpec,
        change: Change,
        caller: Option<&Principal>,
    ) -> Result<Segment> {
        check_scope(caller)?;
        let name = FlagName::parse("segment.name", name)?;
        spec.validate("segment")?;
        validate_change(&change, false)?;
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let segment = Arc::new(this.store.create_segment(name, spec, &change).await?);
            tracing::info!(segment = %segment.name, revision = segment.revision, actor = %change.actor, "segment created");
            this.propagate_upsert(&segment).await;
            Ok(Arc::unwrap_or_clone(segment))
        })
        .await
    }

    pub async fn get_segment(&self, name: &str) -> Result<Segment> {
        validate_name("name", name)?;
        self.store
            .get_segment(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("segment '{name}' not found")))
    }

    /// Every segment, from this replica's cache (exact at its revision).
    pub fn list_segments(&self) -> Vec<Arc<Segment>> {
        self.sync.cache().segments()
    }

    /// Replaces the segment's spec.
    pub async fn update_segment(
        &self,
        name: String,
        spec: SegmentSpec,
        change: Change,
        expected_revision: Option<u64>,
        caller: Option<&Principal>,
    ) -> Result<Segment> {
        check_scope(caller)?;
        validate_name("segment.name", &name)?;
        spec.validate("segment")?;
        validate_change(&change, true)?;
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let segment = Arc::new(
                this.store
                    .update_segment(&name, spec, expected_revision, &change)
                    .await?,
            );
            tracing::info!(segment = %segment.name, revision = segment.revision, actor = %change.actor, "segment updated");
            this.propagate_upsert(&segment).await;
            Ok(Arc::unwrap_or_clone(segment))
        })
        .await
    }

    /// Deletes a segment nothing refers to; returns the deletion's revision.
    pub async fn delete_segment(
        &self,
        name: &str,
        change: Change,
        expected_revision: Option<u64>,
        caller: Option<&Principal>,
    ) -> Result<u64> {
        check_scope(caller)?;
        let name = FlagName::parse("name", name)?;
        validate_change(&change, true)?;
        let this = self.clone();
        to_completion(TRANSACTION_TIMEOUT, async move {
            let revision = this
                .store
                .delete_segment(name.as_str(), expected_revision, &change)
                .await?;
            tracing::info!(segment = %name, revision, actor = %change.actor, "segment deleted");
            let change = SegmentChange {
                revision,
                name,
                segment: None,
            };
            propagate(&this.sync, &this.bus, change.into()).await;
            Ok(revision)
        })
        .await
    }

    async fn propagate_upsert(&self, segment: &Arc<Segment>) {
        let change = SegmentChange {
            revision: segment.revision,
            name: segment.name.clone(),
            segment: Some(segment.clone()),
        };
        propagate(&self.sync, &self.bus, change.into()).await;
    }
}

/// A segment reaches every environment: a caller scoped to some may not
/// change one.
fn check_scope(caller: Option<&Principal>) -> Result<()> {
    match caller {
        Some(caller) if caller.environments.is_some() => Err(Error::PermissionDenied(
            "the token is scoped to environments, and a segment reaches all of them".into(),
        )),
        _ => Ok(()),
    }
}
