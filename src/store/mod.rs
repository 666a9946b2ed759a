//! Persistence: the only module that imports sea_orm. Every flag change
//! writes the flag row, its audit row and the next global revision in one
//! transaction.

mod convert;
mod entities;
mod metrics;
mod segments;

pub use metrics::{METRIC_ROWS_PER_WRITE, StoredHour, UnknownCount};

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectOptions,
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, IntoActiveModel, IsolationLevel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, SelectGetableTuple, Selector, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard};

use self::convert::{
    audit_from_model, change_from_row, db_error, flag_from_model, flag_to_model, from_revision,
    group_from_model, segment_from_model, snapshot,
};
use self::entities::{audit, flag, group, segment};
use crate::domain::{
    AuditAction, AuditEntry, Change, Committed, Flag, FlagName, FlagSpec, Group, Segment, Stamp,
    Subject, echo, limits,
};
use crate::error::{Error, Result};

/// How long a connection attempt or a wait for a pooled connection may take
/// before the store reports itself unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits for another writer's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Arbitrary key of the PostgreSQL advisory lock that serializes migrations
/// of replicas starting together.
const MIGRATION_LOCK_KEY: i64 = 0x7665_7869_6c00;
/// Lock and statement timeouts of write transactions on PostgreSQL.
const POSTGRES_WRITE_TIMEOUTS: &str =
    "SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '10s'";
/// How long a write waits for this replica's earlier writes before the
/// store is reported unavailable (they queue while the database is slow).
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a single read may take. The database's own timeouts do not
/// help when the connection itself is half-open (after a failover, a
/// dropped NAT entry): without this a read waits until TCP gives up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Audit rows read per query while filling a page up to its byte budget.
const AUDIT_BATCH: u64 = 16;
/// Flags per query when loading them all (startup, reloads): the raw rows
/// of 100,000 flags at once made a peak the allocator kept for good.
const LOAD_PAGE: u64 = 1_000;

trait DbResultExt<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResultExt<T> for std::result::Result<T, DbErr> {
    fn db(self) -> Result<T> {
        self.map_err(db_error)
    }
}

/// SQLite's `synchronous` setting (WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSynchronous {
    /// Sync the WAL on every commit.
    Full,
    /// Sync at checkpoints only.
    Normal,
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    /// Connections in all; a quarter (at least 2) are reserved for writes
    /// and catch-up.
    pub max_connections: u32,
    pub sqlite_synchronous: SqliteSynchronous,
}

/// The flag store on SQLite or PostgreSQL.
pub struct FlagStore {
    /// Reads that serve API calls (GetFlag, ListFlags, audit trails, Watch
    /// replays): bursts of these wait for each other, not for writes.
    db: DatabaseConnection,
    /// Writes and the cache's catch-up, on connections of their own.
    primary: DatabaseConnection,
    /// Serializes this replica's write transactions: SQLite has one writer
    /// and fails a deferred transaction that cannot upgrade its lock. Across
    /// replicas (PostgreSQL) the revision row lock does the same.
    write_lock: Mutex<()>,
}

/// Every flag and segment, and the revision they are current to.
pub struct Loaded {
    pub flags: Vec<Flag>,
    pub segments: Vec<Segment>,
    pub revision: u64,
}

/// An open write transaction holding the next global revision.
struct Write<'a> {
    txn: DatabaseTransaction,
    revision: u64,
    _serialized: MutexGuard<'a, ()>,
}

impl FlagStore {
    /// Connects to the database (`sqlite://…` or `postgres://…`).
    /// Where `url` keeps the flags, for the log: the SQLite file's path, or
    /// PostgreSQL's user, host, port and database, never a password.
    pub fn describe(url: &str) -> String {
        let Ok(parsed) = url::Url::parse(url) else {
            return "an unparsable database URL".to_owned();
        };
        if parsed.scheme() == "sqlite" {
            return match sqlite_path(url) {
                Some(path) => {
                    let path = std::path::absolute(&path).unwrap_or(path);
                    format!("SQLite file {}", path.display())
                }
                None => "SQLite in memory".to_owned(),
            };
        }
        let user = match parsed.username() {
            "" => String::new(),
            user => format!("{user}@"),
        };
        let host = parsed.host_str().unwrap_or("localhost");
        let port = parsed
            .port()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        format!("PostgreSQL {user}{host}{port}{}", parsed.path())
    }

