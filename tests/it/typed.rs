//! Typed flags, targeting rules, splits and prerequisites over gRPC: the
//! shared evaluation vectors (`docs/eval-vectors`) created through
//! CreateFlag and answered by Evaluate, BulkEvaluate and ExplainEvaluation
//! exactly as the files say; writes that would break a reference or a
//! limit are refused naming the field; a typed flag survives a restart.

use serde_json::Value as Json;
use tonic::Code;
use vexil::domain::{Flag, FlagName, FlagSpec, Segment, SegmentSpec, Stamp};
use vexil::grpc::pb;
use vexil_proto::convert::{flag_to_pb, segment_to_pb, struct_to_pb};

use crate::common::{Backend, TestApp, TestDatabase, as_actor, assert_status, mask, watch_engine};

crate::backend_tests!(
    vectors_answer_over_the_wire,
    replicas_and_a_client_agree_on_every_vector_context,
    writes_that_break_references_or_limits_are_refused,
    typed_flags_are_stored_and_audited,
    older_engines_are_not_sent_flags_they_cannot_evaluate,
);

/// The vectors' default evaluation time; cases at another time need a
/// clock Evaluate does not take, and are left to the engine's tests.
const VECTOR_TIME: &str = "2026-06-01T00:00:00Z";

fn vector_files() -> Vec<(String, Json)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/eval-vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a vector file");
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                serde_json::from_str(&text).expect("json"),
            )
        })
        .collect()
}

/// A vector's flag as the API takes it: through the engine's own model and
/// `vexil-proto`'s conversion.
fn wire_flag(json: &Json) -> pb::Flag {
    let name = FlagName::parse("name", json["name"].as_str().expect("name").to_string())
        .expect("a valid name");
    let spec: FlagSpec = serde_json::from_value(json.clone()).expect("a flag");
    let stamp = Stamp {
        revision: 0,
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        created_by: String::new(),
        updated_by: String::new(),
    };
    flag_to_pb(&Flag::new(name, spec, stamp))
}

fn context_of(case: &Json) -> Option<vexil_proto::google::protobuf::Struct> {
    case["context"]["attributes"].as_object().map(struct_to_pb)
}

fn value_json(value: Option<&pb::TypedValue>) -> Json {
    use pb::typed_value::Value as V;
    match value.and_then(|value| value.value.as_ref()) {
        None => Json::Null,
        Some(V::BoolValue(b)) => Json::Bool(*b),
        Some(V::StringValue(s)) => Json::String(s.clone()),
        Some(V::IntValue(n)) => Json::from(*n),
        Some(V::FloatValue(n)) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Some(V::ObjectValue(object)) => Json::Object(
            vexil_proto::convert::struct_from_pb("value", object.clone()).expect("an object"),
        ),
    }
}

