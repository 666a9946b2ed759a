//! Authentication and authorization against the real server: the token
//! matrix (each refusal with its exact code and nothing changed), roles,
//! environment scopes, the audit actor, public keys and JWKS rotation,
//! evaluation that requires a token, Watch ending when its token expires,
//! the loopback default, and per-caller rate limits.

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Request};
use vexil::grpc::pb::{self, flag_service_client::FlagServiceClient};

use crate::common::{Backend, TestApp, TestDatabase, eventually, mask, read_snapshot};

const SECRET: &str = "test-secret-of-at-least-32-bytes-0123456789";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "vexil-test";

fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/keys")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a valid token for `sub` with `roles`, editable before signing.
pub(crate) fn claims(sub: &str, roles: &[&str]) -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "sub": sub,
        "roles": roles,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    }) else {
        unreachable!()
    };
    map
}

fn hs256(claims: &serde_json::Map<String, Value>, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

pub(crate) fn signed(claims: &serde_json::Map<String, Value>) -> String {
    hs256(claims, SECRET.as_bytes())
}

fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

pub(crate) fn auth_config(database_url: &str) -> vexil::Config {
    vexil::Config {
        signing: vexil::config::Signing {
            jwt_secret: Some(vexil::config::Secret(SECRET.into())),
            jwt_issuer: Some(ISSUER.into()),
            jwt_audience: Some(AUDIENCE.into()),
            ..Default::default()
        },
        jwt_leeway_secs: 0,
        ..crate::common::config(database_url)
    }
}

fn update(name: &str, percentage: f64) -> pb::UpdateFlagRequest {
    pb::UpdateFlagRequest {
        flag: Some(pb::Flag {
            name: name.into(),
            percentage,
            ..pb::Flag::default()
        }),
        update_mask: mask(&["percentage"]),
        reason: "auth test".into(),
        expected_revision: None,
    }
}

fn flag_in(name: &str, environments: &[&str]) -> pb::CreateFlagRequest {
    pb::CreateFlagRequest {
        flag: Some(pb::Flag {
            name: name.into(),
            enabled: true,
            environments: environments.iter().map(|e| e.to_string()).collect(),
            ..pb::Flag::default()
        }),
        reason: String::new(),
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(outcome: Result<T, tonic::Status>, code: Code, case: &str) {
    let status = outcome.expect_err(case);
    assert_eq!(status.code(), code, "{case}: {status:?}");
    assert!(
        !status.message().contains(SECRET),
        "{case}: the message leaks the secret"
    );
}

crate::backend_tests!(token_matrix_roles_scopes_and_actor);

async fn token_matrix_roles_scopes_and_actor(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(auth_config(&db.url)).await;
    let mut flags = app.flags.clone();
    let admin = signed(&claims("root", &["admin"]));
    flags
        .create_flag(with_token(&admin, flag_in("guarded", &["prod"])))
        .await
        .expect("admin creates");
    flags
        .create_flag(with_token(&admin, flag_in("staged", &["staging"])))
        .await
        .expect("admin creates");

    // Every bad credential: UNAUTHENTICATED, nothing written.
    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "wrong signature",
            Some(hs256(
                &claims("mallory", &["admin"]),
                b"another-secret-of-at-least-32-bytes-xx",
            )),
        ),
    ];
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        engine.encode(br#"{"alg":"none","typ":"JWT"}"#),
        engine.encode(Value::Object(claims("mallory", &["admin"])).to_string())
    );
    cases.push(("alg none", Some(unsigned)));
    let edited = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = claims("mallory", &["admin"]);
        edit(&mut c);
        Some(signed(&c))
    };
    cases.push((
        "expired",
        edited(&|c| {
            c.insert("exp".into(), (now() - 60).into());
        }),
    ));
    cases.push((
        "not yet valid",
        edited(&|c| {
            c.insert("nbf".into(), (now() + 3600).into());
        }),
    ));
    cases.push((
        "wrong audience",
        edited(&|c| {
            c.insert("aud".into(), "someone-else".into());
        }),
    ));
    cases.push((
        "wrong issuer",
        edited(&|c| {
            c.insert("iss".into(), "https://evil.test".into());
        }),
    ));
    cases.push((
        "missing exp",
        edited(&|c| {
            c.remove("exp");
        }),
    ));
    cases.push((
        "null environment scope",
        edited(&|c| {
            c.insert("environments".into(), Value::Null);
        }),
    ));
    cases.push((
        "missing sub",
        edited(&|c| {
            c.remove("sub");
        }),
    ));
    for (case, token) in &cases {
        let request = match token {
            Some(token) => with_token(token, update("guarded", 99.0)),
            None => Request::new(update("guarded", 99.0)),
        };
        refused(
            flags.update_flag(request).await,
            Code::Unauthenticated,
            case,
        );
        let read = match token {
            Some(token) => with_token(
                token,
                pb::GetAuditTrailRequest {
                    flag_name: "guarded".into(),
                    skip: 0,
                    limit: 10,
                    segment_name: String::new(),
                },
            ),
            None => Request::new(pb::GetAuditTrailRequest {
                flag_name: "guarded".into(),
                skip: 0,
                limit: 10,
                segment_name: String::new(),
            }),
        };
        refused(
            flags.get_audit_trail(read).await,
            Code::Unauthenticated,
            case,
        );
    }

    // Valid tokens without the role or the scope: PERMISSION_DENIED.
    let reader = signed(&claims("rita", &["reader"]));
    let editor = signed(&claims("eddie", &["editor"]));
    let mut scoped_claims = claims("stella", &["editor"]);
    scoped_claims.insert("environments".into(), json!(["staging"]));
    let scoped = signed(&scoped_claims);
    refused(
        flags
            .update_flag(with_token(&reader, update("guarded", 1.0)))
            .await,
        Code::PermissionDenied,
        "reader writes",
    );
    refused(
        flags
            .create_group(with_token(
                &editor,
                pb::CreateGroupRequest {
                    group: Some(pb::Group {
                        name: "g".into(),
                        ..pb::Group::default()
                    }),
                },
            ))
            .await,
        Code::PermissionDenied,
        "editor creates a group",
    );
    refused(
        flags
            .update_flag(with_token(&scoped, update("guarded", 1.0)))
            .await,
        Code::PermissionDenied,
        "scoped token on another environment",
    );
    refused(
        flags
            .create_flag(with_token(&scoped, flag_in("everywhere", &[])))
            .await,
        Code::PermissionDenied,
        "scoped token creates a flag on every environment",
    );
    let mut widen = update("staged", 1.0);
    widen.flag.as_mut().expect("flag").environment_overrides = [("prod".to_string(), true)].into();
    widen.update_mask = mask(&["environment_overrides"]);
    refused(
        flags.update_flag(with_token(&scoped, widen)).await,
        Code::PermissionDenied,
        "scoped token widens a flag to another environment",
    );

    // Nothing changed by any refusal.
    let trail = flags
        .get_audit_trail(with_token(
            &reader,
            pb::GetAuditTrailRequest {
                flag_name: "guarded".into(),
                skip: 0,
                limit: 10,
                segment_name: String::new(),
            },
        ))
        .await
        .expect("reader reads the audit trail")
        .into_inner();
    assert_eq!(trail.total, 1);

    // Allowed: reader reads, scoped editor within scope, admin everything.
    flags
        .get_flag(with_token(
            &reader,
            pb::GetFlagRequest {
                name: "guarded".into(),
            },
        ))
        .await
        .expect("reader reads");
    let mut impostor = with_token(&scoped, update("staged", 25.0));
    impostor
        .metadata_mut()
        .insert("x-actor", "someone-else".parse().expect("ascii"));
    let staged = flags
        .update_flag(impostor)
        .await
        .expect("scoped editor within its scope")
        .into_inner();
    assert_eq!(
        staged.updated_by, "stella",
        "the actor is the token's subject"
    );
    flags
        .update_flag(with_token(&admin, update("guarded", 50.0)))
        .await
        .expect("admin writes");
    flags
        .create_group(with_token(
            &admin,
            pb::CreateGroupRequest {
                group: Some(pb::Group {
                    name: "admins-only".into(),
                    ..pb::Group::default()
                }),
            },
        ))
        .await
        .expect("admin creates groups");
    let trail = flags
        .get_audit_trail(with_token(
            &admin,
            pb::GetAuditTrailRequest {
                flag_name: "staged".into(),
                skip: 0,
                limit: 10,
                segment_name: String::new(),
            },
        ))
        .await
        .expect("trail")
        .into_inner();
    assert_eq!(trail.entries[0].actor, "stella");
    assert_eq!(trail.entries[1].actor, "root");

    // Evaluation stays open by default.
    let (_, reason) = app.evaluate("guarded", "u", "prod").await;
    assert_ne!(reason, pb::Reason::FlagNotFound);

    // A development token from `vexil token` works.
    let minted = vexil::dev_token(&vexil::config::TokenArgs {
        subject: "dev".into(),
        roles: vec![vexil::auth::Role::Editor],
        environments: vec![],
        ttl: Duration::from_secs(60),
        signing: auth_config(&db.url).signing,
    })
    .expect("mint");
    flags
        .update_flag(with_token(&minted, update("guarded", 60.0)))
        .await
        .expect("a minted editor token writes");

    app.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_keys_and_jwks_rotation() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let rsa_private = std::fs::read(keys_dir().join("rsa-private.pem")).expect("key");
    let rsa_public = std::fs::read(keys_dir().join("rsa-public.pem")).expect("key");
    let ec_private = std::fs::read(keys_dir().join("ec-private.pem")).expect("key");

    // RS256 from a PEM public key.
    let app = TestApp::start_with(vexil::Config {
        jwt_public_key_file: Some(keys_dir().join("rsa-public.pem")),
        ..crate::common::config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    let mut c = claims("rsa-user", &["admin"]);
    c.remove("aud");
    c.remove("iss");
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(&rsa_private).expect("rsa key"),
    )
    .expect("sign");
    flags
        .create_flag(with_token(&rs256, flag_in("keyed", &["prod"])))
        .await
        .expect("RS256 token accepted");
    // HS256 signed with the public key's bytes as the secret: refused.
    let confused = hs256(&c, &rsa_public);
    refused(
        flags
            .update_flag(with_token(&confused, update("keyed", 1.0)))
            .await,
        Code::Unauthenticated,
        "HS256 with the RSA public key as secret",
    );
    app.stop().await;

    // A JWKS file: keys chosen by kid; a rotated file is picked up.
    let dir = crate::common::TestDir::create();
    let jwks = dir.join("jwks.json");
    std::fs::copy(keys_dir().join("jwks-ec.json"), &jwks).expect("jwks");
    let app = TestApp::start_with(vexil::Config {
        jwks_file: Some(jwks.clone()),
        ..crate::common::config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let es256 = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_ec_pem(&ec_private).expect("ec key"),
    )
    .expect("sign");
    flags
        .update_flag(with_token(&es256, update("keyed", 10.0)))
        .await
        .expect("ES256 token with a known kid");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-2".into());
    let rotated = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_rsa_pem(&rsa_private).expect("rsa key"),
    )
    .expect("sign");
    refused(
        flags
            .update_flag(with_token(&rotated, update("keyed", 20.0)))
            .await,
        Code::Unauthenticated,
        "unknown kid",
    );
    std::fs::copy(keys_dir().join("jwks-ec-rsa.json"), &jwks).expect("rotate");
    eventually(
        Duration::from_secs(30),
        "the rotated key is accepted",
        async || {
            flags
                .update_flag(with_token(&rotated, update("keyed", 20.0)))
                .await
                .is_ok()
        },
    )
    .await;

    // A key withdrawn from the file stops verifying the tokens it signed,
    // though they were verified (and cached) before. A token naming an
    // unknown kid makes the file be read again.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("nudge".into());
    let nudge = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(b"x")).expect("sign");
    let set: Value =
        serde_json::from_slice(&std::fs::read(keys_dir().join("jwks-ec-rsa.json")).expect("read"))
            .expect("jwks");
    let rsa_only: Vec<Value> = set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|key| key["kid"] == "rsa-2")
        .cloned()
        .collect();
    std::fs::write(&jwks, json!({ "keys": rsa_only }).to_string()).expect("withdraw ec-1");
    eventually(
        Duration::from_secs(30),
        "the withdrawn key's cached token is refused",
        async || {
            let _ = flags
                .update_flag(with_token(&nudge, update("keyed", 1.0)))
                .await;
            flags
                .update_flag(with_token(&es256, update("keyed", 30.0)))
                .await
                .is_err_and(|status| status.code() == Code::Unauthenticated)
        },
    )
    .await;
    flags
        .update_flag(with_token(&rotated, update("keyed", 40.0)))
        .await
        .expect("the remaining key still verifies");
    app.stop().await;

    // A JWKS that turns empty keeps its keys for VEXIL_JWKS_EMPTY_GRACE
    // (here none), then drops them: emptying the file revokes them.
    std::fs::write(&jwks, json!({ "keys": rsa_only }).to_string()).expect("jwks");
    let app = TestApp::start_with(vexil::Config {
        jwks_file: Some(jwks.clone()),
        jwks_empty_grace: Duration::ZERO,
        ..crate::common::config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    flags
        .update_flag(with_token(&rotated, update("keyed", 50.0)))
        .await
        .expect("rsa-2 verifies");
    std::fs::write(&jwks, r#"{"keys": []}"#).expect("empty the JWKS");
    eventually(
        Duration::from_secs(30),
        "an emptied JWKS's keys are dropped after the grace period",
        async || {
            let _ = flags
                .update_flag(with_token(&nudge, update("keyed", 1.0)))
                .await;
            flags
                .update_flag(with_token(&rotated, update("keyed", 60.0)))
                .await
                .is_err_and(|status| status.code() == Code::Unauthenticated)
        },
    )
    .await;
    app.stop().await;
    db.remove().await;
}

/// Forged tokens are throttled per address before their signatures are
/// checked, so a flood costs bounded work, while a caller whose token was
/// verified before goes on (its token is cached, not checked again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_token_floods_are_throttled_before_verification() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    // Signature checks: twice the management budget, 10/s in bursts of 10.
    let app = TestApp::start_with(vexil::Config {
        management_rate: 5,
        management_burst: 5,
        ..auth_config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    let valid = signed(&claims("root", &["admin"]));
    flags
        .list_flags(with_token(&valid, pb::ListFlagsRequest::default()))
        .await
        .expect("verified once");
    let started = std::time::Instant::now();
    let mut checked = 0;
    for i in 0..200 {
        let forged = hs256(
            &claims(&format!("forger-{i}"), &["admin"]),
            b"not-the-secret-at-all-0123456789",
        );
        let status = flags
            .list_flags(with_token(&forged, pb::ListFlagsRequest::default()))
            .await
            .expect_err("forged");
        match status.code() {
            Code::Unauthenticated => checked += 1,
            Code::ResourceExhausted => {}
            other => panic!("{other:?}: {status:?}"),
        }
    }
    // The budget's burst plus its rate over the time taken (and one for
    // the valid token checked above): a bound on the signature checks.
    let budget = 10 + (started.elapsed().as_secs_f64() * 10.0).ceil() as u32 + 1;
    assert!(
        checked <= budget,
        "{checked} forged tokens checked, budget {budget}"
    );
    flags
        .list_flags(with_token(&valid, pb::ListFlagsRequest::default()))
        .await
        .expect("the verified caller goes on");
    app.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_can_require_a_token_and_watch_ends_when_it_expires() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        auth_evaluation: vexil::config::EvaluationAuth::Evaluator,
        ..auth_config(&db.url)
    })
    .await;
    let admin = signed(&claims("root", &["admin"]));
    app.flags
        .clone()
        .create_flag(with_token(&admin, flag_in("private", &[])))
        .await
        .expect("create");
    let evaluate = || pb::EvaluateRequest {
        flag_name: "private".into(),
        user_id: "u".into(),
        environment: String::new(),
        context: None,
    };
    let mut evaluation = app.evaluation.clone();
    refused(
        evaluation.evaluate(Request::new(evaluate())).await,
        Code::Unauthenticated,
        "evaluation without a token",
    );
    refused(
        evaluation
            .evaluate(with_token(
                &signed(&claims("rita", &["reader"])),
                evaluate(),
            ))
            .await,
        Code::PermissionDenied,
        "evaluation by a reader",
    );
    evaluation
        .evaluate(with_token(
            &signed(&claims("svc", &["evaluator"])),
            evaluate(),
        ))
        .await
        .expect("an evaluator evaluates");

    let mut short = claims("svc", &["evaluator"]);
    short.insert("exp".into(), (now() + 3).into());
    let mut stream = evaluation
        .watch(with_token(&signed(&short), pb::WatchRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    read_snapshot(&mut stream).await;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(_)) => {}
            Ok(None) => panic!("ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    app.stop().await;
    db.remove().await;
}

/// With no audience configured, a token minted for another service (it
/// names an `aud`) is refused; tokens without `aud` are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_other_services_are_refused_without_an_audience() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        signing: vexil::config::Signing {
            jwt_secret: Some(vexil::config::Secret(SECRET.into())),
            ..Default::default()
        },
        ..crate::common::config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    let read = || pb::ListFlagsRequest::default();
    let mut foreign = claims("fred", &["admin"]);
    foreign.insert("aud".into(), "billing-service".into());
    let status = flags
        .list_flags(with_token(&signed(&foreign), read()))
        .await
        .expect_err("a token for another service");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("audience"), "{status:?}");
    let mut own = claims("fred", &["admin"]);
    own.remove("aud");
    flags
        .list_flags(with_token(&signed(&own), read()))
        .await
        .expect("a token without aud");
    app.stop().await;
    db.remove().await;
}

