//! Serving an HTTP router (OFREP, `/metrics`) on a listener as every
//! listener must be served on a hostile network: TLS when configured (with
//! client certificates when a client CA is), a deadline for the TLS
//! handshake and for each request's headers, TCP keepalive, a cap on
//! connections in all and per address, and accept errors (out of file
//! descriptors) backed off and logged instead of spinning.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower_layer::Layer;

use crate::error::{Error, Result};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener, and per client address.
const MAX_CONNECTIONS: usize = 10_000;
const MAX_CONNECTIONS_PER_ADDRESS: u32 = 512;
/// Keepalive probes find peers that vanished (a half-open SSE stream).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Longest pause after a failed accept (doubling from 5 ms).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long open connections get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The PEM files of the server's TLS identity and, optionally, the CA
/// that signs the client certificates it requires.
pub struct TlsFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub client_ca: Option<&'a std::path::Path>,
}

/// A TLS acceptor for `files` (HTTP/2 and HTTP/1.1 by ALPN).
pub fn tls_acceptor(files: &TlsFiles<'_>) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|err| Error::invalid("VEXIL_TLS_CERT_FILE", err.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(files.key)
        .map_err(|err| Error::invalid("VEXIL_TLS_KEY_FILE", err.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Internal(format!("TLS versions: {err}")))?;
    let builder = match files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let invalid = |err: &dyn std::fmt::Display| {
                Error::invalid("VEXIL_TLS_CLIENT_CA_FILE", err.to_string())
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|err| invalid(&err))? {
                roots
                    .add(cert.map_err(|err| invalid(&err))?)
                    .map_err(|err| invalid(&err))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|err| invalid(&err))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|err| Error::invalid("VEXIL_TLS_KEY_FILE", err.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `stopping` turns true, then lets
/// open connections finish (at most [`SHUTDOWN_GRACE`]). Handlers see the
/// peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    mut stopping: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<DashMap<IpAddr, u32, ahash::RandomState>> = Arc::default();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stopping) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(err) => {
                // EMFILE and the like: retrying at once would spin.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                tracing::warn!(error = %err, retry_in = ?backoff, "accepting a connection failed");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(admitted) = admit(&connections, &per_address, peer.ip()) else {
            // Closed at once: over the cap.
            continue;
        };
        configure(&tcp);
        let service = axum::Extension(ConnectInfo(peer)).layer(router.clone());
        let tls = tls.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            serve_connection(tcp, service, tls, stopping).await;
        });
    }
}

/// A connection's places: among all and among its address's.
struct Admitted {
    _place: OwnedSemaphorePermit,
    per_address: Arc<DashMap<IpAddr, u32, ahash::RandomState>>,
    address: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.per_address.remove_if_mut(&self.address, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

fn admit(
    connections: &Arc<Semaphore>,
    per_address: &Arc<DashMap<IpAddr, u32, ahash::RandomState>>,
    address: IpAddr,
) -> Option<Admitted> {
    let place = connections.clone().try_acquire_owned().ok()?;
    {
        let mut open = per_address.entry(address).or_insert(0);
        if *open >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *open += 1;
    }
    Some(Admitted {
        _place: place,
        per_address: per_address.clone(),
        address,
    })
}

/// NODELAY (small answers would wait on delayed ACKs) and keepalive.
fn configure(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

async fn serve_connection<S>(
    tcp: TcpStream,
    service: S,
    tls: Option<TlsAcceptor>,
    stopping: watch::Receiver<bool>,
) where
    S: tower_service::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    match tls {
        None => http(TokioIo::new(tcp), service, stopping).await,
        Some(acceptor) => {
            // A failed or abandoned handshake: nothing to answer.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                http(TokioIo::new(stream), service, stopping).await;
            }
        }
    }
}

async fn http<I, S>(io: I, service: S, mut stopping: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower_service::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut stopping) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// Completes once `stopping` turns true (or its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
