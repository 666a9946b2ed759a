//! flagd's evaluation services, `flagd.evaluation.v1` and `.v2`, so that
//! OpenFeature's flagd providers (RPC mode) evaluate Vexil flags unmodified.
//!
//! Every answer is Vexil's, from `service::openfeature`, with the request's
//! context used for targeting. Each typed resolve answers flags of its type
//! (ResolveInt also integral floats within ±2^53, ResolveFloat also ints);
//! any other type is INVALID_ARGUMENT (flagd's TYPE_MISMATCH); an unknown
//! flag is NOT_FOUND. A flag serving no value here (a typed flag without an
//! off variant, when off) is NOT_FOUND too (and left out of ResolveAll),
//! so providers use the code default. The environment is the
//! context's `environment` attribute, else the `flagd-selector` header,
//! else none. EventStream announces
//! `provider_ready`, then a `configuration_change` per change from the same
//! ordered feed as Watch, and `keep_alive` every 20 s.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vexil_proto::convert::struct_to_pb;
use vexil_proto::google::protobuf::value::Kind;
use vexil_proto::google::protobuf::{Struct, Value};

use super::access::GrpcAdmission;
use crate::admission::{Gatekeeper, StreamKind, WatchSlot};
use crate::domain::{ChangeKind, Committed, FlagChange};
use crate::domain::{FlagType, NoAttributes};
use crate::service::openfeature::{
    Context, ENVIRONMENT_ATTRIBUTE, Resolution, ResolveError, Resolver, TARGETING_KEY, Typed,
};
use crate::service::{WatchEnd, WatchEvent, Watcher};

/// Generated types and servers of `flagd.evaluation.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("flagd.evaluation.v1");
}

/// Generated types and servers of `flagd.evaluation.v2`.
pub mod v2 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("flagd.evaluation.v2");
}

/// Encoded descriptors of the flagd protos, served by reflection on the
/// flagd port.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flagd_descriptor.bin"));

/// The header flagd providers send their configured selector in.
const SELECTOR_HEADER: &str = "flagd-selector";
/// flagd's keep-alive period on EventStream.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Events waiting for a slow EventStream reader.
const EVENT_BUFFER: usize = 64;

/// Both versions' services: one resolver, one gatekeeper.
#[derive(Clone)]
pub struct Flagd {
    resolver: Resolver,
    watcher: Watcher,
    gate: Arc<Gatekeeper>,
}

/// The server of `flagd.evaluation.v1`.
#[derive(Clone)]
pub struct FlagdV1(pub Flagd);

/// The server of `flagd.evaluation.v2`.
#[derive(Clone)]
pub struct FlagdV2(pub Flagd);

impl Flagd {
    pub fn new(resolver: Resolver, watcher: Watcher, gate: Arc<Gatekeeper>) -> Self {
        Self {
            resolver,
            watcher,
            gate,
        }
    }

    /// Admits the call (the evaluation policy and rate limit) and returns
    /// the selector header, which names the default environment.
    fn admit<T>(&self, request: &Request<T>, method: &str) -> Result<Option<String>, Status> {
        let _admitted = self.gate.admit_evaluation(request, method)?;
        Ok(request
            .metadata()
            .get(SELECTOR_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned))
    }

    fn resolve(
        &self,
        flag_key: &str,
        context: Option<&Struct>,
        selector: Option<&str>,
    ) -> Result<Resolution, Status> {
        let ctx = context_of(context, selector)?;
        self.resolver
            .resolve(flag_key, &ctx, Utc::now())
            .map_err(|err| resolve_status(flag_key, err))
    }

    /// Resolves `flag_key` as `asked`: its resolution and value (`None`:
    /// no value here).
    fn resolve_as(
        &self,
        flag_key: &str,
        context: Option<&Struct>,
        selector: Option<&str>,
        asked: FlagType,
    ) -> Result<(Resolution, Option<Owned>), Status> {
        let resolution = self.resolve(flag_key, context, selector)?;
        let value = resolution
            .value_as(asked)
            .map_err(|err| resolve_status(flag_key, err))?
            .map(Owned::from);
        Ok((resolution, value))
    }