/// Settings that only mean something with a key refuse to start without
/// one, naming themselves, instead of being silently ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_need_a_key_refuse_to_start_without_one() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let without_key = || crate::common::config(&db.url);
    let cases = [
        (
            "VEXIL_JWT_ISSUER",
            vexil::Config {
                signing: vexil::config::Signing {
                    jwt_issuer: Some(ISSUER.into()),
                    ..Default::default()
                },
                ..without_key()
            },
        ),
        (
            "VEXIL_JWT_AUDIENCE",
            vexil::Config {
                signing: vexil::config::Signing {
                    jwt_audience: Some(AUDIENCE.into()),
                    ..Default::default()
                },
                ..without_key()
            },
        ),
        (
            "VEXIL_AUTH_EVALUATION",
            vexil::Config {
                auth_evaluation: vexil::config::EvaluationAuth::Evaluator,
                ..without_key()
            },
        ),
    ];
    for (setting, config) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            vexil::run(config, listener, async {}),
        )
        .await
        .expect("refuses at once");
        let err = outcome.expect_err(setting);
        assert!(err.to_string().contains(setting), "{setting}: {err}");
    }
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_management_only_on_loopback() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let outcome = vexil::run(crate::common::config(&db.url), listener, async {}).await;
    let err = outcome.expect_err("refuses a non-loopback address without auth");
    assert!(err.to_string().contains("VEXIL_JWT_SECRET"), "{err}");
    assert!(err.to_string().contains("--insecure-no-auth"), "{err}");

    // Every listener counts: OFREP, flagd's API and /metrics tell what the
    // flags are too.
    for exposed in ["ofrep", "flagd", "console", "metrics"] {
        let wildcard = || async { Some(TcpListener::bind("0.0.0.0:0").await.expect("bind")) };
        let listeners = vexil::Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            flagd: if exposed == "flagd" {
                wildcard().await
            } else {
                None
            },
            ofrep: if exposed == "ofrep" {
                wildcard().await
            } else {
                None
            },
            console: if exposed == "console" {
                wildcard().await
            } else {
                None
            },
            metrics: if exposed == "metrics" {
                wildcard().await
            } else {
                None
            },
        };
        let outcome = vexil::run(crate::common::config(&db.url), listeners, async {}).await;
        let err = outcome.expect_err(exposed);
        assert!(err.to_string().contains("0.0.0.0"), "{exposed}: {err}");
    }

    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = vexil::Config {
        insecure_no_auth: true,
        ..crate::common::config(&db.url)
    };
    let server = tokio::spawn(vexil::run(config, listener, async {
        stopped.await.ok();
    }));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect_lazy();
    let mut flags = FlagServiceClient::new(channel);
    eventually(Duration::from_secs(30), "it serves", async || {
        flags
            .list_flags(pb::ListFlagsRequest::default())
            .await
            .is_ok()
    })
    .await;
    stop.send(()).ok();
    server.await.expect("task").expect("served");
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_flood_does_not_starve_another() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        management_rate: 1,
        management_burst: 3,
        evaluation_rate: 5,
        evaluation_burst: 5,
        ..auth_config(&db.url)
    })
    .await;
    let flooder = signed(&claims("flooder", &["admin"]));
    let patient = signed(&claims("patient", &["admin"]));
    let mut flags = app.flags.clone();
    flags
        .create_flag(with_token(&patient, flag_in("contested", &[])))
        .await
        .expect("create");
    let mut limited = None;
    for i in 0..10 {
        if let Err(status) = flags
            .update_flag(with_token(&flooder, update("contested", f64::from(i))))
            .await
        {
            limited = Some(status);
            break;
        }
    }
    let status = limited.expect("the flooder is limited");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert!(details.retry_info().is_some(), "RetryInfo detail");

    // The other caller's writes go through, and evaluations (limited
    // separately) are untouched by the management flood.
    flags
        .update_flag(with_token(&patient, update("contested", 42.0)))
        .await
        .expect("another caller still writes");
    app.evaluate("contested", "u", "").await;

    // Evaluations are limited per caller (peer IP when open), separately.
    let mut evaluation = app.evaluation.clone();
    let mut limited = false;
    for _ in 0..20 {
        let answer = evaluation
            .evaluate(pb::EvaluateRequest {
                flag_name: "contested".into(),
                user_id: "u".into(),
                environment: String::new(),
                context: None,
            })
            .await;
        if let Err(status) = answer {
            assert_eq!(status.code(), Code::ResourceExhausted);
            limited = true;
            break;
        }
    }
    assert!(limited, "evaluations are rate limited too");

    // Bad tokens from one address are counted before they are verified
    // (last: the address's attempts budget is spent afterwards).
    let mut throttled = false;
    for _ in 0..100 {
        let refused = flags
            .update_flag(with_token("not.a.jwt", update("contested", 1.0)))
            .await
            .expect_err("a bad token");
        if refused.code() == Code::ResourceExhausted {
            throttled = true;
            break;
        }
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    assert!(throttled, "a flood of bad tokens is throttled");

    app.stop().await;
    db.remove().await;
}

