//! The replica's hot cache: every flag, in memory, so evaluation never
//! touches the store. Holds every flag the store has, so a miss means "no
//! such flag" and costs no query.
//!
//! Each entry carries the revision it reflects; a change applies only when it
//! is newer, and deletions stay as tombstones until a full reload proves them
//! settled, so a late, older write cannot resurrect a deleted flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::domain::{Flag, FlagName};

struct Entry {
    revision: u64,
    /// `None` is a tombstone.
    flag: Option<Arc<Flag>>,
}

#[derive(Default)]
pub struct FlagCache {
    entries: DashMap<FlagName, Entry, ahash::RandomState>,
    /// Highest revision applied; every change up to it is reflected.
    revision: AtomicU64,
}

impl FlagCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the named flag (or `None`) under the shard's read lock.
    /// Keep `f` short and synchronous: it blocks writers of that shard.
    pub fn with_flag<R>(&self, name: &str, f: impl FnOnce(Option<&Flag>) -> R) -> R {
        let entry = self.entries.get(name);
        f(entry.as_ref().and_then(|entry| entry.flag.as_deref()))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Flag>> {
        self.entries.get(name).and_then(|entry| entry.flag.clone())
    }

    /// Every live flag, ordered by name.
    pub fn all(&self) -> Vec<Arc<Flag>> {
        let mut flags: Vec<Arc<Flag>> = self
            .entries
            .iter()
            .filter_map(|entry| entry.flag.clone())
            .collect();
        flags.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        flags
    }

    /// Highest revision this cache has applied.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Stores a created or updated flag unless the cache already holds a newer state.
    pub fn upsert(&self, flag: Arc<Flag>) {
        let revision = flag.revision;
        self.apply(flag.name.clone(), revision, Some(flag));
    }

    /// Records a deletion at `revision` unless the cache holds a newer state.
    pub fn remove(&self, name: FlagName, revision: u64) {
        self.apply(name, revision, None);
    }

    fn apply(&self, name: FlagName, revision: u64, flag: Option<Arc<Flag>>) {
        let mut entry = self.entries.entry(name).or_insert(Entry {
            revision: 0,
            flag: None,
        });
        if revision > entry.revision {
            *entry = Entry { revision, flag };
        }
        drop(entry);
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }

    /// Reconciles the cache with a consistent snapshot of the store taken at
    /// `revision`: newer snapshot states replace older ones, and entries the
    /// snapshot lacks are dropped unless they are newer than the snapshot.
    pub fn replace_all(&self, flags: Vec<Flag>, revision: u64) {
        let mut live: ahash::AHashSet<FlagName> = ahash::AHashSet::with_capacity(flags.len());
        for flag in flags {
            live.insert(flag.name.clone());
            self.upsert(Arc::new(flag));
        }
        self.entries
            .retain(|name, entry| live.contains(name) || entry.revision > revision);
        self.revision.fetch_max(revision, Ordering::AcqRel);
    }

    /// Number of live flags.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.flag.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::FlagSpec;

    fn flag(name: &str, revision: u64, enabled: bool) -> Flag {
        Flag {
            name: FlagName::parse("name", name).unwrap(),
            spec: FlagSpec {
                enabled,
                ..FlagSpec::default()
            },
            revision,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            created_by: String::new(),
            updated_by: String::new(),
        }
    }

    fn name(name: &str) -> FlagName {
        FlagName::parse("name", name).unwrap()
    }

    #[test]
    fn older_updates_do_not_overwrite_newer() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("a", 5, true)));
        cache.upsert(Arc::new(flag("a", 3, false)));
        assert!(cache.get("a").unwrap().spec.enabled);
        assert_eq!(cache.revision(), 5);
    }

    #[test]
    fn tombstones_block_late_resurrection() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("a", 1, true)));
        cache.remove(name("a"), 3);
        cache.upsert(Arc::new(flag("a", 2, true)));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn replace_all_drops_deleted_but_keeps_newer_writes() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("gone", 1, true)));
        cache.upsert(Arc::new(flag("newer", 9, true)));
        cache.replace_all(vec![flag("kept", 4, true)], 5);
        let names: Vec<String> = cache.all().iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names, vec!["kept", "newer"]);
        assert_eq!(cache.revision(), 9);
    }
}
