//! Configuration: one struct, every option a command-line flag with an
//! environment-variable fallback and a default. Nothing else reads the
//! environment. Tests build a [`Config`] directly.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::store::StoreOptions;

/// Vexil: feature-flag evaluation service over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(
        long,
        global = true,
        env = "VEXIL_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://FILE?mode=rwc` (embedded, created if missing)
    /// or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://vexil.db?mode=rwc"
    )]
    pub database_url: String,

    /// Database connections this replica may open. A quarter of them (at
    /// least 2) are kept for writes and cache catch-up, so a burst of reads
    /// (ListFlags, audit trails, Watch replays) cannot starve them.
    #[arg(long, global = true, env = "VEXIL_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(3..=1000))]
    pub database_max_connections: u32,

    /// SQLite only: `full` (the default) makes every acknowledged change
    /// durable across power loss and OS crashes; `normal` is faster but may
    /// lose the last changes then, and a later change would reuse their
    /// revision (Watch clients that saw them would diverge).
    #[arg(long, global = true, env = "VEXIL_SQLITE_SYNCHRONOUS", value_enum,
          default_value_t = SqliteSynchronous::Full)]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Seconds between catch-ups of the hot cache from the database change
    /// log, whatever the bus delivers (the safety net for lost messages).
    #[arg(
        long = "cache-ttl",
        global = true,
        env = "FF_CACHE_TTL",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub cache_ttl_secs: u64,

    /// Redis URL (`redis://HOST:PORT/DB`) for propagating changes across
    /// replicas. Without it, changes propagate in process (one replica).
    #[arg(long, global = true, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Redis connections for publishing changes.
    #[arg(long, global = true, env = "REDIS_MAX_CONNECTIONS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub redis_max_connections: u32,

    /// Redis pub/sub channel that carries change announcements. Replicas
    /// sharing a database must share it; nothing else should publish on it.
    #[arg(
        long,
        global = true,
        env = "VEXIL_REDIS_CHANNEL",
        default_value = "ff:changes"
    )]
    pub redis_channel: String,

    /// Events a Watch subscriber may have waiting before it is cut off.
    #[arg(long, global = true, env = "VEXIL_WATCH_BUFFER", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watch_buffer: u32,

    /// Recent changes kept in memory, so Watch streams that resume or fall
    /// behind are served without the database (also bounded to 64 MiB of
    /// flags). A stream further behind replays from the database.
    #[arg(long, global = true, env = "VEXIL_WATCH_FEED", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watch_feed: u32,

    /// Milliseconds between Watch heartbeats on an idle stream.
    #[arg(long, global = true, env = "VEXIL_WATCH_HEARTBEAT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub watch_heartbeat_ms: u64,
}

/// SQLite's `synchronous` setting (WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSynchronous {
    /// Sync the WAL on every commit.
    Full,
    /// Sync at checkpoints only.
    Normal,
}

impl Config {
    /// A configuration with every default, serving the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: database_url.into(),
            database_max_connections: 10,
            sqlite_synchronous: SqliteSynchronous::Full,
            cache_ttl_secs: 60,
            redis_url: None,
            redis_max_connections: 50,
            redis_channel: "ff:changes".into(),
            watch_buffer: 1024,
            watch_feed: 4096,
            watch_heartbeat_ms: 15_000,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            sqlite_synchronous: self.sqlite_synchronous,
        }
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn watch_heartbeat(&self) -> Duration {
        Duration::from_millis(self.watch_heartbeat_ms)
    }
}
