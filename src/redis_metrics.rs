//! Hourly metrics in the reference's Redis layout, for operators who look
//! there: a hash `{prefix}:metrics:{flag}:{YYYYMMDDHH}` (fields `evaluations`,
//! `enabled`, `disabled`, `reason:{REASON}`, `variant:{variant}`,
//! `env:{environment}:evaluations`,
//! `env:{environment}:enabled`, `latency_sum_ns`) and a HyperLogLog
//! `{prefix}:metrics:{flag}:{YYYYMMDDHH}:users` of distinct users, both
//! expiring after the retention period. The prefix (`VEXIL_REDIS_PREFIX`,
//! `ff` by default, as the reference has it) keeps installations sharing
//! one Redis apart.
//!
//! Hash fields are added to (HINCRBY), so each replica sends what it
//! counted since its last write. A write that is retried after an error
//! carries the same id, and a Lua script applies an id once (ids are
//! remembered two hours; a batch is retried for one): a reply lost after
//! the increments committed does not count them twice. Sketches merge with
//! PFMERGE (a maximum), which is safe to repeat; the replica's scratch copy
//! is deleted at once. Single-node Redis (the keys of one write are not in
//! one cluster slot).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use fred::clients::Client;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::prelude::{Config, ReconnectPolicy};
use fred::types::Builder;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::metrics::{HourFigures, HourRecord, REASONS};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write's id is remembered: longer than a batch is retried.
const WRITE_ID_TTL_SECS: i64 = 2 * 3600;
/// How long a batch that keeps failing is retried before it is dropped.
const BATCH_RETRY_LIMIT: Duration = Duration::from_secs(3600);
/// Batches kept for retry while Redis is unreachable.
const MAX_PENDING_BATCHES: usize = 1_000;

/// KEYS: the write's id, the hash, the users key, a scratch key for this
/// replica's sketch. ARGV: ttl seconds, the id's ttl, the sketch (Redis's
/// dense string, or ""), then field/increment pairs.
const SCRIPT: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  for i = 4, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', 60)
  redis.call('PFMERGE', KEYS[3], KEYS[4])
  redis.call('DEL', KEYS[4])
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
return 1
";

/// The hash key of a flag's hour, as the reference names it (with `ff`).
pub fn hour_key(prefix: &str, flag: &str, hour: i64) -> String {
    let hour = DateTime::from_timestamp(hour.saturating_mul(3600), 0)
        .map(|at| at.format("%Y%m%d%H").to_string())
        .unwrap_or_default();
    format!("{prefix}:metrics:{flag}:{hour}")
}

type RowKey = (Arc<str>, Arc<str>, i64);

struct Update {
    key: RowKey,
    increments: Vec<(String, i64)>,
    sketch: Option<Vec<u8>>,
}

/// Updates sent together; resent as they were (same ids) until they land.
struct Batch {
    id: u64,
    updates: Vec<Update>,
    made: std::time::Instant,
}

#[derive(Default)]
struct State {
    /// What was handed to a batch per row so far (counts only).
    sent: HashMap<RowKey, HourFigures>,
    /// Batches not yet written, oldest first. Increments and PFMERGE
    /// commute, so each is sent on its own: one that keeps failing does
    /// not hold up the others.
    pending: std::collections::VecDeque<Batch>,
    batches: u64,
}

pub struct RedisMetrics {
    client: Client,
    prefix: String,
    replica: String,
    ttl_secs: i64,
    state: Mutex<State>,
}

