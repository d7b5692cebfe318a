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
use raft::pb::{ProposeRequest, QueryRequest, RaftPayload, StatusRequest, WatchRequest};
use raft::tls::{ROLE_FRONT, ROLE_STORAGE};
use raft::{Backend, StorageNodeConfig, StoreClient, StoreError, TlsFiles, WatchEvent};
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
}

impl Cluster {
    async fn start(backend: Backend) -> Cluster {
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
        };
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(raft::run_storage_node_with_listener(
            cfg,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_from_a_snapshot_after_logs_are_purged() {
    use futures::{StreamExt, TryStreamExt};

    let mut cluster = Cluster::start(Backend::Redb).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let leader = cluster.leader(&client).await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    cluster.nodes.remove(&lagging).unwrap().stop().await;

    // More than one snapshot interval (1000 logs): the leader snapshots and purges the logs the
    // lagging node would need, so it can only catch up by installing the snapshot.
    let n = 1100;
    futures::stream::iter(0..n)
        .map(|i| client.propose(identity(&format!("Bulk{i}"))))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let target = client
        .node_status()
        .await
        .into_iter()
        .find_map(|(_, s)| s.ok().filter(|s| s.node_id == leader))
        .and_then(|s| s.last_applied)
        .unwrap();

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
    cluster.stop_all().await;

    // What it caught up on is on its disk.
    let (tx, _) = tokio::sync::broadcast::channel(1);
    let (_, sm) = raft::store::open_store(Backend::Redb, &cluster.data_dir(lagging), tx).unwrap();
    let state = sm.state();
    let state = state.read().unwrap();
    assert_eq!(state.identities.len(), n);
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
    };
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        raft::run_storage_node(cfg, std::future::pending()),
    )
    .await;
    assert!(matches!(res, Ok(Err(_))), "refuses to start: {res:?}");
}
