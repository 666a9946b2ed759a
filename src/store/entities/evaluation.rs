//! The `feature_flag_evaluations` table: one replica's cumulative figures
//! for one flag, environment and UTC hour.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "feature_flag_evaluations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub flag_name: String,
    pub environment: String,
    pub hour: DateTimeUtc,
    pub replica: String,
    pub evaluations: i64,
    pub enabled: i64,
    pub not_found: i64,
    /// `{"REASON": [disabled, enabled], …}`.
    pub reasons: Json,
    /// `{"variant": count, …}`; NULL when none was served.
    pub variants: Option<Json>,
    pub latency_sum_ns: i64,
    /// Counts per bucket of `metrics::LATENCY_BOUNDS_NS`, then the overflow.
    pub latency_buckets: Json,
    /// The distinct-user sketch (`metrics::hll::Sketch::encode`).
    pub users: Option<Vec<u8>>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
