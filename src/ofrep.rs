//! OFREP, the OpenFeature Remote Evaluation Protocol: JSON over HTTP (axum),
//! for OpenFeature's OFREP providers on servers and in browsers. The HTTP
//! edge, beside `grpc`: it parses, admits through the same gatekeeper as
//! Evaluate, resolves with `service::openfeature`, and answers with the
//! status codes and bodies of the protocol's OpenAPI document.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag.
//! - `POST /ofrep/v1/evaluate/flags`: every flag, with an `ETag` (the
//!   revision and a hash of the answers) and `304` on `If-None-Match`; the
//!   answer names the change stream below (ADR-0008).
//!
//! Values keep their type: integers are written bare, floats always with a
//! fraction or exponent (`3.0`), since OFREP carries no type and providers
//! tell them apart by how the number is written. A flag serving no value
//! here is answered without `value` (reason DEFAULT), so providers use the
//! code default. Answers are written straight to bytes, and the bulk
//! answer's tag hashes those bytes (no second serialization).
//! - `GET /ofrep/v1/events`: server-sent `refetchEvaluation` events, one per
//!   change, from the same ordered feed as Watch.
//! - `GET /ofrep/v1/configuration`: what the provider may do.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admission::{Call, Gatekeeper, Refusal, StreamKind};
use crate::auth::Principal;
use crate::engine::bucket::Murmur3;
use crate::error::Error;
use crate::listener::PeerAddr;
use crate::service::openfeature::{
    Context, ENVIRONMENT_ATTRIBUTE, OpenFeatureReason, Resolution, ResolveError, Resolver,
    TARGETING_KEY, Typed,
};
use crate::service::{WatchEvent, Watcher};

/// Largest request body: a context with room to spare.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long an admitted request's body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The shortest polling interval providers are told to use.
const MIN_POLLING_INTERVAL_MS: u64 = 1_000;
/// SSE comment lines keep idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Where the change stream is served; bulk answers point providers here.
const EVENTS_PATH: &str = "/ofrep/v1/events";

pub struct Ofrep {
    resolver: Resolver,
    watcher: Watcher,
    gate: Arc<Gatekeeper>,
}

impl Ofrep {
    pub fn new(resolver: Resolver, watcher: Watcher, gate: Arc<Gatekeeper>) -> Self {
        Self {
            resolver,
            watcher,
            gate,
        }
    }

    /// The routes, with CORS for `cors_origins` (`*` for any) when given.
    pub fn router(self, cors_origins: &[String]) -> Router {
        let router = Router::new()
            .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_flag))
            .route("/ofrep/v1/evaluate/flags", post(evaluate_flags))
            .route("/ofrep/v1/configuration", get(configuration))
            .route(EVENTS_PATH, get(events))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(axum::middleware::map_response(json_errors))
            .with_state(Arc::new(self));
        match cors(cors_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin.trim()).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_NONE_MATCH,
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}

/// The evaluation context of a request body; `Err` is a 400 answer's
/// error code and details.
struct Body {
    targeting_key: Option<String>,
    environment: String,
    depth: usize,
    /// The whole context, for targeting rules.
    context: Map<String, Value>,
}

fn parse_body(body: &[u8]) -> Result<Body, (&'static str, String)> {
    let invalid = |why: String| ("INVALID_CONTEXT", why);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body {
            targeting_key: None,
            environment: String::new(),
            depth: 0,
            context: Map::new(),
        });
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| ("PARSE_ERROR", format!("the body is not JSON: {err}")))?;
    let Value::Object(mut body) = value else {
        return Err(("PARSE_ERROR", "the body must be a JSON object".into()));
    };
    let context = match body.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context,
        Some(_) => return Err(invalid("context must be an object".into())),
    };
    let depth = object_depth(&context);
    let text = |name: &str| match context.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("context.{name} must be a string"))),
    };
    Ok(Body {
        targeting_key: text(TARGETING_KEY)?.filter(|key| !key.is_empty()),
        environment: text(ENVIRONMENT_ATTRIBUTE)?.unwrap_or_default(),
        depth,
        context,
    })
}

