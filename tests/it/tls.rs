//! Server TLS and client certificates: a client trusting the test CA gets
//! answers; a plaintext client to the TLS port fails cleanly; with a client
//! CA configured, a client without a certificate is refused and one with a
//! certificate signed by that CA is served.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use vexil::grpc::pb::{self, flag_service_client::FlagServiceClient};

use crate::common::{Backend, TestDatabase, eventually};

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/keys")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key(name)).expect("test key")
}

struct Server {
    port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<vexil::Result<()>>,
}

async fn serve(database_url: &str, client_ca: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = vexil::Config {
        tls_cert_file: Some(key("tls-server.pem")),
        tls_key_file: Some(key("tls-server-key.pem")),
        tls_client_ca_file: client_ca.then(|| key("tls-ca.pem")),
        ..crate::common::config(database_url)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(vexil::run(config, listener, async {
        stopped.await.ok();
    }));
    Server { port, stop, task }
}

/// A client over TLS trusting the test CA, with the client certificate
/// when `identity`.
fn tls_client(port: u16, identity: bool) -> FlagServiceClient<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem("tls-ca.pem")))
        .domain_name("localhost");
    if identity {
        tls = tls.identity(Identity::from_pem(
            pem("tls-client.pem"),
            pem("tls-client-key.pem"),
        ));
    }
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    FlagServiceClient::new(channel)
}

async fn list(client: &mut FlagServiceClient<Channel>) -> Result<u64, tonic::Status> {
    client
        .list_flags(pb::ListFlagsRequest::default())
        .await
        .map(|answer| answer.into_inner().total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_client_certificates() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };

    let server = serve(&db.url, false).await;
    let mut trusted = tls_client(server.port, false);
    eventually(Duration::from_secs(30), "served over TLS", async || {
        list(&mut trusted).await.is_ok()
    })
    .await;
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{}", server.port))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        list(&mut FlagServiceClient::new(plaintext)),
    )
    .await
    .expect("a plaintext client gets an answer, not a hang");
    assert!(refused.is_err(), "plaintext to the TLS port: {refused:?}");

    // No ClientHello on the gRPC port: cut off after the handshake deadline.
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    assert!(
        closed_by_peer(silent, Duration::from_secs(40)).await,
        "a silent TLS client is cut off"
    );
    server.stop.send(()).ok();
    server.task.await.expect("task").expect("served");

    let server = serve(&db.url, true).await;
    let mut with_certificate = tls_client(server.port, true);
    eventually(
        Duration::from_secs(30),
        "served with mutual TLS",
        async || list(&mut with_certificate).await.is_ok(),
    )
    .await;
    let anonymous = tokio::time::timeout(
        Duration::from_secs(30),
        list(&mut tls_client(server.port, false)),
    )
    .await
    .expect("a client without a certificate gets an answer");
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    server.stop.send(()).ok();
    server.task.await.expect("task").expect("served");
    db.remove().await;
}

/// The `vexil` command line against a server requiring client
/// certificates: with --cert-file and --key-file it is served; without,
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_presents_a_client_certificate() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let server = serve(&db.url, true).await;
    let mut with_certificate = tls_client(server.port, true);
    eventually(
        Duration::from_secs(30),
        "served with mutual TLS",
        async || list(&mut with_certificate).await.is_ok(),
    )
    .await;
    let port = server.port;
    let path = |name: &str| key(name).to_str().expect("utf-8").to_owned();
    let run = move |identity: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"));
        command
            .args(["flags", "list", "-o", "json", "--timeout-secs", "10"])
            .env("VEXIL_ADDR", format!("https://localhost:{port}"))
            .env("VEXIL_CA_FILE", path("tls-ca.pem"))
            .env_remove("VEXIL_TOKEN");
        if identity {
            command
                .args(["--cert-file", &path("tls-client.pem")])
                .args(["--key-file", &path("tls-client-key.pem")]);
        }
        command
    };
    let served = tokio::task::spawn_blocking(move || {
        let served = run(true).output().expect("run vexil");
        let refused = run(false).output().expect("run vexil");
        (served, refused)
    })
    .await
    .expect("the commands' thread");
    let (served, refused) = served;
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&served.stdout).trim(), "[]");
    // The handshake's failure is a failed connection: exit 6, with why.
    assert_eq!(
        refused.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.stop.send(()).ok();
    server.task.await.expect("task").expect("served");
    db.remove().await;
}

