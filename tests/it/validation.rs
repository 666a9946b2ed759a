//! Malformed requests: each is INVALID_ARGUMENT with a message that names
//! the field, and none of them changes anything.

use prost_types::Timestamp;
use tonic::{Code, Status};
use vexil::grpc::pb;
use vexil_proto::google::protobuf::{Struct, Value, value::Kind};

use crate::common::{Backend, TestApp, TestDatabase, as_actor, mask, next_change, read_snapshot};

crate::backend_tests!(
    malformed_requests_are_rejected_and_store_nothing,
    hostile_inputs_get_clear_errors_and_answers_stay_decodable,
);

/// Counts the rejections checked, so the test proves how many it covered.
struct Rejections(usize);

impl Rejections {
    #[track_caller]
    fn check<T: std::fmt::Debug>(&mut self, outcome: Result<T, Status>, field: &str) {
        let status = outcome.expect_err("malformed request accepted");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "message {:?} should name {field}",
            status.message()
        );
        self.0 += 1;
    }
}

fn named(name: &str) -> pb::Flag {
    pb::Flag {
        name: name.into(),
        ..pb::Flag::default()
    }
}

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

fn strings(count: usize, make: impl Fn(usize) -> String) -> Vec<String> {
    (0..count).map(make).collect()
}

fn metadata(key: &str, kind: Kind) -> Option<Struct> {
    Some(Struct {
        fields: [(key.to_string(), Value { kind: Some(kind) })].into(),
    })
}

