//! Evaluation metrics in the store: each replica's hourly figures (one row
//! per flag, environment, hour and replica, overwritten with the hour's
//! cumulative figures, so a retried write counts once) and when each name
//! was last evaluated.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
};

use super::entities::{evaluation, last_evaluation};
use super::{DbResultExt, FlagStore, bounded};
use crate::error::{Error, Result};
use crate::metrics::hll::Sketch;
use crate::metrics::{HourFigures, HourRecord, LATENCY_BUCKETS, REASONS};

/// Rows per INSERT statement (well under SQLite's bound on parameters).
const ROWS_PER_STATEMENT: usize = 200;
/// Rows a flush writes per transaction ([`FlagStore::write_metrics`]'s
/// callers split larger flushes): on SQLite a flag write waits for at most
/// one such transaction.
pub const METRIC_ROWS_PER_WRITE: usize = 500;
/// Rows deleted per statement past retention, for the same reason.
const ROWS_PER_DELETE: u64 = 1_000;

/// One replica's figures for a flag, environment and hour.
#[derive(Debug, Clone)]
pub struct StoredHour {
    pub replica: String,
    pub record: HourRecord,
}

/// How often an unknown name was asked for on one replica in one hour.
#[derive(Debug, Clone)]
pub struct UnknownCount {
    pub name: String,
    pub replica: String,
    /// Unix hour.
    pub hour: i64,
    pub evaluations: u64,
}

fn hour_start(hour: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(hour.saturating_mul(3600), 0)
        .ok_or_else(|| Error::invalid("hours", "is out of range"))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_model(
    replica: &str,
    record: &HourRecord,
    now: DateTime<Utc>,
) -> Result<evaluation::ActiveModel> {
    let figures = &record.figures;
    let reasons: serde_json::Map<String, serde_json::Value> = REASONS
        .iter()
        .zip(figures.outcomes.iter())
        .filter(|(_, [off, on])| off + on > 0)
        .map(|(reason, outcome)| (reason.name().to_owned(), serde_json::json!(outcome)))
        .collect();
    Ok(evaluation::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        flag_name: Set(record.flag.to_string()),
        // PostgreSQL's text cannot hold NUL; callers choose environments.
        environment: Set(record.environment.replace('\0', "\u{FFFD}")),
        hour: Set(hour_start(record.hour)?),
        replica: Set(replica.to_owned()),
        evaluations: Set(to_i64(figures.evaluations())),
        enabled: Set(to_i64(figures.enabled())),
        not_found: Set(to_i64(figures.count(crate::engine::Reason::FlagNotFound))),
        reasons: Set(serde_json::Value::Object(reasons)),
        variants: Set((!figures.variants.is_empty()).then(|| serde_json::json!(figures.variants))),
        latency_sum_ns: Set(to_i64(figures.latency_sum_ns)),
        latency_buckets: Set(serde_json::json!(figures.latency.as_slice())),
        users: Set(figures.users.as_ref().map(Sketch::encode)),
        updated_at: Set(now),
    })
}

fn from_model(model: evaluation::Model) -> Result<StoredHour> {
    let corrupt = |what: &str| {
        Error::Internal(format!(
            "feature_flag_evaluations row {} has a malformed {what}",
            model.id
        ))
    };
    let mut figures = HourFigures::default();
    let reasons = model
        .reasons
        .as_object()
        .ok_or_else(|| corrupt("reasons"))?;
    for (i, reason) in REASONS.iter().enumerate() {
        if let Some(value) = reasons.get(reason.name()) {
            let pair: [u64; 2] =
                serde_json::from_value(value.clone()).map_err(|_| corrupt("reasons"))?;
            figures.outcomes[i] = pair;
        }
    }
    if let Some(variants) = &model.variants {
        figures.variants =
            serde_json::from_value(variants.clone()).map_err(|_| corrupt("variants"))?;
    }
    let buckets: Vec<u64> =
        serde_json::from_value(model.latency_buckets.clone()).map_err(|_| corrupt("latency"))?;
    for (i, count) in buckets.into_iter().take(LATENCY_BUCKETS).enumerate() {
        figures.latency[i] = count;
    }
    figures.latency_sum_ns = u64::try_from(model.latency_sum_ns).unwrap_or(0);
    figures.users = match &model.users {
        Some(bytes) => Some(Sketch::decode(bytes).ok_or_else(|| corrupt("users sketch"))?),
        None => None,
    };
    Ok(StoredHour {
        replica: model.replica,
        record: HourRecord {
            flag: model.flag_name.into(),
            environment: model.environment.into(),
            hour: model.hour.timestamp().div_euclid(3600),
            figures,
        },
    })
}

