//! The replica's hot cache: every flag, in memory, so evaluation never
//! touches the store. Holds every flag the store has, so a miss means "no
//! such flag" and costs no query.
//!
//! Each entry carries the revision it reflects, and a change applies only
//! when it is newer. Changes arrive in revision order (see
//! `service::sync`), so a deletion simply removes the entry.
//!
//! Beside the map that evaluation reads, an ordered index by name serves
//! listings and snapshots without sorting. Both change together under the
//! sync's apply lock; the index is updated after the map's shard is
//! released, so a long listing never holds up an evaluation.
//!
//! Each entry also keeps a slot for the flag's evaluation counters,
//! resolved at its first evaluation, so recording one costs no map lookup.
//!
//! Segments live beside the flags, in a map of their own, and are read by
//! name when a clause tests membership (flags are never recompiled when a
//! segment changes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as Slot;

use crate::domain::{Catalog, Flag, FlagName, Segment};
use crate::metrics::FlagStats;

struct Entry {
    revision: u64,
    flag: Arc<Flag>,
    /// Shared with the ordered index, and kept across the flag's updates.
    stats: Arc<StatsSlot>,
}

impl Entry {
    fn new(flag: Arc<Flag>, stats: Arc<StatsSlot>) -> Self {
        Self {
            revision: flag.revision,
            flag,
            stats,
        }
    }
}

/// A slot for a flag's evaluation counters, filled at first use.
pub type StatsSlot = OnceLock<Arc<FlagStats>>;

#[derive(Default)]
pub struct FlagCache {
    entries: DashMap<FlagName, Entry, ahash::RandomState>,
    ordered: RwLock<BTreeMap<FlagName, Listed>>,
    /// The largest `wire_size` of a flag stored since the last full
    /// replacement (not lowered by later changes: an upper bound).
    largest: AtomicUsize,
    segments: DashMap<FlagName, Arc<Segment>, ahash::RandomState>,
}

/// The ordered index's value: the flag and its counters slot.
type Listed = (Arc<Flag>, Arc<StatsSlot>);

