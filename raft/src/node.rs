//! [`run_storage_node`]: one storage node — storage, Raft, the gRPC server, cluster
//! initialization, the leader's scheduler and (with an audit key, [`AuditSettings`]) the
//! leader's signed audit digests — until `shutdown` resolves.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keystore::audit::{sign_digest, AuditSigningKey, DigestBody};
use keystore::command::{Command, Query, QueryOutput};
use keystore::error::DomainError;
use openraft::errors::{InitializeError, RaftError as OpenRaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tonic::service::interceptor::InterceptedService;
use tracing::Instrument;

use crate::network::NetworkFactory;
use crate::pb::raft_service_server::RaftServiceServer;
use crate::pb::store_service_server::StoreServiceServer;
use crate::server::{RaftSvc, StoreCtx, StoreSvc};
use crate::store::Backend;
use crate::tls::{RequireRole, Tls, TlsFiles, MAX_MESSAGE, ROLE_STORAGE};
use crate::types::Raft;
use crate::RaftError;

/// A storage node's parameters.
#[derive(Clone, Debug)]
pub struct StorageNodeConfig {
    /// This node's Raft id (stable across restarts).
    pub node_id: u64,
    /// Where the gRPC server (Raft + store services) listens.
    pub listen: SocketAddr,
    /// `host:port` peers and fronts use to reach this node (`host` must match its certificate).
    pub advertise: String,
    /// Directory of the log and state machine.
    pub data_dir: PathBuf,
    /// Storage backend (redb by default).
    pub backend: Backend,
    /// mTLS identity; the CA authenticates peers and fronts.
    pub tls: TlsFiles,
    /// All members of a new cluster (`id -> host:port`), including this node. The node with the
    /// lowest id initializes the cluster with them if it has never been initialized.
    pub peers: BTreeMap<u64, String>,
    /// The clock the leader stamps proposals with ([`crate::clock::Clock::System`] outside tests).
    pub clock: crate::clock::Clock,
    /// How often the node snapshots and how much log it keeps behind a snapshot.
    pub log_retention: LogRetention,
}

/// When a node snapshots its state machine and which log entries it keeps after that.
///
/// The state machine is persistent (a restart does not replay the log), so snapshots exist
/// for followers too far behind the kept log, and to let the log be purged. Both numbers
/// trade disk for work:
/// - `snapshot_every` (default 10,000 entries): each snapshot serializes the whole live state
///   and the exactly-once request table on every node (59 MB, ~0.6 s of CPU in a 10-minute
///   chaos run's region); every 1,000 entries that was a fifth of a 2-core machine. A state
///   with more entities than that snapshots only after as many entries as it has entities
///   (see `snapshot_trigger`), so a snapshot's cost per entry stays the same at any size.
/// - `kept_after_snapshot` (default 50,000 entries, about three minutes of a busy region's
///   writes): a follower that missed fewer (a restart, a pause, a partition) catches up by
///   appends. With only 100 kept, a follower that fell behind during one snapshot install
///   was behind the next purge again: a 10-minute chaos run saw a node loop on installs for
///   its whole last minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRetention {
    /// Log entries since the last snapshot that trigger the next one (at least; more for a
    /// state with more entities).
    pub snapshot_every: u64,
    /// Log entries kept behind each snapshot.
    pub kept_after_snapshot: u64,
}

impl Default for LogRetention {
    fn default() -> Self {
        LogRetention {
            snapshot_every: 10_000,
            kept_after_snapshot: 50_000,
        }
    }
}

/// The audit settings of a storage node (kept apart from [`StorageNodeConfig`] so that callers
/// that do not sign digests need not know about them).
#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// The region's audit signing key. Without it the node never writes digests (records are
    /// still stored and served).
    pub signing_key: Option<AuditKey>,
    /// Region named in digests (`us-east-1` unless configured).
    pub region: String,
    /// How often the leader signs a digest when the chain head has moved (default 60 s).
    pub digest_interval: Duration,
    /// Audit retention: when set, the leader's digest task prunes records older than this
    /// that were exported and are covered by a signed digest. `None` (default): keep forever.
    pub retention: Option<Duration>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            signing_key: None,
            region: DEFAULT_REGION.to_owned(),
            digest_interval: DEFAULT_DIGEST_INTERVAL,
            retention: None,
        }
    }
}

