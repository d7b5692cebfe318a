//! node — the `keyraft` binary as a library: storage node, front tier, dev mode.
//!
//! Layout:
//! ```text
//! main.rs ── parses the CLI, calls one of:
//!   dev::run      one region on loopback (certs, domain key, N × `keyraft node`, one front)
//!   raft::run_storage_node   a storage node (crate `raft`)
//!   roles::start_front       JSON + gRPC listeners over one front::ops::Kms
//! front/     AWS KMS JSON 1.1 router, SigV4, gRPC adapter, operations, cache, errors
//! config.rs  flags / KEYRAFT_* env / TOML → validated parameters
//! certs.rs   dev PKI (rcgen)
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
pub mod config;
pub mod dev;
pub mod front;
pub mod roles;

/// Process-wide set-up every role needs: the rustls crypto provider and tracing.
pub fn init_process(log_json: bool) {
    // rustls needs one process-wide provider; keyraft uses aws-lc-rs everywhere.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    use std::io::IsTerminal;
    // openraft narrates every election and heartbeat at info; its warnings still show.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYRAFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
