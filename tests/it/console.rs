//! The console's listener: the embedded page with its security headers,
//! and Vexil's API as gRPC-Web on the same origin, admitted as on the gRPC
//! port (tokens, roles, scopes, the audit actor). Spoken here with a bare
//! HTTP/1.1 client, as a browser's fetch speaks it; `.ci/console` drives
//! the page itself in Chromium.

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vexil::grpc::pb;

use crate::auth::{auth_config, claims, signed};
use crate::common::{TestApp, TestDatabase, mask, unique};

/// An HTTP/1.1 answer: status line and headers (lower-cased names), and
/// the body with any chunked framing removed.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

/// Sends one request on a new connection and reads the whole answer.
async fn exchange(address: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!(
        "{head}connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Answer { head, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size");
        let size = usize::from_str_radix(
            std::str::from_utf8(&raw[..line_end]).expect("ascii").trim(),
            16,
        )
        .expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

async fn get(address: SocketAddr, path: &str, accept_encoding: &str) -> Answer {
    let head =
        format!("GET {path} HTTP/1.1\r\nhost: {address}\r\naccept-encoding: {accept_encoding}\r\n");
    exchange(address, &head, b"").await
}

/// A gRPC-Web call's outcome: its one message (if any) and grpc-status.
struct WebCall {
    message: Option<Vec<u8>>,
    status: String,
    trailers: String,
}

async fn grpc_web(
    address: SocketAddr,
    method: &str,
    token: Option<&str>,
    message: &impl Message,
) -> WebCall {
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&payload);
    let authorization = token
        .map(|token| format!("authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {method} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\n{authorization}"
    );
    let answer = exchange(address, &head, &frame).await;
    assert!(answer.head.starts_with("HTTP/1.1 200"), "{}", answer.head);
    // Trailers-only answers carry the status in the headers.
    let mut call = WebCall {
        message: None,
        status: answer.header("grpc-status").unwrap_or_default().to_owned(),
        trailers: answer.head.clone(),
    };
    let mut rest = &answer.body[..];
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        let content = &rest[5..5 + length];
        if rest[0] & 0x80 == 0 {
            call.message = Some(content.to_vec());
        } else {
            call.trailers = String::from_utf8_lossy(content).into_owned();
            call.status = call
                .trailers
                .lines()
                .find_map(|line| line.strip_prefix("grpc-status:"))
                .unwrap_or_default()
                .trim()
                .to_owned();
        }
        rest = &rest[5 + length..];
    }
    call
}

fn caller_of(call: &WebCall) -> pb::GetCallerResponse {
    assert_eq!(call.status, "0", "{}", call.trailers);
    pb::GetCallerResponse::decode(call.message.as_deref().expect("a message")).expect("decode")
}

