//! Segments: a table of their own, and a `subject` column on audit rows.
//! Segment changes take revisions from the same counter as flag changes
//! and are logged in the same audit table, so the change log that replicas
//! and Watch streams catch up from stays one gapless sequence. Existing
//! rows are flag changes (the column's default).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FeatureFlagSegments {
    Table,
    Name,
    Description,
    Included,
    Excluded,
    Rules,
    Revision,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum FeatureFlagAudits {
    Table,
    Subject,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FeatureFlagSegments::Table)
                    .col(string_len(FeatureFlagSegments::Name, 128).primary_key())
                    .col(text(FeatureFlagSegments::Description))
                    .col(json(FeatureFlagSegments::Included))
                    .col(json(FeatureFlagSegments::Excluded))
                    .col(json(FeatureFlagSegments::Rules))
                    .col(big_integer(FeatureFlagSegments::Revision))
                    .col(timestamp_with_time_zone(FeatureFlagSegments::CreatedAt))
                    .col(timestamp_with_time_zone(FeatureFlagSegments::UpdatedAt))
                    .col(text(FeatureFlagSegments::CreatedBy))
                    .col(text(FeatureFlagSegments::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlagAudits::Table)
                    .add_column(string_len(FeatureFlagAudits::Subject, 16).default("flag"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(FeatureFlagAudits::Table)
                    .drop_column(FeatureFlagAudits::Subject)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FeatureFlagSegments::Table).to_owned())
            .await
    }
}
