//! Configuration: one struct, every option a command-line flag with an
//! environment-variable fallback and a default. Nothing else reads the
//! environment. Tests build a [`Config`] directly.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    #[arg(long, env = "VEXIL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://FILE?mode=rwc` (embedded, created if missing)
    /// or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://vexil.db?mode=rwc"
    )]
    pub database_url: String,

    /// Seconds between full reloads of the hot cache from the database.
    #[arg(
        long = "cache-ttl",
        env = "FF_CACHE_TTL",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub cache_ttl_secs: u64,
}

impl Config {
    /// A configuration with every default, serving the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: database_url.into(),
            cache_ttl_secs: 60,
        }
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
}