    pub async fn connect(options: &StoreOptions) -> Result<Self> {
        create_private_sqlite_file(&options.url)?;
        let reserved = (options.max_connections / 4).max(2);
        let shared = options.max_connections.saturating_sub(reserved).max(1);
        let primary = connect_pool(options, reserved).await?;
        let db = connect_pool(options, shared).await?;
        Ok(Self {
            db,
            primary,
            write_lock: Mutex::new(()),
        })
    }

    /// Applies pending migrations. Replicas starting together on PostgreSQL
    /// take turns through an advisory lock.
    pub async fn migrate(&self) -> Result<()> {
        if self.primary.get_database_backend() != DbBackend::Postgres {
            return Migrator::up(&self.primary, None).await.db();
        }
        let lock = self.primary.begin().await.db()?;
        lock.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK_KEY.into()],
        ))
        .await
        .db()?;
        Migrator::up(&self.primary, None).await.db()?;
        lock.commit().await.db()
    }

    pub async fn close(self) {
        for pool in [self.db, self.primary] {
            match tokio::time::timeout(READ_TIMEOUT, pool.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "closing the database"),
                Err(_) => tracing::warn!("closing the database timed out"),
            }
        }
    }

    /// Every flag and segment and the revision they are current to, read
    /// in one consistent snapshot (REPEATABLE READ on PostgreSQL; a read
    /// transaction on SQLite, which in WAL mode sees one snapshot
    /// throughout). Reads a page of rows at a time and converts it before
    /// reading the next, so the raw rows of every flag are never in memory
    /// at once.
    pub async fn load_all(&self) -> Result<Loaded> {
        self.load_in_pages(LOAD_PAGE).await
    }

    async fn load_in_pages(&self, page_size: u64) -> Result<Loaded> {
        let txn = begin_snapshot(&self.primary).await?;
        let revision = read_revision(&txn).await?;
        let mut flags = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page = flag::Entity::find()
                .order_by_asc(flag::Column::Name)
                .limit(page_size);
            if let Some(last) = &after {
                page = page.filter(flag::Column::Name.gt(last.as_str()));
            }
            let models = page.all(&txn).await.db()?;
            let more = models.len() as u64 == page_size;
            after = models.last().map(|model| model.name.clone());
            for model in models {
                flags.push(flag_from_model(model)?);
            }
            if !more {
                break;
            }
        }
        let segments = segment::Entity::find()
            .all(&txn)
            .await
            .db()?
            .into_iter()
            .map(segment_from_model)
            .collect::<Result<Vec<_>>>()?;
        txn.commit().await.db()?;
        // Byte order, whatever the database's collation.
        flags.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(Loaded {
            flags,
            segments,
            revision,
        })
    }

    /// Up to `limit` committed changes after `revision`, in revision order,
    /// read from the audit log (whose entries hold each change's result):
    /// for the cache's catch-up, on the reserved connections.
    pub async fn changes_after(&self, revision: u64, limit: u64) -> Result<Vec<Committed>> {
        bounded(changes_after(&self.primary, revision, limit)).await
    }

    /// Changes after `revision` for Watch replays, on the shared
    /// connections: up to `limit` of them, stopping after the one that
    /// takes their flags past `max_bytes` (as `wire_size`). Rows are decoded
    /// as they arrive, so a history of large flags is never all in memory.
    pub async fn replay_after(
        &self,
        revision: u64,
        limit: u64,
        max_bytes: usize,
    ) -> Result<Vec<Committed>> {
        use tokio_stream::StreamExt as _;
        bounded(async {
            let mut rows = change_rows_after(revision, limit)?
                .stream(&self.db)
                .await
                .db()?;
            let mut changes = Vec::new();
            let mut bytes = 0;
            while bytes < max_bytes
                && let Some(row) = rows.next().await
            {
                let (revision, name, subject, after) = row.db()?;
                let change = change_from_row(revision, name, subject, after)?;
                bytes += change.wire_size();
                changes.push(change);
            }
            Ok(changes)
        })
        .await
    }

    /// The last assigned global revision.
    pub async fn revision(&self) -> Result<u64> {
        bounded(read_revision(&self.primary)).await
    }

    pub async fn get_flag(&self, name: &str) -> Result<Option<Flag>> {
        bounded(async {
            flag::Entity::find_by_id(name)
                .one(&self.db)
                .await
                .db()?
                .map(flag_from_model)
                .transpose()
        })
        .await
    }

    #[tracing::instrument(name = "store.create_flag", skip_all, fields(flag = %name, revision = tracing::field::Empty))]
    pub async fn create_flag(
        &self,
        name: FlagName,
        spec: FlagSpec,
        change: &Change,
    ) -> Result<Flag> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        if find_flag(&write.txn, name.as_str()).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "flag '{name}' already exists"
            )));
        }
        ensure_group_exists(&write.txn, spec.group.as_deref()).await?;
        ensure_prerequisites_exist(&write.txn, name.as_str(), &spec).await?;
        segments::ensure_flag_segments_exist(&write.txn, &spec).await?;
        let now = now();
        let flag = Flag::new(
            name,
            at_stored_precision(spec),
            Stamp {
                revision: write.revision,
                created_at: now,
                updated_at: now,
                created_by: change.actor.clone(),
                updated_by: change.actor.clone(),
            },
        );
        flag::Entity::insert(flag_to_model(&flag)?.into_active_model().reset_all())
            .exec_without_returning(&write.txn)
            .await
            .db()?;
        let audited = Audited::flag(flag.name.as_str());
        audited
            .record(&write, AuditAction::Create, change, None, Some(&flag))
            .await?;
        write.txn.commit().await.db()?;
        Ok(flag)
    }

    /// Replaces the flag's spec with `apply(current)`, if the flag exists and
    /// is at `expected_revision` (when given).
    #[tracing::instrument(name = "store.update_flag", skip_all, fields(flag = name, revision = tracing::field::Empty))]
    pub async fn update_flag(
        &self,
        name: &str,
        expected_revision: Option<u64>,
        change: &Change,
        apply: impl FnOnce(&Flag) -> Result<FlagSpec>,
    ) -> Result<Flag> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        let current = find_flag(&write.txn, name)
            .await?
            .ok_or_else(|| flag_not_found(name))?;
        check_revision(expected_revision, current.revision)?;
        let spec = apply(&current)?;
        ensure_group_exists(&write.txn, spec.group.as_deref()).await?;
        ensure_prerequisites_exist(&write.txn, name, &spec).await?;
        segments::ensure_flag_segments_exist(&write.txn, &spec).await?;
        let updated = Flag::new(
            current.name.clone(),
            at_stored_precision(spec),
            Stamp {
                revision: write.revision,
                updated_at: now(),
                updated_by: change.actor.clone(),
                ..current.stamp()
            },
        );
        flag::Entity::update(flag_to_model(&updated)?.into_active_model().reset_all())
            .exec(&write.txn)
            .await
            .db()?;
        Audited::flag(name)
            .record(
                &write,
                AuditAction::Update,
                change,
                Some(&current),
                Some(&updated),
            )
            .await?;
        write.txn.commit().await.db()?;
        Ok(updated)
    }

    /// Deletes the flag, if `check(current)` allows, and returns the
    /// deletion's revision.
    #[tracing::instrument(name = "store.delete_flag", skip_all, fields(flag = name, revision = tracing::field::Empty))]
    pub async fn delete_flag(
        &self,
        name: &str,
        expected_revision: Option<u64>,
        change: &Change,
        check: impl FnOnce(&Flag) -> Result<()>,
    ) -> Result<u64> {
        let write = self.begin_write().await?;
        tracing::Span::current().record("revision", write.revision);
        let current = find_flag(&write.txn, name)
            .await?
            .ok_or_else(|| flag_not_found(name))?;
        check_revision(expected_revision, current.revision)?;
        check(&current)?;
        flag::Entity::delete_by_id(name)
            .exec(&write.txn)
            .await
            .db()?;
        Audited::flag(name)
            .record(
                &write,
                AuditAction::Delete,
                change,
                Some(&current),
                None::<&Flag>,
            )
            .await?;
        let revision = write.revision;
        write.txn.commit().await.db()?;
        Ok(revision)
    }

    /// The flag's audit entry at `revision`, if it has one.
    pub async fn flag_change_at(&self, name: &str, revision: u64) -> Result<Option<AuditEntry>> {
        let model = audit::Entity::find()
            .filter(audit::Column::FlagName.eq(name))
            .filter(audit::Column::Subject.eq(Subject::Flag.as_str()))
            .filter(audit::Column::Revision.eq(revision as i64))
            .one(&self.db)
            .await
            .db()?;
        model.map(audit_from_model).transpose()
    }

    /// One page of a flag's audit entries, newest first, and their total.
    /// The page holds at most `limit` entries and stops before the entry
    /// that would take it past [`limits::MESSAGE_BYTES`] (it always holds
    /// one, when there is one): rows are read in small batches, so a page
    /// of large snapshots never loads more than it returns.
    pub async fn audit_trail(
        &self,
        subject: Subject,
        name: &str,
        skip: u64,
        limit: u64,
    ) -> Result<(Vec<AuditEntry>, u64)> {
        // One snapshot, so the total and the page agree.
        let txn = begin_snapshot(&self.db).await?;
        let query = audit::Entity::find()
            .filter(audit::Column::FlagName.eq(name))
            .filter(audit::Column::Subject.eq(subject.as_str()));
        let total = query.clone().count(&txn).await.db()?;
        let mut entries = Vec::new();
        let mut bytes = 0;
        'page: while (entries.len() as u64) < limit {
            let offset = skip + entries.len() as u64;
            let batch = query
                .clone()
                .order_by_desc(audit::Column::Revision)
                .offset(offset)
                .limit(AUDIT_BATCH.min(limit - entries.len() as u64))
                .all(&txn)
                .await
                .db()?;
            let complete = (batch.len() as u64) < AUDIT_BATCH;
            for model in batch {
                let entry = audit_from_model(model)?;
                bytes += entry.wire_size();
                if bytes > limits::MESSAGE_BYTES && !entries.is_empty() {
                    break 'page;
                }
                entries.push(entry);
            }
            if complete {
                break;
            }
        }
        txn.commit().await.db()?;
        Ok((entries, total))
    }

    #[tracing::instrument(name = "store.create_group", skip_all, fields(group = %name))]
    pub async fn create_group(&self, name: String, description: String) -> Result<Group> {
        let write = self.lock_writes().await?;
        let model = group::Model {
            name,
            description,
            created_at: now(),
        };
        let inserted = group::Entity::insert(model.clone().into_active_model().reset_all())
            .on_conflict(
                OnConflict::column(group::Column::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&write.txn)
            .await
            .db()?;
        if inserted == 0 {
            return Err(Error::AlreadyExists(format!(
                "group '{}' already exists",
                model.name
            )));
        }
        write.txn.commit().await.db()?;
        Ok(group_from_model(model))
    }

    /// Every group, ordered by name (byte order, as everywhere).
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let mut groups: Vec<Group> =
            bounded(async { group::Entity::find().all(&self.db).await.db() })
                .await?
                .into_iter()
                .map(group_from_model)
                .collect();
        groups.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    #[tracing::instrument(name = "store.delete_group", skip_all, fields(group = name))]
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        let write = self.lock_writes().await?;
        let members = flag::Entity::find()
            .filter(flag::Column::GroupName.eq(name))
            .count(&write.txn)
            .await
            .db()?;
        if members > 0 {
            return Err(Error::FailedPrecondition(format!(
                "group '{name}' still has {members} flag(s); move or delete them first"
            )));
        }
        let deleted = group::Entity::delete_by_id(name)
            .exec(&write.txn)
            .await
            .db()?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound(format!("group '{name}' not found")));
        }
        write.txn.commit().await.db()
    }

    /// Opens a write transaction and takes the next global revision. The
    /// counter row stays locked until commit, so revisions become visible in
    /// the order they are assigned, even across replicas.
    async fn begin_write(&self) -> Result<Write<'_>> {
        self.open_write("UPDATE feature_flag_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision")
            .await
    }

    /// Opens a write transaction that serializes with flag writes (it locks
    /// the counter row) without taking a revision: for group changes.
    async fn lock_writes(&self) -> Result<Write<'_>> {
        self.open_write(
            "UPDATE feature_flag_revision SET revision = revision WHERE id = 1 RETURNING revision",
        )
        .await
    }

    async fn open_write(&self, counter_sql: &str) -> Result<Write<'_>> {
        let serialized = tokio::time::timeout(WRITE_QUEUE_TIMEOUT, self.write_lock.lock())
            .await
            .map_err(|_| {
                Error::Unavailable("the flag store is too slow; writes are queued".into())
            })?;
        // SQLite: take the write lock up front (IMMEDIATE), so the
        // transaction never fails to upgrade a read lock halfway through.
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let txn = self.primary.begin_with_options(options).await.db()?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // A writer that stalls while holding the revision row (a replica
            // cut off mid-transaction) must not stall every other writer
            // until TCP gives up: waiting writers fail as UNAVAILABLE.
            txn.execute_unprepared(POSTGRES_WRITE_TIMEOUTS).await.db()?;
        }
        let row = txn
            .query_one_raw(Statement::from_string(
                txn.get_database_backend(),
                counter_sql,
            ))
            .await
            .db()?
            .ok_or_else(|| Error::Internal("the revision counter row is missing".into()))?;
        let revision: i64 = row.try_get("", "revision").db()?;
        Ok(Write {
            txn,
            revision: u64::try_from(revision).unwrap_or_default(),
            _serialized: serialized,
        })
    }
}

