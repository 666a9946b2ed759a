//! The `vexil` binary's management commands (`flags`, `kill`, `unkill`,
//! `rollout`, `audit`): a client of a server's gRPC API, so roles, scopes,
//! rate limits and the audit trail apply as to any other caller.
//!
//! Answers go to stdout (a table, or JSON with `--output json`), errors to
//! stderr, and the exit code says which kind of failure it was
//! ([`Failure`]), so scripts can branch on it.

mod connection;
mod failure;
mod flags;
mod output;

use std::process::ExitCode;

pub use connection::Connection;
pub use failure::{Failure, Kind};
pub use flags::{AuditArgs, FlagsCommand, KillArgs, RolloutArgs};
pub use output::Output;

/// The management commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Manage {
    /// List, show and delete flags.
    #[command(subcommand)]
    Flags(FlagsCommand),
    /// Turn a flag off for everyone (its kill switch), with a reason.
    Kill(KillArgs),
    /// Turn a killed flag back on, with a reason.
    Unkill(KillArgs),
    /// Set a boolean flag's rollout percentage, with a reason.
    Rollout(RolloutArgs),
    /// A flag's audit trail, newest first: who, when, why, what changed.
    Audit(AuditArgs),
}

/// Runs `command`, printing its answer or its failure, and returns the
/// exit code.
pub async fn run(command: Manage) -> ExitCode {
    let outcome = match command {
        Manage::Flags(command) => flags::flags(command).await,
        Manage::Kill(args) => flags::switch(args, false).await,
        Manage::Unkill(args) => flags::switch(args, true).await,
        Manage::Rollout(args) => flags::rollout(args).await,
        Manage::Audit(args) => flags::audit(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("vexil: {failure}");
            failure.exit_code()
        }
    }
}
