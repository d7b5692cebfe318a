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
    Request::from(Proposal {
        now: 1,
        command: Command::PutIdentity {
            identity: IdentityRecord {
                arn: arn.into(),
                account_id: "111122223333".into(),
                admin: false,
                ..Default::default()
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

/// Open reads the entities back in batches on several threads: more entities than one batch
/// come back whole, with the digest a recomputation gives; a corrupt entity fails the open
/// with InvalidData (no hang, no partial state).
async fn open_loads_many_entities_and_refuses_a_corrupt_one(backend: Backend) {
    use raft::store::{Op, Table};
    const N: u64 = 2_500; // more than two of the loader's 1,024-entity batches
    let dir = TempDir::new().unwrap();
    let arn = |i: u64| format!("arn:aws:iam::111122223333:role/R{i:05}");
    {
        let (tx, _rx) = broadcast::channel(16);
        let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
        let entries = (1..=N)
            .map(|i| Entry::new_normal(log_id(1, i), put_identity(&arn(i))))
            .collect();
        apply(&mut sm, entries).await;
    }
    let digest = {
        let (tx, _) = broadcast::channel(16);
        let (_log, sm) = open_store(backend, dir.path(), tx).unwrap();
        let state = sm.state();
        let state = state.read().unwrap();
        assert_eq!(state.identities.len() as u64, N);
        assert_eq!(state.entity_count() as u64, N);
        assert_eq!(state.digest_hex(), state.recomputed_digest_hex().unwrap());
        state.digest_hex()
    };
    {
        let (tx, _) = broadcast::channel(16);
        let (_log, sm) = open_store(backend, dir.path(), tx).unwrap();
        let state = sm.state();
        assert_eq!(
            state.read().unwrap().digest_hex(),
            digest,
            "the same on every open"
        );
    }

    let kv = backend.open_kv(dir.path()).unwrap();
    let victim = serde_json::to_vec(&Change::Identity(arn(1_700))).unwrap();
    assert!(kv.get(Table::Entities, &victim).unwrap().is_some());
    kv.commit(vec![Op::Put(
        Table::Entities,
        victim,
        b"{not json".to_vec(),
    )])
    .unwrap();
    drop(kv);
    let (tx, _) = broadcast::channel(16);
    let err = match open_store(backend, dir.path(), tx) {
        Ok(_) => panic!("a corrupt entity must fail the open"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[tokio::test]
async fn redb_open_loads_many_entities_and_refuses_a_corrupt_one() {
    open_loads_many_entities_and_refuses_a_corrupt_one(Backend::Redb).await;
}

#[tokio::test]
async fn sled_open_loads_many_entities_and_refuses_a_corrupt_one() {
    open_loads_many_entities_and_refuses_a_corrupt_one(Backend::Sled).await;
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
    // scan: every pair, in key order, in batches of at most the size asked for.
    let mut batches = Vec::new();
    kv.scan(Table::Log, 2, &mut |b| {
        batches.push(b);
        Ok(())
    })
    .unwrap();
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    let scanned: Vec<_> = batches.into_iter().flatten().collect();
    assert_eq!(scanned, kv.range(Table::Log, &[], None).unwrap());
    let mut none = 0;
    kv.scan(Table::Audit, 2, &mut |_| {
        none += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(none, 0, "an empty table hands over no batch");
    let stopped = kv.scan(Table::Log, 1, &mut |_| Err(std::io::Error::other("stop")));
    assert!(stopped.is_err(), "an error from the callback ends the scan");
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

// ---- grants (and aliases) persist entity by entity and travel in snapshots ----

const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn enabled_key() -> keystore::model::KeyRecord {
    use keystore::model::{
        KeyRecord, KeySpec, KeyState, KeyUsage, MaterialVersion, Origin, Wrapped,
    };
    KeyRecord {
        key_id: KEY_ID.into(),
        arn: format!("arn:aws:kms:us-east-1:111122223333:key/{KEY_ID}"),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        description: String::new(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state: KeyState::Enabled,
        creation_date: 0,
        deletion_date: None,
        pending_deletion_window_days: None,
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

fn grant(grant_id: &str) -> keystore::grant::GrantRecord {
    use keystore::grant::{account_root_arn, GrantConstraints, GrantOperation, GrantRecord};
    GrantRecord {
        grant_id: grant_id.into(),
        key_id: KEY_ID.into(),
        key_arn: format!("arn:aws:kms:us-east-1:111122223333:key/{KEY_ID}"),
        account_id: "111122223333".into(),
        name: Some("app".into()),
        grantee_principal: "arn:aws:iam::111122223333:role/app".into(),
        retiring_principal: None,
        issuing_account: account_root_arn("111122223333"),
        operations: vec![GrantOperation::Decrypt, GrantOperation::RetireGrant],
        constraints: Some(GrantConstraints {
            encryption_context_equals: None,
            encryption_context_subset: Some([("Dept".into(), "IT".into())].into()),
        }),
        creation_date: 0,
        token_nonce: [5; 16],
    }
}

fn request(now: u64, command: Command) -> Request {
    Request::from(Proposal { now, command })
}

/// Key, alias and two grants applied at log indexes 1..=4.
fn key_alias_and_grants() -> Vec<Entry> {
    let commands = [
        Command::CreateKey {
            record: enabled_key(),
        },
        Command::CreateAlias {
            account_id: "111122223333".into(),
            alias_name: "alias/app".into(),
            alias_arn: "arn:aws:kms:us-east-1:111122223333:alias/app".into(),
            target_key_id: KEY_ID.into(),
        },
        Command::CreateGrant { grant: grant("a1") },
        Command::CreateGrant { grant: grant("b2") },
    ];
    commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| Entry::new_normal(log_id(1, i as u64 + 1), request(7, c)))
        .collect()
}

async fn grants_survive_reopen_and_snapshot_install(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let hash_before_reopen = {
        let (tx, mut rx) = broadcast::channel(16);
        let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
        let entries = key_alias_and_grants();
        // The second grant repeats the first's name and parameters: CreateGrant returns the
        // first one, so only `a1` exists.
        apply(&mut sm, entries).await;
        let mut seen = Vec::new();
        while let Ok(WatchEvent::Changed(c)) = rx.try_recv() {
            seen.push(c);
        }
        assert!(seen.contains(&Change::Grant(KEY_ID.into(), "a1".into())));
        assert!(!seen.contains(&Change::Grant(KEY_ID.into(), "b2".into())));
        // Retire it and create another, so the persisted table saw a delete too.
        apply(
            &mut sm,
            vec![
                Entry::new_normal(
                    log_id(1, 5),
                    request(
                        8,
                        Command::RetireGrant {
                            key_id: KEY_ID.into(),
                            grant_id: "a1".into(),
                        },
                    ),
                ),
                Entry::new_normal(
                    log_id(1, 6),
                    request(9, Command::CreateGrant { grant: grant("c3") }),
                ),
            ],
        )
        .await;
        // The status hash, kept up to date put by put and delete by delete, is the one
        // computed from scratch.
        let state = sm.state();
        let state = state.read().unwrap();
        assert_eq!(state.digest_hex(), state.recomputed_digest_hex().unwrap());
        state.digest_hex()
    };

    // Reopen: the grant is read back from the entities table.
    let (tx, _) = broadcast::channel(16);
    let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
    assert_eq!(sm.state().read().unwrap().digest_hex(), hash_before_reopen);
    let want = {
        let state = sm.state();
        let state = state.read().unwrap();
        let ids: Vec<_> = state.grants.keys().map(|(_, g)| g.as_str()).collect();
        assert_eq!(ids, vec!["c3"]);
        let g = &state.grants[&(KEY_ID.to_string(), "c3".to_string())];
        assert_eq!(g.creation_date, 9);
        assert_eq!(
            g,
            &keystore::grant::GrantRecord {
                creation_date: 9,
                ..grant("c3")
            }
        );
        assert_eq!(state.aliases.len(), 1);
        state.clone()
    };

    // A snapshot of that state carries the grant and the alias to a fresh node, durably.
    let mut builder = sm.get_snapshot_builder().await;
    let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
        .await
        .unwrap();
    let follower_dir = TempDir::new().unwrap();
    {
        let (tx, _) = broadcast::channel(16);
        let (_f, mut follower) = open_store(backend, follower_dir.path(), tx).unwrap();
        follower
            .install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
    }
    let (tx, _) = broadcast::channel(16);
    let (_f, follower) = open_store(backend, follower_dir.path(), tx).unwrap();
    let state = follower.state();
    assert_eq!(state.read().unwrap().state, want);
    assert_eq!(state.read().unwrap().digest_hex(), hash_before_reopen);
}

#[tokio::test]
async fn redb_grants_survive_reopen_and_snapshot_install() {
    grants_survive_reopen_and_snapshot_install(Backend::Redb).await;
}

#[tokio::test]
async fn sled_grants_survive_reopen_and_snapshot_install() {
    grants_survive_reopen_and_snapshot_install(Backend::Sled).await;
}

// ---- the audit chain: records, digests and head persist with last-applied, in one commit ----

mod audit {
    use std::io;
    use std::sync::{Arc, Mutex};

    use keystore::audit::{sign_digest, AuditRecord, AuditSigningKey, DigestBody, DigestRecord};
    use keystore::command::{Command, Proposal};
    use openraft::entry::RaftEntry;
    use openraft::storage::RaftStateMachine;
    use raft::store::{open_store, KvBackend, Op, Pairs, SnapshotData, StateMachineStore, Table};
    use raft::types::{Entry, Request};
    use raft::Backend;
    use tempfile::TempDir;
    use tokio::sync::broadcast;

    use super::log_id;

    /// Wraps a real backend: records every commit, and can be told to fail them.
    struct Recording {
        inner: Arc<dyn KvBackend>,
        commits: Mutex<Vec<Vec<Op>>>,
        fail: Mutex<bool>,
    }

    impl KvBackend for Recording {
        fn get(&self, t: Table, k: &[u8]) -> io::Result<Option<Vec<u8>>> {
            self.inner.get(t, k)
        }
        fn range(
            &self,
            t: Table,
            s: &[u8],
            e: Option<&[u8]>,
        ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.range(t, s, e)
        }
        fn last(&self, t: Table) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
            self.inner.last(t)
        }
        fn scan(
            &self,
            t: Table,
            batch: usize,
            each: &mut dyn FnMut(Pairs) -> io::Result<()>,
        ) -> io::Result<()> {
            self.inner.scan(t, batch, each)
        }
        fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(io::Error::other("injected: disk full"));
            }
            self.commits.lock().unwrap().push(ops.clone());
            self.inner.commit(ops)
        }
    }

    fn append_audit(events: &[&str]) -> Request {
        Request::from(Proposal {
            now: 1,
            command: Command::AppendAudit {
                events: events.iter().map(|e| e.to_string()).collect(),
                usage: None,
            },
        })
    }

    fn key() -> AuditSigningKey {
        AuditSigningKey::from_bytes(&[3u8; 32])
    }

    fn digest_of(sm: &StateMachineStore) -> Request {
        let state = sm.state();
        let state = state.read().unwrap();
        let body = DigestBody::next(
            state.audit.last_digest.as_ref(),
            "us-east-1",
            &state.audit.head,
            5,
        );
        Request::from(Proposal {
            now: 5,
            command: Command::AppendDigest {
                digest: sign_digest(&key(), body),
            },
        })
    }

    async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) -> io::Result<()> {
        let items = entries.into_iter().map(|e| Ok((e, None)));
        sm.apply(futures::stream::iter(items)).await
    }

    fn table(kv: &dyn KvBackend, t: Table) -> Vec<(Vec<u8>, Vec<u8>)> {
        kv.range(t, &[], None).unwrap()
    }

    fn records(kv: &dyn KvBackend) -> Vec<AuditRecord> {
        table(kv, Table::Audit)
            .into_iter()
            .map(|(k, v)| {
                let r: AuditRecord = serde_json::from_slice(&v).unwrap();
                assert_eq!(k, r.seq.to_be_bytes(), "keyed by big-endian seq");
                r
            })
            .collect()
    }

    fn digests(kv: &dyn KvBackend) -> Vec<DigestRecord> {
        table(kv, Table::AuditDigests)
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).unwrap())
            .collect()
    }

    async fn records_and_last_applied_commit_together(backend: Backend) {
        let dir = TempDir::new().unwrap();
        let real = backend.open_kv(dir.path()).unwrap();
        let rec = Arc::new(Recording {
            inner: real.clone(),
            commits: Mutex::new(Vec::new()),
            fail: Mutex::new(false),
        });
        let (tx, _) = broadcast::channel(16);
        let mut sm = StateMachineStore::load(rec.clone(), tx).unwrap();
        apply(
            &mut sm,
            vec![
                Entry::new_normal(log_id(1, 1), append_audit(&["{\"a\":1}", "{\"a\":2}"])),
                Entry::new_normal(log_id(1, 2), append_audit(&["{\"a\":3}"])),
            ],
        )
        .await
        .unwrap();
        // One commit for the batch, holding every record, the head and last-applied.
        let commits = std::mem::take(&mut *rec.commits.lock().unwrap());
        assert_eq!(commits.len(), 1);
        let puts: Vec<(Table, Vec<u8>)> = commits[0]
            .iter()
            .filter_map(|op| match op {
                Op::Put(t, k, _) => Some((*t, k.clone())),
                _ => None,
            })
            .collect();
        for seq in 1..=3u64 {
            assert!(puts.contains(&(Table::Audit, seq.to_be_bytes().to_vec())));
        }
        assert!(puts.contains(&(Table::SmMeta, b"audit_log".to_vec())));
        assert!(puts.contains(&(Table::SmMeta, b"last_applied".to_vec())));

        // A digest, then a failed commit: the failed entry's record and last-applied are
        // both missing after a reopen, never one without the other.
        let d = digest_of(&sm);
        apply(&mut sm, vec![Entry::new_normal(log_id(1, 3), d)])
            .await
            .unwrap();
        *rec.fail.lock().unwrap() = true;
        let failed = apply(
            &mut sm,
            vec![Entry::new_normal(
                log_id(1, 4),
                append_audit(&["{\"lost\":1}"]),
            )],
        )
        .await;
        assert!(failed.is_err(), "a failed commit fails the apply");
        drop(sm);
        drop(rec);

        let (tx, _) = broadcast::channel(16);
        let mut sm = StateMachineStore::load(real.clone(), tx).unwrap();
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 3)));
        let stored = records(real.as_ref());
        assert_eq!(stored.len(), 3, "the failed entry's record is not there");
        let stored_digests = digests(real.as_ref());
        assert_eq!(stored_digests.len(), 1);
        {
            let state = sm.state();
            let state = state.read().unwrap();
            assert_eq!(state.audit.head.last_seq(), 3, "head reloaded");
            assert_eq!(state.audit.last_digest.as_ref(), stored_digests.last());
        }
        // Re-applying the lost entry (openraft does, from the log) continues the chain.
        apply(
            &mut sm,
            vec![Entry::new_normal(
                log_id(1, 4),
                append_audit(&["{\"lost\":1}"]),
            )],
        )
        .await
        .unwrap();
        let stored = records(real.as_ref());
        assert_eq!(stored.len(), 4);
        let keys = vec![key().public_key(0, None)];
        let report = keystore::audit::verify(&stored, &digests(real.as_ref()), &keys, None);
        assert!(report.is_ok(), "{report:?}");
    }

    #[tokio::test]
    async fn redb_audit_records_and_last_applied_are_one_commit() {
        records_and_last_applied_commit_together(Backend::Redb).await;
    }

    #[tokio::test]
    async fn sled_audit_records_and_last_applied_are_one_commit() {
        records_and_last_applied_commit_together(Backend::Sled).await;
    }

    async fn snapshot_carries_the_audit_tables(backend: Backend) {
        let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let (tx, _) = broadcast::channel(16);
        let (_l, mut leader) = open_store(backend, a.path(), tx).unwrap();
        apply(
            &mut leader,
            vec![Entry::new_normal(
                log_id(1, 1),
                append_audit(&["{\"x\":1}", "{\"x\":2}"]),
            )],
        )
        .await
        .unwrap();
        let d = digest_of(&leader);
        apply(&mut leader, vec![Entry::new_normal(log_id(1, 2), d)])
            .await
            .unwrap();
        let mut builder = leader.get_snapshot_builder().await;
        // Appended after the snapshot point: not in this snapshot.
        apply(
            &mut leader,
            vec![Entry::new_normal(
                log_id(1, 3),
                append_audit(&["{\"x\":3}"]),
            )],
        )
        .await
        .unwrap();
        let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();

        {
            let (tx, _) = broadcast::channel(16);
            let (_f, mut follower) = open_store(backend, b.path(), tx).unwrap();
            // The follower had a different chain: the snapshot replaces it.
            apply(
                &mut follower,
                vec![Entry::new_normal(
                    log_id(1, 1),
                    append_audit(&["{\"other\":1}"; 5]),
                )],
            )
            .await
            .unwrap();
            follower
                .install_snapshot(&snap.meta, snap.snapshot.clone())
                .await
                .unwrap();
        }
        let leader_kv = leader.kv();
        let (tx, _) = broadcast::channel(16);
        let (_f, follower) = open_store(backend, b.path(), tx).unwrap();
        let follower_kv = follower.kv();
        let mut leader_records = table(leader_kv.as_ref(), Table::Audit);
        leader_records.truncate(2);
        assert_eq!(table(follower_kv.as_ref(), Table::Audit), leader_records);
        assert_eq!(
            table(follower_kv.as_ref(), Table::AuditDigests),
            table(leader_kv.as_ref(), Table::AuditDigests)
        );
        let state = follower.state();
        assert_eq!(state.read().unwrap().audit.head.last_seq(), 2);
    }

    #[tokio::test]
    async fn redb_snapshot_install_replaces_the_audit_tables_byte_for_byte() {
        snapshot_carries_the_audit_tables(Backend::Redb).await;
    }

    #[tokio::test]
    async fn sled_snapshot_install_replaces_the_audit_tables_byte_for_byte() {
        snapshot_carries_the_audit_tables(Backend::Sled).await;
    }

    /// `n` events of about 2 KiB each (the size of a front's CloudTrail-shaped event).
    fn big_events(tag: &str, n: usize) -> Request {
        let events: Vec<String> = (0..n)
            .map(|i| format!("{{\"tag\":\"{tag}{i}\",\"pad\":\"{}\"}}", "x".repeat(2000)))
            .collect();
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        append_audit(&events)
    }

    async fn stored_snapshot_leaves_the_chain_in_its_tables(backend: Backend) {
        let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let (tx, _) = broadcast::channel(16);
        let (_l, mut leader) = open_store(backend, a.path(), tx).unwrap();
        let stored = |sm: &StateMachineStore| {
            let doc = sm.stored_snapshot_doc().unwrap();
            assert!(!doc.is_empty(), "snapshot stored");
            doc
        };
        apply(
            &mut leader,
            vec![Entry::new_normal(log_id(1, 1), big_events("a", 50))],
        )
        .await
        .unwrap();
        let mut builder = leader.get_snapshot_builder().await;
        openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
        let small = stored(&leader);
        // 50 records of ~2 KiB are ~100 KiB: none of them is in the stored snapshot.
        assert!(
            small.len() < 4096,
            "stored snapshot is {} bytes",
            small.len()
        );
        assert!(!small.windows(5).any(|w| w == b"\"pad\""));

        // Ten times the history: the stored snapshot does not grow with it.
        let entries = (2..=11)
            .map(|i| Entry::new_normal(log_id(1, i), big_events("b", 50)))
            .collect();
        apply(&mut leader, entries).await.unwrap();
        let d = digest_of(&leader);
        apply(&mut leader, vec![Entry::new_normal(log_id(1, 12), d)])
            .await
            .unwrap();
        let mut builder = leader.get_snapshot_builder().await;
        let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
        let later = stored(&leader);
        assert!(
            later.len() < small.len() + 2048,
            "stored snapshot grew from {} to {} bytes with the audit history",
            small.len(),
            later.len()
        );

        // Sent to a follower, it carries the whole chain, and the follower ends with the
        // leader's tables byte for byte (and a stored snapshot of its own, as small).
        let current = leader.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
        let sent = current.snapshot.complete().unwrap();
        assert!(
            sent.len() > 550 * 2000,
            "sent snapshot is {} bytes",
            sent.len()
        );
        {
            let (tx, _) = broadcast::channel(16);
            let (_f, mut follower) = open_store(backend, b.path(), tx).unwrap();
            follower
                .install_snapshot(&snap.meta, SnapshotData::decode(&sent).unwrap())
                .await
                .unwrap();
            assert!(stored(&follower).len() < small.len() + 2048);
        }
        let (tx, _) = broadcast::channel(16);
        let (_f, follower) = open_store(backend, b.path(), tx).unwrap();
        for t in [Table::Audit, Table::AuditDigests] {
            assert_eq!(
                table(follower.kv().as_ref(), t),
                table(leader.kv().as_ref(), t)
            );
        }
        assert_eq!(records(follower.kv().as_ref()).len(), 550);
        let (fs, ls) = (follower.state(), leader.state());
        let (fs, ls) = (fs.read().unwrap(), ls.read().unwrap());
        assert_eq!(fs.digest_hex(), ls.digest_hex());
        assert_eq!(fs.applied, ls.applied);
    }

    #[tokio::test]
    async fn redb_stored_snapshot_leaves_the_chain_in_its_tables() {
        stored_snapshot_leaves_the_chain_in_its_tables(Backend::Redb).await;
    }

    #[tokio::test]
    async fn sled_stored_snapshot_leaves_the_chain_in_its_tables() {
        stored_snapshot_leaves_the_chain_in_its_tables(Backend::Sled).await;
    }

    /// Applies one entry of three audit events at `index` (term 1) and builds a snapshot there.
    async fn apply_events_and_snapshot(sm: &mut StateMachineStore, index: u64, tag: &str) {
        apply(
            sm,
            vec![Entry::new_normal(log_id(1, index), big_events(tag, 3))],
        )
        .await
        .unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
    }

    /// `get_current_snapshot` hands out the meta and reads the document only when the data is
    /// used: a handle taken before a newer snapshot fails instead of sending the newer
    /// document under the older meta; a fresh handle gives the newer document.
    #[tokio::test]
    async fn a_current_snapshot_is_read_when_used_and_never_mixed_with_a_newer_one() {
        let dir = TempDir::new().unwrap();
        let (tx, _) = broadcast::channel(16);
        let (_l, mut sm) = open_store(Backend::Redb, dir.path(), tx).unwrap();
        apply_events_and_snapshot(&mut sm, 1, "a").await;
        let first = sm.get_current_snapshot().await.unwrap().expect("stored");
        assert_eq!(first.meta.last_log_id, Some(log_id(1, 1)));
        let first_doc = first.snapshot.clone().complete().unwrap();
        assert!(
            SnapshotData::decode(&first_doc).is_ok(),
            "the document read when used is complete"
        );

        apply_events_and_snapshot(&mut sm, 2, "b").await;
        let err = first
            .snapshot
            .complete()
            .expect_err("replaced since it was handed out");
        assert!(err.to_string().contains("replaced"), "{err}");

        let second = sm.get_current_snapshot().await.unwrap().expect("stored");
        assert_eq!(second.meta.last_log_id, Some(log_id(1, 2)));
        let second_doc = second.snapshot.complete().unwrap();
        assert_ne!(second_doc, first_doc);
        SnapshotData::decode(&second_doc).unwrap();
    }

    fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The stored document is a file beside the database, one at a time; a crash between
    /// writing a file and committing it leaves files that the next open removes; a data
    /// directory whose document is still in `sm_meta` (older binaries) reads it from there
    /// until the next snapshot moves it out.
    #[tokio::test]
    async fn stored_snapshot_documents_are_files_and_leftovers_are_removed() {
        let dir = TempDir::new().unwrap();
        // Written the old way: the document a value in sm_meta.
        {
            let kv = Backend::Redb.open_kv(dir.path()).unwrap();
            let (tx, _) = broadcast::channel(16);
            let mut sm = StateMachineStore::load(kv, tx).unwrap();
            apply_events_and_snapshot(&mut sm, 1, "a").await;
        }
        let (tx, _) = broadcast::channel(16);
        let (l, mut sm) = open_store(Backend::Redb, dir.path(), tx).unwrap();
        let legacy = sm.stored_snapshot_doc().unwrap();
        assert!(!legacy.is_empty());
        assert!(snapshot_files(dir.path()).is_empty());
        let sent = sm.get_current_snapshot().await.unwrap().unwrap();
        SnapshotData::decode(&sent.snapshot.complete().unwrap()).unwrap();

        apply_events_and_snapshot(&mut sm, 2, "b").await;
        let files = snapshot_files(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        let mode = std::fs::metadata(dir.path().join("snapshots").join(&files[0]))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(sm
            .kv()
            .get(Table::SmMeta, b"snapshot_data")
            .unwrap()
            .is_none());
        let second = sm.stored_snapshot_doc().unwrap();
        assert_ne!(second, legacy);
        assert_eq!(
            std::fs::read(dir.path().join("snapshots").join(&files[0])).unwrap(),
            second
        );
        apply_events_and_snapshot(&mut sm, 3, "c").await;
        let third_files = snapshot_files(dir.path());
        assert_eq!(third_files.len(), 1, "the older file is removed");
        assert_ne!(third_files, files);

        // A crash after writing a document but before committing it (and one mid-write).
        for leftover in ["snapshot-9-1-1.json", "snapshot-9-1-2.json.tmp"] {
            std::fs::write(dir.path().join("snapshots").join(leftover), b"{}").unwrap();
        }
        let current = sm.stored_snapshot_doc().unwrap();
        drop((l, sm));
        let (tx, _) = broadcast::channel(16);
        let (_l, mut sm) = open_store(Backend::Redb, dir.path(), tx).unwrap();
        assert_eq!(snapshot_files(dir.path()), third_files);
        assert_eq!(sm.stored_snapshot_doc().unwrap(), current);
        let sent = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(sent.meta.last_log_id, Some(log_id(1, 3)));
        SnapshotData::decode(&sent.snapshot.complete().unwrap()).unwrap();
    }

    /// openraft builds snapshots in a task of its own, so a build can finish after a newer
    /// snapshot was installed: the stored one stays the installed (newer) one, with its file.
    #[tokio::test]
    async fn a_build_that_finishes_after_a_newer_install_keeps_the_installed_snapshot() {
        let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let (tx, _) = broadcast::channel(16);
        let (_la, mut leader) = open_store(Backend::Redb, a.path(), tx).unwrap();
        for (i, tag) in [(1, "a"), (2, "b"), (3, "c")] {
            apply_events_and_snapshot(&mut leader, i, tag).await;
        }
        let newer = leader.get_current_snapshot().await.unwrap().unwrap();
        let doc = newer.snapshot.complete().unwrap();

        let (tx, _) = broadcast::channel(16);
        let (_lb, mut follower) = open_store(Backend::Redb, b.path(), tx).unwrap();
        apply(
            &mut follower,
            vec![Entry::new_normal(log_id(1, 1), big_events("a", 3))],
        )
        .await
        .unwrap();
        let mut stale = follower.get_snapshot_builder().await;
        follower
            .install_snapshot(&newer.meta, SnapshotData::decode(&doc).unwrap())
            .await
            .unwrap();
        openraft::RaftSnapshotBuilder::build_snapshot(&mut stale)
            .await
            .unwrap();

        let current = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(1, 3)));
        SnapshotData::decode(&current.snapshot.complete().unwrap()).unwrap();
        assert_eq!(snapshot_files(b.path()).len(), 1);
    }

    #[tokio::test]
    async fn a_malformed_or_incomplete_snapshot_is_refused_before_install() {
        let dir = TempDir::new().unwrap();
        let (tx, _) = broadcast::channel(16);
        let (_l, mut leader) = open_store(Backend::Redb, dir.path(), tx).unwrap();
        apply_events_and_snapshot(&mut leader, 1, "a").await;
        // The stored document without its chain is not a snapshot anyone may install.
        let stored = leader.stored_snapshot_doc().unwrap();
        assert!(SnapshotData::decode(&stored).is_err());
        // A gap in the records is refused too.
        let sent = leader
            .get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .snapshot
            .complete()
            .unwrap();
        let mut doc: serde_json::Value = serde_json::from_slice(&sent).unwrap();
        doc["audit_records"].as_array_mut().unwrap().remove(1);
        assert!(SnapshotData::decode(&serde_json::to_vec(&doc).unwrap()).is_err());
        assert!(SnapshotData::decode(b"{\"format\":9,\"state\":{}}").is_err());
        assert!(SnapshotData::decode(&sent).is_ok());
    }

    #[tokio::test]
    async fn a_redb_file_written_before_the_audit_tables_opens_with_an_empty_chain() {
        let dir = TempDir::new().unwrap();
        {
            // The four tables of the previous layout, as an older node left them.
            type Def = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
            let db = redb::Database::create(dir.path().join("keyraft.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            for name in ["log", "raft_meta", "entities", "sm_meta"] {
                tx.open_table(Def::new(name)).unwrap();
            }
            {
                let mut meta = tx.open_table(Def::new("sm_meta")).unwrap();
                let applied = serde_json::to_vec(&Some(log_id(1, 7))).unwrap();
                meta.insert(b"last_applied".as_slice(), applied.as_slice())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let (tx, _) = broadcast::channel(16);
        let (_l, mut sm) = open_store(Backend::Redb, dir.path(), tx).unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 7)));
        assert_eq!(sm.state().read().unwrap().audit.head.last_seq(), 0);
        apply(
            &mut sm,
            vec![Entry::new_normal(log_id(1, 8), append_audit(&["{}"]))],
        )
        .await
        .unwrap();
        assert_eq!(records(sm.kv().as_ref()).len(), 1);
    }

    #[tokio::test]
    async fn a_sled_db_written_before_the_audit_trees_opens_with_an_empty_chain() {
        let dir = TempDir::new().unwrap();
        {
            let db = sled::open(dir.path().join("sled")).unwrap();
            for name in ["log", "raft_meta", "entities", "sm_meta"] {
                db.open_tree(name).unwrap();
            }
            db.flush().unwrap();
        }
        let (tx, _) = broadcast::channel(16);
        let (_l, mut sm) = open_store(Backend::Sled, dir.path(), tx).unwrap();
        assert_eq!(sm.state().read().unwrap().audit.head.last_seq(), 0);
        apply(
            &mut sm,
            vec![Entry::new_normal(log_id(1, 1), append_audit(&["{}"]))],
        )
        .await
        .unwrap();
        assert_eq!(records(sm.kv().as_ref()).len(), 1);
    }

    #[test]
    fn a_store_whose_head_disagrees_with_its_records_refuses_to_open() {
        let dir = TempDir::new().unwrap();
        let kv = Backend::Redb.open_kv(dir.path()).unwrap();
        let mut head = keystore::audit::ChainHead::genesis();
        let r = head.append("{}".into());
        // A record without the head that should have been committed with it.
        kv.commit(vec![Op::Put(
            Table::Audit,
            1u64.to_be_bytes().to_vec(),
            serde_json::to_vec(&r).unwrap(),
        )])
        .unwrap();
        let (tx, _) = broadcast::channel(16);
        assert!(StateMachineStore::load(kv, tx).is_err());
    }
}