/// A change as stored: revision, name, subject, the state after it.
type ChangeRow = (i64, String, String, Option<serde_json::Value>);

/// The query for up to `limit` changes after `revision`, in revision
/// order: only what a change needs, not the `before` snapshots.
fn change_rows_after(revision: u64, limit: u64) -> Result<Selector<SelectGetableTuple<ChangeRow>>> {
    Ok(audit::Entity::find()
        .select_only()
        .columns([
            audit::Column::Revision,
            audit::Column::FlagName,
            audit::Column::Subject,
            audit::Column::After,
        ])
        .filter(audit::Column::Revision.gt(from_revision(revision)?))
        .order_by_asc(audit::Column::Revision)
        .limit(limit)
        .into_tuple::<ChangeRow>())
}

/// Up to `limit` changes after `revision`, in revision order.
async fn changes_after(
    db: &DatabaseConnection,
    revision: u64,
    limit: u64,
) -> Result<Vec<Committed>> {
    change_rows_after(revision, limit)?
        .all(db)
        .await
        .db()?
        .into_iter()
        .map(|(revision, name, subject, after)| change_from_row(revision, name, subject, after))
        .collect()
}

/// Bounds a read (see [`READ_TIMEOUT`]). Only for calls outside a
/// transaction: a transaction dropped mid-query is not safe to abandon.
async fn bounded<T>(read: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(timeout = ?READ_TIMEOUT, "database read timed out");
            Err(Error::Unavailable(
                "the flag store did not answer in time".into(),
            ))
        })
}

