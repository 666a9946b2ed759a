//! OpenFeature's protocols on the real server: flagd's evaluation API
//! (v1 and v2, over gRPC) and OFREP (over HTTP) answer exactly as Evaluate
//! does, with OpenFeature's reasons, errors, change events and limits. The
//! unmodified providers themselves run in `tests/openfeature` (`.ci/openfeature`).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};
use vexil::grpc::flagd::{v1, v2};
use vexil::grpc::pb;
use vexil_proto::google::protobuf::value::Kind;
use vexil_proto::google::protobuf::{Struct, Value};

use crate::common::http::{self, post_json};
use crate::common::{Backend, TestApp, TestDatabase, as_actor, unique};

crate::backend_tests!(flagd_and_ofrep_answer_as_evaluate_does);

fn text(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.into())),
    }
}

/// An OpenFeature context: the user, and the environment when given.
fn context(user: Option<&str>, environment: Option<&str>) -> Option<Struct> {
    let mut fields = std::collections::BTreeMap::new();
    if let Some(user) = user {
        fields.insert("targetingKey".to_string(), text(user));
    }
    if let Some(environment) = environment {
        fields.insert("environment".to_string(), text(environment));
    }
    Some(Struct { fields })
}

fn metadata_of(metadata: &Option<Struct>) -> (f64, String) {
    let fields = &metadata.as_ref().expect("metadata").fields;
    let revision = match fields.get("revision").and_then(|v| v.kind.clone()) {
        Some(Kind::NumberValue(revision)) => revision,
        other => panic!("revision: {other:?}"),
    };
    let reason = match fields.get("vexilReason").and_then(|v| v.kind.clone()) {
        Some(Kind::StringValue(reason)) => reason,
        other => panic!("vexilReason: {other:?}"),
    };
    (revision, reason)
}

fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_lazy()
}

