//! The Rust client (`crates/vexil-client`) against real servers: its local
//! answers equal the server's Evaluate, changes reach it, and it survives
//! restarts, outages and a dead endpoint, starting from a bootstrap file
//! when no server answers.

use std::time::{Duration, Instant};

use vexil::grpc::pb;
use vexil_client::{Client, ClientEvent, Status};

use crate::common::{Backend, TestApp, TestDatabase, eventually, unique};

async fn connect(endpoints: &[String]) -> Client {
    Client::builder()
        .endpoints(endpoints.iter().cloned())
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .connect()
        .await
        .expect("connect")
}

fn url(app: &TestApp) -> String {
    format!("http://{}", app.address)
}

async fn wait_for_revision(client: &Client, revision: u64) {
    eventually(
        Duration::from_secs(10),
        "the client catches up",
        async || client.revision() >= revision,
    )
    .await;
}

crate::backend_tests!(local_answers_equal_the_servers);

async fn local_answers_equal_the_servers(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let names: Vec<String> = crate::common::rule_flags(&app, &unique("agree"))
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let client = connect(&[url(&app)]).await;
    let last = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: names.last().expect("flags").clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .revision;
    wait_for_revision(&client, last).await;
    assert!(matches!(client.status(), Status::Ready { .. }));

    let mut evaluation = app.evaluation.clone();
    let mut compared = 0;
    for environment in ["production", "staging", ""] {
        for i in 0..10_000 {
            let user = if i == 0 {
                String::new()
            } else {
                format!("user-{i}")
            };
            let answers = evaluation
                .bulk_evaluate(pb::BulkEvaluateRequest {
                    flag_names: names.clone(),
                    user_id: user.clone(),
                    environment: environment.into(),
                    context: None,
                })
                .await
                .expect("bulk evaluate")
                .into_inner()
                .results;
            for answer in answers {
                let local = client.evaluate(&answer.flag_name, &user, environment);
                let case = format!("{} {user:?} {environment:?}", answer.flag_name);
                assert_eq!(local.enabled, answer.enabled, "{case}");
                assert_eq!(
                    local.reason.name(),
                    pb::Reason::try_from(answer.reason)
                        .expect("reason")
                        .as_str_name()
                        .trim_start_matches("REASON_"),
                    "{case}"
                );
                assert_eq!(local.revision, answer.revision, "{case}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, names.len() * 3 * 10_000);
    let missing = client.evaluate("no-such-flag", "user-1", "production");
    assert_eq!((missing.enabled, missing.revision), (false, 0));
    assert_eq!(missing.reason, vexil_client::Reason::FlagNotFound);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_client_and_are_reported() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start(&db.url).await;
    let name = unique("propagate");
    app.create_flag(pb::Flag {
        name: name.clone(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    let client = connect(&[url(&app)]).await;
    let mut changes = client.changes();
    let mut delays = Vec::new();
    for round in 1..=20 {
        let started = Instant::now();
        let updated = app
            .set_percentage(&name, if round % 2 == 0 { 100.0 } else { 0.0 })
            .await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await {
                Ok(Ok(ClientEvent::Changed { flag, revision })) if flag == name => {
                    assert_eq!(revision, updated.revision);
                    break;
                }
                Ok(Ok(_)) => {}
                other => panic!("no change event: {other:?}"),
            }
        }
        delays.push(started.elapsed());
        assert_eq!(client.is_enabled(&name, "anyone", ""), round % 2 == 0);
    }
    delays.sort();
    // A figure, not an assertion: UpdateFlag sent to the change applied locally.
    println!(
        "client propagation: median {:?}, max {:?} (UpdateFlag call included)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_and_repeats_nothing() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let config = crate::common::config(&db.url);
    let app = TestApp::start_with(config.clone()).await;
    let address = app.address;
    let name = unique("restart");
    let created = app
        .create_flag(pb::Flag {
            name: name.clone(),
            enabled: true,
            ..pb::Flag::default()
        })
        .await;
    let client = Client::builder()
        .endpoints([format!("http://{address}")])
        .backoff(Duration::from_millis(300), Duration::from_millis(600))
        .build()
        .connect()
        .await
        .expect("connect");
    let mut changes = client.changes();
    app.stop().await;
    eventually(Duration::from_secs(10), "the client notices", async || {
        matches!(client.status(), Status::Stale { .. })
    })
    .await;
    let stale = client.evaluate(&name, "u", "");
    assert_eq!(
        stale.revision, created.revision,
        "the last state is still served"
    );

    // Changes made as soon as the server is back, while the client waits
    // out its backoff: it must get them by resuming, once each.
    let app = TestApp::start_at(config, address).await;
    let mut expected = vec![];
    for i in 0..30 {
        expected.push(app.set_percentage(&name, f64::from(i)).await.revision);
    }
    let mut seen = vec![];
    while seen.last() != expected.last() {
        match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await {
            Ok(Ok(ClientEvent::Changed { revision, .. })) => seen.push(revision),
            Ok(Ok(ClientEvent::Snapshot { revision, flags })) => {
                panic!(
                    "resumed with a snapshot ({flags} flags at {revision}), not the changes, after {seen:?}"
                )
            }
            Ok(Ok(ClientEvent::Status(_))) => {}
            other => panic!("no change event: {other:?} after {seen:?}"),
        }
    }
    assert_eq!(seen, expected, "every change once, in order");
    assert!(expected[0] > created.revision);
    assert!(matches!(client.status(), Status::Ready { .. }));
    app.stop().await;
}

/// After a quiet reconnect (nothing changed meanwhile) the client is Ready
/// as soon as the resumed stream is confirmed, not at the server's first
/// heartbeat (15 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reconnect_is_ready_at_once() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let config = crate::common::config(&db.url);
    let app = TestApp::start_with(config.clone()).await;
    let address = app.address;
    let client = Client::builder()
        .endpoints([format!("http://{address}")])
        .backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .connect()
        .await
        .expect("connect");
    app.stop().await;
    eventually(Duration::from_secs(10), "the client notices", async || {
        !matches!(client.status(), Status::Ready { .. })
    })
    .await;
    let app = TestApp::start_at(config, address).await;
    eventually(
        Duration::from_secs(5),
        "ready again without a heartbeat",
        async || matches!(client.status(), Status::Ready { .. }),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_endpoint() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    // Two replicas of one database; without Redis, B catches up from it every second.
    let config = vexil::Config {
        cache_ttl_secs: 1,
        ..crate::common::config(&db.url)
    };
    let a = TestApp::start_with(config.clone()).await;
    let b = TestApp::start_with(config).await;
    let name = unique("failover");
    a.create_flag(pb::Flag {
        name: name.clone(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    let client = connect(&[url(&a), url(&b)]).await;
    assert!(!client.is_enabled(&name, "u", ""));
    a.stop().await;
    let updated = b.set_percentage(&name, 100.0).await;
    wait_for_revision(&client, updated.revision).await;
    assert!(client.is_enabled(&name, "u", ""));
    assert!(matches!(client.status(), Status::Ready { .. }));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_a_bootstrap_file_then_takes_the_servers_state() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let config = crate::common::config(&db.url);
    let app = TestApp::start_with(config.clone()).await;
    let address = app.address;
    let name = unique("bootstrap");
    app.create_flag(pb::Flag {
        name: name.clone(),
        enabled: true,
        percentage: 100.0,
        ..pb::Flag::default()
    })
    .await;
    // The file, its `.tmp` while written, and a corrupt one below.
    let dir = crate::common::TestDir::create();
    let file = dir.join("bootstrap.json");
    let writer = Client::builder()
        .endpoints([url(&app)])
        .bootstrap_file(&file, None)
        .bootstrap_every(Duration::from_millis(50))
        .build()
        .connect()
        .await
        .expect("connect");
    eventually(Duration::from_secs(10), "the file is written", async || {
        file.exists()
    })
    .await;
    drop(writer);
    app.stop().await;

    // No server: the file's state, marked stale.
    let start = |max_age| {
        Client::builder()
            .endpoints([format!("http://{address}")])
            .bootstrap_file(&file, max_age)
            .ready_timeout(Duration::from_millis(500))
            .backoff(Duration::from_millis(50), Duration::from_millis(200))
            .build()
            .connect()
    };
    let client = start(None).await.expect("starts from the file");
    assert!(
        matches!(client.status(), Status::Stale { .. }),
        "{:?}",
        client.status()
    );
    assert!(client.is_enabled(&name, "u", ""));

    // A file older than allowed is ignored: no state, a clear error.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = start(Some(Duration::from_secs(1)))
        .await
        .err()
        .expect("an old file is not trusted");
    let message = refused.to_string();
    assert!(message.contains(&address.to_string()), "{message}");
    // A corrupt file is ignored too.
    let corrupt = file.with_extension("corrupt.json");
    std::fs::write(
        &corrupt,
        b"{\"format\": \"vexil-bootstrap/1\", \"flags\": [",
    )
    .expect("write");
    let refused = Client::builder()
        .endpoints([format!("http://{address}")])
        .bootstrap_file(&corrupt, None)
        .ready_timeout(Duration::from_millis(300))
        .build()
        .connect()
        .await;
    assert!(refused.is_err());

    // The server comes back with a different state: it replaces the file's.
    let app = TestApp::start_at(config, address).await;
    let updated = app.set_percentage(&name, 0.0).await;
    wait_for_revision(&client, updated.revision).await;
    assert!(!client.is_enabled(&name, "u", ""));
    assert!(matches!(client.status(), Status::Ready { .. }));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_names_the_endpoint_and_the_cause() {
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = unused.local_addr().expect("address");
    drop(unused);
    let err = Client::builder()
        .endpoints([format!("http://{address}")])
        .ready_timeout(Duration::from_millis(500))
        .build()
        .connect()
        .await
        .err()
        .expect("nothing listens there");
    let message = err.to_string();
    assert!(message.contains(&address.to_string()), "{message}");
    assert!(message.contains("connect"), "{message}");
}

/// A zero `bootstrap_every` is refused by name when connecting (it used to
/// panic inside the client's background task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_bootstrap_interval_is_refused_by_name() {
    let err = Client::builder()
        .endpoints(["http://127.0.0.1:1"])
        .bootstrap_file(
            std::env::temp_dir().join(unique("vexil-test-never-written-")),
            None,
        )
        .bootstrap_every(Duration::ZERO)
        .build()
        .connect()
        .await
        .err()
        .expect("refused");
    assert!(matches!(
        err,
        vexil_client::ConnectError::InvalidSetting {
            setting: "bootstrap_every",
            ..
        }
    ));
    assert!(err.to_string().contains("bootstrap_every"), "{err}");
}

fn classic_page(user: &str) -> &'static str {
    let _ = user;
    "classic"
}

#[vexil_client::feature_flag("attribute.gate", user = user, fallback = classic_page)]
fn page(user: &str) -> &'static str {
    "new"
}

async fn classic_price(customer: String, base: u32) -> u32 {
    let _ = customer;
    base
}

#[vexil_client::feature_flag("attribute.gate", user = customer, fallback = classic_price, environment = "production")]
async fn price(customer: String, base: u32) -> u32 {
    base / 2
}

/// The attribute with the process-wide client (this is the only test that
/// sets it): the function runs where the flag is on, the fallback elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribute_gates_on_the_flag() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start(&db.url).await;
    app.create_flag(pb::Flag {
        name: "attribute.gate".into(),
        enabled: true,
        whitelist: vec!["vip".into()],
        environments: vec!["production".into()],
        ..pb::Flag::default()
    })
    .await;
    let client = Client::builder()
        .endpoints([url(&app)])
        .default_environment("production")
        .build()
        .connect()
        .await
        .expect("connect");
    assert!(vexil_client::set_default(client.clone()).is_ok());
    assert_eq!(page("vip"), "new");
    assert_eq!(page("someone"), "classic");
    assert_eq!(price("vip".into(), 100).await, 50);
    assert_eq!(price("someone".into(), 100).await, 100);

    let updated = app.set_percentage("attribute.gate", 100.0).await;
    wait_for_revision(&client, updated.revision).await;
    assert_eq!(page("someone"), "new");
    app.stop().await;
}