/// One caller cannot take every Watch slot: past its own limit it is
/// refused while another caller still opens streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_hold_every_watch_stream() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        auth_evaluation: vexil::config::EvaluationAuth::Required,
        max_watch_streams_per_caller: 3,
        ..auth_config(&db.url)
    })
    .await;
    let greedy = signed(&claims("greedy", &["reader"]));
    let modest = signed(&claims("modest", &["reader"]));
    let mut evaluation = app.evaluation.clone();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = evaluation
            .watch(with_token(&greedy, pb::WatchRequest::default()))
            .await
            .expect("within the caller's limit")
            .into_inner();
        read_snapshot(&mut stream).await;
        held.push(stream);
    }
    refused(
        evaluation
            .watch(with_token(&greedy, pb::WatchRequest::default()))
            .await,
        Code::ResourceExhausted,
        "a fourth stream for the same caller",
    );
    let mut other = evaluation
        .watch(with_token(&modest, pb::WatchRequest::default()))
        .await
        .expect("another caller still watches")
        .into_inner();
    read_snapshot(&mut other).await;
    // A closed stream gives its place back.
    drop(held.pop());
    eventually(
        Duration::from_secs(10),
        "the place is released",
        async || {
            evaluation
                .watch(with_token(&greedy, pb::WatchRequest::default()))
                .await
                .is_ok()
        },
    )
    .await;

    app.stop().await;
    db.remove().await;
}

