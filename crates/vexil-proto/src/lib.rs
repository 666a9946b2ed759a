//! Vexil's wire types: the `vexil.v1` messages and gRPC clients generated
//! from `proto/`, and the one conversion between them and the engine's
//! model, shared by the server, the client, the tests and the benches.

pub mod context;
pub mod convert;

/// `google.protobuf` types generated here: `Struct`, `Value`, `ListValue`
/// (so the engine can read a context in place; see [`context`]).
pub mod google {
    pub mod protobuf {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("google.protobuf");
    }
}

pub mod vexil {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("vexil.v1");

        /// Encoded descriptors of `vexil.v1`, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/vexil_descriptor.bin"));
    }
}

pub use vexil::v1;
