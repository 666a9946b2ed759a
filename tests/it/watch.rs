//! Watch streams on one replica: snapshot then ordered changes, resume,
//! filters, heartbeats, many subscribers, shutdown. (A stalled subscriber:
//! `faults::stalled_subscriber`.)

use std::time::Duration;

use tonic::Code;
use tonic::transport::Channel;
use vexil::grpc::pb::{self, ChangeKind, evaluation_service_client::EvaluationServiceClient};

use crate::common::{Backend, TestApp, TestDatabase, next_change, next_event, read_snapshot};

crate::backend_tests!(
    snapshot_then_every_change_in_order,
    large_snapshot_arrives_in_chunks,
    resume_receives_exactly_the_missed_changes,
    filtered_stream_and_heartbeats,
    thousand_subscribers_receive_every_change_in_order,
    shutdown_ends_streams_with_unavailable,
    a_stream_the_feed_left_behind_catches_up_from_the_store,
    stalled_resumes_over_large_flags_share_a_bounded_replay_budget,
);

fn flag(name: &str) -> pb::Flag {
    pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    }
}

async fn snapshot_then_every_change_in_order(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let a = app.create_flag(flag("a")).await;
    let b = app.create_flag(flag("b")).await;

    let mut stream = app.watch(&[], None).await;
    let (flags, revision) = read_snapshot(&mut stream).await;
    assert_eq!(flags, vec![a.clone(), b.clone()]);
    assert_eq!(revision, b.revision);

    let updated = app.set_percentage("a", 40.0).await;
    let deleted = app
        .flags
        .clone()
        .delete_flag(pb::DeleteFlagRequest {
            name: "b".into(),
            reason: "gone".into(),
            expected_revision: None,
        })
        .await
        .expect("delete")
        .into_inner();
    let c = app.create_flag(flag("c")).await;

    let change = next_change(&mut stream).await;
    assert_eq!(
        (change.revision, change.kind(), change.flag.as_ref()),
        (updated.revision, ChangeKind::Upserted, Some(&updated))
    );
    let change = next_change(&mut stream).await;
    assert_eq!(
        (
            change.revision,
            change.flag_name.as_str(),
            change.kind(),
            change.flag
        ),
        (deleted.revision, "b", ChangeKind::Deleted, None)
    );
    let change = next_change(&mut stream).await;
    assert_eq!(
        (change.revision, change.flag),
        (c.revision, Some(c.clone()))
    );
    assert_eq!(c.revision, revision + 3, "revisions are gapless");

    app.stop().await;
    db.remove().await;
}

