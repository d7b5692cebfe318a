//! The systems under load. Each target prepares its fixture once (keys, a ciphertext to
//! decrypt), outside the measured window, then hands out one [`Conn`] per benchmark client.
//!
//! ```text
//! keyraft-json  HttpsConn (hyper http1 + rustls) + aws-sigv4 -> keyraft front, AWS JSON 1.1
//! keyraft-grpc  client::Client (the Rust SDK, tonic + mTLS)   -> keyraft front, gRPC
//! openbao       HttpsConn + X-Vault-Token                     -> /v1/transit/...
//! echo-https    the keyraft-json client, same signed requests -> in-process hyper+rustls echo
//! echo-grpc     raw tonic client, same payload size           -> in-process tonic mTLS echo
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Endpoints;
use crate::ops::{Call, Op};

pub mod echo;
pub mod grpc;
pub mod json;
pub mod openbao;

/// A boxed call: `Ok` for an answer that is a success and checks out, `Err(kind)` otherwise.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
/// A boxed future of a new connection.
pub type ConnFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Box<dyn Conn>>> + Send + 'a>>;

/// One benchmark client's connection.
pub trait Conn: Send {
    /// Makes one call; `seq` is unique within the run (names of created keys).
    fn call(&mut self, call: Call, seq: u64) -> CallFuture<'_>;
}

/// A prepared target.
pub trait Target: Send + Sync {
    /// Opens (and dials) one client connection.
    fn conn(&self) -> ConnFuture<'_>;
}

/// Which system to load (`--target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// keyraft's AWS JSON 1.1 API over HTTPS, SigV4-signed.
    KeyraftJson,
    /// keyraft's gRPC API through the Rust SDK (mTLS).
    KeyraftGrpc,
    /// OpenBao's transit engine (token auth, TLS).
    Openbao,
    /// Transport floor: a bare tonic mTLS unary echo, started in-process.
    EchoGrpc,
    /// Transport floor: a bare hyper + rustls HTTPS echo, started in-process.
    EchoHttps,
}

impl TargetKind {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::KeyraftJson => "keyraft-json",
            TargetKind::KeyraftGrpc => "keyraft-grpc",
            TargetKind::Openbao => "openbao",
            TargetKind::EchoGrpc => "echo-grpc",
            TargetKind::EchoHttps => "echo-https",
        }
    }
}

/// What a target needs to prepare.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// The system.
    pub kind: TargetKind,
    /// Endpoints and credentials.
    pub endpoints: Endpoints,
    /// The operation (setup prepares what its calls need).
    pub op: Op,
    /// Plaintext / message size for encrypt, decrypt, sign and the echoes.
    pub payload_bytes: usize,
    /// Unique per run: names of created keys.
    pub run_id: String,
}

/// A prepared target and whatever must live as long as it (in-process echo servers).
pub struct Prepared {
    /// The target.
    pub target: Arc<dyn Target>,
    /// Servers stopped when this is dropped.
    pub _servers: Option<echo::EchoServer>,
}

/// Prepares `opts.kind`: connects, creates the keys and the ciphertext the op needs.
pub async fn prepare(opts: &TargetOptions) -> anyhow::Result<Prepared> {
    Ok(match opts.kind {
        TargetKind::KeyraftJson => Prepared {
            target: Arc::new(json::JsonTarget::prepare(opts).await?),
            _servers: None,
        },
        TargetKind::KeyraftGrpc => Prepared {
            target: Arc::new(grpc::GrpcTarget::prepare(opts).await?),
            _servers: None,
        },
        TargetKind::Openbao => Prepared {
            target: Arc::new(openbao::OpenbaoTarget::prepare(opts).await?),
            _servers: None,
        },
        TargetKind::EchoHttps => {
            let server = echo::EchoServer::start_https(&opts.endpoints).await?;
            let target = json::JsonTarget::echo(opts, &server.url)?;
            Prepared {
                target: Arc::new(target),
                _servers: Some(server),
            }
        }
        TargetKind::EchoGrpc => {
            let server = echo::EchoServer::start_grpc(&opts.endpoints).await?;
            let target = echo::EchoGrpcTarget::new(opts, &server.url)?;
            Prepared {
                target: Arc::new(target),
                _servers: Some(server),
            }
        }
    })
}

/// A deterministic plaintext of `n` bytes (printable, so it is easy to spot in a capture).
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}
