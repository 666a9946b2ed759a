//! Gating a request handler with a flag, the way the reference's
//! `@feature_flag("new_dashboard", fallback=old_dashboard)` does.
//!
//! Start Vexil (`cargo run --release` in the repository), create the flag
//! (see the README's walkthrough), then:
//!
//! ```sh
//! VEXIL_ENDPOINT=http://127.0.0.1:50051 cargo run -p vexil-client --example gate -- user-42
//! ```

use std::time::Duration;

use vexil_client::{Client, feature_flag};

/// The old page, for users the flag is off for.
async fn old_dashboard(user_id: &str) -> String {
    format!("classic dashboard for {user_id}")
}

/// Runs only when `new_dashboard` is on for the user (in the client's
/// default environment); otherwise `old_dashboard` runs with the same
/// arguments.
#[feature_flag("new_dashboard", user = user_id, fallback = old_dashboard)]
async fn dashboard(user_id: &str) -> String {
    format!("new dashboard for {user_id}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("VEXIL_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let user = std::env::args().nth(1).unwrap_or_else(|| "user-42".into());
    let client = Client::builder()
        .endpoints([endpoint])
        .default_environment("production")
        .ready_timeout(Duration::from_secs(5))
        .build()
        .connect()
        .await?;
    let _ = vexil_client::set_default(client.clone());

    println!("{}", dashboard(&user).await);
    let mut changes = client.changes();
    println!("watching for changes (Ctrl-C to stop)…");
    while let Ok(event) = changes.recv().await {
        println!("{event:?} -> {}", dashboard(&user).await);
    }
    Ok(())
}
