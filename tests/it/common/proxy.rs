//! A TCP proxy in front of a real service (Redis, PostgreSQL) that a test
//! can cut and restore: a network partition between one replica and the
//! service, while the service keeps serving everything else on the machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    address: SocketAddr,
    severed: Arc<AtomicBool>,
    /// Bumped on every cut; open connections close when it changes.
    cuts: watch::Sender<u64>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Proxies to the host and port of `url` (`scheme://[user@]host:port/…`).
    pub async fn start(url: &str) -> Self {
        let authority = host_and_port(url);
        let upstream = tokio::net::lookup_host(authority)
            .await
            .expect("resolve redis")
            .next()
            .expect("a redis address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let severed = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let accepting = tokio::spawn(accept(listener, upstream, severed.clone(), cuts.clone()));
        Self {
            address,
            severed,
            cuts,
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
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
) {
    while let Ok((client, _)) = listener.accept().await {
        if severed.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cuts.subscribe();
        cut.borrow_and_update();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