/// How deeply `object`'s objects and arrays nest (1 for a flat one). The
/// JSON parser's recursion limit bounds the recursion.
fn object_depth(object: &Map<String, Value>) -> usize {
    fn value_depth(value: &Value) -> usize {
        match value {
            Value::Object(inner) => object_depth(inner),
            Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + object.values().map(value_depth).max().unwrap_or(0)
}

impl Body {
    fn context(&self) -> Context<'_> {
        Context {
            targeting_key: self.targeting_key.as_deref(),
            environment: &self.environment,
            depth: self.depth,
            attributes: &self.context,
        }
    }
}

/// Admits the call as an evaluation: the same authentication policy, rate
/// limits and in-progress limit as Evaluate.
fn admit(
    state: &Ofrep,
    headers: &HeaderMap,
    peer: SocketAddr,
    method: &str,
) -> Result<(Option<Principal>, OwnedSemaphorePermit), Refusal> {
    state.gate.evaluation(&call_of(headers, peer), method)
}

/// What admission reads of an HTTP request: its headers and peer.
fn call_of(headers: &HeaderMap, peer: SocketAddr) -> Call<'_> {
    Call {
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default()),
        actor: None,
        peer: Some(peer.ip()),
    }
}

/// A refusal as HTTP: 401, 403, 400, or 429 with `Retry-After` (seconds).
// The one mapping of these errors to this wire: every variant named.
#[deny(clippy::wildcard_enum_match_arm)]
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthenticated(why) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({ "errorCode": "GENERAL", "errorDetails": why })),
        )
            .into_response(),
        Refusal::PermissionDenied(why) => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "errorCode": "GENERAL", "errorDetails": why })),
        )
            .into_response(),
        Refusal::InvalidArgument { field, message } => {
            bad_request(None, ("INVALID_CONTEXT", format!("{field}: {message}")))
        }
        Refusal::Overloaded {
            message,
            retry_after,
        } => {
            let seconds = retry_after.as_millis().div_ceil(1_000).max(1);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                axum::Json(json!({ "errorCode": "GENERAL", "errorDetails": message })),
            )
                .into_response()
        }
    }
}