/// On PostgreSQL the audit trail is append-only for everyone the trigger
/// applies to, the service's own connections included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_cannot_be_rewritten_postgres() {
    use sea_orm::ConnectionTrait;
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(pb::Flag {
        name: "history".into(),
        ..pb::Flag::default()
    })
    .await;
    let direct = db.connect().await;
    for statement in [
        "UPDATE feature_flag_audits SET actor = 'someone else'",
        "DELETE FROM feature_flag_audits",
        "TRUNCATE feature_flag_audits",
    ] {
        let outcome = direct.execute_unprepared(statement).await;
        let err = outcome.expect_err(statement).to_string();
        assert!(err.contains("cannot be changed"), "{statement}: {err}");
    }
    let trail = app.audit_trail("history").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].actor, "tester");
    app.stop().await;
    db.remove().await;
}

/// A JWKS served over HTTP on loopback, whose content the test can change;
/// counts the fetches.
struct JwksServer {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/jwks.json",
            listener.local_addr().expect("address")
        );
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (serving, counting) = (body.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = serving.lock().expect("body").clone();
                counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    socket.write_all(response.as_bytes()).await.ok();
                    socket.shutdown().await.ok();
                });
            }
        });
        Self {
            url,
            body,
            fetches,
            task,
        }
    }

    fn serve(&self, body: String) {
        *self.body.lock().expect("body") = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_is_fetched_in_the_background_and_rotates() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let jwks = |file: &str| std::fs::read_to_string(keys_dir().join(file)).expect("jwks");
    let server = JwksServer::start(jwks("jwks-ec.json")).await;
    let app = TestApp::start_with(vexil::Config {
        jwks_url: Some(server.url.clone()),
        ..crate::common::config(&db.url)
    })
    .await;
    let mut flags = app.flags.clone();
    let mut c = claims("remote-user", &["admin"]);
    c.remove("aud");
    c.remove("iss");
    let sign = |alg, kid: &str, key: EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &c, &key).expect("sign")
    };
    let ec = sign(
        Algorithm::ES256,
        "ec-1",
        EncodingKey::from_ec_pem(&std::fs::read(keys_dir().join("ec-private.pem")).expect("key"))
            .expect("ec key"),
    );
    let rotated = sign(
        Algorithm::RS256,
        "rsa-2",
        EncodingKey::from_rsa_pem(&std::fs::read(keys_dir().join("rsa-private.pem")).expect("key"))
            .expect("rsa key"),
    );
    eventually(
        Duration::from_secs(30),
        "keys fetched from the URL",
        async || {
            flags
                .create_flag(with_token(&ec, flag_in("remote", &["prod"])))
                .await
                .is_ok()
        },
    )
    .await;

    // Unknown kids are refused at once, without a fetch per request.
    let before = server.fetches();
    for _ in 0..20 {
        refused(
            flags
                .update_flag(with_token(&rotated, update("remote", 5.0)))
                .await,
            Code::Unauthenticated,
            "a kid the JWKS does not have yet",
        );
    }
    assert!(
        server.fetches() <= before + 1,
        "{} fetches for 20 requests",
        server.fetches() - before
    );

    // Rotation: the new key appears at the URL and is picked up.
    server.serve(jwks("jwks-ec-rsa.json"));
    eventually(
        Duration::from_secs(40),
        "the rotated key is accepted",
        async || {
            flags
                .update_flag(with_token(&rotated, update("remote", 5.0)))
                .await
                .is_ok()
        },
    )
    .await;

    app.stop().await;
    server.task.abort();
    db.remove().await;
}

