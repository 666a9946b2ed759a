//! The largest flag the limits allow, and several of them, reach a client
//! that accepts gRPC's default 4 MiB per message: through Watch (snapshot,
//! resume from memory, replay from the store, live), GetAuditTrail (before
//! and after snapshots) and ListFlags; pages come back shorter than their
//! limit when they would not fit. A larger flag is refused with
//! INVALID_ARGUMENT naming the limit, and stores nothing.

use prost::Message;
use tonic::Code;
use vexil::grpc::pb;
use vexil_proto::google::protobuf::{Struct, Value, value::Kind};

use crate::common::{Backend, TestApp, TestDatabase, mask, next_change, read_snapshot};

crate::backend_tests!(largest_flag_reaches_default_clients_everywhere);

/// What gRPC clients accept by default (tonic, grpc-go, grpc-java, grpcurl).
const CLIENT_LIMIT: usize = 4 * 1024 * 1024;

fn strings(count: usize, len: usize, prefix: &str) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}{i:0>width$}", width = len - prefix.len()))
        .collect()
}

/// A flag with every list full: 10,000 + 10,000 ids of `id_len` bytes,
/// 100 tags, environments and overrides of 256 bytes, a 4 KiB description
/// and metadata of about 60 KB.
fn big_flag(name: &str, id_len: usize) -> pb::Flag {
    let text = |i: usize| Value {
        kind: Some(Kind::StringValue(format!("{i}{}", "m".repeat(1000)))),
    };
    pb::Flag {
        name: name.into(),
        description: "d".repeat(4096),
        enabled: true,
        percentage: 50.0,
        whitelist: strings(10_000, id_len, "w"),
        blacklist: strings(10_000, id_len, "b"),
        environments: strings(100, 256, "e"),
        environment_overrides: strings(100, 256, "o")
            .into_iter()
            .map(|env| (env, true))
            .collect(),
        tags: strings(100, 256, "t"),
        metadata: Some(Struct {
            fields: (0..60).map(|i| (format!("k{i}"), text(i))).collect(),
        }),
        ..pb::Flag::default()
    }
}

const ALL_FIELDS: &[&str] = &["*"];

async fn update(app: &TestApp, flag: pb::Flag) -> Result<pb::Flag, tonic::Status> {
    app.flags
        .clone()
        .update_flag(pb::UpdateFlagRequest {
            flag: Some(flag),
            update_mask: mask(ALL_FIELDS),
            reason: "grow".into(),
            expected_revision: None,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn largest_flag_reaches_default_clients_everywhere(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    // One change kept in memory: older resumes replay from the store.
    let app = TestApp::start_with(vexil::Config {
        watch_feed: 1,
        ..crate::common::config(&db.url)
    })
    .await;
    let mut live = app.watch(&[], None).await;
    let (_, start) = read_snapshot(&mut live).await;

    // Grow one flag to the largest id length the limits allow. Every
    // accepted step is an update with full before and after snapshots.
    let created = app
        .create_flag(pb::Flag {
            name: "big-0".into(),
            ..pb::Flag::default()
        })
        .await;
    let (mut fits, mut too_big) = (1, 256);
    let mut revisions = vec![created.revision];
    while too_big - fits > 1 {
        let id_len = (fits + too_big) / 2;
        match update(&app, big_flag("big-0", id_len)).await {
            Ok(flag) => {
                revisions.push(flag.revision);
                fits = id_len;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                assert!(
                    status.message().starts_with("flag:")
                        && status.message().contains("at most 1048576"),
                    "{status:?}"
                );
                too_big = id_len;
            }
        }
    }
    // `fits` only grows, so the flag now holds the largest accepted state.
    assert!(fits > 1, "a flag with full lists fits");
    let largest = app
        .flags
        .clone()
        .get_flag(pb::GetFlagRequest {
            name: "big-0".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let size = largest.encoded_len();
    println!("largest flag: ids of {fits} bytes, {size} bytes encoded");
    assert!(size > 800_000, "the flag is large ({size} bytes)");
    // Three more like it: together they exceed one message.
    for i in 1..=3 {
        let flag = app.create_flag(big_flag(&format!("big-{i}"), fits)).await;
        revisions.push(flag.revision);
    }
    let last = *revisions.last().expect("revisions");

    // Live: every change, each message within the client's limit.
    let mut received = Vec::new();
    while received.last() != Some(&last) {
        received.push(next_change(&mut live).await.revision);
    }
    assert_eq!(received, revisions);

    // A new snapshot comes in several messages.
    let mut fresh = app.watch(&[], None).await;
    let mut chunks = 0;
    let mut names = Vec::new();
    loop {
        match crate::common::next_event(&mut fresh).await {
            pb::watch_response::Event::Snapshot(snapshot) => {
                chunks += 1;
                names.extend(snapshot.flags.into_iter().map(|flag| flag.name));
                if snapshot.last {
                    break;
                }
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
    assert_eq!(names, ["big-0", "big-1", "big-2", "big-3"]);
    assert!(chunks >= 2, "{chunks} snapshot message(s)");

    // Resumed from memory (the last change), and replayed from the store.
    let mut resumed = app.watch(&[], Some(last - 1)).await;
    assert_eq!(next_change(&mut resumed).await.revision, last);
    let mut replayed = app.watch(&[], Some(start)).await;
    for revision in &revisions {
        assert_eq!(next_change(&mut replayed).await.revision, *revision);
    }

    // The audit trail pages by size: shorter pages, nothing lost.
    let mut entries = Vec::new();
    let total = loop {
        let page = app
            .flags
            .clone()
            .get_audit_trail(pb::GetAuditTrailRequest {
                flag_name: "big-0".into(),
                skip: entries.len() as u32,
                limit: 100,
                segment_name: String::new(),
            })
            .await
            .expect("an audit page within the client's limit")
            .into_inner();
        assert!(page.encoded_len() < CLIENT_LIMIT);
        assert!(!page.entries.is_empty());
        entries.extend(page.entries);
        if entries.len() as u64 >= page.total {
            break page.total;
        }
    };
    assert_eq!(total as usize, revisions.len() - 3);
    assert!(
        entries.windows(2).all(|w| w[0].revision > w[1].revision),
        "newest first, no entry twice"
    );

    // So does ListFlags.
    let page = app
        .flags
        .clone()
        .list_flags(pb::ListFlagsRequest {
            limit: 100,
            ..pb::ListFlagsRequest::default()
        })
        .await
        .expect("a flag page within the client's limit")
        .into_inner();
    assert_eq!(page.total, 4);
    assert!(
        page.flags.len() < 4,
        "{} flags in one page",
        page.flags.len()
    );

    app.stop().await;
    db.remove().await;
}