async fn malformed_requests_are_rejected_and_store_nothing(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let existing = app
        .create_flag(pb::Flag {
            enabled: true,
            percentage: 30.0,
            ..named("existing")
        })
        .await;
    let mut flags = app.flags.clone();
    let mut evaluation = app.evaluation.clone();
    let mut rejected = Rejections(0);

    // CreateFlag: one bad field at a time.
    let bad_flags: Vec<(pb::Flag, &str)> = vec![
        (named(""), "flag.name"),
        (named(".hidden"), "flag.name"),
        (named("has space"), "flag.name"),
        (named("slash/name"), "flag.name"),
        (named(&"n".repeat(129)), "flag.name"),
        (named("café"), "flag.name"),
        (
            pb::Flag {
                percentage: 100.01,
                ..named("p1")
            },
            "flag.percentage",
        ),
        (
            pb::Flag {
                percentage: -0.5,
                ..named("p2")
            },
            "flag.percentage",
        ),
        (
            pb::Flag {
                percentage: f64::NAN,
                ..named("p3")
            },
            "flag.percentage",
        ),
        (
            pb::Flag {
                percentage: f64::INFINITY,
                ..named("p4")
            },
            "flag.percentage",
        ),
        (
            pb::Flag {
                whitelist: vec!["ok".into(), String::new()],
                ..named("w1")
            },
            "flag.whitelist",
        ),
        (
            pb::Flag {
                whitelist: strings(10_001, |i| format!("user-{i}")),
                ..named("w2")
            },
            "flag.whitelist",
        ),
        (
            pb::Flag {
                blacklist: vec!["x".repeat(257)],
                ..named("b1")
            },
            "flag.blacklist",
        ),
        (
            pb::Flag {
                environments: vec![String::new()],
                ..named("e1")
            },
            "flag.environments",
        ),
        (
            pb::Flag {
                environments: strings(101, |i| format!("env-{i}")),
                ..named("e2")
            },
            "flag.environments",
        ),
        (
            pb::Flag {
                environment_overrides: [(String::new(), true)].into(),
                ..named("o1")
            },
            "flag.environment_overrides",
        ),
        (
            pb::Flag {
                tags: strings(101, |i| format!("tag-{i}")),
                ..named("t1")
            },
            "flag.tags",
        ),
        (
            pb::Flag {
                tags: vec![String::new()],
                ..named("t2")
            },
            "flag.tags",
        ),
        (
            pb::Flag {
                starts_at: ts(2_000_000_000, 0),
                expires_at: ts(2_000_000_000, 0),
                ..named("s1")
            },
            "flag.expires_at",
        ),
        (
            pb::Flag {
                starts_at: ts(2_000_000_100, 0),
                expires_at: ts(2_000_000_000, 0),
                ..named("s2")
            },
            "flag.expires_at",
        ),
        (
            pb::Flag {
                starts_at: ts(0, 1_000_000_000),
                ..named("s3")
            },
            "flag.starts_at",
        ),
        (
            pb::Flag {
                metadata: metadata("blob", Kind::StringValue("x".repeat(70_000))),
                ..named("m1")
            },
            "flag.metadata",
        ),
        (
            pb::Flag {
                metadata: metadata("n", Kind::NumberValue(f64::NAN)),
                ..named("m2")
            },
            "flag.metadata",
        ),
        (
            pb::Flag {
                group: "no spaces allowed".into(),
                ..named("g1")
            },
            "flag.group",
        ),
        (
            pb::Flag {
                description: "d".repeat(4097),
                ..named("d1")
            },
            "flag.description",
        ),
        (
            pb::Flag {
                whitelist: vec!["nul\0byte".into()],
                ..named("n1")
            },
            "flag.whitelist",
        ),
        (
            pb::Flag {
                metadata: metadata("note", Kind::StringValue("nul\0byte".into())),
                ..named("n2")
            },
            "flag.metadata",
        ),
        (
            pb::Flag {
                expires_at: ts(-62_135_596_801, 0),
                ..named("s4")
            },
            "flag.expires_at",
        ),
        (
            pb::Flag {
                // Distinct instants that are equal at the stored precision.
                starts_at: ts(2_000_000_000, 100),
                expires_at: ts(2_000_000_000, 900),
                ..named("s5")
            },
            "flag.expires_at",
        ),
    ];
    for (flag, field) in bad_flags {
        let outcome = flags
            .create_flag(pb::CreateFlagRequest {
                flag: Some(flag),
                reason: "bad".into(),
            })
            .await;
        rejected.check(outcome, field);
    }
    rejected.check(
        flags
            .create_flag(pb::CreateFlagRequest {
                flag: None,
                reason: String::new(),
            })
            .await,
        "flag",
    );
    rejected.check(
        flags
            .create_flag(pb::CreateFlagRequest {
                flag: Some(named("long-reason")),
                reason: "r".repeat(4097),
            })
            .await,
        "reason",
    );
    let mut tabbed = tonic::Request::new(pb::CreateFlagRequest {
        flag: Some(named("tabbed-actor")),
        reason: String::new(),
    });
    tabbed
        .metadata_mut()
        .insert("x-actor", "a\tb".parse().expect("header value"));
    rejected.check(flags.create_flag(tabbed).await, "x-actor");
    rejected.check(
        flags
            .create_flag(as_actor(
                &"a".repeat(257),
                pb::CreateFlagRequest {
                    flag: Some(named("long-actor")),
                    reason: String::new(),
                },
            ))
            .await,
        "x-actor",
    );

    // UpdateFlag.
    let update = |flag: Option<pb::Flag>, paths: &[&str], reason: &str| pb::UpdateFlagRequest {
        flag,
        update_mask: mask(paths),
        reason: reason.into(),
        expected_revision: None,
    };
    let bad_updates = vec![
        (update(Some(named("existing")), &["enabled"], ""), "reason"),
        (
            update(Some(named("existing")), &["enabled"], "   "),
            "reason",
        ),
        (update(Some(named("existing")), &[], "r"), "update_mask"),
        (
            update(Some(named("existing")), &["colour"], "r"),
            "update_mask",
        ),
        (
            update(Some(named("existing")), &["name"], "r"),
            "update_mask",
        ),
        (
            update(Some(named("existing")), &["revision"], "r"),
            "update_mask",
        ),
        (
            update(
                Some(pb::Flag {
                    percentage: 101.0,
                    ..named("existing")
                }),
                &["percentage"],
                "r",
            ),
            "flag.percentage",
        ),
        (
            update(
                Some(pb::Flag {
                    expires_at: ts(1, 0),
                    starts_at: ts(2, 0),
                    ..named("existing")
                }),
                &["starts_at", "expires_at"],
                "r",
            ),
            "flag.expires_at",
        ),
        (
            update(Some(named("bad name")), &["enabled"], "r"),
            "flag.name",
        ),
        (update(None, &["enabled"], "r"), "flag"),
    ];
    for (request, field) in bad_updates {
        rejected.check(flags.update_flag(request).await, field);
    }

    // DeleteFlag, GetFlag, GetAuditTrail.
    rejected.check(
        flags
            .delete_flag(pb::DeleteFlagRequest {
                name: "existing".into(),
                reason: String::new(),
                expected_revision: None,
            })
            .await,
        "reason",
    );
    rejected.check(
        flags
            .delete_flag(pb::DeleteFlagRequest {
                name: "-bad".into(),
                reason: "r".into(),
                expected_revision: None,
            })
            .await,
        "name",
    );
    rejected.check(
        flags
            .get_flag(pb::GetFlagRequest {
                name: String::new(),
            })
            .await,
        "name",
    );
    rejected.check(
        flags
            .get_audit_trail(pb::GetAuditTrailRequest {
                flag_name: "a b".into(),
                skip: 0,
                limit: 0,
                segment_name: String::new(),
            })
            .await,
        "flag_name",
    );

    // Groups.
    rejected.check(
        flags
            .create_group(pb::CreateGroupRequest {
                group: Some(pb::Group {
                    name: "bad group".into(),
                    description: String::new(),
                    created_at: None,
                }),
            })
            .await,
        "group.name",
    );
    rejected.check(
        flags
            .create_group(pb::CreateGroupRequest { group: None })
            .await,
        "group",
    );

    // Evaluate and BulkEvaluate.
    let eval = |flag: &str, user: String, environment: String| pb::EvaluateRequest {
        flag_name: flag.into(),
        user_id: user,
        environment,
        context: None,
    };
    for (request, field) in [
        (eval("", "u".into(), String::new()), "flag_name"),
        (eval("bad name", "u".into(), String::new()), "flag_name"),
        (eval("existing", "u".repeat(257), String::new()), "user_id"),
        (eval("existing", "u".into(), "e".repeat(257)), "environment"),
    ] {
        rejected.check(evaluation.evaluate(request).await, field);
    }
    let bulk = |flag_names: Vec<String>| pb::BulkEvaluateRequest {
        flag_names,
        user_id: "u".into(),
        environment: String::new(),
        context: None,
    };
    rejected.check(
        evaluation
            .bulk_evaluate(bulk(vec!["existing".into(), "no/slashes".into()]))
            .await,
        "flag_names[1]",
    );
    rejected.check(
        evaluation
            .bulk_evaluate(bulk(strings(1001, |i| format!("f{i}"))))
            .await,
        "flag_names",
    );

    assert!(
        rejected.0 >= 25,
        "only {} malformed requests checked",
        rejected.0
    );

    // Nothing was stored or changed.
    assert_eq!(app.total_flags().await, 1);
    assert_eq!(app.audit_trail("existing").await.len(), 1);
    let stored = flags
        .get_flag(pb::GetFlagRequest {
            name: "existing".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(stored, existing);
    assert!(
        flags
            .list_groups(pb::ListGroupsRequest {})
            .await
            .expect("groups")
            .into_inner()
            .groups
            .is_empty()
    );

    app.stop().await;
    db.remove().await;
}

/// Metadata nesting objects `depth` levels deep (the metadata object is
/// level 1), or lists below the first level when `lists`.
fn nested_metadata(depth: usize, lists: bool) -> Struct {
    let mut value = Value {
        kind: Some(Kind::NumberValue(1.0)),
    };
    for _ in 1..depth {
        let kind = if lists {
            Kind::ListValue(vexil_proto::google::protobuf::ListValue {
                values: vec![value],
            })
        } else {
            Kind::StructValue(Struct {
                fields: [("k".to_string(), value)].into(),
            })
        };
        value = Value { kind: Some(kind) };
    }
    Struct {
        fields: [("k".to_string(), value)].into(),
    }
}

/// What a 10,000-request fuzz run found: nesting that broke every Watch
/// client, echoed inputs too large for a status header, unchecked lengths.
async fn hostile_inputs_get_clear_errors_and_answers_stay_decodable(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = app.flags.clone();
    let mut evaluation = app.evaluation.clone();
    let mut watch = app.watch(&[], None).await;
    read_snapshot(&mut watch).await;
    let create = |name: &str, metadata: Struct| pb::CreateFlagRequest {
        flag: Some(pb::Flag {
            metadata: Some(metadata),
            ..named(name)
        }),
        reason: String::new(),
    };

    // The deepest metadata allowed: every answer carrying it decodes with
    // a stock client (recursion limit 100), however deeply it is wrapped.
    let deepest = flags
        .create_flag(create("deep", nested_metadata(16, false)))
        .await
        .expect("16 levels are allowed")
        .into_inner();
    assert_eq!(next_change(&mut watch).await.flag.as_ref(), Some(&deepest));
    assert_eq!(
        app.audit_trail("deep").await[0].after.as_ref(),
        Some(&deepest)
    );
    let mut snapshot = app.watch(&[], None).await;
    assert_eq!(read_snapshot(&mut snapshot).await.0, [deepest]);

    // Deeper: INVALID_ARGUMENT naming the field, or, past what the decoder
    // takes at all, INVALID_ARGUMENT from the decoder; never INTERNAL.
    let mut rejected = Rejections(0);
    for (depth, lists) in [(17, false), (32, false), (17, true), (48, true)] {
        rejected.check(
            flags
                .create_flag(create("deeper", nested_metadata(depth, lists)))
                .await,
            "flag.metadata",
        );
    }
    for (depth, lists) in [(40, false), (120, true)] {
        let status = flags
            .create_flag(create("deepest", nested_metadata(depth, lists)))
            .await
            .expect_err("undecodable nesting");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }

    // Echoed inputs are capped: the status still fits in a header.
    for length in [20 * 1024, 1024 * 1024] {
        let status = flags
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(named("deep")),
                update_mask: mask(&["x".repeat(length).as_str()]),
                reason: "r".into(),
                expected_revision: None,
            })
            .await
            .expect_err("unknown path");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("update_mask: "));
        assert!(
            status.message().len() < 1024,
            "{} bytes",
            status.message().len()
        );
    }

    // Lengths are checked before anything is built from them.
    rejected.check(
        flags
            .create_flag(pb::CreateFlagRequest {
                flag: Some(pb::Flag {
                    whitelist: strings(10_001, |i| format!("{i}")),
                    ..named("crowded")
                }),
                reason: String::new(),
            })
            .await,
        "flag.whitelist",
    );

    // Requests beyond a service's size limit are refused, not decoded.
    let status = evaluation
        .bulk_evaluate(pb::BulkEvaluateRequest {
            flag_names: strings(1000, |i| format!("{i}{}", "f".repeat(300))),
            user_id: "u".into(),
            environment: String::new(),
            context: None,
        })
        .await
        .expect_err("over the evaluation request limit");
    assert_ne!(status.code(), Code::Internal, "{status:?}");
    let status = flags
        .create_flag(pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                description: "d".repeat(5 * 1024 * 1024),
                ..named("huge")
            }),
            reason: String::new(),
        })
        .await
        .expect_err("over the management request limit");
    assert_ne!(status.code(), Code::Internal, "{status:?}");

    assert_eq!(
        app.total_flags().await,
        1,
        "only the allowed flag is stored"
    );
    app.stop().await;
    db.remove().await;
}
