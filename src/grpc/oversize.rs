//! A request larger than a service accepts is answered RESOURCE_EXHAUSTED,
//! as gRPC's status guide prescribes, not tonic's OUT_OF_RANGE. tonic
//! refuses it from the length prefix, before reading the message, and
//! answers in the response headers (trailers-only), where this layer
//! changes the code.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderValue;

/// The text of tonic's refusal (percent-encoded in `grpc-message`).
const TONIC_TOO_LARGE: &str = "decoded%20message%20length%20too%20large";

#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> tower_layer::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Oversize<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Remapped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Remapped {
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Remapped<F> {
        #[pin]
        inner: F,
    }
}

impl<F, R, E> Future for Remapped<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.project().inner.poll(cx))?;
        let headers = response.headers_mut();
        let too_large = headers.get("grpc-status").is_some_and(|code| code == "11")
            && headers
                .get("grpc-message")
                .and_then(|message| message.to_str().ok())
                .is_some_and(|message| message.contains(TONIC_TOO_LARGE));
        if too_large {
            headers.insert("grpc-status", HeaderValue::from_static("8"));
        }
        Poll::Ready(Ok(response))
    }
}
