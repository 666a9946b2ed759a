//! The `vexil` binary: parse the command line, then serve, migrate, mint a
//! development token, probe a server's health or manage its flags
//! (`vexil-cli`).
//!
//! `serve` and `migrate` log through `tracing` (and export traces);
//! `token`, `health` and the management commands are for scripts: their answer on stdout, errors on
//! stderr, the exit code saying which.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use vexil::config::{Cli, Command, HealthArgs};

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    if let Some(refusal) = vexil::config::secret_on_command_line(&matches) {
        eprintln!("vexil: {refusal}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    match cli.into_command() {
        Command::Serve(config) => logged(&config, serve(*config.clone())).await,
        Command::Migrate(config) => logged(&config, vexil::migrate(&config)).await,
        Command::Token(args) => match vexil::dev_token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("vexil token: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Health(args) => health(&args).await,
        Command::Manage(command) => vexil_cli::run(command).await,
    }
}

/// Runs `work` with logging set up, and logs how it ended.
async fn logged(config: &vexil::Config, work: impl Future<Output = vexil::Result<()>>) -> ExitCode {
    let telemetry = match vexil::telemetry::init(config.log_format, &config.replica_name()) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            // Logging is not set up: nowhere else to say it.
            eprintln!("vexil failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match work.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "vexil failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

async fn serve(config: vexil::Config) -> vexil::Result<()> {
    let listeners = vexil::Listeners::bind(&config).await?;
    vexil::run(config, listeners, shutdown_signal()).await
}

/// Prints the server's status; exit 0 only when it is serving.
async fn health(args: &HealthArgs) -> ExitCode {
    let ca_pem = match &args.ca_file {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(err) => {
                eprintln!("vexil health: reading {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let address = args.address();
    match vexil::grpc::probe(&address, &args.service, ca_pem, args.timeout).await {
        Ok((serving, status)) => {
            println!("{status}");
            if serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("vexil health: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
