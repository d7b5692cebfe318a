//! The gRPC services a storage node serves on its one port: Raft RPCs from peers and the store
//! API (propose, query, watch) for fronts. Followers forward store calls to the leader.
//!
//! Who may call which service is checked before these handlers run, by the
//! [`crate::tls::RequireRole`] interceptor each service is wrapped in (see `node.rs`): Raft
//! RPCs need a certificate with the storage role, the store API the storage or front role.

use std::pin::Pin;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use keystore::command::{Command, Proposal, Query};
use openraft::errors::{
    ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError as OpenRaftError,
};
use openraft::ReadPolicy;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status};

use crate::client::WatchEvent;
use crate::network::NetworkFactory;
use crate::pb::raft_service_server::RaftService;
use crate::pb::store_service_client::StoreServiceClient;
use crate::pb::store_service_server::StoreService;
use crate::pb::{
    self, AuditHeadReply, AuditHeadRequest, AuditPageReply, AuditPageRequest, ProposeRequest,
    QueryRequest, RaftPayload, SnapshotChunk, StatusReply, StatusRequest, StoreReply, WatchRequest,
};
use crate::store::{audit, AppliedState, KvBackend, SnapshotData, Table};
use crate::tls::MAX_MESSAGE;

/// The largest snapshot document a node accepts (reassembled from chunks): far above a region
/// of millions of keys, below what would exhaust a storage node's memory.
const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024 * 1024;
use crate::types::{
    command_kind, JoinReply, JoinRequest, Raft, Request as LogRequest, RequestId, Snapshot,
    SnapshotMeta, TypeConfig, Vote,
};