async fn flagd_and_ofrep_answer_as_evaluate_does(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_openfeature(crate::common::config(&db.url)).await;
    let flagd = channel(app.flagd.expect("flagd"));
    let mut v1 = v1::service_client::ServiceClient::new(flagd.clone());
    let mut v2 = v2::service_client::ServiceClient::new(flagd);
    let ofrep = app.ofrep.expect("ofrep");
    let prefix = unique("of");
    let flags = crate::common::rule_flags(&app, &prefix).await;

    let mut compared = 0;
    for (name, kind) in &flags {
        for environment in [Some("production"), Some("staging"), None] {
            for i in 0..120 {
                let user = format!("user-{i}");
                let (enabled, reason) = app
                    .evaluate(name, &user, environment.unwrap_or_default())
                    .await;
                let vexil_reason = reason
                    .as_str_name()
                    .trim_start_matches("REASON_")
                    .to_string();
                let ctx = context(Some(&user), environment);
                let case = format!("{name} {user} {environment:?}");

                let answer = v2
                    .resolve_boolean(v2::ResolveBooleanRequest {
                        flag_key: name.clone(),
                        context: ctx.clone(),
                    })
                    .await
                    .expect("v2")
                    .into_inner();
                assert_eq!(answer.reason, *kind, "{case}");
                assert_eq!(metadata_of(&answer.metadata).1, vexil_reason, "{case}");
                // Every answer has its value, a killed flag's too (false):
                // OpenFeature's providers would replace a missing one, or
                // one with reason DISABLED, by the caller's default.
                assert_eq!(answer.value, Some(enabled), "{case}");
                let variant = if enabled { "on" } else { "off" };
                assert_eq!(answer.variant.as_deref(), Some(variant), "{case}");

                let old = v1
                    .resolve_boolean(v1::ResolveBooleanRequest {
                        flag_key: name.clone(),
                        context: ctx,
                    })
                    .await
                    .expect("v1")
                    .into_inner();
                assert_eq!(old.value, enabled, "{case}");
                assert_eq!(old.reason, *kind, "{case}");

                let mut body = json!({ "context": { "targetingKey": user } });
                if let Some(environment) = environment {
                    body["context"]["environment"] = json!(environment);
                }
                let reply =
                    post_json(ofrep, &format!("/ofrep/v1/evaluate/flags/{name}"), &body).await;
                assert_eq!(reply.status, 200, "{case}");
                let answer = reply.json();
                assert_eq!(answer["key"], json!(name), "{case}");
                assert_eq!(answer["value"], json!(enabled), "{case}");
                assert_eq!(answer["reason"], json!(kind), "{case}");
                assert_eq!(
                    answer["metadata"]["vexilReason"],
                    json!(vexil_reason),
                    "{case}"
                );
                assert_eq!(answer["cacheable"], json!(*kind == "STATIC"), "{case}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, flags.len() * 3 * 120);

    // ResolveAll and bulk OFREP: every flag, the same answers.
    let all = v2
        .resolve_all(v2::ResolveAllRequest {
            context: context(Some("user-1"), Some("staging")),
        })
        .await
        .expect("resolve all")
        .into_inner();
    let bulk = post_json(
        ofrep,
        "/ofrep/v1/evaluate/flags",
        &json!({ "context": { "targetingKey": "user-1", "environment": "staging" } }),
    )
    .await;
    assert_eq!(bulk.status, 200);
    let bulk = bulk.json();
    for (name, kind) in &flags {
        let (enabled, _) = app.evaluate(name, "user-1", "staging").await;
        let flag = &all.flags[name];
        assert_eq!(flag.reason, *kind, "{name}");
        let expected = Some(v2::any_flag::Value::BoolValue(enabled));
        assert_eq!(flag.value, expected, "{name}");
        let answer = bulk["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .find(|flag| flag["key"] == json!(name))
            .expect("flag in bulk");
        assert_eq!(answer["value"], json!(enabled), "{name}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagd_errors_selector_and_event_stream() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start_openfeature(crate::common::config(&db.url)).await;
    let mut v2 = v2::service_client::ServiceClient::new(channel(app.flagd.expect("flagd")));
    let prefix = unique("flagd");
    crate::common::rule_flags(&app, &prefix).await;
    let rollout = format!("{prefix}.rollout");
    let override_flag = format!("{prefix}.override");

    let boolean = |flag_key: &str, ctx: Option<Struct>| v2::ResolveBooleanRequest {
        flag_key: flag_key.into(),
        context: ctx,
    };
    for missing in ["no-such-flag", "not a name!", ""] {
        let status = v2
            .resolve_boolean(boolean(missing, None))
            .await
            .expect_err("unknown flag");
        assert_eq!(status.code(), Code::NotFound, "{missing:?}: {status:?}");
    }
    let status = v2
        .resolve_string(v2::ResolveStringRequest {
            flag_key: rollout.clone(),
            context: None,
        })
        .await
        .expect_err("type mismatch");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("TYPE_MISMATCH"), "{status:?}");
    let status = v2
        .resolve_int(v2::ResolveIntRequest {
            flag_key: "no-such-flag".into(),
            context: None,
        })
        .await
        .expect_err("unknown flag first");
    assert_eq!(status.code(), Code::NotFound);
    let numeric_user = Some(Struct {
        fields: [(
            "targetingKey".to_string(),
            Value {
                kind: Some(Kind::NumberValue(7.0)),
            },
        )]
        .into(),
    });
    let status = v2
        .resolve_boolean(boolean(&rollout, numeric_user))
        .await
        .expect_err("a targeting key must be a string");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("targetingKey"), "{status:?}");

    // The selector header names the environment; the context's attribute wins.
    let with_selector = |ctx: Option<Struct>| {
        let mut request = Request::new(boolean(&override_flag, ctx));
        request
            .metadata_mut()
            .insert("flagd-selector", "staging".parse().expect("ascii"));
        request
    };
    let staged = v2
        .resolve_boolean(with_selector(context(Some("u1"), None)))
        .await
        .expect("selector")
        .into_inner();
    assert_eq!(staged.value, Some(true));
    let production = v2
        .resolve_boolean(with_selector(context(Some("u1"), Some("production"))))
        .await
        .expect("attribute")
        .into_inner();
    assert_eq!(production.value, Some(false));

    // EventStream: ready first, then each change in order with its type.
    let mut events = v2
        .event_stream(v2::EventStreamRequest {})
        .await
        .expect("event stream")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("an event")
    };
    assert_eq!(next().await.r#type, "provider_ready");
    let name = format!("{prefix}.fresh");
    app.create_flag(pb::Flag {
        name: name.clone(),
        enabled: true,
        ..pb::Flag::default()
    })
    .await;
    app.set_percentage(&name, 50.0).await;
    app.flags
        .clone()
        .delete_flag(as_actor(
            "tester",
            pb::DeleteFlagRequest {
                name: name.clone(),
                reason: "test".into(),
                expected_revision: None,
            },
        ))
        .await
        .expect("delete");
    for expected in ["write", "update", "delete"] {
        let event = next().await;
        assert_eq!(event.r#type, "configuration_change");
        let data = event.data.expect("data");
        let Some(Kind::StructValue(changed)) = data.fields["flags"].kind.clone() else {
            panic!("flags: {data:?}");
        };
        let Some(Kind::StructValue(flag)) = changed.fields[&name].kind.clone() else {
            panic!("{name}: {changed:?}");
        };
        assert_eq!(flag.fields["type"], text(expected));
    }

    // A segment change is announced as an update of the flags testing it.
    let segment = format!("{prefix}.testers");
    let segment_of = |included: &str| pb::Segment {
        name: segment.clone(),
        included: vec![included.into()],
        ..pb::Segment::default()
    };
    app.flags
        .clone()
        .create_segment(as_actor(
            "tester",
            pb::CreateSegmentRequest {
                segment: Some(segment_of("u1")),
                reason: "test".into(),
            },
        ))
        .await
        .expect("create the segment");
    let gated = format!("{prefix}.gated");
    app.create_flag(pb::Flag {
        name: gated.clone(),
        enabled: true,
        rules: vec![pb::TargetingRule {
            clauses: vec![pb::Clause {
                op: pb::Operator::InSegment.into(),
                values: vec![pb::ClauseValue {
                    value: Some(pb::clause_value::Value::StringValue(segment.clone())),
                }],
                ..pb::Clause::default()
            }],
            serve: Some(pb::Serve {
                kind: Some(pb::serve::Kind::Variant("on".into())),
            }),
            ..pb::TargetingRule::default()
        }],
        ..pb::Flag::default()
    })
    .await;
    app.flags
        .clone()
        .update_segment(as_actor(
            "tester",
            pb::UpdateSegmentRequest {
                segment: Some(segment_of("u2")),
                reason: "test".into(),
                expected_revision: None,
            },
        ))
        .await
        .expect("update the segment");
    for (expected, changed_flag) in [("write", &gated), ("update", &gated)] {
        let event = next().await;
        assert_eq!(event.r#type, "configuration_change");
        let data = event.data.expect("data");
        let Some(Kind::StructValue(changed)) = data.fields["flags"].kind.clone() else {
            panic!("flags: {data:?}");
        };
        assert_eq!(changed.fields.len(), 1, "{changed:?}");
        let Some(Kind::StructValue(flag)) = changed.fields[changed_flag].kind.clone() else {
            panic!("{changed_flag}: {changed:?}");
        };
        assert_eq!(flag.fields["type"], text(expected));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_errors_etags_cors_and_events() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let config = vexil::Config {
        ofrep_cors_origins: vec!["https://app.example".into()],
        ..crate::common::config(&db.url)
    };
    let app = TestApp::start_openfeature(config).await;
    let ofrep = app.ofrep.expect("ofrep");
    let prefix = unique("ofrep");
    crate::common::rule_flags(&app, &prefix).await;
    let rollout = format!("/ofrep/v1/evaluate/flags/{prefix}.rollout");

    let missing = post_json(ofrep, "/ofrep/v1/evaluate/flags/no-such-flag", &json!({})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing.json()["key"], "no-such-flag");
    for (body, code) in [
        ("{not json", "PARSE_ERROR"),
        ("[1]", "PARSE_ERROR"),
        (r#"{"context": 5}"#, "INVALID_CONTEXT"),
        (r#"{"context": {"targetingKey": 5}}"#, "INVALID_CONTEXT"),
        (
            r#"{"context": {"targetingKey": "u", "environment": []}}"#,
            "INVALID_CONTEXT",
        ),
        (r#"{"context": {}}"#, "TARGETING_KEY_MISSING"),
    ] {
        let reply = http::request(ofrep, "POST", &rollout, &[], body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json()["errorCode"], code, "{body}");
        assert!(reply.json()["errorDetails"].is_string(), "{body}");
    }
    // No targeting key is fine where the user does not decide.
    let everyone = post_json(
        ofrep,
        &format!("/ofrep/v1/evaluate/flags/{prefix}.everyone"),
        &json!({}),
    )
    .await;
    assert_eq!(everyone.json()["value"], true);

    // Bulk: ETag, 304 while unchanged, a new ETag after a change.
    let body = json!({ "context": { "targetingKey": "user-9" } }).to_string();
    let first = http::request(ofrep, "POST", "/ofrep/v1/evaluate/flags", &[], &body).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("etag").to_string();
    assert_eq!(first.json()["eventStreams"][0]["type"], "sse");
    let conditional = [("if-none-match", etag.as_str())];
    let again = http::request(
        ofrep,
        "POST",
        "/ofrep/v1/evaluate/flags",
        &conditional,
        &body,
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other_user = json!({ "context": { "targetingKey": "user-10" } }).to_string();
    let other = http::request(
        ofrep,
        "POST",
        "/ofrep/v1/evaluate/flags",
        &conditional,
        &other_user,
    )
    .await;
    assert_eq!(other.status, 200, "another context, another answer");

    // SSE: a refetch event per change, naming the change's revision.
    let events = http::open(ofrep, "GET", "/ofrep/v1/events", &[], "").await;
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut events = events.into_body();
    let updated = app
        .set_percentage(&format!("{prefix}.rollout"), 100.0)
        .await;
    let mut received = String::new();
    let wanted = format!(r#""etag":"{}""#, updated.revision);
    while !received.contains(&wanted) {
        let frame = tokio::time::timeout(Duration::from_secs(10), events.frame())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            received.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(
        received.contains(r#""type":"refetchEvaluation""#),
        "{received}"
    );
    let refetch = http::request(
        ofrep,
        "POST",
        &format!(
            "/ofrep/v1/evaluate/flags?flagConfigEtag={}",
            updated.revision
        ),
        &conditional,
        &body,
    )
    .await;
    assert_eq!(refetch.status, 200);
    assert_ne!(refetch.header("etag"), Some(etag.as_str()));

    let configuration = http::request(ofrep, "GET", "/ofrep/v1/configuration", &[], "").await;
    assert_eq!(configuration.status, 200);
    let capabilities = &configuration.json()["capabilities"];
    assert_eq!(
        capabilities["flagEvaluation"]["supportedTypes"],
        json!(["boolean", "string", "integer", "float", "object"])
    );
    assert_eq!(
        capabilities["cacheInvalidation"]["polling"]["enabled"],
        true
    );

    // CORS: the configured origin is allowed, others are not.
    let preflight = async |origin: &str| {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,if-none-match",
            ),
        ];
        http::request(ofrep, "OPTIONS", "/ofrep/v1/evaluate/flags", &headers, "").await
    };
    let allowed = preflight("https://app.example").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let refused = preflight("https://elsewhere.example").await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfeature_edges_apply_authentication_and_rate_limits() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let config = vexil::Config {
        auth_evaluation: vexil::config::EvaluationAuth::Evaluator,
        ..crate::auth::auth_config(&db.url)
    };
    let app = TestApp::start_openfeature(config).await;
    let ofrep = app.ofrep.expect("ofrep");
    let path = "/ofrep/v1/evaluate/flags/anything";
    let body = r#"{"context": {"targetingKey": "u1"}}"#;

    let anonymous = http::request(ofrep, "POST", path, &[], body).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    // Refused before its body: a caller without a token cannot hold one open.
    let partial = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"context\""
    );
    assert!(
        answer_starts(ofrep, &partial)
            .await
            .starts_with("HTTP/1.1 401"),
        "401 before the body is complete"
    );
    let reader = format!(
        "Bearer {}",
        crate::auth::signed(&crate::auth::claims("reader", &["reader"]))
    );
    let forbidden = http::request(ofrep, "POST", path, &[("authorization", &reader)], body).await;
    assert_eq!(forbidden.status, 403);
    let evaluator = format!(
        "Bearer {}",
        crate::auth::signed(&crate::auth::claims("app", &["evaluator"]))
    );
    let admitted = http::request(ofrep, "POST", path, &[("authorization", &evaluator)], body).await;
    assert_eq!(admitted.status, 404, "admitted; no such flag");

    let mut v2 = v2::service_client::ServiceClient::new(channel(app.flagd.expect("flagd")));
    let status = v2
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "anything".into(),
            context: None,
        })
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;

    // One evaluation per second per caller: the next is 429 with Retry-After.
    let config = vexil::Config {
        evaluation_rate: 1,
        evaluation_burst: 1,
        ..crate::common::config(&db.url)
    };
    let app = TestApp::start_openfeature(config).await;
    let ofrep = app.ofrep.expect("ofrep");
    let first = http::request(ofrep, "POST", path, &[], body).await;
    assert_eq!(first.status, 404);
    let limited = http::request(ofrep, "POST", path, &[], body).await;
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    app.stop().await;
}

/// A context nested `depth` levels deep (the context itself is level 1),
/// through objects or through lists, as flagd's `Struct` and as OFREP's JSON.
fn nested(depth: usize, through_lists: bool) -> (Struct, serde_json::Value) {
    let (mut value, mut json) = (text("leaf"), json!("leaf"));
    for _ in 1..depth {
        if through_lists {
            value = Value {
                kind: Some(Kind::ListValue(vexil_proto::google::protobuf::ListValue {
                    values: vec![value],
                })),
            };
            json = json!([json]);
        } else {
            value = Value {
                kind: Some(Kind::StructValue(Struct {
                    fields: [("a".to_string(), value)].into(),
                })),
            };
            json = json!({ "a": json });
        }
    }
    let context = Struct {
        fields: [
            ("targetingKey".to_string(), text("u1")),
            ("nested".to_string(), value),
        ]
        .into(),
    };
    (
        context,
        json!({ "context": { "targetingKey": "u1", "nested": json } }),
    )
}

/// OpenFeature's edges answer in their own protocol, whatever comes in:
/// OFREP's errors are always JSON with `errorCode` (a body over the limit,
/// a key that is not UTF-8, a broken chunked body, an unknown path); flagd
/// and OFREP share one nesting limit for contexts and say so; a flagd
/// request over the size limit is RESOURCE_EXHAUSTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfeature_edges_answer_on_protocol() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start_openfeature(crate::common::config(&db.url)).await;
    let ofrep = app.ofrep.expect("ofrep");
    let mut flagd = v2::service_client::ServiceClient::new(channel(app.flagd.expect("flagd")));
    let prefix = unique("edges");
    crate::common::rule_flags(&app, &prefix).await;
    let rollout = format!("{prefix}.rollout");
    let path = format!("/ofrep/v1/evaluate/flags/{rollout}");

    let assert_ofrep_error = |reply: &http::Reply, status: u16, code: &str| {
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|kind| kind.starts_with("application/json")),
            "{:?}",
            reply.headers
        );
        let body = reply.json();
        assert_eq!(body["errorCode"], code, "{body}");
        assert!(
            body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    };
    let large = format!(
        r#"{{"context": {{"targetingKey": "u1", "pad": "{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    let reply = http::request(ofrep, "POST", &path, &[], &large).await;
    assert_ofrep_error(&reply, 413, "GENERAL");
    assert!(
        reply.json()["errorDetails"]
            .as_str()
            .unwrap_or_default()
            .contains("262144")
    );
    let reply = http::request(ofrep, "POST", "/ofrep/v1/evaluate/flags/%FF%FE", &[], "{}").await;
    assert_ofrep_error(&reply, 400, "PARSE_ERROR");
    let reply = http::request(ofrep, "POST", "/ofrep/v1/no-such-endpoint", &[], "{}").await;
    assert_ofrep_error(&reply, 404, "GENERAL");
    let broken_chunks = raw_http(
        ofrep,
        format!(
            "POST {path} HTTP/1.1\r\nhost: vexil\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\nZZ\r\nnot a chunk\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(broken_chunks.starts_with("HTTP/1.1 400"), "{broken_chunks}");
    assert!(
        broken_chunks.contains(r#""errorCode":"PARSE_ERROR""#),
        "{broken_chunks}"
    );

    // One nesting limit, 32 levels, through objects or lists, on both edges.
    for through_lists in [false, true] {
        let (context, body) = nested(32, through_lists);
        let answer = flagd
            .resolve_boolean(v2::ResolveBooleanRequest {
                flag_key: rollout.clone(),
                context: Some(context),
            })
            .await;
        assert!(
            answer.is_ok(),
            "32 levels (lists: {through_lists}): {answer:?}"
        );
        assert_eq!(post_json(ofrep, &path, &body).await.status, 200);

        for depth in [33, 40] {
            let (context, body) = nested(depth, through_lists);
            let status = flagd
                .resolve_boolean(v2::ResolveBooleanRequest {
                    flag_key: rollout.clone(),
                    context: Some(context),
                })
                .await
                .expect_err("too deep");
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().contains("deeper than 32 levels"),
                "{depth} (lists: {through_lists}): {status:?}"
            );
            let reply = post_json(ofrep, &path, &body).await;
            assert_ofrep_error(&reply, 400, "INVALID_CONTEXT");
            assert!(
                reply.json()["errorDetails"]
                    .as_str()
                    .is_some_and(|details| details.contains("deeper than 32 levels")),
                "{:?}",
                reply.body
            );
        }
    }

    // Errors echo a flag key cut to 128 bytes, not the caller's whole key.
    let long_key = "k".repeat(4_000);
    let status = flagd
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: long_key.clone(),
            context: None,
        })
        .await
        .expect_err("no such flag");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().len() < 300, "{}", status.message().len());
    let reply = post_json(
        ofrep,
        &format!("/ofrep/v1/evaluate/flags/{long_key}"),
        &json!({}),
    )
    .await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert!(
        body["key"].as_str().is_some_and(|key| key.len() < 140),
        "{body}"
    );
    assert!(body.to_string().len() < 400, "{}", body.to_string().len());

    // Over flagd's 256 KiB: RESOURCE_EXHAUSTED, as gRPC's status guide has it.
    let mut oversized = context(Some("u1"), None).expect("context");
    oversized
        .fields
        .insert("pad".into(), text(&"x".repeat(300 * 1024)));
    let status = flagd
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: rollout.clone(),
            context: Some(oversized),
        })
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    app.stop().await;
    db.remove().await;
}

/// Writes `request` as it is and reads the whole answer (the connection
/// closes after it).
/// The first bytes the server answers to `request` (which may leave its
/// body incomplete), within 5 s.
async fn answer_starts(address: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer before the body is complete")
        .expect("read");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

async fn raw_http(address: SocketAddr, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}
