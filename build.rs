//! Compiles the wire contract in `proto/` with protox (pure Rust, no system `protoc`) and writes
//! the encoded descriptor set beside the generated code for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut protos: Vec<PathBuf> = fs::read_dir("proto/focalgate/v1")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();

    let fds = protox::compile(&protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("focalgate_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    // The messages alone (prost, no tonic): what the layers below the adapters may use.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds.clone())?;
    // The gRPC clients and servers, over those messages: the adapters' own module.
    let rpc_dir = out_dir.join("rpc");
    fs::create_dir_all(&rpc_dir)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".focalgate.v1", "crate::proto")
        // Counts repeated fields before decoding (see src/codec.rs).
        .codec_path("crate::codec::BoundedCodec")
        .out_dir(&rpc_dir)
        .compile_fds(fds)?;

    // compile_fds does not announce its inputs.
    println!("cargo:rerun-if-changed=proto");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}