async fn large_snapshot_arrives_in_chunks(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut last = 0;
    for i in 0..250 {
        last = app
            .create_flag(flag(&format!("chunked.{i:03}")))
            .await
            .revision;
    }
    let mut stream = app.watch(&[], None).await;
    let mut chunks = Vec::new();
    loop {
        match next_event(&mut stream).await {
            pb::watch_response::Event::Snapshot(snapshot) => {
                assert_eq!(snapshot.revision, last);
                let done = snapshot.last;
                chunks.push(snapshot.flags);
                if done {
                    break;
                }
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
    // 100 flags per message, the last one marked, every flag exactly once, in order.
    assert_eq!(
        chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let names: Vec<String> = chunks.concat().into_iter().map(|f| f.name).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("chunked.{i:03}")).collect();
    assert_eq!(names, expected);

    app.stop().await;
    db.remove().await;
}

async fn resume_receives_exactly_the_missed_changes(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(flag("resumed")).await;
    let mut stream = app.watch(&[], None).await;
    let (_, _) = read_snapshot(&mut stream).await;
    let seen = app.set_percentage("resumed", 1.0).await;
    assert_eq!(next_change(&mut stream).await.revision, seen.revision);
    drop(stream);

    let mut missed = Vec::new();
    for percentage in [2.0, 3.0, 4.0, 5.0, 6.0] {
        missed.push(app.set_percentage("resumed", percentage).await);
    }
    app.create_flag(flag("other")).await;
    missed.push(
        app.flags
            .clone()
            .get_flag(pb::GetFlagRequest {
                name: "other".into(),
            })
            .await
            .expect("get")
            .into_inner(),
    );

    let mut resumed = app.watch(&[], Some(seen.revision)).await;
    for expected in &missed {
        let change = next_change(&mut resumed).await;
        assert_eq!(change.revision, expected.revision);
        assert_eq!(change.flag.as_ref(), Some(expected));
    }
    // Then live changes, with nothing repeated in between.
    let live = app.set_percentage("resumed", 7.0).await;
    assert_eq!(next_change(&mut resumed).await.revision, live.revision);

    // A resume at the head is acknowledged at once with a heartbeat at its
    // revision (not at the next one, 15 s later), so the client knows it
    // is current.
    let mut current = app.watch(&[], Some(live.revision)).await;
    let first = tokio::time::timeout(Duration::from_secs(2), current.message())
        .await
        .expect("acknowledged within 2 s")
        .expect("a message")
        .expect("open")
        .event;
    assert_eq!(
        first,
        Some(pb::watch_response::Event::Heartbeat(pb::WatchHeartbeat {
            revision: live.revision
        }))
    );

    // A resume point ahead of the store cannot be served: a snapshot instead.
    let mut ahead = app.watch(&[], Some(live.revision + 1000)).await;
    let (flags, revision) = read_snapshot(&mut ahead).await;
    assert_eq!(revision, live.revision);
    assert_eq!(flags.len(), 2);

    app.stop().await;
    db.remove().await;
}

async fn filtered_stream_and_heartbeats(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        watch_heartbeat_ms: 100,
        ..crate::common::config(&db.url)
    })
    .await;
    app.create_flag(flag("watched")).await;
    app.create_flag(flag("ignored")).await;

    let mut stream = app.watch(&["watched", "not-yet"], None).await;
    let (flags, _) = read_snapshot(&mut stream).await;
    assert_eq!(
        flags.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        vec!["watched"]
    );

    let ignored = app.set_percentage("ignored", 10.0).await;
    let created = app.create_flag(flag("not-yet")).await;
    let change = next_change(&mut stream).await;
    assert_eq!(
        (change.flag_name.as_str(), change.revision),
        ("not-yet", created.revision)
    );
    assert!(created.revision > ignored.revision);

    // Idle: heartbeats carry the current revision, past the filtered-out change too.
    let ignored_again = app.set_percentage("ignored", 20.0).await;
    loop {
        match next_event(&mut stream).await {
            pb::watch_response::Event::Heartbeat(heartbeat) => {
                if heartbeat.revision == ignored_again.revision {
                    break;
                }
            }
            other => panic!("only heartbeats expected, got {other:?}"),
        }
    }

    app.stop().await;
    db.remove().await;
}

async fn thousand_subscribers_receive_every_change_in_order(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    app.create_flag(flag("fanout")).await;

    const SUBSCRIBERS: usize = 1000;
    const CHANGES: usize = 100;
    let channels: Vec<Channel> = (0..4)
        .map(|_| {
            Channel::from_shared(format!("http://{}", app.address))
                .expect("endpoint")
                .connect_lazy()
        })
        .collect();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(SUBSCRIBERS);
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut client = EvaluationServiceClient::new(channels[i % channels.len()].clone());
            let ready = ready_tx.clone();
            tokio::spawn(async move {
                let mut stream = client
                    .watch(pb::WatchRequest::default())
                    .await
                    .expect("watch")
                    .into_inner();
                let (_, start) = read_snapshot(&mut stream).await;
                ready.send(()).await.expect("ready");
                let mut revisions = Vec::with_capacity(CHANGES);
                while revisions.len() < CHANGES {
                    revisions.push(next_change(&mut stream).await.revision);
                }
                (start, revisions)
            })
        })
        .collect();
    for _ in 0..SUBSCRIBERS {
        ready_rx.recv().await.expect("subscriber ready");
    }

    let mut expected = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        expected.push(app.set_percentage("fanout", i as f64).await.revision);
    }
    for subscriber in subscribers {
        let (start, revisions) = subscriber.await.expect("subscriber");
        assert!(start < expected[0]);
        assert_eq!(revisions, expected);
    }

    app.stop().await;
    db.remove().await;
}

