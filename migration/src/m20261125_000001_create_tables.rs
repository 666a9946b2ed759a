//! The four tables of the reference design plus the global revision counter.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeatureFlagGroups {
    Table,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum FeatureFlags {
    Table,
    Name,
    Description,
    Enabled,
    Percentage,
    Whitelist,
    Blacklist,
    Environments,
    EnvironmentOverrides,
    StartsAt,
    ExpiresAt,
    Tags,
    Metadata,
    GroupName,
    Revision,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum FeatureFlagAudits {
    Table,
    Id,
    FlagName,
    Action,
    Actor,
    Reason,
    Before,
    After,
    Revision,
    CreatedAt,
}

/// Hourly evaluation counts per flag, environment and reason.
#[derive(DeriveIden)]
enum FeatureFlagEvaluations {
    Table,
    Id,
    FlagName,
    Environment,
    Reason,
    Hour,
    Count,
}

/// One row holding the last assigned global revision. Writers bump it first
/// in their transaction, which locks it until commit: revisions become
/// visible in the order they are assigned.
#[derive(DeriveIden)]
enum FeatureFlagRevision {
    Table,
    Id,
    Revision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagGroups::Table)
                    .col(string_len(FeatureFlagGroups::Name, 128).primary_key())
                    .col(text(FeatureFlagGroups::Description))
                    .col(timestamp_with_time_zone(FeatureFlagGroups::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FeatureFlags::Table)
                    .col(string_len(FeatureFlags::Name, 128).primary_key())
                    .col(text(FeatureFlags::Description))
                    .col(boolean(FeatureFlags::Enabled))
                    .col(double(FeatureFlags::Percentage))
                    .col(json(FeatureFlags::Whitelist))
                    .col(json(FeatureFlags::Blacklist))
                    .col(json(FeatureFlags::Environments))
                    .col(json(FeatureFlags::EnvironmentOverrides))
                    .col(timestamp_with_time_zone_null(FeatureFlags::StartsAt))
                    .col(timestamp_with_time_zone_null(FeatureFlags::ExpiresAt))
                    .col(json(FeatureFlags::Tags))
                    .col(json(FeatureFlags::Metadata))
                    .col(string_len_null(FeatureFlags::GroupName, 128))
                    .col(big_integer(FeatureFlags::Revision))
                    .col(timestamp_with_time_zone(FeatureFlags::CreatedAt))
                    .col(timestamp_with_time_zone(FeatureFlags::UpdatedAt))
                    .col(text(FeatureFlags::CreatedBy))
                    .col(text(FeatureFlags::UpdatedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_feature_flags_group")
                            .from(FeatureFlags::Table, FeatureFlags::GroupName)
                            .to(FeatureFlagGroups::Table, FeatureFlagGroups::Name)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagAudits::Table)
                    .col(big_pk_auto(FeatureFlagAudits::Id))
                    .col(string_len(FeatureFlagAudits::FlagName, 128))
                    .col(string_len(FeatureFlagAudits::Action, 16))
                    .col(text(FeatureFlagAudits::Actor))
                    .col(text(FeatureFlagAudits::Reason))
                    .col(json_null(FeatureFlagAudits::Before))
                    .col(json_null(FeatureFlagAudits::After))
                    .col(big_integer_uniq(FeatureFlagAudits::Revision))
                    .col(timestamp_with_time_zone(FeatureFlagAudits::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_feature_flag_audits_flag_revision")
                    .table(FeatureFlagAudits::Table)
                    .col(FeatureFlagAudits::FlagName)
                    .col(FeatureFlagAudits::Revision)
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
                    .col(string_len(FeatureFlagEvaluations::Reason, 64))
                    .col(timestamp_with_time_zone(FeatureFlagEvaluations::Hour))
                    .col(big_integer(FeatureFlagEvaluations::Count))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_feature_flag_evaluations_bucket")
                    .table(FeatureFlagEvaluations::Table)
                    .col(FeatureFlagEvaluations::FlagName)
                    .col(FeatureFlagEvaluations::Hour)
                    .col(FeatureFlagEvaluations::Environment)
                    .col(FeatureFlagEvaluations::Reason)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagRevision::Table)
                    .col(integer(FeatureFlagRevision::Id).primary_key())
                    .col(big_integer(FeatureFlagRevision::Revision))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(FeatureFlagRevision::Table)
                    .columns([FeatureFlagRevision::Id, FeatureFlagRevision::Revision])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FeatureFlagRevision::Table.into_iden(),
            FeatureFlagEvaluations::Table.into_iden(),
            FeatureFlagAudits::Table.into_iden(),
            FeatureFlags::Table.into_iden(),
            FeatureFlagGroups::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