/// Sends `GET path` over HTTPS trusting the test CA (with the client
/// certificate when `identity`); the status, or why there is none.
async fn https_get(port: u16, path: &str, identity: bool) -> Result<u16, String> {
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(key("tls-ca.pem")).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if identity {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(key("tls-client.pem"))
            .expect("client cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("client cert");
        let client_key = rustls::pki_types::PrivateKeyDer::from_pem_file(key("tls-client-key.pem"))
            .expect("client key");
        builder
            .with_client_auth_cert(certs, client_key)
            .expect("identity")
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|err| err.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|err| err.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("request: {err}"))?;
    Ok(response.status().as_u16())
}

/// Waits for the peer to close `stream` (EOF or reset), at most `limit`.
async fn closed_by_peer(mut stream: tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// OFREP and the console are served over TLS with the gRPC port's
/// certificate, and require client certificates when gRPC does: a client
/// without one, or in plaintext, gets no answer. A client that never finishes the handshake,
/// or never finishes its headers (on `/metrics`, plain HTTP), is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_and_console_over_tls_and_stalled_clients_cut_off() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let bind = || async { TcpListener::bind("127.0.0.1:0").await.expect("bind") };
    let (grpc, ofrep, metrics) = (bind().await, bind().await, bind().await);
    let console = bind().await;
    let port = |listener: &TcpListener| listener.local_addr().expect("address").port();
    let (ofrep_port, metrics_port) = (port(&ofrep), port(&metrics));
    let console_port = port(&console);
    let config = vexil::Config {
        tls_cert_file: Some(key("tls-server.pem")),
        tls_key_file: Some(key("tls-server-key.pem")),
        tls_client_ca_file: Some(key("tls-ca.pem")),
        ..crate::common::config(&db.url)
    };
    let listeners = vexil::Listeners {
        grpc,
        flagd: None,
        ofrep: Some(ofrep),
        console: Some(console),
        metrics: Some(metrics),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(vexil::run(config, listeners, async {
        stopped.await.ok();
    }));
    eventually(
        Duration::from_secs(30),
        "OFREP over mutual TLS",
        async || https_get(ofrep_port, "/ofrep/v1/configuration", true).await == Ok(200),
    )
    .await;
    let anonymous = https_get(ofrep_port, "/ofrep/v1/configuration", false).await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    assert_eq!(
        https_get(console_port, "/", true).await,
        Ok(200),
        "the console over TLS"
    );
    let anonymous = https_get(console_port, "/", false).await;
    assert!(
        anonymous.is_err(),
        "the console without a client certificate: {anonymous:?}"
    );
    let plaintext = crate::common::http::request(
        std::net::SocketAddr::from(([127, 0, 0, 1], ofrep_port)),
        "GET",
        "/ofrep/v1/configuration",
        &[],
        "",
    );
    let plaintext = tokio::spawn(plaintext);
    let answered = tokio::time::timeout(Duration::from_secs(30), plaintext).await;
    assert!(
        !matches!(answered, Ok(Ok(ref reply)) if reply.status == 200),
        "plaintext to the TLS port is not served"
    );

    // No ClientHello: cut off after the handshake deadline (10 s).
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", ofrep_port))
        .await
        .expect("connect");
    assert!(
        closed_by_peer(silent, Duration::from_secs(40)).await,
        "a silent TLS client is cut off"
    );
    // Half a request's headers: cut off after the header deadline (10 s).
    let mut partial = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut partial, b"GET /metrics HTTP/1.1\r\nhost: x")
        .await
        .expect("write");
    assert!(
        closed_by_peer(partial, Duration::from_secs(40)).await,
        "half a request's headers is cut off"
    );
    stop.send(()).ok();
    task.await.expect("task").expect("served");
    db.remove().await;
}

/// One address may hold at most 512 connections to a port; beyond them a
/// connection is closed at once, while the ones within keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_closed() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = crate::common::TestApp::start(&db.url).await;
    let mut held = Vec::new();
    for _ in 0..vexil::listener::MAX_CONNECTIONS_PER_ADDRESS {
        held.push(
            tokio::net::TcpStream::connect(app.address)
                .await
                .expect("connect"),
        );
    }
    let over = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    assert!(
        closed_by_peer(over, Duration::from_secs(10)).await,
        "the connection over the cap is closed"
    );
    drop(held);
    eventually(Duration::from_secs(10), "served again", async || {
        app.flags
            .clone()
            .list_flags(pb::ListFlagsRequest::default())
            .await
            .is_ok()
    })
    .await;
    app.stop().await;
    db.remove().await;
}

/// A plaintext gRPC connection must send HTTP/2's connection preface within
/// 10 s: one that sends part of it and stalls is closed (hyper alone would
/// wait forever, holding a place among the connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_connection_that_never_completes_its_preface_is_closed() {
    use tokio::io::AsyncWriteExt;
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let app = crate::common::TestApp::start(&db.url).await;
    let mut stalled = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    stalled
        .write_all(b"PRI * HTTP")
        .await
        .expect("part of the preface");
    assert!(
        closed_by_peer(stalled, Duration::from_secs(15)).await,
        "closed after the preface deadline"
    );
    app.flags
        .clone()
        .list_flags(pb::ListFlagsRequest::default())
        .await
        .expect("a complete client is served");
    app.stop().await;
    db.remove().await;
}
