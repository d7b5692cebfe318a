//! [`StoreClient`]: how fronts (and tests) talk to a region's storage nodes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use keystore::audit::{AuditRecord, ChainHead, DigestRecord};
use keystore::command::{Change, Command, CommandOutput, Query, QueryOutput};
use keystore::error::DomainError;
use tokio::sync::broadcast;
use tonic::transport::Channel;

use crate::pb::store_service_client::StoreServiceClient;
use crate::pb::{
    self, AuditHeadRequest, AuditPageRequest, ProposeRequest, QueryRequest, StatusRequest,
    WatchRequest,
};
use crate::tls::{Tls, TlsFiles, MAX_MESSAGE, ROLE_FRONT, ROLE_STORAGE};
use crate::types::{RequestId, Response};

/// How long `propose`/`query` keep retrying "no leader / node down" before giving up, unless
/// [`ClientOptions::retry_budget`] says otherwise.
const RETRY_BUDGET: Duration = Duration::from_secs(10);
/// The longest any one RPC may take (a write waits for a quorum fsync; a forward adds a hop).
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// A retried call's first per-attempt limit. A node that is paused or cut off (not dead: a dead
/// one refuses at once) would otherwise hold every call for the full [`RPC_TIMEOUT`], longer
/// than a front's callers wait. Giving up early is safe: reads are idempotent and a proposal
/// keeps its request id across attempts, so a copy that did reach the log is applied once.
/// The limit doubles after a round in which every node timed out (a slow cluster, not a
/// silent node), up to [`RPC_TIMEOUT`], so a loaded cluster is not flooded with copies.
const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause after a round in which every node failed fast (no leader yet: an election takes a
/// few hundred milliseconds), doubling up to [`MAX_BACKOFF`]. A pause also ends as soon as
/// another call of this client succeeds: the leader is back.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest pause between rounds. A round against a region without a leader is cheap (a dead
/// node refuses, a follower says it has no leader), so this stays short.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// A change notification from the watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// This entity was written or deleted; re-read it.
    Changed(Change),
    /// The stream was (re)connected, lagged, or the node replaced its state: drop every cached
    /// entry. (A `broadcast::error::RecvError::Lagged` on the receiver means the same.)
    Resync,
}

/// One storage node's view of its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's Raft id.
    pub node_id: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Index of its last applied entry.
    pub last_applied: Option<u64>,
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub state: String,
    /// Index of the last log entry purged after a snapshot.
    pub last_purged: Option<u64>,
    /// SHA-256 (hex) of its state machine, taken at `state_applied`.
    pub state_hash: String,
    /// The applied index of `state_hash`, read under the same lock (absent before the first
    /// entry is applied).
    pub state_applied: Option<u64>,
    /// Index of the last entry its current snapshot covers.
    pub last_snapshot: Option<u64>,
}

/// Errors of the store API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The domain refused the command (not found, invalid state, …).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Retryable: no leader, or no node reachable within the retry budget.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Not retryable: a malformed request or reply, bad configuration.
    #[error("store internal error: {0}")]
    Internal(String),
}

/// Tunables of a [`StoreClient`]. `ClientOptions::default()` is what [`StoreClient::connect`]
/// uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long `propose`/`query` keep retrying retryable failures (no leader yet, nodes down or
    /// unreachable) before returning [`StoreError::Unavailable`]. Default 10 s: long enough to
    /// ride out a leader election. No new attempt starts after it; one already in flight may
    /// still take up to its own limit (1.5 s; longer, at most 5 s, when every node was slow).
    /// Tests of store outages set it short to fail fast.
    pub retry_budget: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry_budget: RETRY_BUDGET,
        }
    }
}

/// A client of a region's storage nodes. Cheap to clone; follows the leader through the
/// nodes' server-side forwarding and fails over between endpoints.
#[derive(Clone)]
pub struct StoreClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    retry_budget: Duration,
    clients: Vec<StoreServiceClient<Channel>>,
    preferred: AtomicUsize,
    /// Woken whenever a call succeeds, so that calls pausing between rounds retry at once.
    succeeded: tokio::sync::Notify,
    watch_tx: broadcast::Sender<WatchEvent>,
    watch_started: AtomicBool,
}

enum Attempt<T> {
    Done(T),
    Retry(String),
}