impl FlagCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the named flag (or `None`) under the shard's read lock.
    /// Keep `f` short and synchronous: it blocks writers of that shard.
    pub fn with_flag<R>(&self, name: &str, f: impl FnOnce(Option<&Flag>) -> R) -> R {
        let entry = self.entries.get(name);
        f(entry.as_ref().map(|entry| entry.flag.as_ref()))
    }

    /// As [`Self::with_flag`], with the flag's counters slot.
    pub fn with_entry<R>(&self, name: &str, f: impl FnOnce(Option<(&Flag, &StatsSlot)>) -> R) -> R {
        let entry = self.entries.get(name);
        f(entry
            .as_ref()
            .map(|entry| (entry.flag.as_ref(), entry.stats.as_ref())))
    }

    /// The named flag and its counters slot, shared: the shard's lock is
    /// released before the caller evaluates, so prerequisites can be read
    /// from this same map (a shard's lock is not reentrant).
    pub fn entry(&self, name: &str) -> Option<(Arc<Flag>, Arc<StatsSlot>)> {
        self.entries
            .get(name)
            .map(|entry| (entry.flag.clone(), entry.stats.clone()))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Flag>> {
        self.entries.get(name).map(|entry| entry.flag.clone())
    }

    /// Every live flag, ordered by name.
    pub fn all(&self) -> Vec<Arc<Flag>> {
        self.read_ordered()
            .values()
            .map(|(flag, _)| flag.clone())
            .collect()
    }

    /// Runs `visit` over every flag in name order (byte order), under the
    /// index's read lock; it stops when `visit` returns false.
    pub fn scan(&self, mut visit: impl FnMut(&Arc<Flag>) -> bool) {
        for (flag, _) in self.read_ordered().values() {
            if !visit(flag) {
                return;
            }
        }
    }

    /// Runs `visit` over every flag in name order with its counters slot,
    /// under the index's read lock (keep it short and synchronous).
    pub fn scan_entries(&self, mut visit: impl FnMut(&Arc<Flag>, &StatsSlot)) {
        for (flag, stats) in self.read_ordered().values() {
            visit(flag, stats);
        }
    }

    /// Stores a created or updated flag unless the cache already holds a newer state.
    pub fn upsert(&self, flag: Arc<Flag>) {
        let revision = flag.revision;
        let stored = match self.entries.entry(flag.name.clone()) {
            Slot::Occupied(mut slot) if revision > slot.get().revision => {
                // The counters stay with the name across changes.
                let stats = slot.get().stats.clone();
                slot.insert(Entry::new(flag.clone(), stats.clone()));
                Some(stats)
            }
            Slot::Occupied(_) => None,
            Slot::Vacant(slot) => {
                let stats = Arc::new(StatsSlot::new());
                slot.insert(Entry::new(flag.clone(), stats.clone()));
                Some(stats)
            }
        };
        if let Some(stats) = stored {
            self.largest.fetch_max(flag.wire_size(), Ordering::Relaxed);
            self.write_ordered()
                .insert(flag.name.clone(), (flag, stats));
        }
    }

    /// An upper bound of the largest flag's `wire_size`, without a scan.
    pub fn largest_wire_size(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Removes a flag deleted at `revision`, unless the cache holds a newer state.
    pub fn remove(&self, name: &str, revision: u64) {
        let removed = self
            .entries
            .remove_if(name, |_, entry| entry.revision < revision);
        if removed.is_some() {
            self.write_ordered().remove(name);
        }
    }

    fn read_ordered(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<FlagName, Listed>> {
        self.ordered
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_ordered(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<FlagName, Listed>> {
        self.ordered
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the whole content with a consistent snapshot of the store,
    /// which is authoritative: flags it lacks go, the others are replaced.
    /// Flags in both never disappear meanwhile (evaluations keep finding them).
    pub fn replace_all(&self, flags: Vec<Flag>) {
        let mut ordered: BTreeMap<FlagName, Listed> = flags
            .into_iter()
            .map(|flag| (flag.name.clone(), (Arc::new(flag), Arc::default())))
            .collect();
        // Before the entries change: an upsert meanwhile raises it after.
        let largest = ordered
            .values()
            .map(|(flag, _)| flag.wire_size())
            .max()
            .unwrap_or_default();
        self.largest.store(largest, Ordering::Relaxed);
        self.entries.retain(|name, _| ordered.contains_key(name));
        for (flag, stats) in ordered.values_mut() {
            match self.entries.entry(flag.name.clone()) {
                Slot::Occupied(mut slot) => {
                    *stats = slot.get().stats.clone();
                    slot.insert(Entry::new(flag.clone(), stats.clone()));
                }
                Slot::Vacant(slot) => {
                    slot.insert(Entry::new(flag.clone(), stats.clone()));
                }
            }
        }
        *self.write_ordered() = ordered;
    }

    /// Stores a segment, unless the cache holds a newer state.
    pub fn upsert_segment(&self, segment: Arc<Segment>) {
        match self.segments.entry(segment.name.clone()) {
            Slot::Occupied(mut slot) if slot.get().revision < segment.revision => {
                slot.insert(segment);
            }
            Slot::Occupied(_) => {}
            Slot::Vacant(slot) => {
                slot.insert(segment);
            }
        }
    }

    /// Removes a segment deleted at `revision`, unless the cache holds a
    /// newer state.
    pub fn remove_segment(&self, name: &str, revision: u64) {
        self.segments
            .remove_if(name, |_, segment| segment.revision < revision);
    }

    /// Every segment, ordered by name.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        let mut segments: Vec<Arc<Segment>> = self
            .segments
            .iter()
            .map(|entry| entry.value().clone())
            .collect();
        segments.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        segments
    }

    /// Replaces every segment with the store's.
    pub fn replace_segments(&self, segments: Vec<Segment>) {
        let names: std::collections::HashSet<FlagName> = segments
            .iter()
            .map(|segment| segment.name.clone())
            .collect();
        self.segments.retain(|name, _| names.contains(name));
        for segment in segments {
            self.segments
                .insert(segment.name.clone(), Arc::new(segment));
        }
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The flags prerequisites name, and the segments clauses name, are this
/// cache's.
impl Catalog for FlagCache {
    fn flag(&self, name: &str) -> Option<Arc<Flag>> {
        self.get(name)
    }

    fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.segments.get(name).map(|segment| segment.clone())
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::FlagSpec;
    use crate::domain::Stamp;

    fn flag(name: &str, revision: u64, enabled: bool) -> Flag {
        Flag::new(
            FlagName::parse("name", name).unwrap(),
            FlagSpec {
                enabled,
                ..FlagSpec::default()
            },
            Stamp {
                revision,
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
                created_by: String::new(),
                updated_by: String::new(),
            },
        )
    }

    #[test]
    fn older_updates_do_not_overwrite_newer() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("a", 5, true)));
        cache.upsert(Arc::new(flag("a", 3, false)));
        assert!(cache.get("a").unwrap().spec().enabled);
    }

    #[test]
    fn deletes_remove_unless_newer() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("a", 1, true)));
        cache.upsert(Arc::new(flag("b", 5, true)));
        cache.remove("a", 3);
        cache.remove("b", 4);
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn replace_all_replaces_everything() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("gone", 1, true)));
        cache.replace_all(vec![flag("kept", 4, true)]);
        let names: Vec<String> = cache.all().iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names, vec!["kept"]);
    }

    #[test]
    fn the_largest_flag_is_known_without_a_scan() {
        let cache = FlagCache::new();
        let small = flag("small", 1, true);
        let large = flag("large", 2, true);
        let mut spec = large.spec().clone();
        spec.description = "x".repeat(4000);
        let large = Flag::new(large.name.clone(), spec, large.stamp());
        cache.upsert(Arc::new(small.clone()));
        assert_eq!(cache.largest_wire_size(), small.wire_size());
        cache.upsert(Arc::new(large.clone()));
        assert_eq!(cache.largest_wire_size(), large.wire_size());
        // A full replacement is authoritative.
        cache.replace_all(vec![small.clone()]);
        assert_eq!(cache.largest_wire_size(), small.wire_size());
    }
}
