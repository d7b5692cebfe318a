//! The front's view of the store: the three calls it makes, behind a trait so operations can
//! be tested against an in-memory `apply` without a cluster.

use futures::future::BoxFuture;
use keystore::command::{Command, CommandOutput, Query, QueryOutput};
use tokio::sync::broadcast;

pub use raft::{StoreError, WatchEvent};

/// Raft writes, linearizable reads, and the change stream.
pub trait StoreApi: Send + Sync + 'static {
    /// Propose a command through Raft.
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutput, StoreError>>;
    /// A linearizable read.
    fn query(&self, q: Query) -> BoxFuture<'_, Result<QueryOutput, StoreError>>;
    /// Changes for cache invalidation.
    fn watch(&self) -> broadcast::Receiver<WatchEvent>;
    /// Each storage node's view of the cluster (for `/status`); empty where there are none.
    fn node_status(&self) -> BoxFuture<'_, Vec<(String, Result<raft::NodeStatus, StoreError>)>> {
        Box::pin(async { Vec::new() })
    }
}

impl StoreApi for raft::StoreClient {
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutput, StoreError>> {
        Box::pin(raft::StoreClient::propose(self, command))
    }

    fn query(&self, q: Query) -> BoxFuture<'_, Result<QueryOutput, StoreError>> {
        Box::pin(raft::StoreClient::query(self, q))
    }

    fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        raft::StoreClient::watch(self)
    }

    fn node_status(&self) -> BoxFuture<'_, Vec<(String, Result<raft::NodeStatus, StoreError>)>> {
        Box::pin(raft::StoreClient::node_status(self))
    }
}
