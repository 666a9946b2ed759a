//! What the fan-out subscribers read: each change's revision, the rest of
//! every message skipped, so that clients sharing the server's cores cost
//! as little as a client can.

use tonic::transport::Channel;
use vexil::grpc::pb;

/// A WatchResponse as the fan-out subscribers read it: a change's revision;
/// the flag (and snapshots, heartbeats) skipped as unknown fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Arrival {
    #[prost(message, optional, tag = "1")]
    pub snapshot: Option<SnapshotEnd>,
    #[prost(message, optional, tag = "2")]
    pub change: Option<ArrivedChange>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotEnd {
    #[prost(bool, tag = "3")]
    pub last: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrivedChange {
    #[prost(uint64, tag = "1")]
    pub revision: u64,
}

/// Opens a Watch of `name` read as [`Arrival`]s, after its snapshot.
pub async fn watch_light(channel: &Channel, name: &str) -> tonic::Streaming<Arrival> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("connection");
    let request = tonic::Request::new(pb::WatchRequest {
        flag_names: vec![name.into()],
        since_revision: None,
        engine: vexil::engine::ENGINE,
    });
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/vexil.v1.EvaluationService/Watch");
    let codec = tonic_prost::ProstCodec::<pb::WatchRequest, Arrival>::default();
    let mut stream = grpc
        .server_streaming(request, path, codec)
        .await
        .expect("watch")
        .into_inner();
    while let Some(message) = stream.message().await.expect("event") {
        if message.snapshot.is_some_and(|snapshot| snapshot.last) {
            return stream;
        }
    }
    panic!("the watch ended before its snapshot");
}
