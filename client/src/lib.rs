//! client — the Rust SDK for keyraft, and the `kmsctl` CLI built on it.
//!
//! A typed async client for the keyraft gRPC API (`proto/kms/v1/kms.proto`), shaped like
//! `aws-sdk-kms`: one fluent builder per operation, responses as plain structs, one error type
//! whose [`Error::error_type`] is the AWS `__type`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::Error> {
//! let kms = client::Client::builder()
//!     .endpoints(["https://front-1:7443", "https://front-2:7443"])
//!     .ca_bundle_file("/etc/keyraft/ca.pem")
//!     .client_cert_file("/etc/keyraft/app.pem")
//!     .client_key_file("/etc/keyraft/app.key")
//!     .build()?;
//! let key = kms.create_key().description("orders").send().await?;
//! let ct = kms
//!     .encrypt()
//!     .key_id(key.key_metadata.unwrap_or_default().key_id)
//!     .plaintext(b"4111 1111 1111 1111".to_vec())
//!     .encryption_context("order", "42")
//!     .send()
//!     .await?;
//! // Every AWS key spec: signing, MACs, ECDH, RSA encryption, data key pairs, rotation.
//! let signer = kms
//!     .create_key()
//!     .key_spec("ECC_NIST_P256")
//!     .key_usage("SIGN_VERIFY")
//!     .send()
//!     .await?;
//! let sig = kms
//!     .sign()
//!     .key_id(signer.key_metadata.unwrap_or_default().key_id)
//!     .message(b"release-1.2.tar".to_vec())
//!     .message_type("RAW")
//!     .signing_algorithm("ECDSA_SHA_256")
//!     .send()
//!     .await?;
//! # let _ = (ct, sig); Ok(()) }
//! ```
//!
//! # Layout
//!
//! ```text
//! config   ClientBuilder: endpoints, mTLS PEMs, retry policy, timeouts; KMS_* env; env files
//!   |  build()
//!   v
//! client   Client { fronts: [lazy tonic Channel], current } -> call(op, req, rpc):
//!   ^          try front -> Ok | Error; retryable? fail over to an untried front at once,
//!   |          else full-jitter backoff (retry), up to max_attempts
//! ops      client.encrypt().key_id(..).send() — one fluent builder per operation (macro)
//! iam      client.create_principal().principal_name("role/Ci").send() — identity management
//! audit    client.lookup_events() / get_audit_records() / get_audit_digests() /
//!          mark_audit_exported() — the audit trail (`Audit` service)
//! error    Error { Service{__type}, Transport, Config }, is_retryable()
//! retry    RetryPolicy: full-jitter exponential backoff
//! proto    generated from proto/kms/v1 (client side only)
//! cli      kmsctl: `aws kms`-style subcommands, blob/context/tag argument parsing, AWS JSON output
//! envelope EnvelopeEncryptor: client-side AES-256-GCM records under KMS data keys, with a
//!          data-key cache (max age / messages / bytes) for encryption and an LRU for decryption
//! ```
//!
//! `envelope` is the SDK's one use of a crypto crate (aws-lc-rs, already linked by rustls):
//! sealing records locally is the point of envelope encryption, as in the AWS Encryption SDK.
//! It does not depend on `keystore`; see `docs/envelope.md` and `docs/contracts.md`.
//!
//! `kmsctl audit verify` depends on `keyraft-audit` (the leaf crate `keystore` re-exports as
//! `keystore::audit`) for one thing: the chain's verifier (SHA-256 chain, Ed25519 digests).
//! Verifying with the very code that defines the chain keeps a second implementation from
//! drifting; apart from `envelope` the SDK does no crypto of its own, and it never depends on
//! `keystore`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cli;
mod client;
pub mod compliance;
pub mod config;
pub mod envelope;
mod error;
pub mod iam;
mod ops;
pub mod retry;

/// Messages and the raw tonic clients generated from `proto/kms/v1/kms.proto`,
/// `proto/kms/v1/iam.proto` and `proto/kms/v1/audit.proto` (package `keyraft.kms.v1`). Requests and responses of [`Client`] are these types.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("keyraft.kms.v1");
}

/// The request and response shapes (alias of [`proto`], named as in the AWS SDKs).
pub use proto as types;

pub use crate::client::Client;
pub use crate::config::{ClientBuilder, Pem};
pub use crate::error::{Error, ERROR_TYPE_METADATA_KEY};
pub use crate::ops::*;
pub use crate::retry::RetryPolicy;
