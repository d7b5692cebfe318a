//! keyraft-bench — load generator for keyraft and OpenBao transit, with transport floors.
//!
//! Drives one operation against one target with N clients (closed loop) or a fixed arrival
//! rate (open loop), records HDR latency histograms, and reports a table, JSON and an SVG.
//! `compare` puts several runs side by side with ratios (OpenBao, transport floors).
//!
//! # Layout
//!
//! ```text
//! main      clap: `run` (one target, one op) and `compare` (JSON files -> one table)
//! config    Endpoints: `keyraft dev` env file (KMS_*, AWS_*), BAO_* env, flag overrides
//! ops       Op (encrypt, decrypt, generate-data-key, sign, create-key, describe-key, mix)
//! target    prepare(kind) -> Target (fixture made outside the measured window)
//!   json      AWS JSON 1.1 + SigV4 (aws-sigv4) over https.rs   -> keyraft front
//!   grpc      the Rust SDK (client crate, mTLS)                -> keyraft front
//!   openbao   /v1/transit/... with a token over https.rs       -> OpenBao
//!   echo      in-process tonic mTLS echo and hyper+rustls echo (transport floors)
//! https     one kept-alive HTTP/1.1 + rustls connection per client (hyper conn API)
//! runner    clients -> warm-up -> measured window -> HDR histograms, per-second series
//! report    table, JSON, SVG (plotters), comparison with ratios
//! ```
//!
//! keyraft is reached only through its public wire APIs; this crate depends on the SDK and on
//! nothing of the server (keystore, raft, node).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod https;
pub mod ops;
pub mod report;
pub mod runner;
pub mod target;

pub use config::Endpoints;
pub use ops::Op;
pub use runner::{RunConfig, RunReport};
pub use target::{TargetKind, TargetOptions};

/// Prepares the target (outside the measured window) and runs the load.
pub async fn bench(target: &TargetOptions, run: &RunConfig) -> anyhow::Result<RunReport> {
    rustls_provider();
    let prepared = target::prepare(target).await?;
    runner::run(
        prepared.target.as_ref(),
        run,
        target.kind.name(),
        target.payload_bytes,
    )
    .await
}

/// tonic and rustls need one process-wide crypto provider; aws-lc-rs, as the server uses.
fn rustls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A run id unique enough to keep created key names apart between runs.
pub fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), now.subsec_nanos() % 1_000_000)
}
