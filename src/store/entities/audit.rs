//! The `feature_flag_audits` table: one row per change, with full before/after snapshots as JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "feature_flag_audits")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The flag's or segment's name (see `subject`).
    pub flag_name: String,
    /// "flag" or "segment".
    pub subject: String,
    pub action: String,
    pub actor: String,
    pub reason: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub revision: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
