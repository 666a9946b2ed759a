//! The management commands of the `vexil` binary (`flags`, `kill`,
//! `unkill`, `rollout`, `audit`) run as a user runs them, against a real
//! server: answers on stdout as tables and JSON, and each failure's exit
//! code (invalid 2, not found 3, conflict 4, refused 5, unreachable 6).

use std::net::SocketAddr;

use serde_json::{Value, json};
use vexil::grpc::pb;

use crate::auth::{auth_config, claims, signed};
use crate::common::{Backend, TestApp, TestDatabase, unique};

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("{err}: {} / {}", self.stdout, self.stderr))
    }
}

/// Runs `vexil ARGS` against the server at `address` with `token` in
/// VEXIL_TOKEN (none: unset).
pub(crate) async fn vexil(address: SocketAddr, token: Option<&str>, args: &[&str]) -> Run {
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
    let as_yaml = vexil(at, None, &["flags", "get", &name, "-o", "yaml"]).await;
    assert_eq!(as_yaml.code, 0, "{}", as_yaml.stderr);
    assert!(
        as_yaml.stdout.contains(&format!("name: {name}\n")),
        "{}",
        as_yaml.stdout
    );

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
    let restore = ["restore", &name, "--revision", "1", "--reason", "r"];
    assert_eq!(vexil(at, Some(&reader), &restore).await.code, 5);
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

/// A document with a segment, a typed flag using it, and boolean flags.
fn document(prefix: &str) -> Value {
    serde_json::json!({
        "schema": "vexil.flags/v1",
        "segments": [{"name": format!("{prefix}.beta"), "description": "beta testers",
                      "included": ["u-1", "u-2"], "rules": [{"clauses": [
                          {"attribute": "plan", "op": "in", "values": ["beta"]}]}]}],
        "flags": [
            {"name": format!("{prefix}.checkout"), "type": "string", "enabled": true,
             "variants": [{"name": "old", "value": {"string": "v1"}},
                          {"name": "new", "value": {"string": "v2"}}],
             "rules": [{"id": "beta", "clauses": [
                 {"op": "in_segment", "values": [format!("{prefix}.beta")]}],
                 "serve": {"variant": "new"}}],
             "fallthrough": {"variant": "old"}, "tags": ["web"]},
            {"name": format!("{prefix}.search"), "enabled": true, "percentage": 10.0,
             "whitelist": ["vip-2", "vip-1"], "environments": ["production", "staging"],
             "environment_overrides": {"staging": true}, "tags": ["web", "search"]},
            {"name": format!("{prefix}.legacy"), "enabled": false, "description": "to go"}
        ]
    })
}

pub(crate) fn write_file(directory: &crate::common::TestDir, name: &str, text: &str) -> String {
    let path = directory.join(name);
    std::fs::write(&path, text).expect("write the document");
    path.to_str().expect("utf-8").to_owned()
}

async fn export_import_round_trip_plan_and_prune(backend: Backend) {
    let Some(db_a) = TestDatabase::create(backend).await else {
        return;
    };
    let Some(db_b) = TestDatabase::create(backend).await else {
        return;
    };
    let a = TestApp::start(&db_a.url).await;
    let b = TestApp::start(&db_b.url).await;
    let files = crate::common::TestDir::create();
    let prefix = unique("io");
    let original = write_file(&files, "original.json", &document(&prefix).to_string());

    // Into A from a hand-written file; A's export into an empty B; B's
    // export is byte for byte A's.
    let imported = vexil(a.address, None, &["import", &original, "--reason", "seed"]).await;
    assert_eq!(imported.code, 0, "{} {}", imported.stdout, imported.stderr);
    assert!(
        imported.stdout.contains("plan: 4 change(s)"),
        "{}",
        imported.stdout
    );
    let exported_a = vexil(a.address, None, &["export"]).await;
    assert_eq!(exported_a.code, 0, "{}", exported_a.stderr);
    let exported = write_file(&files, "a.json", &exported_a.stdout);
    let into_b = vexil(b.address, None, &["import", &exported]).await;
    assert_eq!(into_b.code, 0, "{} {}", into_b.stdout, into_b.stderr);
    let exported_b = vexil(b.address, None, &["export"]).await;
    assert_eq!(exported_b.stdout, exported_a.stdout, "exports differ");
    assert!(
        !exported_a.stdout.contains("revision"),
        "{}",
        exported_a.stdout
    );
    // The same in YAML: A's and B's YAML exports are identical, and a
    // YAML file imports as the JSON one did (nothing left to change).
    let yaml_a = vexil(a.address, None, &["export", "--output", "yaml"]).await;
    assert_eq!(yaml_a.code, 0, "{}", yaml_a.stderr);
    assert!(yaml_a.stdout.starts_with("flags:\n"), "{}", yaml_a.stdout);
    let yaml_b = vexil(b.address, None, &["export", "-o", "yaml"]).await;
    assert_eq!(yaml_b.stdout, yaml_a.stdout, "YAML exports differ");
    let yaml_file = write_file(&files, "a.yaml", &yaml_a.stdout);
    let yaml_plan = vexil(b.address, None, &["import", &yaml_file, "--dry-run"]).await;
    assert_eq!(
        yaml_plan.code, 0,
        "{} {}",
        yaml_plan.stdout, yaml_plan.stderr
    );
    assert!(
        yaml_plan.stdout.contains("plan: 0 change(s)"),
        "{}",
        yaml_plan.stdout
    );
    // The segment and the typed flag work on B.
    let checkout = format!("{prefix}.checkout");
    let answer = b
        .evaluation
        .clone()
        .evaluate(pb::EvaluateRequest {
            flag_name: checkout.clone(),
            user_id: "u-1".into(),
            ..Default::default()
        })
        .await
        .expect("evaluate")
        .into_inner();
    assert_eq!(answer.variant, "new");
    // Audited with the reason: the file's name by default.
    let audit = vexil(b.address, None, &["audit", &checkout, "-o", "json"]).await;
    let reason = audit.json()[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("vexil import ") && reason.contains("a.json"),
        "{reason}"
    );

    // The segment through its own commands; in use, it cannot be deleted.
    let segment = format!("{prefix}.beta");
    let segments = vexil(b.address, None, &["segments", "list", "-o", "json"]).await;
    assert_eq!(segments.code, 0, "{}", segments.stderr);
    assert_eq!(segments.json()[0]["name"], segment.as_str());
    assert_eq!(
        segments.json()[0]["included"],
        serde_json::json!(["u-1", "u-2"])
    );
    let got = vexil(b.address, None, &["segments", "get", &segment]).await;
    assert!(got.stdout.contains("beta testers"), "{}", got.stdout);
    let in_use = vexil(
        b.address,
        None,
        &["segments", "delete", &segment, "--reason", "r"],
    )
    .await;
    assert_eq!(in_use.code, 4, "{}", in_use.stderr);
    assert_eq!(
        vexil(b.address, None, &["segments", "get", &unique("io.none")])
            .await
            .code,
        3
    );

    // Again: nothing to do, and a dry run agrees (exit 0).
    let again = vexil(b.address, None, &["import", &exported]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("plan: 0 change(s)"),
        "{}",
        again.stdout
    );
    assert_eq!(
        vexil(b.address, None, &["import", &exported, "--dry-run"])
            .await
            .code,
        0
    );

    // A change in the file: the dry run shows it field by field, exits 7
    // and changes nothing; the import applies it.
    let mut changed = document(&prefix);
    changed["flags"][1]["percentage"] = serde_json::json!(20.0);
    let changed = write_file(&files, "changed.json", &changed.to_string());
    let dry = vexil(b.address, None, &["import", &changed, "--dry-run"]).await;
    assert_eq!(dry.code, 7, "{} {}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains(&format!("~ flag {prefix}.search")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("percentage: 10.0 → 20.0"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        vexil(b.address, None, &["export"]).await.stdout,
        exported_a.stdout
    );
    assert_eq!(vexil(b.address, None, &["import", &changed]).await.code, 0);
    let search = vexil(
        b.address,
        None,
        &["flags", "get", &format!("{prefix}.search"), "-o", "json"],
    )
    .await;
    assert_eq!(search.json()["percentage"], 20.0);

    // A flag the file drops is kept, unless --prune.
    let mut fewer = document(&prefix);
    fewer["flags"].as_array_mut().expect("flags").remove(2);
    let fewer = write_file(&files, "fewer.json", &fewer.to_string());
    let kept = vexil(b.address, None, &["import", &fewer]).await;
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let legacy = format!("{prefix}.legacy");
    assert_eq!(
        vexil(b.address, None, &["flags", "get", &legacy])
            .await
            .code,
        0
    );
    let pruned = vexil(b.address, None, &["import", &fewer, "--prune"]).await;
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert!(
        pruned.stdout.contains(&format!("- flag {legacy}")),
        "{}",
        pruned.stdout
    );
    assert_eq!(
        vexil(b.address, None, &["flags", "get", &legacy])
            .await
            .code,
        3
    );

    // `export | import -`: copying between deployments through a pipe.
    let Some(db_c) = TestDatabase::create(backend).await else {
        return;
    };
    let c = TestApp::start(&db_c.url).await;
    let piped = tokio::task::spawn_blocking({
        let (from, to) = (b.address, c.address);
        move || {
            let mut export = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
                .args(["export", "--addr", &format!("http://{from}")])
                .env_remove("VEXIL_TOKEN")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("export");
            let import = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
                .args(["import", "--addr", &format!("http://{to}"), "-"])
                .env_remove("VEXIL_TOKEN")
                .stdin(export.stdout.take().expect("export's stdout"))
                .output()
                .expect("import");
            let exported = export.wait().expect("export ends");
            (exported.code(), import.status.code())
        }
    })
    .await
    .expect("the pipe's thread");
    assert_eq!(piped, (Some(0), Some(0)));
    assert_eq!(
        vexil(c.address, None, &["export"]).await.stdout,
        vexil(b.address, None, &["export"]).await.stdout
    );
    c.stop().await;
    db_c.remove().await;

    // An invalid file applies nothing, and names each error's place.
    let before = vexil(b.address, None, &["export"]).await.stdout;
    let mut invalid = document(&prefix);
    invalid["flags"][1]["percentage"] = serde_json::json!(150);
    invalid["flags"][2]["name"] = serde_json::json!("not a name!");
    invalid["flags"][0]["description"] = serde_json::json!("changed, but not applied");
    invalid["flags"][0]["tagz"] = serde_json::json!(["typo"]);
    let invalid = write_file(&files, "invalid.json", &invalid.to_string());
    let refused = vexil(b.address, None, &["import", &invalid]).await;
    assert_eq!(refused.code, 2, "{} {}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("flags[1].percentage"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("flags[2].name"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("flags[0].tagz: unknown field"),
        "{}",
        refused.stderr
    );
    assert_eq!(vexil(b.address, None, &["export"]).await.stdout, before);

    a.stop().await;
    b.stop().await;
    db_a.remove().await;
    db_b.remove().await;
}

/// An edit made on the server after the plan and before its change is
/// applied aborts that change only (exit 4); every other change applies.
async fn a_concurrent_edit_aborts_only_its_flag(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let files = crate::common::TestDir::create();
    let prefix = unique("race");
    const FLAGS: usize = 300;
    let flags = |percentage: f64| {
        serde_json::json!({
            "schema": "vexil.flags/v1",
            "flags": (0..FLAGS).map(|i| serde_json::json!({
                "name": format!("{prefix}.{i:04}"), "enabled": true, "percentage": percentage
            })).collect::<Vec<_>>()
        })
        .to_string()
    };
    let first = write_file(&files, "first.json", &flags(10.0));
    assert_eq!(vexil(app.address, None, &["import", &first]).await.code, 0);
    let second = write_file(&files, "second.json", &flags(20.0));

    // The import prints its plan, then applies in name order: the last
    // flag is edited as soon as the plan is out, long before its turn.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["import", &second, "--reason", "release 7"])
        .env("VEXIL_ADDR", format!("http://{}", app.address))
        .env_remove("VEXIL_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the vexil binary");
    let stdout = child.stdout.take().expect("stdout");
    let (planned, plan_out) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut planned = Some(planned);
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("plan:") {
                planned.take().map(|planned| planned.send(()));
            }
        }
    });
    plan_out.await.expect("the plan is printed");
    let last = format!("{prefix}.{:04}", FLAGS - 1);
    app.set_percentage(&last, 55.0).await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the command's thread")
        .expect("the command ends");
    reader.await.expect("stdout read");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("aborted: ~ flag {last}")),
        "{stderr}"
    );
    assert!(stderr.contains("1 change(s) aborted"), "{stderr}");
    // The edit stands; every other flag took the file's value.
    let listed = vexil(app.address, None, &["flags", "list", "-o", "json"])
        .await
        .json();
    for flag in listed.as_array().expect("flags") {
        let expected = if flag["name"] == last.as_str() {
            55.0
        } else {
            20.0
        };
        assert_eq!(flag["percentage"], expected, "{}", flag["name"]);
    }
    app.stop().await;
    db.remove().await;
}

