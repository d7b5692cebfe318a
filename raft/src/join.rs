//! Joining a running region: a new storage node (a new id, an empty data directory) asks the
//! leader to add it. The leader adds it as a learner, waits until it caught up — by snapshot
//! when the log it needs was purged — and, for a voter, changes the membership, removing the
//! node it replaces if any.
//!
//! ```text
//! new node: run_storage_node (not in any membership: waits, never initializes)
//!        -> join_region(peers) --RaftService.Join--> each peer until the leader answers
//! leader: add_learner(id, addr, blocking) -> snapshot / appends to the new node
//!        -> change_membership(voters + id - replaces)
//! ```
//!
//! Why not just restart a wiped node under its old id: a voter that lost its disk also lost
//! its vote and the entries it acknowledged, so it could help elect a leader without
//! committed entries. openraft refuses such a "log reversion" (the leader stops replicating to
//! it); replacing it by a new id through a membership change is the safe way.

use std::time::{Duration, Instant};

use crate::pb::raft_service_client::RaftServiceClient;
use crate::pb::RaftPayload;
use crate::tls::{Tls, TlsFiles, MAX_MESSAGE};
use crate::types::{JoinReply, JoinRequest};
use crate::RaftError;

/// How long one Join call may take: the leader answers once the new node caught up.
const JOIN_CALL_LIMIT: Duration = Duration::from_secs(900);

/// Asks the region's storage nodes at `peers` (`host:port`) to add the node `req` describes,
/// trying each until the leader accepts, for at most `give_up_after`. `tls` needs the storage
/// role (peers only admit storage nodes to Raft RPCs).
pub async fn join_region(
    tls: &TlsFiles,
    peers: &[String],
    req: &JoinRequest,
    give_up_after: Duration,
) -> Result<JoinReply, RaftError> {
    let tls = Tls::load(tls)?;
    let data = serde_json::to_vec(req).map_err(|e| RaftError::Raft(e.to_string()))?;
    let started = Instant::now();
    let mut last_error = String::from("no peers given");
    while started.elapsed() < give_up_after {
        for peer in peers {
            let mut client = RaftServiceClient::new(tls.channel(peer)?)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            let call = client.join(RaftPayload {
                data: data.clone(),
                snapshot: Vec::new(),
            });
            match tokio::time::timeout(JOIN_CALL_LIMIT, call).await {
                Ok(Ok(reply)) => {
                    return serde_json::from_slice(&reply.into_inner().data)
                        .map_err(|e| RaftError::Raft(format!("join reply from {peer}: {e}")));
                }
                Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                    return Err(RaftError::Config(status.message().to_string()));
                }
                Ok(Err(status)) => last_error = format!("{peer}: {}", status.message()),
                Err(_) => last_error = format!("{peer}: no answer within {JOIN_CALL_LIMIT:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(RaftError::Raft(format!(
        "could not join the region within {give_up_after:?}: {last_error}"
    )))
}
