//! Hostile requests against the running server: raw malformed protobuf
//! bytes to every unary method and Watch, and well-formed requests with hostile
//! values. Every one gets a clean status (never INTERNAL, never a dropped
//! connection), the server stays healthy, and nothing in the store or the
//! audit trail changes.

use bytes::{Buf, BufMut};
use prost_types::Timestamp;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use vexil::grpc::pb;
use vexil_proto::google::protobuf::{Struct, Value, value::Kind};

use crate::common::{Backend, TestApp, TestDatabase, mask};

crate::backend_tests!(hostile_requests_get_clean_statuses_and_change_nothing);

/// Sends bytes as they are, and returns the answer's bytes.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

async fn raw(channel: Channel, path: &'static str, bytes: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unknown(err.to_string()))?;
    grpc.unary(
        tonic::Request::new(bytes),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Bytes no protobuf decoder accepts, for any of the request messages.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("invalid tag", vec![0xff]),
        ("length missing", vec![0x0a]),
        ("length beyond the end", vec![0x0a, 0x05, b'a']),
        ("varint overflow", {
            let mut bytes = vec![0x0a];
            bytes.extend([0xff; 10]);
            bytes.push(0x01);
            bytes
        }),
        ("varint cut short", vec![0x0a, 0x80]),
        ("invalid UTF-8 in a string", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("wrong wire type", vec![0x0b]),
        ("field number zero", vec![0x02, 0x00]),
        ("unmatched end group", vec![0x0c]),
        ("nested garbage", vec![0x0a, 0x03, 0x0a, 0x01, 0xff]),
        ("reserved wire type 6", vec![0x0e]),
        ("fixed64 cut short", vec![0x09, 0x01, 0x02]),
    ]
}

fn flag(name: &str) -> pb::Flag {
    pb::Flag {
        name: name.into(),
        enabled: true,
        ..pb::Flag::default()
    }
}

fn create(flag: pb::Flag) -> pb::CreateFlagRequest {
    pb::CreateFlagRequest {
        flag: Some(flag),
        reason: "hostile".into(),
    }
}

fn number(value: f64) -> Option<Struct> {
    Some(Struct {
        fields: [(
            "n".to_string(),
            Value {
                kind: Some(Kind::NumberValue(value)),
            },
        )]
        .into(),
    })
}

async fn hostile_requests_get_clean_statuses_and_change_nothing(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let stored = app.create_flag(flag("target")).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.address))
        .expect("endpoint")
        .connect_lazy();
    let mut checked = 0;

    // Raw malformed bytes to every unary method and Watch.
    for path in [
        "/vexil.v1.FlagService/CreateFlag",
        "/vexil.v1.FlagService/UpdateFlag",
        "/vexil.v1.FlagService/DeleteFlag",
        "/vexil.v1.FlagService/RestoreFlag",
        "/vexil.v1.EvaluationService/Evaluate",
        "/vexil.v1.EvaluationService/BulkEvaluate",
        // Server streaming, decoded outside tonic's generated server.
        "/vexil.v1.EvaluationService/Watch",
    ] {
        for (case, bytes) in malformed() {
            let status = raw(channel.clone(), path, bytes)
                .await
                .expect_err("malformed bytes are refused");
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{path} {case}: {status:?}"
            );
            checked += 1;
        }
    }

    // Well-formed requests with hostile values.
    let mut flags = app.flags.clone();
    let timestamp = |seconds, nanos| Some(Timestamp { seconds, nanos });
    let typed: Vec<(&str, pb::CreateFlagRequest)> = vec![
        (
            "NaN percentage",
            create(pb::Flag {
                percentage: f64::NAN,
                ..flag("h1")
            }),
        ),
        (
            "infinite percentage",
            create(pb::Flag {
                percentage: f64::INFINITY,
                ..flag("h2")
            }),
        ),
        (
            "negative percentage",
            create(pb::Flag {
                percentage: -0.5,
                ..flag("h3")
            }),
        ),
        (
            "percentage over 100",
            create(pb::Flag {
                percentage: 100.000_000_1,
                ..flag("h4")
            }),
        ),
        (
            "year 10000",
            create(pb::Flag {
                starts_at: timestamp(253_402_300_800, 0),
                ..flag("h5")
            }),
        ),
        (
            "year 0",
            create(pb::Flag {
                expires_at: timestamp(-62_135_596_801, 0),
                ..flag("h6")
            }),
        ),
        (
            "negative nanos",
            create(pb::Flag {
                starts_at: timestamp(0, -1),
                ..flag("h7")
            }),
        ),
        (
            "nanos overflow",
            create(pb::Flag {
                starts_at: timestamp(0, 1_000_000_000),
                ..flag("h8")
            }),
        ),
        (
            "NUL in the description",
            create(pb::Flag {
                description: "a\0b".into(),
                ..flag("h9")
            }),
        ),
        ("control characters in the name", create(flag("h\u{1}0"))),
        ("slash in the name", create(flag("a/b"))),
        ("empty name", create(flag(""))),
        (
            "10,001 whitelisted ids",
            create(pb::Flag {
                whitelist: (0..10_001).map(|i| i.to_string()).collect(),
                ..flag("h10")
            }),
        ),
        (
            "an id of 257 bytes",
            create(pb::Flag {
                blacklist: vec!["x".repeat(257)],
                ..flag("h11")
            }),
        ),
        (
            "an empty id",
            create(pb::Flag {
                whitelist: vec![String::new()],
                ..flag("h12")
            }),
        ),
        (
            "101 tags",
            create(pb::Flag {
                tags: (0..101).map(|i| i.to_string()).collect(),
                ..flag("h13")
            }),
        ),
        (
            "NaN in metadata",
            create(pb::Flag {
                metadata: number(f64::NAN),
                ..flag("h14")
            }),
        ),
        (
            "infinity in metadata",
            create(pb::Flag {
                metadata: number(f64::NEG_INFINITY),
                ..flag("h15")
            }),
        ),
        (
            "metadata over 64 KiB",
            create(pb::Flag {
                metadata: Some(Struct {
                    fields: [(
                        "big".to_string(),
                        Value {
                            kind: Some(Kind::StringValue("x".repeat(70_000))),
                        },
                    )]
                    .into(),
                }),
                ..flag("h16")
            }),
        ),
        (
            "starts after it expires",
            create(pb::Flag {
                starts_at: timestamp(2_000_000_000, 0),
                expires_at: timestamp(1_000_000_000, 0),
                ..flag("h17")
            }),
        ),
        (
            "a group name with spaces",
            create(pb::Flag {
                group: "a b".into(),
                ..flag("h18")
            }),
        ),
        (
            "101 environments",
            create(pb::Flag {
                environments: (0..101).map(|i| i.to_string()).collect(),
                ..flag("h19")
            }),
        ),
    ];
    for (case, request) in typed {
        let status = flags.create_flag(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        checked += 1;
    }
    let updates: Vec<(&str, pb::UpdateFlagRequest, Code)> = vec![
        (
            "unknown mask path",
            pb::UpdateFlagRequest {
                flag: Some(flag("target")),
                update_mask: mask(&["nonsense"]),
                reason: "r".into(),
                expected_revision: None,
            },
            Code::InvalidArgument,
        ),
        (
            "immutable name in the mask",
            pb::UpdateFlagRequest {
                flag: Some(flag("target")),
                update_mask: mask(&["name"]),
                reason: "r".into(),
                expected_revision: None,
            },
            Code::InvalidArgument,
        ),
        (
            "empty mask",
            pb::UpdateFlagRequest {
                flag: Some(flag("target")),
                update_mask: None,
                reason: "r".into(),
                expected_revision: None,
            },
            Code::InvalidArgument,
        ),
        (
            "no reason",
            pb::UpdateFlagRequest {
                flag: Some(flag("target")),
                update_mask: mask(&["enabled"]),
                reason: String::new(),
                expected_revision: None,
            },
            Code::InvalidArgument,
        ),
        (
            "stale revision",
            pb::UpdateFlagRequest {
                flag: Some(flag("target")),
                update_mask: mask(&["enabled"]),
                reason: "r".into(),
                expected_revision: Some(stored.revision + 100),
            },
            Code::Aborted,
        ),
        (
            "a group that does not exist",
            pb::UpdateFlagRequest {
                flag: Some(pb::Flag {
                    group: "ghost".into(),
                    ..flag("target")
                }),
                update_mask: mask(&["group"]),
                reason: "r".into(),
                expected_revision: None,
            },
            Code::FailedPrecondition,
        ),
        (
            "a flag that does not exist",
            pb::UpdateFlagRequest {
                flag: Some(flag("ghost")),
                update_mask: mask(&["enabled"]),
                reason: "r".into(),
                expected_revision: None,
            },
            Code::NotFound,
        ),
    ];
    for (case, request, code) in updates {
        let status = flags.update_flag(request).await.expect_err(case);
        assert_eq!(status.code(), code, "{case}: {status:?}");
        checked += 1;
    }
    let status = flags
        .create_flag(create(flag("target")))
        .await
        .expect_err("duplicate");
    assert_eq!(status.code(), Code::AlreadyExists);
    checked += 1;

    assert!(checked >= 50, "only {checked} hostile requests");
    println!("{checked} hostile requests, each answered cleanly");

    // Healthy, and nothing changed.
    assert_eq!(app.health("").await, ServingStatus::Serving as i32);
    assert_eq!(app.total_flags().await, 1);
    let now = flags
        .get_flag(pb::GetFlagRequest {
            name: "target".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(now, stored);
    assert_eq!(app.audit_trail("target").await.len(), 1);

    app.stop().await;
    db.remove().await;
}

/// Issue 19, item 4, scaled down: callers without a token cannot make the
/// server hold partial request bodies. Twenty Evaluate calls from one
/// address each declare 200 KiB and send 150 KiB: past 1 MiB per address
/// they are refused with RESOURCE_EXHAUSTED at once, and the rest end with
/// DEADLINE_EXCEEDED when their body has not arrived within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_bodies_are_bounded_per_address_and_in_time() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start(&db.url).await;
    let tcp = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = client.clone().ready().await.expect("ready");
        let request = http::Request::post(format!(
            "http://{}/vexil.v1.EvaluationService/Evaluate",
            app.address
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
        let (response, mut body) = client.send_request(request, false).expect("send");
        let mut partial = vec![0u8, 0x00, 0x03, 0x20, 0x00];
        partial.extend(std::iter::repeat_n(0u8, 150 * 1024));
        body.send_data(bytes::Bytes::from(partial), false)
            .expect("part of the body");
        calls.push(tokio::spawn(async move {
            let _open = body;
            let response = response.await.expect("a response");
            let in_headers = response
                .headers()
                .get("grpc-status")
                .and_then(|code| code.to_str().ok())
                .map(str::to_owned);
            match in_headers {
                Some(code) => code,
                None => {
                    let mut rest = response.into_body();
                    while rest.data().await.is_some() {}
                    let trailers = rest.trailers().await.expect("trailers").unwrap_or_default();
                    trailers
                        .get("grpc-status")
                        .and_then(|code| code.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                }
            }
        }));
    }
    let mut codes = Vec::new();
    for call in calls {
        let code = tokio::time::timeout(std::time::Duration::from_secs(20), call)
            .await
            .expect("every call answered before its body is complete")
            .expect("call");
        codes.push(code);
    }
    let exhausted = codes.iter().filter(|code| *code == "8").count();
    let late = codes.iter().filter(|code| *code == "4").count();
    assert!(exhausted >= 12, "refused past 1 MiB: {codes:?}");
    assert_eq!(exhausted + late, 20, "{codes:?}");
    assert!(app.evaluate("after", "u1", "prod").await.1 == pb::Reason::FlagNotFound);
    app.stop().await;
    db.remove().await;
}
