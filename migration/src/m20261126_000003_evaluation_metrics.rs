//! Hourly evaluation metrics. Each replica writes its own row per flag,
//! environment and hour with that hour's cumulative figures (so a retried
//! write never counts twice); readers add the replicas up. The first
//! migration's `feature_flag_evaluations` (one count per reason, never
//! written) is replaced.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeatureFlagEvaluations {
    Table,
    Id,
    FlagName,
    Environment,
    Hour,
    Replica,
    Evaluations,
    Enabled,
    NotFound,
    Reasons,
    LatencySumNs,
    LatencyBuckets,
    Users,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FeatureFlagLastEvaluations {
    Table,
    FlagName,
    EvaluatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(FeatureFlagEvaluations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagEvaluations::Table)
                    .col(big_pk_auto(FeatureFlagEvaluations::Id))
                    .col(string_len(FeatureFlagEvaluations::FlagName, 128))
                    .col(string_len(FeatureFlagEvaluations::Environment, 256))
                    .col(timestamp_with_time_zone(FeatureFlagEvaluations::Hour))
                    .col(string_len(FeatureFlagEvaluations::Replica, 64))
                    .col(big_integer(FeatureFlagEvaluations::Evaluations))
                    .col(big_integer(FeatureFlagEvaluations::Enabled))
                    .col(big_integer(FeatureFlagEvaluations::NotFound))
                    .col(json(FeatureFlagEvaluations::Reasons))
                    .col(big_integer(FeatureFlagEvaluations::LatencySumNs))
                    .col(json(FeatureFlagEvaluations::LatencyBuckets))
                    .col(blob_null(FeatureFlagEvaluations::Users))
                    .col(timestamp_with_time_zone(FeatureFlagEvaluations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_feature_flag_evaluations_row")
                    .table(FeatureFlagEvaluations::Table)
                    .col(FeatureFlagEvaluations::FlagName)
                    .col(FeatureFlagEvaluations::Hour)
                    .col(FeatureFlagEvaluations::Environment)
                    .col(FeatureFlagEvaluations::Replica)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_feature_flag_evaluations_hour")
                    .table(FeatureFlagEvaluations::Table)
                    .col(FeatureFlagEvaluations::Hour)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagLastEvaluations::Table)
                    .col(string_len(FeatureFlagLastEvaluations::FlagName, 128).primary_key())
                    .col(timestamp_with_time_zone(
                        FeatureFlagLastEvaluations::EvaluatedAt,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(FeatureFlagLastEvaluations::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(FeatureFlagEvaluations::Table)
                    .to_owned(),
            )
            .await
    }
}
