//! Watch, answered below tonic's encoder: each message is a complete gRPC
//! frame (length prefix and protobuf), made once per change and handed to
//! every subscriber's HTTP/2 stream as the same `Bytes`. tonic's encoder
//! copies every message into a buffer of its stream first: a change to a
//! flag with a 10,000-id whitelist sent to 1,000 subscribers would be held
//! a thousand times. The request side is tonic's own decoder; every other
//! method of the service goes to the generated server.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use tokio_stream::Stream;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tower_service::Service;

use super::codec::ProstDecoder;
use super::evaluation::EvaluationGrpc;
use super::evaluation_server::evaluation_service_server::EvaluationServiceServer;
use super::pb;

const WATCH_PATH: &str = "/vexil.v1.EvaluationService/Watch";

/// One gRPC message, framed already: sent as it is.
#[derive(Debug, Clone)]
pub struct Encoded(pub Bytes);

impl Encoded {
    /// `message` with gRPC's prefix: not compressed, then its length.
    pub fn frame(message: &impl Message) -> Self {
        let len = message.encoded_len();
        let mut frame = BytesMut::with_capacity(5 + len);
        frame.put_u8(0);
        // Messages are bounded far below 4 GiB (limits::MESSAGE_BYTES).
        frame.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        message.encode_raw(&mut frame);
        Self(frame.freeze())
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Encoded, Status>> + Send>>;

/// `vexil.v1.EvaluationService`: Watch here, the other methods by the
/// generated server.
#[derive(Clone)]
pub struct EvaluationRoutes {
    generated: EvaluationServiceServer<EvaluationGrpc>,
    service: Arc<EvaluationGrpc>,
    max_request_bytes: usize,
}

impl EvaluationRoutes {
    pub fn new(service: EvaluationGrpc, max_request_bytes: usize) -> Self {
        let service = Arc::new(service);
        Self {
            generated: EvaluationServiceServer::from_arc(service.clone())
                .max_decoding_message_size(max_request_bytes),
            service,
            max_request_bytes,
        }
    }
}

impl NamedService for EvaluationRoutes {
    const NAME: &'static str = <EvaluationServiceServer<EvaluationGrpc> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for EvaluationRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != WATCH_PATH {
            return self.generated.call(request);
        }
        let service = self.service.clone();
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move { Ok(watch(&service, request, max_request_bytes).await) })
    }
}

async fn watch(
    service: &EvaluationGrpc,
    request: http::Request<Body>,
    max_request_bytes: usize,
) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    let mut messages = Streaming::<pb::WatchRequest>::new_request(
        ProstDecoder::default(),
        body,
        None,
        Some(max_request_bytes),
    );
    let message = match messages.message().await {
        Ok(Some(message)) => message,
        Ok(None) => return Status::invalid_argument("the request has no WatchRequest").into_http(),
        Err(status) => return status.into_http(),
    };
    let request = tonic::Request::from_http(http::Request::from_parts(parts, message));
    match service.watch(request).await {
        Ok(stream) => {
            let mut response = http::Response::new(Body::new(WatchBody {
                stream,
                ended: false,
            }));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                tonic::metadata::GRPC_CONTENT_TYPE,
            );
            response
        }
        Err(status) => status.into_http(),
    }
}

/// The response body: each message as one DATA frame of its shared bytes,
/// then the status as trailers.
struct WatchBody {
    stream: WatchStream,
    ended: bool,
}

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let status = match ready!(self.stream.as_mut().poll_next(cx)) {
            Some(Ok(Encoded(frame))) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        if let Err(unsendable) = status.add_header(&mut trailers) {
            trailers.clear();
            let _ = Status::internal(unsendable.message().to_string()).add_header(&mut trailers);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
