//! The management commands of the `vexil` binary (`flags`, `kill`,
//! `unkill`, `rollout`, `audit`) run as a user runs them, against a real
//! server: answers on stdout as tables and JSON, and each failure's exit
//! code (invalid 2, not found 3, conflict 4, refused 5, unreachable 6).

use std::net::SocketAddr;

use serde_json::Value;
use vexil::grpc::pb;

use crate::auth::{auth_config, claims, signed};
use crate::common::{Backend, TestApp, TestDatabase, unique};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("{err}: {} / {}", self.stdout, self.stderr))
    }
}

/// Runs `vexil ARGS` against the server at `address` with `token` in
/// VEXIL_TOKEN (none: unset).
async fn vexil(address: SocketAddr, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"));
    command
        .args(args)
        .env("VEXIL_ADDR", format!("http://{address}"))
        .env_remove("VEXIL_TOKEN")
        .env_remove("VEXIL_TOKEN_FILE");
    if let Some(token) = token {
        command.env("VEXIL_TOKEN", token);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the command's thread")
        .expect("run the vexil binary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn cli_commands_and_their_exit_codes(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let name = unique("cli.flag");
    app.create_flag(pb::Flag {
        name: name.clone(),
        enabled: true,
        percentage: 100.0,
        tags: vec!["cli".into()],
        ..pb::Flag::default()
    })
    .await;
    let at = app.address;

    let listed = vexil(at, None, &["flags", "list", "--output", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed = listed.json();
    let mine = listed
        .as_array()
        .expect("an array")
        .iter()
        .find(|flag| flag["name"] == name.as_str())
        .expect("the flag is listed");
    assert_eq!(mine["tags"], serde_json::json!(["cli"]));
    let table = vexil(at, None, &["flags", "list", "--tag", "cli"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);
    assert!(table.stdout.contains(&name), "{}", table.stdout);

    let got = vexil(at, None, &["flags", "get", &name, "-o", "json"]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    let flag = got.json();
    assert_eq!(flag["name"], name.as_str());
    assert_eq!(flag["enabled"], true);
    let revision = flag["revision"].as_u64().expect("a revision");

    // Kill: Evaluate answers off, and the audit trail has the reason.
    let killed = vexil(
        at,
        None,
        &[
            "kill",
            &name,
            "--reason",
            "incident 42",
            "--expected-revision",
            &revision.to_string(),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(killed.code, 0, "{}", killed.stderr);
    assert_eq!(killed.json()["enabled"], false);
    assert_eq!(
        app.evaluate(&name, "user-1", "").await,
        (false, pb::Reason::Disabled)
    );
    // A second change from the same revision conflicts, and changes nothing.
    let stale = vexil(
        at,
        None,
        &[
            "unkill",
            &name,
            "--reason",
            "stale",
            "--expected-revision",
            &revision.to_string(),
        ],
    )
    .await;
    assert_eq!(stale.code, 4, "{} {}", stale.stdout, stale.stderr);
    assert_eq!(
        app.evaluate(&name, "user-1", "").await,
        (false, pb::Reason::Disabled)
    );
    let unkilled = vexil(at, None, &["unkill", &name, "--reason", "fixed"]).await;
    assert_eq!(unkilled.code, 0, "{}", unkilled.stderr);
    let rolled = vexil(
        at,
        None,
        &["rollout", &name, "25", "--reason", "ramp", "-o", "json"],
    )
    .await;
    assert_eq!(rolled.code, 0, "{}", rolled.stderr);
    assert_eq!(rolled.json()["percentage"], 25.0);

    let audit = vexil(at, None, &["audit", &name, "-o", "json"]).await;
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    let reasons: Vec<String> = audit
        .json()
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reasons[..3], ["ramp", "fixed", "incident 42"]);
    let audit_table = vexil(at, None, &["audit", &name]).await;
    assert!(
        audit_table.stdout.contains("enabled: true → false"),
        "{}",
        audit_table.stdout
    );
    assert!(
        audit_table.stdout.contains("percentage: 100.0 → 25.0"),
        "{}",
        audit_table.stdout
    );

    // Refusals and their codes.
    let missing = unique("cli.missing");
    assert_eq!(vexil(at, None, &["flags", "get", &missing]).await.code, 3);
    assert_eq!(
        vexil(at, None, &["kill", &missing, "--reason", "r"])
            .await
            .code,
        3
    );
    assert_eq!(
        vexil(at, None, &["rollout", &name, "101", "--reason", "r"])
            .await
            .code,
        2
    );
    assert_eq!(
        vexil(at, None, &["kill", &name, "--reason", ""]).await.code,
        2
    );
    let deleted = vexil(at, None, &["flags", "delete", &name, "--reason", "done"]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(vexil(at, None, &["flags", "get", &name]).await.code, 3);

    app.stop().await;
    let gone = vexil(at, None, &["flags", "list"]).await;
    assert_eq!(gone.code, 6, "{} {}", gone.stdout, gone.stderr);
    db.remove().await;
}

/// With authentication on: no token and a reader's writes are refused
/// (exit 5, nothing changed); an editor's change is audited under its name.
async fn cli_refusals_with_tokens(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(auth_config(&db.url)).await;
    let editor = signed(&claims("cli-editor", &["editor"]));
    let reader = signed(&claims("cli-reader", &["reader"]));
    let name = unique("cli.auth");
    let at = app.address;
    let tokenless = vexil(at, None, &["flags", "list"]).await;
    assert_eq!(tokenless.code, 5, "{}", tokenless.stderr);
    let mut flags = app.flags.clone();
    let mut request = tonic::Request::new(pb::CreateFlagRequest {
        flag: Some(pb::Flag {
            name: name.clone(),
            enabled: true,
            ..pb::Flag::default()
        }),
        reason: "cli test".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {editor}").parse().expect("ascii"),
    );
    flags.create_flag(request).await.expect("created");

    assert_eq!(
        vexil(at, Some(&reader), &["flags", "get", &name])
            .await
            .code,
        0
    );
    assert_eq!(
        vexil(at, Some(&reader), &["kill", &name, "--reason", "r"])
            .await
            .code,
        5
    );
    assert_eq!(
        vexil(at, None, &["kill", &name, "--reason", "r"])
            .await
            .code,
        5
    );
    let token_file = std::env::temp_dir().join(format!("{}.token", unique("cli")));
    std::fs::write(&token_file, format!("{editor}\n")).expect("write the token");
    let killed = vexil(
        at,
        None,
        &[
            "kill",
            &name,
            "--reason",
            "by file",
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ],
    )
    .await;
    let _ = std::fs::remove_file(&token_file);
    assert_eq!(killed.code, 0, "{}", killed.stderr);
    let audit = vexil(at, Some(&reader), &["audit", &name, "-o", "json"]).await;
    assert_eq!(audit.json()[0]["actor"], "cli-editor");
    assert_eq!(audit.json()[0]["reason"], "by file");
    app.stop().await;
    db.remove().await;
}

crate::backend_tests!(cli_commands_and_their_exit_codes, cli_refusals_with_tokens);
