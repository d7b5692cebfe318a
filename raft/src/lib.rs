//! raft — keyraft storage nodes: a region's replicated store of key records.
//!
//! # Layout
//!
//! - [`types`]: the openraft type config (`D` = leader-stamped [`keystore::command::Proposal`]
//!   plus the proposer's [`RequestId`], `R` = `Result<CommandOutput, DomainError>`, `u64` ids,
//!   `BasicNode { addr: "host:port" }`).
//! - [`store`]: [`store::KvBackend`] (seven tables, atomic durable commits) with a redb
//!   (default) and a sled backend; the Raft [`store::LogStore`] and the
//!   [`store::StateMachineStore`] on top (see docs/storage.md).
//! - `network`: openraft's RPCs as unary tonic calls (snapshots as a stream of 4 MiB chunks),
//!   mTLS both ways (`proto/cluster/v1/raft.proto`).
//! - `server`: the gRPC services of a node: Raft from peers, the store API
//!   (`proto/cluster/v1/store.proto`) for fronts.
//! - [`tls`]: mTLS and who may call what: a certificate chaining to the CA is necessary but
//!   not sufficient; Raft RPCs need the URI SAN [`tls::ROLE_STORAGE`], the store API
//!   [`tls::ROLE_STORAGE`] or [`tls::ROLE_FRONT`] (user certificates carry an ARN instead).
//! - [`client`]: [`StoreClient`], what fronts use.
//! - [`node`]: [`run_storage_node`], wiring all of it together; it snapshots every
//!   `max(snapshot_every, entities)` entries.
//! - [`join`]: [`join_region`], how a new node (new id, empty disk) joins a running region in
//!   a lost node's place: learner, snapshot, then voter.
//!
//! # Data flow
//!
//! ```text
//! front --StoreClient.propose(Command) [one RequestId, kept across retries]--> any node
//!   --(follower forwards, same id)--> leader
//!   leader: Proposal { now, command } + request id -> Raft log (fsync on a quorum) -> commit
//!   every node: StateMachineStore::apply: id already in the dedup table? -> its old Response
//!               else keystore::apply::apply(&mut State, proposal), remember id -> Response
//!               -> one durable commit: touched entities + audit records/digests + chain
//!                  head + request-id rows + last_applied + membership
//!               -> reply to the proposer; WatchEvent::Changed(change) to watchers
//! leader, every audit digest interval: sign_digest(audit key, chain head) -> AppendDigest
//! front --StoreClient.audit_records/audit_digests/audit_head--> read index -> audit tables
//! front --StoreClient.query(Query)--> leader: read index (ensure_linearizable)
//!   -> keystore::query::query(&State, q)
//! new node --RaftService.Join--> leader: add_learner (snapshot) -> change_membership
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod clock;
pub mod join;
mod network;
pub mod node;
mod server;
pub mod store;
pub mod tls;
pub mod types;

/// Generated gRPC code of `proto/cluster/v1` (Raft and store services).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("keyraft.cluster.v1");
}

pub use client::{NodeStatus, StoreClient, StoreError, WatchEvent};
pub use clock::Clock;
pub use join::join_region;
pub use node::{
    run_storage_node, run_storage_node_with_audit, run_storage_node_with_listener,
    run_storage_node_with_listener_and_audit, AuditKey, AuditSettings, LogRetention,
    StorageNodeConfig,
};
pub use store::Backend;
pub use tls::TlsFiles;
pub use types::{JoinReply, JoinRequest, RequestId};

/// Errors of running a storage node.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// Disk or socket I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Unreadable or unusable TLS files.
    #[error("tls: {0}")]
    Tls(String),
    /// The gRPC transport.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Invalid configuration.
    #[error("config: {0}")]
    Config(String),
    /// openraft refused to start or stopped fatally.
    #[error("raft: {0}")]
    Raft(String),
}
