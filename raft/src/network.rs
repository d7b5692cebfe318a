//! openraft's network over tonic: each Raft RPC is one unary gRPC call carrying the
//! serde_json-encoded openraft message (`proto/cluster/v1/raft.proto`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use tonic::transport::Channel;

use crate::pb::raft_service_client::RaftServiceClient;
use crate::pb::{RaftPayload, SnapshotChunk};
use crate::tls::{Tls, MAX_MESSAGE};
use crate::types::{Snapshot, TypeConfig, Vote};

const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// Bytes of snapshot per InstallSnapshotChunks message.
const SNAPSHOT_CHUNK: usize = 4 * 1024 * 1024;
/// How long a leader waits for a follower's audit chain base before sending a snapshot with
/// the whole retained chain instead.
const CHAIN_BASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Floor of the time limit of an append that carries entries. openraft gives every append
/// `heartbeat_interval` (short, for fast failover: `node::raft_config`), but one with entries
/// includes the follower's fsync: on a loaded machine every append would time out and be
/// resent from scratch, and commits would stop. Heartbeats (no entries) keep openraft's limit,
/// so that a slow reply does not hold back the next heartbeat. A peer that is really gone
/// refuses at once; a silent one costs this long per append, which delays nothing else.
const MIN_APPEND_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Creates connections to peers; channels are cached per address and shared.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    tls: Tls,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NetworkFactory {
    pub(crate) fn new(tls: Tls) -> Self {
        NetworkFactory {
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut map = self
            .channels
            .lock()
            .map_err(|_| "channel cache poisoned".to_string())?;
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = self.tls.channel(addr).map_err(|e| e.to_string())?;
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        let client = self.channel(&node.addr).map(|c| {
            RaftServiceClient::new(c)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        });
        Connection { target, client }
    }
}

/// A connection to one peer.
pub(crate) struct Connection {
    target: u64,
    client: Result<RaftServiceClient<Channel>, String>,
}

fn unreachable<E: From<Unreachable<TypeConfig>>>(msg: impl ToString) -> E {
    Unreachable::from_string(msg).into()
}

fn status_to_rpc(target: u64, s: tonic::Status) -> RPCError<TypeConfig> {
    let msg = format!("raft rpc to node {target}: {}: {}", s.code(), s.message());
    match s.code() {
        // Connection refused / reset: let openraft back off.
        tonic::Code::Unavailable | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::from_string(msg))
        }
        _ => RPCError::Network(NetworkError::from_string(msg)),
    }
}

impl Connection {
    fn client(&self) -> Result<RaftServiceClient<Channel>, RPCError<TypeConfig>> {
        self.client.clone().map_err(unreachable)
    }

    async fn call<Req, Resp, F, Fut>(
        &self,
        req: &Req,
        ttl: std::time::Duration,
        f: F,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, RaftPayload) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let fut = f(
            self.client()?,
            RaftPayload {
                data,
                snapshot: Vec::new(),
            },
        );
        let reply = match tokio::time::timeout(ttl, fut).await {
            Ok(r) => r.map_err(|s| status_to_rpc(self.target, s))?,
            Err(_) => {
                return Err(unreachable(format!(
                    "raft rpc to node {} timed out",
                    self.target
                )))
            }
        };
        serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl Connection {
    /// The target's audit chain base, or `None` if it cannot tell within a few seconds.
    async fn audit_chain_base(
        &self,
        client: &RaftServiceClient<Channel>,
    ) -> Option<crate::store::audit::ChainBase> {
        let mut client = client.clone();
        let ask = client.audit_chain_base(RaftPayload {
            data: b"{}".to_vec(),
            snapshot: Vec::new(),
        });
        match tokio::time::timeout(CHAIN_BASE_TIMEOUT, ask).await {
            Ok(Ok(reply)) => serde_json::from_slice(&reply.into_inner().data).ok(),
            Ok(Err(status)) => {
                tracing::debug!(target_node = self.target, %status, "no audit chain base");
                None
            }
            Err(_) => None,
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = crate::store::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option.hard_ttl().max(MIN_APPEND_TTL)
        };
        self.call(
            &rpc,
            ttl,
            |mut c, p| async move { c.append_entries(p).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, option.hard_ttl(), |mut c, p| async move {
            c.vote(p).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, option.hard_ttl(), |mut c, p| async move {
            c.pre_vote(p).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client().map_err(StreamingError::from)?;
        let data = serde_json::to_vec(&(&vote, &snapshot.meta))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // What the follower already holds of the audit chain: only what follows is sent. Any
        // failure to ask just means sending the whole retained chain.
        let base = self.audit_chain_base(&client).await;
        let base_seq = base.as_ref().map(|b| b.head.last_seq());
        // A stored snapshot leaves the audit chain in the tables until it is sent: read it now.
        let reading = std::time::Instant::now();
        let snapshot =
            crate::store::low_priority(move || snapshot.snapshot.complete_after(base.as_ref()))
                .await
                .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?
                .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let target = self.target;
        tracing::info!(
            target_node = target,
            bytes = snapshot.len(),
            follower_audit_seq = ?base_seq,
            read_ms = reading.elapsed().as_millis() as u64,
            "sending snapshot"
        );
        let sending = std::time::Instant::now();
        let send = async move { client.install_snapshot_chunks(chunks(data, snapshot)).await };
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            // The whole state: allow more than a heartbeat-sized deadline.
            r = tokio::time::timeout(option.hard_ttl().max(SNAPSHOT_TIMEOUT), send) => match r {
                Ok(r) => r.map_err(|s| StreamingError::from(status_to_rpc(target, s)))?,
                Err(_) => return Err(unreachable(format!("snapshot to node {target} timed out"))),
            },
        };
        tracing::info!(
            target_node = target,
            send_and_install_ms = sending.elapsed().as_millis() as u64,
            "snapshot sent and installed"
        );
        serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}

/// The InstallSnapshotChunks stream of `snapshot`: `header` in the first chunk, then
/// [`SNAPSHOT_CHUNK`] bytes per message, copied out one chunk at a time as tonic sends them.
fn chunks(header: Vec<u8>, snapshot: Vec<u8>) -> impl futures::Stream<Item = SnapshotChunk> {
    let snapshot = Arc::new(snapshot);
    let count = snapshot.len().div_ceil(SNAPSHOT_CHUNK).max(1);
    let mut header = Some(header);
    futures::stream::iter((0..count).map(move |i| {
        let start = i * SNAPSHOT_CHUNK;
        let end = (start + SNAPSHOT_CHUNK).min(snapshot.len());
        SnapshotChunk {
            header: header.take().unwrap_or_default(),
            data: snapshot[start..end].to_vec(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_snapshot_is_split_into_chunks_with_the_header_first() {
        for len in [
            0,
            1,
            SNAPSHOT_CHUNK,
            SNAPSHOT_CHUNK + 1,
            3 * SNAPSHOT_CHUNK - 7,
        ] {
            let doc: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let parts: Vec<SnapshotChunk> = chunks(b"hdr".to_vec(), doc.clone()).collect().await;
            assert_eq!(
                parts.len(),
                len.div_ceil(SNAPSHOT_CHUNK).max(1),
                "len {len}"
            );
            assert_eq!(parts[0].header, b"hdr");
            assert!(parts[1..].iter().all(|c| c.header.is_empty()));
            assert!(parts.iter().all(|c| c.data.len() <= SNAPSHOT_CHUNK));
            let joined: Vec<u8> = parts.into_iter().flat_map(|c| c.data).collect();
            assert_eq!(joined, doc);
        }
    }
}
