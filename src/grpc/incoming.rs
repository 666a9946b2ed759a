//! The gRPC ports' connections (Vexil's and flagd's): accepted through
//! [`crate::listener`] (caps, keepalive, accept backoff), each TLS
//! handshake, or on plaintext the HTTP/2 connection preface, awaited in a
//! task of its own with a deadline (tonic's TLS has none, and does them one
//! at a time; hyper waits for a preface forever), small writes batched
//! below TLS ([`BatchedWrites`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::batched_writes::BatchedWrites;
use crate::listener::{Acceptor, HANDSHAKE_TIMEOUT, Place};

/// Connections ready for tonic, in the order they became ready.
pub type Incoming = ReceiverStream<io::Result<Connection>>;

/// Accepts on `listener` (over TLS with `tls`) until the server drops the
/// stream.
pub fn incoming(listener: TcpListener, tls: Option<TlsAcceptor>) -> Incoming {
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut acceptor = Acceptor::new(listener);
        loop {
            let accepted = tokio::select! {
                accepted = acceptor.accept() => accepted,
                () = ready.closed() => return,
            };
            let place = accepted.place;
            let tcp = accepted.tcp;
            match &tls {
                None => {
                    let ready = ready.clone();
                    tokio::spawn(async move {
                        // A connection that never says it speaks HTTP/2: dropped.
                        if let Ok(true) =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, preface_arrives(&tcp)).await
                        {
                            let connection = Connection {
                                io: Io::Plain(BatchedWrites::new(tcp)),
                                _place: place,
                            };
                            let _ = ready.send(Ok(connection)).await;
                        }
                    });
                }
                Some(tls) => {
                    let (tls, ready) = (tls.clone(), ready.clone());
                    let io = BatchedWrites::new(tcp);
                    tokio::spawn(async move {
                        // A failed or abandoned handshake: dropped.
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(io)).await
                        {
                            let connection = Connection {
                                io: Io::Tls(Box::new(stream)),
                                _place: place,
                            };
                            let _ = ready.send(Ok(connection)).await;
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(incoming)
}

/// Whether the client's HTTP/2 connection preface (24 bytes) has arrived;
/// false when it closed first. Peeks, so tonic still reads it.
async fn preface_arrives(tcp: &TcpStream) -> bool {
    const PREFACE: usize = 24;
    let mut preface = [0u8; PREFACE];
    loop {
        match tcp.peek(&mut preface).await {
            Ok(0) | Err(_) => return false,
            Ok(read) if read >= PREFACE => return true,
            // Part of it: peek returns at once while data waits, so wait a
            // moment for the rest rather than spin.
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// One accepted connection, holding its places among the open ones.
pub struct Connection {
    io: Io,
    _place: Place,
}

enum Io {
    Plain(BatchedWrites<TcpStream>),
    Tls(Box<TlsStream<BatchedWrites<TcpStream>>>),
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.io {
            Io::Plain(io) => io.connect_info(),
            Io::Tls(io) => io.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
