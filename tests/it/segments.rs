//! Segments over gRPC: created, changed and deleted with `expected_revision`
//! and reasons, audited with before and after; references checked at
//! write time (missing, self, cycle, too deep, still in use); and every
//! change reaching Evaluate, other replicas (through Redis), Watch streams
//! and the Rust client's local copy.

use std::time::Duration;

use serde_json::Value as Json;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use vexil::grpc::pb;
use vexil_proto::convert::{segment_to_pb, struct_to_pb};

use crate::common::{
    Backend, TestApp, TestDatabase, as_actor, assert_status, eventually, mask, redis_url, replica,
    unique, wait_for_bus, watch_engine,
};

crate::backend_tests!(
    segments_are_managed_and_audited,
    segment_references_are_checked_at_write_time,
    segment_changes_reach_watch_streams_and_the_client,
    segment_changes_reach_other_replicas,
);

/// A segment as the API takes it, from the engine's JSON model.
fn wire_segment(name: &str, spec: Json) -> pb::Segment {
    let spec: vexil::domain::SegmentSpec = serde_json::from_value(spec).expect("a segment");
    let name = vexil::domain::FlagName::parse("name", name.to_string()).expect("a name");
    segment_to_pb(&vexil::domain::Segment::new(
        name,
        spec,
        0,
        chrono::DateTime::UNIX_EPOCH,
    ))
}

fn in_segment(segment: &str) -> Json {
    serde_json::json!({"clauses": [{"op": "in_segment", "values": [segment]}]})
}

