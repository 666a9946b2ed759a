//! The `feature_flags` table: one row per flag; lists and maps stored as JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "feature_flags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub percentage: f64,
    pub whitelist: Json,
    pub blacklist: Json,
    pub environments: Json,
    pub environment_overrides: Json,
    pub starts_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub tags: Json,
    pub metadata: Json,
    pub group_name: Option<String>,
    /// Type, variants and targeting; NULL for a plain boolean flag.
    pub targeting: Option<Json>,
    pub revision: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub created_by: String,
    pub updated_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
