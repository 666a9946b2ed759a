//! Every double a flag holds (its percentage, numbers in its metadata)
//! comes back bit for bit on every path: the write's answer, GetFlag, the
//! audit trail, another replica's cache (fed from the audit log's JSON),
//! Watch live, resumed from memory and replayed from the store, and a
//! replica loading the flags table. A percentage that drifts by one ULP can
//! round to another rollout threshold: users then get different answers
//! from different replicas.

use tonic_health::pb::health_check_response::ServingStatus;
use vexil::engine::bucket::{bucket, threshold};
use vexil::grpc::pb::{self, Reason};
use vexil_proto::google::protobuf::{Struct, Value, value::Kind};

use crate::common::{
    Backend, Random, TestApp, TestDatabase, mask, next_change, read_snapshot, redis_url, replica,
    unique, wait_for_bus,
};

crate::backend_tests!(doubles_round_trip_bit_for_bit_on_every_path);

/// Parses as 0.095 with serde_json's default float parser: its rollout
/// threshold is 9 basis points, 0.095's is 10.
const DRIFTING: f64 = 0.09499999999999999;

const FLAG: &str = "exact";

fn number(value: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value)),
    }
}

/// Metadata holding `value` at the top level and nested in a list and an object.
fn metadata(value: f64) -> Struct {
    let nested = Struct {
        fields: [("deep".to_string(), number(value))].into(),
    };
    let list = vexil_proto::google::protobuf::ListValue {
        values: vec![number(value), number(-value)],
    };
    Struct {
        fields: [
            ("x".to_string(), number(value)),
            (
                "list".to_string(),
                Value {
                    kind: Some(Kind::ListValue(list)),
                },
            ),
            (
                "object".to_string(),
                Value {
                    kind: Some(Kind::StructValue(nested)),
                },
            ),
        ]
        .into(),
    }
}

/// The flag's doubles as bit patterns: percentage first, then every
/// metadata number in a fixed order.
fn bits(flag: &pb::Flag) -> Vec<u64> {
    fn walk(value: &Value, out: &mut Vec<u64>) {
        match &value.kind {
            Some(Kind::NumberValue(n)) => out.push(n.to_bits()),
            Some(Kind::ListValue(list)) => list.values.iter().for_each(|v| walk(v, out)),
            Some(Kind::StructValue(object)) => {
                let mut keys: Vec<_> = object.fields.keys().collect();
                keys.sort();
                keys.into_iter().for_each(|k| walk(&object.fields[k], out));
            }
            _ => {}
        }
    }
    let mut out = vec![flag.percentage.to_bits()];
    if let Some(metadata) = &flag.metadata {
        walk(
            &Value {
                kind: Some(Kind::StructValue(metadata.clone())),
            },
            &mut out,
        );
    }
    out
}

#[track_caller]
fn assert_exact(path: &str, got: &pb::Flag, written: &pb::Flag) {
    assert_eq!(
        bits(got),
        bits(written),
        "{path}: revision {} percentage {:e} (written {:e})",
        got.revision,
        got.percentage,
        written.percentage
    );
}

async fn get_flag(app: &TestApp) -> pb::Flag {
    app.flags
        .clone()
        .get_flag(pb::GetFlagRequest { name: FLAG.into() })
        .await
        .expect("get flag")
        .into_inner()
}

async fn doubles_round_trip_bit_for_bit_on_every_path(backend: Backend) {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let channel = unique("vexil-test:exact:");
    let _keys = crate::common::RedisKeys::under(&redis, &channel);
    // Long cache TTLs: B learns of changes only through Redis and the audit log.
    let a = replica(&db.url, redis.clone(), &channel, 3600).await;
    let b = replica(&db.url, redis.clone(), &channel, 3600).await;
    wait_for_bus(&a, ServingStatus::Serving).await;
    wait_for_bus(&b, ServingStatus::Serving).await;

    let created = a
        .create_flag(pb::Flag {
            name: FLAG.into(),
            enabled: true,
            ..pb::Flag::default()
        })
        .await;
    let mut live = b.watch(&[FLAG], None).await;
    let (_, mut seen) = read_snapshot(&mut live).await;
    // B may hear of the creation only after its snapshot.
    while seen < created.revision {
        seen = next_change(&mut live).await.revision;
    }

    let mut random = Random::seeded();
    let mut values = vec![(DRIFTING, DRIFTING), (0.0, -0.0), (100.0, 5e-324)];
    values.extend((0..60).map(|_| (random.percentage(), random.finite())));
    let mut written = Vec::new();
    for (percentage, extra) in values {
        let answer = a
            .flags
            .clone()
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    name: FLAG.into(),
                    percentage,
                    metadata: Some(metadata(extra)),
                    ..pb::Flag::default()
                }),
                update_mask: mask(&["percentage", "metadata"]),
                reason: "exactness".into(),
                expected_revision: None,
            })
            .await
            .expect("update")
            .into_inner();
        // -0 is stored as 0; everything else exactly as written.
        assert_eq!(
            answer.percentage.to_bits(),
            (percentage + 0.0).to_bits(),
            "the write's answer"
        );
        let change = next_change(&mut live).await;
        assert_exact(
            "watch on the other replica",
            change.flag.as_ref().expect("upserted"),
            &answer,
        );
        assert_exact("GetFlag", &get_flag(&b).await, &answer);
        written.push(answer);
    }

    // Both replicas decide the boundary user alike: bucket 9 is outside a
    // 0.09499999999999999 % rollout (threshold 9), inside at 0.095 (10).
    a.set_percentage(FLAG, DRIFTING).await;
    let boundary = (0..1_000_000)
        .map(|i| format!("user-{i}"))
        .find(|user| bucket(FLAG, user) == threshold(DRIFTING))
        .expect("a user in the boundary bucket");
    let expected = (false, Reason::OutsideRollout);
    next_change(&mut live).await;
    assert_eq!(a.evaluate(FLAG, &boundary, "").await, expected, "writer");
    assert_eq!(b.evaluate(FLAG, &boundary, "").await, expected, "replica");

    // The audit trail, newest first.
    let trail = a.audit_trail(FLAG).await;
    for (entry, answer) in trail.iter().skip(1).zip(written.iter().rev()) {
        assert_eq!(entry.revision, answer.revision);
        assert_exact("audit after", entry.after.as_ref().expect("after"), answer);
    }

    // Watch resumed from memory (B's change feed) ...
    let mut resumed = b.watch(&[FLAG], Some(created.revision)).await;
    for answer in &written {
        let change = next_change(&mut resumed).await;
        assert_exact("watch resumed", change.flag.as_ref().expect("flag"), answer);
    }
    // ... and from the store (C keeps one change in memory), on a replica
    // that loaded the flags table.
    let c = TestApp::start_with(vexil::Config {
        redis_url: Some(redis),
        redis_prefix: channel.clone(),
        watch_feed: 1,
        ..crate::common::config(&db.url)
    })
    .await;
    let mut snapshot = c.watch(&[FLAG], None).await;
    let (flags, _) = read_snapshot(&mut snapshot).await;
    assert_exact("snapshot after a load", &flags[0], &get_flag(&a).await);
    let mut replayed = c.watch(&[FLAG], Some(created.revision)).await;
    for answer in &written {
        let change = next_change(&mut replayed).await;
        assert_exact(
            "watch replayed",
            change.flag.as_ref().expect("flag"),
            answer,
        );
    }

    a.stop().await;
    b.stop().await;
    c.stop().await;
    db.remove().await;
}
