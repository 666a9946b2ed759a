//! The Vexil client: a local copy of the flags kept current by Watch, and
//! evaluations against it in nanoseconds with the server's own engine
//! (`vexil-engine`), so a local answer never differs from the server's
//! Evaluate at the same revision.
//!
//! ```no_run
//! # async fn example() -> Result<(), vexil_client::ConnectError> {
//! let client = vexil_client::Client::builder()
//!     .endpoints(["http://vexil-1:50051", "http://vexil-2:50051"])
//!     .build()
//!     .connect()
//!     .await?;
//! if client.is_enabled("new_dashboard", "user-42", "production") {
//!     // …
//! }
//! # Ok(()) }
//! ```
//!
//! Reads never touch the network, never wait for the task that applies
//! changes, and allocate nothing. While the servers are unreachable the
//! client keeps answering from the last state it had ([`Status::Stale`]).

mod bootstrap;
mod convert;
mod copy;
mod sync;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
pub use vexil_client_macros::feature_flag;
pub use vexil_engine::{Attributes, Flag, FlagType, Metadata, Reason, Value, VariantIndex};
use vexil_engine::{EvalContext, NoAttributes, needs_clock};

use crate::copy::LocalCopy;
use crate::sync::Shared;

/// Generated protobuf types and clients of `vexil.v1`.
pub use vexil_proto::v1 as pb;

/// One flag's answer: the same fields and reasons as the server's Evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub enabled: bool,
    pub reason: Reason,
    /// The flag's revision; 0 when there is no such flag.
    pub revision: u64,
    /// The variant served (its position in the flag's variants); `None`:
    /// no value, the caller's default applies.
    pub variant: Option<VariantIndex>,
    /// The matching rule's position, for [`Reason::RuleMatch`].
    pub rule: Option<u16>,
}

/// Where the local copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No state yet.
    Connecting { last_error: Option<String> },
    /// Current with a server, at `revision`.
    Ready { revision: u64 },
    /// Serving the last known state (or a bootstrap file's) since `since`;
    /// reconnecting.
    Stale {
        since: SystemTime,
        last_error: String,
    },
}

/// What the client reports as it happens (see [`Client::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A snapshot replaced the copy.
    Snapshot { revision: u64, flags: usize },
    /// A flag was created, updated or deleted.
    Changed { flag: String, revision: u64 },
    /// A segment was created, updated or deleted.
    SegmentChanged { segment: String, revision: u64 },
    /// The status changed.
    Status(Status),
}

/// Why [`Connector::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no endpoint configured")]
    NoEndpoints,
    /// A setting the client cannot work with, named.
    #[error("{setting} {why}")]
    InvalidSetting {
        setting: &'static str,
        why: &'static str,
    },
    #[error("no complete snapshot within {timeout:?}; last error: {last_error}")]
    Timeout {
        timeout: Duration,
        last_error: String,
    },
}

/// Settings for a client; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    endpoints: Vec<String>,
    token: Option<String>,
    environment: String,
    connect_timeout: Duration,
    ready_timeout: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    bootstrap: Option<PathBuf>,
    bootstrap_max_age: Option<Duration>,
    bootstrap_every: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            token: None,
            environment: String::new(),
            connect_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            bootstrap: None,
            bootstrap_max_age: None,
            bootstrap_every: Duration::from_secs(30),
        }
    }
}

impl Builder {
    /// Servers to watch, as `http://host:port` (`https://` for TLS), tried
    /// in order; the client moves to the next whenever a stream ends.
    pub fn endpoints<S: Into<String>>(mut self, endpoints: impl IntoIterator<Item = S>) -> Self {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// A bearer token, when the servers require one for Watch.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The environment the `feature_flag` attribute evaluates in when it
    /// names none.
    pub fn default_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// How long one connection attempt may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`Connector::connect`] waits for a complete snapshot
    /// (default 10 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Reconnection backoff: a random wait up to `base × 2^failures`, at
    /// most `max` (defaults 100 ms and 10 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// A file to start from when no server answers in time, and to which the
    /// server's state is written every `every` (default 30 s) when it
    /// changed. A file that is unreadable or older than `max_age` is
    /// reported and ignored.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>, max_age: Option<Duration>) -> Self {
        self.bootstrap = Some(path.into());
        self.bootstrap_max_age = max_age;
        self
    }

