//! Configuration: one struct, every option a command-line flag with an
//! environment-variable fallback and a default. Nothing else reads the
//! environment. Tests build a [`Config`] directly.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

pub use crate::admission::{EvaluationAuth, WatchAuth};
use crate::auth::{AuthConfig, KeyConfig, Role};
pub use crate::store::SqliteSynchronous;
use crate::store::StoreOptions;

/// Vexil: feature-flag evaluation service over gRPC.
///
/// Without a command, serves (as `vexil serve`).
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Box<Config>,
}

impl Cli {
    /// The command to run: `serve` with the top-level options when none is named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.config))
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve(Box<Config>),
    /// Apply pending database migrations and exit.
    Migrate(Box<Config>),
    /// Print a development token signed with the HS256 secret
    /// (VEXIL_JWT_SECRET or VEXIL_JWT_SECRET_FILE).
    Token(TokenArgs),
    /// Ask a server whether it is serving (the standard gRPC health check):
    /// exit 0 when it is, 1 when it is not or cannot be reached. For Docker's
    /// HEALTHCHECK, Kubernetes exec probes and scripts.
    Health(HealthArgs),
    /// Commands that manage a running server through its gRPC API.
    #[command(flatten)]
    Manage(vexil_cli::Manage),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The token's subject: the actor its changes are audited under.
    #[arg(long)]
    pub subject: String,
    /// A role: reader, editor, admin or evaluator (repeatable).
    #[arg(long = "role", value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// Scope the token to an environment (repeatable); unscoped without.
    #[arg(long = "environment")]
    pub environments: Vec<String>,
    /// Lifetime, e.g. 90s, 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    #[command(flatten)]
    pub signing: Signing,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The server to ask, e.g. `http://127.0.0.1:50051` (`https://` for
    /// TLS). Default: VEXIL_LISTEN's port on the loopback address.
    #[arg(long, env = "VEXIL_HEALTH_ADDR")]
    pub addr: Option<String>,
    /// The gRPC service to ask about; empty for the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
    /// PEM CA certificates that sign an `https://` server's certificate
    /// (the system's roots otherwise).
    #[arg(long, env = "VEXIL_HEALTH_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Give up after this long, e.g. 3s.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The server's listen address, for the default `--addr`.
    #[arg(
        long,
        env = "VEXIL_LISTEN",
        default_value = "127.0.0.1:50051",
        hide = true
    )]
    pub listen: SocketAddr,
}

impl HealthArgs {
    /// `--addr`, else the listen port on loopback (a wildcard address
    /// cannot be connected to).
    pub fn address(&self) -> String {
        if let Some(addr) = &self.addr {
            return addr.clone();
        }
        let ip = match self.listen.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        format!("http://{}", SocketAddr::new(ip, self.listen.port()))
    }
}

/// What signs and shapes tokens: shared by the server, which verifies
/// them, and `vexil token`, which mints development ones.
#[derive(Debug, Clone, clap::Args)]
pub struct Signing {
    /// HS256 shared secret for bearer tokens (at least 32 bytes). Setting any
    /// key turns authentication on for management calls. From the
    /// environment only: refused on the command line.
    #[arg(long, env = "VEXIL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// File holding the HS256 shared secret (instead of VEXIL_JWT_SECRET).
    #[arg(long, env = "VEXIL_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Required `iss` of every token, when set.
    #[arg(long, env = "VEXIL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of every token, when set.
    #[arg(long, env = "VEXIL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Claim holding the caller's roles (list or space-separated string).
    #[arg(long, env = "VEXIL_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,

    /// Claim holding the environments a token is scoped to (optional list).
    #[arg(
        long,
        env = "VEXIL_JWT_ENVIRONMENTS_CLAIM",
        default_value = "environments"
    )]
    pub jwt_environments_claim: String,
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_secret_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_roles_claim: "roles".into(),
            jwt_environments_claim: "environments".into(),
        }
    }
}

