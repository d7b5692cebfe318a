//! openraft's own storage test suite, run against both backends, plus restart recovery of the
//! state machine's entity-by-entity persistence.

use keystore::command::{Change, Command, Proposal};
use keystore::model::IdentityRecord;
use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{RaftLogReader, StorageError};
use raft::store::{open_store, LogStore, StateMachineStore};
use raft::types::{Entry, LogId, Request, TypeConfig};
use raft::{Backend, WatchEvent};
use tempfile::TempDir;
use tokio::sync::broadcast;

struct Builder(Backend);

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let (tx, _) = broadcast::channel(16);
        let (log, sm) = open_store(self.0, dir.path(), tx)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_backend_passes_openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(Builder(Backend::Redb)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_backend_passes_openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(Builder(Backend::Sled)).await
}

fn log_id(term: u64, index: u64) -> LogId {
    use openraft::vote::RaftLeaderIdExt;
    LogId::new(
        <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

fn put_identity(arn: &str) -> Request {
    Request(Proposal {
        now: 1,
        command: Command::PutIdentity {
            identity: IdentityRecord {
                arn: arn.into(),
                account_id: "111122223333".into(),
                admin: false,
            },
        },
    })
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

async fn state_survives_reopen(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let a = "arn:aws:iam::111122223333:role/A";
    let b = "arn:aws:iam::111122223333:role/B";
    {
        let (tx, mut rx) = broadcast::channel(16);
        let (mut log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
        let entries = vec![
            Entry::new_normal(log_id(1, 1), put_identity(a)),
            Entry::new_normal(log_id(1, 2), put_identity(b)),
        ];
        log.append(entries.clone(), openraft::storage::IOFlushed::noop())
            .await
            .unwrap();
        apply(&mut sm, entries).await;
        assert_eq!(
            rx.recv().await.unwrap(),
            WatchEvent::Changed(Change::Identity(a.into()))
        );
        assert_eq!(
            rx.recv().await.unwrap(),
            WatchEvent::Changed(Change::Identity(b.into()))
        );
    }
    let (tx, _) = broadcast::channel(16);
    let (mut log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    {
        let state = sm.state();
        let state = state.read().unwrap();
        assert!(state.identities.contains_key(a) && state.identities.contains_key(b));
    }
    let entries = log
        .get_log_reader()
        .await
        .try_get_log_entries(1..3)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
}

#[tokio::test]
async fn redb_state_machine_and_log_survive_reopen() {
    state_survives_reopen(Backend::Redb).await;
}

#[tokio::test]
async fn sled_state_machine_and_log_survive_reopen() {
    state_survives_reopen(Backend::Sled).await;
}

async fn snapshot_install_replaces_all_entities(backend: Backend) {
    let leader_dir = TempDir::new().unwrap();
    let follower_dir = TempDir::new().unwrap();
    let (tx, _) = broadcast::channel(16);
    let (_l, mut leader) = open_store(backend, leader_dir.path(), tx).unwrap();
    apply(
        &mut leader,
        vec![Entry::new_normal(
            log_id(1, 1),
            put_identity("arn:aws:iam::111122223333:role/New"),
        )],
    )
    .await;
    let snap = leader.get_snapshot_builder().await;
    let mut snap = snap;
    let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut snap)
        .await
        .unwrap();

    let (tx, mut rx) = broadcast::channel(16);
    {
        let (_f, mut follower) = open_store(backend, follower_dir.path(), tx).unwrap();
        apply(
            &mut follower,
            vec![Entry::new_normal(
                log_id(1, 1),
                put_identity("arn:aws:iam::111122223333:role/Old"),
            )],
        )
        .await;
        let _ = rx.recv().await;
        follower
            .install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap(), WatchEvent::Resync);
    }
    let (tx, _) = broadcast::channel(16);
    let (_f, mut follower) = open_store(backend, follower_dir.path(), tx).unwrap();
    let state = follower.state();
    let ids: Vec<String> = state.read().unwrap().identities.keys().cloned().collect();
    assert_eq!(ids, vec!["arn:aws:iam::111122223333:role/New".to_string()]);
    let current = follower
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot kept");
    assert_eq!(current.meta, snap.meta);
}

#[tokio::test]
async fn redb_snapshot_install_replaces_all_entities_durably() {
    snapshot_install_replaces_all_entities(Backend::Redb).await;
}

#[tokio::test]
async fn sled_snapshot_install_replaces_all_entities_durably() {
    snapshot_install_replaces_all_entities(Backend::Sled).await;
}

fn kv_contract(backend: Backend) {
    use raft::store::{Op, Table};
    let dir = TempDir::new().unwrap();
    let kv = backend.open_kv(dir.path()).unwrap();
    let k = |i: u64| i.to_be_bytes().to_vec();
    kv.commit(
        (1..=5)
            .map(|i| Op::Put(Table::Log, k(i), vec![i as u8]))
            .chain([Op::Put(Table::SmMeta, b"m".to_vec(), b"v".to_vec())])
            .collect(),
    )
    .unwrap();
    assert_eq!(
        kv.range(Table::Log, &k(2), Some(&k(4))).unwrap().len(),
        2,
        "end is exclusive"
    );
    assert!(
        kv.range(Table::Log, &k(4), Some(&k(2))).unwrap().is_empty(),
        "an inverted range is empty"
    );
    assert_eq!(kv.last(Table::Log).unwrap().unwrap().0, k(5));
    kv.commit(vec![
        Op::DeleteRange(Table::Log, k(4), Some(k(2))),
        Op::DeleteRange(Table::Log, k(0), Some(k(3))),
    ])
    .unwrap();
    let left: Vec<_> = kv
        .range(Table::Log, &[], None)
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(left, vec![k(3), k(4), k(5)]);
    kv.commit(vec![
        Op::Delete(Table::SmMeta, b"m".to_vec()),
        Op::DeleteRange(Table::Log, k(5), None),
    ])
    .unwrap();
    assert_eq!(kv.get(Table::SmMeta, b"m").unwrap(), None);
    assert_eq!(kv.last(Table::Log).unwrap().unwrap().0, k(4));
}

#[test]
fn redb_backend_honours_the_kv_contract() {
    kv_contract(Backend::Redb);
}

#[test]
fn sled_backend_honours_the_kv_contract() {
    kv_contract(Backend::Sled);
}
