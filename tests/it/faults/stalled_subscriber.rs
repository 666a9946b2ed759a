//! A subscriber that stops reading is cut off with the revision to resume
//! from, without slowing the others, and resumes exactly where it stopped.

use std::time::Duration;

use tonic::Code;
use vexil::grpc::pb;

use crate::common::{Backend, TestApp, TestDatabase, next_change, read_snapshot};

crate::backend_tests!(stalled_subscriber_is_cut_off_without_hurting_others);

fn flag(name: &str) -> pb::Flag {
    pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    }
}

async fn stalled_subscriber_is_cut_off_without_hurting_others(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    const BUFFER: u32 = 8;
    let app = TestApp::start_with(vexil::Config {
        watch_buffer: BUFFER,
        ..crate::common::config(&db.url)
    })
    .await;
    let created = app.create_flag(flag("busy")).await;

    // The stalled subscriber: small HTTP/2 windows, and it stops reading.
    let mut stalled = app.watch_with_small_windows().await;
    let (_, start) = read_snapshot(&mut stalled).await;
    let mut healthy = app.watch(&[], None).await;
    read_snapshot(&mut healthy).await;

    // Large changes fill the stalled stream's windows and buffer quickly.
    const CHANGES: u64 = 300;
    app.churn_descriptions("busy", CHANGES).await;
    let last = created.revision + CHANGES;

    // The healthy subscriber got everything, in order.
    for revision in created.revision + 1..=last {
        assert_eq!(next_change(&mut healthy).await.revision, revision);
    }

    // The stalled one gets what was buffered, then the documented status.
    let mut received = start;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(30), stalled.message())
            .await
            .expect("stalled stream answers")
        {
            Ok(Some(response)) => match response.event.expect("event") {
                pb::watch_response::Event::Change(change) => {
                    assert_eq!(change.revision, received + 1);
                    received = change.revision;
                }
                pb::watch_response::Event::Heartbeat(_) => {}
                other => panic!("unexpected {other:?}"),
            },
            Ok(None) => panic!("the stalled stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(received < last, "the stalled subscriber was cut off early");
    let resume = format!("since_revision={received}");
    assert!(
        status.message().contains(&resume),
        "{status:?} should say {resume}"
    );

    // Resubscribing from there yields exactly the rest.
    let mut resumed = app.watch(&[], Some(received)).await;
    for revision in received + 1..=last {
        assert_eq!(next_change(&mut resumed).await.revision, revision);
    }

    app.stop().await;
    db.remove().await;
}
