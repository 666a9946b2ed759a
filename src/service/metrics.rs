//! Evaluation metrics as a use case: the flush task that writes this
//! replica's counters to the store (and Redis), retention, and the reads
//! behind GetMetrics, ListUnknownFlags and ListFlags' `not_evaluated_since`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{TRANSACTION_TIMEOUT, to_completion};
use crate::cache::FlagCache;
use crate::domain::{limits, validate_name};
use crate::error::{Error, Result};
use crate::metrics::{HourRecord, Recorder, Report};
use crate::redis_metrics::RedisMetrics;
use crate::store::{FlagStore, METRIC_ROWS_PER_WRITE};

/// Default and largest GetMetrics range, in hours.
pub const DEFAULT_HOURS: u32 = 24;
pub const MAX_HOURS: u32 = 24 * 90;
/// How often the flush task deletes figures past the retention period.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Most unknown names ListUnknownFlags returns.
const MAX_UNKNOWN_LISTED: usize = 1_000;

/// How metrics are kept.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub flush_interval: Duration,
    pub retention_days: u32,
    /// Prefix of the Redis keys (`VEXIL_REDIS_PREFIX`).
    pub redis_prefix: String,
}

/// An unknown flag name and how often it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFlag {
    pub name: String,
    pub evaluations: u64,
}

/// One flag's metrics report.
#[derive(Debug, Clone)]
pub struct FlagMetrics {
    pub report: Report,
    pub last_evaluated: Option<DateTime<Utc>>,
    pub flag_exists: bool,
}

pub struct Metrics {
    recorder: Arc<Recorder>,
    store: Arc<FlagStore>,
    cache: Arc<FlagCache>,
    redis: Option<RedisMetrics>,
    /// This process's id in the store's rows (each replica writes its own).
    replica: String,
    options: MetricsOptions,
    flush_failures: AtomicU64,
}