/// `value` with every number as a double.
fn doubles(value: &Json) -> Json {
    match value {
        Json::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Json::Array(items) => Json::Array(items.iter().map(doubles).collect()),
        Json::Object(object) => Json::Object(
            object
                .iter()
                .map(|(key, value)| (key.clone(), doubles(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A vector file's segments (in file order: a segment refers only to those
/// before it) and the flags the API takes, created on `app`; returns the
/// flags' names.
async fn create_state(app: &TestApp, file: &str, state: &Json) -> Vec<String> {
    for segment in state["segments"].as_array().into_iter().flatten() {
        let name = segment["name"].as_str().expect("name");
        let spec: SegmentSpec = serde_json::from_value(segment.clone()).expect("a segment");
        let wire = segment_to_pb(&Segment::new(
            FlagName::parse("name", name.to_string()).expect("name"),
            spec,
            0,
            chrono::DateTime::UNIX_EPOCH,
        ));
        app.flags
            .clone()
            .create_segment(pb::CreateSegmentRequest {
                segment: Some(wire),
                reason: file.to_string(),
            })
            .await
            .unwrap_or_else(|status| panic!("{file}: segment {name}: {status:?}"));
    }
    let mut created = Vec::new();
    for flag in state["flags"].as_array().expect("flags") {
        if flag["api"] != false {
            created.push(app.create_flag(wire_flag(flag)).await.name);
        }
    }
    created
}

/// Every case of every vector file at the files' default time, with the
/// file's segments created through CreateSegment: Evaluate's value,
/// variant and reason are the file's; BulkEvaluate and ExplainEvaluation
/// agree.
async fn vectors_answer_over_the_wire(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut checked = 0;
    for (file, document) in vector_files() {
        let created = create_state(&app, &file, &document["state"]).await;
        let skipped: Vec<Json> = document["state"]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .map(|flag| flag["name"].clone())
            .filter(|name| !created.iter().any(|created| name == created.as_str()))
            .collect();
        for case in document["tests"].as_array().expect("tests") {
            if case["context"]["at"] != VECTOR_TIME || skipped.contains(&case["flag"]) {
                continue;
            }
            let flag_name = case["flag"].as_str().expect("flag").to_string();
            let user_id = case["context"]["user_id"]
                .as_str()
                .expect("user")
                .to_string();
            let environment = case["context"]["environment"]
                .as_str()
                .expect("environment")
                .to_string();
            let what = format!("{file}: {}", case["description"]);
            let expected = &case["expected"];
            let answer = app
                .evaluation
                .clone()
                .evaluate(pb::EvaluateRequest {
                    flag_name: flag_name.clone(),
                    user_id: user_id.clone(),
                    environment: environment.clone(),
                    context: context_of(case),
                })
                .await
                .expect("evaluate")
                .into_inner();
            let reason = answer.reason().as_str_name().trim_start_matches("REASON_");
            assert_eq!(reason, expected["reason"], "{what}");
            // Objects travel as protobuf Structs, whose numbers are doubles.
            let got = value_json(answer.value.as_ref());
            let (got, wanted) = match got {
                Json::Object(_) => (doubles(&got), doubles(&expected["value"])),
                _ => (got, expected["value"].clone()),
            };
            assert_eq!(got, wanted, "{what}");
            let variant = (!answer.variant.is_empty()).then_some(answer.variant.as_str());
            assert_eq!(variant, expected["variant"].as_str(), "{what}");

            let bulk = app
                .evaluation
                .clone()
                .bulk_evaluate(pb::BulkEvaluateRequest {
                    flag_names: vec![flag_name.clone()],
                    user_id: user_id.clone(),
                    environment: environment.clone(),
                    context: context_of(case),
                })
                .await
                .expect("bulk")
                .into_inner();
            let one = &bulk.results[0];
            assert_eq!(
                (one.reason, &one.variant, &one.value, one.rule_index),
                (
                    answer.reason,
                    &answer.variant,
                    &answer.value,
                    answer.rule_index
                ),
                "{what}: bulk"
            );

            let explained = app
                .flags
                .clone()
                .explain_evaluation(pb::ExplainEvaluationRequest {
                    flag_name,
                    user_id,
                    environment,
                    at: None,
                    context: context_of(case),
                })
                .await
                .expect("explain")
                .into_inner();
            assert_eq!(
                (explained.reason, &explained.variant, &explained.value),
                (answer.reason, &answer.variant, &answer.value),
                "{what}: explain"
            );
            checked += 1;
        }
    }
    assert!(checked >= 300, "only {checked} cases checked");
}

async fn refused(app: &TestApp, flag: Json, field: &str) {
    let outcome = app
        .flags
        .clone()
        .create_flag(as_actor(
            "tester",
            pb::CreateFlagRequest {
                flag: Some(wire_flag(&flag)),
                reason: "test".into(),
            },
        ))
        .await;
    assert_status(outcome, Code::InvalidArgument, field);
}

fn string_flag(name: &str, extra: Json) -> Json {
    let mut flag = serde_json::json!({
        "name": name, "enabled": true, "type": "string",
        "variants": [{"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}}],
        "fallthrough": {"variant": "a"},
    });
    for (key, value) in extra.as_object().expect("an object") {
        flag[key] = value.clone();
    }
    flag
}

async fn writes_that_break_references_or_limits_are_refused(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let base = wire_flag(&string_flag("base", serde_json::json!({})));
    app.create_flag(base).await;
    app.create_flag(wire_flag(&string_flag(
        "dependent",
        serde_json::json!({"prerequisites": [{"flag": "base", "variants": ["b"]}]}),
    )))
    .await;

    let cases = [
        (
            serde_json::json!({"prerequisites": [{"flag": "nowhere"}]}),
            "flag.prerequisites[0].flag",
        ),
        (
            serde_json::json!({"prerequisites": [{"flag": "dependent"}]}),
            "flag.prerequisites[0].flag",
        ),
        (
            serde_json::json!({"prerequisites": [{"flag": "base", "variants": ["zzz"]}]}),
            "flag.prerequisites[0].variants",
        ),
        (
            serde_json::json!({"rules": [{"clauses": [{"op": "in_segment", "values": ["nobody"]}], "serve": {"variant": "a"}}]}),
            "flag.rules[0].clauses[0].values",
        ),
        (
            serde_json::json!({"rules": [{"clauses": [{"attribute": "v", "op": "semver_gte", "values": ["two"]}], "serve": {"variant": "a"}}]}),
            "flag.rules[0].clauses[0].values",
        ),
        (
            serde_json::json!({"rules": [{"clauses": [{"attribute": "e", "op": "matches", "values": ["(unclosed"]}], "serve": {"variant": "a"}}]}),
            "flag.rules[0].clauses[0].values",
        ),
        (
            serde_json::json!({"rules": [{"clauses": [{"attribute": "$who", "op": "exists"}], "serve": {"variant": "a"}}]}),
            "flag.rules[0].clauses[0].attribute",
        ),
        (
            serde_json::json!({"fallthrough": {"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 4999}]}}}),
            "flag.fallthrough.split.weights",
        ),
        (
            serde_json::json!({"fallthrough": {"variant": "c"}}),
            "flag.fallthrough.variant",
        ),
        (serde_json::json!({"off_variant": "c"}), "flag.off_variant"),
        (serde_json::json!({"percentage": 10.0}), "flag.percentage"),
        (
            serde_json::json!({"variants": [{"name": "a", "value": {"int": 1}}]}),
            "flag.variants[0].value",
        ),
        (
            serde_json::json!({"rules": (0..201).map(|_| serde_json::json!({"clauses": [{"attribute": "x", "op": "exists"}], "serve": {"variant": "a"}})).collect::<Vec<_>>()}),
            "flag.rules",
        ),
    ];
    for (i, (extra, field)) in cases.into_iter().enumerate() {
        refused(&app, string_flag(&format!("refused-{i}"), extra), field).await;
    }
    // A required flag cannot gain prerequisites: that would be a chain.
    let outcome = app
        .flags
        .clone()
        .update_flag(as_actor(
            "tester",
            pb::UpdateFlagRequest {
                flag: Some(wire_flag(&string_flag(
                    "base",
                    serde_json::json!({"prerequisites": [{"flag": "dependent"}]}),
                ))),
                update_mask: mask(&["prerequisites"]),
                reason: "chain".into(),
                expected_revision: None,
            },
        ))
        .await;
    assert_status(outcome, Code::InvalidArgument, "flag.prerequisites");
    // A required flag cannot be deleted.
    let outcome = app
        .flags
        .clone()
        .delete_flag(as_actor(
            "tester",
            pb::DeleteFlagRequest {
                name: "base".into(),
                reason: "cleanup".into(),
                expected_revision: None,
            },
        ))
        .await;
    assert_status(
        outcome,
        Code::FailedPrecondition,
        "prerequisite of 'dependent'",
    );
    // An enabled flag's split keeps its salt.
    app.create_flag(wire_flag(&string_flag(
        "experiment",
        serde_json::json!({"fallthrough": {"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}]}}}),
    )))
    .await;
    let outcome = app
        .flags
        .clone()
        .update_flag(as_actor(
            "tester",
            pb::UpdateFlagRequest {
                flag: Some(wire_flag(&string_flag(
                    "experiment",
                    serde_json::json!({"fallthrough": {"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}], "salt": "new"}}}),
                ))),
                update_mask: mask(&["fallthrough"]),
                reason: "reshuffle".into(),
                expected_revision: None,
            },
        ))
        .await;
    assert_status(outcome, Code::FailedPrecondition, "flag.fallthrough.split");
}

/// A typed flag comes back from GetFlag as created, with its audit entry
/// holding the variants and rules, and answers the same after a restart
/// (the targeting column is read back).
async fn typed_flags_are_stored_and_audited(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let flag = string_flag(
        "checkout.theme",
        serde_json::json!({
            "off_variant": "b",
            "targets": [{"variant": "b", "user_ids": ["vip"]}],
            "rules": [{"id": "enterprise", "clauses": [
                {"attribute": "plan", "op": "in", "values": ["enterprise"]},
                {"attribute": "version", "op": "semver_gte", "values": ["2.3.0"]}
            ], "serve": {"variant": "b"}}],
            "fallthrough": {"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}]}}
        }),
    );
    let sent = wire_flag(&flag);
    let evaluate = |app: &TestApp| {
        let mut client = app.evaluation.clone();
        async move {
            client
                .evaluate(pb::EvaluateRequest {
                    flag_name: "checkout.theme".into(),
                    user_id: "someone".into(),
                    environment: String::new(),
                    context: Some(struct_to_pb(
                        serde_json::json!({"plan": "enterprise", "version": "2.10"})
                            .as_object()
                            .expect("object"),
                    )),
                })
                .await
                .expect("evaluate")
                .into_inner()
        }
    };
    {
        let app = TestApp::start(&db.url).await;
        let created = app.create_flag(sent.clone()).await;
        assert_eq!(created.variants, sent.variants);
        assert_eq!(created.rules, sent.rules);
        // Typed flags need engine 2 (3 only for flagd bucketing and paths).
        assert_eq!(created.min_engine, 2);
        let answer = evaluate(&app).await;
        assert_eq!(answer.reason(), pb::Reason::RuleMatch);
        assert_eq!(
            (answer.rule_index, answer.rule_id.as_str()),
            (Some(0), "enterprise")
        );
        let trail = app.audit_trail("checkout.theme").await;
        let after = trail[0].after.as_ref().expect("after");
        assert_eq!((&after.rules, &after.targets), (&sent.rules, &sent.targets));
        app.stop().await;
    }
    let app = TestApp::start(&db.url).await;
    let stored = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: "checkout.theme".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        (
            stored.r#type,
            &stored.variants,
            &stored.rules,
            &stored.fallthrough
        ),
        (sent.r#type, &sent.variants, &sent.rules, &sent.fallthrough)
    );
    let answer = evaluate(&app).await;
    assert_eq!(answer.variant, "b");
    assert_eq!(answer.reason(), pb::Reason::RuleMatch);
}

/// The next change on `stream`, skipping heartbeats.
async fn next_change(stream: &mut tonic::codec::Streaming<pb::WatchResponse>) -> pb::FlagChange {
    loop {
        match stream.message().await.expect("a message").expect("open") {
            pb::WatchResponse {
                event: Some(pb::watch_response::Event::Change(change)),
            } => return change,
            pb::WatchResponse {
                event: Some(pb::watch_response::Event::Heartbeat(_)),
            } => continue,
            other => panic!("expected a change, got {other:?}"),
        }
    }
}

/// A client from before typed flags (engine 0 or 1) is sent neither typed
/// flags nor boolean flags with rules: they are absent from its snapshot
/// and arrive as deletions, so it answers "not found" (its code default)
/// rather than evaluating them wrongly. A current client gets them all.
async fn older_engines_are_not_sent_flags_they_cannot_evaluate(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(pb::Flag {
        name: "plain".into(),
        enabled: true,
        percentage: 50.0,
        ..pb::Flag::default()
    })
    .await;
    app.create_flag(wire_flag(&string_flag("typed", serde_json::json!({}))))
        .await;
    let (old_snapshot, mut old) = watch_engine(&app, 0).await;
    let (new_snapshot, mut new) = watch_engine(&app, vexil::engine::ENGINE).await;
    let names = |snapshot: &pb::WatchSnapshot| {
        snapshot
            .flags
            .iter()
            .map(|flag| flag.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&old_snapshot), ["plain"]);
    assert_eq!(names(&new_snapshot), ["plain", "typed"]);

    // A boolean flag gaining a rule needs the new engine too.
    let ruled = wire_flag(&serde_json::json!({
        "name": "plain", "enabled": true,
        "rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": ["x"]}], "serve": {"variant": "on"}}],
    }));
    app.flags
        .clone()
        .update_flag(as_actor(
            "tester",
            pb::UpdateFlagRequest {
                flag: Some(ruled),
                update_mask: mask(&["rules", "percentage"]),
                reason: "a rule".into(),
                expected_revision: None,
            },
        ))
        .await
        .expect("update");
    let change = next_change(&mut old).await;
    assert_eq!(
        (
            change.flag_name.as_str(),
            change.kind(),
            change.flag.is_none()
        ),
        ("plain", pb::ChangeKind::Deleted, true)
    );
    let change = next_change(&mut new).await;
    assert_eq!(change.kind(), pb::ChangeKind::Upserted);
    assert_eq!(change.flag.expect("the flag").rules.len(), 1);
}

/// Two replicas (on one database and Redis) and a Watch-fed Rust client
/// give the same answer (reason and variant) for every vector flag, over
/// 10,000 users, each with one of the vectors' contexts in turn: the
/// state is written on A, so B and the client learn it only through Redis,
/// the change log and Watch.
async fn replicas_and_a_client_agree_on_every_vector_context(backend: Backend) {
    use crate::common::{RedisKeys, eventually, redis_url, replica, unique, wait_for_bus};
    use tonic_health::pb::health_check_response::ServingStatus;
    const USERS: usize = 10_000;
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:agree:");
    let _keys = RedisKeys::under(&redis, &channel);
    let a = replica(&db.url, redis.clone(), &channel, 3600).await;
    let b = replica(&db.url, redis.clone(), &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;
    // (flags of the file, environment, context) per case at the files' time.
    let mut contexts = Vec::new();
    let mut all_flags = Vec::new();
    for (file, document) in vector_files() {
        let flags = create_state(&a, &file, &document["state"]).await;
        for case in document["tests"].as_array().expect("tests") {
            if case["context"]["at"] != VECTOR_TIME {
                continue;
            }
            let attributes = case["context"]["attributes"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let environment = case["context"]["environment"]
                .as_str()
                .expect("environment")
                .to_string();
            contexts.push((flags.clone(), environment, attributes));
        }
        all_flags.extend(flags);
    }
    let revision = a
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: all_flags.last().expect("flags").clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .revision;
    let client = vexil_client::Client::builder()
        .endpoints([format!("http://{}", b.address)])
        .build()
        .connect()
        .await
        .expect("connect");
    eventually(
        std::time::Duration::from_secs(30),
        "B and its client have every flag",
        async || client.revision() >= revision,
    )
    .await;
    let bulk = |app: &TestApp, flags: &[String], user: &str, environment: &str, context| {
        let mut evaluation = app.evaluation.clone();
        let request = pb::BulkEvaluateRequest {
            flag_names: flags.to_vec(),
            user_id: user.to_string(),
            environment: environment.to_string(),
            context: Some(context),
        };
        async move {
            evaluation
                .bulk_evaluate(request)
                .await
                .expect("bulk evaluate")
                .into_inner()
                .results
        }
    };
    let mut compared = 0;
    for i in 0..USERS {
        let (flags, environment, attributes) = &contexts[i % contexts.len()];
        let user = format!("user-{i}");
        let context = struct_to_pb(attributes);
        let on_a = bulk(&a, flags, &user, environment, context.clone()).await;
        let on_b = bulk(&b, flags, &user, environment, context).await;
        for ((flag, from_a), from_b) in flags.iter().zip(&on_a).zip(&on_b) {
            let answer = |result: &pb::FlagEvaluation| {
                (
                    result
                        .reason()
                        .as_str_name()
                        .trim_start_matches("REASON_")
                        .to_string(),
                    result.variant.clone(),
                )
            };
            let local = client.evaluate_in(flag, &user, environment, attributes);
            let variant = client
                .variant(flag, &user, environment, attributes)
                .unwrap_or_default();
            let what = format!("{flag} for {user} in {environment:?} with {attributes:?}");
            assert_eq!(answer(from_a), answer(from_b), "A and B: {what}");
            assert_eq!(
                answer(from_a),
                (local.reason.name().to_string(), variant),
                "A and the client: {what}"
            );
            compared += 1;
        }
    }
    assert!(compared >= USERS, "only {compared} answers compared");
    a.stop().await;
    b.stop().await;
}