async fn watch_as(
    app: &TestApp,
    token: Option<&str>,
    since_revision: Option<u64>,
) -> Result<tonic::Streaming<pb::WatchResponse>, tonic::Status> {
    let request = pb::WatchRequest {
        flag_names: Vec::new(),
        since_revision,
        engine: vexil::engine::ENGINE,
    };
    let request = match token {
        Some(token) => with_token(token, request),
        None => Request::new(request),
    };
    app.evaluation
        .clone()
        .watch(request)
        .await
        .map(tonic::Response::into_inner)
}

fn listed(name: &str) -> pb::CreateFlagRequest {
    pb::CreateFlagRequest {
        flag: Some(pb::Flag {
            name: name.into(),
            enabled: true,
            description: "secret plans".into(),
            whitelist: vec!["vip-1".into()],
            blacklist: vec!["banned-1".into()],
            ..pb::Flag::default()
        }),
        reason: "watch test".into(),
    }
}

/// With authentication on, Watch (whole flag definitions) needs a token
/// with `reader` or `evaluator`, as GetFlag needs `reader`, though
/// evaluation stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_needs_a_token_that_may_read_flags() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(auth_config(&db.url)).await;
    let admin = signed(&claims("root", &["admin"]));
    app.flags
        .clone()
        .create_flag(with_token(&admin, listed("guarded-watch")))
        .await
        .expect("create");
    let (_, reason) = app.evaluate("guarded-watch", "u", "prod").await;
    assert_ne!(reason, pb::Reason::FlagNotFound, "evaluation stays open");

    let status = watch_as(&app, None, None).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let nobody = signed(&claims("nobody", &["unknown-role"]));
    let status = watch_as(&app, Some(&nobody), None)
        .await
        .expect_err("no role");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    for role in ["reader", "evaluator", "editor"] {
        let token = signed(&claims("watcher", &[role]));
        let mut stream = watch_as(&app, Some(&token), None).await.expect(role);
        let (flags, _) = read_snapshot(&mut stream).await;
        assert_eq!(flags[0].whitelist, ["vip-1"], "{role}: whole definitions");
        assert_eq!(flags[0].description, "secret plans", "{role}");
    }
    app.stop().await;
    db.remove().await;
}

