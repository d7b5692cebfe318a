//! In-process 3-node clusters on 127.0.0.1 with real mTLS certificates: writes and linearizable
//! reads through any node, leader failover, full restart on the same directories, watch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keystore::command::{Change, Command, CommandOutput, Query, QueryOutput};
use keystore::error::DomainError;
use keystore::model::{
    IdentityRecord, KeyRecord, KeySpec, KeyState, KeyUsage, MaterialVersion, Origin, Wrapped,
};
use raft::pb::raft_service_client::RaftServiceClient;
use raft::pb::store_service_client::StoreServiceClient;
use raft::pb::{
    AuditHeadRequest, AuditPageRequest, ProposeRequest, QueryRequest, RaftPayload, StatusRequest,
    WatchRequest,
};
use raft::tls::{ROLE_FRONT, ROLE_STORAGE};
use raft::{
    AuditKey, AuditSettings, Backend, StorageNodeConfig, StoreClient, StoreError, TlsFiles,
    WatchEvent,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

/// A CA and certificates issued by it, written as PEM files.
struct Pki {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "keyraft test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            issuer: Issuer::new(params, key),
            dir,
            ca,
        }
    }

    /// An internal certificate usable as both server and client, for localhost / 127.0.0.1,
    /// carrying `role` (if any) as a URI SAN, like `keyraft dev` issues them.
    fn issue_internal(&self, name: &str, role: Option<&str>) -> TlsFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        if let Some(role) = role {
            params
                .subject_alt_names
                .push(SanType::URI(role.try_into().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.write(name, params)
    }

    /// A storage node's certificate.
    fn storage(&self, name: &str) -> TlsFiles {
        self.issue_internal(name, Some(ROLE_STORAGE))
    }

    /// A front's certificate.
    fn front(&self) -> TlsFiles {
        self.issue_internal("front", Some(ROLE_FRONT))
    }

    /// A user's client certificate: the principal's ARN as URI SAN, clientAuth only.
    fn user(&self, name: &str, arn: &str) -> TlsFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, arn);
        params.subject_alt_names = vec![SanType::URI(arn.try_into().unwrap())];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.write(name, params)
    }

    fn write(&self, name: &str, params: CertificateParams) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        TlsFiles {
            ca: self.ca.clone(),
            cert: c,
            key: k,
        }
    }
}

struct Node {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), raft::RaftError>>,
}

impl Node {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("node stops in time")
            .unwrap()
            .unwrap();
    }
}

struct Cluster {
    pki: Pki,
    dirs: TempDir,
    backend: Backend,
    peers: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, Node>,
    audit: AuditSettings,
    log_retention: raft::LogRetention,
}

impl Cluster {
    async fn start(backend: Backend) -> Cluster {
        Self::start_with_audit(backend, AuditSettings::default()).await
    }

    /// A cluster whose nodes sign audit digests with `audit` (as leader).
    async fn start_with_audit(backend: Backend, audit: AuditSettings) -> Cluster {
        Self::start_with(backend, audit, raft::LogRetention::default()).await
    }