    fn resolve_all(
        &self,
        context: Option<&Struct>,
        selector: Option<&str>,
    ) -> Result<Vec<(String, Resolution)>, Status> {
        let ctx = context_of(context, selector)?;
        self.resolver
            .resolve_all(&ctx, Utc::now())
            .map_err(|err| resolve_status("", err))
    }

    /// An EventStream: `provider_ready`, then changes and keep-alives, each
    /// made into the version's message by `event`.
    async fn events<R: Send + 'static>(
        &self,
        request: &Request<()>,
        event: fn(String, Option<Struct>) -> R,
    ) -> Result<ReceiverStream<Result<R, Status>>, Status> {
        let admitted = self
            .gate
            .admit_stream(request, StreamKind::Notices, "EventStream")?;
        let changes = self.watcher.watch_from_now().await?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(forward_events(
            changes,
            self.resolver.clone(),
            tx,
            event,
            admitted.slot,
            admitted.expires_in,
        ));
        Ok(ReceiverStream::new(rx))
    }
}

/// Sends `provider_ready`, then a `configuration_change` per change and a
/// `keep_alive` when due, until the client leaves, the server stops or the
/// token expires.
async fn forward_events<R>(
    mut changes: crate::service::Subscription,
    resolver: Resolver,
    tx: mpsc::Sender<Result<R, Status>>,
    event: fn(String, Option<Struct>) -> R,
    _slot: WatchSlot,
    expires_in: Option<Duration>,
) {
    if tx
        .send(Ok(event("provider_ready".into(), None)))
        .await
        .is_err()
    {
        return;
    }
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let expiry = tokio::time::sleep(expires_in.unwrap_or(Duration::MAX / 4));
    tokio::pin!(expiry);
    loop {
        let message = tokio::select! {
            item = changes.recv() => match item {
                Some(Ok(WatchEvent::Change(entry))) => match &entry.change {
                    Committed::Flag(change) => {
                        Ok(event("configuration_change".into(), Some(changed([change]))))
                    }
                    // The flags that test segments may answer differently.
                    Committed::Segment(change) => {
                        let updated = resolver.flags_using_segments(change.revision);
                        if updated.is_empty() {
                            continue;
                        }
                        Ok(event("configuration_change".into(), Some(updated_flags(updated))))
                    }
                },
                // The feed could not serve this stream's place: every flag
                // may have changed.
                Some(Ok(WatchEvent::Snapshot { flags, .. })) => {
                    let changes: Vec<FlagChange> = flags.into_iter().map(FlagChange::upserted).collect();
                    Ok(event("configuration_change".into(), Some(changed(changes.iter()))))
                }
                Some(Ok(WatchEvent::Heartbeat { .. })) => continue,
                Some(Err(end)) => Err(end_status(end)),
                None => Err(Status::unavailable("the server is shutting down; reconnect")),
            },
            _ = keep_alive.tick() => Ok(event("keep_alive".into(), None)),
            () = &mut expiry, if expires_in.is_some() => Err(Status::unauthenticated(
                "the token expired; reconnect with a fresh one",
            )),
            () = tx.closed() => return,
        };
        let last = message.is_err();
        if tx.send(message).await.is_err() || last {
            return;
        }
    }
}

/// `data.flags.{key}.type` of flags whose answers may have changed
/// because a segment did.
fn updated_flags(names: Arc<[String]>) -> Struct {
    flags_changed(names.iter().map(|name| (name.clone(), "update")))
}

/// `data.flags.{key}.type` for the changed flags: `write` (created),
/// `update` or `delete`, as flagd announces them.
fn changed<'a>(changes: impl IntoIterator<Item = &'a FlagChange>) -> Struct {
    flags_changed(changes.into_iter().map(|change| {
        let kind = match change.kind() {
            ChangeKind::Created => "write",
            ChangeKind::Updated => "update",
            ChangeKind::Deleted => "delete",
        };
        (change.flag_name.to_string(), kind)
    }))
}

