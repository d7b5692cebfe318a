//! Test support: the front's tests run against the real storage tier, not a stand-in.
//!
//! [`StorageNode::start`] runs ONE storage node in-process, exactly as production does:
//! `raft::run_storage_node_with_listener` on 127.0.0.1:0, redb in a temporary directory, mTLS
//! with certificates from [`DevCa`] (storage role for the node, front role for the client), and
//! itself as the only peer, so it initializes a single-node cluster and elects itself at once.
//! [`kms`] puts a [`Kms`] over a real `raft::StoreClient` to it and seeds identities and access
//! keys through Raft, the way `keyraft dev` does. [`unreachable_store`] is a real client whose
//! only endpoint nobody listens on, for outage tests.
//!
//! nextest runs each test in its own process, so each test starts (and pays for) its own node.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keystore::command::{Command, Query};
use keystore::crypto::{self, DomainKey, Secret};
use keystore::model::{AccessKeyRecord, IdentityRecord};
use raft::client::ClientOptions;
use raft::{StorageNodeConfig, StoreClient, TlsFiles};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Kms;
use crate::certs::{write_pair, DevCa};

pub const ACCOUNT: &str = "111122223333";
pub const ROOT: &str = "arn:aws:iam::111122223333:root";
pub const ADMIN: &str = "arn:aws:iam::111122223333:user/admin";
pub const APP: &str = "arn:aws:iam::111122223333:role/App";
pub const OTHER_ROOT: &str = "arn:aws:iam::444455556666:root";
pub const ADMIN_AKID: &str = "AKIAADMINTEST0000001";
pub const ADMIN_SECRET: &str = "adminSecretKey/0123456789abcdefghijklmnop";
pub const APP_AKID: &str = "AKIAAPPTEST000000001";
pub const APP_SECRET: &str = "appSecretKey/0123456789abcdefghijklmnopqr";
pub const REGION: &str = "us-east-1";

/// How long a fresh node may take to elect itself and answer (it normally takes milliseconds).
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Retry budget of clients of a store that is down: fail fast, the outcome is the same.
const OUTAGE_RETRY_BUDGET: Duration = Duration::from_millis(300);

/// A CA and the front-role identity a `StoreClient` presents, as PEM files.
fn write_pki(dir: &Path) -> (DevCa, TlsFiles) {
    let ca = DevCa::generate("keyraft test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let front = write_pair(
        dir,
        "front",
        ca.issue_front("front", &["localhost", "127.0.0.1"])
            .unwrap(),
    )
    .unwrap();
    let files = TlsFiles {
        ca: ca_file,
        cert: front.cert,
        key: front.key,
    };
    (ca, files)
}

fn init_process() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// One running storage node. Dropping it asks the node to shut down (without waiting);
/// [`StorageNode::stop`] waits until it has.
pub struct StorageNode {
    endpoint: String,
    front_tls: TlsFiles,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), raft::RaftError>>>,
    // Last: the node's files outlive it.
    _dir: TempDir,
}