impl Signing {
    /// The HS256 secret, from VEXIL_JWT_SECRET or VEXIL_JWT_SECRET_FILE.
    pub fn jwt_secret(&self) -> Result<Option<Vec<u8>>, String> {
        match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(_), Some(_)) => {
                Err("set VEXIL_JWT_SECRET or VEXIL_JWT_SECRET_FILE, not both".into())
            }
            (Some(secret), None) => Ok(Some(secret.0.clone().into_bytes())),
            (None, Some(path)) => std::fs::read(path)
                .map(|mut bytes| {
                    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                        bytes.pop();
                    }
                    Some(bytes)
                })
                .map_err(|err| format!("reading VEXIL_JWT_SECRET_FILE {}: {err}", path.display())),
            (None, None) => Ok(None),
        }
    }
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| "one of reader, editor, admin, evaluator".to_string())
}

/// `90s`, `30m`, `1h`, `7d`.
/// `500ms`, `10s`, `1m`: an interval between 10 ms and an hour.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = match text.strip_suffix("ms") {
        Some(millis) => millis
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| "expected e.g. 500ms, 10s, 1m".to_string())?,
        None => parse_duration(text)?,
    };
    if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&interval) {
        return Err("must be between 10ms and 1h".into());
    }
    Ok(interval)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected e.g. 90s, 30m, 1h, 7d".to_string())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("the unit must be s, m, h or d".into()),
    };
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| "too long".to_string())
}

/// Why the command line may not be used as given: it carries a secret
/// (the JWT secret, or a database or Redis URL with a password), which
/// every user of the machine can read in the process list.
pub fn secret_on_command_line(matches: &clap::ArgMatches) -> Option<String> {
    use clap::parser::ValueSource;
    let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let ids: Vec<String> = matches.ids().map(|id| id.to_string()).collect();
    for id in &ids {
        let refusal = match id.as_str() {
            "jwt_secret" if from_command_line(id) => {
                "--jwt-secret: pass the secret in VEXIL_JWT_SECRET or a file \
                 (VEXIL_JWT_SECRET_FILE), not on the command line, where the \
                 process list shows it"
            }
            "database_url" | "redis_url" if from_command_line(id) => {
                let has_password = matches
                    .get_one::<String>(id)
                    .and_then(|url| url::Url::parse(url).ok())
                    .is_some_and(|url| url.password().is_some());
                if !has_password {
                    continue;
                }
                if id == "database_url" {
                    "--database-url: a URL with a password goes in DATABASE_URL, not on \
                     the command line, where the process list shows it"
                } else {
                    "--redis-url: a URL with a password goes in REDIS_URL, not on the \
                     command line, where the process list shows it"
                }
            }
            _ => continue,
        };
        return Some(refusal.to_owned());
    }
    matches
        .subcommand()
        .and_then(|(_, sub)| secret_on_command_line(sub))
}

