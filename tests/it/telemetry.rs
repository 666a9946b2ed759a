//! The real `vexil` binary: spans exported over OTLP/gRPC to a receiver in
//! the test, the caller's W3C trace continued, buffered spans flushed on
//! exit, the log format switch and what the logs say at start; and the
//! script-facing commands (`vexil token`, `vexil health`, help per command).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use vexil::grpc::pb::{self, evaluation_service_client::EvaluationServiceClient};

use crate::common::unique;

const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const EVALUATE: &str = "vexil.v1.EvaluationService/Evaluate";
/// How long the binary may take to start, export or stop.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn rpc_spans_continue_the_callers_trace() {
    let (collector, received) = start_receiver().await;
    let mut vexil = Vexil::spawn(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://{collector}"),
        ),
        ("OTEL_SERVICE_NAME", "vexil-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let mut client = vexil.client().await;

    let mut traced = evaluate_request();
    let metadata = traced.metadata_mut();
    metadata.insert(
        "traceparent",
        format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")
            .parse()
            .expect("a traceparent"),
    );
    metadata.insert("tracestate", "vendor=opaque".parse().expect("a tracestate"));
    client.evaluate(traced).await.expect("traced evaluate");

    let (service, span) = received
        .wait_for(&vexil, "the traced Evaluate", |span| {
            span.name == EVALUATE && hex(&span.trace_id) == CALLER_TRACE_ID
        })
        .await;
    assert_eq!(service, "vexil-test");
    assert_eq!(hex(&span.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(span.trace_state, "vendor=opaque");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(string(&span, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        string(&span, "rpc.service").as_deref(),
        Some("vexil.v1.EvaluationService")
    );
    assert_eq!(string(&span, "rpc.method").as_deref(), Some("Evaluate"));
    assert_eq!(int(&span, "rpc.grpc.status_code"), Some(0));
    assert!(
        span.attributes.iter().all(|kv| kv.key != "user_id"),
        "no user id on the span: {:?}",
        span.attributes
    );

    // Without traceparent: a trace of its own.
    client
        .evaluate(evaluate_request())
        .await
        .expect("untraced evaluate");
    let (_, fresh) = received
        .wait_for(&vexil, "the untraced Evaluate", |span| {
            span.name == EVALUATE && hex(&span.trace_id) != CALLER_TRACE_ID
        })
        .await;
    assert_eq!(string(&fresh, "rpc.method").as_deref(), Some("Evaluate"));
    assert!(fresh.parent_span_id.is_empty(), "a root span");
    assert!(
        fresh.trace_id.iter().any(|byte| *byte != 0),
        "a valid trace id"
    );

    // An error answered trailers-only carries its code.
    let mut bad = evaluate_request();
    bad.get_mut().flag_name = String::new();
    let refused = client.evaluate(bad).await.expect_err("no flag name");
    let (_, failed) = received
        .wait_for(&vexil, "the refused Evaluate", |span| {
            span.name == EVALUATE && int(span, "rpc.grpc.status_code").is_some_and(|code| code != 0)
        })
        .await;
    assert_eq!(
        int(&failed, "rpc.grpc.status_code"),
        Some(refused.code() as i64)
    );
}

#[tokio::test]
async fn buffered_spans_are_flushed_on_exit() {
    let (collector, received) = start_receiver().await;
    let mut vexil = Vexil::spawn(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://{collector}"),
        ),
        // Nothing would be sent before a minute is up, but for the flush.
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
    ]);
    let mut client = vexil.client().await;
    client.evaluate(evaluate_request()).await.expect("evaluate");
    drop(client);

    let (status, _) = vexil.stop().await;
    assert!(status.success(), "vexil exits cleanly: {status}");
    let (service, _) = received
        .wait_for_exported("the Evaluate before exit", |span| span.name == EVALUATE)
        .await;
    assert_eq!(service, "vexil", "the default service name");
}

#[tokio::test]
async fn json_log_lines_are_json_objects() {
    let mut vexil = Vexil::spawn(&[("VEXIL_LOG_FORMAT", "json")]);
    drop(vexil.client().await);
    let (status, lines) = vexil.stop().await;
    assert!(status.success(), "vexil exits cleanly: {status}");
    assert!(lines.len() >= 3, "startup and shutdown lines: {lines:?}");
    let mut messages = Vec::new();
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        let object = parsed.as_object().expect("a JSON object per line");
        assert!(object.contains_key("level"), "{line}");
        messages.push(
            parsed["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(
        messages.iter().any(|message| message == "serving gRPC"),
        "{messages:?}"
    );
}

/// Every line names the replica; start-up says where the data goes and
/// where each listener is, with plain addresses, in JSON as in text.
#[tokio::test]
async fn start_up_lines_name_the_replica_the_store_and_the_listeners() {
    let mut vexil = Vexil::spawn(&[
        ("VEXIL_LOG_FORMAT", "json"),
        ("VEXIL_REPLICA_NAME", "replica-a"),
    ]);
    drop(vexil.client().await);
    let address = vexil.address.to_string();
    let database = vexil.database.display().to_string();
    let (status, lines) = vexil.stop().await;
    assert!(status.success(), "vexil exits cleanly: {status}");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    for event in &events {
        assert_eq!(event["replica"], "replica-a", "{event}");
    }
    let fields = |message: &str| {
        events
            .iter()
            .find(|event| event["fields"]["message"] == message)
            .map(|event| event["fields"].clone())
            .unwrap_or_else(|| panic!("no {message:?} line: {lines:?}"))
    };
    assert_eq!(fields("serving gRPC")["address"], address.as_str());
    let store = fields("storing flags")["database"].to_string();
    assert!(
        store.contains(&format!("SQLite file {database}")),
        "{store}"
    );
    fields("announcing changes in process (one replica; REDIS_URL unset)");
    fields("counting evaluations");
}

/// Logs into a pipe or a file carry no colour codes; text lines start
/// with the replica's name.
#[tokio::test]
async fn text_logs_in_a_pipe_have_no_colour() {
    let mut vexil = Vexil::spawn(&[("VEXIL_REPLICA_NAME", "replica-b")]);
    drop(vexil.client().await);
    let (status, lines) = vexil.stop().await;
    assert!(status.success(), "vexil exits cleanly: {status}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "no escape codes: {line:?}");
        assert!(line.starts_with("replica=replica-b "), "{line}");
    }
}

/// `TOKEN=$(vexil token …)` without a secret captures nothing: the error
/// goes to stderr, without colour, and the exit code says it failed.
#[test]
fn token_errors_go_to_stderr_and_fail() {
    let failed = vexil_command(&["token", "--subject", "alice", "--role", "admin"], &[]);
    assert!(!failed.status.success());
    assert!(failed.stdout.is_empty(), "{:?}", failed.stdout);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("VEXIL_JWT_SECRET"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    let minted = vexil_command(
        &["token", "--subject", "alice", "--role", "admin"],
        &[("VEXIL_JWT_SECRET", "a-development-secret-of-32-bytes!")],
    );
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).expect("utf-8");
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    assert!(minted.stderr.is_empty(), "{:?}", minted.stderr);
}

/// A command's help lists its own options, not the server's.
#[test]
fn each_command_shows_its_own_options() {
    let help = |args: &[&str]| {
        let output = vexil_command(args, &[]);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let token = help(&["token", "--help"]);
    assert!(
        token.contains("--subject") && token.contains("VEXIL_JWT_SECRET"),
        "{token}"
    );
    for server_option in ["--listen", "DATABASE_URL", "REDIS_URL", "--watch-buffer"] {
        assert!(!token.contains(server_option), "{server_option} in {token}");
    }
    let health = help(&["health", "--help"]);
    assert!(
        health.contains("--addr") && !health.contains("DATABASE_URL"),
        "{health}"
    );
    for serving in [help(&["--help"]), help(&["serve", "--help"])] {
        assert!(
            serving.contains("DATABASE_URL") && serving.contains("--listen"),
            "{serving}"
        );
    }
}

/// `vexil health` (Docker's HEALTHCHECK): 0 and SERVING against a serving
/// server, found from VEXIL_LISTEN as the image sets it (0.0.0.0 probes
/// loopback); 1 for a service that is not serving (propagation without
/// Redis) and for a server that is gone.
#[tokio::test]
async fn health_exits_zero_only_when_serving() {
    let mut vexil = Vexil::spawn(&[("REDIS_URL", "redis://127.0.0.1:1")]);
    drop(vexil.client().await);
    let address = vexil.address;
    let url = format!("http://{address}");

    let serving = vexil_command(&["health", "--addr", &url], &[]);
    assert!(serving.status.success(), "{serving:?}");
    assert_eq!(String::from_utf8_lossy(&serving.stdout).trim(), "SERVING");
    let wildcard = format!("0.0.0.0:{}", address.port());
    let from_listen = vexil_command(&["health"], &[("VEXIL_LISTEN", &wildcard)]);
    assert!(from_listen.status.success(), "{from_listen:?}");

    let bus = vexil_command(&["health", "--addr", &url, "--service", "vexil.bus"], &[]);
    assert_eq!(bus.status.code(), Some(1), "{bus:?}");
    assert_eq!(String::from_utf8_lossy(&bus.stdout).trim(), "NOT_SERVING");

    let (status, _) = vexil.stop().await;
    assert!(status.success(), "vexil exits cleanly: {status}");
    let gone = vexil_command(&["health", "--addr", &url, "--timeout", "2s"], &[]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(gone.stdout.is_empty());
    assert!(!gone.stderr.is_empty());
}

/// Runs the binary with only `env` in its environment.
fn vexil_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run vexil")
}

#[tokio::test]
async fn a_bad_log_format_is_refused_by_name() {
    let vexil = Vexil::spawn(&[("VEXIL_LOG_FORMAT", "xml")]);
    let (status, lines) = vexil.wait_exit().await;
    assert!(!status.success(), "refused: {lines:?}");
    assert!(
        lines.iter().any(|line| line.contains("VEXIL_LOG_FORMAT")),
        "the error names VEXIL_LOG_FORMAT: {lines:?}"
    );

    let help = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("vexil --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("VEXIL_LOG_FORMAT"), "{help}");
}

fn evaluate_request() -> Request<pb::EvaluateRequest> {
    Request::new(pb::EvaluateRequest {
        flag_name: "traced".into(),
        user_id: "someone".into(),
        environment: "production".into(),
        context: None,
    })
}

/// A minimal OTLP trace receiver: keeps every span with its resource's
/// `service.name`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = self.0.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| attribute(&resource.attributes, "service.name"))
                .and_then(|value| match value {
                    any_value::Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                received.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Received {
    /// The first span that `matches`, waiting for the binary to export it.
    async fn wait_for(
        &self,
        vexil: &Vexil,
        what: &str,
        matches: impl Fn(&Span) -> bool,
    ) -> (String, Span) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = self.find(&matches) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what} was not exported; spans: {:?}\nlogs: {:?}",
                self.names(),
                vexil.lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Self::wait_for`] once the binary is gone.
    async fn wait_for_exported(
        &self,
        what: &str,
        matches: impl Fn(&Span) -> bool,
    ) -> (String, Span) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(found) = self.find(&matches) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what} was not exported; spans: {:?}",
                self.names()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn find(&self, matches: impl Fn(&Span) -> bool) -> Option<(String, Span)> {
        let received = self.0.lock().expect("spans");
        received.iter().find(|(_, span)| matches(span)).cloned()
    }

    fn names(&self) -> Vec<String> {
        let received = self.0.lock().expect("spans");
        received.iter().map(|(_, span)| span.name.clone()).collect()
    }
}

async fn start_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the receiver");
    let address = listener.local_addr().expect("its address");
    let received = Received::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (address, received)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

fn string(span: &Span, key: &str) -> Option<String> {
    match attribute(&span.attributes, key)? {
        any_value::Value::StringValue(value) => Some(value.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(&span.attributes, key)? {
        any_value::Value::IntValue(value) => Some(*value),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The `vexil` binary on a free port with a fresh SQLite database and
/// nothing else from the test's environment; killed when dropped, so a
/// failing test leaves no process behind.
struct Vexil {
    child: Option<Child>,
    address: SocketAddr,
    database: PathBuf,
    /// stdout and stderr lines, read as they come (a full pipe would stall
    /// the binary).
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Vexil {
    fn spawn(env: &[(&str, &str)]) -> Self {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let database = std::env::temp_dir().join(format!("{}.db", unique("vexil-test-telemetry-")));
        let mut child = Command::new(env!("CARGO_BIN_EXE_vexil"))
            .env_clear()
            .env("VEXIL_LISTEN", address.to_string())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", database.display()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vexil");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let readers = vec![
            collect(stdout, lines.clone()),
            collect(stderr, lines.clone()),
        ];
        Self {
            child: Some(child),
            address,
            database,
            lines,
            readers,
        }
    }

    /// A client, once the server answers (health checks until then).
    async fn client(&mut self) -> EvaluationServiceClient<Channel> {
        let url = format!("http://{}", self.address);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(channel) = Channel::from_shared(url.clone())
                .expect("a URL")
                .connect()
                .await
            {
                let mut health =
                    tonic_health::pb::health_client::HealthClient::new(channel.clone());
                let check = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                if health.check(check).await.is_ok() {
                    return EvaluationServiceClient::new(channel);
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "vexil did not start ({exited:?}); logs: {:?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the binary as a supervisor would (SIGTERM) and returns how it
    /// exited and everything it wrote.
    async fn stop(self) -> (ExitStatus, Vec<String>) {
        if let Some(child) = &self.child {
            let signalled = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(signalled.success(), "SIGTERM sent");
        }
        self.wait_exit().await
    }

    /// Waits for the binary to exit on its own.
    async fn wait_exit(mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let child = self.child.as_mut().expect("running");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for vexil") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "vexil did not exit; logs: {:?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.child = None;
        // The readers finish at the pipes' end, once the output is all in.
        for reader in self.readers.drain(..) {
            reader.join().ok();
        }
        (status, self.lines())
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Vexil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.database.clone().into_os_string();
            file.push(suffix);
            std::fs::remove_file(file).ok();
        }
    }
}

fn collect(
    pipe: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                lines.lock().expect("lines").push(line);
            }
        }
    })
}

/// A restart on PostgreSQL logs no notices from the migrator's
/// `CREATE TABLE IF NOT EXISTS` ("already exists, skipping"), and the
/// store line names the database without its password.
#[tokio::test]
async fn a_postgres_restart_logs_no_notices_and_no_password() {
    let Some(db) = crate::common::TestDatabase::create(crate::common::Backend::Postgres).await
    else {
        return;
    };
    let url = db.url.replacen("postgres@", "postgres:hunter2@", 1);
    for run in 0..2 {
        let mut vexil = Vexil::spawn(&[("DATABASE_URL", &url)]);
        drop(vexil.client().await);
        let (status, lines) = vexil.stop().await;
        assert!(status.success(), "vexil exits cleanly: {status}");
        assert!(
            lines
                .iter()
                .any(|line| line.contains("database=PostgreSQL postgres@")),
            "{lines:?}"
        );
        for line in &lines {
            assert!(!line.contains("hunter2"), "run {run}: {line}");
            assert!(!line.contains("already exists"), "run {run}: {line}");
        }
    }
    db.remove().await;
}

/// The SQLite file the server creates, and its write-ahead log, are for
/// its owner only: they hold every flag, list and audit entry.
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut vexil = Vexil::spawn(&[]);
    drop(vexil.client().await);
    let mode = |suffix: &str| {
        let mut file = vexil.database.clone().into_os_string();
        file.push(suffix);
        std::fs::metadata(&file)
            .map(|meta| meta.permissions().mode() & 0o777)
            .unwrap_or_else(|err| panic!("{file:?}: {err}"))
    };
    assert_eq!(mode(""), 0o600, "the database file");
    assert_eq!(mode("-wal"), 0o600, "its write-ahead log");
    let (status, _) = vexil.stop().await;
    assert!(status.success());
}

/// Secrets are refused on the command line, where every user of the
/// machine reads them in the process list: the JWT secret, and database or
/// Redis URLs with a password. The environment carries them.
#[test]
fn secrets_are_refused_on_the_command_line() {
    let secret = "a-development-secret-of-32-bytes!";
    for args in [
        vec!["--jwt-secret", secret],
        vec!["serve", "--jwt-secret", secret],
        vec!["token", "--subject", "alice", "--jwt-secret", secret],
        vec![
            "--database-url",
            "postgres://vexil:hunter2@127.0.0.1:1/vexil",
        ],
        vec!["migrate", "--redis-url", "redis://:hunter2@127.0.0.1:1"],
    ] {
        let refused = vexil_command(&args, &[]);
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("process list"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains(secret),
            "{stderr}"
        );
    }
    let minted = vexil_command(
        &["token", "--subject", "alice"],
        &[("VEXIL_JWT_SECRET", secret)],
    );
    assert!(minted.status.success(), "{minted:?}");
}
