//! Evaluation metrics by variant: one JSON column, `{"variant": count}`,
//! NULL in rows written before it (and in hours that served no variant).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeatureFlagEvaluations {
    Table,
    Variants,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlagEvaluations::Table)
                    .add_column(json_null(FeatureFlagEvaluations::Variants))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlagEvaluations::Table)
                    .drop_column(FeatureFlagEvaluations::Variants)
                    .to_owned(),
            )
            .await
    }
}
