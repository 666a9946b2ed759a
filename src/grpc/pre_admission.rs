//! Management calls are authenticated from their headers, before tonic
//! reads their message (up to 4 MiB): a caller without a valid token is
//! refused at once and cannot make the server hold partial bodies. The
//! handlers still admit each call as before (role, scope, rate limit); the
//! token is cached by then, so it is verified once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

use super::access::refusal_to_status;
use crate::admission::{Call, Gatekeeper};

/// Wraps a management service so that it is only called with a valid token
/// (when authentication is on).
#[derive(Clone)]
pub struct PreAdmitted<S> {
    inner: S,
    gate: Arc<Gatekeeper>,
}

impl<S> PreAdmitted<S> {
    pub fn new(inner: S, gate: Arc<Gatekeeper>) -> Self {
        Self { inner, gate }
    }
}

impl<S: NamedService> NamedService for PreAdmitted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower_service::Service<http::Request<B>> for PreAdmitted<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>, Error = Infallible>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = Infallible;
    type Future = Admission<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.gate.pre_admit(&call_of(&request)) {
            Ok(()) => Admission::Called {
                future: self.inner.call(request),
            },
            Err(refusal) => Admission::Refused {
                response: Some(refusal_to_status(refusal).into_http()),
            },
        }
    }
}

/// What admission reads of a request, straight from its HTTP parts: the
/// `authorization` header and the peer `grpc::incoming` recorded.
fn call_of<B>(request: &http::Request<B>) -> Call<'_> {
    Call {
        authorization: request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default()),
        actor: None,
        peer: request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|info| info.remote_addr)
            .map(|peer| peer.ip()),
    }
}

pin_project_lite::pin_project! {
    #[project = AdmissionProjection]
    pub enum Admission<F, R> {
        Called { #[pin] future: F },
        Refused { response: Option<http::Response<R>> },
    }
}

impl<F, R> std::future::Future for Admission<F, R>
where
    F: std::future::Future<Output = Result<http::Response<R>, Infallible>>,
    R: Default,
{
    type Output = Result<http::Response<R>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmissionProjection::Called { future } => future.poll(cx),
            AdmissionProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
        }
    }
}