impl Metrics {
    /// Metrics kept in `store`, and in Redis when `redis_url` is given.
    pub fn new(
        recorder: Arc<Recorder>,
        store: Arc<FlagStore>,
        cache: Arc<FlagCache>,
        redis_url: Option<&str>,
        options: MetricsOptions,
    ) -> Result<Self> {
        let replica = replica_id();
        let redis = redis_url
            .map(|url| {
                RedisMetrics::connect(url, &options.redis_prefix, &replica, options.retention_days)
            })
            .transpose()?;
        Ok(Self {
            recorder,
            store,
            cache,
            redis,
            replica,
            options,
            flush_failures: AtomicU64::new(0),
        })
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Flushes that failed (their figures were kept for the next one).
    pub fn flush_failures(&self) -> u64 {
        self.flush_failures.load(Relaxed)
    }

    /// Writes what changed since the last flush. On failure everything is
    /// kept for the next flush; rows hold cumulative figures, so a write
    /// that committed although its reply was lost is simply written again.
    pub async fn flush(&self) -> Result<()> {
        let collected = self.recorder.collect(Utc::now().timestamp());
        if collected.records.is_empty() && collected.last_evaluated.is_empty() {
            // Nothing new; batches Redis missed are still resent.
            self.write_redis(&[]).await;
            return Ok(());
        }
        let records = latest_per_row(&collected.records);
        let batches = records
            .chunks(METRIC_ROWS_PER_WRITE)
            .map(|rows| (rows.to_vec(), Vec::new()))
            .chain(
                collected
                    .last_evaluated
                    .chunks(METRIC_ROWS_PER_WRITE)
                    .map(|times| (Vec::new(), times.to_vec())),
            );
        let mut written = Ok(());
        // A batch per transaction: on SQLite flag writes take turns with
        // them. A failure keeps everything for the next flush; batches
        // already written are written again then (rows are cumulative).
        for (rows, times) in batches {
            let store = self.store.clone();
            let replica = self.replica.clone();
            written = to_completion(TRANSACTION_TIMEOUT, async move {
                store.write_metrics(&replica, &rows, &times).await
            })
            .await;
            if written.is_err() {
                break;
            }
        }
        if let Err(err) = written {
            self.flush_failures.fetch_add(1, Relaxed);
            self.recorder.retry_later(collected);
            return Err(err);
        }
        self.recorder.confirm(collected);
        self.write_redis(&records).await;
        Ok(())
    }

    /// Adds `records` to Redis (when configured) with the batches waiting
    /// since earlier flushes; what fails waits for the next flush.
    async fn write_redis(&self, records: &[HourRecord]) {
        if let Some(redis) = &self.redis
            && let Err(err) = redis.write(records).await
        {
            self.flush_failures.fetch_add(1, Relaxed);
            tracing::warn!(error = %err, "writing metrics to Redis failed; retrying at the next flush");
        }
    }

    /// Flushes every interval, deletes old figures, and flushes once more
    /// when `stopping` turns true.
    pub async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.options.flush_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_retention: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.wait_for(|stop| *stop) => break,
            }
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "flushing evaluation metrics failed; keeping them for the next flush");
            }
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(tokio::time::Instant::now());
                let before = Utc::now().timestamp().div_euclid(3600)
                    - i64::from(self.options.retention_days) * 24;
                match self.store.delete_metrics_before(before).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "deleted hourly metrics past retention"),
                    Err(err) => tracing::warn!(error = %err, "deleting old metrics failed"),
                }
            }
        }
        if let Err(err) = self.flush().await {
            tracing::warn!(error = %err, "the final metrics flush failed; its figures are lost");
        }
        if let Some(redis) = &self.redis {
            redis.close().await;
        }
    }

    /// One flag's figures over the last `hours` hours (the current one
    /// included), from every replica.
    pub async fn flag_metrics(
        &self,
        flag_name: &str,
        hours: u32,
        environment: Option<&str>,
    ) -> Result<FlagMetrics> {
        validate_name("flag_name", flag_name)?;
        if environment.is_some_and(|env| env.len() > limits::ID_BYTES) {
            return Err(Error::invalid(
                "environment",
                format!("must be at most {} bytes", limits::ID_BYTES),
            ));
        }
        let (from, to) = hour_range(hours)?;
        let stored = self
            .store
            .read_metrics(flag_name, environment, from, to)
            .await?;
        let had_rows = !stored.is_empty();
        let live: Vec<HourRecord> = self
            .recorder
            .live(flag_name, from, to)
            .into_iter()
            .filter(|record| environment.is_none_or(|env| &*record.environment == env))
            .collect();
        let had_live = !live.is_empty();
        let stored = stored
            .into_iter()
            .map(|row| (row.replica, row.record))
            .collect();
        let report = Report::build(stored, live, &self.replica, from, to);
        let flag_exists = self.cache.get(flag_name).is_some();
        let stored_last = self.store.last_evaluated(flag_name).await?;
        let live_last = self
            .recorder
            .last_evaluated(flag_name)
            .and_then(|at| DateTime::from_timestamp(at, 0));
        let last_evaluated = stored_last.max(live_last);
        if !flag_exists && !had_rows && !had_live && last_evaluated.is_none() {
            return Err(Error::NotFound(format!(
                "flag {flag_name:?} does not exist and has no recorded evaluations"
            )));
        }
        Ok(FlagMetrics {
            report,
            last_evaluated,
            flag_exists,
        })
    }

    /// Names asked for in the last `hours` hours that are not flags now,
    /// most asked first.
    pub async fn unknown_flags(&self, hours: u32) -> Result<Vec<UnknownFlag>> {
        let (from, to) = hour_range(hours)?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        // This replica's live hours (name, hour) replace its stored rows of
        // the same hours; its older stored hours count as they are.
        let mut live_hours: HashSet<(String, i64)> = HashSet::new();
        for name in self.recorder.unknown_names() {
            for record in self.recorder.live(&name, from, to) {
                live_hours.insert((name.to_string(), record.hour));
                let evaluations = record.figures.count(crate::engine::Reason::FlagNotFound);
                let count = counts.entry(name.to_string()).or_default();
                *count = count.saturating_add(evaluations);
            }
        }
        for row in self.store.unknown_counts(from).await? {
            if row.replica == self.replica && live_hours.contains(&(row.name.clone(), row.hour)) {
                continue;
            }
            let count = counts.entry(row.name).or_default();
            *count = count.saturating_add(row.evaluations);
        }
        let mut unknown: Vec<UnknownFlag> = counts
            .into_iter()
            .filter(|(name, evaluations)| *evaluations > 0 && self.cache.get(name).is_none())
            .map(|(name, evaluations)| UnknownFlag { name, evaluations })
            .collect();
        unknown
            .sort_unstable_by(|a, b| b.evaluations.cmp(&a.evaluations).then(a.name.cmp(&b.name)));
        unknown.truncate(MAX_UNKNOWN_LISTED);
        Ok(unknown)
    }

    /// Names evaluated at or after `since` by any replica (this one's
    /// unflushed evaluations included).
    pub async fn evaluated_since(&self, since: DateTime<Utc>) -> Result<HashSet<String>> {
        let mut names = self.store.evaluated_since(since).await?;
        let since = since.timestamp();
        for flag in self.cache.all() {
            if self
                .recorder
                .last_evaluated(flag.name.as_str())
                .is_some_and(|at| at >= since)
            {
                names.insert(flag.name.to_string());
            }
        }
        Ok(names)
    }
}

/// `[from, to]` in unix hours for the last `hours` hours, `to` the current.
fn hour_range(hours: u32) -> Result<(i64, i64)> {
    let hours = match hours {
        0 => DEFAULT_HOURS,
        hours if hours > MAX_HOURS => {
            return Err(Error::invalid(
                "hours",
                format!("must be at most {MAX_HOURS} (90 days)"),
            ));
        }
        hours => hours,
    };
    let to = Utc::now().timestamp().div_euclid(3600);
    Ok((to - i64::from(hours) + 1, to))
}

/// One record per row (flag, environment, hour): figures set aside for an
/// hour are older than the same hour's buffer, which comes later.
fn latest_per_row(records: &[HourRecord]) -> Vec<HourRecord> {
    let mut rows: HashMap<(&str, &str, i64), usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        rows.insert((&record.flag, &record.environment, record.hour), i);
    }
    let mut latest: Vec<usize> = rows.into_values().collect();
    latest.sort_unstable();
    latest.into_iter().map(|i| records[i].clone()).collect()
}

/// A process-unique id: host-independent, random enough that two replicas
/// (or a restarted one) never share rows.
fn replica_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:08x}-{:016x}", std::process::id(), hasher.finish())
}