/// The file of a `sqlite:` URL (`None` for other URLs and in-memory ones).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// Creates a missing SQLite file readable and writable by its owner only
/// (0600), when the URL lets SQLite create it (`mode=rwc`): it holds every
/// flag, list and audit entry. SQLite gives the `-wal` and `-shm` files
/// the database file's permissions. An existing file keeps its own, with a
/// warning when others may read it.
fn create_private_sqlite_file(url: &str) -> Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    if !url.contains("mode=rwc") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        file = %path.display(),
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the SQLite file is readable by others; chmod 600 it"
                    );
                }
            }
            Err(err) => {
                return Err(Error::Unavailable(format!(
                    "creating the SQLite file {}: {err}",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

async fn connect_pool(options: &StoreOptions, connections: u32) -> Result<DatabaseConnection> {
    let synchronous = match options.sqlite_synchronous {
        SqliteSynchronous::Full => sea_orm::sqlx::sqlite::SqliteSynchronous::Full,
        SqliteSynchronous::Normal => sea_orm::sqlx::sqlite::SqliteSynchronous::Normal,
    };
    let mut connect = ConnectOptions::new(&options.url);
    connect
        .max_connections(connections)
        .min_connections(0)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    Database::connect(connect).await.db()
}

/// A read transaction that sees one snapshot throughout (REPEATABLE READ
/// on PostgreSQL; any read transaction in SQLite's WAL mode).
async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    let isolation = match db.get_database_backend() {
        DbBackend::Postgres => Some(IsolationLevel::RepeatableRead),
        _ => None,
    };
    db.begin_with_config(isolation, None).await.db()
}

/// The current time at the precision both backends store (microseconds),
/// so what a write returns equals what a later read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn at_stored_precision(mut spec: FlagSpec) -> FlagSpec {
    spec.starts_at = spec.starts_at.map(|at| at.trunc_subsecs(6));
    spec.expires_at = spec.expires_at.map(|at| at.trunc_subsecs(6));
    spec
}

/// Flags ordered by name in byte order, the same on every backend (a
/// database's collation may order names differently) and in the cache.
async fn read_revision(db: &impl ConnectionTrait) -> Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT revision FROM feature_flag_revision WHERE id = 1",
        ))
        .await
        .db()?
        .ok_or_else(|| Error::Internal("the revision counter row is missing".into()))?;
    let revision: i64 = row.try_get("", "revision").db()?;
    Ok(u64::try_from(revision).unwrap_or_default())
}

