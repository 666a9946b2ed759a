//! Secrets never reach the logs: the JWT secret, bearer tokens (valid or
//! not) and the database and Redis passwords are canaries; the server runs
//! with every log line captured at debug level while it refuses tokens,
//! loses its database and cannot reach Redis; then the capture is searched.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Request;
use vexil::grpc::pb;

use crate::common::proxy::Proxy;
use crate::common::{Backend, TestApp, TestDatabase, eventually};

/// Every log line of this test process from the moment the capture starts.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const JWT_SECRET: &str = "canary-jwt-secret-7f3a9c1e5b2d4f6a8c0e";
const DB_PASSWORD: &str = "canary-db-password-91be";
const REDIS_PASSWORD: &str = "canary-redis-password-4ad2";

fn token(sub: &str, roles: &[&str], secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "roles": roles, "exp": jsonwebtoken::get_current_timestamp() + 600}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn bearer<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_postgres() {
    let logs = captured();
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    // PostgreSQL here trusts local connections: the password is accepted
    // and ignored, but it is in the URL the service holds.
    let proxy = Proxy::start(&db.url).await;
    let url = proxy
        .route(&db.url)
        .replacen("postgres@", &format!("postgres:{DB_PASSWORD}@"), 1);
    assert!(url.contains(DB_PASSWORD), "{url}");
    let app = TestApp::start_with(vexil::Config {
        signing: vexil::config::Signing {
            jwt_secret: Some(vexil::config::Secret(JWT_SECRET.into())),
            ..Default::default()
        },
        // Nothing listens on port 1: the bus keeps failing to connect.
        redis_url: Some(format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1")),
        ..crate::common::config(&url)
    })
    .await;

    let admin = token("root", &["admin"], JWT_SECRET);
    let reader = token("rita", &["reader"], JWT_SECRET);
    let forged = token(
        "mallory",
        &["admin"],
        "forged-secret-of-at-least-32-bytes-000",
    );
    let mut flags = app.flags.clone();
    flags
        .create_flag(bearer(
            &admin,
            pb::CreateFlagRequest {
                flag: Some(pb::Flag {
                    name: "quiet".into(),
                    ..pb::Flag::default()
                }),
                reason: String::new(),
            },
        ))
        .await
        .expect("create");
    for token in [&reader, &forged, &"not.a.jwt".to_string()] {
        let refused = flags
            .delete_flag(bearer(
                token,
                pb::DeleteFlagRequest {
                    name: "quiet".into(),
                    reason: "no".into(),
                    expected_revision: None,
                },
            ))
            .await;
        assert!(refused.is_err());
    }
    proxy.sever();
    let _ = flags
        .get_flag(bearer(
            &admin,
            pb::GetFlagRequest {
                name: "quiet".into(),
            },
        ))
        .await;
    proxy.restore();
    eventually(Duration::from_secs(30), "the store is back", async || {
        flags
            .get_flag(bearer(
                &admin,
                pb::GetFlagRequest {
                    name: "quiet".into(),
                },
            ))
            .await
            .is_ok()
    })
    .await;
    app.stop().await;
    drop(proxy);
    db.remove().await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        text.contains("refused"),
        "the capture works: refusals are logged"
    );
    assert!(
        text.contains("database"),
        "the capture works: the outage is logged"
    );
    for (what, secret) in [
        ("the JWT secret", JWT_SECRET),
        ("the database password", DB_PASSWORD),
        ("the Redis password", REDIS_PASSWORD),
        ("an admin token", admin.as_str()),
        ("a reader token", reader.as_str()),
        ("a forged token", forged.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
    // Nor any token's signature on its own.
    for token in [&admin, &reader, &forged] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(
            !text.contains(signature),
            "a token signature appears in the logs"
        );
    }
}
