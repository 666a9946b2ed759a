//! Schema migrations for Vexil's tables. The server runs pending migrations
//! on start; `vexil migrate` runs them alone.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_tables;
mod m20261125_000002_immutable_audit;
mod m20261126_000003_evaluation_metrics;
mod m20261206_000004_typed_flags;
mod m20261206_000005_segments;
mod m20261206_000006_variant_metrics;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_tables::Migration),
            Box::new(m20261125_000002_immutable_audit::Migration),
            Box::new(m20261126_000003_evaluation_metrics::Migration),
            Box::new(m20261206_000004_typed_flags::Migration),
            Box::new(m20261206_000005_segments::Migration),
            Box::new(m20261206_000006_variant_metrics::Migration),
        ]
    }
}
