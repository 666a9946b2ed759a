//! Typed flags and targeting: one JSON column holding a flag's type,
//! variants, off variant, targets, rules, fallthrough and prerequisites.
//! NULL for boolean flags that use none of them, so existing rows keep
//! their meaning unchanged.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeatureFlags {
    Table,
    Targeting,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlags::Table)
                    .add_column(json_null(FeatureFlags::Targeting))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlags::Table)
                    .drop_column(FeatureFlags::Targeting)
                    .to_owned(),
            )
            .await
    }
}