/// A secret read from the environment, never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_string()))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "VEXIL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Address serving flagd's evaluation API (gRPC, `flagd.evaluation.v1`
    /// and `.v2`) for OpenFeature's flagd providers; flagd's port is 8013.
    /// Off unless set.
    #[arg(long, env = "VEXIL_FLAGD_LISTEN")]
    pub flagd_listen: Option<SocketAddr>,

    /// Address serving OFREP (OpenFeature Remote Evaluation Protocol, JSON
    /// over HTTP) for OpenFeature's OFREP providers, browsers included;
    /// flagd serves it on 8016. Off unless set.
    #[arg(long, env = "VEXIL_OFREP_LISTEN")]
    pub ofrep_listen: Option<SocketAddr>,

    /// Address serving the web console: the page embedded in the binary and
    /// Vexil's API as gRPC-Web on the same origin (TLS as for gRPC). Off
    /// unless set.
    #[arg(long, env = "VEXIL_CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,

    /// Origins browsers may call OFREP from (CORS), comma-separated, e.g.
    /// `https://app.example.com`; `*` allows any. None unless set.
    #[arg(long, env = "VEXIL_OFREP_CORS_ORIGINS", value_delimiter = ',')]
    pub ofrep_cors_origins: Vec<String>,

    /// Database URL: `sqlite://FILE?mode=rwc` (embedded, created if missing)
    /// or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://vexil.db?mode=rwc"
    )]
    pub database_url: String,

    /// Database connections this replica may open. A quarter of them (at
    /// least 2) are kept for writes and cache catch-up, so a burst of reads
    /// (ListFlags, audit trails, Watch replays) cannot starve them.
    #[arg(long, env = "VEXIL_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(3..=1000))]
    pub database_max_connections: u32,

    /// SQLite only: `full` (the default) makes every acknowledged change
    /// durable across power loss and OS crashes; `normal` is faster but may
    /// lose the last changes then, and a later change would reuse their
    /// revision (Watch clients that saw them would diverge).
    #[arg(long, env = "VEXIL_SQLITE_SYNCHRONOUS", value_enum,
          default_value_t = SqliteSynchronous::Full)]
    pub sqlite_synchronous: SqliteSynchronous,

    /// PEM certificate chain: serve gRPC over TLS (with VEXIL_TLS_KEY_FILE).
    #[arg(long, env = "VEXIL_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of the TLS certificate.
    #[arg(long, env = "VEXIL_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates: with TLS on, clients must present a certificate
    /// signed by one of them.
    #[arg(long, env = "VEXIL_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Do not apply migrations on start (run `vexil migrate` as the schema
    /// owner instead): for a service role without DDL privileges.
    #[arg(long, env = "VEXIL_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Seconds between catch-ups of the hot cache from the database change
    /// log, whatever the bus delivers (the safety net for lost messages).
    #[arg(
        long = "cache-ttl",
        env = "FF_CACHE_TTL",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub cache_ttl_secs: u64,

    /// Redis URL (`redis://HOST:PORT/DB`) for propagating changes across
    /// replicas. Without it, changes propagate in process (one replica).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Redis connections for publishing changes.
    #[arg(long, env = "REDIS_MAX_CONNECTIONS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub redis_max_connections: u32,

    /// Prefix of every key and channel Vexil uses in Redis
    /// (`{prefix}:changes`, `{prefix}:metrics:…`): installations sharing one
    /// Redis keep apart by using different prefixes; replicas of one
    /// installation must share it.
    #[arg(long, env = "VEXIL_REDIS_PREFIX", default_value = "ff")]
    pub redis_prefix: String,

    /// Redis pub/sub channel that carries change announcements, when not
    /// `{VEXIL_REDIS_PREFIX}:changes`. Replicas sharing a database must
    /// share it; nothing else should publish on it.
    #[arg(long, env = "VEXIL_REDIS_CHANNEL")]
    pub redis_channel: Option<String>,

    /// Count evaluations per flag, environment and hour (GetMetrics, the
    /// Redis hashes, `/metrics`'s evaluation series). `false` touches no
    /// counter and writes nothing.
    #[arg(long, env = "FF_ENABLE_METRICS", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub enable_metrics: bool,

    /// How often each replica writes its evaluation counts (e.g. 10s, 500ms).
    #[arg(long, env = "VEXIL_METRICS_FLUSH_INTERVAL", default_value = "10s",
          value_parser = parse_interval)]
    pub metrics_flush_interval: Duration,

    /// Days of hourly evaluation figures kept (in the database and Redis).
    #[arg(long, env = "VEXIL_METRICS_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub metrics_retention_days: u32,

    /// Address for Prometheus' scrape endpoint (`GET /metrics`); off unless set.
    #[arg(long, env = "VEXIL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// How far (in revisions) a live Watch subscriber may fall behind the
    /// head, and how many events a catching-up stream may have waiting,
    /// before it is cut off.
    #[arg(long, env = "VEXIL_WATCH_BUFFER", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watch_buffer: u32,

    /// Recent changes kept in memory, so Watch streams that resume or fall
    /// behind are served without the database (also bounded to 64 MiB of
    /// flags). A stream further behind replays from the database.
    #[arg(long, env = "VEXIL_WATCH_FEED", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watch_feed: u32,

    #[command(flatten)]
    pub signing: Signing,

    /// PEM file with a public key (RSA, EC P-256 or Ed25519) for tokens
    /// signed RS256, ES256 or EdDSA.
    #[arg(long, env = "VEXIL_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// The algorithm of the PEM public key, when not the usual one for its
    /// type (e.g. RS384, PS256, ES384).
    #[arg(long, env = "VEXIL_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,

    /// JWKS file with public keys selected by `kid`; re-read at most every
    /// 10 s when a token names an unknown kid (key rotation).
    #[arg(long, env = "VEXIL_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// URL of a JWKS (https, or http to a loopback host), fetched in the
    /// background every 5 minutes and soon after a token names an unknown
    /// kid (at most every 10 s); requests never wait for it.
    #[arg(long, env = "VEXIL_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// How long the keys of a JWKS file or URL that turned empty keep
    /// verifying tokens (e.g. 10m, 0s); a JWKS that fails to load keeps
    /// its keys.
    #[arg(long, env = "VEXIL_JWKS_EMPTY_GRACE", default_value = "10m",
          value_parser = parse_duration)]
    pub jwks_empty_grace: Duration,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "VEXIL_JWT_LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub jwt_leeway_secs: u64,

    /// Who may call Evaluate, BulkEvaluate and Watch when authentication is on.
    #[arg(long, env = "VEXIL_AUTH_EVALUATION", value_enum,
          default_value_t = EvaluationAuth::Open)]
    pub auth_evaluation: EvaluationAuth,

    /// Who may Watch when authentication is on: `token` (a token with
    /// `reader` or `evaluator`) or `open` (anyone; tokenless streams carry
    /// flags without lists, metadata, description or actors).
    #[arg(long, env = "VEXIL_WATCH_AUTH", value_enum,
          default_value_t = WatchAuth::Token)]
    pub watch_auth: WatchAuth,

    /// Serve without authentication on a non-loopback address (anyone who
    /// can reach the port can change every flag).
    #[arg(long, env = "VEXIL_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    /// Management calls per second allowed to one caller (token subject,
    /// else peer IP), and the burst above it.
    #[arg(long, env = "VEXIL_MANAGEMENT_RATE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub management_rate: u32,
    #[arg(long, env = "VEXIL_MANAGEMENT_BURST", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub management_burst: u32,

    /// Evaluations per second allowed to one caller (a BulkEvaluate counts
    /// once), and the burst above it.
    #[arg(long, env = "VEXIL_EVALUATION_RATE", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub evaluation_rate: u32,
    #[arg(long, env = "VEXIL_EVALUATION_BURST", default_value_t = 200_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub evaluation_burst: u32,

    /// Unary calls in progress at once, over all callers; beyond it calls
    /// are refused with RESOURCE_EXHAUSTED instead of queueing.
    #[arg(long, env = "VEXIL_MAX_IN_FLIGHT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Open Watch streams, over all connections (each connection also takes
    /// at most 4,096 concurrent streams of any kind).
    #[arg(long, env = "VEXIL_MAX_WATCH_STREAMS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_watch_streams: u32,

    /// Open Watch streams per caller (token subject, else peer IP).
    #[arg(long, env = "VEXIL_MAX_WATCH_STREAMS_PER_CALLER", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_watch_streams_per_caller: u32,

    /// Milliseconds between Watch heartbeats on an idle stream.
    #[arg(long, env = "VEXIL_WATCH_HEARTBEAT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub watch_heartbeat_ms: u64,

    /// This replica's name on every log line; the host's name and the
    /// process id when unset.
    #[arg(long, env = "VEXIL_REPLICA_NAME")]
    pub replica_name: Option<String>,

    /// Log format: `text` (human-readable) or `json` (one JSON object per
    /// line). RUST_LOG sets the level (`info` by default).
    #[arg(long, env = "VEXIL_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,
}