/// `VEXIL_WATCH_AUTH=open`: anyone may Watch, but a stream without a token
/// that may read flags carries no lists, description, metadata or actors,
/// in its snapshot and in its changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_watch_streams_redact_what_reader_protects() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        watch_auth: vexil::config::WatchAuth::Open,
        ..auth_config(&db.url)
    })
    .await;
    let admin = signed(&claims("root", &["admin"]));
    app.flags
        .clone()
        .create_flag(with_token(&admin, listed("open-watch")))
        .await
        .expect("create");
    let redacted = |flag: &pb::Flag| {
        assert!(
            flag.whitelist.is_empty() && flag.blacklist.is_empty(),
            "{flag:?}"
        );
        assert!(
            flag.description.is_empty() && flag.metadata.is_none(),
            "{flag:?}"
        );
        assert!(
            flag.created_by.is_empty() && flag.updated_by.is_empty(),
            "{flag:?}"
        );
        assert!(flag.enabled, "what evaluation needs stays: {flag:?}");
    };
    let mut anonymous = watch_as(&app, None, None).await.expect("open watch");
    let (flags, _) = read_snapshot(&mut anonymous).await;
    redacted(&flags[0]);
    let evaluator = signed(&claims("edge", &["evaluator"]));
    let mut full = watch_as(&app, Some(&evaluator), None)
        .await
        .expect("evaluator");
    let (flags, _) = read_snapshot(&mut full).await;
    assert_eq!(flags[0].blacklist, ["banned-1"]);

    app.flags
        .clone()
        .create_flag(with_token(&admin, listed("open-watch-2")))
        .await
        .expect("create");
    let change = crate::common::next_change(&mut anonymous).await;
    redacted(change.flag.as_ref().expect("flag"));
    let change = crate::common::next_change(&mut full).await;
    assert_eq!(change.flag.expect("flag").whitelist, ["vip-1"]);
    app.stop().await;
    db.remove().await;
}

