//! The local copy of the flags: an immutable map swapped atomically, so
//! readers never wait for the task that applies changes, never see a flag
//! missing while a snapshot replaces the copy, and allocate nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use vexil_engine::{Flag, Segment};

pub type FlagMap = HashMap<Arc<str>, Arc<Flag>, ahash::RandomState>;
pub type SegmentMap = HashMap<Arc<str>, Arc<Segment>, ahash::RandomState>;

/// The copy as the engine's catalog: prerequisites and segments are read
/// from it.
pub struct CopyCatalog<'a> {
    pub flags: &'a FlagMap,
    pub segments: &'a SegmentMap,
}

impl vexil_engine::Catalog for CopyCatalog<'_> {
    fn flag(&self, name: &str) -> Option<Arc<Flag>> {
        self.flags.get(name).cloned()
    }

    fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.segments.get(name).cloned()
    }
}

#[derive(Default)]
pub struct LocalCopy {
    flags: ArcSwap<FlagMap>,
    /// Segments change rarely and are few: a whole new map per change.
    segments: ArcSwap<SegmentMap>,
    /// The revision the copy is current to: written after the map it
    /// describes, so it never claims more than the map holds.
    revision: AtomicU64,
}

impl LocalCopy {
    pub fn flags(&self) -> arc_swap::Guard<Arc<FlagMap>> {
        self.flags.load()
    }

    pub fn all(&self) -> Arc<FlagMap> {
        self.flags.load_full()
    }

    pub fn segments(&self) -> arc_swap::Guard<Arc<SegmentMap>> {
        self.segments.load()
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Replaces the whole copy (segments first, so a flag never meets a
    /// segment older than the copy it came with).
    pub fn replace(&self, flags: FlagMap, segments: SegmentMap, revision: u64) {
        self.segments.store(Arc::new(segments));
        self.flags.store(Arc::new(flags));
        self.revision.store(revision, Ordering::Release);
    }

    /// Applies one segment change (`None`: deleted) at `revision`.
    pub fn apply_segment(&self, name: Arc<str>, segment: Option<Arc<Segment>>, revision: u64) {
        let mut segments = SegmentMap::clone(&self.segments.load());
        match segment {
            Some(segment) => segments.insert(name, segment),
            None => segments.remove(&name),
        };
        self.segments.store(Arc::new(segments));
        self.revision.store(revision, Ordering::Release);
    }

    /// Applies changes in order (a `Some` flag is an upsert, `None` a
    /// deletion) on a copy of the map, then swaps it in: one copy of the
    /// map per batch, not per change.
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = (Arc<str>, Option<Arc<Flag>>)>,
        revision: u64,
    ) {
        let mut flags = FlagMap::clone(&self.flags.load());
        for (name, flag) in changes {
            match flag {
                Some(flag) => flags.insert(name, flag),
                None => flags.remove(&name),
            };
        }
        self.flags.store(Arc::new(flags));
        self.revision.store(revision, Ordering::Release);
    }

    /// Moves the revision on when nothing changed (a heartbeat).
    pub fn advance(&self, revision: u64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }
}
