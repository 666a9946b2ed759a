//! ListFlags against a straightforward reference implementation over
//! 1,500 random flags: every filter combination, ordering, `total` and
//! paging agree, on SQLite and PostgreSQL; and the revision a listing is
//! exact at.

use vexil::grpc::pb;

use crate::common::{Backend, Random, TestApp, TestDatabase};

crate::backend_tests!(
    list_flags_agrees_with_a_reference,
    a_listing_names_the_revision_watch_resumes_from
);

const FLAGS: usize = 1_500;
const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];
const TAGS: [&str; 3] = ["ui", "backend", "experiment"];
const GROUPS: [&str; 2] = ["alpha", "beta"];
const DESCRIPTIONS: [&str; 3] = ["", "Checkout redesign", "Search ranking (UI)"];
const QUERIES: [&str; 4] = ["ui", "CHECK", "-1", "zz-none"];

fn pick(random: &mut Random, from: &[&str]) -> Vec<String> {
    from.iter()
        .filter(|_| random.next_u64().is_multiple_of(2))
        .map(|item| item.to_string())
        .collect()
}

/// The reference: filter, order by name in byte order, count, page.
fn expected(flags: &[pb::Flag], request: &pb::ListFlagsRequest) -> (Vec<String>, u64) {
    let mut matching: Vec<&pb::Flag> =
        flags
            .iter()
            .filter(|flag| {
                request.environment.as_ref().is_none_or(|env| {
                    flag.environments.is_empty() || flag.environments.contains(env)
                }) && request
                    .tag
                    .as_ref()
                    .is_none_or(|tag| flag.tags.contains(tag))
                    && request
                        .enabled
                        .is_none_or(|enabled| flag.enabled == enabled)
                    && request
                        .group
                        .as_ref()
                        .is_none_or(|group| &flag.group == group)
                    && request
                        .r#type
                        .is_none_or(|flag_type| flag.r#type == flag_type)
                    && (!request.expired || flag.expires_at.is_some())
                    && (request.query.is_empty() || {
                        let query = request.query.to_ascii_lowercase();
                        let has = |text: &str| text.to_ascii_lowercase().contains(&query);
                        has(&flag.name)
                            || has(&flag.description)
                            || flag.tags.iter().any(|tag| has(tag))
                    })
            })
            .collect();
    matching.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let limit = match request.limit {
        0 => 100,
        limit => limit.min(1000),
    } as usize;
    let page = matching
        .iter()
        .skip(request.skip as usize)
        .take(limit)
        .map(|flag| flag.name.clone())
        .collect();
    (page, matching.len() as u64)
}

async fn list_flags_agrees_with_a_reference(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    for group in GROUPS {
        app.flags
            .clone()
            .create_group(pb::CreateGroupRequest {
                group: Some(pb::Group {
                    name: group.into(),
                    ..pb::Group::default()
                }),
            })
            .await
            .expect("group");
    }
    let mut random = Random::seeded();
    let flags: Vec<pb::Flag> = (0..FLAGS)
        .map(|i| {
            // Names whose byte order differs from a naive numeric order.
            let name = match random.next_u64() % 3 {
                0 => format!("F{i}"),
                1 => format!("f-{}", random.next_u64() % 100_000),
                _ => format!("{i}.x"),
            };
            let typed = random.next_u64().is_multiple_of(4);
            pb::Flag {
                name: format!("{name}-{i}"),
                description: DESCRIPTIONS[random.next_u64() as usize % 3].into(),
                // Expired an hour ago, or never: the reference's `expired`.
                expires_at: random
                    .next_u64()
                    .is_multiple_of(5)
                    .then(|| crate::common::hours_from_now(-1))
                    .flatten(),
                r#type: if typed {
                    pb::FlagType::String as i32
                } else {
                    pb::FlagType::Boolean as i32
                },
                variants: if typed { string_variants() } else { Vec::new() },
                fallthrough: typed.then(|| pb::Serve {
                    kind: Some(pb::serve::Kind::Variant("a".into())),
                }),
                enabled: !random.next_u64().is_multiple_of(3),
                environments: pick(&mut random, &ENVIRONMENTS),
                tags: pick(&mut random, &TAGS),
                group: match random.next_u64() % 3 {
                    0 => String::new(),
                    n => GROUPS[n as usize - 1].to_string(),
                },
                ..pb::Flag::default()
            }
        })
        .collect();
    // Created by a few writers at once.
    let mut writers = Vec::new();
    for chunk in flags.chunks(FLAGS / 4 + 1) {
        let chunk = chunk.to_vec();
        let mut client = app.flags.clone();
        writers.push(tokio::spawn(async move {
            for flag in chunk {
                client
                    .create_flag(pb::CreateFlagRequest {
                        flag: Some(flag),
                        reason: String::new(),
                    })
                    .await
                    .expect("create");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }

    let mut requests = Vec::new();
    for environment in [None, Some("prod"), Some("qa")] {
        for tag in [None, Some("ui")] {
            for enabled in [None, Some(true), Some(false)] {
                for group in [None, Some("beta")] {
                    for (skip, limit) in [(0, 0), (0, 1000), (37, 25), (1_450, 100), (5_000, 10)] {
                        requests.push(pb::ListFlagsRequest {
                            environment: environment.map(String::from),
                            tag: tag.map(String::from),
                            enabled,
                            group: group.map(String::from),
                            skip,
                            limit,
                            ..pb::ListFlagsRequest::default()
                        });
                    }
                }
            }
        }
    }
    // Search, type and expiry, with one other filter.
    for query in std::iter::once("").chain(QUERIES) {
        for flag_type in [
            None,
            Some(pb::FlagType::Boolean),
            Some(pb::FlagType::String),
        ] {
            for expired in [false, true] {
                for (skip, limit, tag) in [(0, 0, None), (3, 5, Some("backend"))] {
                    requests.push(pb::ListFlagsRequest {
                        query: query.into(),
                        r#type: flag_type.map(|flag_type| flag_type as i32),
                        expired,
                        tag: tag.map(String::from),
                        skip,
                        limit,
                        ..pb::ListFlagsRequest::default()
                    });
                }
            }
        }
    }
    let mut client = app.flags.clone();
    for request in &requests {
        let answer = client
            .list_flags(request.clone())
            .await
            .expect("list")
            .into_inner();
        let names: Vec<String> = answer.flags.iter().map(|flag| flag.name.clone()).collect();
        assert_eq!(
            (names, answer.total),
            expected(&flags, request),
            "{request:?}"
        );
    }

    // Paging through everything yields every flag once, in order.
    let mut seen = Vec::new();
    loop {
        let page = client
            .list_flags(pb::ListFlagsRequest {
                skip: seen.len() as u32,
                limit: 333,
                ..pb::ListFlagsRequest::default()
            })
            .await
            .expect("page")
            .into_inner();
        if page.flags.is_empty() {
            break;
        }
        seen.extend(page.flags.into_iter().map(|flag| flag.name));
    }
    let (all, total) = expected(
        &flags,
        &pb::ListFlagsRequest {
            limit: 1000,
            ..pb::ListFlagsRequest::default()
        },
    );
    assert_eq!(total as usize, FLAGS);
    assert_eq!(seen.len(), FLAGS);
    assert_eq!(seen[..1000], all[..]);

    app.stop().await;
    db.remove().await;
}

fn string_variants() -> Vec<pb::Variant> {
    ["a", "b"]
        .into_iter()
        .map(|name| pb::Variant {
            name: name.into(),
            value: Some(pb::TypedValue {
                value: Some(pb::typed_value::Value::StringValue(name.into())),
            }),
            description: String::new(),
        })
        .collect()
}

/// A listing names the revision it is exact at, which a console hands to
/// Watch: the stream then carries only later changes, none missed.
async fn a_listing_names_the_revision_watch_resumes_from(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let mut flags = Vec::new();
    for i in 0..3 {
        flags.push(
            app.create_flag(pb::Flag {
                name: format!("listed-{i}"),
                ..pb::Flag::default()
            })
            .await,
        );
    }
    let mut client = app.flags.clone();
    let listing = client
        .list_flags(pb::ListFlagsRequest {
            limit: 1,
            ..pb::ListFlagsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    let newest = flags.iter().map(|flag| flag.revision).max().expect("flags");
    assert_eq!(listing.revision, newest);

    let mut stream = app
        .evaluation
        .clone()
        .watch(pb::WatchRequest {
            since_revision: Some(listing.revision),
            engine: vexil_engine::ENGINE,
            ..pb::WatchRequest::default()
        })
        .await
        .expect("watch")
        .into_inner();
    match crate::common::next_event(&mut stream).await {
        pb::watch_response::Event::Heartbeat(beat) => assert_eq!(beat.revision, newest),
        other => panic!("expected a heartbeat at the listing's revision, got {other:?}"),
    }
    let changed = app.set_percentage("listed-1", 30.0).await;
    let change = crate::common::next_change(&mut stream).await;
    assert_eq!(
        (change.flag_name.as_str(), change.revision),
        ("listed-1", changed.revision)
    );

    app.stop().await;
    db.remove().await;
}