async fn create_segment(
    app: &TestApp,
    name: &str,
    spec: Json,
) -> Result<pb::Segment, tonic::Status> {
    app.flags
        .clone()
        .create_segment(as_actor(
            "tester",
            pb::CreateSegmentRequest {
                segment: Some(wire_segment(name, spec)),
                reason: "test".into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn update_segment(
    app: &TestApp,
    name: &str,
    spec: Json,
    expected_revision: Option<u64>,
) -> Result<pb::Segment, tonic::Status> {
    app.flags
        .clone()
        .update_segment(as_actor(
            "tester",
            pb::UpdateSegmentRequest {
                segment: Some(wire_segment(name, spec)),
                reason: "test".into(),
                expected_revision,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn delete_segment(app: &TestApp, name: &str) -> Result<u64, tonic::Status> {
    app.flags
        .clone()
        .delete_segment(as_actor(
            "tester",
            pb::DeleteSegmentRequest {
                name: name.into(),
                reason: "test".into(),
                expected_revision: None,
            },
        ))
        .await
        .map(|response| response.into_inner().revision)
}

/// A string flag serving `in` to users in `segment` and `out` to the rest.
fn gated_flag(name: &str, segment: &str) -> pb::Flag {
    let mut rule = in_segment(segment);
    rule["serve"] = serde_json::json!({"variant": "in"});
    let spec: vexil::domain::FlagSpec = serde_json::from_value(serde_json::json!({
        "enabled": true, "type": "string",
        "variants": [{"name": "in", "value": {"string": "IN"}}, {"name": "out", "value": {"string": "OUT"}}],
        "rules": [rule],
        "fallthrough": {"variant": "out"},
    }))
    .expect("a flag");
    let name = vexil::domain::FlagName::parse("name", name.to_string()).expect("a name");
    vexil_proto::convert::flag_to_pb(&vexil::domain::Flag::new(
        name,
        spec,
        vexil::domain::Stamp {
            revision: 0,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            created_by: String::new(),
            updated_by: String::new(),
        },
    ))
}

/// Evaluate's variant for `user` with `context`.
async fn variant_for(app: &TestApp, flag: &str, user: &str, context: Json) -> String {
    app.evaluation
        .clone()
        .evaluate(pb::EvaluateRequest {
            flag_name: flag.into(),
            user_id: user.into(),
            environment: String::new(),
            context: context.as_object().map(struct_to_pb),
        })
        .await
        .expect("evaluate")
        .into_inner()
        .variant
}

async fn segments_are_managed_and_audited(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let segment = unique("beta");
    let flag = unique("gated");
    let created = create_segment(
        &app,
        &segment,
        serde_json::json!({"included": ["alice"], "rules": [{"clauses": [
            {"attribute": "plan", "op": "in", "values": ["enterprise"]}]}]}),
    )
    .await
    .expect("create the segment");
    assert_eq!(created.included, ["alice"]);
    assert_eq!(created.created_by, "tester");
    assert_status(
        create_segment(&app, &segment, serde_json::json!({})).await,
        Code::AlreadyExists,
        &segment,
    );
    app.create_flag(gated_flag(&flag, &segment)).await;
    assert_eq!(
        variant_for(&app, &flag, "alice", Json::Null).await,
        "in",
        "listed"
    );
    assert_eq!(variant_for(&app, &flag, "bob", Json::Null).await, "out");
    assert_eq!(
        variant_for(
            &app,
            &flag,
            "carol",
            serde_json::json!({"plan": "enterprise"})
        )
        .await,
        "in",
        "by rule"
    );

    // Optimistic concurrency, then a real change that Evaluate follows.
    let stale = update_segment(
        &app,
        &segment,
        serde_json::json!({"included": ["alice", "bob"]}),
        Some(created.revision + 100),
    )
    .await;
    assert_status(stale, Code::Aborted, "revision");
    let updated = update_segment(
        &app,
        &segment,
        serde_json::json!({"included": ["alice", "bob"]}),
        Some(created.revision),
    )
    .await
    .expect("update");
    assert!(updated.revision > created.revision);
    assert_eq!(variant_for(&app, &flag, "bob", Json::Null).await, "in");
    assert_eq!(
        variant_for(
            &app,
            &flag,
            "carol",
            serde_json::json!({"plan": "enterprise"})
        )
        .await,
        "out",
        "the rule is gone"
    );
    let fetched = app
        .flags
        .clone()
        .get_segment(pb::GetSegmentRequest {
            name: segment.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched, updated);
    let listed = app
        .flags
        .clone()
        .list_segments(pb::ListSegmentsRequest {})
        .await
        .expect("list")
        .into_inner()
        .segments;
    assert_eq!(listed, std::slice::from_ref(&updated));
    let no_reason = app
        .flags
        .clone()
        .update_segment(pb::UpdateSegmentRequest {
            segment: Some(wire_segment(&segment, serde_json::json!({}))),
            reason: String::new(),
            expected_revision: None,
        })
        .await;
    assert_status(no_reason, Code::InvalidArgument, "reason");

    // The audit trail holds both changes with before and after, and none
    // of the flag's.
    let trail = app
        .flags
        .clone()
        .get_audit_trail(pb::GetAuditTrailRequest {
            segment_name: segment.clone(),
            ..pb::GetAuditTrailRequest::default()
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(trail.total, 2);
    let newest = &trail.entries[0];
    assert_eq!(newest.action(), pb::AuditAction::Update);
    assert_eq!(
        (newest.segment_name.as_str(), newest.flag_name.as_str()),
        (segment.as_str(), "")
    );
    assert_eq!(newest.actor, "tester");
    assert_eq!(newest.revision, updated.revision);
    assert_eq!(
        newest.segment_before.as_ref().expect("before").included,
        ["alice"]
    );
    assert_eq!(newest.segment_after.as_ref(), Some(&updated));
    assert_eq!(trail.entries[1].action(), pb::AuditAction::Create);
    assert!(trail.entries[1].segment_before.is_none());
    assert_eq!(
        app.audit_trail(&flag).await.len(),
        1,
        "the flag's own trail"
    );
    let both = app
        .flags
        .clone()
        .get_audit_trail(pb::GetAuditTrailRequest {
            flag_name: flag.clone(),
            segment_name: segment.clone(),
            ..pb::GetAuditTrailRequest::default()
        })
        .await;
    assert_status(both, Code::InvalidArgument, "segment_name");

    // In use: not deletable until the flag lets go of it.
    assert_status(
        delete_segment(&app, &segment).await,
        Code::FailedPrecondition,
        &flag,
    );
    app.flags
        .clone()
        .update_flag(as_actor(
            "tester",
            pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: flag.clone(),
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["rules"]),
                reason: "drop the segment".into(),
                expected_revision: None,
            },
        ))
        .await
        .expect("drop the rule");
    let deleted = delete_segment(&app, &segment).await.expect("delete");
    assert!(deleted > updated.revision);
    let gone = app
        .flags
        .clone()
        .get_segment(pb::GetSegmentRequest {
            name: segment.clone(),
        })
        .await;
    assert_status(gone, Code::NotFound, &segment);
    assert_status(
        delete_segment(&app, &segment).await,
        Code::NotFound,
        &segment,
    );
    let trail = app
        .flags
        .clone()
        .get_audit_trail(pb::GetAuditTrailRequest {
            segment_name: segment.clone(),
            ..pb::GetAuditTrailRequest::default()
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(trail.entries[0].action(), pb::AuditAction::Delete);
    assert!(trail.entries[0].segment_after.is_none());
}

async fn segment_references_are_checked_at_write_time(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let field = "segment.rules[0].clauses[0].values";
    assert_status(
        create_segment(
            &app,
            "lonely",
            serde_json::json!({"rules": [in_segment("missing")]}),
        )
        .await,
        Code::InvalidArgument,
        field,
    );
    assert_status(
        create_segment(
            &app,
            "narcissus",
            serde_json::json!({"rules": [in_segment("narcissus")]}),
        )
        .await,
        Code::InvalidArgument,
        field,
    );
    create_segment(&app, "a", serde_json::json!({"included": ["x"]}))
        .await
        .expect("a");
    create_segment(&app, "b", serde_json::json!({"rules": [in_segment("a")]}))
        .await
        .expect("b refers to a");
    assert_status(
        update_segment(
            &app,
            "a",
            serde_json::json!({"rules": [in_segment("b")]}),
            None,
        )
        .await,
        Code::InvalidArgument,
        "cycle",
    );
    assert_status(
        delete_segment(&app, "a").await,
        Code::FailedPrecondition,
        "segment 'b'",
    );
    // A chain of 8 segments is the deepest allowed: b (2), then 3..8.
    let mut below = "b".to_string();
    for depth in 3..=8 {
        let name = format!("depth{depth}");
        create_segment(
            &app,
            &name,
            serde_json::json!({"rules": [in_segment(&below)]}),
        )
        .await
        .unwrap_or_else(|status| panic!("depth {depth}: {status:?}"));
        below = name;
    }
    assert_status(
        create_segment(
            &app,
            "depth9",
            serde_json::json!({"rules": [in_segment(&below)]}),
        )
        .await,
        Code::InvalidArgument,
        "deep",
    );
    // Limits are the flags': too many ids is refused naming the field.
    let ids: Vec<String> = (0..=vexil::domain::limits::LIST_IDS)
        .map(|i| format!("u{i}"))
        .collect();
    assert_status(
        create_segment(&app, "huge", serde_json::json!({"included": ids})).await,
        Code::InvalidArgument,
        "segment.included",
    );
    // Nothing refused left a trace: the revision counter moved only for
    // the writes that succeeded.
    let listed = app
        .flags
        .clone()
        .list_segments(pb::ListSegmentsRequest {})
        .await
        .expect("list")
        .into_inner()
        .segments;
    assert_eq!(listed.len(), 8);
}

/// The next event other than a heartbeat or flag change below `revision`.
async fn next_at(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    revision: u64,
) -> pb::watch_response::Event {
    loop {
        match crate::common::next_event(stream).await {
            pb::watch_response::Event::Heartbeat(beat) if beat.revision < revision => {}
            pb::watch_response::Event::Change(change) if change.revision < revision => {}
            event => return event,
        }
    }
}

async fn segment_changes_reach_watch_streams_and_the_client(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let (_, mut current) = watch_engine(&app, vexil_engine::ENGINE).await;
    let (_, mut older) = watch_engine(&app, 1).await;
    // Engine 2 brought segments: a client of that version still gets them.
    let (_, mut two) = watch_engine(&app, 2).await;
    let segment = create_segment(&app, "testers", serde_json::json!({"included": ["alice"]}))
        .await
        .expect("create");
    match next_at(&mut current, segment.revision).await {
        pb::watch_response::Event::SegmentChange(change) => {
            assert_eq!(change.revision, segment.revision);
            assert_eq!(change.kind(), pb::ChangeKind::Upserted);
            assert_eq!(change.segment, Some(segment.clone()));
        }
        other => panic!("expected the segment change, got {other:?}"),
    }
    match next_at(&mut two, segment.revision).await {
        pb::watch_response::Event::SegmentChange(change) => {
            assert_eq!(change.segment, Some(segment.clone()));
        }
        other => panic!("engine 2: expected the segment change, got {other:?}"),
    }
    let (snapshot, _) = watch_engine(&app, 2).await;
    assert_eq!(snapshot.segments, std::slice::from_ref(&segment));
    // An older engine cannot use segments: it is told only the revision.
    match next_at(&mut older, segment.revision).await {
        pb::watch_response::Event::Heartbeat(beat) => assert_eq!(beat.revision, segment.revision),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    let (snapshot, _) = watch_engine(&app, vexil_engine::ENGINE).await;
    assert_eq!(snapshot.segments, std::slice::from_ref(&segment));
    let (snapshot, _) = watch_engine(&app, 1).await;
    assert!(snapshot.segments.is_empty());

    // The client evaluates with the segment and follows its changes.
    let flag = app.create_flag(gated_flag("gated", "testers")).await;
    let client = vexil_client::Client::builder()
        .endpoints([format!("http://{}", app.address)])
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .connect()
        .await
        .expect("connect");
    eventually(
        Duration::from_secs(10),
        "the client has the flag",
        async || client.revision() >= flag.revision,
    )
    .await;
    let local = |user: &str| client.variant("gated", user, "", &vexil_engine::NoAttributes);
    assert_eq!(local("alice").as_deref(), Some("in"));
    assert_eq!(local("bob").as_deref(), Some("out"));
    let moved = update_segment(
        &app,
        "testers",
        serde_json::json!({"included": ["bob"]}),
        None,
    )
    .await
    .expect("update");
    match next_at(&mut current, moved.revision).await {
        pb::watch_response::Event::Change(change) => panic!("unexpected {change:?}"),
        pb::watch_response::Event::SegmentChange(change) => {
            assert_eq!(change.revision, moved.revision)
        }
        other => panic!("expected the segment change, got {other:?}"),
    }
    eventually(Duration::from_secs(10), "the client follows", async || {
        client.revision() >= moved.revision
    })
    .await;
    assert_eq!(local("alice").as_deref(), Some("out"));
    assert_eq!(local("bob").as_deref(), Some("in"));
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            local(user).unwrap_or_default(),
            variant_for(&app, "gated", user, Json::Null).await,
            "{user}"
        );
    }
}

/// A segment changed on one replica changes the answers of another that
/// hears of it only through Redis and the shared change log.
async fn segment_changes_reach_other_replicas(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:segments:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    let a = replica(&db.url, redis.clone(), &channel, 3600).await;
    let b = replica(&db.url, redis.clone(), &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;
    create_segment(&a, "vip", serde_json::json!({"included": ["alice"]}))
        .await
        .expect("create");
    a.create_flag(gated_flag("gated", "vip")).await;
    eventually(Duration::from_secs(10), "B has the flag", async || {
        variant_for(&b, "gated", "alice", Json::Null).await == "in"
    })
    .await;
    update_segment(&a, "vip", serde_json::json!({"included": ["bob"]}), None)
        .await
        .expect("update");
    eventually(
        Duration::from_secs(10),
        "B follows the segment",
        async || {
            variant_for(&b, "gated", "alice", Json::Null).await == "out"
                && variant_for(&b, "gated", "bob", Json::Null).await == "in"
        },
    )
    .await;
    a.stop().await;
    b.stop().await;
}