fn flags_changed(flags: impl Iterator<Item = (String, &'static str)>) -> Struct {
    let flags = flags
        .map(|(name, kind)| (name, object([("type", string(kind))])))
        .collect();
    fields([(
        "flags",
        Value {
            kind: Some(Kind::StructValue(Struct { fields: flags })),
        },
    )])
}

fn end_status(end: WatchEnd) -> Status {
    match end {
        WatchEnd::TooSlow { .. } => {
            Status::resource_exhausted("the event stream fell behind; reconnect")
        }
        WatchEnd::ShuttingDown { .. } => {
            Status::unavailable("the server is shutting down; reconnect")
        }
    }
}

/// The user and environment a context names. The `environment` attribute
/// wins over the selector header.
fn context_of<'a>(
    context: Option<&'a Struct>,
    selector: Option<&'a str>,
) -> Result<Context<'a>, Status> {
    if let Some(context) = context {
        vexil_proto::context::validate("context", context)
            .map_err(|err| Status::invalid_argument(format!("INVALID_CONTEXT: {err}")))?;
    }
    let attribute = |name: &str| -> Result<Option<&'a str>, Status> {
        match context
            .and_then(|context| context.fields.get(name))
            .and_then(|value| value.kind.as_ref())
        {
            None | Some(Kind::NullValue(_)) => Ok(None),
            Some(Kind::StringValue(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(Status::invalid_argument(format!(
                "INVALID_CONTEXT: context.{name} must be a string"
            ))),
        }
    };
    Ok(Context {
        targeting_key: attribute(TARGETING_KEY)?.filter(|key| !key.is_empty()),
        environment: attribute(ENVIRONMENT_ATTRIBUTE)?
            .or(selector)
            .unwrap_or_default(),
        depth: context.map_or(0, struct_depth),
        attributes: match context {
            Some(context) => context,
            None => &NoAttributes,
        },
    })
}

/// How deeply `context`'s structs and lists nest (1 for a flat one). The
/// decoder's recursion limit bounds the recursion.
fn struct_depth(context: &Struct) -> usize {
    fn value_depth(value: &Value) -> usize {
        match &value.kind {
            Some(Kind::StructValue(inner)) => struct_depth(inner),
            Some(Kind::ListValue(list)) => {
                1 + list.values.iter().map(value_depth).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
    1 + context.fields.values().map(value_depth).max().unwrap_or(0)
}

// The one mapping of these errors to this wire: every variant named.
#[deny(clippy::wildcard_enum_match_arm)]
fn resolve_status(flag_key: &str, err: ResolveError) -> Status {
    match err {
        ResolveError::FlagNotFound => Status::not_found(format!(
            "FLAG_NOT_FOUND: flag_key: no flag named {:?}",
            crate::engine::echo(flag_key)
        )),
        ResolveError::InvalidContext(why) => {
            Status::invalid_argument(format!("INVALID_CONTEXT: {why}"))
        }
        err @ ResolveError::TypeMismatch { .. } => Status::invalid_argument(format!(
            "TYPE_MISMATCH: flag_key: {}: {err}",
            crate::engine::echo(flag_key)
        )),
    }
}

/// A value taken out of a resolution, as flagd's messages hold it.
enum Owned {
    Bool(bool),
    String(String),
    Int(i64),
    Float(f64),
    Object(Struct),
}

impl From<Typed<'_>> for Owned {
    fn from(value: Typed<'_>) -> Self {
        match value {
            Typed::Bool(b) => Self::Bool(b),
            Typed::String(s) => Self::String(s.to_string()),
            Typed::Int(n) => Self::Int(n),
            Typed::Float(n) => Self::Float(n),
            Typed::Object(object) => Self::Object(struct_to_pb(object)),
        }
    }
}

macro_rules! owned_as {
    ($name:ident, $variant:ident, $type:ty) => {
        fn $name(value: Option<Owned>) -> Option<$type> {
            match value {
                Some(Owned::$variant(value)) => Some(value),
                _ => None,
            }
        }
    };
}
owned_as!(as_bool, Bool, bool);
owned_as!(as_string, String, String);
owned_as!(as_int, Int, i64);
owned_as!(as_float, Float, f64);
owned_as!(as_object, Object, Struct);

/// The variant's name, when a value is served.
fn variant_name(resolution: &Resolution) -> Option<String> {
    resolution.variant().map(|variant| variant.name.clone())
}

/// The answer's metadata: the flag's revision and Vexil's own reason.
fn metadata(resolution: &Resolution) -> Struct {
    fields([
        ("revision", number(resolution.revision() as f64)),
        ("vexilReason", string(resolution.vexil_reason().name())),
    ])
}

fn fields<const N: usize>(fields: [(&str, Value); N]) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    }
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value {
        kind: Some(Kind::StructValue(fields(entries))),
    }
}