fn decode<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(b)
        .map_err(|e| Status::invalid_argument(format!("malformed {what}: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(v).map_err(|e| Status::internal(format!("encoding reply: {e}")))
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

/// How long a join waits for a fresh snapshot (`RaftSvc::snapshot_before_join`) before
/// adding the node anyway.
const FRESH_SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Raft RPCs from peers.
pub(crate) struct RaftSvc {
    pub(crate) raft: Raft,
    /// The applied state and the database: the audit chain base a snapshot can build on.
    pub(crate) state: Arc<RwLock<AppliedState>>,
    pub(crate) kv: Arc<dyn KvBackend>,
    /// Entries past the last snapshot above which a join waits for a fresh snapshot (the
    /// snapshot interval: below it, the appends cost less than a build).
    pub(crate) fresh_snapshot_for_join_after: u64,
}

impl RaftSvc {
    fn audit_log(&self) -> Result<keystore::model::AuditLog, Status> {
        Ok(self
            .state
            .read()
            .map_err(|_| Status::internal("state lock poisoned"))?
            .state
            .audit
            .clone())
    }
}

#[tonic::async_trait]
impl RaftService for RaftSvc {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("AppendEntriesRequest", &req.into_inner().data)?;
        let resp = self.raft.append_entries(rpc).await.map_err(fatal)?;
        Ok(Response::new(RaftPayload {
            data: encode(&resp)?,
            snapshot: Vec::new(),
        }))
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("VoteRequest", &req.into_inner().data)?;
        let resp = self.raft.vote(rpc).await.map_err(fatal)?;
        Ok(Response::new(RaftPayload {
            data: encode(&resp)?,
            snapshot: Vec::new(),
        }))
    }

    async fn pre_vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("VoteRequest", &req.into_inner().data)?;
        let resp = self.raft.pre_vote(rpc).await.map_err(fatal)?;
        Ok(Response::new(RaftPayload {
            data: encode(&resp)?,
            snapshot: Vec::new(),
        }))
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let p = req.into_inner();
        self.install(&p.data, p.snapshot).await
    }

    async fn join(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let join: JoinRequest = decode("join request", &req.into_inner().data)?;
        let reply = self.join_on_leader(join).await?;
        Ok(Response::new(RaftPayload {
            data: encode(&reply)?,
            snapshot: Vec::new(),
        }))
    }

    async fn install_snapshot_chunks(
        &self,
        req: Request<tonic::Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        let mut chunks = req.into_inner();
        let mut header = None;
        let mut bytes = Vec::new();
        let receiving = std::time::Instant::now();
        while let Some(chunk) = chunks.message().await? {
            if header.is_none() {
                header = Some(chunk.header);
            } else if !chunk.header.is_empty() {
                return Err(Status::invalid_argument(
                    "snapshot header repeated after the first chunk",
                ));
            }
            if bytes.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let header = header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        tracing::info!(
            bytes = bytes.len(),
            receive_ms = receiving.elapsed().as_millis() as u64,
            "received snapshot"
        );
        self.install(&header, bytes).await
    }
    async fn audit_chain_base(
        &self,
        _req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let log = self.audit_log()?;
        let kv = self.kv.clone();
        let base = tokio::task::spawn_blocking(move || audit::ChainBase::of(&log, &*kv))
            .await
            .map_err(|e| Status::internal(format!("chain base task: {e}")))?
            .map_err(|e| Status::internal(format!("reading the audit chain: {e}")))?;
        Ok(Response::new(RaftPayload {
            data: encode(&base)?,
            snapshot: Vec::new(),
        }))
    }
}

impl RaftSvc {
    /// `RaftService.Join` on the leader (see [`JoinRequest`]).
    async fn join_on_leader(&self, req: JoinRequest) -> Result<JoinReply, Status> {
        use openraft::async_runtime::WatchReceiver;
        let m = self.raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(m.id) {
            return Err(Status::unavailable(format!(
                "not the leader (leader: {:?})",
                m.current_leader
            )));
        }
        let membership = m.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        if voters.contains(&req.node_id) {
            // Already a voter (a joiner restarted after joining asks again): nothing to do.
            return Ok(JoinReply {
                voters: voters.into_iter().collect(),
                learners: membership.learner_ids().collect(),
                caught_up_ms: 0,
            });
        }
        if let Some(old) = req.replaces {
            if old == req.node_id || old == m.id || !voters.contains(&old) {
                return Err(Status::invalid_argument(format!(
                    "node {old} cannot be replaced: it must be a voter other than the leader \
                     and the joining node"
                )));
            }
        }
        let started = std::time::Instant::now();
        self.snapshot_before_join(&m).await;
        tracing::info!(node = req.node_id, addr = %req.addr, voter = req.voter, replaces = ?req.replaces, "adding a learner");
        // Blocking: returns once the learner has caught up with the leader's log.
        self.raft
            .add_learner(req.node_id, openraft::BasicNode::new(&req.addr), true)
            .await
            .map_err(|e| Status::unavailable(format!("adding learner {}: {e}", req.node_id)))?;
        let caught_up_ms = started.elapsed().as_millis() as u64;
        tracing::info!(node = req.node_id, caught_up_ms, "learner caught up");
        if req.voter {
            let mut new_voters = voters.clone();
            new_voters.insert(req.node_id);
            if let Some(old) = req.replaces {
                new_voters.remove(&old);
            }
            // retain = false: a replaced node leaves the membership entirely.
            self.raft
                .change_membership(openraft::ChangeMembers::ReplaceAllVoters(new_voters), false)
                .await
                .map_err(|e| Status::unavailable(format!("changing membership: {e}")))?;
            tracing::info!(node = req.node_id, replaces = ?req.replaces, "joined as a voter");
        }
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        Ok(JoinReply {
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            caught_up_ms,
        })
    }

    /// A new node starts with an empty log; once the leader's log was purged it is sent the
    /// last snapshot and then every entry since by appends. When that tail is long (at a
    /// million keys the last snapshot was ~450k entries old and the appends took 217 s of a
    /// 316 s catch-up), a fresh snapshot first costs one build and saves the tail.
    async fn snapshot_before_join(&self, m: &openraft::RaftMetrics<crate::types::TypeConfig>) {
        use openraft::async_runtime::WatchReceiver;
        let (Some(applied), Some(_purged)) = (m.last_applied, m.purged) else {
            return; // the whole log is here: the new node gets it by appends
        };
        let snapshot = m.snapshot.map(|s| s.index);
        let tail = applied.index.saturating_sub(snapshot.unwrap_or(0));
        if tail < self.fresh_snapshot_for_join_after {
            return;
        }
        tracing::info!(
            applied = applied.index,
            ?snapshot,
            tail,
            "building a fresh snapshot for the joining node"
        );
        let deadline = std::time::Instant::now() + FRESH_SNAPSHOT_WAIT;
        // Triggered once, and again only when a snapshot older than `applied` completes (a
        // build already under way took the first trigger): at a million keys a build is
        // ~30 s of CPU, and re-triggering on a timer queued a second build at the same index.
        let mut last_seen = None;
        while std::time::Instant::now() < deadline {
            let now = self
                .raft
                .metrics()
                .borrow_watched()
                .snapshot
                .map(|s| s.index);
            if now >= Some(applied.index) {
                tracing::info!(snapshot = ?now, "fresh snapshot built");
                return;
            }
            if last_seen != Some(now) {
                last_seen = Some(now);
                if self.raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tracing::warn!(
            "the fresh snapshot took longer than {FRESH_SNAPSHOT_WAIT:?}; adding the node anyway"
        );
    }

    /// Checks a whole snapshot document and hands it to openraft to install.
    async fn install(
        &self,
        header: &[u8],
        bytes: Vec<u8>,
    ) -> Result<Response<RaftPayload>, Status> {
        let (vote, meta): (Vote, SnapshotMeta) = decode("snapshot header", header)?;
        // Validate the data before openraft commits to installing it: a malformed snapshot
        // must be an error, not a storage failure. The decoded form is what gets installed
        // (decoded once, on the blocking pool: it can hold the whole audit chain).
        let decoding = std::time::Instant::now();
        let snapshot = crate::store::low_priority(move || SnapshotData::decode(&bytes))
            .await
            .map_err(|e| Status::internal(format!("snapshot decode task: {e}")))?
            .map_err(|e| Status::invalid_argument(format!("malformed snapshot data: {e}")))?;
        tracing::info!(
            decode_ms = decoding.elapsed().as_millis() as u64,
            "decoded snapshot"
        );
        // A snapshot built on this node's audit chain base must still find it here (it only
        // moves forward, but a wiped data directory would not hold it): refuse before
        // openraft installs it, and the leader asks for the base again on its next try.
        if let Some(base) = snapshot.audit_base() {
            let log = self.audit_log()?;
            let kv = self.kv.clone();
            let base = base.clone();
            let extends = tokio::task::spawn_blocking(move || base.is_extended_by(&log, &*kv))
                .await
                .map_err(|e| Status::internal(format!("snapshot check task: {e}")))?
                .map_err(|e| Status::internal(format!("reading the audit chain: {e}")))?;
            if !extends {
                return Err(Status::failed_precondition(
                    "snapshot's audit chain base is not this node's chain",
                ));
            }
        }
        let resp = self
            .raft
            .install_full_snapshot(vote, Snapshot { meta, snapshot })
            .await
            .map_err(fatal)?;
        Ok(Response::new(RaftPayload {
            data: encode(&resp)?,
            snapshot: Vec::new(),
        }))
    }
}

/// What the store service needs from its node.
pub(crate) struct StoreCtx {
    pub(crate) raft: Raft,
    pub(crate) state: Arc<RwLock<AppliedState>>,
    /// The database, for the audit tables (read after a read index).
    pub(crate) kv: Arc<dyn KvBackend>,
    pub(crate) events: broadcast::Sender<WatchEvent>,
    pub(crate) network: NetworkFactory,
    /// Flips to true at shutdown so watch streams end and the server can stop gracefully.
    pub(crate) stopping: watch::Receiver<bool>,
    /// The time stamped on proposals (and used by the scheduler).
    pub(crate) clock: crate::clock::Clock,
}

/// The store API.
pub(crate) struct StoreSvc {
    pub(crate) ctx: Arc<StoreCtx>,
}

impl StoreCtx {
    fn leader_client(
        &self,
        f: &ForwardToLeader<TypeConfig>,
    ) -> Result<StoreServiceClient<tonic::transport::Channel>, Status> {
        let Some(node) = &f.leader_node else {
            return Err(Status::unavailable("no leader elected yet"));
        };
        let ch = self
            .network
            .channel(&node.addr)
            .map_err(Status::unavailable)?;
        Ok(StoreServiceClient::new(ch).max_decoding_message_size(MAX_MESSAGE))
    }

    /// Proposes `command` through Raft (as leader) and returns the encoded apply result.
    /// Without a request id: for the leader's own idempotent proposals (scheduler, digests).
    pub(crate) async fn propose_local(
        &self,
        command: Command,
    ) -> Result<Result<Vec<u8>, ForwardToLeader<TypeConfig>>, Status> {
        self.propose_with_id(command, None).await
    }

    /// [`StoreCtx::propose_local`] for a logical proposal with id `request_id`: the state
    /// machine applies it once however many copies reach the log, and answers each copy with
    /// the first one's result.
    pub(crate) async fn propose_with_id(
        &self,
        command: Command,
        request_id: Option<RequestId>,
    ) -> Result<Result<Vec<u8>, ForwardToLeader<TypeConfig>>, Status> {
        let kind = command_kind(&command);
        let proposal = Proposal {
            now: self.clock.now_ms(),
            command,
        };
        let request = LogRequest {
            proposal,
            request_id,
        };
        match self.raft.client_write(request).await {
            Ok(resp) => Ok(Ok(encode(&resp.data)?)),
            Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Ok(Err(f)),
            Err(OpenRaftError::APIError(e)) => {
                tracing::warn!(kind, error = %e, "proposal failed");
                Err(Status::unavailable(format!("proposal failed: {e}")))
            }
            Err(OpenRaftError::Fatal(e)) => Err(fatal(e)),
        }
    }
}

/// Where a linearizable read is served.
enum ReadAt {
    /// Here: the read index is applied locally.
    Local,
    /// On the leader (this node is a follower and the call was not forwarded yet).
    Leader(StoreServiceClient<tonic::transport::Channel>),
}

impl StoreCtx {
    /// Read index: `Local` once this node (as leader) has applied everything committed before
    /// the call, `Leader` when a follower should forward, an error when neither can be done.
    async fn read_index(&self, forwarded: bool) -> Result<ReadAt, Status> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(ReadAt::Local),
            Err(OpenRaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                if forwarded {
                    return Err(Status::unavailable(
                        "forwarded to a node that is not the leader",
                    ));
                }
                Ok(ReadAt::Leader(self.leader_client(&f)?))
            }
            Err(OpenRaftError::APIError(e)) => {
                Err(Status::unavailable(format!("read index failed: {e}")))
            }
            Err(OpenRaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    /// A page of an audit table, read on the blocking pool.
    async fn audit_page(
        &self,
        table: Table,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, Status> {
        let kv = self.kv.clone();
        // Pruned records are gone: a page asked from a pruned seq starts after them.
        let from = if table == Table::Audit {
            let pruned = self
                .state
                .read()
                .map(|s| s.audit.pruned_through)
                .unwrap_or(0);
            from.max(pruned.saturating_add(1))
        } else {
            from
        };
        tokio::task::spawn_blocking(move || audit::read_page(kv.as_ref(), table, from, limit))
            .await
            .map_err(|e| Status::internal(format!("audit read task: {e}")))?
            .map_err(|e| Status::internal(format!("reading the audit log: {e}")))
    }
}

fn forwarding_failed(s: Status) -> Status {
    Status::unavailable(format!("forwarding to leader: {}", s.message()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl StoreService for StoreSvc {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn propose(&self, req: Request<ProposeRequest>) -> Result<Response<StoreReply>, Status> {
        let req = req.into_inner();
        let command: Command = decode("Command", &req.command)?;
        let request_id =
            RequestId::from_bytes(&req.request_id).map_err(Status::invalid_argument)?;
        match self.ctx.propose_with_id(command, request_id).await? {
            Ok(result) => Ok(Response::new(StoreReply { result })),
            Err(_) if req.forwarded => Err(Status::unavailable(
                "forwarded to a node that is not the leader",
            )),
            Err(f) => {
                let mut leader = self.ctx.leader_client(&f)?;
                // Keep the request id: this forward and any retry of the same call are one
                // logical proposal, applied once.
                let fwd = ProposeRequest {
                    command: req.command,
                    forwarded: true,
                    request_id: req.request_id,
                };
                leader.propose(fwd).await.map_err(|s| {
                    Status::unavailable(format!("forwarding to leader: {}", s.message()))
                })
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<StoreReply>, Status> {
        let req = req.into_inner();
        let q: Query = decode("Query", &req.query)?;
        match self.ctx.read_index(req.forwarded).await? {
            ReadAt::Local => {
                let out = {
                    let state = self
                        .ctx
                        .state
                        .read()
                        .map_err(|_| Status::internal("state lock poisoned"))?;
                    keystore::query::query(&state, &q)
                };
                Ok(Response::new(StoreReply {
                    result: encode(&out)?,
                }))
            }
            ReadAt::Leader(mut leader) => {
                let fwd = QueryRequest {
                    query: req.query,
                    forwarded: true,
                };
                leader.query(fwd).await.map_err(forwarding_failed)
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_records(
        &self,
        req: Request<AuditPageRequest>,
    ) -> Result<Response<AuditPageReply>, Status> {
        let req = req.into_inner();
        match self.ctx.read_index(req.forwarded).await? {
            ReadAt::Local => Ok(Response::new(AuditPageReply {
                items: self
                    .ctx
                    .audit_page(Table::Audit, req.from, req.limit)
                    .await?,
            })),
            ReadAt::Leader(mut leader) => leader
                .audit_records(AuditPageRequest {
                    forwarded: true,
                    ..req
                })
                .await
                .map_err(forwarding_failed),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_digests(
        &self,
        req: Request<AuditPageRequest>,
    ) -> Result<Response<AuditPageReply>, Status> {
        let req = req.into_inner();
        match self.ctx.read_index(req.forwarded).await? {
            ReadAt::Local => Ok(Response::new(AuditPageReply {
                items: self
                    .ctx
                    .audit_page(Table::AuditDigests, req.from, req.limit)
                    .await?,
            })),
            ReadAt::Leader(mut leader) => leader
                .audit_digests(AuditPageRequest {
                    forwarded: true,
                    ..req
                })
                .await
                .map_err(forwarding_failed),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_head(
        &self,
        req: Request<AuditHeadRequest>,
    ) -> Result<Response<AuditHeadReply>, Status> {
        let req = req.into_inner();
        match self.ctx.read_index(req.forwarded).await? {
            ReadAt::Local => {
                let (head, last_digest) = {
                    let state = self
                        .ctx
                        .state
                        .read()
                        .map_err(|_| Status::internal("state lock poisoned"))?;
                    (state.audit.head.clone(), state.audit.last_digest.clone())
                };
                Ok(Response::new(AuditHeadReply {
                    head: encode(&head)?,
                    last_digest: match last_digest {
                        Some(d) => encode(&d)?,
                        None => Vec::new(),
                    },
                }))
            }
            ReadAt::Leader(mut leader) => leader
                .audit_head(AuditHeadRequest { forwarded: true })
                .await
                .map_err(forwarding_failed),
        }
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        use openraft::async_runtime::WatchReceiver;
        let m = self.ctx.raft.metrics().borrow_watched().clone();
        // Hash and index under one read lock: the state machine sets the index in the same
        // write lock as the entries it applies, so the pair always matches, even under load
        // (jepsen-lite compares hashes of nodes at equal indexes).
        let (state_hash, state_applied) = match self.ctx.state.read() {
            Ok(s) => (s.digest_hex(), s.applied.map(|l| l.index)),
            Err(_) => (String::new(), None),
        };
        Ok(Response::new(StatusReply {
            state_hash,
            state_applied,
            node_id: m.id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            state: format!("{:?}", m.state),
            last_purged: m.purged.map(|l| l.index),
            last_snapshot: m.snapshot.map(|l| l.index),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, _req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let rx = self.ctx.events.subscribe();
        let mut stopping = self.ctx.stopping.clone();
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        let stream = BroadcastStream::new(rx)
            .map(|ev| {
                let event = match ev {
                    Ok(WatchEvent::Changed(c)) => pb::watch_event::Event::Change(encode(&c)?),
                    // Lagged: the subscriber missed events and must drop its cache.
                    Ok(WatchEvent::Resync) | Err(_) => pb::watch_event::Event::Resync(true),
                };
                Ok(pb::WatchEvent { event: Some(event) })
            })
            .take_until(stop);
        Ok(Response::new(Box::pin(stream)))
    }
}
