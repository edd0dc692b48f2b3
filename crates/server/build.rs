//! Compiles the `portcullis.v1` gRPC API with a pure-Rust protobuf compiler (no `protoc`, nothing
//! downloaded) into Rust types and the tonic server and client.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new("proto");
    let files = [
        proto_root.join("portcullis/v1/decisions.proto"),
        proto_root.join("portcullis/v1/relations.proto"),
        proto_root.join("portcullis/v1/access.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [proto_root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