/// Resumes and refetches naming revisions that were never announced are
/// answered at once, holding no in-flight place: with the limit at 20, ten
/// Watch streams resuming far ahead and ten OFREP refetches naming a
/// far-away ETag, all at once, leave room for the kill switch (each used
/// to wait a second in its place, taking all 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_far_ahead_hold_no_in_flight_place() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_openfeature(vexil::Config {
        max_in_flight: 20,
        ..crate::common::config(&db.url)
    })
    .await;
    app.create_flag(pb::Flag {
        name: "kill-me".into(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;
    let ofrep = app.ofrep.expect("ofrep");
    let mut watches = Vec::new();
    let mut refetches = Vec::new();
    for _ in 0..10 {
        let mut evaluation = app.evaluation.clone();
        watches.push(tokio::spawn(async move {
            evaluation
                .watch(pb::WatchRequest {
                    flag_names: Vec::new(),
                    since_revision: Some(1_000_000),
                    engine: vexil::engine::ENGINE,
                })
                .await
                .map(tonic::Response::into_inner)
        }));
        refetches.push(tokio::spawn(async move {
            crate::common::http::post_json(
                ofrep,
                "/ofrep/v1/evaluate/flags?flagConfigEtag=%221000000%22",
                &json!({ "context": { "targetingKey": "u1" } }),
            )
            .await
            .status
        }));
    }
    // Well inside the second each of them used to wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.flags
        .clone()
        .update_flag(Request::new(pb::UpdateFlagRequest {
            flag: Some(pb::Flag {
                name: "kill-me".into(),
                enabled: false,
                ..pb::Flag::default()
            }),
            update_mask: mask(&["enabled"]),
            reason: "incident".into(),
            expected_revision: None,
        }))
        .await
        .expect("the kill switch is admitted");
    for watch in watches {
        let mut stream = watch.await.expect("task").expect("watch admitted");
        read_snapshot(&mut stream).await;
    }
    for refetch in refetches {
        assert_eq!(refetch.await.expect("task"), 200);
    }
    app.stop().await;
    db.remove().await;
}

/// With several key sources, the audit actor names the source, so the
/// development secret cannot write entries as an identity provider's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_names_its_key_source_when_there_are_several() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        signing: vexil::config::Signing {
            jwt_secret: Some(vexil::config::Secret(SECRET.into())),
            ..Default::default()
        },
        jwks_file: Some(keys_dir().join("jwks-ec.json")),
        ..crate::common::config(&db.url)
    })
    .await;
    let mut c = claims("alice", &["admin"]);
    c.remove("aud");
    let from_secret = hs256(&c, SECRET.as_bytes());
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let ec_private = std::fs::read(keys_dir().join("ec-private.pem")).expect("ec key");
    let from_jwks = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_ec_pem(&ec_private).expect("ec key"),
    )
    .expect("sign");
    let mut flags = app.flags.clone();
    flags
        .create_flag(with_token(&from_secret, flag_in("sourced", &[])))
        .await
        .expect("create with the secret's token");
    flags
        .update_flag(with_token(&from_jwks, update("sourced", 5.0)))
        .await
        .expect("update with the JWKS token");
    let trail = flags
        .get_audit_trail(with_token(
            &from_jwks,
            pb::GetAuditTrailRequest {
                flag_name: "sourced".into(),
                skip: 0,
                limit: 10,
                segment_name: String::new(),
            },
        ))
        .await
        .expect("trail")
        .into_inner();
    let actors: Vec<&str> = trail.entries.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["alice (jwks-file)", "alice (secret)"]);
    app.stop().await;
    db.remove().await;
}

