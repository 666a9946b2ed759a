//! Serving an HTTP router (OFREP, `/metrics`) on a listener as every
//! listener must be served on a hostile network: connections accepted
//! through [`crate::listener`] (caps, keepalive, accept backoff), TLS when
//! configured, and deadlines for the TLS handshake and for each request's
//! headers.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_layer::Layer;

use crate::listener::{Acceptor, HANDSHAKE_TIMEOUT, PeerAddr};

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stopping` turns true, then lets
/// open connections finish (at most [`SHUTDOWN_GRACE`]). Handlers see the
/// peer as an `Extension<PeerAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut acceptor = Acceptor::new(listener);
    loop {
        let accepted = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = stopped(&mut stopping) => break,
        };
        let service = axum::Extension(PeerAddr(accepted.peer)).layer(router.clone());
        let tls = tls.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let _place = accepted.place;
            serve_connection(accepted.tcp, service, tls, stopping).await;
        });
    }
}

/// A router as one connection serves it (with the peer's `PeerAddr`).
trait HttpService:
    tower_service::Service<
        http::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: tower_service::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

async fn serve_connection(
    tcp: TcpStream,
    service: impl HttpService,
    tls: Option<TlsAcceptor>,
    stopping: watch::Receiver<bool>,
) {
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

async fn http<I>(io: I, service: impl HttpService, mut stopping: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
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