/// A failure of the service behind OFREP (the change feed) as HTTP.
// The one mapping of these errors to this wire: every variant named.
#[deny(clippy::wildcard_enum_match_arm)]
fn failed(err: &Error) -> Response {
    let status = match err {
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
        Error::NotFound(_)
        | Error::AlreadyExists(_)
        | Error::Conflict { .. }
        | Error::PermissionDenied(_)
        | Error::FailedPrecondition(_)
        | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let details = match err {
        Error::Internal(_) => "internal error".to_owned(),
        Error::InvalidArgument { .. }
        | Error::NotFound(_)
        | Error::AlreadyExists(_)
        | Error::Conflict { .. }
        | Error::PermissionDenied(_)
        | Error::FailedPrecondition(_)
        | Error::Unavailable(_) => err.to_string(),
    };
    (
        status,
        axum::Json(json!({ "errorCode": "GENERAL", "errorDetails": details })),
    )
        .into_response()
}

/// Every error answer in OFREP's JSON shape (`errorCode`, `errorDetails`),
/// including axum's own refusals (a body over the limit, a key that is not
/// UTF-8, a broken chunked body, an unknown path), which are plain text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let details = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over {MAX_BODY_BYTES} bytes"),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase(),
        _ => String::from_utf8_lossy(&text).trim().to_owned(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "PARSE_ERROR",
        _ => "GENERAL",
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = json!({ "errorCode": code, "errorDetails": details }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn bad_request(key: Option<&str>, (code, details): (&str, String)) -> Response {
    let mut body = json!({ "errorCode": code, "errorDetails": details });
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Writes one flag's success body. A killed boolean flag answers `false`
/// (variant `off`) with reason STATIC: the kill switch's answer is off, for
/// everyone. `cacheable` is added for single-flag answers.
fn write_success(out: &mut Vec<u8>, key: &str, resolution: &Resolution, cacheable: Option<bool>) {
    out.extend_from_slice(b"{\"key\":");
    erased::Json::write(&key, out);
    out.extend_from_slice(b",\"reason\":\"");
    out.extend_from_slice(resolution.reason.as_str().as_bytes());
    out.push(b'"');
    match resolution.variant() {
        // No value (ADR-0006): the provider uses the code default. `variant`
        // stays, empty: some providers require the key.
        None => out.extend_from_slice(b",\"variant\":\"\""),
        Some(variant) => {
            out.extend_from_slice(b",\"variant\":");
            erased::Json::write(&variant.name.as_str(), out);
            out.extend_from_slice(b",\"value\":");
            match resolution.value() {
                Some(Typed::Bool(b)) => erased::Json::write(&b, out),
                Some(Typed::String(s)) => erased::Json::write(&s, out),
                Some(Typed::Int(n)) => erased::Json::write(&n, out),
                Some(Typed::Float(n)) => erased::Json::write(&n, out),
                Some(Typed::Object(object)) => erased::Json::write(object, out),
                None => out.extend_from_slice(b"null"),
            }
        }
    }
    out.extend_from_slice(b",\"metadata\":{\"revision\":");
    out.extend_from_slice(resolution.revision().to_string().as_bytes());
    out.extend_from_slice(b",\"vexilReason\":\"");
    out.extend_from_slice(resolution.vexil_reason().name().as_bytes());
    out.extend_from_slice(b"\"}");
    if let Some(cacheable) = cacheable {
        out.extend_from_slice(if cacheable {
            b",\"cacheable\":true"
        } else {
            b",\"cacheable\":false"
        });
    }
    out.push(b'}');
}

/// Serializing a value into a byte buffer.
mod erased {
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            // A Vec never fails as a writer, and these values (strings,
            // numbers checked finite at write time, JSON objects) always
            // serialize.
            let _ = serde_json::to_writer(&mut *out, self);
        }
    }
}

/// A JSON answer from bytes already written.
fn json_response(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// The failure for an answer that needed the user id when none was given.
fn needs_targeting_key(key: &str) -> Value {
    json!({
        "key": key,
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": format!(
            "flag {key} decides by user: set the context's {TARGETING_KEY}"
        ),
    })
}

/// An admitted request's body: read only once the caller is admitted,
/// at most `MAX_BODY_BYTES`, within `BODY_TIMEOUT` (a caller cannot hold
/// partial bodies open).
async fn read_body(body: axum::body::Body) -> Result<Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            Err(match too_large {
                true => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                false => (StatusCode::BAD_REQUEST, "the body could not be read").into_response(),
            })
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
            .into_response()),
    }
}

async fn evaluate_flag(
    State(state): State<Arc<Ofrep>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let _admitted = match admit(&state, &headers, peer, "OFREP evaluate") {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(refusal),
    };
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    // Errors echo the key cut to 128 bytes: a caller's path is not copied
    // back whole.
    let shown = crate::engine::echo(&key);
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(err) => return bad_request(Some(&shown), err),
    };
    match state.resolver.resolve(&key, &body.context(), Utc::now()) {
        Ok(resolution) if resolution.needed_user => (
            StatusCode::BAD_REQUEST,
            axum::Json(needs_targeting_key(&key)),
        )
            .into_response(),
        Ok(resolution) => {
            let mut answer = Vec::with_capacity(256);
            let cacheable = resolution.reason == OpenFeatureReason::Static;
            write_success(&mut answer, &key, &resolution, Some(cacheable));
            json_response(answer)
        }
        Err(ResolveError::FlagNotFound) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "key": shown,
                "errorCode": "FLAG_NOT_FOUND",
                "errorDetails": format!("no flag named {shown:?}"),
            })),
        )
            .into_response(),
        Err(ResolveError::InvalidContext(why)) => {
            bad_request(Some(&shown), ("INVALID_CONTEXT", why))
        }
        // Single-flag answers are not typed by the request.
        Err(err @ ResolveError::TypeMismatch { .. }) => {
            bad_request(Some(&shown), ("TYPE_MISMATCH", err.to_string()))
        }
    }
}