fn classify<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<Attempt<T>, StoreError> {
    match r {
        Ok(r) => Ok(Attempt::Done(r.into_inner())),
        Err(s) if is_retryable(&s) => Ok(Attempt::Retry(format!("{}: {}", s.code(), s.message()))),
        Err(s) => Err(StoreError::Internal(format!(
            "{}: {}",
            s.code(),
            s.message()
        ))),
    }
}

/// Whether another attempt (same request id, maybe another node) may succeed.
fn is_retryable(s: &tonic::Status) -> bool {
    match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown
        | tonic::Code::Aborted => true,
        // A status the node never sent: tonic made it from a broken connection (a node
        // stopping resets its streams, which tonic maps to INTERNAL "h2 protocol error").
        // Statuses that came over the wire carry no source.
        tonic::Code::Internal => std::error::Error::source(s).is_some(),
        _ => false,
    }
}

impl StoreClient {
    /// A client for `endpoints` (`host:port` of storage nodes) using the mTLS identity in
    /// `tls`, with the default [`ClientOptions`]. Connects lazily: succeeds even if no node is
    /// up yet.
    pub async fn connect(endpoints: Vec<String>, tls: &TlsFiles) -> Result<Self, StoreError> {
        Self::connect_with_options(endpoints, tls, ClientOptions::default()).await
    }

