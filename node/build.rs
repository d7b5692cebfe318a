//! Compiles the public KMS API (proto/kms/v1) with the server side only; the front tier serves
//! it (`front::grpc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No system protoc: the vendored binary keeps builds hermetic.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let proto_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let proto = proto_dir.join("kms/v1/kms.proto");
    // The proto lives outside this package, so cargo would not notice it change on its own.
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-changed=build.rs");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .compile_protos(&[proto], &[proto_dir])?;
    Ok(())
}
