//! Issue 5 on disk: pruned audit records leave the `audit` table in the apply commit and stay
//! gone across reopen and snapshot install (with `exported_through` / `pruned_through`), and
//! key last-usage marks persist like entities.

use keystore::audit::{sign_digest, AuditRecord, AuditSigningKey, DigestBody};
use keystore::command::{Command, Proposal};
use keystore::model::{KeyRecord, KeySpec, KeyState, KeyUsage, Origin, State};
use keystore::usage::{KeyUsageMark, TrackedOperation, UsageBatch};
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use raft::store::{open_store, KvBackend, SnapshotData, StateMachineStore, Table};
use raft::types::{Entry, LogId, Request, TypeConfig};
use raft::Backend;
use tempfile::TempDir;
use tokio::sync::broadcast;

const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn log_id(index: u64) -> LogId {
    use openraft::vote::RaftLeaderIdExt;
    LogId::new(
        <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(1, 1),
        index,
    )
}

fn entry(index: u64, command: Command) -> Entry {
    Entry::new_normal(log_id(index), Request::from(Proposal { now: 5, command }))
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

fn key() -> KeyRecord {
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
        materials: vec![],
        current_material_version: 1,
        rotation: Default::default(),
        import: Default::default(),
        multi_region_config: None,
    }
}

fn digest_of(sm: &StateMachineStore) -> Command {
    let state = sm.state();
    let state = state.read().unwrap();
    let body = DigestBody::next(
        state.audit.last_digest.as_ref(),
        "us-east-1",
        &state.audit.head,
        5,
    );
    Command::AppendDigest {
        digest: sign_digest(&AuditSigningKey::from_bytes(&[3u8; 32]), body),
    }
}

fn batch(n: usize, marks: Option<Vec<KeyUsageMark>>) -> Command {
    Command::AppendAudit {
        events: (0..n).map(|i| format!("{{\"i\":{i}}}")).collect(),
        usage: marks.map(|marks| UsageBatch {
            tracked_since: 3,
            marks,
        }),
    }
}

fn mark(event_id: &str, at: u64) -> KeyUsageMark {
    KeyUsageMark {
        key_id: KEY_ID.into(),
        operation: TrackedOperation::Encrypt,
        event_id: event_id.into(),
        request_id: "req".into(),
        at,
    }
}

fn seqs(kv: &dyn KvBackend) -> Vec<u64> {
    kv.range(Table::Audit, &[], None)
        .unwrap()
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<AuditRecord>(&v).unwrap().seq)
        .collect()
}

fn retention_of(sm: &StateMachineStore) -> (u64, u64) {
    let state = sm.state();
    let s = state.read().unwrap();
    (s.audit.exported_through, s.audit.pruned_through)
}

/// Key, 8 records (marks on the key), a digest over them, 2 more, export through 8, prune
/// through 5, all applied to a fresh store under `dir`.
async fn pruned_store(backend: Backend, dir: &std::path::Path) -> StateMachineStore {
    let (tx, _) = broadcast::channel(16);
    let (_log, mut sm) = open_store(backend, dir, tx).unwrap();
    apply(
        &mut sm,
        vec![
            entry(1, Command::CreateKey { record: key() }),
            entry(2, batch(4, Some(vec![mark("e1", 10)]))),
            entry(3, batch(4, Some(vec![mark("e2", 20)]))),
        ],
    )
    .await;
    let d = digest_of(&sm);
    apply(
        &mut sm,
        vec![
            entry(4, d),
            entry(5, batch(2, Some(vec![]))),
            entry(6, Command::MarkAuditExported { through_seq: 8 }),
            entry(7, Command::PruneAudit { through_seq: 5 }),
        ],
    )
    .await;
    sm
}