async fn shutdown_ends_streams_with_unavailable(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let created = app.create_flag(flag("last")).await;
    let mut stream = app.watch(&[], None).await;
    read_snapshot(&mut stream).await;

    let stopping = tokio::spawn(app.stop());
    let status = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the stream ends")
        .expect_err("ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("since_revision={}", created.revision)),
        "{status:?}"
    );
    stopping.await.expect("server stopped");
    db.remove().await;
}

/// A live subscriber that stops reading while more changes happen than the
/// feed keeps (but fewer than its buffer) is not cut off: when it reads
/// again it is replayed from the store, every change once, in order, then
/// goes live again.
async fn a_stream_the_feed_left_behind_catches_up_from_the_store(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        watch_feed: 4,
        ..crate::common::config(&db.url)
    })
    .await;
    let created = app.create_flag(flag("churned")).await;
    // Small HTTP/2 windows: a few large changes fill them while it does not read.
    let mut paused = app.watch_with_small_windows().await;
    let (_, start) = read_snapshot(&mut paused).await;
    assert_eq!(start, created.revision);

    const CHANGES: u64 = 40;
    app.churn_descriptions("churned", CHANGES).await;
    for revision in start + 1..=start + CHANGES {
        let change = next_change(&mut paused).await;
        assert_eq!(change.revision, revision);
        let description = change.flag.expect("flag").description;
        assert!(description.starts_with(&(revision - start - 1).to_string()));
    }
    let live = app.set_percentage("churned", 5.0).await;
    assert_eq!(next_change(&mut paused).await.revision, live.revision);

    app.stop().await;
    db.remove().await;
}

/// Issue 19, item 3, scaled down: resuming streams that never read cannot
/// make the server decode and queue a history of large flags for each of
/// them. Replayed changes are copies per stream, so they share a budget
/// (2 MiB); once stalled streams hold it, a resume gets a snapshot (the
/// cache's own flags) instead, and replays again once they are gone.
async fn stalled_resumes_over_large_flags_share_a_bounded_replay_budget(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start_with(vexil::Config {
        watch_feed: 1,
        ..crate::common::config(&db.url)
    })
    .await;
    // ~450 KiB each: a replay batch holds one of them.
    let first = app.create_flag(flag("large.0")).await;
    for i in 1..12 {
        app.create_flag(pb::Flag {
            whitelist: (0..10_000)
                .map(|id| format!("user-{i}-{id:06}-padded-to-forty-bytes"))
                .collect(),
            ..flag(&format!("large.{i}"))
        })
        .await;
    }
    let resume = async || {
        app.watch_with_small_windows_from(Some(first.revision))
            .await
    };
    let mut stalled = Vec::new();
    let mut snapshot_instead = false;
    // On a loaded machine a stalled stream takes a while to fill its
    // place in the budget: more of them, and more time, before the probe.
    for _ in 0..30 {
        stalled.push(resume().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut probe = app.watch(&[], Some(first.revision)).await;
        if matches!(
            next_event(&mut probe).await,
            pb::watch_response::Event::Snapshot(_)
        ) {
            snapshot_instead = true;
            break;
        }
    }
    assert!(
        snapshot_instead,
        "stalled replays hold the budget: a snapshot instead"
    );
    drop(stalled);
    crate::common::eventually(Duration::from_secs(10), "replays again", async || {
        let mut probe = app.watch(&[], Some(first.revision)).await;
        matches!(
            next_event(&mut probe).await,
            pb::watch_response::Event::Change(_)
        )
    })
    .await;
    app.stop().await;
    db.remove().await;
}