async fn evaluate_flags(
    State(state): State<Arc<Ofrep>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let admitted = match admit(&state, &headers, peer, "OFREP bulk evaluate") {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(refusal),
    };
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let raw = body;
    let body = match parse_body(&raw) {
        Ok(body) => body,
        Err(err) => return bad_request(None, err),
    };
    // A change event names the revision it announced: answer from at least
    // that revision (waiting a moment for this replica to apply it).
    if let Some(revision) = query
        .get("flagConfigEtag")
        .and_then(|etag| etag.trim_matches('"').parse::<u64>().ok())
    {
        // Not waiting in an in-flight place: a caller naming revisions
        // could otherwise hold them all.
        drop(admitted);
        state.watcher.reaches(revision).await;
    }
    let revision = state.watcher.head();
    let resolved = match state.resolver.resolve_all(&body.context(), Utc::now()) {
        Ok(resolved) => resolved,
        Err(err) => return bad_request(None, ("INVALID_CONTEXT", err.to_string())),
    };
    let mut flags = Vec::with_capacity(64 + resolved.len() * 160);
    flags.push(b'[');
    for (i, (key, resolution)) in resolved.iter().enumerate() {
        if i > 0 {
            flags.push(b',');
        }
        if resolution.needed_user {
            erased::Json::write(&needs_targeting_key(key), &mut flags);
        } else {
            write_success(&mut flags, key, resolution, None);
        }
    }
    flags.push(b']');
    // The request's context (as sent) and the answers (as written): another
    // context, or a time rule that came due, is another tag even at one
    // revision.
    let etag = format!("\"{revision}-{}\"", digest(&[&raw[..], &flags[..]]));
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag);
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut answer = Vec::with_capacity(flags.len() + 160);
    answer.extend_from_slice(b"{\"flags\":");
    answer.extend_from_slice(&flags);
    answer.extend_from_slice(format!(
        ",\"metadata\":{{\"revision\":{revision}}},\"eventStreams\":[{{\"type\":\"sse\",\"endpoint\":{{\"requestUri\":\"{EVENTS_PATH}\"}}}}]}}"
    ).as_bytes());
    let mut response = json_response(answer);
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// 64 bits of `parts` (each length-prefixed), the same in every replica
/// and version.
fn digest(parts: &[&[u8]]) -> String {
    let hash = |seed| {
        let mut hasher = Murmur3::new(seed);
        for part in parts {
            hasher.write(&(part.len() as u64).to_le_bytes());
            hasher.write(part);
        }
        hasher.finish()
    };
    format!("{:08x}{:08x}", hash(0), hash(0x9e37_79b9))
}

async fn configuration() -> Response {
    axum::Json(json!({
        "name": "vexil",
        "capabilities": {
            "cacheInvalidation": {
                "polling": { "enabled": true, "minPollingIntervalMs": MIN_POLLING_INTERVAL_MS },
            },
            "flagEvaluation": {
                "supportedTypes": ["boolean", "string", "integer", "float", "object"]
            },
        },
    }))
    .into_response()
}

/// Server-sent events: `refetchEvaluation` with the change's revision as
/// `etag`, one per change (providers coalesce them).
async fn events(
    State(state): State<Arc<Ofrep>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
) -> Response {
    let call = call_of(&headers, peer);
    let admitted = match state
        .gate
        .stream(&call, StreamKind::Notices, "OFREP events")
    {
        Ok(admitted) => admitted,
        Err(refusal) => return refused(refusal),
    };
    let changes = match state.watcher.watch_from_now().await {
        Ok(changes) => changes,
        Err(err) => return failed(&err),
    };
    let (slot, expires_in) = (admitted.slot, admitted.expires_in);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut changes = changes;
        let expiry = tokio::time::sleep(expires_in.unwrap_or(Duration::MAX / 4));
        tokio::pin!(expiry);
        loop {
            let revision = tokio::select! {
                item = changes.recv() => match item {
                    Some(Ok(WatchEvent::Change(entry))) => entry.revision(),
                    Some(Ok(WatchEvent::Snapshot { revision, .. })) => revision,
                    Some(Ok(WatchEvent::Heartbeat { .. })) => continue,
                    // Too slow, or shutting down: the browser reconnects.
                    Some(Err(_)) | None => return,
                },
                // The browser reconnects, with a fresh token if it has one.
                () = &mut expiry, if expires_in.is_some() => return,
                () = tx.closed() => return,
            };
            let event = Event::default().data(
                json!({ "type": "refetchEvaluation", "etag": revision.to_string() }).to_string(),
            );
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    let stream: ReceiverStream<Result<Event, Infallible>> = ReceiverStream::new(rx);
    sse(stream).into_response()
}

fn sse(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
