//! The `vexil` binary: parse the configuration, start logging (and trace
//! export), run, flush the traces.

use std::process::ExitCode;

use clap::Parser;
use vexil::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match vexil::telemetry::init(cli.config.log_format) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            // Logging is not set up: nowhere else to say it.
            eprintln!("vexil failed: {err}");
            return ExitCode::FAILURE;
        }
    };

    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => vexil::migrate(&cli.config).await,
        Command::Serve => serve(cli.config).await,
        Command::Token(args) => {
            vexil::dev_token(&cli.config, &args).map(|token| println!("{token}"))
        }
    };
    let code = match outcome {
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
