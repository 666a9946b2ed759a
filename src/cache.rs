//! The replica's hot cache: every flag, in memory, so evaluation never
//! touches the store. Holds every flag the store has, so a miss means "no
//! such flag" and costs no query.
//!
//! Each entry carries the revision it reflects, and a change applies only
//! when it is newer. Changes arrive in revision order (see
//! `service::sync`), so a deletion simply removes the entry.

use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::{Flag, FlagName};

struct Entry {
    revision: u64,
    flag: Arc<Flag>,
}

#[derive(Default)]
pub struct FlagCache {
    entries: DashMap<FlagName, Entry, ahash::RandomState>,
}

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

    pub fn get(&self, name: &str) -> Option<Arc<Flag>> {
        self.entries.get(name).map(|entry| entry.flag.clone())
    }

    /// Every live flag, ordered by name.
    pub fn all(&self) -> Vec<Arc<Flag>> {
        let mut flags: Vec<Arc<Flag>> = self
            .entries
            .iter()
            .map(|entry| entry.flag.clone())
            .collect();
        flags.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        flags
    }

    /// Stores a created or updated flag unless the cache already holds a newer state.
    pub fn upsert(&self, flag: Arc<Flag>) {
        let revision = flag.revision;
        self.entries
            .entry(flag.name.clone())
            .and_modify(|entry| {
                if revision > entry.revision {
                    entry.flag = flag.clone();
                    entry.revision = revision;
                }
            })
            .or_insert_with(|| Entry {
                revision,
                flag: flag.clone(),
            });
    }

    /// Removes a flag deleted at `revision`, unless the cache holds a newer state.
    pub fn remove(&self, name: &str, revision: u64) {
        self.entries
            .remove_if(name, |_, entry| entry.revision < revision);
    }

    /// Replaces the whole content with a consistent snapshot of the store,
    /// which is authoritative: flags it lacks go, the others are replaced.
    /// Flags in both never disappear meanwhile (evaluations keep finding them).
    pub fn replace_all(&self, flags: Vec<Flag>) {
        let names: ahash::AHashSet<&str> = flags.iter().map(|flag| flag.name.as_str()).collect();
        self.entries.retain(|name, _| names.contains(name.as_str()));
        drop(names);
        for flag in flags {
            let revision = flag.revision;
            self.entries.insert(
                flag.name.clone(),
                Entry {
                    revision,
                    flag: Arc::new(flag),
                },
            );
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

    #[test]
    fn older_updates_do_not_overwrite_newer() {
        let cache = FlagCache::new();
        cache.upsert(Arc::new(flag("a", 5, true)));
        cache.upsert(Arc::new(flag("a", 3, false)));
        assert!(cache.get("a").unwrap().spec.enabled);
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
}
