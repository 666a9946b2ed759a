//! ListFlags against a straightforward reference implementation over
//! 1,500 random flags: every filter combination, ordering, `total` and
//! paging agree, on SQLite and PostgreSQL.

use vexil::grpc::pb;

use crate::common::{Backend, Random, TestApp, TestDatabase};

crate::backend_tests!(list_flags_agrees_with_a_reference);

const FLAGS: usize = 1_500;
const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];
const TAGS: [&str; 3] = ["ui", "backend", "experiment"];
const GROUPS: [&str; 2] = ["alpha", "beta"];

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
            pb::Flag {
                name: format!("{name}-{i}"),
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
                            not_evaluated_since: None,
                        });
                    }
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
