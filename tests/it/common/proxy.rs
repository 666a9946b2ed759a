//! A TCP proxy in front of a real service (Redis, PostgreSQL) that a test
//! can cut and restore, or pause: a network partition between one replica
//! and the service, while the service keeps serving everything else on the
//! machine.
//!
//! `sever` closes every connection and refuses new ones (the peer sees
//! errors at once). `pause` black-holes them instead: connections stay
//! open, new ones are accepted, but no byte moves either way until
//! `resume`, as when a peer host vanishes or a NAT drops its state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    address: SocketAddr,
    severed: Arc<AtomicBool>,
    /// Bumped on every cut; open connections close when it changes.
    cuts: watch::Sender<u64>,
    paused: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Proxies to the host and port of `url` (`scheme://[user@]host:port/…`).
    pub async fn start(url: &str) -> Self {
        let authority = host_and_port(url);
        let upstream = tokio::net::lookup_host(authority)
            .await
            .expect("resolve the service")
            .next()
            .expect("a service address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let severed = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (paused, _) = watch::channel(false);
        let accepting = tokio::spawn(accept(
            listener,
            upstream,
            severed.clone(),
            cuts.clone(),
            paused.clone(),
        ));
        Self {
            address,
            severed,
            cuts,
            paused,
            accepting,
        }
    }

    /// A Redis URL that goes through the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn route(&self, url: &str) -> String {
        url.replacen(host_and_port(url), &self.address.to_string(), 1)
    }

    /// Drops every open connection and refuses new ones until `restore`.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|cuts| *cuts += 1);
    }

    pub fn restore(&self) {
        self.severed.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes both ways, closing nothing, until `resume`.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.paused.send_replace(false);
        self.cuts.send_modify(|cuts| *cuts += 1);
    }
}

fn host_and_port(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default()
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    severed: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    paused: watch::Sender<bool>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if severed.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cuts.subscribe();
        cut.borrow_and_update();
        let paused = paused.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                _ = forward(client_read, server_write, paused.subscribe()) => {}
                _ = forward(server_read, client_write, paused.subscribe()) => {}
                _ = cut.changed() => {}
            }
        });
    }
}

/// Copies `from` to `to`, moving nothing while paused.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut paused: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // Paused while waiting: stop reading (bytes stay in the kernel).
            _ = paused.wait_for(|paused| *paused) => continue,
        };
        let Ok(n @ 1..) = read else {
            return;
        };
        // Bytes read just before a pause are held until it ends.
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
