//! keystore — keyraft's pure domain: no network, no disk, no tokio.
//!
//! Everything here is a deterministic function of its inputs (plus the OS RNG inside
//! `crypto`/`ciphertext`), so storage nodes and fronts can share it and tests need no I/O.
//!
//! # Layout
//!
//! - `model`: replicated records (`KeyRecord`, `AliasRecord`, ...) and the whole `State`.
//! - `command`: the Raft log entries (`Proposal`/`Command`), queries, and `Change`s.
//! - `apply`: `apply(&mut State, &Proposal)`, the state machine's pure transition function.
//! - `query`: `query(&State, &Query)`, read-only answers (lists are paged by marker).
//! - `state`: AWS's table of which key state allows which `Operation`.
//! - `crypto`: secret types (`DomainKey`, `KeyMaterial`, `Secret`), wrapping under the domain
//!   key, hashes and MACs. The only module (with `ciphertext`) that touches crypto crates.
//! - `context`: encryption context and its canonical bytes.
//! - `ciphertext`: the versioned ciphertext blob (`docs/ciphertext-format.md`).
//! - `ids`, `policy`: key ids, ARNs, the default key policy.
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
pub mod ciphertext;
pub mod command;
pub mod context;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod model;
pub mod policy;
pub mod query;
pub mod sigv4;
pub mod state;

pub use apply::apply;
pub use query::query;
