//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! the prost messages and tonic clients and servers for both contracts.

use std::{env, error::Error, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/nlimage.proto",
    "proto/nlimage/v1/nlimage.proto",
    "proto/nlimage/v1/store.proto",
    "proto/nlimage/v1/jobs.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    // The encoded descriptor set is kept for gRPC server reflection.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("nlimage_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `bytes::Bytes` for every `bytes` field: chunks are split and passed
        // on without copying.
        .bytes(".")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