    /// [`StoreClient::connect`] with explicit [`ClientOptions`].
    pub async fn connect_with_options(
        endpoints: Vec<String>,
        tls: &TlsFiles,
        options: ClientOptions,
    ) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Internal(
                "no storage endpoints configured".into(),
            ));
        }
        let files = tls;
        let tls = Tls::load(files).map_err(|e| StoreError::Internal(e.to_string()))?;
        if !tls.has_role(ROLE_FRONT) && !tls.has_role(ROLE_STORAGE) {
            // Storage nodes will answer every call with PERMISSION_DENIED.
            tracing::warn!(
                cert = %files.cert.display(),
                "store client certificate has neither URI SAN {ROLE_FRONT} nor {ROLE_STORAGE}"
            );
        }
        let mut clients = Vec::new();
        for ep in &endpoints {
            let ch = tls
                .channel(ep)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            clients.push(StoreServiceClient::new(ch).max_decoding_message_size(MAX_MESSAGE));
        }
        let (watch_tx, _) = broadcast::channel(4096);
        Ok(StoreClient {
            inner: Arc::new(Inner {
                endpoints,
                retry_budget: options.retry_budget,
                clients,
                preferred: AtomicUsize::new(0),
                succeeded: tokio::sync::Notify::new(),
                watch_tx,
                watch_started: AtomicBool::new(false),
            }),
        })
    }

    /// Proposes `command` through Raft; returns once it is applied on the leader.
    /// `StoreError::Domain` when the domain refused it; `StoreError::Unavailable` when no node
    /// could get it committed within the retry budget (default ~10 s; no leader yet, nodes down).
    ///
    /// Exactly once: the call gets one fresh [`RequestId`], sent with every retry (and kept by
    /// followers forwarding to the leader). Retries after an ambiguous failure (a connection
    /// lost after sending, a timeout, a failed forward) can put several copies in the log, but
    /// the state machine applies only the first and answers every later copy with the first
    /// one's result: a retried `CreateKey` creates one key and returns it, a retried
    /// `UpdateKeyDescription` cannot re-apply after someone else's later update. Ids are
    /// remembered for 5 minutes of leader time (`store::dedup`), far longer than the retry
    /// budget. `Unavailable` still means "may or may not have been applied".
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn propose(&self, command: Command) -> Result<CommandOutput, StoreError> {
        self.propose_with_id(RequestId::random(), command).await
    }

    /// [`StoreClient::propose`] under a request id the caller chose, for callers that retry
    /// one logical operation across several calls (after `Unavailable`, say): every call with
    /// the same `id` and command is applied at most once and returns the first application's
    /// result, provided all calls happen within the deduplication window (5 minutes). An id
    /// must never be reused for a different command; use [`RequestId::random`].
    #[tracing::instrument(level = "debug", skip_all, fields(request_id = %id))]
    pub async fn propose_with_id(
        &self,
        id: RequestId,
        command: Command,
    ) -> Result<CommandOutput, StoreError> {
        let body = serde_json::to_vec(&command).map_err(|e| StoreError::Internal(e.to_string()))?;
        let request_id = id.to_bytes();
        let reply = self
            .retrying(|mut c| {
                let command = body.clone();
                let request_id = request_id.clone();
                async move {
                    c.propose(ProposeRequest {
                        command,
                        forwarded: false,
                        request_id,
                    })
                    .await
                }
            })
            .await?;
        let resp: Response = serde_json::from_slice(&reply.result)
            .map_err(|e| StoreError::Internal(format!("malformed propose reply: {e}")))?;
        resp.map_err(StoreError::Domain)
    }

    /// A linearizable read (read index on the leader).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn query(&self, q: Query) -> Result<QueryOutput, StoreError> {
        let body = serde_json::to_vec(&q).map_err(|e| StoreError::Internal(e.to_string()))?;
        let reply = self
            .retrying(|mut c| {
                let query = body.clone();
                async move {
                    c.query(QueryRequest {
                        query,
                        forwarded: false,
                    })
                    .await
                }
            })
            .await?;
        serde_json::from_slice(&reply.result)
            .map_err(|e| StoreError::Internal(format!("malformed query reply: {e}")))
    }

    /// Up to `limit` (at most [`crate::store::MAX_AUDIT_PAGE`] = 1000) audit records from
    /// `from_seq` on, in seq order, exactly as the storage nodes hold them. Linearizable (read
    /// index): every event whose append was acknowledged before this call is visible. Fewer
    /// than `limit` means the chain ends there (at the time of the read).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit_records(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let reply = self
            .retrying(|mut c| async move {
                c.audit_records(AuditPageRequest {
                    from: from_seq,
                    limit,
                    forwarded: false,
                })
                .await
            })
            .await?;
        decode_items(&reply.items, "audit record")
    }

    /// Up to `limit` (at most 1000) signed audit digests from `from_digest_seq` on, in order.
    /// Linearizable, like [`StoreClient::audit_records`].
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit_digests(
        &self,
        from_digest_seq: u64,
        limit: u32,
    ) -> Result<Vec<DigestRecord>, StoreError> {
        let reply = self
            .retrying(|mut c| async move {
                c.audit_digests(AuditPageRequest {
                    from: from_digest_seq,
                    limit,
                    forwarded: false,
                })
                .await
            })
            .await?;
        decode_items(&reply.items, "audit digest")
    }

    /// The chain head (next seq and hash of the last record) and the newest digest, if any.
    /// Linearizable.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn audit_head(&self) -> Result<(ChainHead, Option<DigestRecord>), StoreError> {
        let reply = self
            .retrying(
                |mut c| async move { c.audit_head(AuditHeadRequest { forwarded: false }).await },
            )
            .await?;
        let head = serde_json::from_slice(&reply.head)
            .map_err(|e| StoreError::Internal(format!("malformed audit head: {e}")))?;
        let digest = if reply.last_digest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(&reply.last_digest)
                    .map_err(|e| StoreError::Internal(format!("malformed audit digest: {e}")))?,
            )
        };
        Ok((head, digest))
    }

    /// Subscribes to change notifications. The first call starts a background task (so it must
    /// be called within a Tokio runtime) that keeps one watch stream open to some node,
    /// reconnecting (and sending `Resync`) as needed; it ends when every clone of this client is
    /// dropped. A receiver that lags (`RecvError::Lagged`) must treat it as `Resync`.
    pub fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        let rx = self.inner.watch_tx.subscribe();
        if !self.inner.watch_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(watch_loop(Arc::downgrade(&self.inner)));
        }
        rx
    }

    /// Asks every endpoint for its status (no retries), in endpoint order. All at once, so
    /// that silent nodes cost one RPC limit (5 s; the status includes a hash of the whole
    /// state, which takes a while on a large one), not one each.
    pub async fn node_status(&self) -> Vec<(String, Result<NodeStatus, StoreError>)> {
        let asks = self.inner.clients.iter().map(|c| {
            let mut c = c.clone();
            async move {
                match tokio::time::timeout(RPC_TIMEOUT, c.status(StatusRequest {})).await {
                    Ok(Ok(r)) => {
                        let r = r.into_inner();
                        Ok(NodeStatus {
                            node_id: r.node_id,
                            leader_id: r.leader_id,
                            term: r.term,
                            last_applied: r.last_applied,
                            state: r.state,
                            last_purged: r.last_purged,
                            state_hash: r.state_hash,
                            state_applied: r.state_applied,
                            last_snapshot: r.last_snapshot,
                        })
                    }
                    Ok(Err(s)) => Err(StoreError::Unavailable(format!(
                        "{}: {}",
                        s.code(),
                        s.message()
                    ))),
                    Err(_) => Err(StoreError::Unavailable("timed out".into())),
                }
            }
        });
        let answers = futures::future::join_all(asks).await;
        self.inner.endpoints.iter().cloned().zip(answers).collect()
    }

    /// Runs `call` against the nodes, starting at the preferred one, until one answers or the
    /// retry budget is spent.
    ///
    /// Failover is what bounds a leader change for callers: a node that is down refuses at
    /// once and a follower without a leader says so at once, so the next node is tried
    /// immediately, and a round that found no leader is repeated within [`MAX_BACKOFF`], or
    /// as soon as another call got through; a silent node costs one
    /// [`FIRST_ATTEMPT_TIMEOUT`]. A node that failed stops being the preferred one, so
    /// concurrent and later calls do not queue up behind it.
    async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(StoreServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let n = self.inner.clients.len();
        let deadline = tokio::time::Instant::now() + self.inner.retry_budget;
        let mut backoff = FIRST_BACKOFF;
        let mut limit = FIRST_ATTEMPT_TIMEOUT;
        let mut last_err;
        loop {
            let start = self.inner.preferred.load(Ordering::Relaxed);
            let mut timeouts = 0;
            for k in 0..n {
                let i = (start + k) % n;
                let attempt =
                    match tokio::time::timeout(limit, call(self.inner.clients[i].clone())).await {
                        Ok(r) => classify(r)?,
                        Err(_) => {
                            timeouts += 1;
                            Attempt::Retry(format!("timed out after {} ms", limit.as_millis()))
                        }
                    };
                match attempt {
                    Attempt::Done(v) => {
                        self.inner.preferred.store(i, Ordering::Relaxed);
                        self.inner.succeeded.notify_waiters();
                        return Ok(v);
                    }
                    Attempt::Retry(e) => {
                        tracing::debug!(endpoint = %self.inner.endpoints[i], error = %e, "store call failed, trying next");
                        last_err = format!("{}: {e}", self.inner.endpoints[i]);
                        // Unless another call already moved on, move on from this node.
                        let _ = self.inner.preferred.compare_exchange(
                            i,
                            (i + 1) % n,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(StoreError::Unavailable(last_err));
                }
            }
            if timeouts == n {
                limit = (limit * 2).min(RPC_TIMEOUT);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.inner.succeeded.notified() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn decode_items<T: serde::de::DeserializeOwned>(
    items: &[Vec<u8>],
    what: &str,
) -> Result<Vec<T>, StoreError> {
    items
        .iter()
        .map(|b| {
            serde_json::from_slice(b)
                .map_err(|e| StoreError::Internal(format!("malformed {what}: {e}")))
        })
        .collect()
}

async fn watch_loop(inner: Weak<Inner>) {
    let mut next = 0usize;
    loop {
        let Some(this) = inner.upgrade() else { return };
        let n = this.clients.len();
        let i = next % n;
        next = next.wrapping_add(1);
        let mut client = this.clients[i].clone();
        let tx = this.watch_tx.clone();
        drop(this);

        let stream = tokio::time::timeout(RPC_TIMEOUT, client.watch(WatchRequest {})).await;
        let mut stream = match stream {
            Ok(Ok(s)) => s.into_inner(),
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // Anything may have changed while we were not connected.
        let _ = tx.send(WatchEvent::Resync);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = stream.message() => match msg {
                    Ok(Some(pb::WatchEvent { event: Some(pb::watch_event::Event::Change(b)) })) => {
                        match serde_json::from_slice::<Change>(&b) {
                            Ok(c) => { let _ = tx.send(WatchEvent::Changed(c)); }
                            Err(_) => { let _ = tx.send(WatchEvent::Resync); }
                        }
                    }
                    Ok(Some(_)) => { let _ = tx.send(WatchEvent::Resync); }
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {
                    if inner.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_retried_but_an_internal_error_a_node_sent_is_not() {
        // What tonic returns when the node's connection is reset under a call.
        let mut broken = tonic::Status::internal("h2 protocol error: http2 error");
        broken.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(is_retryable(&broken));
        // The same code sent by a node (no local source): a real failure, not retried.
        assert!(!is_retryable(&tonic::Status::internal(
            "state lock poisoned"
        )));
        assert!(is_retryable(&tonic::Status::unavailable(
            "no leader elected yet"
        )));
        assert!(!is_retryable(&tonic::Status::invalid_argument(
            "bad command"
        )));
    }
}