impl StorageNode {
    /// Starts a single-node cluster and returns once it answers a linearizable read.
    pub async fn start() -> StorageNode {
        init_process();
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let (ca, front_tls) = write_pki(dir.path());
        let storage = write_pair(
            dir.path(),
            "storage",
            ca.issue_storage("storage", &["localhost", "127.0.0.1"])
                .unwrap(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let cfg = StorageNodeConfig {
            node_id: 1,
            listen: listener.local_addr().unwrap(),
            advertise: endpoint.clone(),
            data_dir: dir.path().join("data"),
            backend: raft::Backend::Redb,
            tls: TlsFiles {
                ca: front_tls.ca.clone(),
                cert: storage.cert,
                key: storage.key,
            },
            peers: BTreeMap::from([(1, endpoint.clone())]),
            clock: Default::default(),
            log_retention: Default::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(raft::run_storage_node_with_listener(
            cfg,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let mut node = StorageNode {
            endpoint,
            front_tls,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        node.wait_until_answering(started).await;
        node
    }

    async fn wait_until_answering(&mut self, started: Instant) {
        let client = self.client().await;
        // Wait for the election (immediate for a single voter) before the first read: a read
        // that reaches the node while it is still a candidate is refused, and the client then
        // backs off for 50 ms.
        loop {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let ended = self.task.take().unwrap().await;
                panic!("storage node ended while starting: {ended:?}");
            }
            let status = client.node_status().await.pop().map(|(_, s)| s);
            match status {
                Some(Ok(s)) if s.state == "Leader" => break,
                _ if started.elapsed() < START_DEADLINE => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => panic!("storage node not leader within {START_DEADLINE:?}: {other:?}"),
            }
        }
        client
            .query(Query::GetIdentity { arn: String::new() })
            .await
            .expect("storage node answers a linearizable read");
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            endpoint = %self.endpoint,
            "test storage node answering"
        );
    }

    /// A new client of this node with the front's certificate.
    pub async fn client(&self) -> StoreClient {
        StoreClient::connect(vec![self.endpoint.clone()], &self.front_tls)
            .await
            .unwrap()
    }

    /// Shuts the node down and waits until it has stopped (its port closed, its database
    /// released).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("storage node stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A real client whose only endpoint is a port nobody listens on: every call fails
/// `Unavailable` after a short retry budget.
pub async fn unreachable_store() -> StoreClient {
    init_process();
    let dir = tempfile::tempdir().unwrap();
    let (_, tls) = write_pki(dir.path());
    // Bound, then released: nothing listens there.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    drop(listener);
    // The client loads its certificates now; the files may go.
    StoreClient::connect_with_options(
        vec![endpoint],
        &tls,
        ClientOptions {
            retry_budget: OUTAGE_RETRY_BUDGET,
        },
    )
    .await
    .unwrap()
}

/// Seeds identities and access keys the way `keyraft dev` does: proposals through Raft.
pub async fn seed(store: &StoreClient, dk: &DomainKey) {
    for (arn, account, admin) in [(ADMIN, ACCOUNT, true), (APP, ACCOUNT, false)] {
        store
            .propose(Command::PutIdentity {
                identity: IdentityRecord {
                    arn: arn.into(),
                    account_id: account.into(),
                    admin,
                    ..Default::default()
                },
            })
            .await
            .unwrap();
    }
    for (id, secret, arn) in [
        (ADMIN_AKID, ADMIN_SECRET, ADMIN),
        (APP_AKID, APP_SECRET, APP),
    ] {
        let wrapped = crypto::wrap_access_secret(dk, id, &Secret::new(secret.as_bytes().to_vec()));
        store
            .propose(Command::PutAccessKey {
                record: AccessKeyRecord {
                    access_key_id: id.into(),
                    principal_arn: arn.into(),
                    account_id: ACCOUNT.into(),
                    wrapped_secret: wrapped,
                    created_at: 0,
                },
            })
            .await
            .unwrap();
    }
}

/// A `Kms` over a fresh, seeded storage node. Keep the node alive for as long as the `Kms` is
/// used (`let (kms, _node) = kms().await;`; a bare `_` would drop it at once), or stop it to
/// inject an outage.
pub async fn kms() -> (Arc<Kms>, StorageNode) {
    let node = StorageNode::start().await;
    let store = node.client().await;
    let dk = DomainKey::generate(1);
    seed(&store, &dk).await;
    let kms = Kms::new(REGION.into(), store, dk, Duration::from_secs(1));
    (Arc::new(kms), node)
}

/// A `Kms` whose store is unreachable (see [`unreachable_store`]).
pub async fn kms_without_store() -> Arc<Kms> {
    let kms = Kms::new(
        REGION.into(),
        unreachable_store().await,
        DomainKey::generate(1),
        Duration::from_secs(1),
    );
    Arc::new(kms)
}

/// Two fronts (`Kms`) over one seeded storage node, sharing the domain key, each with its own
/// cache bounded by `staleness`: what a region with several fronts looks like.
pub async fn two_fronts(staleness: Duration) -> (Arc<Kms>, Arc<Kms>, StorageNode) {
    let node = StorageNode::start().await;
    let dk = DomainKey::generate(1);
    seed(&node.client().await, &dk).await;
    let same_dk = DomainKey::from_bytes(1, dk.expose_secret()).unwrap();
    let a = Kms::new(REGION.into(), node.client().await, dk, staleness);
    let b = Kms::new(REGION.into(), node.client().await, same_dk, staleness);
    (Arc::new(a), Arc::new(b), node)
}
