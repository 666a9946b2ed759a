//! PostgreSQL: the audit table refuses UPDATE and DELETE, whoever asks
//! (short of a superuser disabling triggers, e.g. with
//! `session_replication_role = replica`, which is how a retention job
//! would prune). With the service's role granted only INSERT and SELECT on
//! the table, not even a compromised service can rewrite history (see the
//! README's Security section). SQLite: nothing (anyone who can write the
//! file can change it; documented).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE FUNCTION feature_flag_audits_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER feature_flag_audits_immutable
    BEFORE UPDATE OR DELETE ON feature_flag_audits
    FOR EACH ROW EXECUTE FUNCTION feature_flag_audits_immutable();
CREATE TRIGGER feature_flag_audits_no_truncate
    BEFORE TRUNCATE ON feature_flag_audits
    FOR EACH STATEMENT EXECUTE FUNCTION feature_flag_audits_immutable();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS feature_flag_audits_no_truncate ON feature_flag_audits;
DROP TRIGGER IF EXISTS feature_flag_audits_immutable ON feature_flag_audits;
DROP FUNCTION IF EXISTS feature_flag_audits_immutable();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
