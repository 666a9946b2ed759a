//! Compiles `proto/` with protox (no system `protoc`) and writes the
//! descriptor set that server reflection serves.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["vexil/v1/flags.proto"];
    let file_descriptors = protox::compile(protos, ["proto"])?;

    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("vexil_descriptor.bin"),
        file_descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::grpc::codec::ProstCodec")
        .compile_fds(file_descriptors)?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
