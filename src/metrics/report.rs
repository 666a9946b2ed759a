//! One flag's figures over a range of hours, added up across replicas
//! (and environments): counts add, distinct-user sketches merge.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::recorder::{HourFigures, HourRecord, LATENCY_BOUNDS_NS};

/// Hour by hour (every hour of the range, oldest first, zero-filled), in
/// total, and by environment.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `(unix hour, figures)`.
    pub hours: Vec<(i64, HourFigures)>,
    pub totals: HourFigures,
    pub environments: Vec<(Arc<str>, HourFigures)>,
}

impl Report {
    /// Adds up `stored` rows (`(replica, record)`) for the unix hours
    /// `[from, to]`. `live` is this replica's own current figures: they
    /// replace its stored rows for the same environment and hour, which
    /// can only be older.
    pub fn build(
        stored: Vec<(String, HourRecord)>,
        live: Vec<HourRecord>,
        own_replica: &str,
        from: i64,
        to: i64,
    ) -> Self {
        let fresh: HashSet<(Arc<str>, i64)> = live
            .iter()
            .map(|record| (record.environment.clone(), record.hour))
            .collect();
        let records = stored
            .into_iter()
            .filter(|(replica, record)| {
                replica != own_replica
                    || !fresh.contains(&(record.environment.clone(), record.hour))
            })
            .map(|(_, record)| record)
            .chain(live)
            .filter(|record| (from..=to).contains(&record.hour));
        let mut hours: BTreeMap<i64, HourFigures> = (from..=to)
            .map(|hour| (hour, HourFigures::default()))
            .collect();
        let mut environments: BTreeMap<Arc<str>, HourFigures> = BTreeMap::new();
        let mut totals = HourFigures::default();
        for record in records {
            if let Some(hour) = hours.get_mut(&record.hour) {
                hour.add(&record.figures);
            }
            environments
                .entry(record.environment.clone())
                .or_default()
                .add(&record.figures);
            totals.add(&record.figures);
        }
        Self {
            hours: hours.into_iter().collect(),
            totals,
            environments: environments.into_iter().collect(),
        }
    }
}

impl HourFigures {
    /// The upper bound of the histogram bucket holding the `q` quantile of
    /// evaluation time, in nanoseconds (`None` without evaluations; the
    /// last bound when it falls in the overflow bucket).
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        let count = self
            .latency
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(*n));
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (i, bucket) in self.latency.iter().enumerate() {
            seen = seen.saturating_add(*bucket);
            if seen >= rank {
                return Some(LATENCY_BOUNDS_NS[i.min(LATENCY_BOUNDS_NS.len() - 1)]);
            }
        }
        LATENCY_BOUNDS_NS.last().copied()
    }

    /// Approximate distinct users (0 when none were tracked).
    pub fn distinct_users(&self) -> u64 {
        self.users.as_ref().map_or(0, |users| users.count())
    }
}
