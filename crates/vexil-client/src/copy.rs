//! The local copy of the flags. Readers never wait for the task that
//! applies changes, never see a flag missing while a snapshot replaces the
//! copy, and allocate nothing.
//!
//! The map from names to flags is immutable and swapped whole (a snapshot,
//! or a batch that creates flags); each entry is a slot that an update or
//! a deletion swaps on its own. So a change to one of 100,000 flags costs
//! one slot swap, not a copy of the map. Within a batch, a reader may see
//! some changes applied before others: each flag is always a whole state
//! the server sent (as on the server, whose cache also changes per flag).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use vexil_engine::{Flag, Segment};

/// Flags by name, as a snapshot or a bootstrap file gives them.
pub type FlagMap = HashMap<Arc<str>, Arc<Flag>, ahash::RandomState>;
pub type SegmentMap = HashMap<Arc<str>, Arc<Segment>, ahash::RandomState>;

/// A flag's current state; empty once deleted (until the map is next
/// rebuilt, which drops empty slots).
type Slot = ArcSwapOption<Flag>;
type SlotMap = HashMap<Arc<str>, Slot, ahash::RandomState>;

/// The copy as the engine's catalog: prerequisites and segments are read
/// from it (only when a flag has them).
impl vexil_engine::Catalog for LocalCopy {
    fn flag(&self, name: &str) -> Option<Arc<Flag>> {
        self.get(name)
    }

    fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.segments.load().get(name).cloned()
    }
}

#[derive(Default)]
pub struct LocalCopy {
    flags: ArcSwap<SlotMap>,
    /// Segments change rarely and are few: a whole new map per change.
    segments: ArcSwap<SegmentMap>,
    /// The revision the copy is current to: written after the state it
    /// describes, so it never claims more than the copy holds.
    revision: AtomicU64,
}

impl LocalCopy {
    /// Runs `read` on the named flag (or `None`), without allocating or
    /// touching a reference count.
    pub fn with_flag<R>(&self, name: &str, read: impl FnOnce(Option<&Flag>) -> R) -> R {
        let flags = self.flags.load();
        let state = flags.get(name).map(|slot| slot.load());
        read(state.as_ref().and_then(|state| state.as_deref()))
    }

    /// The named flag, if the copy holds it.
    pub fn get(&self, name: &str) -> Option<Arc<Flag>> {
        self.flags.load().get(name)?.load_full()
    }

    /// Every flag the copy holds, in no order.
    pub fn all(&self) -> Vec<Arc<Flag>> {
        self.flags
            .load()
            .values()
            .filter_map(|slot| slot.load_full())
            .collect()
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
        let slots = flags
            .into_iter()
            .map(|(name, flag)| (name, Slot::from(Some(flag))))
            .collect();
        self.segments.store(Arc::new(segments));
        self.flags.store(Arc::new(slots));
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
    /// deletion). Flags the map holds a slot for change in place; new ones
    /// are added with one copy of the map per batch, which also drops the
    /// slots of deleted flags.
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = (Arc<str>, Option<Arc<Flag>>)>,
        revision: u64,
    ) {
        let slots = self.flags.load_full();
        // New names, in order: a later change to one replaces its state.
        let mut created: HashMap<Arc<str>, Option<Arc<Flag>>, ahash::RandomState> =
            HashMap::default();
        for (name, flag) in changes {
            match slots.get(&name) {
                Some(slot) => slot.store(flag),
                None => {
                    created.insert(name, flag);
                }
            }
        }
        created.retain(|_, flag| flag.is_some());
        if !created.is_empty() {
            // Readers of the old map meanwhile see its states, as they
            // were a moment ago; this task writes only to the new one.
            let mut rebuilt: SlotMap = slots
                .iter()
                .filter_map(|(name, slot)| {
                    Some((name.clone(), Slot::from(Some(slot.load_full()?))))
                })
                .collect();
            for (name, flag) in created {
                rebuilt.insert(name, Slot::from(flag));
            }
            self.flags.store(Arc::new(rebuilt));
        }
        self.revision.store(revision, Ordering::Release);
    }

    /// Moves the revision on when nothing changed (a heartbeat).
    pub fn advance(&self, revision: u64) {
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexil_engine::{FlagName, FlagSpec, Stamp};

    fn flag(name: &str, revision: u64) -> Arc<Flag> {
        let stamp = Stamp {
            revision,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            created_by: String::new(),
            updated_by: String::new(),
        };
        let name = FlagName::parse("name", name.to_string()).expect("a name");
        Arc::new(Flag::new(name, FlagSpec::default(), stamp))
    }

    fn change(name: &str, revision: Option<u64>) -> (Arc<str>, Option<Arc<Flag>>) {
        (
            Arc::from(name),
            revision.map(|revision| flag(name, revision)),
        )
    }

    fn revisions(copy: &LocalCopy) -> Vec<(String, u64)> {
        let mut all: Vec<_> = copy
            .all()
            .iter()
            .map(|flag| (flag.name.to_string(), flag.revision))
            .collect();
        all.sort();
        all
    }

    /// Updates, deletions, creations, and a name created and deleted (or
    /// deleted and created again) within one batch, end as the last change
    /// of each name says.
    #[test]
    fn batches_end_as_their_last_change_says() {
        let copy = LocalCopy::default();
        let flags: FlagMap = ["a", "b", "c"]
            .into_iter()
            .map(|name| (Arc::from(name), flag(name, 1)))
            .collect();
        copy.replace(flags, SegmentMap::default(), 1);
        let held = copy.flags.load_full();
        copy.apply(
            [
                change("a", Some(2)),
                change("b", None),
                change("d", Some(4)),
                change("e", Some(5)),
                change("e", None),
                change("c", None),
                change("c", Some(8)),
                change("d", Some(9)),
            ],
            9,
        );
        assert_eq!(
            revisions(&copy),
            [("a".into(), 2), ("c".into(), 8), ("d".into(), 9)]
        );
        assert_eq!(copy.revision(), 9);
        assert!(copy.get("b").is_none() && copy.get("e").is_none());
        assert_eq!(
            copy.with_flag("d", |flag| flag.map(|f| f.revision)),
            Some(9)
        );
        // The map was rebuilt for "d", without "b"'s empty slot.
        let rebuilt = copy.flags.load_full();
        assert!(!Arc::ptr_eq(&held, &rebuilt));
        assert!(!rebuilt.contains_key("b"));
        // Updates alone keep the map.
        copy.apply([change("a", Some(10)), change("d", None)], 10);
        assert!(Arc::ptr_eq(&rebuilt, &copy.flags.load_full()));
        assert_eq!(revisions(&copy), [("a".into(), 10), ("c".into(), 8)]);
    }
}