    /// How often the bootstrap file is rewritten (when the state changed).
    pub fn bootstrap_every(mut self, every: Duration) -> Self {
        self.bootstrap_every = every;
        self
    }

    pub fn build(self) -> Connector {
        Connector { settings: self }
    }
}

/// A configured client, not yet connected.
pub struct Connector {
    settings: Builder,
}

impl Connector {
    /// Starts watching and waits for a complete snapshot. With a bootstrap
    /// file, a client that gets no snapshot in time starts from the file
    /// (status [`Status::Stale`]) and switches to the server's state when
    /// it arrives. Must run inside a Tokio runtime.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let settings = self.settings;
        if settings.endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        if settings.bootstrap.is_some() && settings.bootstrap_every.is_zero() {
            return Err(ConnectError::InvalidSetting {
                setting: "bootstrap_every",
                why: "must be longer than zero",
            });
        }
        let (status, mut status_changes) = watch::channel(Status::Connecting { last_error: None });
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            copy: LocalCopy::default(),
            from_server: AtomicBool::new(false),
            status,
            events,
        });
        let mut bootstrapped = false;
        if let Some(path) = &settings.bootstrap {
            match bootstrap::read(path, settings.bootstrap_max_age) {
                Ok(file) => {
                    tracing::info!(path = %path.display(), revision = file.revision, flags = file.flags.len(), "loaded the bootstrap file");
                    shared
                        .copy
                        .replace(file.flags, file.segments, file.revision);
                    bootstrapped = true;
                }
                Err(err) => tracing::warn!(error = %err, "ignoring the bootstrap file"),
            }
        }
        let options = sync::Options {
            endpoints: settings.endpoints.clone(),
            token: settings.token.clone(),
            connect_timeout: settings.connect_timeout,
            backoff_base: settings.backoff_base,
            backoff_max: settings.backoff_max,
        };
        let mut tasks = vec![tokio::spawn(sync::run(shared.clone(), options))];
        if let Some(path) = settings.bootstrap.clone() {
            tasks.push(tokio::spawn(keep_bootstrap_file(
                shared.clone(),
                path,
                settings.bootstrap_every,
            )));
        }
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                environment: settings.environment,
                tasks,
            }),
        };
        let ready = tokio::time::timeout(
            settings.ready_timeout,
            status_changes.wait_for(|status| matches!(status, Status::Ready { .. })),
        )
        .await;
        match ready {
            Ok(Ok(_)) => Ok(client),
            _ if bootstrapped => {
                let last_error = last_error(&client.status());
                client.inner.shared.status.send_modify(|status| {
                    if !matches!(status, Status::Ready { .. }) {
                        *status = Status::Stale {
                            since: SystemTime::now(),
                            last_error: last_error.clone(),
                        };
                    }
                });
                Ok(client)
            }
            _ => Err(ConnectError::Timeout {
                timeout: settings.ready_timeout,
                last_error: last_error(&client.status()),
            }),
        }
    }
}

fn last_error(status: &Status) -> String {
    match status {
        Status::Connecting {
            last_error: Some(error),
        }
        | Status::Stale {
            last_error: error, ..
        } => error.clone(),
        _ => "no answer yet".into(),
    }
}