/// A management call without a valid token is refused from its headers,
/// before its message is read: a caller declaring a 4 MiB CreateFlag and
/// sending part of it gets UNAUTHENTICATED at once, and the server holds
/// no partial body for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenless_management_is_refused_before_its_body() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(auth_config(&db.url)).await;
    for token in [None, Some("Bearer not.a.token")] {
        // A 4 MiB message declared, 16 KiB of it sent, the rest never.
        let status =
            status_before_the_body(&app, "/vexil.v1.FlagService/CreateFlag", token, 0x3f_fff0)
                .await;
        assert_eq!(status.as_deref(), Some("16"), "UNAUTHENTICATED ({token:?})");
    }
    app.stop().await;
    db.remove().await;
}

/// The same for evaluation calls when a token is required
/// (`VEXIL_AUTH_EVALUATION=required`), and for Watch whenever it needs one
/// (`VEXIL_WATCH_AUTH=token`, the default), evaluation open or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenless_evaluation_is_refused_before_its_body_when_a_token_is_required() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    for (evaluation, paths) in [
        (
            vexil::config::EvaluationAuth::Required,
            &[
                "/vexil.v1.EvaluationService/Evaluate",
                "/vexil.v1.EvaluationService/BulkEvaluate",
                "/vexil.v1.EvaluationService/Watch",
            ][..],
        ),
        (
            vexil::config::EvaluationAuth::Open,
            &["/vexil.v1.EvaluationService/Watch"][..],
        ),
    ] {
        let app = TestApp::start_with(vexil::Config {
            auth_evaluation: evaluation,
            ..auth_config(&db.url)
        })
        .await;
        for path in paths {
            let status = status_before_the_body(&app, path, None, 0x03_fff0).await;
            assert_eq!(status.as_deref(), Some("16"), "UNAUTHENTICATED: {path}");
        }
        app.stop().await;
    }
    db.remove().await;
}

/// Evaluation's rate limit is applied from the headers too: a caller over
/// its rate is refused before its message is read, not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_over_its_rate_is_refused_before_its_body() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        evaluation_rate: 1,
        evaluation_burst: 1,
        ..crate::common::config(&db.url)
    })
    .await;
    for path in [
        "/vexil.v1.EvaluationService/Evaluate",
        "/vexil.v1.EvaluationService/BulkEvaluate",
    ] {
        // Takes what the rate has refilled (answered or refused).
        let _ = app
            .evaluation
            .clone()
            .evaluate(pb::EvaluateRequest {
                flag_name: "any".into(),
                user_id: "u1".into(),
                environment: "prod".into(),
                context: None,
            })
            .await;
        let status = status_before_the_body(&app, path, None, 0x03_fff0).await;
        assert_eq!(status.as_deref(), Some("8"), "RESOURCE_EXHAUSTED: {path}");
    }
    app.stop().await;
    db.remove().await;
}

/// Opens a call to `path` that declares a `declared`-byte message and sends
/// 16 KiB of it, and returns the grpc-status of the answer, which must come
/// within 10 s (before the body is complete).
async fn status_before_the_body(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    declared: u32,
) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let mut request = http::Request::post(format!("http://{}{path}", app.address))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let (response, mut body) = client
        .send_request(request.body(()).expect("request"), false)
        .expect("send");
    let mut partial = vec![0u8];
    partial.extend_from_slice(&declared.to_be_bytes());
    partial.extend(std::iter::repeat_n(0u8, 16 * 1024));
    // The server may have answered and closed the stream already, from the
    // headers alone (the behaviour under test): then the data cannot go.
    let _ = body.send_data(bytes::Bytes::from(partial), false);
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("answered before the body is complete")
        .expect("a response");
    response
        .headers()
        .get("grpc-status")
        .and_then(|code| code.to_str().ok())
        .map(str::to_owned)
}

/// Without authentication, `x-actor` names who changes a flag; a value
/// that is not printable ASCII is refused, naming the header, and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprintable_actor_is_refused_by_name() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut request = Request::new(flag_in("acted", &[]));
    request.metadata_mut().insert(
        "x-actor",
        tonic::metadata::MetadataValue::try_from(&[0xc3u8, 0xa9][..]).expect("opaque bytes"),
    );
    let status = app
        .flags
        .clone()
        .create_flag(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("x-actor"), "{status:?}");
    let missing = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: "acted".into(),
        })
        .await
        .expect_err("nothing created");
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await;
    db.remove().await;
}
