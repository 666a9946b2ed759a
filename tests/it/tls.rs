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
