//! Compiles Vexil's proto (clients only) with protox: no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file_descriptors = protox::compile(["vexil/v1/flags.proto"], [&proto])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(file_descriptors)?;
    println!("cargo:rerun-if-changed={}", proto.display());
    Ok(())
}