impl FlagStore {
    /// Writes this replica's hour figures and latest evaluation times, in
    /// one transaction (keep it to [`METRIC_ROWS_PER_WRITE`] rows). On
    /// PostgreSQL it takes neither the flag writers' lock nor their pool:
    /// metrics never delay a flag write.
    pub async fn write_metrics(
        &self,
        replica: &str,
        records: &[HourRecord],
        last_evaluated: &[(Arc<str>, i64)],
    ) -> Result<()> {
        let now = Utc::now();
        let rows = records
            .iter()
            .map(|record| to_model(replica, record, now))
            .collect::<Result<Vec<_>>>()?;
        let times = last_evaluated
            .iter()
            .filter_map(|(name, at)| {
                Some(last_evaluation::ActiveModel {
                    flag_name: Set(name.to_string()),
                    evaluated_at: Set(DateTime::from_timestamp(*at, 0)?),
                })
            })
            .collect::<Vec<_>>();
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        // SQLite has one writer: take turns with this replica's flag writes
        // (the lock is fair) rather than fail to upgrade a lock.
        let _serialized = match postgres {
            true => None,
            false => Some(self.write_lock.lock().await),
        };
        let pool = if postgres { &self.db } else { &self.primary };
        let txn = pool.begin().await.db()?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            evaluation::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        evaluation::Column::FlagName,
                        evaluation::Column::Hour,
                        evaluation::Column::Environment,
                        evaluation::Column::Replica,
                    ])
                    .update_columns([
                        evaluation::Column::Evaluations,
                        evaluation::Column::Enabled,
                        evaluation::Column::NotFound,
                        evaluation::Column::Reasons,
                        evaluation::Column::Variants,
                        evaluation::Column::LatencySumNs,
                        evaluation::Column::LatencyBuckets,
                        evaluation::Column::UpdatedAt,
                    ])
                    // No sketch: it has not changed since the stored one.
                    .value(
                        evaluation::Column::Users,
                        Expr::cust("COALESCE(excluded.users, feature_flag_evaluations.users)"),
                    )
                    .to_owned(),
                )
                .exec(&txn)
                .await
                .db()?;
        }
        for chunk in times.chunks(ROWS_PER_STATEMENT) {
            last_evaluation::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::column(last_evaluation::Column::FlagName)
                        .value(
                            last_evaluation::Column::EvaluatedAt,
                            Expr::cust(
                                "CASE WHEN excluded.evaluated_at > \
                                 feature_flag_last_evaluations.evaluated_at \
                                 THEN excluded.evaluated_at \
                                 ELSE feature_flag_last_evaluations.evaluated_at END",
                            ),
                        )
                        .to_owned(),
                )
                .exec(&txn)
                .await
                .db()?;
        }
        txn.commit().await.db()
    }

    /// Every replica's figures for one flag in the unix hours `[from, to]`,
    /// in one environment or all.
    pub async fn read_metrics(
        &self,
        flag: &str,
        environment: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<StoredHour>> {
        let (from, to) = (hour_start(from)?, hour_start(to)?);
        let models = bounded(async {
            let mut query = evaluation::Entity::find()
                .filter(evaluation::Column::FlagName.eq(flag))
                .filter(evaluation::Column::Hour.gte(from))
                .filter(evaluation::Column::Hour.lte(to));
            if let Some(environment) = environment {
                query = query.filter(evaluation::Column::Environment.eq(environment));
            }
            query.all(&self.db).await.db()
        })
        .await?;
        models.into_iter().map(from_model).collect()
    }

    /// Names evaluated as unknown flags since the unix hour `from`, per
    /// replica and hour.
    pub async fn unknown_counts(&self, from: i64) -> Result<Vec<UnknownCount>> {
        let from = hour_start(from)?;
        let rows: Vec<(String, String, DateTime<Utc>, i64)> = bounded(async {
            evaluation::Entity::find()
                .select_only()
                .column(evaluation::Column::FlagName)
                .column(evaluation::Column::Replica)
                .column(evaluation::Column::Hour)
                .column_as(
                    // PostgreSQL's SUM of bigint is numeric.
                    Expr::cust("CAST(SUM(not_found) AS BIGINT)"),
                    "not_found",
                )
                .filter(evaluation::Column::Hour.gte(from))
                .filter(evaluation::Column::NotFound.gt(0))
                .group_by(evaluation::Column::FlagName)
                .group_by(evaluation::Column::Replica)
                .group_by(evaluation::Column::Hour)
                .into_tuple()
                .all(&self.db)
                .await
                .db()
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, replica, hour, evaluations)| UnknownCount {
                name,
                replica,
                hour: hour.timestamp().div_euclid(3600),
                evaluations: u64::try_from(evaluations).unwrap_or(0),
            })
            .collect())
    }

    /// When `name` was last evaluated by any replica (as last flushed).
    pub async fn last_evaluated(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        bounded(async {
            Ok(last_evaluation::Entity::find_by_id(name)
                .one(&self.db)
                .await
                .db()?
                .map(|row| row.evaluated_at))
        })
        .await
    }

    /// Names evaluated at or after `since` by any replica (as last flushed).
    pub async fn evaluated_since(&self, since: DateTime<Utc>) -> Result<HashSet<String>> {
        bounded(async {
            let names: Vec<String> = last_evaluation::Entity::find()
                .select_only()
                .column(last_evaluation::Column::FlagName)
                .filter(last_evaluation::Column::EvaluatedAt.gte(since))
                .into_tuple()
                .all(&self.db)
                .await
                .db()?;
            Ok(names.into_iter().collect())
        })
        .await
    }

    /// Deletes hourly figures of hours before the unix hour `before`, a
    /// bounded number of rows at a time.
    pub async fn delete_metrics_before(&self, before: i64) -> Result<u64> {
        let before = hour_start(before)?;
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let pool = if postgres { &self.db } else { &self.primary };
        let mut deleted = 0;
        loop {
            let _serialized = match postgres {
                true => None,
                false => Some(self.write_lock.lock().await),
            };
            let ids: Vec<i64> = evaluation::Entity::find()
                .select_only()
                .column(evaluation::Column::Id)
                .filter(evaluation::Column::Hour.lt(before))
                .limit(ROWS_PER_DELETE)
                .into_tuple()
                .all(pool)
                .await
                .db()?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            deleted += evaluation::Entity::delete_many()
                .filter(evaluation::Column::Id.is_in(ids))
                .exec(pool)
                .await
                .db()?
                .rows_affected;
        }
    }
}
