//! Compiles the public KMS and IAM APIs (proto/kms/v1) with the client side only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No system protoc: the vendored binary keeps builds hermetic.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let proto_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let protos = [
        proto_dir.join("kms/v1/kms.proto"),
        proto_dir.join("kms/v1/iam.proto"),
        proto_dir.join("kms/v1/audit.proto"),
    ];
    // The protos live outside this package, so cargo would not notice them change on their own.
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // Responses carrying a secret (access key secret, private key) get a redacting Debug
        // written by hand.
        .skip_debug([
            "keyraft.kms.v1.CreateAccessKeyResponse",
            "keyraft.kms.v1.IssueClientCertificateResponse",
        ])
        .compile_protos(&protos, &[proto_dir])?;
    Ok(())
}
