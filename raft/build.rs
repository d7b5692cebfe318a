//! Compiles `proto/cluster/v1` with the vendored protoc (no system protoc on build machines).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto/cluster/v1");
    let files = [root.join("raft.proto"), root.join("store.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&files, &[root])?;
    Ok(())
}