#[tokio::test]
async fn console_serves_the_page_with_a_strict_policy() {
    let Some(db) = TestDatabase::create(crate::common::Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_console(crate::common::config(&db.url)).await;
    let console = app.console.expect("console address");

    let page = get(console, "/", "identity").await;
    assert!(page.head.starts_with("HTTP/1.1 200"), "{}", page.head);
    let html = String::from_utf8(page.body.clone()).expect("utf-8");
    assert!(html.contains(r#"<div id="app">"#), "{html}");
    assert!(
        html.contains("/app.js?v="),
        "assets are named by hash: {html}"
    );
    assert_eq!(page.header("content-encoding"), None);
    let policy = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));

    let gzipped = get(console, "/", "gzip, br").await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert!(gzipped.body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(gzipped.body.len() < page.body.len());

    let script = get(console, "/app.js?v=anything", "gzip").await;
    assert!(script.head.starts_with("HTTP/1.1 200"), "{}", script.head);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        script
            .header("cache-control")
            .expect("cached")
            .contains("immutable")
    );

    // Another origin gets no CORS grant: its pages cannot call the API.
    let preflight = exchange(
        console,
        &format!(
            "OPTIONS /vexil.v1.FlagService/GetCaller HTTP/1.1\r\nhost: {console}\r\n\
             origin: https://elsewhere.example\r\naccess-control-request-method: POST\r\n\
             access-control-request-headers: content-type,x-grpc-web,authorization\r\n"
        ),
        b"",
    )
    .await;
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        None,
        "{}",
        preflight.head
    );

    // Only its own origin: another site's page (Origin), or a name rebound
    // to this address (Host), gets nothing on an open server.
    let frame = [0u8; 5];
    let call = |host: String, origin: Option<String>| {
        let origin = origin
            .map(|origin| format!("origin: {origin}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /vexil.v1.FlagService/GetCaller HTTP/1.1\r\nhost: {host}\r\n{origin}\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n"
        )
    };
    let status = |answer: &Answer| answer.head.lines().next().unwrap_or_default().to_owned();
    let port = console.port();
    for (host, origin, expected) in [
        (
            format!("127.0.0.1:{port}"),
            Some(format!("http://127.0.0.1:{port}")),
            "200",
        ),
        (
            format!("localhost:{port}"),
            Some(format!("http://localhost:{port}")),
            "200",
        ),
        (
            format!("127.0.0.1:{port}"),
            Some("https://elsewhere.example".into()),
            "403",
        ),
        (format!("127.0.0.1:{port}"), Some("null".into()), "403"),
        (
            format!("rebound.example:{port}"),
            Some(format!("http://rebound.example:{port}")),
            "403",
        ),
        (format!("rebound.example:{port}"), None, "403"),
    ] {
        let answer = exchange(console, &call(host.clone(), origin.clone()), &frame).await;
        assert!(
            status(&answer).contains(expected),
            "host {host}, origin {origin:?}: {}",
            answer.head
        );
    }

    // Without keys on loopback, the console is open, and says so.
    let caller = caller_of(
        &grpc_web(
            console,
            "/vexil.v1.FlagService/GetCaller",
            None,
            &pb::GetCallerRequest {},
        )
        .await,
    );
    assert!(!caller.authenticated);
    assert_eq!(caller.actor, "anonymous");
    assert!(caller.roles.contains(&"editor".to_owned()), "{caller:?}");

    app.stop().await;
    db.remove().await;
}

#[tokio::test]
async fn console_api_admits_as_the_grpc_port_does() {
    let Some(db) = TestDatabase::create(crate::common::Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::start_console(auth_config(&db.url)).await;
    let console = app.console.expect("console address");
    let name = unique("console");
    let admin = signed(&claims("root", &["admin"]));
    let reader = signed(&claims("rita", &["reader"]));
    let mut scoped_claims = claims("sam", &["editor"]);
    scoped_claims.insert("environments".into(), json!(["staging", "dev"]));
    let scoped = signed(&scoped_claims);
    let editor = signed(&claims("erin", &["editor"]));
    let get_caller = async |token: Option<&str>| {
        grpc_web(
            console,
            "/vexil.v1.FlagService/GetCaller",
            token,
            &pb::GetCallerRequest {},
        )
        .await
    };

    // Who the caller is, as the page shows it.
    assert_eq!(
        get_caller(None).await.status,
        "16",
        "no token: UNAUTHENTICATED"
    );
    let rita = caller_of(&get_caller(Some(&reader)).await);
    assert!(rita.authenticated);
    assert_eq!(
        (rita.actor.as_str(), rita.roles.as_slice()),
        ("rita", &["reader".to_owned()][..])
    );
    assert!(!rita.scoped);
    assert!(rita.expires_at.is_some());
    let sam = caller_of(&get_caller(Some(&scoped)).await);
    assert!(sam.scoped);
    assert_eq!(sam.environments, ["dev", "staging"]);
    assert_eq!(sam.roles, ["reader", "editor"]);
    let root = caller_of(&get_caller(Some(&admin)).await);
    assert_eq!(root.roles, ["reader", "editor", "admin", "evaluator"]);

    // With tokens checked, any name for the server will do (a rebound name
    // gets nothing without a token); another site's page still may not.
    let named = exchange(
        console,
        &format!(
            "POST /vexil.v1.FlagService/GetCaller HTTP/1.1\r\nhost: vexil.example:{}\r\n\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
             authorization: Bearer {reader}\r\n",
            console.port()
        ),
        &[0u8; 5],
    )
    .await;
    assert!(named.head.starts_with("HTTP/1.1 200"), "{}", named.head);
    assert_eq!(named.header("grpc-status"), None, "answered in the body");

    // Writes: roles hold, and the audit trail names the token's subject.
    let create = pb::CreateFlagRequest {
        flag: Some(pb::Flag {
            name: name.clone(),
            enabled: true,
            ..pb::Flag::default()
        }),
        reason: "from the console".into(),
    };
    let refused = grpc_web(
        console,
        "/vexil.v1.FlagService/CreateFlag",
        Some(&reader),
        &create,
    )
    .await;
    assert_eq!(
        refused.status, "7",
        "a reader may not write: {}",
        refused.trailers
    );
    let created = grpc_web(
        console,
        "/vexil.v1.FlagService/CreateFlag",
        Some(&editor),
        &create,
    )
    .await;
    assert_eq!(created.status, "0", "{}", created.trailers);
    let flag = pb::Flag::decode(created.message.as_deref().expect("the flag")).expect("decode");

    let kill = pb::UpdateFlagRequest {
        flag: Some(pb::Flag {
            name: name.clone(),
            enabled: false,
            ..pb::Flag::default()
        }),
        update_mask: mask(&["enabled"]),
        reason: "incident 42".into(),
        expected_revision: Some(flag.revision),
    };
    // A scoped editor may not touch a flag that may be on everywhere.
    let out_of_scope = grpc_web(
        console,
        "/vexil.v1.FlagService/UpdateFlag",
        Some(&scoped),
        &kill,
    )
    .await;
    assert_eq!(out_of_scope.status, "7", "{}", out_of_scope.trailers);
    let killed = grpc_web(
        console,
        "/vexil.v1.FlagService/UpdateFlag",
        Some(&editor),
        &kill,
    )
    .await;
    assert_eq!(killed.status, "0", "{}", killed.trailers);
    // The same expected revision again: a concurrent change, not overwritten.
    let stale = grpc_web(
        console,
        "/vexil.v1.FlagService/UpdateFlag",
        Some(&editor),
        &kill,
    )
    .await;
    assert_eq!(stale.status, "10", "ABORTED: {}", stale.trailers);

    let trail = grpc_web(
        console,
        "/vexil.v1.FlagService/GetAuditTrail",
        Some(&reader),
        &pb::GetAuditTrailRequest {
            flag_name: name.clone(),
            ..pb::GetAuditTrailRequest::default()
        },
    )
    .await;
    assert_eq!(trail.status, "0", "{}", trail.trailers);
    let trail = pb::GetAuditTrailResponse::decode(trail.message.as_deref().expect("trail"))
        .expect("decode");
    let newest = &trail.entries[0];
    assert_eq!(
        (newest.actor.as_str(), newest.reason.as_str()),
        ("erin", "incident 42")
    );
    assert_eq!(trail.entries.len(), 2);

    // Field errors name the field, as on the gRPC port.
    let invalid = grpc_web(
        console,
        "/vexil.v1.FlagService/CreateFlag",
        Some(&editor),
        &pb::CreateFlagRequest {
            flag: Some(pb::Flag {
                name: unique("console-bad"),
                percentage: 150.0,
                ..pb::Flag::default()
            }),
            reason: String::new(),
        },
    )
    .await;
    assert_eq!(invalid.status, "3", "{}", invalid.trailers);
    assert!(
        invalid.trailers.contains("flag.percentage"),
        "{}",
        invalid.trailers
    );

    // Evaluation answers there too, from the same cache.
    let answer = grpc_web(
        console,
        "/vexil.v1.EvaluationService/Evaluate",
        None,
        &pb::EvaluateRequest {
            flag_name: name.clone(),
            user_id: "u1".into(),
            ..pb::EvaluateRequest::default()
        },
    )
    .await;
    let answer =
        pb::EvaluateResponse::decode(answer.message.as_deref().expect("answer")).expect("decode");
    assert_eq!(answer.reason, pb::Reason::Disabled as i32);

    app.stop().await;
    db.remove().await;
}