async fn find_flag(txn: &DatabaseTransaction, name: &str) -> Result<Option<Flag>> {
    flag::Entity::find_by_id(name)
        .one(txn)
        .await
        .db()?
        .map(flag_from_model)
        .transpose()
}

fn flag_not_found(name: &str) -> Error {
    Error::NotFound(format!("flag '{name}' not found"))
}

fn check_revision(expected: Option<u64>, actual: u64) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::Conflict { expected, actual }),
        _ => Ok(()),
    }
}

/// A flag's prerequisites must exist (read in the write's transaction, so
/// no concurrent delete slips between), not be the flag itself, have no
/// prerequisites of their own (one level deep), and have the variants
/// named.
async fn ensure_prerequisites_exist(
    txn: &DatabaseTransaction,
    name: &str,
    spec: &FlagSpec,
) -> Result<()> {
    for (i, prerequisite) in spec.prerequisites.iter().enumerate() {
        let field = format!("flag.prerequisites[{i}].flag");
        if prerequisite.flag == name {
            return Err(Error::invalid(
                field,
                "a flag cannot be its own prerequisite",
            ));
        }
        let Some(required) = find_flag(txn, &prerequisite.flag).await? else {
            return Err(Error::invalid(
                field,
                format!("no flag named {:?}", echo(&prerequisite.flag)),
            ));
        };
        if !required.spec().prerequisites.is_empty() {
            return Err(Error::invalid(
                field,
                format!(
                    "{:?} has prerequisites itself; prerequisites are one level deep",
                    echo(&prerequisite.flag)
                ),
            ));
        }
        for variant in &prerequisite.variants {
            if required.variant_index(variant).is_none() {
                return Err(Error::invalid(
                    format!("flag.prerequisites[{i}].variants"),
                    format!(
                        "{:?} is not a variant of {:?}",
                        echo(variant),
                        echo(&prerequisite.flag)
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn ensure_group_exists(txn: &DatabaseTransaction, group: Option<&str>) -> Result<()> {
    let Some(group) = group else {
        return Ok(());
    };
    let found = group::Entity::find_by_id(group).one(txn).await.db()?;
    if found.is_none() {
        return Err(Error::FailedPrecondition(format!(
            "group '{group}' does not exist; create it first"
        )));
    }
    Ok(())
}

/// What an audit entry is about.
struct Audited<'a> {
    subject: Subject,
    name: &'a str,
}

impl<'a> Audited<'a> {
    fn flag(name: &'a str) -> Self {
        Self {
            subject: Subject::Flag,
            name,
        }
    }

    fn segment(name: &'a str) -> Self {
        Self {
            subject: Subject::Segment,
            name,
        }
    }

    /// Writes the audit row of the change `write` makes, with the states
    /// before and after it.
    async fn record<T: serde::Serialize>(
        &self,
        write: &Write<'_>,
        action: AuditAction,
        change: &Change,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Result<()> {
        let entry = audit::ActiveModel {
            id: NotSet,
            flag_name: Set(self.name.to_owned()),
            subject: Set(self.subject.as_str().to_owned()),
            action: Set(action.as_str().to_string()),
            actor: Set(change.actor.clone()),
            reason: Set(change.reason.clone()),
            before: Set(snapshot(before)?),
            after: Set(snapshot(after)?),
            revision: Set(from_revision(write.revision)?),
            created_at: Set(now()),
        };
        audit::Entity::insert(entry)
            .exec_without_returning(&write.txn)
            .await
            .db()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous_of(setting: SqliteSynchronous) -> i64 {
        let path = std::env::temp_dir().join(format!(
            "vexil-store-{}-{:?}.db",
            std::process::id(),
            setting
        ));
        let store = FlagStore::connect(&StoreOptions {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            max_connections: 3,
            sqlite_synchronous: setting,
        })
        .await
        .unwrap();
        let mut values = Vec::new();
        for pool in [&store.db, &store.primary] {
            let row = pool
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "PRAGMA synchronous",
                ))
                .await
                .unwrap()
                .unwrap();
            values.push(row.try_get_by_index::<i64>(0).unwrap());
        }
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
        }
        assert_eq!(values[0], values[1], "both pools alike");
        values[0]
    }

    /// Loading in pages finds every flag, whatever the page size, in byte
    /// order.
    #[tokio::test]
    async fn load_all_reads_every_page() {
        let path =
            std::env::temp_dir().join(format!("vexil-store-{}-pages.db", std::process::id()));
        let store = FlagStore::connect(&StoreOptions {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            max_connections: 3,
            sqlite_synchronous: SqliteSynchronous::Normal,
        })
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let change = Change {
            actor: "test".into(),
            reason: "pages".into(),
        };
        let mut names: Vec<String> = (0..10).map(|i| format!("flag.{i}")).collect();
        names.push("Flag.upper".into());
        for name in &names {
            let name = FlagName::parse("name", name).unwrap();
            store
                .create_flag(name, FlagSpec::default(), &change)
                .await
                .unwrap();
        }
        names.sort();
        for page_size in [1, 3, 11, 1_000] {
            let loaded = store.load_in_pages(page_size).await.unwrap();
            let flags: Vec<&str> = loaded.flags.iter().map(|flag| flag.name.as_str()).collect();
            assert_eq!(flags, names, "pages of {page_size}");
            assert_eq!(loaded.revision, 11);
        }
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
        }
    }

    /// Acknowledged changes survive power loss by default (FULL is 2).
    #[tokio::test]
    async fn sqlite_syncs_every_commit_by_default() {
        assert_eq!(synchronous_of(SqliteSynchronous::Full).await, 2);
        assert_eq!(synchronous_of(SqliteSynchronous::Normal).await, 1);
    }
}