/// Writes the server's state to the bootstrap file when it changed.
async fn keep_bootstrap_file(shared: Arc<Shared>, path: PathBuf, every: Duration) {
    let mut written = None;
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let revision = shared.copy.revision();
        if !shared.from_server.load(Ordering::Acquire) || written == Some(revision) {
            continue;
        }
        let flags = shared.copy.all();
        let segments = shared.copy.segments().clone();
        match bootstrap::write(&path, flags, &segments, revision).await {
            Ok(()) => written = Some(revision),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot write the bootstrap file")
            }
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    environment: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A connected client; cheap to clone. Dropping the last clone stops its
/// background tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Whether `flag` is on for `user_id` in `environment`.
    pub fn is_enabled(&self, flag: &str, user_id: &str, environment: &str) -> bool {
        self.evaluate(flag, user_id, environment).enabled
    }

    /// The answer with its reason, as the server's Evaluate gives it.
    pub fn evaluate(&self, flag: &str, user_id: &str, environment: &str) -> Evaluation {
        self.evaluate_in(flag, user_id, environment, &NoAttributes)
    }

    /// [`Self::evaluate`] with a context for targeting rules (a
    /// `serde_json::Map`, or anything implementing [`Attributes`]).
    /// Allocates nothing.
    pub fn evaluate_in(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
    ) -> Evaluation {
        self.with_answer(flag, user_id, environment, attributes, |_, evaluation| {
            evaluation
        })
    }

    /// Evaluates `flag` and hands `answer` the flag (if any) and the
    /// evaluation, against one copy of the state: the way to read a typed
    /// value without copying it.
    pub fn with_answer<R>(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        answer: impl FnOnce(Option<&Flag>, Evaluation) -> R,
    ) -> R {
        let copy = &self.inner.shared.copy;
        copy.with_flag(flag, |flag| {
            // The clock is read only for flags whose answer can depend on it.
            let now = match flag {
                Some(flag) if needs_clock(flag) => Utc::now(),
                _ => DateTime::UNIX_EPOCH,
            };
            let ctx = EvalContext {
                user_id,
                environment,
                attributes,
                catalog: copy,
            };
            let evaluation = vexil_engine::evaluate(flag, &ctx, now);
            answer(
                flag,
                Evaluation {
                    enabled: evaluation.enabled,
                    reason: evaluation.reason,
                    revision: flag.map_or(0, |flag| flag.revision),
                    variant: evaluation.variant,
                    rule: evaluation.rule,
                },
            )
        })
    }

    /// The name of the variant served, if any.
    pub fn variant(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
    ) -> Option<String> {
        self.with_value(flag, user_id, environment, attributes, |variant, _| {
            variant.map(str::to_owned)
        })
    }

    /// Hands `read` the variant's name and value served, if any.
    pub fn with_value<R>(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        read: impl FnOnce(Option<&str>, Option<&Value>) -> R,
    ) -> R {
        self.with_answer(
            flag,
            user_id,
            environment,
            attributes,
            |flag, evaluation| {
                let variant = flag
                    .zip(evaluation.variant)
                    .and_then(|(flag, index)| flag.variant(index));
                read(
                    variant.map(|variant| variant.name.as_str()),
                    variant.map(|variant| &variant.value),
                )
            },
        )
    }

    /// A boolean flag's value, or `default` when it serves none or is not
    /// boolean.
    pub fn get_bool(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        default: bool,
    ) -> bool {
        self.with_value(flag, user_id, environment, attributes, |_, value| {
            value.and_then(Value::as_bool).unwrap_or(default)
        })
    }

    /// A string flag's value, or `default`.
    pub fn get_string(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        default: &str,
    ) -> String {
        self.with_value(
            flag,
            user_id,
            environment,
            attributes,
            |_, value| match value {
                Some(Value::String(text)) => text.clone(),
                _ => default.to_owned(),
            },
        )
    }

    /// An integer flag's value (a float flag's when integral and within
    /// ±2^53, as OpenFeature allows), or `default`.
    pub fn get_int(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        default: i64,
    ) -> i64 {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        self.with_value(
            flag,
            user_id,
            environment,
            attributes,
            |_, value| match value {
                Some(Value::Int(n)) => *n,
                Some(Value::Float(n)) if n.fract() == 0.0 && n.abs() <= EXACT => *n as i64,
                _ => default,
            },
        )
    }

    /// A float flag's value (an integer flag's too), or `default`.
    pub fn get_float(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        default: f64,
    ) -> f64 {
        self.with_value(
            flag,
            user_id,
            environment,
            attributes,
            |_, value| match value {
                Some(Value::Float(n)) => *n,
                Some(Value::Int(n)) => *n as f64,
                _ => default,
            },
        )
    }

    /// An object flag's value, or `default`.
    pub fn get_object(
        &self,
        flag: &str,
        user_id: &str,
        environment: &str,
        attributes: &dyn Attributes,
        default: Metadata,
    ) -> Metadata {
        self.with_value(
            flag,
            user_id,
            environment,
            attributes,
            |_, value| match value {
                Some(Value::Object(object)) => object.clone(),
                _ => default,
            },
        )
    }

    /// Evaluates several flags against one copy of the state.
    pub fn evaluate_many<'a>(
        &self,
        flags: impl IntoIterator<Item = &'a str>,
        user_id: &str,
        environment: &str,
    ) -> Vec<(&'a str, Evaluation)> {
        flags
            .into_iter()
            .map(|flag| (flag, self.evaluate(flag, user_id, environment)))
            .collect()
    }

    /// The current copy, ordered by flag name.
    pub fn flags(&self) -> Vec<Arc<Flag>> {
        let mut flags: Vec<Arc<Flag>> = self.inner.shared.copy.all();
        flags.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        flags
    }

    /// The revision the copy is current to.
    pub fn revision(&self) -> u64 {
        self.inner.shared.copy.revision()
    }

    pub fn status(&self) -> Status {
        self.inner.shared.status.borrow().clone()
    }

    /// Every applied change and status transition from now on. A receiver
    /// that falls more than 1,024 events behind skips ahead (and is told so
    /// by `RecvError::Lagged`).
    pub fn changes(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The environment the `feature_flag` attribute uses when it names none.
    pub fn default_environment(&self) -> &str {
        &self.inner.environment
    }
}