impl RedisMetrics {
    /// A client for `url`; connects in the background (and reconnects).
    pub fn connect(url: &str, prefix: &str, replica: &str, retention_days: u32) -> Result<Self> {
        let config = Config::from_url(url).map_err(|err| {
            Error::invalid("REDIS_URL", format!("is not a valid Redis URL: {err}"))
        })?;
        let client = Builder::from_config(config)
            .with_config(|c| c.fail_fast = true)
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .with_connection_config(|c| c.tcp.nodelay = Some(true))
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|err| Error::Internal(format!("redis metrics client: {err}")))?;
        client.connect();
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            replica: replica.to_owned(),
            ttl_secs: i64::from(retention_days.max(1)) * 24 * 3600,
            state: Mutex::new(State::default()),
        })
    }

    /// Adds what `records` (cumulative hour figures) hold beyond what was
    /// already sent.
    pub async fn write(&self, records: &[HourRecord]) -> Result<()> {
        let mut state = self.state.lock().await;
        let mut updates = Vec::new();
        for record in records {
            let key = (record.flag.clone(), record.environment.clone(), record.hour);
            let sent = state.sent.entry(key.clone()).or_default();
            let increments = increments(&record.environment, &record.figures, sent);
            *sent = HourFigures {
                users: None,
                ..record.figures.clone()
            };
            let sketch = record
                .figures
                .users
                .as_ref()
                .map(|users| users.to_redis_dense());
            if !increments.is_empty() || sketch.is_some() {
                updates.push(Update {
                    key,
                    increments,
                    sketch,
                });
            }
        }
        // Rows of hours long past are final: forget them.
        if let Some(latest) = records.iter().map(|r| r.hour).max() {
            state.sent.retain(|(_, _, hour), _| *hour + 2 >= latest);
        }
        if !updates.is_empty() {
            state.batches += 1;
            let id = state.batches;
            state.pending.push_back(Batch {
                id,
                updates,
                made: std::time::Instant::now(),
            });
            if state.pending.len() > MAX_PENDING_BATCHES {
                state.pending.pop_front();
                tracing::warn!("Redis metrics: too many batches waiting; dropped the oldest");
            }
        }
        let mut failure = None;
        let mut unsent = std::collections::VecDeque::new();
        while let Some(batch) = state.pending.pop_front() {
            match self.send(batch.id, &batch.updates).await {
                Ok(()) => {}
                Err(_) if batch.made.elapsed() > BATCH_RETRY_LIMIT => {
                    tracing::warn!(
                        batch = batch.id,
                        "Redis metrics: a batch failed for an hour; dropped"
                    );
                }
                Err(err) => {
                    failure.get_or_insert(err);
                    unsent.push_back(batch);
                }
            }
        }
        state.pending = unsent;
        failure.map_or(Ok(()), Err)
    }

    async fn send(&self, batch: u64, updates: &[Update]) -> Result<()> {
        for (i, update) in updates.iter().enumerate() {
            let (flag, environment, hour) = &update.key;
            let hash = hour_key(&self.prefix, flag, *hour);
            let keys = vec![
                format!("{}:metrics:write:{}:{batch}:{i}", self.prefix, self.replica),
                hash.clone(),
                format!("{hash}:users"),
                format!("{hash}:users:{}:{environment}", self.replica),
            ];
            let mut args: Vec<fred::types::Value> = vec![
                self.ttl_secs.into(),
                WRITE_ID_TTL_SECS.into(),
                match &update.sketch {
                    Some(sketch) => bytes::Bytes::from(sketch.clone()).into(),
                    None => "".into(),
                },
            ];
            for (field, increment) in &update.increments {
                args.push(field.as_str().into());
                args.push((*increment).into());
            }
            let _: i64 =
                self.client.eval(SCRIPT, keys, args).await.map_err(|err| {
                    Error::Unavailable(format!("writing metrics to Redis: {err}"))
                })?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }
}

/// The hash increments from `sent` to `now`.
fn increments(environment: &str, now: &HourFigures, sent: &HourFigures) -> Vec<(String, i64)> {
    let delta = |a: u64, b: u64| i64::try_from(a.saturating_sub(b)).unwrap_or(i64::MAX);
    let mut fields = Vec::new();
    let mut push = |field: String, value: i64| {
        if value != 0 {
            fields.push((field, value));
        }
    };
    let evaluations = delta(now.evaluations(), sent.evaluations());
    let enabled = delta(now.enabled(), sent.enabled());
    push("evaluations".into(), evaluations);
    push("enabled".into(), enabled);
    push("disabled".into(), evaluations - enabled);
    for reason in REASONS {
        push(
            format!("reason:{}", reason.name()),
            delta(now.count(reason), sent.count(reason)),
        );
    }
    for (variant, count) in &now.variants {
        let before = sent.variants.get(variant).copied().unwrap_or(0);
        push(format!("variant:{variant}"), delta(*count, before));
    }
    push(format!("env:{environment}:evaluations"), evaluations);
    push(format!("env:{environment}:enabled"), enabled);
    push(
        "latency_sum_ns".into(),
        delta(now.latency_sum_ns, sent.latency_sum_ns),
    );
    fields
}