impl Config {
    /// A configuration with every default, serving the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            flagd_listen: None,
            ofrep_listen: None,
            console_listen: None,
            ofrep_cors_origins: Vec::new(),
            database_url: database_url.into(),
            database_max_connections: 10,
            sqlite_synchronous: SqliteSynchronous::Full,
            no_migrate: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            cache_ttl_secs: 60,
            redis_url: None,
            redis_max_connections: 50,
            redis_prefix: "ff".into(),
            redis_channel: None,
            enable_metrics: true,
            metrics_flush_interval: Duration::from_secs(10),
            metrics_retention_days: 90,
            metrics_listen: None,
            watch_buffer: 1024,
            watch_feed: 4096,
            signing: Signing::default(),
            jwt_public_key_file: None,
            jwt_algorithm: None,
            jwks_file: None,
            jwks_url: None,
            jwt_leeway_secs: 30,
            jwks_empty_grace: Duration::from_secs(600),
            auth_evaluation: EvaluationAuth::Open,
            watch_auth: WatchAuth::Token,
            insecure_no_auth: false,
            management_rate: 50,
            management_burst: 100,
            evaluation_rate: 100_000,
            evaluation_burst: 200_000,
            max_in_flight: 10_000,
            max_watch_streams: 50_000,
            max_watch_streams_per_caller: 1_000,
            watch_heartbeat_ms: 15_000,
            log_format: crate::telemetry::LogFormat::Text,
            replica_name: None,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            sqlite_synchronous: self.sqlite_synchronous,
        }
    }

    /// The same configuration without per-caller limits: for one trusted
    /// caller that floods on purpose (benchmarks, tests whose clients all
    /// share 127.0.0.1).
    pub fn without_caller_limits(self) -> Self {
        Self {
            management_rate: 1_000_000,
            management_burst: 1_000_000,
            evaluation_rate: 1_000_000_000,
            evaluation_burst: 1_000_000_000,
            max_watch_streams_per_caller: 1_000_000,
            ..self
        }
    }

    /// Token validation settings; `None` when no key is configured
    /// (authentication off).
    pub fn auth(&self) -> Result<Option<AuthConfig>, String> {
        let algorithm = self
            .jwt_algorithm
            .as_deref()
            .map(|name| {
                name.parse::<jsonwebtoken::Algorithm>()
                    .map_err(|_| format!("VEXIL_JWT_ALGORITHM {name:?} is not a JWT algorithm"))
            })
            .transpose()?;
        let keys = KeyConfig {
            secret: self.signing.jwt_secret()?,
            public_key_file: self.jwt_public_key_file.clone(),
            public_key_algorithm: algorithm,
            jwks_file: self.jwks_file.clone(),
            jwks_url: self.jwks_url.clone(),
            empty_grace: self.jwks_empty_grace,
        };
        if keys.is_empty() {
            // Settings that only mean something with a key are refused, not
            // ignored: an operator who set them expects tokens to be checked.
            let needs_a_key = [
                ("VEXIL_JWT_ISSUER", self.signing.jwt_issuer.is_some()),
                ("VEXIL_JWT_AUDIENCE", self.signing.jwt_audience.is_some()),
                (
                    "VEXIL_AUTH_EVALUATION",
                    self.auth_evaluation != EvaluationAuth::Open,
                ),
            ];
            if let Some((setting, _)) = needs_a_key.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{setting} needs a key to check tokens with: set VEXIL_JWT_SECRET \
                     (or VEXIL_JWT_SECRET_FILE, VEXIL_JWT_PUBLIC_KEY_FILE, VEXIL_JWKS_FILE, \
                     VEXIL_JWKS_URL)"
                ));
            }
            return Ok(None);
        }
        Ok(Some(AuthConfig {
            keys,
            issuer: self.signing.jwt_issuer.clone(),
            audience: self.signing.jwt_audience.clone(),
            leeway_secs: self.jwt_leeway_secs,
            roles_claim: self.signing.jwt_roles_claim.clone(),
            environments_claim: self.signing.jwt_environments_claim.clone(),
        }))
    }

    /// The change channel: VEXIL_REDIS_CHANNEL, else `{prefix}:changes`.
    pub fn redis_channel(&self) -> String {
        self.redis_channel
            .clone()
            .unwrap_or_else(|| format!("{}:changes", self.redis_prefix))
    }

    /// VEXIL_REPLICA_NAME, else `HOST:PID` (the kernel's host name: a
    /// container's id under Docker, a pod's name under Kubernetes).
    pub fn replica_name(&self) -> String {
        self.replica_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "vexil".to_owned());
            format!("{host}:{}", std::process::id())
        })
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn watch_heartbeat(&self) -> Duration {
        Duration::from_millis(self.watch_heartbeat_ms)
    }
}
