//! Request bodies are bounded while tonic reads them: in time (the whole
//! body within [`BODY_TIMEOUT`] of the call's start) and, for calls not
//! authenticated before their message is read, in bytes held per peer
//! address and across the process. A caller cannot make the server hold
//! partial messages (one declaring 256 KiB and sending less, on thousands
//! of streams) for longer or beyond those bounds: its call fails with
//! RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED and the bytes are freed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

/// How long a request's body may take to arrive, end of stream included.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of bodies being read, per peer address, for calls whose caller is
/// not known yet.
pub const BODY_BYTES_PER_ADDRESS: usize = 1024 * 1024;
/// The same across the process.
pub const BODY_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of bodies being read: per address and in all.
pub struct BodyBudget {
    all: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    address_limit: usize,
}

impl BodyBudget {
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            all: Arc::new(Semaphore::new(total)),
            per_address: Mutex::new(HashMap::new()),
            address_limit: per_address,
        })
    }

    fn addresses(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What one body holds of the budget; given back when it is dropped.
struct Held {
    budget: Arc<BodyBudget>,
    peer: Option<IpAddr>,
    bytes: usize,
    all: Option<OwnedSemaphorePermit>,
}

impl Held {
    fn take(&mut self, bytes: usize) -> Result<(), Status> {
        if bytes == 0 {
            return Ok(());
        }
        let refused = || {
            Status::resource_exhausted("too many request bytes are being received; retry shortly")
        };
        if let Some(peer) = self.peer {
            let mut addresses = self.budget.addresses();
            let held = addresses.entry(peer).or_default();
            if *held + bytes > self.budget.address_limit {
                if *held == 0 {
                    addresses.remove(&peer);
                }
                return Err(refused());
            }
            *held += bytes;
        }
        self.bytes += bytes;
        let permits = u32::try_from(bytes).map_err(|_| refused())?;
        let taken = self
            .budget
            .all
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| refused())?;
        match &mut self.all {
            Some(all) => all.merge(taken),
            None => self.all = Some(taken),
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(peer) = self.peer
            && self.bytes > 0
        {
            let mut addresses = self.budget.addresses();
            if let Some(held) = addresses.get_mut(&peer) {
                *held = held.saturating_sub(self.bytes);
                if *held == 0 {
                    addresses.remove(&peer);
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body under [`BODY_TIMEOUT`] and, when `held` is set, the
    /// byte budget. Both apply once the body waits for more: one that is
    /// all there when first read (most calls) costs no timer and no lock.
    pub struct Bounded {
        #[pin]
        inner: Body,
        // When the call started; `None`: no deadline.
        started: Option<Instant>,
        deadline: Option<Pin<Box<Sleep>>>,
        held: Option<Held>,
        // Bytes read before the body first waited.
        seen: usize,
        waited: bool,
    }
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            let frame = match frame {
                Some(Ok(frame)) => frame,
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(None),
            };
            if let Some(data) = frame.data_ref() {
                match this.held.as_mut().filter(|_| *this.waited) {
                    Some(held) => {
                        if let Err(refused) = held.take(data.len()) {
                            return Poll::Ready(Some(Err(refused)));
                        }
                    }
                    None => *this.seen += data.len(),
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if !*this.waited {
            // From now on the body is held while the rest arrives.
            *this.waited = true;
            if let Some(held) = this.held.as_mut()
                && let Err(refused) = held.take(*this.seen)
            {
                return Poll::Ready(Some(Err(refused)));
            }
            *this.deadline = this
                .started
                .map(|started| Box::pin(tokio::time::sleep_until(started + BODY_TIMEOUT)));
        }
        match this.deadline {
            Some(deadline) => ready!(deadline.as_mut().poll(cx)),
            None => return Poll::Pending,
        }
        Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
            "the request did not arrive within {} s",
            BODY_TIMEOUT.as_secs()
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts every request body under [`Bounded`]; bodies of paths starting
/// with one of `authenticated_first` (services that authenticate from the
/// headers before reading) are bounded in time only, and reflection's
/// (a session a tool keeps open between questions) in bytes only.
#[derive(Clone)]
pub struct BodyBudgetLayer {
    budget: Arc<BodyBudget>,
    authenticated_first: &'static [&'static str],
}

impl BodyBudgetLayer {
    pub fn new(budget: Arc<BodyBudget>, authenticated_first: &'static [&'static str]) -> Self {
        Self {
            budget,
            authenticated_first,
        }
    }
}

impl<S> tower_layer::Layer<S> for BodyBudgetLayer {
    type Service = BodyBudgeted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyBudgeted {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BodyBudgeted<S> {
    inner: S,
    layer: BodyBudgetLayer,
}

impl<S> tower_service::Service<http::Request<Body>> for BodyBudgeted<S>
where
    S: tower_service::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let budgeted = !self
            .layer
            .authenticated_first
            .iter()
            .any(|prefix| path.starts_with(prefix));
        let held = budgeted.then(|| Held {
            budget: self.layer.budget.clone(),
            peer: request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|info| info.remote_addr)
                .map(|peer| peer.ip()),
            bytes: 0,
            all: None,
        });
        let timed = !path.starts_with("/grpc.reflection.");
        let request = request.map(|inner| {
            Body::new(Bounded {
                inner,
                started: timed.then(Instant::now),
                deadline: None,
                held,
                seen: 0,
                waited: false,
            })
        });
        self.inner.call(request)
    }
}
