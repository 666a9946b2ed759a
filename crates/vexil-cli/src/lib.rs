//! The `vexil` binary's management commands (`flags`, `segments`, `kill`, `unkill`,
//! `rollout`, `audit`, `restore`, `explain`, `metrics`, `watch`, `export`,
//! `import`): a client of a server's gRPC API, so roles, scopes,
//! rate limits and the audit trail apply as to any other caller.
//!
//! Answers go to stdout (a table, or JSON with `--output json`), errors to
//! stderr, and the exit code says which kind of failure it was
//! ([`Failure`]), so scripts can branch on it.

mod connection;
mod document;
mod edit;
mod export;
mod failure;
mod flagd;
mod flags;
mod import;
mod insight;
mod output;
mod segments;
mod state;
mod watch;

use std::process::ExitCode;

pub use connection::Connection;
pub use document::{Document, SCHEMA};
pub use export::ExportArgs;
pub use failure::{Failure, Kind};
pub use flags::{AuditArgs, FlagsCommand, KillArgs, RestoreArgs, RolloutArgs};
pub use import::ImportArgs;
pub use insight::{ExplainArgs, MetricsArgs};
pub use output::Output;
pub use segments::SegmentsCommand;
pub use watch::WatchArgs;

/// The management commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Manage {
    /// List, show, create, update and delete flags.
    #[command(subcommand)]
    Flags(FlagsCommand),
    /// List, show and delete segments.
    #[command(subcommand)]
    Segments(SegmentsCommand),
    /// Turn a flag off for everyone (its kill switch), with a reason.
    Kill(KillArgs),
    /// Turn a killed flag back on, with a reason.
    Unkill(KillArgs),
    /// Set a boolean flag's rollout percentage, with a reason.
    Rollout(RolloutArgs),
    /// A flag's audit trail, newest first: who, when, why, what changed.
    Audit(AuditArgs),
    /// Put a flag back as it was after one of its changes (a revision from
    /// `vexil audit`), as a new audited change; a deleted flag is created
    /// again.
    Restore(RestoreArgs),
    /// Why a user gets their answer: each rule checked, each clause with
    /// the value it saw (ExplainEvaluation).
    Explain(ExplainArgs),
    /// A flag's hourly evaluations: how many, on and off, distinct users,
    /// by variant.
    Metrics(MetricsArgs),
    /// Print flag and segment changes as they happen (Watch), until
    /// stopped.
    Watch(WatchArgs),
    /// Every flag and segment (or some) as one JSON document, without
    /// server-managed fields: the same state exports byte for byte alike.
    Export(ExportArgs),
    /// Make the server match a document: prints the plan, then applies it
    /// (one audited change per flag; deletions only with --prune).
    Import(ImportArgs),
}

/// Runs `command`, printing its answer or its failure, and returns the
/// exit code.
pub async fn run(command: Manage) -> ExitCode {
    let outcome = match command {
        Manage::Flags(command) => flags::flags(command).await,
        Manage::Segments(command) => segments::segments(command).await,
        Manage::Kill(args) => flags::switch(args, false).await,
        Manage::Unkill(args) => flags::switch(args, true).await,
        Manage::Rollout(args) => flags::rollout(args).await,
        Manage::Audit(args) => flags::audit(args).await,
        Manage::Restore(args) => flags::restore(args).await,
        Manage::Explain(args) => insight::explain(args).await,
        Manage::Metrics(args) => insight::metrics(args).await,
        Manage::Watch(args) => watch::watch(args).await,
        Manage::Export(args) => export::export(args).await,
        Manage::Import(args) => import::import(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("vexil: {failure}");
            failure.exit_code()
        }
    }
}
