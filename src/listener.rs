//! Accepting connections on a hostile network, for every listener (gRPC,
//! flagd's API, OFREP, `/metrics`): at most [`MAX_CONNECTIONS`] open at
//! once and [`MAX_CONNECTIONS_PER_ADDRESS`] from one address (beyond them a
//! connection is closed at once), `TCP_NODELAY` and keepalive on each, and
//! accept errors (out of file descriptors) backed off and logged instead of
//! retried in a spin.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections per listener, and per client address.
pub const MAX_CONNECTIONS: usize = 10_000;
pub const MAX_CONNECTIONS_PER_ADDRESS: u32 = 512;
/// How long a client may take to finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalive probes find peers that vanished (a half-open stream).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Longest pause after a failed accept (doubling from 5 ms).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

type Counts = Arc<DashMap<IpAddr, u32, ahash::RandomState>>;

/// A listener's connections, counted.
pub struct Acceptor {
    listener: TcpListener,
    connections: Arc<Semaphore>,
    per_address: Counts,
    backoff: Duration,
}

/// An accepted connection and its places among the open ones, released
/// when `place` is dropped (keep it as long as the connection).
/// The peer of the connection a request came on, as a request extension
/// the HTTP listener sets for the edges behind it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

pub struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub place: Place,
}

/// A connection's places: among all and among its address's.
pub struct Place {
    _place: OwnedSemaphorePermit,
    per_address: Counts,
    address: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.per_address.remove_if_mut(&self.address, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_address: Counts::default(),
            backoff: Duration::ZERO,
        }
    }

    /// The next connection within the caps.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = Duration::ZERO;
                    accepted
                }
                Err(err) => {
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                    tracing::warn!(error = %err, retry_in = ?self.backoff, "accepting a connection failed");
                    tokio::time::sleep(self.backoff).await;
                    continue;
                }
            };
            let Some(place) = self.admit(peer.ip()) else {
                // Dropped, so closed at once: over a cap.
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
            let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
            return Accepted { tcp, peer, place };
        }
    }

    fn admit(&self, address: IpAddr) -> Option<Place> {
        let place = self.connections.clone().try_acquire_owned().ok()?;
        {
            let mut open = self.per_address.entry(address).or_insert(0);
            if *open >= MAX_CONNECTIONS_PER_ADDRESS {
                return None;
            }
            *open += 1;
        }
        Some(Place {
            _place: place,
            per_address: self.per_address.clone(),
            address,
        })
    }
}

/// Raises this process's soft limit on open files to its hard limit, so
/// connection caps, not descriptors, bound what callers can open.
pub fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open files limit"),
    }
}
