//! The gRPC edge: the only module that imports tonic and the generated code.
//! Converts requests, calls the use cases, converts answers.

mod access;
mod codec;
mod convert;
mod evaluation;
mod flags;

pub use access::{Gatekeeper, Limits};
pub use evaluation::EvaluationGrpc;
pub use flags::FlagServiceGrpc;

/// Generated protobuf types, servers and clients for `vexil.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("vexil.v1");

    /// Encoded descriptors of the protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/vexil_descriptor.bin"));
}
