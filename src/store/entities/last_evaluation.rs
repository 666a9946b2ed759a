//! The `feature_flag_last_evaluations` table: when each name was last
//! evaluated by any replica.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "feature_flag_last_evaluations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flag_name: String,
    pub evaluated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