/// Region of a storage node that is not told one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default [`AuditSettings::digest_interval`].
pub const DEFAULT_DIGEST_INTERVAL: Duration = Duration::from_secs(60);
/// How long a clean shutdown waits for its final digest to commit.
const SHUTDOWN_DIGEST_WAIT: Duration = Duration::from_secs(2);

/// The audit signing key, shareable; `Debug` prints only its (public) key id.
#[derive(Clone)]
pub struct AuditKey(Arc<AuditSigningKey>);

impl AuditKey {
    /// Wraps a key read from its file.
    pub fn new(key: AuditSigningKey) -> Self {
        AuditKey(Arc::new(key))
    }

    /// The key id digests name (public).
    pub fn key_id(&self) -> String {
        self.0.key_id()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.key_id())
    }
}

/// Raft timing. What a leader's death costs writers is mostly here: openraft's followers
/// honour the dead leader's lease (`election_timeout_max`) and then wait their own random
/// election timeout, so an election starts lease + 200-300 ms = 500-600 ms after the last
/// heartbeat. (150 ms heartbeats with 600-1200 ms timeouts started it 1.8-2.4 s late: jepsen-lite
/// measured leader kill to first write at p50 2.1-2.8 s against a 1 s target.)
///
/// openraft also takes the RPC time limits from these timers; `network::MIN_RPC_TTL` keeps
/// those from dropping below 1 s, so that a loaded machine's slow fsync is not a failure.
///
/// Pre-vote keeps the short timeouts from costing availability: a node that missed heartbeats
/// while stalled (a loaded machine, a SIGSTOP, a restart) first asks whether it could win and,
/// while the leader still holds a quorum, does not raise the term and depose it.
fn raft_config(retention: LogRetention) -> Result<Config, RaftError> {
    Config {
        cluster_name: "keyraft".into(),
        heartbeat_interval: 100,
        election_timeout_min: 200,
        election_timeout_max: 300,
        enable_pre_vote: Some(true),
        // Reconnect to a restarted peer quickly (openraft's default starts at 200 ms).
        backoff: "50ms 100ms 200ms ...500ms".into(),
        // `snapshot_trigger` decides, from the log and the state's size.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: retention.kept_after_snapshot,
        ..Default::default()
    }
    .validate()
    .map_err(|e| RaftError::Config(e.to_string()))
}

