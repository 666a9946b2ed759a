//! Calls are admitted from their headers, before tonic reads their
//! message. Management calls (up to 4 MiB) are authenticated whenever
//! authentication is on; evaluation calls are authenticated when their
//! settings require a token and rate-limited per caller, their caller
//! handed to the handler, which takes an in-flight place once the message
//! is decoded; streams (Watch, flagd's EventStream) are authenticated when
//! they need a token. A caller without a valid token, or over its rate, is
//! refused at once and cannot make the server hold partial bodies. The
//! handlers still check roles and scopes; tokens are cached by then, so
//! each is verified once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

use super::access::{PreAdmittedCaller, refusal_to_status};
use crate::admission::{Call, Gatekeeper};

/// Wraps a service so that it is only called with a valid token when its
/// calls need one.
#[derive(Clone)]
pub struct PreAdmitted<S> {
    inner: S,
    gate: Arc<Gatekeeper>,
    class: Class,
}

#[derive(Clone, Copy)]
enum Class {
    Management,
    Evaluation,
}

impl<S> PreAdmitted<S> {
    /// A management service: a token whenever authentication is on.
    pub fn management(inner: S, gate: Arc<Gatekeeper>) -> Self {
        Self {
            inner,
            gate,
            class: Class::Management,
        }
    }

    /// An evaluation service (Vexil's or flagd's): a token when
    /// `VEXIL_AUTH_EVALUATION` asks for one, or for Watch `VEXIL_WATCH_AUTH`.
    pub fn evaluation(inner: S, gate: Arc<Gatekeeper>) -> Self {
        Self {
            inner,
            gate,
            class: Class::Evaluation,
        }
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
        let call = call_of(&request);
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let admitted = match (self.class, method) {
            (Class::Management, _) => self.gate.pre_admit(&call).map(|()| None),
            (Class::Evaluation, "Watch") => {
                self.gate.pre_admit_evaluation(&call, true).map(|()| None)
            }
            (Class::Evaluation, "EventStream") => {
                self.gate.pre_admit_evaluation(&call, false).map(|()| None)
            }
            (Class::Evaluation, method) => self
                .gate
                .evaluation_caller(&call, method)
                .map(|principal| Some(PreAdmittedCaller(principal))),
        };
        let mut request = request;
        match admitted {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                Admission::Called {
                    future: self.inner.call(request),
                }
            }
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