static DEFAULT: OnceLock<Client> = OnceLock::new();

/// Makes `client` the process-wide default the `feature_flag` attribute
/// uses. Only the first call counts; it returns the client back otherwise.
pub fn set_default(client: Client) -> Result<(), Client> {
    DEFAULT.set(client)
}

/// The process-wide default client, once set.
pub fn default_client() -> Option<&'static Client> {
    DEFAULT.get()
}

/// The local copy, for its benchmark (`benches/copy.rs`). Not a public API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::copy::{FlagMap, LocalCopy};
}

/// What the `feature_flag` attribute expands to. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::Client;

    /// What a gated function without a fallback returns when its flag is off.
    #[diagnostic::on_unimplemented(
        message = "#[feature_flag] without a fallback returns `Default::default()` when the flag is off, but `{Self}` does not implement `Default`",
        label = "add `fallback = <function>` or implement `Default` for `{Self}`"
    )]
    pub trait OffValue {
        fn off() -> Self;
    }

    impl<T: Default> OffValue for T {
        fn off() -> Self {
            T::default()
        }
    }

    /// Whether `flag` is on; off when no client is given or set as default.
    pub fn enabled(
        client: Option<&Client>,
        flag: &str,
        user_id: &str,
        environment: Option<&str>,
    ) -> bool {
        with_client(client, environment, |client, environment| {
            client.is_enabled(flag, user_id, environment)
        })
    }

    /// Runs `ask` with the given client (else the default) and environment
    /// (else the client's); false when there is no client.
    fn with_client(
        client: Option<&Client>,
        environment: Option<&str>,
        ask: impl FnOnce(&Client, &str) -> bool,
    ) -> bool {
        let Some(client) = client.or(super::default_client()) else {
            return false;
        };
        ask(
            client,
            environment.unwrap_or_else(|| client.default_environment()),
        )
    }

    /// Whether `flag` serves the variant named `variant`; no when no
    /// client is given or set as default.
    pub fn serves(
        client: Option<&Client>,
        flag: &str,
        variant: &str,
        user_id: &str,
        environment: Option<&str>,
    ) -> bool {
        with_client(client, environment, |client, environment| {
            client.with_value(
                flag,
                user_id,
                environment,
                &super::NoAttributes,
                |served, _| served == Some(variant),
            )
        })
    }
}