fn string(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.to_string())),
    }
}

fn number(value: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value)),
    }
}

/// Implements one version's service. `$present` turns an answer that may
/// be absent into the version's field: v2's fields are optional, v1's
/// fall back to the type's default.
macro_rules! flagd_service {
    ($server:ident, $version:ident, $present:path) => {
        #[tonic::async_trait]
        impl $version::service_server::Service for $server {
            type EventStreamStream = ReceiverStream<Result<$version::EventStreamResponse, Status>>;

            async fn resolve_all(
                &self,
                request: Request<$version::ResolveAllRequest>,
            ) -> Result<Response<$version::ResolveAllResponse>, Status> {
                use $version::any_flag::Value as Any;
                let selector = self.0.admit(&request, "ResolveAll")?;
                let context = request.into_inner().context;
                let flags = self
                    .0
                    .resolve_all(context.as_ref(), selector.as_deref())?
                    .into_iter()
                    .filter_map(|(name, resolution)| {
                        let value = resolution.value().map(|value| match Owned::from(value) {
                            Owned::Bool(b) => Any::BoolValue(b),
                            Owned::String(s) => Any::StringValue(s),
                            Owned::Int(n) => Any::DoubleValue(n as f64),
                            Owned::Float(n) => Any::DoubleValue(n),
                            Owned::Object(object) => Any::ObjectValue(object),
                        });
                        // Flags serving no value here are left out.
                        $present(value.as_ref().map(|_| ())).ok()?;
                        let flag = $version::AnyFlag {
                            reason: resolution.reason.as_str().to_string(),
                            variant: $present(variant_name(&resolution)).ok()?,
                            value,
                            metadata: Some(metadata(&resolution)),
                        };
                        Some((name, flag))
                    })
                    .collect();
                Ok(Response::new($version::ResolveAllResponse {
                    flags,
                    metadata: None,
                }))
            }

            async fn resolve_boolean(
                &self,
                request: Request<$version::ResolveBooleanRequest>,
            ) -> Result<Response<$version::ResolveBooleanResponse>, Status> {
                let selector = self.0.admit(&request, "ResolveBoolean")?;
                let $version::ResolveBooleanRequest { flag_key, context } = request.into_inner();
                let (resolution, value) = self.0.resolve_as(
                    &flag_key,
                    context.as_ref(),
                    selector.as_deref(),
                    FlagType::Boolean,
                )?;
                Ok(Response::new($version::ResolveBooleanResponse {
                    value: $present(as_bool(value))?,
                    reason: resolution.reason.as_str().to_string(),
                    variant: $present(variant_name(&resolution))?,
                    metadata: Some(metadata(&resolution)),
                }))
            }

            async fn resolve_string(
                &self,
                request: Request<$version::ResolveStringRequest>,
            ) -> Result<Response<$version::ResolveStringResponse>, Status> {
                let selector = self.0.admit(&request, "ResolveString")?;
                let $version::ResolveStringRequest { flag_key, context } = request.into_inner();
                let (resolution, value) = self.0.resolve_as(
                    &flag_key,
                    context.as_ref(),
                    selector.as_deref(),
                    FlagType::String,
                )?;
                Ok(Response::new($version::ResolveStringResponse {
                    value: $present(as_string(value))?,
                    reason: resolution.reason.as_str().to_string(),
                    variant: $present(variant_name(&resolution))?,
                    metadata: Some(metadata(&resolution)),
                }))
            }

            async fn resolve_float(
                &self,
                request: Request<$version::ResolveFloatRequest>,
            ) -> Result<Response<$version::ResolveFloatResponse>, Status> {
                let selector = self.0.admit(&request, "ResolveFloat")?;
                let $version::ResolveFloatRequest { flag_key, context } = request.into_inner();
                let (resolution, value) = self.0.resolve_as(
                    &flag_key,
                    context.as_ref(),
                    selector.as_deref(),
                    FlagType::Float,
                )?;
                Ok(Response::new($version::ResolveFloatResponse {
                    value: $present(as_float(value))?,
                    reason: resolution.reason.as_str().to_string(),
                    variant: $present(variant_name(&resolution))?,
                    metadata: Some(metadata(&resolution)),
                }))
            }

            async fn resolve_int(
                &self,
                request: Request<$version::ResolveIntRequest>,
            ) -> Result<Response<$version::ResolveIntResponse>, Status> {
                let selector = self.0.admit(&request, "ResolveInt")?;
                let $version::ResolveIntRequest { flag_key, context } = request.into_inner();
                let (resolution, value) = self.0.resolve_as(
                    &flag_key,
                    context.as_ref(),
                    selector.as_deref(),
                    FlagType::Int,
                )?;
                Ok(Response::new($version::ResolveIntResponse {
                    value: $present(as_int(value))?,
                    reason: resolution.reason.as_str().to_string(),
                    variant: $present(variant_name(&resolution))?,
                    metadata: Some(metadata(&resolution)),
                }))
            }

            async fn resolve_object(
                &self,
                request: Request<$version::ResolveObjectRequest>,
            ) -> Result<Response<$version::ResolveObjectResponse>, Status> {
                let selector = self.0.admit(&request, "ResolveObject")?;
                let $version::ResolveObjectRequest { flag_key, context } = request.into_inner();
                let (resolution, value) = self.0.resolve_as(
                    &flag_key,
                    context.as_ref(),
                    selector.as_deref(),
                    FlagType::Object,
                )?;
                let value = as_object(value);
                $present(value.as_ref().map(|_| ()))?;
                Ok(Response::new($version::ResolveObjectResponse {
                    value,
                    reason: resolution.reason.as_str().to_string(),
                    variant: $present(variant_name(&resolution))?,
                    metadata: Some(metadata(&resolution)),
                }))
            }

            async fn event_stream(
                &self,
                request: Request<$version::EventStreamRequest>,
            ) -> Result<Response<Self::EventStreamStream>, Status> {
                let (metadata, extensions, _) = request.into_parts();
                let request = Request::from_parts(metadata, extensions, ());
                let stream = self
                    .0
                    .events(&request, |r#type, data| $version::EventStreamResponse {
                        r#type,
                        data,
                    })
                    .await?;
                Ok(Response::new(stream))
            }
        }
    };
}

/// A flag serving no value here cannot be answered: NOT_FOUND, so
/// providers use the code default.
fn required<T>(answer: Option<T>) -> Result<T, Status> {
    answer.ok_or_else(|| {
        Status::not_found(
            "FLAG_NOT_FOUND: the flag serves no value for this context (it has no off variant); \
             use the code default",
        )
    })
}

/// v2's fields are optional, but providers read an absent value as the
/// type's zero (`""`), not as "use the code default": a flag serving no
/// value is NOT_FOUND there too.
fn optional<T>(answer: Option<T>) -> Result<Option<T>, Status> {
    required(answer).map(Some)
}

flagd_service!(FlagdV1, v1, required);
flagd_service!(FlagdV2, v2, optional);
