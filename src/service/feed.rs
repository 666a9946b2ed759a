//! The change feed: the changes this replica applied most recently, in
//! revision order, held in memory for every Watch stream to read at its
//! own position. A stream that resumes or falls behind within the feed is
//! served without the store; only a position older than the feed needs a
//! replay from the store's audit log.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

use crate::domain::Committed;

/// A change as streams send it: the change, and a slot where the transport
/// keeps its encoding, made once and shared by every subscriber.
#[derive(Debug)]
pub struct FeedEntry {
    pub change: Committed,
    wire: OnceLock<Bytes>,
}

impl FeedEntry {
    pub fn new(change: impl Into<Committed>) -> Self {
        let change = change.into();
        Self {
            change,
            wire: OnceLock::new(),
        }
    }

    /// The change's encoding, made by `encode` the first time it is asked for.
    pub fn wire(&self, encode: impl FnOnce(&Committed) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.change)).clone()
    }
}

impl FeedEntry {
    pub fn revision(&self) -> u64 {
        self.change.revision()
    }
}

/// The position asked for is older than the feed reaches back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld;

pub struct ChangeFeed {
    log: RwLock<Log>,
    /// The newest revision in the feed (the cache's `applied`); streams wait
    /// on it for new changes.
    head: watch::Sender<u64>,
}

struct Log {
    /// The feed holds every change after `start` up to the head.
    start: u64,
    changes: VecDeque<Arc<FeedEntry>>,
    /// Their summed `wire_size`, bounded like their count.
    bytes: usize,
    max_changes: usize,
    max_bytes: usize,
}

impl ChangeFeed {
    /// An empty feed at `revision`, keeping at most `max_changes` changes
    /// and `max_bytes` of flags (as [`crate::domain::Flag::wire_size`]).
    pub fn new(revision: u64, max_changes: usize, max_bytes: usize) -> Self {
        Self {
            log: RwLock::new(Log {
                start: revision,
                changes: VecDeque::new(),
                bytes: 0,
                max_changes: max_changes.max(1),
                max_bytes,
            }),
            head: watch::channel(revision).0,
        }
    }

    /// Appends the change after the head (the caller applies changes in
    /// order), dropping the oldest ones beyond the bounds.
    pub fn push(&self, change: Arc<FeedEntry>) {
        let revision = change.revision();
        {
            let mut log = self.write();
            log.bytes += change.change.wire_size();
            log.changes.push_back(change);
            while log.changes.len() > log.max_changes
                || (log.bytes > log.max_bytes && log.changes.len() > 1)
            {
                if let Some(oldest) = log.changes.pop_front() {
                    log.bytes -= oldest.change.wire_size();
                    log.start = oldest.revision();
                }
            }
        }
        self.head.send_replace(revision);
    }

    /// Forgets every change: the state jumped to `revision` without them
    /// (a reload past a hole in the audit log). Streams behind it must
    /// replay from the store or start over with a snapshot.
    pub fn reset(&self, revision: u64) {
        {
            let mut log = self.write();
            log.changes.clear();
            log.bytes = 0;
            log.start = revision;
        }
        self.head.send_replace(revision);
    }

    /// Up to `max` changes after `position`, oldest first; none when the
    /// position is at or past the head.
    pub fn read_after(&self, position: u64, max: usize) -> Result<Vec<Arc<FeedEntry>>, TooOld> {
        let log = self
            .log
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if position < log.start {
            return Err(TooOld);
        }
        // Revisions in the feed are consecutive from `start + 1`.
        let skip = usize::try_from(position - log.start).unwrap_or(usize::MAX);
        Ok(log.changes.iter().skip(skip).take(max).cloned().collect())
    }

    /// Wakes on every new head.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.log
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::{Flag, FlagChange, FlagName, FlagSpec, Stamp};

    fn change(revision: u64) -> Arc<FeedEntry> {
        let name = FlagName::parse("name", "f").unwrap();
        Arc::new(FeedEntry::new(FlagChange::upserted(Arc::new(Flag::new(
            name,
            FlagSpec::default(),
            Stamp {
                revision,
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
                created_by: String::new(),
                updated_by: String::new(),
            },
        )))))
    }

    fn revisions(changes: Vec<Arc<FeedEntry>>) -> Vec<u64> {
        changes.iter().map(|change| change.revision()).collect()
    }

    #[test]
    fn serves_positions_it_still_holds() {
        let feed = ChangeFeed::new(10, 3, usize::MAX);
        for revision in 11..=15 {
            feed.push(change(revision));
        }
        assert_eq!(feed.head(), 15);
        assert!(matches!(feed.read_after(11, 10), Err(TooOld)));
        assert_eq!(revisions(feed.read_after(12, 10).unwrap()), [13, 14, 15]);
        assert_eq!(revisions(feed.read_after(13, 1).unwrap()), [14]);
        assert!(feed.read_after(15, 10).unwrap().is_empty());
        assert!(feed.read_after(99, 10).unwrap().is_empty());
    }

    #[test]
    fn is_bounded_by_bytes_but_keeps_the_newest() {
        let size = change(1).change.wire_size();
        let feed = ChangeFeed::new(0, 100, size * 2);
        for revision in 1..=5 {
            feed.push(change(revision));
        }
        assert!(matches!(feed.read_after(2, 10), Err(TooOld)));
        assert_eq!(revisions(feed.read_after(3, 10).unwrap()), [4, 5]);
    }

    #[test]
    fn an_entry_is_encoded_once_for_every_reader() {
        let entry = change(1);
        let mut encodings = 0;
        for _ in 0..3 {
            let bytes = entry.wire(|change| {
                encodings += 1;
                Bytes::from(change.revision().to_string())
            });
            assert_eq!(bytes, Bytes::from("1"));
        }
        assert_eq!(encodings, 1);
    }

    #[test]
    fn reset_forgets_history() {
        let feed = ChangeFeed::new(0, 10, usize::MAX);
        feed.push(change(1));
        feed.reset(7);
        assert!(matches!(feed.read_after(1, 10), Err(TooOld)));
        assert!(feed.read_after(7, 10).unwrap().is_empty());
        assert_eq!(feed.head(), 7);
    }
}
