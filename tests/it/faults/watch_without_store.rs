//! Watch is served from memory: while PostgreSQL is cut off, new streams
//! still get their snapshot, resume from a recent revision and receive
//! heartbeats; and 2,000 streams resuming at once leave the database to the
//! writes (a write at the same moment succeeds). PostgreSQL only: the
//! database is reached through a TCP proxy that the test cuts.

use std::time::Duration;

use vexil::grpc::pb;

use crate::common::proxy::Proxy;
use crate::common::{
    Backend, TestApp, TestDatabase, eventually, next_change, next_event, read_snapshot,
};

fn flag(name: &str) -> pb::Flag {
    pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    }
}

/// The next event, which must be a heartbeat: its revision.
async fn next_heartbeat(stream: &mut tonic::Streaming<pb::WatchResponse>) -> u64 {
    match next_event(stream).await {
        pb::watch_response::Event::Heartbeat(heartbeat) => heartbeat.revision,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_served_while_the_database_is_down_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start(&db.url).await;
    let app = TestApp::start_with(vexil::Config {
        watch_heartbeat_ms: 200,
        ..crate::common::config(proxy.route(&db.url))
    })
    .await;
    app.create_flag(flag("steady")).await;
    app.set_percentage("steady", 10.0).await;
    let last = app.set_percentage("steady", 20.0).await.revision;

    proxy.sever();
    let mut fresh = app.watch(&[], None).await;
    let (flags, revision) = read_snapshot(&mut fresh).await;
    assert_eq!((flags.len(), revision), (1, last));
    assert_eq!(flags[0].percentage, 20.0);
    assert_eq!(next_heartbeat(&mut fresh).await, last);

    let mut resumed = app.watch(&["steady"], Some(last - 2)).await;
    assert_eq!(next_change(&mut resumed).await.revision, last - 1);
    assert_eq!(next_change(&mut resumed).await.revision, last);
    assert_eq!(next_heartbeat(&mut resumed).await, last);

    // And after the outage, the same streams carry the next change.
    proxy.restore();
    let mut flags_client = app.flags.clone();
    eventually(Duration::from_secs(30), "the store is back", async || {
        flags_client
            .get_flag(pb::GetFlagRequest {
                name: "steady".into(),
            })
            .await
            .is_ok()
    })
    .await;
    let mut next = 0;
    eventually(Duration::from_secs(30), "writes work again", async || {
        let written = flags_client
            .update_flag(pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    percentage: 30.0,
                    ..flag("steady")
                }),
                update_mask: crate::common::mask(&["percentage"]),
                reason: "after the outage".into(),
                expected_revision: None,
            })
            .await;
        written
            .map(|flag| next = flag.into_inner().revision)
            .is_ok()
    })
    .await;
    assert_eq!(next_change(&mut resumed).await.revision, next);
    assert_eq!(next_change(&mut fresh).await.revision, next);

    app.stop().await;
    drop(proxy);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_resumes_leave_room_for_a_write_postgres() {
    const STREAMS: usize = 2_000;
    const CHURN: usize = 200;
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let start = app.create_flag(flag("watched")).await.revision;
    // Many large changes since `start` to a flag the streams do not watch:
    // replaying them from the audit log would be heavy.
    let mut churned = app
        .create_flag(pb::Flag {
            whitelist: (0..1000).map(|i| format!("user-{i:08}")).collect(),
            ..flag("churned")
        })
        .await;
    for i in 0..CHURN {
        churned = app.set_percentage("churned", (i % 100) as f64).await;
    }

    // Every stream resumes at once, while a write goes in.
    let resumes: Vec<_> = (0..STREAMS)
        .map(|_| {
            let mut client = app.evaluation.clone();
            tokio::spawn(async move {
                client
                    .watch(pb::WatchRequest {
                        flag_names: vec!["watched".into()],
                        since_revision: Some(start),
                        engine: vexil::engine::ENGINE,
                    })
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    let written = app.set_percentage("watched", 40.0).await.revision;
    assert_eq!(written, churned.revision + 1);

    let mut streams = Vec::with_capacity(STREAMS);
    for resume in resumes {
        streams.push(resume.await.expect("task").expect("resume accepted"));
    }
    for stream in &mut streams {
        assert_eq!(next_change(stream).await.revision, written);
    }

    drop(streams);
    app.stop().await;
    db.remove().await;
}
