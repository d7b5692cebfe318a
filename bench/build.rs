//! Compiles the echo service (the gRPC transport floor), client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No system protoc: the vendored binary keeps builds hermetic.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto/echo.proto");
    println!("cargo:rerun-if-changed=build.rs");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/echo.proto"], &["proto"])?;
    Ok(())
}