    /// [`Cluster::start_with_audit`] with its own snapshot interval and log retention.
    async fn start_with(
        backend: Backend,
        audit: AuditSettings,
        log_retention: raft::LogRetention,
    ) -> Cluster {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=3u64 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(id, l.local_addr().unwrap().to_string());
            listeners.insert(id, l);
        }
        let mut c = Cluster {
            pki: Pki::new(),
            dirs: TempDir::new().unwrap(),
            backend,
            peers,
            nodes: BTreeMap::new(),
            audit,
            log_retention,
        };
        for (id, l) in listeners {
            c.start_node(id, l);
        }
        c
    }

    fn data_dir(&self, id: u64) -> PathBuf {
        self.dirs.path().join(format!("node{id}"))
    }

    fn start_node(&mut self, id: u64, listener: TcpListener) {
        let addr = self.peers[&id].clone();
        let cfg = StorageNodeConfig {
            node_id: id,
            listen: addr.parse().unwrap(),
            advertise: addr,
            data_dir: self.data_dir(id),
            backend: self.backend,
            tls: self.pki.storage(&format!("node{id}")),
            peers: self.peers.clone(),
            clock: Default::default(),
            log_retention: self.log_retention,
        };
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(raft::run_storage_node_with_listener_and_audit(
            cfg,
            self.audit.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        self.nodes.insert(id, Node { stop, task });
    }

    /// Restarts a stopped node on its old address and directory.
    async fn restart_node(&mut self, id: u64) {
        let l = TcpListener::bind(self.peers[&id].as_str()).await.unwrap();
        self.start_node(id, l);
    }

    async fn client(&self, ids: &[u64]) -> StoreClient {
        let eps = ids.iter().map(|id| self.peers[id].clone()).collect();
        StoreClient::connect(eps, &self.pki.front()).await.unwrap()
    }

    /// Waits until some node reports itself leader and returns its id.
    async fn leader(&self, client: &StoreClient) -> u64 {
        for _ in 0..100 {
            for (_, st) in client.node_status().await {
                if let Ok(st) = st {
                    if st.state == "Leader" {
                        return st.node_id;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader elected");
    }

    async fn stop_all(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        for (_, n) in nodes {
            n.stop().await;
        }
    }
}

fn identity(name: &str) -> Command {
    Command::PutIdentity {
        identity: IdentityRecord {
            arn: format!("arn:aws:iam::111122223333:role/{name}"),
            account_id: "111122223333".into(),
            admin: false,
            ..Default::default()
        },
    }
}

async fn get_identity(client: &StoreClient, name: &str) -> Option<IdentityRecord> {
    match client
        .query(Query::GetIdentity {
            arn: format!("arn:aws:iam::111122223333:role/{name}"),
        })
        .await
        .unwrap()
    {
        QueryOutput::Identity(i) => i,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_forwards_writes_and_reads_watch_reports_changes_and_due_keys_get_deleted() {
    let mut cluster = Cluster::start(Backend::Redb).await;
    let all = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&all).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let via_follower = cluster.client(&[follower]).await;

    let mut watch = via_follower.watch();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        WatchEvent::Resync,
        "a new watch stream starts with a resync"
    );

    let out = via_follower.propose(identity("Forwarded")).await.unwrap();
    assert_eq!(out, CommandOutput::Done);
    assert!(
        get_identity(&via_follower, "Forwarded").await.is_some(),
        "read through a follower sees the write"
    );

    let ev = tokio::time::timeout(Duration::from_secs(10), watch.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev,
        WatchEvent::Changed(Change::Identity(
            "arn:aws:iam::111122223333:role/Forwarded".into()
        ))
    );

    let refused = via_follower
        .propose(Command::DeleteAlias {
            account_id: "111122223333".into(),
            alias_name: "alias/none".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Domain(DomainError::NotFound(_)))),
        "got {refused:?}"
    );

    // mTLS: a client whose certificate another CA issued is refused.
    let stranger = Pki::new();
    let eps = vec![cluster.peers[&leader].clone()];
    // It trusts the cluster's CA, so only the server's client-certificate check can refuse it.
    let mut files = stranger.front();
    files.ca = cluster.pki.ca.clone();
    let foreign = StoreClient::connect(eps, &files).await.unwrap();
    let (_, st) = foreign.node_status().await.pop().unwrap();
    assert!(st.is_err(), "a certificate from another CA is rejected");

    // The leader's scheduler deletes a key whose deletion date has passed.
    let key_id = "1234abcd-12ab-34cd-56ef-1234567890ab".to_string();
    all.propose(Command::CreateKey {
        record: pending_deletion_key(&key_id),
    })
    .await
    .unwrap();
    let mut deleted = false;
    for _ in 0..50 {
        match all
            .query(Query::GetKey {
                key_id: key_id.clone(),
            })
            .await
            .unwrap()
        {
            QueryOutput::Key(None) => {
                deleted = true;
                break;
            }
            QueryOutput::Key(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(deleted, "the scheduler deletes keys that are due");
    // ... and the deletion is on the audit chain as AWS's service event.
    let records = all.audit_records(1, 100).await.unwrap();
    let events: Vec<keystore::audit::AuditEvent> = records
        .iter()
        .map(|r| keystore::audit::AuditEvent::from_json(&r.event).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_name, "DeleteKey");
    assert_eq!(
        events[0].event_type,
        keystore::audit::EventType::AwsServiceEvent
    );
    assert!(events[0].resources[0].arn.ends_with(&key_id));

    cluster.stop_all().await;
}

/// A raw gRPC channel to `addr` presenting the certificate in `files`.
async fn raw_channel(addr: &str, files: &TlsFiles) -> Channel {
    let read = |p: &PathBuf| std::fs::read(p).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&files.ca)))
        .identity(Identity::from_pem(read(&files.cert), read(&files.key)))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Asserts `r` is admitted (`Ok`) or refused with `PERMISSION_DENIED` naming `role`.
fn assert_admitted<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, Status>,
    admitted: bool,
    role: &str,
) {
    match r {
        Ok(_) if admitted => {}
        Err(s) if !admitted && s.code() == Code::PermissionDenied => {
            assert!(s.message().contains(role), "{what}: {}", s.message())
        }
        other => panic!("{what}: expected admitted={admitted}, got {other:?}"),
    }
}

/// A certificate that chains to the CA is not enough: Raft RPCs need the storage role, the
/// store API the storage or front role. A user's client certificate (an ARN URI SAN, clientAuth)
/// and an internal certificate without a role are refused everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_nodes_admit_callers_by_certificate_role() {
    let mut cluster = Cluster::start(Backend::Redb).await;
    let all = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&all).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let pki = &cluster.pki;
    let callers = [
        // (name, certificate, store API admitted, Raft admitted)
        (
            "User",
            pki.user("admin", "arn:aws:iam::111122223333:role/Admin"),
            false,
            false,
        ),
        (
            "Roleless",
            pki.issue_internal("roleless", None),
            false,
            false,
        ),
        ("Front", pki.front(), true, false),
        ("Storage", pki.storage("node9"), true, true),
    ];
    for (name, files, store_ok, raft_ok) in &callers {
        // A follower too: refusals happen before anything would be forwarded to the leader.
        for id in [leader, follower] {
            let ch = raw_channel(&cluster.peers[&id], files).await;
            let mut store = StoreServiceClient::new(ch.clone());
            let any = "urn:keyraft:role:storage or urn:keyraft:role:front";
            let what = |rpc: &str| format!("{name} -> node {id} {rpc}");
            let propose = store
                .propose(ProposeRequest {
                    command: serde_json::to_vec(&identity(name)).unwrap(),
                    forwarded: false,
                    request_id: Vec::new(),
                })
                .await;
            assert_admitted(&what("Propose"), propose, *store_ok, any);
            let query = store
                .query(QueryRequest {
                    query: serde_json::to_vec(&Query::GetIdentity {
                        arn: "arn:aws:iam::111122223333:role/Front".into(),
                    })
                    .unwrap(),
                    forwarded: false,
                })
                .await;
            assert_admitted(&what("Query"), query, *store_ok, any);
            let status = store.status(StatusRequest {}).await;
            assert_admitted(&what("Status"), status, *store_ok, any);
            let watch = store.watch(WatchRequest {}).await;
            assert_admitted(&what("Watch"), watch, *store_ok, any);
            let page = || AuditPageRequest {
                from: 1,
                limit: 10,
                forwarded: false,
            };
            let records = store.audit_records(page()).await;
            assert_admitted(&what("AuditRecords"), records, *store_ok, any);
            let digests = store.audit_digests(page()).await;
            assert_admitted(&what("AuditDigests"), digests, *store_ok, any);
            let head = store
                .audit_head(AuditHeadRequest { forwarded: false })
                .await;
            assert_admitted(&what("AuditHead"), head, *store_ok, any);

            // Garbage payloads: an admitted caller gets INVALID_ARGUMENT from decoding, a
            // refused one PERMISSION_DENIED before anything is decoded.
            let mut raft = RaftServiceClient::new(ch);
            let junk = || RaftPayload {
                data: b"{}".to_vec(),
                snapshot: b"{}".to_vec(),
            };
            let results = [
                ("AppendEntries", raft.append_entries(junk()).await),
                ("Vote", raft.vote(junk()).await),
                ("PreVote", raft.pre_vote(junk()).await),
                ("InstallSnapshot", raft.install_snapshot(junk()).await),
            ];
            for (rpc, r) in results {
                match r {
                    Err(s) if *raft_ok => {
                        assert_eq!(s.code(), Code::InvalidArgument, "{}", what(rpc))
                    }
                    r => assert_admitted(&what(rpc), r, false, ROLE_STORAGE),
                }
            }
        }
    }
    // Only the admitted callers' writes took effect.
    assert!(get_identity(&all, "User").await.is_none());
    assert!(get_identity(&all, "Roleless").await.is_none());
    assert!(get_identity(&all, "Front").await.is_some());
    assert!(get_identity(&all, "Storage").await.is_some());

    // Through the StoreClient a refusal is final, not retried as "unavailable".
    let user = StoreClient::connect(vec![cluster.peers[&leader].clone()], &callers[0].1)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let res = user.propose(identity("User")).await;
    assert!(
        matches!(&res, Err(StoreError::Internal(m)) if m.contains("PermissionDenied") || m.contains("permission")),
        "got {res:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    cluster.stop_all().await;
}

#[tokio::test]
async fn node_without_the_storage_role_refuses_to_start() {
    let pki = Pki::new();
    let dir = TempDir::new().unwrap();
    for (files, what) in [
        (pki.front(), "front"),
        (pki.issue_internal("roleless", None), "role-less"),
        (
            pki.user("user", "arn:aws:iam::111122223333:role/Admin"),
            "user",
        ),
    ] {
        let cfg = StorageNodeConfig {
            node_id: 1,
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: "127.0.0.1:1".into(),
            data_dir: dir.path().join("data"),
            backend: Backend::Redb,
            tls: files,
            peers: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
            clock: Default::default(),
            log_retention: Default::default(),
        };
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            raft::run_storage_node(cfg, std::future::pending()),
        )
        .await;
        match res {
            Ok(Err(e)) => assert!(e.to_string().contains(ROLE_STORAGE), "{what}: {e}"),
            other => panic!("{what}: a node must refuse to start, got {other:?}"),
        }
    }
}

/// A key already past its deletion date (epoch + 1 ms).
fn pending_deletion_key(key_id: &str) -> KeyRecord {
    KeyRecord {
        key_id: key_id.into(),
        arn: format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}"),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        description: String::new(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state: KeyState::PendingDeletion,
        creation_date: 0,
        deletion_date: Some(1),
        pending_deletion_window_days: Some(7),
        tags: Default::default(),
        policy: "{}".into(),
        multi_region: false,
        materials: vec![MaterialVersion {
            version: 1,
            wrapped: Wrapped {
                domain_key_version: 1,
                nonce: [0; 12],
                ciphertext: vec![0; 48],
            },
            created_at: 0,
        }],
        current_material_version: 1,
        rotation: Default::default(),
        import: Default::default(),
        multi_region_config: None,
    }
}

async fn writes_continue_after_leader_loss_and_data_survives_full_restart(backend: Backend) {
    let mut cluster = Cluster::start(backend).await;
    let client = cluster.client(&[1, 2, 3]).await;
    client.propose(identity("BeforeFailover")).await.unwrap();

    let old_leader = cluster.leader(&client).await;
    cluster.nodes.remove(&old_leader).unwrap().stop().await;

    client.propose(identity("AfterFailover")).await.unwrap();
    assert!(get_identity(&client, "BeforeFailover").await.is_some());
    assert!(get_identity(&client, "AfterFailover").await.is_some());

    cluster.stop_all().await;
    for id in 1..=3 {
        cluster.restart_node(id).await;
    }
    assert!(
        get_identity(&client, "BeforeFailover").await.is_some(),
        "data survives restart"
    );
    assert!(
        get_identity(&client, "AfterFailover").await.is_some(),
        "data survives restart"
    );
    client.propose(identity("AfterRestart")).await.unwrap();
    assert!(get_identity(&client, "AfterRestart").await.is_some());
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_cluster_writes_continue_after_leader_loss_and_data_survives_full_restart() {
    writes_continue_after_leader_loss_and_data_survives_full_restart(Backend::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_cluster_writes_continue_after_leader_loss_and_data_survives_full_restart() {
    writes_continue_after_leader_loss_and_data_survives_full_restart(Backend::Sled).await;
}

/// Snapshots every 1,000 entries with only 100 kept behind: a node that missed 1,100 can only
/// catch up by installing the leader's snapshot (audit records and digests included).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_from_a_snapshot_after_logs_are_purged() {
    let retention = raft::LogRetention {
        snapshot_every: 1000,
        kept_after_snapshot: 100,
    };
    lagging_node_catches_up(retention, CatchUp::Snapshot).await;
}

/// Snapshots every 1,000 entries with the default log kept behind them: the same node catches
/// up by appends. Nobody purged what it missed, and it never installs a snapshot (installing
/// one purges its own log).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_by_appends_within_the_default_log_retention() {
    let retention = raft::LogRetention {
        snapshot_every: 1000,
        ..Default::default()
    };
    lagging_node_catches_up(retention, CatchUp::Appends).await;
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum CatchUp {
    Snapshot,
    Appends,
}

async fn lagging_node_catches_up(log_retention: raft::LogRetention, expected: CatchUp) {
    use futures::{StreamExt, TryStreamExt};

    let mut cluster = Cluster::start_with(
        Backend::Redb,
        audit_settings(Duration::from_millis(200)),
        log_retention,
    )
    .await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&client).await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    client.propose(audit_batch("Before", 3)).await.unwrap();
    digest_at_head(&client).await;
    applied_everywhere(&cluster).await;
    let leader_status = || async {
        client
            .node_status()
            .await
            .into_iter()
            .find_map(|(_, s)| s.ok().filter(|s| s.node_id == leader))
            .unwrap()
    };
    let stopped_at = leader_status().await.last_applied.unwrap();
    cluster.nodes.remove(&lagging).unwrap().stop().await;

    // More than one snapshot interval (1000 logs): the leader snapshots and purges the logs the
    // lagging node would need, so it can only catch up by installing the snapshot. Every tenth
    // entry is an audit batch, so the snapshot must carry audit records (and digests).
    let n = 1100;
    futures::stream::iter(0..n)
        .map(|i| {
            let command = if i % 10 == 0 {
                audit_batch(&format!("Bulk{i}"), 3)
            } else if expected == CatchUp::Snapshot {
                // Large enough that the snapshot (~6 MB) travels in several chunks.
                identity(&format!("Bulk{i}-{}", "x".repeat(6000)))
            } else {
                identity(&format!("Bulk{i}"))
            };
            client.propose(command)
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    digest_at_head(&client).await;
    match expected {
        CatchUp::Snapshot => {
            // Wait until the leader has purged what the lagging node would need from its log.
            let mut purged = false;
            for _ in 0..100 {
                if leader_status().await.last_purged > Some(stopped_at) {
                    purged = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(purged, "the leader snapshots and purges its log");
        }
        CatchUp::Appends => {
            // The leader has snapshotted (1,100 entries > one interval) but kept its log.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(leader_status().await.last_purged, None, "nothing purged");
        }
    }
    let target = leader_status().await.last_applied.unwrap();

    cluster.restart_node(lagging).await;
    let lagging_client = cluster.client(&[lagging]).await;
    let mut caught_up = false;
    for _ in 0..200 {
        if let Some((_, Ok(st))) = lagging_client.node_status().await.pop() {
            if st.last_applied >= Some(target) {
                caught_up = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "the restarted node catches up");
    let (_, lagging_status) = lagging_client.node_status().await.pop().unwrap();
    let lagging_purged = lagging_status.unwrap().last_purged;
    match expected {
        // Installing a snapshot purges the log up to it.
        CatchUp::Snapshot => assert!(lagging_purged > Some(stopped_at), "{lagging_purged:?}"),
        CatchUp::Appends => assert_eq!(lagging_purged, None, "caught up without a snapshot"),
    }
    applied_everywhere(&cluster).await;
    // The same state machine everywhere: equal hashes at the same applied index.
    let mut hashes = Vec::new();
    for id in 1..=3 {
        let (_, st) = cluster
            .client(&[id])
            .await
            .node_status()
            .await
            .pop()
            .unwrap();
        let st = st.unwrap();
        assert_eq!(st.state_applied, st.last_applied, "node {id}");
        hashes.push((st.state_applied, st.state_hash));
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "state hashes differ: {hashes:?}"
    );
    let records = all_records(&client).await;
    let digests = all_digests(&client).await;
    assert_eq!(records.len(), 3 + 3 * (n / 10));
    assert_verifies(&records, &digests);
    cluster.stop_all().await;
    // The caught-up node holds the same chain as the others, byte for byte.
    assert_identical_audit_tables(&cluster, &records, &digests);

    // What it caught up on is on its disk.
    let (tx, _) = tokio::sync::broadcast::channel(1);
    let (_, sm) = raft::store::open_store(Backend::Redb, &cluster.data_dir(lagging), tx).unwrap();
    let state = sm.state();
    let state = state.read().unwrap();
    assert_eq!(state.identities.len(), n - n / 10);
    assert_eq!(state.audit.head.last_seq(), records.len() as u64);
}

/// A storage node that lost its disk is replaced by a new node (a new id, an empty data
/// directory): it joins through the leader, catches up by snapshot (the log it needs was
/// purged), and becomes a voter in place of the lost one, so the region keeps its quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_joins_by_snapshot_and_replaces_a_lost_voter() {
    use futures::{StreamExt, TryStreamExt};

    let retention = raft::LogRetention {
        snapshot_every: 100,
        kept_after_snapshot: 20,
    };
    let mut cluster = Cluster::start_with(
        Backend::Redb,
        audit_settings(Duration::from_secs(3600)),
        retention,
    )
    .await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&client).await;
    let lost = (1..=3).find(|id| *id != leader).unwrap();
    let survivor = (1..=3).find(|id| *id != leader && *id != lost).unwrap();
    futures::stream::iter(0..300)
        .map(|i| client.propose(identity(&format!("Join{i}"))))
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    applied_everywhere(&cluster).await;
    let leader_client = cluster.client(&[leader]).await;
    let mut purged = false;
    for _ in 0..100 {
        if let Some((_, Ok(st))) = leader_client.node_status().await.pop() {
            if st.last_purged.is_some() {
                purged = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(purged, "the leader snapshots and purges its log");
    // More entries than a snapshot interval (100) past the leader's last snapshot: the join
    // waits for a fresh one instead of sending the old snapshot and this tail by appends.
    let mut applied_before_join = None;
    for round in 0..20 {
        futures::stream::iter(0..40)
            .map(|i| client.propose(identity(&format!("Tail{round}-{i}"))))
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        let st = leader_client.node_status().await.pop().unwrap().1.unwrap();
        let (applied, snapshot) = (st.last_applied.unwrap(), st.last_snapshot.unwrap());
        if applied - snapshot >= 100 {
            applied_before_join = Some(applied);
            break;
        }
    }
    let applied_before_join = applied_before_join.expect("a tail past the last snapshot");
    cluster.nodes.remove(&lost).unwrap().stop().await;

    // Node 4: a new address and directory, not in any membership yet.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    cluster.peers.insert(4, addr.clone());
    cluster.start_node(4, listener);
    let others: Vec<String> = [1, 2, 3]
        .iter()
        .map(|id| cluster.peers[id].clone())
        .collect();
    let storage_tls = cluster.pki.storage("joiner");
    // The store client certificate (front role) may not call Raft RPCs.
    assert!(raft::join_region(
        &cluster.pki.front(),
        &others,
        &raft::JoinRequest {
            node_id: 4,
            addr: addr.clone(),
            voter: true,
            replaces: Some(lost),
        },
        Duration::from_secs(2),
    )
    .await
    .is_err());
    // Replacing the leader itself is refused at once.
    let refused = raft::join_region(
        &storage_tls,
        &others,
        &raft::JoinRequest {
            node_id: 4,
            addr: addr.clone(),
            voter: true,
            replaces: Some(leader),
        },
        Duration::from_secs(20),
    )
    .await;
    assert!(
        matches!(refused, Err(raft::RaftError::Config(_))),
        "{refused:?}"
    );
    let reply = raft::join_region(
        &storage_tls,
        &others,
        &raft::JoinRequest {
            node_id: 4,
            addr,
            voter: true,
            replaces: Some(lost),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let mut want: Vec<u64> = vec![leader, survivor, 4];
    want.sort();
    assert_eq!(reply.voters, want);
    assert!(reply.learners.is_empty(), "{reply:?}");

    // The node's own metrics follow shortly after the leader saw it caught up.
    let new_client = cluster.client(&[4]).await;
    let mut st = None;
    for _ in 0..200 {
        if let Some((_, Ok(s))) = new_client.node_status().await.pop() {
            if s.last_purged.is_some() && s.state == "Follower" {
                st = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        st.is_some(),
        "it caught up by installing a snapshot and follows as a voter"
    );
    // The snapshot it installed was built for the join, not the one the leader had.
    let installed = st.unwrap().last_snapshot.unwrap();
    assert!(
        installed >= applied_before_join,
        "snapshot at {installed}, applied before the join {applied_before_join}"
    );
    // A voter now: with the survivor stopped too, the leader and node 4 are a quorum.
    cluster.nodes.remove(&survivor).unwrap().stop().await;
    client.propose(identity("AfterJoin")).await.unwrap();
    let new_only = cluster.client(&[4]).await;
    assert!(get_identity(&new_only, "AfterJoin").await.is_some());
    assert!(get_identity(&new_only, "Join299").await.is_some());
    cluster.stop_all().await;
}

/// `stateHash` and `stateApplied` are taken together: under a steady stream of writes every
/// status reply names the index its hash was taken at, and two replies (from any node) at the
/// same index carry the same hash. (Comparing Raft metrics before and after hashing, as the
/// status call once did, leaves most replies under load without an index, and can label a
/// hash with the index before the entry it includes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_reports_the_state_hash_at_its_applied_index_under_concurrent_writes() {
    use futures::StreamExt;
    use std::collections::HashMap;

    let mut cluster = Cluster::start(Backend::Redb).await;
    let client = cluster.client(&[1, 2, 3]).await;
    cluster.leader(&client).await;
    // A state worth hashing (a few hundred records), so hashes take a while.
    futures::stream::iter(0..300)
        .map(|i| client.propose(identity(&format!("Pre{i}"))))
        .buffer_unordered(32)
        .for_each(|r| async move {
            r.unwrap();
        })
        .await;

    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..600)
                .map(|i| client.propose(identity(&format!("Load{i}"))))
                .buffer_unordered(16)
                .for_each(|r| async move {
                    r.unwrap();
                })
                .await;
        })
    };
    let mut seen: HashMap<u64, String> = HashMap::new();
    let mut samples = 0;
    let mut without_index = 0;
    while !writer.is_finished() {
        for (_, st) in client.node_status().await {
            let st = st.unwrap();
            samples += 1;
            match st.state_applied {
                Some(index) => {
                    let first = seen.entry(index).or_insert_with(|| st.state_hash.clone());
                    assert_eq!(
                        *first, st.state_hash,
                        "two hashes reported at index {index}"
                    );
                }
                None => without_index += 1,
            }
        }
    }
    writer.await.unwrap();
    assert!(
        seen.len() >= 10,
        "the status was sampled while entries were applied ({} indexes)",
        seen.len()
    );
    assert_eq!(
        without_index, 0,
        "{without_index} of {samples} replies under load had no stateApplied"
    );
    cluster.stop_all().await;
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A load measurement, not a check: audit-heavy writes (each proposal a front's group commit
/// of four ~2.5 KiB events (`KEYRAFT_LOAD_EVENT_BYTES`), every tenth an identity) from 32 concurrent proposers for
/// `KEYRAFT_LOAD_SECS` (default 60) seconds against a 3-node redb cluster signing a digest
/// every 5 s. Prints, every 10 s: proposals/s in the interval, the process RSS (three nodes
/// in-process) and each node's redb file size. With `RUST_LOG=keyraft_raft::store=info` the
/// nodes log every "built snapshot" (and its span's duration).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load measurement, run by hand"]
async fn load_audit_heavy_writes_report_throughput_rss_and_file_sizes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
    let secs: u64 = std::env::var("KEYRAFT_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut cluster =
        Cluster::start_with_audit(Backend::Redb, audit_settings(Duration::from_secs(5))).await;
    let client = cluster.client(&[1, 2, 3]).await;
    cluster.leader(&client).await;
    let pad_bytes = std::env::var("KEYRAFT_LOAD_EVENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500);
    let pad = "e".repeat(pad_bytes);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..32u64 {
        let (client, done, stop, pad) = (client.clone(), done.clone(), stop.clone(), pad.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let command = if i % 10 == 9 {
                    identity(&format!("Load{w}x{i}"))
                } else {
                    Command::AppendAudit {
                        events: (0..4)
                            .map(|k| format!("{{\"w\":{w},\"i\":{i},\"k\":{k},\"pad\":\"{pad}\"}}"))
                            .collect(),
                        usage: None,
                    }
                };
                if client.propose(command).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let file = |id: u64| {
        std::fs::metadata(cluster.data_dir(id).join("keyraft.redb")).map_or(0, |m| m.len() >> 20)
    };
    let started = std::time::Instant::now();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = done.load(Ordering::Relaxed);
        println!(
            "LOAD t={:>4}s ok/s={:>6.1} total={} rss_mib={} redb_mib=[{}, {}, {}]",
            started.elapsed().as_secs(),
            (now - last) as f64 / 10.0,
            now,
            rss_mib(),
            file(1),
            file(2),
            file(3)
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    cluster.stop_all().await;
}

#[tokio::test]
async fn calls_fail_unavailable_when_no_node_answers_within_the_retry_budget() {
    let pki = Pki::new();
    // Bound then dropped: nothing listens there.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let client = StoreClient::connect(vec![addr], &pki.front())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let res = client.propose(identity("Nobody")).await;
    assert!(
        matches!(res, Err(StoreError::Unavailable(_))),
        "got {res:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gives up after the retry budget"
    );
}

#[tokio::test]
async fn node_with_unusable_tls_files_fails_to_start() {
    let dir = TempDir::new().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let cfg = StorageNodeConfig {
        node_id: 1,
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: "127.0.0.1:1".into(),
        data_dir: dir.path().join("data"),
        backend: Backend::Redb,
        tls: TlsFiles {
            ca: junk.clone(),
            cert: junk.clone(),
            key: junk,
        },
        peers: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
        clock: Default::default(),
        log_retention: Default::default(),
    };
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        raft::run_storage_node(cfg, std::future::pending()),
    )
    .await;
    assert!(matches!(res, Ok(Err(_))), "refuses to start: {res:?}");
}

// ---- the audit chain across a cluster ----

const AUDIT_SEED: [u8; 32] = [42u8; 32];

fn audit_settings(interval: Duration) -> AuditSettings {
    AuditSettings {
        signing_key: Some(AuditKey::new(keystore::audit::AuditSigningKey::from_bytes(
            &AUDIT_SEED,
        ))),
        region: "us-east-1".into(),
        digest_interval: interval,
        retention: None,
    }
}

fn audit_public_keys() -> Vec<keystore::audit::AuditPublicKey> {
    vec![keystore::audit::AuditSigningKey::from_bytes(&AUDIT_SEED).public_key(0, None)]
}

fn audit_batch(tag: &str, n: usize) -> Command {
    Command::AppendAudit {
        events: (0..n)
            .map(|i| format!("{{\"eventName\":\"{tag}\",\"i\":{i}}}"))
            .collect(),
        usage: None,
    }
}

/// Every record, read in small pages (so paging is exercised).
async fn all_records(client: &StoreClient) -> Vec<keystore::audit::AuditRecord> {
    let mut out: Vec<keystore::audit::AuditRecord> = Vec::new();
    loop {
        let page = client.audit_records(out.len() as u64 + 1, 7).await.unwrap();
        assert!(page.len() <= 7);
        let done = page.len() < 7;
        out.extend(page);
        if done {
            return out;
        }
    }
}

async fn all_digests(client: &StoreClient) -> Vec<keystore::audit::DigestRecord> {
    let mut out: Vec<keystore::audit::DigestRecord> = Vec::new();
    loop {
        let page = client.audit_digests(out.len() as u64 + 1, 2).await.unwrap();
        let done = page.len() < 2;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Waits until the newest digest covers the chain head (the leader's timer or shutdown wrote
/// it) and returns it.
async fn digest_at_head(client: &StoreClient) -> keystore::audit::DigestRecord {
    for _ in 0..100 {
        let (head, digest) = client.audit_head().await.unwrap();
        if let Some(d) = digest {
            if d.to_seq == head.last_seq() && d.head_hash == head.head_hash_hex() {
                return d;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no digest reached the chain head");
}

/// Waits until every running node has applied the same log index (twice in a row).
async fn applied_everywhere(cluster: &Cluster) {
    let mut clients = Vec::new();
    for id in cluster.nodes.keys() {
        clients.push(cluster.client(&[*id]).await);
    }
    let mut last = None;
    for _ in 0..100 {
        let mut applied = Vec::new();
        for c in &clients {
            if let Some((_, Ok(st))) = c.node_status().await.pop() {
                applied.push(st.last_applied);
            }
        }
        let same = applied.len() == clients.len() && applied.windows(2).all(|w| w[0] == w[1]);
        if same && last == applied.first().copied() {
            return;
        }
        last = if same { applied.first().copied() } else { None };
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("nodes did not converge");
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A stopped node's audit tables, as stored.
fn audit_tables(cluster: &Cluster, id: u64) -> (Rows, Rows) {
    use raft::store::Table;
    let kv = cluster.backend.open_kv(&cluster.data_dir(id)).unwrap();
    (
        kv.range(Table::Audit, &[], None).unwrap(),
        kv.range(Table::AuditDigests, &[], None).unwrap(),
    )
}

/// Every node holds the same audit tables, byte for byte, and they are what the API served.
fn assert_identical_audit_tables(
    cluster: &Cluster,
    records: &[keystore::audit::AuditRecord],
    digests: &[keystore::audit::DigestRecord],
) {
    let first = audit_tables(cluster, 1);
    for id in 2..=3 {
        let other = audit_tables(cluster, id);
        assert!(
            other.0 == first.0,
            "node {id}'s audit records differ from node 1's"
        );
        assert!(
            other.1 == first.1,
            "node {id}'s audit digests differ from node 1's"
        );
    }
    let served: Rows = records
        .iter()
        .map(|r| (r.seq.to_be_bytes().to_vec(), serde_json::to_vec(r).unwrap()))
        .collect();
    assert!(served == first.0, "the API serves the stored records");
    assert_eq!(first.1.len(), digests.len());
}

fn assert_verifies(
    records: &[keystore::audit::AuditRecord],
    digests: &[keystore::audit::DigestRecord],
) {
    let report = keystore::audit::verify(records, digests, &audit_public_keys(), None);
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_is_identical_everywhere_digests_continue_across_leader_change_and_survive_restart(
) {
    let mut cluster =
        Cluster::start_with_audit(Backend::Redb, audit_settings(Duration::from_millis(300))).await;
    let all = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&all).await;

    // Group commits through every node (followers forward), concurrently.
    let mut via = Vec::new();
    for id in 1..=3 {
        via.push(cluster.client(&[id]).await);
    }
    let outs = futures::future::join_all(
        (0..6).map(|i| via[i % 3].propose(audit_batch(&format!("Batch{i}"), 5))),
    )
    .await;
    let mut ranges: Vec<(u64, u64)> = outs
        .into_iter()
        .map(|o| match o.unwrap() {
            CommandOutput::AuditAppended {
                first_seq,
                last_seq,
            } => (first_seq, last_seq),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    ranges.sort();
    let expected: Vec<(u64, u64)> = (0..6).map(|i| (i * 5 + 1, i * 5 + 5)).collect();
    assert_eq!(ranges, expected, "each batch gets its own consecutive seqs");
    let d1 = digest_at_head(&all).await;
    assert_eq!(d1.to_seq, 30);

    // The leader goes; the new leader's timer seals what is appended next.
    cluster.nodes.remove(&leader).unwrap().stop().await;
    for i in 6..9 {
        all.propose(audit_batch(&format!("Batch{i}"), 5))
            .await
            .unwrap();
    }
    let d2 = digest_at_head(&all).await;
    assert_eq!(d2.to_seq, 45);
    assert!(d2.digest_seq > d1.digest_seq);
    cluster.restart_node(leader).await;
    applied_everywhere(&cluster).await;

    let records = all_records(&all).await;
    let digests = all_digests(&all).await;
    assert_eq!(records.len(), 45);
    assert_eq!(
        records[30].event, "{\"eventName\":\"Batch6\",\"i\":0}",
        "events are stored verbatim"
    );
    assert_eq!(digests.last(), Some(&d2));
    assert_verifies(&records, &digests);
    cluster.stop_all().await;
    assert_identical_audit_tables(&cluster, &records, &digests);

    // A full restart keeps every record, the head and the digests; the chain continues.
    for id in 1..=3 {
        cluster.restart_node(id).await;
    }
    assert_eq!(all_records(&all).await, records);
    assert_eq!(all_digests(&all).await, digests);
    let out = all.propose(audit_batch("AfterRestart", 2)).await.unwrap();
    assert_eq!(
        out,
        CommandOutput::AuditAppended {
            first_seq: 46,
            last_seq: 47
        }
    );
    let d3 = digest_at_head(&all).await;
    assert_eq!(d3.digest_seq, d2.digest_seq + 1);
    assert_verifies(&all_records(&all).await, &all_digests(&all).await);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_seals_the_chain_with_a_digest_when_it_shuts_down_cleanly() {
    // An hour-long interval: the only digest this test can see is the shutdown one.
    let mut cluster =
        Cluster::start_with_audit(Backend::Redb, audit_settings(Duration::from_secs(3600))).await;
    let all = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&all).await;
    all.propose(audit_batch("BeforeShutdown", 3)).await.unwrap();
    let (_, digest) = all.audit_head().await.unwrap();
    assert_eq!(digest, None, "no digest before the shutdown");
    cluster.nodes.remove(&leader).unwrap().stop().await;
    let d = digest_at_head(&all).await;
    assert_eq!((d.digest_seq, d.from_seq, d.to_seq), (1, 1, 3));
    assert_verifies(&all_records(&all).await, &all_digests(&all).await);
    cluster.stop_all().await;
}

// ---- retention: the leader prunes exported, signed, expired records on every node ----

fn timed_batch(tag: &str, n: usize, at_ms: u64) -> Command {
    let time = keystore::audit::format_event_time(at_ms);
    Command::AppendAudit {
        events: (0..n)
            .map(|i| format!("{{\"eventTime\":\"{time}\",\"eventName\":\"{tag}\",\"i\":{i}}}"))
            .collect(),
        usage: None,
    }
}

async fn retention_marks(client: &StoreClient) -> (u64, u64) {
    match client.query(Query::AuditRetention).await.unwrap() {
        QueryOutput::AuditRetention {
            exported_through,
            pruned_through,
        } => (exported_through, pruned_through),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_prunes_exported_expired_records_everywhere_and_it_survives_restart() {
    let mut settings = audit_settings(Duration::from_millis(200));
    settings.retention = Some(Duration::from_secs(3600));
    let mut cluster = Cluster::start_with_audit(Backend::Redb, settings).await;
    let all = cluster.client(&[1, 2, 3]).await;
    cluster.leader(&all).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Seqs 1..=10 are days old, 11..=15 from now: only the first ten may ever go.
    all.propose(timed_batch("Old", 5, now - 3 * 86_400_000))
        .await
        .unwrap();
    all.propose(timed_batch("Old", 5, now - 2 * 86_400_000))
        .await
        .unwrap();
    all.propose(timed_batch("Young", 5, now)).await.unwrap();
    digest_at_head(&all).await;

    // Not exported: many digest ticks later, nothing is pruned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(retention_marks(&all).await, (0, 0));
    assert_eq!(all.audit_records(1, 100).await.unwrap().len(), 15);

    all.propose(Command::MarkAuditExported { through_seq: 15 })
        .await
        .unwrap();
    let mut pruned = (0, 0);
    for _ in 0..100 {
        pruned = retention_marks(&all).await;
        if pruned.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pruned, (15, 10), "expired records go, young ones stay");
    // A read from a pruned seq starts after the pruned prefix.
    let seqs = |records: Vec<keystore::audit::AuditRecord>| {
        records.into_iter().map(|r| r.seq).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(all.audit_records(1, 100).await.unwrap()),
        (11..=15).collect::<Vec<_>>()
    );
    let digests = all_digests(&all).await;
    applied_everywhere(&cluster).await;
    cluster.stop_all().await;
    let expected: Vec<Vec<u8>> = (11..=15u64).map(|s| s.to_be_bytes().to_vec()).collect();
    for id in 1..=3 {
        let (records, stored_digests) = audit_tables(&cluster, id);
        let keys: Vec<Vec<u8>> = records.into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, expected, "node {id} pruned the same records");
        assert_eq!(
            stored_digests.len(),
            digests.len(),
            "digests are never pruned"
        );
    }

    // A full restart: still pruned, and the chain goes on from the head.
    for id in 1..=3 {
        cluster.restart_node(id).await;
    }
    assert_eq!(retention_marks(&all).await, (15, 10));
    assert_eq!(
        seqs(all.audit_records(3, 100).await.unwrap()),
        (11..=15).collect::<Vec<_>>()
    );
    let out = all.propose(timed_batch("After", 1, now)).await.unwrap();
    assert_eq!(
        out,
        CommandOutput::AuditAppended {
            first_seq: 16,
            last_seq: 16
        }
    );
    cluster.stop_all().await;
}

// ---- exactly-once: copies of one logical proposal (same request id) apply once ----

fn enabled_key(key_id: &str) -> KeyRecord {
    KeyRecord {
        state: KeyState::Enabled,
        deletion_date: None,
        pending_deletion_window_days: None,
        ..pending_deletion_key(key_id)
    }
}

async fn account_keys(client: &StoreClient) -> Vec<KeyRecord> {
    match client
        .query(Query::ListKeys {
            account_id: "111122223333".into(),
            limit: 1000,
            marker: None,
        })
        .await
        .unwrap()
    {
        QueryOutput::Keys { keys, .. } => keys,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_repeated_under_one_request_id_applies_once_and_every_copy_gets_its_result() {
    let mut cluster = Cluster::start(Backend::Redb).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&client).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let via_leader = cluster.client(&[leader]).await;
    let via_follower = cluster.client(&[follower]).await;
    let key_id = "0000aaaa-12ab-34cd-56ef-1234567890ab";
    let create = Command::CreateKey {
        record: enabled_key(key_id),
    };

    // The same logical CreateKey sent twice, as a retry after a lost reply would: once through
    // a follower (forwarded with its id), once to the leader directly. Without the id the
    // second copy would be refused with AlreadyExists although the key was created.
    let id = raft::RequestId::random();
    let first = via_follower
        .propose_with_id(id, create.clone())
        .await
        .unwrap();
    let second = via_leader
        .propose_with_id(id, create.clone())
        .await
        .unwrap();
    assert_eq!(first, second);
    assert!(matches!(&first, CommandOutput::Key(k) if k.key_id == key_id));
    // The same again, concurrently and at the gRPC level: identical reply bytes.
    let raw_propose = |node: u64| {
        let files = cluster.pki.front();
        let addr = cluster.peers[&node].clone();
        let command = serde_json::to_vec(&create).unwrap();
        let request_id = id.to_bytes();
        async move {
            let mut c = StoreServiceClient::new(raw_channel(&addr, &files).await);
            c.propose(ProposeRequest {
                command,
                forwarded: false,
                request_id,
            })
            .await
            .unwrap()
            .into_inner()
            .result
        }
    };
    let (a, b) = tokio::join!(raw_propose(leader), raw_propose(follower));
    assert_eq!(a, b);
    let reply: Result<CommandOutput, DomainError> = serde_json::from_slice(&a).unwrap();
    assert_eq!(reply.unwrap(), first);
    assert_eq!(account_keys(&client).await.len(), 1, "one key exists");

    // "x", then another client's "y", then a late retry of "x": the retry is answered with
    // what "x" returned and does not overwrite "y".
    let set = |d: &str| Command::UpdateKeyDescription {
        key_id: key_id.into(),
        description: d.into(),
    };
    let x = raft::RequestId::random();
    let set_x = via_follower.propose_with_id(x, set("x")).await.unwrap();
    client.propose(set("y")).await.unwrap();
    let retry = via_leader.propose_with_id(x, set("x")).await.unwrap();
    assert_eq!(retry, set_x);
    let described = |keys: Vec<KeyRecord>| keys[0].description.clone();
    assert_eq!(described(account_keys(&client).await), "y");

    // After a full restart every node rebuilt its table from disk: still one application.
    applied_everywhere(&cluster).await;
    cluster.stop_all().await;
    for id in 1..=3 {
        cluster.restart_node(id).await;
    }
    let retry = client.propose_with_id(x, set("x")).await.unwrap();
    assert_eq!(retry, set_x);
    assert_eq!(
        client.propose_with_id(id, create.clone()).await.unwrap(),
        first
    );
    let keys = account_keys(&client).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(described(keys), "y");
    cluster.stop_all().await;
}