/// Runs a storage node on `cfg.listen` until `shutdown` resolves (default [`AuditSettings`]:
/// no digests).
pub async fn run_storage_node(
    cfg: StorageNodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RaftError> {
    run_storage_node_with_audit(cfg, AuditSettings::default(), shutdown).await
}

/// [`run_storage_node`] with audit settings (the signing key the leader signs digests with).
pub async fn run_storage_node_with_audit(
    cfg: StorageNodeConfig,
    audit: AuditSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RaftError> {
    let listener = TcpListener::bind(cfg.listen).await?;
    run_storage_node_with_listener_and_audit(cfg, audit, listener, shutdown).await
}

/// [`run_storage_node`] on an already bound listener (tests bind port 0 first, so that every
/// node's address is known before any starts). `cfg.listen` is ignored.
pub async fn run_storage_node_with_listener(
    cfg: StorageNodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RaftError> {
    run_storage_node_with_listener_and_audit(cfg, AuditSettings::default(), listener, shutdown)
        .await
}

/// [`run_storage_node_with_listener`] with audit settings.
pub async fn run_storage_node_with_listener_and_audit(
    cfg: StorageNodeConfig,
    audit: AuditSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RaftError> {
    let span = tracing::info_span!("storage_node", node_id = cfg.node_id, region = %audit.region);
    run(cfg, audit, listener, shutdown).instrument(span).await
}

async fn run(
    cfg: StorageNodeConfig,
    audit: AuditSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RaftError> {
    if audit.digest_interval.is_zero() {
        return Err(RaftError::Config(
            "the audit digest interval must be positive".into(),
        ));
    }
    let mut tls = Tls::load(&cfg.tls)?;
    if let Ok(addr) = listener.local_addr() {
        tls = tls.with_local_ip(addr.ip());
    }
    // Peers refuse Raft RPCs (and forwarded store calls) from a certificate without the storage
    // role: say so now rather than run a member nobody will talk to.
    if !tls.has_role(ROLE_STORAGE) {
        return Err(RaftError::Tls(format!(
            "{}: a storage node's certificate needs the URI SAN {ROLE_STORAGE}",
            cfg.tls.cert.display()
        )));
    }
    // Fail on bad TLS material before anything is opened or spawned.
    let mut builder = tonic::transport::Server::builder().tls_config(tls.server_config())?;
    let (events, _) = broadcast::channel(4096);
    let ((kv, db_closed), (log, sm)) = {
        let (dir, backend, events) = (cfg.data_dir.clone(), cfg.backend, events.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            // Timed apart: after a crash redb first repairs the file (it walks all of it),
            // then the state machine reads every entity back.
            let started = std::time::Instant::now();
            let (kv, closed) = backend.open_kv_with_close_signal(&dir)?;
            let opened = started.elapsed();
            let (log, sm) = crate::store::open_store_on(kv.clone(), &dir, events)?;
            let entities = sm.state().read().map(|s| s.entity_count()).unwrap_or(0);
            tracing::info!(
                open_ms = opened.as_millis() as u64,
                load_ms = (started.elapsed() - opened).as_millis() as u64,
                entities,
                "storage opened"
            );
            Ok(((kv, closed), (log, sm)))
        })
        .await
        .map_err(|e| RaftError::Raft(e.to_string()))??
    };
    let state = sm.state();
    let network = NetworkFactory::new(tls.clone());
    let raft: Raft = openraft::Raft::new(
        cfg.node_id,
        Arc::new(raft_config(cfg.log_retention)?),
        network.clone(),
        log,
        sm,
    )
    .await
    .map_err(|e| RaftError::Raft(e.to_string()))?;
    tracing::info!(addr = %cfg.advertise, backend = %cfg.backend, "storage node starting");

    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(StoreCtx {
        raft: raft.clone(),
        state,
        kv,
        events,
        network,
        stopping: stop_rx.clone(),
        clock: cfg.clock.clone(),
    });

    // Every call is checked for the caller's role before any handler runs (tls::RequireRole).
    let raft_svc = InterceptedService::new(
        RaftServiceServer::new(RaftSvc {
            raft: raft.clone(),
            state: ctx.state.clone(),
            kv: ctx.kv.clone(),
            fresh_snapshot_for_join_after: cfg.log_retention.snapshot_every,
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE),
        RequireRole::RAFT,
    );
    let store_svc = InterceptedService::new(
        StoreServiceServer::new(StoreSvc { ctx: ctx.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
        RequireRole::STORE,
    );
    let mut server_stop = stop_rx.clone();
    let server = builder
        .add_service(raft_svc)
        .add_service(store_svc)
        .serve_with_incoming_shutdown(crate::tls::nodelay_incoming(listener), async move {
            let _ = server_stop.wait_for(|s| *s).await;
        });
    let mut server = tokio::spawn(server.in_current_span());

    let init =
        tokio::spawn(initialize(raft.clone(), cfg.node_id, cfg.peers.clone()).in_current_span());
    let scheduler = tokio::spawn(scheduler(ctx.clone()).in_current_span());
    let snapshots = tokio::spawn(
        snapshot_trigger(ctx.clone(), cfg.log_retention.snapshot_every).in_current_span(),
    );
    let digests = match &audit.signing_key {
        Some(key) => {
            tracing::info!(key_id = %key.key_id(), interval_ms = audit.digest_interval.as_millis() as u64, "audit digests enabled (signed while this node leads)");
            Some(tokio::spawn(
                digest_loop(ctx.clone(), key.clone(), audit.clone()).in_current_span(),
            ))
        }
        None => None,
    };

    // A server that dies on its own takes the node down with an error rather than leaving a
    // Raft member nobody can reach.
    let server_died = tokio::select! {
        _ = shutdown => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => RaftError::Raft("gRPC server stopped unexpectedly".into()),
            Ok(Err(e)) => RaftError::Transport(e),
            Err(e) => RaftError::Raft(format!("gRPC server task failed: {e}")),
        }),
    };
    tracing::info!("storage node stopping");
    init.abort();
    scheduler.abort();
    snapshots.abort();
    if let Some(task) = &digests {
        task.abort();
    }
    if let (Some(key), None) = (&audit.signing_key, &server_died) {
        // Seal what this leader holds, best effort: a quorum that is going away too must
        // not hold the shutdown.
        if ctx.raft.is_leader() {
            match tokio::time::timeout(SHUTDOWN_DIGEST_WAIT, propose_digest(&ctx, key, &audit))
                .await
            {
                Ok(()) => {}
                Err(_) => tracing::warn!("final audit digest not committed in time"),
            }
        }
    }
    let _ = stop_tx.send(true);
    if server_died.is_none() {
        // In-flight calls waiting on a quorum that is gone would hold a graceful stop forever.
        match tokio::time::timeout(Duration::from_secs(3), &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "gRPC server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server task failed"),
            Err(_) => {
                tracing::warn!("gRPC server did not stop in time");
                server.abort();
            }
        }
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    let _ = init.await;
    let _ = scheduler.await;
    let _ = snapshots.await;
    if let Some(task) = digests {
        let _ = task.await;
    }
    drop(ctx);
    drop(raft);
    // The database must be closed when this returns, so that a restart in the same process
    // (tests, dev mode) can open it again; openraft's workers let go shortly after shutdown.
    if tokio::time::timeout(Duration::from_secs(10), db_closed)
        .await
        .is_err()
    {
        tracing::warn!("storage still referenced 10 s after shutdown; database not closed");
    }
    match server_died {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The lowest-id peer initializes a never-initialized cluster with every peer as a voter.
/// On a restarted cluster `is_initialized` is true (the membership is in the log), so this is
/// a no-op; `NotAllowed` (a race with replication from a leader) is harmless too.
async fn initialize(raft: Raft, node_id: u64, peers: BTreeMap<u64, String>) {
    if peers.keys().next() != Some(&node_id) {
        return;
    }
    let members: BTreeMap<u64, BasicNode> = peers
        .iter()
        .map(|(id, a)| (*id, BasicNode::new(a)))
        .collect();
    let mut delay = Duration::from_millis(100);
    loop {
        match raft.is_initialized().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot check initialization");
                return;
            }
        }
        match raft.initialize(members.clone()).await {
            Ok(()) => {
                tracing::info!(members = peers.len(), "cluster initialized");
                return;
            }
            Err(OpenRaftError::APIError(InitializeError::NotAllowed(_))) => return,
            Err(e) => tracing::warn!(error = %e, "initializing cluster failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Leader-only: every second, rotate keys that are due (see [`rotate_due_keys`]), expire
/// imported material (see [`expire_imported_material`]) and delete
/// keys whose deletion date has passed. Decided from replicated state and applied as ordinary
/// (idempotent) commands, so a leader change cannot delete or rotate twice, or skip.
/// Builds a snapshot once `max(snapshot_every, entities at the last snapshot)` entries were
/// applied since the last one. A fixed interval made large states snapshot all the time: a
/// snapshot serializes every entity, so at a million keys (~1 KB each) one every 10,000
/// entries would write ~100 KB per entry applied, on every node. Scaling the interval with
/// the state keeps it at about one entity serialized per entry, at any size.
///
/// The entity count is the one the last snapshot saw, not today's: while a region grows by
/// about one entity per entry (a key-creation load), an interval of "entities now" kept
/// running ahead of the entries applied — a 1M-key fill snapshotted at ~10k, ~80k and ~551k,
/// and a node joining at 1M then needed 450k entries of appends after the snapshot. With the
/// count at the last snapshot the steps are at most about 2x.
///
/// Nodes stagger their snapshots (node N waits `(N-1) mod 4` eighths of an interval longer):
/// at the same interval all replicas built at once — at 550k keys, three 25–39 s builds and
/// three ~0.8 GB commits together, which cost the region an election and 190 failed calls.
async fn snapshot_trigger(ctx: Arc<StoreCtx>, snapshot_every: u64) {
    use openraft::async_runtime::WatchReceiver;
    let node_id = ctx.raft.metrics().borrow_watched().id;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The applied index the last trigger was sent at: openraft may still be building it.
    let mut triggered_at: Option<u64> = None;
    // Entities when the last snapshot was triggered; at start (a snapshot built by an earlier
    // run, or none) the count then.
    let mut entities_at_last: Option<u64> = None;
    loop {
        tick.tick().await;
        let (applied, snapshot) = {
            let m = ctx.raft.metrics().borrow_watched().clone();
            (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
        };
        let Some(applied) = applied else { continue };
        let entities = match ctx.state.read() {
            Ok(s) => s.entity_count() as u64,
            Err(_) => return,
        };
        let at_last = *entities_at_last.get_or_insert(entities);
        let covered = snapshot.into_iter().chain(triggered_at).max();
        if snapshot_due(applied, covered, at_last, snapshot_every, node_id) {
            tracing::debug!(applied, ?snapshot, entities, "triggering a snapshot");
            if ctx.raft.trigger().snapshot().await.is_err() {
                return;
            }
            triggered_at = Some(applied);
            entities_at_last = Some(entities);
        }
    }
}

/// Whether node `node_id` should snapshot at `applied` when its last snapshot (or trigger)
/// covered up to `covered` and the state held `entities_then` when it was taken.
fn snapshot_due(
    applied: u64,
    covered: Option<u64>,
    entities_then: u64,
    snapshot_every: u64,
    node_id: u64,
) -> bool {
    let base = snapshot_every.max(entities_then).max(1);
    let interval = base + base / 8 * (node_id.saturating_sub(1) % 4);
    let entries_since = (applied + 1).saturating_sub(covered.map_or(0, |i| i + 1));
    entries_since >= interval
}

/// The scheduler's pause between scans: a second, or longer when scanning every key takes
/// more than a hundredth of that (a million keys), so that its scans, which hold the state's
/// read lock, never take more than ~1% of the leader's time or of the apply path's.
fn scheduler_pause(scan: Duration) -> Duration {
    Duration::from_secs(1)
        .max(scan * 100)
        .min(Duration::from_secs(60))
}

async fn scheduler(ctx: Arc<StoreCtx>) {
    let mut pause = Duration::from_secs(1);
    loop {
        tokio::time::sleep(pause).await;
        if !ctx.raft.is_leader() {
            continue;
        }
        let now = ctx.clock.now_ms();
        let started = std::time::Instant::now();
        let due = {
            let Ok(state) = ctx.state.read() else { return };
            keystore::query::query(&state, &Query::DueForDeletion { now })
        };
        let scan = started.elapsed();
        rotate_due_keys(&ctx, now).await;
        expire_imported_material(&ctx, now).await;
        // Each of the three scans takes about as long.
        pause = scheduler_pause(scan * 3);
        let QueryOutput::KeyIds(ids) = due else {
            continue;
        };
        for key_id in ids {
            tracing::info!(%key_id, "deleting key at the end of its waiting period");
            match ctx.propose_local(Command::DeleteDueKey { key_id }).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => break, // no longer leader
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled deletion failed");
                    break;
                }
            }
        }
    }
}

/// Leader-only, on the scheduler's tick: delete imported key material whose `ValidTo` has
/// passed (the key goes back to PendingImport). Needs no domain key; `ExpireImportedMaterial`
/// is a no-op unless the material is still present and expired, so it happens once.
async fn expire_imported_material(ctx: &StoreCtx, now: u64) {
    let due = {
        let Ok(state) = ctx.state.read() else { return };
        keystore::import::due_expirations(&state, now)
    };
    for command in due {
        if let Command::ExpireImportedMaterial { key_id } = &command {
            tracing::info!(%key_id, "imported key material expired");
        }
        match ctx.propose_local(command).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return, // no longer leader
            Err(e) => {
                tracing::warn!(error = %e, "scheduled expiry of imported material failed");
                return;
            }
        }
    }
}

/// Leader-only, on the scheduler's tick: activate the prepared material of every key whose
/// automatic rotation date has come or whose on-demand rotation waits. The leader never makes
/// material (it has no domain key); each `RotateKey` names the version it activates and
/// `apply` ignores it unless that rotation is still due, so a rotation happens once even when
/// two leaders (or a retry) propose it.
async fn rotate_due_keys(ctx: &StoreCtx, now: u64) {
    let due = {
        let Ok(state) = ctx.state.read() else { return };
        keystore::rotation::due_rotations(&state, now)
    };
    for command in due {
        if let Command::RotateKey {
            key_id,
            to_version,
            rotation_type,
        } = &command
        {
            tracing::info!(%key_id, to_version, ?rotation_type, "rotating key material");
        }
        match ctx.propose_local(command).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return, // no longer leader
            Err(e) => {
                tracing::warn!(error = %e, "scheduled rotation failed");
                return;
            }
        }
    }
}

/// Leader-only: every `digest_interval`, sign a digest of the audit chain if its head moved
/// since the newest digest (or if there is none yet), and propose it. Idempotent across leader
/// changes: a digest must follow the newest one, so when two leaders race, the second is
/// refused (`Conflict`) and simply retried from the new state on the next tick.
async fn digest_loop(ctx: Arc<StoreCtx>, key: AuditKey, audit: AuditSettings) {
    let mut tick = tokio::time::interval(audit.digest_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if ctx.raft.is_leader() {
            propose_digest(&ctx, &key, &audit).await;
            if let Some(retention) = audit.retention {
                prune_expired(&ctx, retention).await;
            }
        }
    }
}

/// Leader-only, after each digest tick when a retention period is set: proposes
/// `PruneAudit` for the longest prefix after `pruned_through` that was exported, is covered by
/// a signed digest, and whose events are older than `retention` (at most
/// `keystore::apply::MAX_PRUNE_BATCH` records per tick). `apply` re-checks the export and
/// digest bounds, so a stale leader can never prune what was not exported.
async fn prune_expired(ctx: &StoreCtx, retention: Duration) {
    use keystore::apply::MAX_PRUNE_BATCH;
    use keystore::audit::{retention::prunable_through, AuditRecord};

    let (first, limit) = {
        let Ok(state) = ctx.state.read() else { return };
        let log = &state.audit;
        let signed = log.last_digest.as_ref().map_or(0, |d| d.to_seq);
        let limit = log
            .exported_through
            .min(signed)
            .min(log.pruned_through.saturating_add(MAX_PRUNE_BATCH));
        (log.pruned_through.saturating_add(1), limit)
    };
    if first > limit {
        return;
    }
    let cutoff = ctx
        .clock
        .now_ms()
        .saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    let kv = ctx.kv.clone();
    let scan = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut through = first - 1;
        while through < limit {
            let want = u32::try_from(limit - through)
                .unwrap_or(u32::MAX)
                .min(crate::store::MAX_AUDIT_PAGE);
            let page = crate::store::audit::read_page(
                kv.as_ref(),
                crate::store::Table::Audit,
                through + 1,
                want,
            )?;
            let records = page
                .iter()
                .map(|raw| crate::store::from_json::<AuditRecord>(raw))
                .collect::<std::io::Result<Vec<_>>>()?;
            let next = prunable_through(&records, through + 1, limit, cutoff);
            let done = next < through + u64::from(want);
            through = next;
            if done {
                break;
            }
        }
        Ok(through)
    })
    .await;
    let through = match scan {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return tracing::warn!(error = %e, "reading audit records to prune"),
        Err(e) => return tracing::warn!(error = %e, "audit prune scan task"),
    };
    if through < first {
        return;
    }
    match ctx
        .propose_local(Command::PruneAudit {
            through_seq: through,
        })
        .await
    {
        Ok(Ok(reply)) => match serde_json::from_slice::<crate::types::Response>(&reply) {
            Ok(Ok(_)) => tracing::info!(through_seq = through, "pruned exported audit records"),
            Ok(Err(e)) => tracing::debug!(error = %e, "audit prune refused; retrying next tick"),
            Err(e) => tracing::warn!(error = %e, "malformed apply result"),
        },
        Ok(Err(_)) => tracing::debug!("no longer leader; pruning left to the new leader"),
        Err(e) => tracing::warn!(error = %e, "audit prune proposal failed"),
    }
}

/// Signs and proposes the next digest if the chain head moved since the newest one (or there
/// is none yet). Failures are logged; the next tick retries.
async fn propose_digest(ctx: &StoreCtx, key: &AuditKey, audit: &AuditSettings) {
    let body = {
        let Ok(state) = ctx.state.read() else { return };
        let log = &state.audit;
        let moved = match &log.last_digest {
            None => true,
            Some(d) => d.to_seq != log.head.last_seq(),
        };
        if !moved {
            return;
        }
        DigestBody::next(
            log.last_digest.as_ref(),
            &audit.region,
            &log.head,
            ctx.clock.now_ms(),
        )
    };
    let digest = sign_digest(&key.0, body);
    let (digest_seq, to_seq) = (digest.digest_seq, digest.to_seq);
    match ctx.propose_local(Command::AppendDigest { digest }).await {
        Ok(Ok(reply)) => match serde_json::from_slice::<crate::types::Response>(&reply) {
            Ok(Ok(_)) => tracing::debug!(digest_seq, to_seq, "audit digest written"),
            Ok(Err(DomainError::Conflict(_))) => {
                tracing::debug!(
                    digest_seq,
                    "audit digest overtaken by another; retrying next tick"
                )
            }
            Ok(Err(e)) => tracing::warn!(digest_seq, error = %e, "audit digest refused"),
            Err(e) => tracing::warn!(error = %e, "malformed apply result"),
        },
        Ok(Err(_)) => tracing::debug!("no longer leader; audit digest left to the new leader"),
        Err(e) => tracing::warn!(error = %e, "audit digest proposal failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_scans_every_second_unless_a_scan_is_slow() {
        assert_eq!(
            scheduler_pause(Duration::from_micros(50)),
            Duration::from_secs(1)
        );
        assert_eq!(
            scheduler_pause(Duration::from_millis(30)),
            Duration::from_secs(3)
        );
        assert_eq!(
            scheduler_pause(Duration::from_secs(5)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_snapshot_interval_grows_with_the_state() {
        // A small state: every `snapshot_every` entries (index 0 is the first entry).
        assert!(!snapshot_due(998, None, 10, 1000, 1));
        assert!(snapshot_due(999, None, 10, 1000, 1));
        assert!(!snapshot_due(1999, Some(1000), 10, 1000, 1));
        assert!(snapshot_due(2000, Some(1000), 10, 1000, 1));
        // A million entities: a snapshot only every million entries.
        assert!(!snapshot_due(
            1_000_000 + 999_999,
            Some(1_000_000),
            1_000_000,
            10_000,
            1
        ));
        assert!(snapshot_due(
            2_000_000,
            Some(1_000_000),
            1_000_000,
            10_000,
            1
        ));
        // Nothing applied since the snapshot.
        assert!(!snapshot_due(5, Some(5), 0, 1, 1));
        assert!(snapshot_due(6, Some(5), 0, 1, 1));
    }

    /// A region filled with keys (about one entity per entry) snapshots in steps of at most
    /// ~2x, so a node that joins finds a snapshot no older than half the log: the interval
    /// used to be today's entity count, which grew as fast as the entries and ran ~7x ahead.
    #[test]
    fn a_growing_state_snapshots_at_least_every_doubling() {
        const EVERY: u64 = 10_000;
        // 1.16 entries per new entity, as the 1M-key fill measured (CreateKey + audit).
        let entities_at = |applied: u64| applied * 100 / 116;
        let mut snapshots = Vec::new();
        let (mut covered, mut then) = (None, 0);
        for applied in 0..2_000_000u64 {
            if snapshot_due(applied, covered, then, EVERY, 1) {
                snapshots.push(applied);
                covered = Some(applied);
                then = entities_at(applied);
            }
        }
        assert!(snapshots.len() >= 8, "{snapshots:?}");
        for pair in snapshots.windows(2) {
            assert!(pair[1] <= pair[0] * 2 + 2, "{snapshots:?}");
        }
        assert!(*snapshots.last().unwrap() >= 1_000_000, "{snapshots:?}");
    }

    /// Replicas do not build at the same entry: nodes 1–4 are an eighth of an interval apart.
    #[test]
    fn replicas_stagger_their_snapshots() {
        let first_due = |node| {
            (0..)
                .find(|&a| snapshot_due(a, Some(0), 0, 1000, node))
                .unwrap()
        };
        assert_eq!(
            [1, 2, 3, 4, 5].map(first_due),
            [1000, 1125, 1250, 1375, 1000]
        );
    }
}
