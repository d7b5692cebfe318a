//! keystore — keyraft's pure domain: no network, no disk, no tokio.
//!
//! Everything here is a deterministic function of its inputs (plus the OS RNG inside
//! `crypto`/`ciphertext`), so storage nodes and fronts can share it and tests need no I/O.
//!
//! # Layout
//!
//! - `model`: replicated records (`KeyRecord`, `AliasRecord`, identities with their inline
//!   policies, ...) and the whole `State`.
//! - `command`: the Raft log entries (`Proposal`/`Command`), queries, and `Change`s.
//! - `apply`: `apply(&mut State, &Proposal)`, the state machine's pure transition function.
//! - `audit`: the tamper-evident audit trail (issue 5): CloudTrail-shaped events, allow-list
//!   redaction, the per-region hash chain, Ed25519-signed digests, offline verification.
//! - `query`: `query(&State, &Query)`, read-only answers (lists are paged by marker).
//! - `multi_region`: multi-region keys (issue 7): configuration, replication outbox, replica
//!   install; `transport` wraps material between regions (ECDH P-384 + HKDF + AES-GCM-SIV,
//!   Ed25519-signed).
//! - `rotation`: key rotation records, the schedule, and which rotations are due.
//! - `import`: BYOK — import parameters and tokens, unwrapping imported material (RSA-OAEP,
//!   RSA + AES-KWP), expiry of imported material.
//! - `grant`: grants (`GrantRecord`, AWS's CreateGrant rules, what a grant allows, who may
//!   retire it) and opaque grant tokens.
//! - `state`: AWS's table of which key state allows which `Operation`.
//! - `usage`: key last usage (GetKeyLastUsage): the marks fronts attach to audit batches.
//! - `crypto`: secret types (`DomainKey`, `KeyMaterial`, `Secret`), wrapping under the domain
//!   key, hashes and MACs.
//! - `context`: encryption context and its canonical bytes.
//! - `ciphertext`: the versioned ciphertext blob (`docs/ciphertext-format.md`).
//! - `sigv4`: AWS Signature Version 4 verification (pure; the front feeds it the request).
//! - Every key spec (issue 3; the front's `asymmetric` module wires them): `spec` (AWS key specs,
//!   usages and algorithm lists), `material` (private key material per spec, public keys as
//!   SPKI), `sign`, `rsa_encrypt`, `mac`, `ecdh`, `data_key_pair` (+ `ml_kem` for ML-KEM
//!   pairs). aws-lc-rs for RSA, ECDSA, ECDH, HMAC and ML-DSA; ed25519-dalek for Ed25519;
//!   RustCrypto ml-kem for ML-KEM keygen from a seed; checked against Wycheproof vectors.
//!
//! Only this crate imports crypto crates; the rest of the workspace asks it.
//! - `ids`: key ids and ARNs.
//! - `policy`: the IAM policy language (key and identity policies), its evaluator, the KMS
//!   authorization decision (key policy + identity policies + grants), the default key policy.
//! - `error`: `DomainError`, one variant per AWS exception the domain can raise.
//!
//! # Data flow
//!
//! ```text
//!  front: request -> check_state(key, op) -> unwrap_material(domain key) -> seal/open
//!            |                                                         (ciphertext, context)
//!            v  Command (wrapped material only, never plaintext)
//!  raft leader: Proposal { now, command } -> log -> every replica: apply(state) -> Changes
//!                                                       |                 |
//!                                         query(state) <-+      persisted + watch stream
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub use keyraft_audit as audit;
pub mod ciphertext;
pub mod command;
pub mod context;
pub mod crypto;
pub mod data_key_pair;
pub mod ecdh;
pub mod error;
pub mod grant;
pub mod ids;
pub mod import;
pub mod mac;
pub mod material;
pub mod ml_kem;
pub mod model;
pub mod multi_region;
pub mod policy;
pub mod query;
pub mod rotation;
pub mod rsa_encrypt;
pub mod sign;
pub mod sigv4;
pub mod spec;
pub mod state;
pub mod transport;
pub mod usage;

pub use apply::apply;
pub use query::query;