async fn pruned_records_are_gone_and_stay_gone_after_reopen(backend: Backend) {
    let dir = TempDir::new().unwrap();
    {
        let sm = pruned_store(backend, dir.path()).await;
        assert_eq!(seqs(sm.kv().as_ref()), vec![6, 7, 8, 9, 10]);
        assert_eq!(retention_of(&sm), (8, 5));
    }
    // Reopen: the head check passes with a pruned prefix, the marks are back.
    let (tx, _) = broadcast::channel(16);
    let (log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
    assert_eq!(seqs(sm.kv().as_ref()), vec![6, 7, 8, 9, 10]);
    assert_eq!(retention_of(&sm), (8, 5));
    {
        let state = sm.state();
        let s = state.read().unwrap();
        assert_eq!(s.key_last_usage[KEY_ID], mark("e2", 20));
        assert_eq!(s.audit.usage_tracking_start, Some(3));
        assert_eq!(s.audit.head.last_seq(), 10);
    }
    // Pruning the whole signed, exported chain leaves an empty table that still reopens.
    apply(
        &mut sm,
        vec![entry(8, Command::PruneAudit { through_seq: 8 })],
    )
    .await;
    let d = digest_of(&sm);
    apply(
        &mut sm,
        vec![
            entry(9, d),
            entry(10, Command::MarkAuditExported { through_seq: 10 }),
            entry(11, Command::PruneAudit { through_seq: 10 }),
        ],
    )
    .await;
    assert!(seqs(sm.kv().as_ref()).is_empty());
    drop((log, sm));
    let (tx, _) = broadcast::channel(16);
    let (_log, sm) = open_store(backend, dir.path(), tx).unwrap();
    assert_eq!(retention_of(&sm), (10, 10));
    let state = sm.state();
    assert_eq!(state.read().unwrap().audit.head.next_seq, 11);
    // Digests are never pruned.
    assert_eq!(
        sm.kv().range(Table::AuditDigests, &[], None).unwrap().len(),
        2
    );
}

#[tokio::test]
async fn redb_pruned_records_are_gone_and_stay_gone_after_reopen() {
    pruned_records_are_gone_and_stay_gone_after_reopen(Backend::Redb).await;
}

#[tokio::test]
async fn sled_pruned_records_are_gone_and_stay_gone_after_reopen() {
    pruned_records_are_gone_and_stay_gone_after_reopen(Backend::Sled).await;
}

async fn a_snapshot_carries_only_the_unpruned_records(backend: Backend) {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut leader = pruned_store(backend, a.path()).await;
    let mut builder = leader.get_snapshot_builder().await;
    let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
        .await
        .unwrap();
    {
        let (tx, _) = broadcast::channel(16);
        let (_f, mut follower) = open_store(backend, b.path(), tx).unwrap();
        // The follower had a longer, unpruned chain of its own: the snapshot replaces it.
        apply(&mut follower, vec![entry(1, batch(12, None))]).await;
        follower
            .install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
        assert_eq!(seqs(follower.kv().as_ref()), vec![6, 7, 8, 9, 10]);
    }
    let (tx, _) = broadcast::channel(16);
    let (_f, follower) = open_store(backend, b.path(), tx).unwrap();
    assert_eq!(seqs(follower.kv().as_ref()), vec![6, 7, 8, 9, 10]);
    assert_eq!(retention_of(&follower), (8, 5));
    let state = follower.state();
    let s: State = state.read().unwrap().clone();
    assert_eq!(s.key_last_usage[KEY_ID], mark("e2", 20));
    // Pruning after the snapshot point applies on the follower as on the leader.
    apply(
        &mut leader,
        vec![entry(8, Command::PruneAudit { through_seq: 8 })],
    )
    .await;
    assert_eq!(seqs(leader.kv().as_ref()), vec![9, 10]);
}

#[tokio::test]
async fn redb_a_snapshot_carries_only_the_unpruned_records() {
    a_snapshot_carries_only_the_unpruned_records(Backend::Redb).await;
}

#[tokio::test]
async fn sled_a_snapshot_carries_only_the_unpruned_records() {
    a_snapshot_carries_only_the_unpruned_records(Backend::Sled).await;
}

/// The leader prunes after taking a snapshot and before sending it: the records the prune
/// deleted are absent from what is sent. The follower installs it, may restart before it
/// replays that prune from the log (even with every record pruned), and ends like the leader.
async fn a_snapshot_sent_after_a_later_prune_converges(backend: Backend) {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut leader = pruned_store(backend, a.path()).await;
    let d = digest_of(&leader);
    apply(
        &mut leader,
        vec![
            entry(8, d),
            entry(9, Command::MarkAuditExported { through_seq: 10 }),
        ],
    )
    .await;
    let mut builder = leader.get_snapshot_builder().await;
    let snap = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
        .await
        .unwrap();
    assert_eq!(retention_of(&leader), (10, 5));
    // After the snapshot point: everything is pruned.
    let prune = entry(10, Command::PruneAudit { through_seq: 10 });
    apply(&mut leader, vec![prune.clone()]).await;
    assert!(seqs(leader.kv().as_ref()).is_empty());

    let sent = leader
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .complete()
        .unwrap();
    {
        let (tx, _) = broadcast::channel(16);
        let (_f, mut follower) = open_store(backend, b.path(), tx).unwrap();
        follower
            .install_snapshot(&snap.meta, SnapshotData::decode(&sent).unwrap())
            .await
            .unwrap();
    }
    // Restart before the prune is replayed: the empty table is accepted.
    let (tx, _) = broadcast::channel(16);
    let (_f, mut follower) = open_store(backend, b.path(), tx).unwrap();
    assert!(seqs(follower.kv().as_ref()).is_empty());
    assert_eq!(
        retention_of(&follower),
        (10, 5),
        "the snapshot's state, as taken"
    );
    apply(&mut follower, vec![prune]).await;
    let (fs, ls) = (follower.state(), leader.state());
    assert_eq!(fs.read().unwrap().state, ls.read().unwrap().state);
    assert_eq!(
        fs.read().unwrap().digest_hex(),
        ls.read().unwrap().digest_hex()
    );
    for t in [Table::Audit, Table::AuditDigests] {
        assert_eq!(
            follower.kv().range(t, &[], None).unwrap(),
            leader.kv().range(t, &[], None).unwrap()
        );
    }
}

#[tokio::test]
async fn redb_a_snapshot_sent_after_a_later_prune_converges() {
    a_snapshot_sent_after_a_later_prune_converges(Backend::Redb).await;
}

#[tokio::test]
async fn sled_a_snapshot_sent_after_a_later_prune_converges() {
    a_snapshot_sent_after_a_later_prune_converges(Backend::Sled).await;
}

#[tokio::test]
async fn a_deleted_keys_last_usage_leaves_the_entities_table() {
    let dir = TempDir::new().unwrap();
    let (tx, _) = broadcast::channel(16);
    let (_log, mut sm) = open_store(Backend::Redb, dir.path(), tx).unwrap();
    let mut pending = key();
    pending.state = KeyState::PendingDeletion;
    pending.deletion_date = Some(1);
    pending.pending_deletion_window_days = Some(7);
    apply(
        &mut sm,
        vec![
            entry(1, Command::CreateKey { record: pending }),
            entry(2, batch(1, Some(vec![mark("e1", 1)]))),
        ],
    )
    .await;
    let usage_rows = |sm: &StateMachineStore| {
        sm.kv()
            .range(Table::Entities, &[], None)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k.starts_with(b"{\"KeyLastUsage\""))
            .count()
    };
    assert_eq!(usage_rows(&sm), 1);
    apply(
        &mut sm,
        vec![entry(
            3,
            Command::DeleteDueKey {
                key_id: KEY_ID.into(),
            },
        )],
    )
    .await;
    assert_eq!(usage_rows(&sm), 0);
}