/// `vexil restore` (RestoreFlag): a flag back as it was after an earlier
/// change, audited; a deleted flag created again; refusals by code.
async fn restore_puts_a_flag_back(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let at = app.address;
    let name = unique("cli.restore");
    let created = app
        .create_flag(pb::Flag {
            name: name.clone(),
            enabled: true,
            percentage: 100.0,
            tags: vec!["a".into()],
            ..pb::Flag::default()
        })
        .await;
    let rolled = app.set_percentage(&name, 25.0).await;
    let killed = vexil(
        at,
        None,
        &["kill", &name, "--reason", "incident", "-o", "json"],
    )
    .await;
    let killed_at = killed.json()["revision"].as_u64().expect("a revision");

    // Back to the first revision, guarded by the current one.
    let restored = vexil(
        at,
        None,
        &[
            "restore",
            &name,
            "--revision",
            &created.revision.to_string(),
            "--reason",
            "as it was",
            "--expected-revision",
            &killed_at.to_string(),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let flag = restored.json();
    assert_eq!(
        (flag["enabled"].clone(), flag["percentage"].clone()),
        (true.into(), 100.0.into())
    );
    assert!(app.evaluate(&name, "user-1", "").await.0);
    let audit = vexil(at, None, &["audit", &name, "-o", "json"])
        .await
        .json();
    assert_eq!(audit[0]["reason"], "as it was");
    assert_eq!(audit[0]["action"], "UPDATE");

    // A stale guard, a revision that is not the flag's, and the restore of
    // a deletion are refused, changing nothing.
    let stale = vexil(
        at,
        None,
        &[
            "restore",
            &name,
            "--revision",
            &rolled.revision.to_string(),
            "--reason",
            "r",
            "--expected-revision",
            &killed_at.to_string(),
        ],
    )
    .await;
    assert_eq!(stale.code, 4, "{}", stale.stderr);
    let unknown = vexil(
        at,
        None,
        &["restore", &name, "--revision", "999999", "--reason", "r"],
    )
    .await;
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    let deleted = vexil(
        at,
        None,
        &["flags", "delete", &name, "--reason", "gone", "-o", "json"],
    )
    .await;
    let deleted_at = deleted.json()["revision"].as_u64().expect("a revision");
    let of_deletion = vexil(
        at,
        None,
        &[
            "restore",
            &name,
            "--revision",
            &deleted_at.to_string(),
            "--reason",
            "r",
        ],
    )
    .await;
    assert_eq!(of_deletion.code, 4, "{}", of_deletion.stderr);
    assert!(
        of_deletion.stderr.contains("deleted"),
        "{}",
        of_deletion.stderr
    );

    // A deleted flag comes back as it was at the rollout.
    let back = vexil(
        at,
        None,
        &[
            "restore",
            &name,
            "--revision",
            &rolled.revision.to_string(),
            "--reason",
            "undo delete",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(back.json()["percentage"], 25.0);
    assert_eq!(back.json()["tags"], serde_json::json!(["a"]));
    let audit = vexil(at, None, &["audit", &name, "-o", "json"])
        .await
        .json();
    assert_eq!(audit[0]["action"], "CREATE");
    assert_eq!(audit[0]["reason"], "undo delete");
    app.stop().await;
    db.remove().await;
}

/// `explain` shows the rule and clauses deciding for a typed context,
/// `metrics` answers for a flag and refuses an unknown one, and `watch`
/// prints a change made elsewhere.
async fn explain_metrics_and_watch(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let at = app.address;
    let files = crate::common::TestDir::create();
    let prefix = unique("cli.view");
    let name = format!("{prefix}.plan");
    let document = serde_json::json!({
        "schema": "vexil.flags/v1",
        "flags": [{"name": name, "type": "string", "enabled": true,
            "variants": [{"name": "basic", "value": {"string": "B"}},
                         {"name": "pro", "value": {"string": "P"}}],
            "rules": [{"id": "big", "clauses": [
                {"attribute": "plan", "op": "in", "values": ["enterprise"]},
                {"attribute": "seats", "op": "gte", "values": [10]}],
                "serve": {"variant": "pro"}}],
            "fallthrough": {"variant": "basic"}}]
    });
    let file = write_file(&files, "flags.json", &document.to_string());
    assert_eq!(vexil(at, None, &["import", &file]).await.code, 0);

    let explained = vexil(
        at,
        None,
        &[
            "explain",
            &name,
            "--user",
            "u-1",
            "--context",
            "plan=enterprise",
            "--context",
            "seats=25",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    let explained = explained.json();
    assert_eq!(explained["variant"], "pro");
    assert_eq!(explained["value"], "P");
    assert_eq!(explained["clauses"][0]["seen"], "\"enterprise\"");
    assert_eq!(explained["clauses"][1]["matched"], true);
    let table = vexil(
        at,
        None,
        &["explain", &name, "--user", "u-1", "--context", "seats=3"],
    )
    .await;
    assert!(table.stdout.contains("variant basic"), "{}", table.stdout);

    assert_eq!(vexil(at, None, &["metrics", &name]).await.code, 0);
    let unknown = vexil(at, None, &["metrics", &unique("cli.nothing")]).await;
    assert_eq!(unknown.code, 3, "{} {}", unknown.stdout, unknown.stderr);

    // Watch: the snapshot lists the flag, then a kill made elsewhere
    // arrives as a line.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["watch", "--snapshot", "-o", "json"])
        .env("VEXIL_ADDR", format!("http://{at}"))
        .env_remove("VEXIL_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the vexil binary");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_in, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_about = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>| loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.recv())
            .await
            .expect("a line within 10 s")
            .expect("watch still running");
        let event: Value = serde_json::from_str(&line).expect("a JSON line");
        if event["name"] == name.as_str() {
            break event;
        }
    };
    assert_eq!(next_line_about(&mut lines).await["change"], "on");
    assert_eq!(
        vexil(at, None, &["kill", &name, "--reason", "watched"])
            .await
            .code,
        0
    );
    assert_eq!(next_line_about(&mut lines).await["change"], "killed");
    let _ = child.kill();
    let _ = child.wait();
    drop(lines);
    reader.await.expect("reader");
    app.stop().await;
    db.remove().await;
}

/// A file larger than the management rate limit's burst applies whole:
/// the import waits as the server asks (`grpc-retry-pushback-ms`).
async fn import_paces_itself_to_the_rate_limit(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        management_rate: 40,
        management_burst: 10,
        ..crate::common::config(&db.url)
    })
    .await;
    let files = crate::common::TestDir::create();
    let prefix = unique("paced");
    let document = serde_json::json!({
        "schema": "vexil.flags/v1",
        "flags": (0..60).map(|i| serde_json::json!({"name": format!("{prefix}.{i:02}"), "enabled": true}))
            .collect::<Vec<_>>()
    });
    let file = write_file(&files, "flags.json", &document.to_string());
    let imported = vexil(app.address, None, &["import", &file]).await;
    assert_eq!(imported.code, 0, "{} {}", imported.stdout, imported.stderr);
    assert!(
        imported.stdout.contains("applied 60 change(s)"),
        "{}",
        imported.stdout
    );
    // The bucket refills (10 at 40/s) before this test's own read.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.total_flags().await, 60);
    app.stop().await;
    db.remove().await;
}

crate::backend_tests!(
    flags_create_and_update,
    import_paces_itself_to_the_rate_limit,
    explain_metrics_and_watch,
    restore_puts_a_flag_back,
    a_concurrent_edit_aborts_only_its_flag,
    cli_commands_and_their_exit_codes,
    cli_refusals_with_tokens,
    export_import_round_trip_plan_and_prune
);

async fn flags_create_and_update(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let at = app.address;
    let files = crate::common::TestDir::create();
    let name = unique("cli.created");

    // From options.
    let created = vexil(
        at,
        None,
        &[
            "flags",
            "create",
            &name,
            "--enabled",
            "true",
            "--percentage",
            "25",
            "--tag",
            "web",
            "--reason",
            "new",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let flag = created.json();
    assert_eq!(
        (&flag["enabled"], &flag["percentage"], &flag["tags"]),
        (&json!(true), &json!(25.0), &json!(["web"]))
    );
    let again = vexil(at, None, &["flags", "create", &name, "--reason", "twice"]).await;
    assert_eq!(again.code, 4, "{}", again.stderr);

    // Only the named field changes; a stale revision changes nothing.
    let revision = flag["revision"].as_u64().expect("a revision").to_string();
    let updated = vexil(
        at,
        None,
        &[
            "flags",
            "update",
            &name,
            "--percentage",
            "50",
            "--reason",
            "ramp",
            "--expected-revision",
            &revision,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(updated.code, 0, "{}", updated.stderr);
    assert_eq!(updated.json()["percentage"], json!(50.0));
    assert_eq!(updated.json()["tags"], json!(["web"]));
    let stale = vexil(
        at,
        None,
        &[
            "flags",
            "update",
            &name,
            "--enabled",
            "false",
            "--reason",
            "stale",
            "--expected-revision",
            &revision,
        ],
    )
    .await;
    assert_eq!(stale.code, 4, "{}", stale.stderr);
    let kept = vexil(at, None, &["flags", "get", &name, "-o", "json"]).await;
    assert_eq!(kept.json()["enabled"], json!(true));

    // A typed flag from a YAML file, then its fallthrough from JSON on stdin-like file.
    let typed = unique("cli.typed");
    let yaml = "type: string\nvariants:\n- name: old\n  value: {string: classic}\n\
                - name: new\n  value: {string: one-page}\nfallthrough: {variant: old}\nenabled: true\n";
    let file = write_file(&files, "typed.yaml", yaml);
    let made = vexil(
        at,
        None,
        &["flags", "create", &typed, "--from", &file, "--reason", "r"],
    )
    .await;
    assert_eq!(made.code, 0, "{} {}", made.stdout, made.stderr);
    let change = write_file(
        &files,
        "change.json",
        r#"{"fallthrough": {"variant": "new"}}"#,
    );
    let moved = vexil(
        at,
        None,
        &[
            "flags", "update", &typed, "--from", &change, "--reason", "r", "-o", "json",
        ],
    )
    .await;
    assert_eq!(moved.code, 0, "{} {}", moved.stdout, moved.stderr);
    assert_eq!(moved.json()["variants"].as_array().map(Vec::len), Some(2));
    let answer = app
        .evaluation
        .clone()
        .evaluate(pb::EvaluateRequest {
            flag_name: typed.clone(),
            user_id: "u".into(),
            ..Default::default()
        })
        .await
        .expect("evaluate")
        .into_inner();
    assert_eq!(answer.variant, "new");

    // A segment from YAML, then replaced; a stale revision changes nothing.
    let segment = unique("cli.seg");
    let first = write_file(
        &files,
        "segment.yaml",
        "description: beta\nincluded: [u1, u2]\n",
    );
    let made = vexil(
        at,
        None,
        &[
            "segments", "create", &segment, "--from", &first, "--reason", "r", "-o", "json",
        ],
    )
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert_eq!(made.json()["included"], json!(["u1", "u2"]));
    let revision = made.json()["revision"]
        .as_u64()
        .expect("revision")
        .to_string();
    let second = write_file(
        &files,
        "segment2.json",
        r#"{"rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}]}"#,
    );
    let replaced = vexil(
        at,
        None,
        &[
            "segments",
            "update",
            &segment,
            "--from",
            &second,
            "--reason",
            "r",
            "--expected-revision",
            &revision,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    assert_eq!(replaced.json()["included"], json!([]));
    assert_eq!(replaced.json()["rules"].as_array().map(Vec::len), Some(1));
    let stale = vexil(
        at,
        None,
        &[
            "segments",
            "update",
            &segment,
            "--from",
            &first,
            "--reason",
            "r",
            "--expected-revision",
            &revision,
        ],
    )
    .await;
    assert_eq!(stale.code, 4, "{}", stale.stderr);

    // Refusals: each names its field; nothing changes.
    let unknown = write_file(&files, "unknown.json", r#"{"tagz": ["x"]}"#);
    for (args, code, says) in [
        (vec!["flags", "update", &typed, "--type", "int"], 2, "type"),
        (
            vec!["flags", "update", &typed, "--from", &unknown],
            2,
            "tagz: unknown field",
        ),
        (vec!["flags", "update", &typed], 2, "nothing to change"),
        (
            vec!["flags", "create", "cli.bad", "--percentage", "101"],
            2,
            "flag.percentage",
        ),
        (
            vec!["flags", "update", "cli.missing", "--enabled", "true"],
            3,
            "",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--reason", "r"]);
        let refused = vexil(at, None, &args).await;
        assert_eq!(refused.code, code, "{args:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(says),
            "{args:?}: {}",
            refused.stderr
        );
    }
    app.stop().await;
    db.remove().await;
}
