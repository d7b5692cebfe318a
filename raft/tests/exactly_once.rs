//! Exactly-once application in the state machine: an entry whose request id was already applied
//! changes nothing and is answered with the first copy's response; the table of remembered ids
//! is persisted with the batch, survives a restart, travels in snapshots and is bounded by
//! leader time. On both backends.

use keystore::command::{Change, Command, CommandOutput, Proposal};
use keystore::error::DomainError;
use keystore::model::{KeyRecord, KeySpec, KeyState, KeyUsage, MaterialVersion, Origin, Wrapped};
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use raft::store::dedup::WINDOW_MS;
use raft::store::{open_store, SnapshotData, StateMachineStore, Table};
use raft::types::{Entry, LogId, Request, RequestId, Response};
use raft::{Backend, WatchEvent};
use tempfile::TempDir;
use tokio::sync::broadcast;

const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn log_id(index: u64) -> LogId {
    use openraft::vote::RaftLeaderIdExt;
    LogId::new(
        <raft::types::TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(1, 1),
        index,
    )
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

fn describe(text: &str) -> Command {
    Command::UpdateKeyDescription {
        key_id: KEY_ID.into(),
        description: text.into(),
    }
}

fn entry(index: u64, now: u64, id: Option<u128>, command: Command) -> Entry {
    Entry::new_normal(
        log_id(index),
        Request {
            proposal: Proposal { now, command },
            request_id: id.map(RequestId),
        },
    )
}

async fn apply(sm: &mut StateMachineStore, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

fn description(sm: &StateMachineStore) -> String {
    sm.state().read().unwrap().keys[KEY_ID].description.clone()
}

fn key_response(description: &str) -> Response {
    Ok(CommandOutput::Key(Box::new(KeyRecord {
        description: description.into(),
        ..key()
    })))
}

fn changes(rx: &mut broadcast::Receiver<WatchEvent>) -> Vec<WatchEvent> {
    let mut v = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        v.push(ev);
    }
    v
}

const CREATE: u128 = 1;
const SET_X: u128 = 2;
const SET_Y: u128 = 3;

async fn a_retried_proposal_applies_once(backend: Backend) {
    let dir = TempDir::new().unwrap();
    {
        let (tx, mut rx) = broadcast::channel(64);
        let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
        // A create and its retry in one batch; "x", then another client's "y", then the retry
        // of "x" (the linearizability violation exactly-once prevents) in the next.
        apply(
            &mut sm,
            vec![
                entry(1, 10, Some(CREATE), Command::CreateKey { record: key() }),
                entry(2, 11, Some(CREATE), Command::CreateKey { record: key() }),
                entry(3, 12, Some(SET_X), describe("x")),
            ],
        )
        .await;
        apply(
            &mut sm,
            vec![
                entry(4, 13, Some(SET_Y), describe("y")),
                entry(5, 14, Some(SET_X), describe("x")),
            ],
        )
        .await;
        assert_eq!(description(&sm), "y", "the retry of \"x\" did not re-apply");
        assert_eq!(sm.state().read().unwrap().keys.len(), 1);
        // One watch event per applied copy; the duplicates touched nothing.
        let key_changed = WatchEvent::Changed(Change::Key(KEY_ID.into()));
        assert_eq!(changes(&mut rx), vec![key_changed.clone(); 3]);
        // What the duplicates were answered: the first copies' responses (the created key,
        // not AlreadyExists; the key as "x" left it).
        assert_eq!(sm.remembered(&RequestId(CREATE)), Some(key_response("")));
        assert_eq!(sm.remembered(&RequestId(SET_X)), Some(key_response("x")));
        assert_eq!(sm.remembered(&RequestId(SET_Y)), Some(key_response("y")));
        let rows = sm.remembered_rows();
        assert_eq!(
            rows.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 3, 4],
            "one row per applied id, at the index that applied it"
        );
    }

    // Restart: the table is read back, so a retry arriving now is still recognised.
    let (tx, mut rx) = broadcast::channel(64);
    let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
    assert_eq!(sm.remembered(&RequestId(SET_X)), Some(key_response("x")));
    apply(&mut sm, vec![entry(6, 15, Some(SET_X), describe("x"))]).await;
    assert_eq!(description(&sm), "y");
    assert!(changes(&mut rx).is_empty());

    // A snapshot carries the table to a node that catches up by installing it.
    let mut builder = sm.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.unwrap();
    let follower_dir = TempDir::new().unwrap();
    {
        let (tx, _) = broadcast::channel(64);
        let (_f, mut follower) = open_store(backend, follower_dir.path(), tx).unwrap();
        // Rows the follower had before are replaced by the snapshot's.
        apply(
            &mut follower,
            vec![entry(1, 10, Some(99), describe("stale"))],
        )
        .await;
        follower
            .install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
        assert_eq!(follower.remembered_rows(), sm.remembered_rows());
    }
    let (tx, mut rx) = broadcast::channel(64);
    let (_f, mut follower) = open_store(backend, follower_dir.path(), tx).unwrap();
    assert_eq!(
        follower.remembered_rows(),
        sm.remembered_rows(),
        "installed durably"
    );
    assert_eq!(follower.remembered(&RequestId(99)), None);
    apply(
        &mut follower,
        vec![entry(
            7,
            16,
            Some(CREATE),
            Command::CreateKey { record: key() },
        )],
    )
    .await;
    assert!(changes(&mut rx).is_empty());
    assert_eq!(description(&follower), "y");
}

#[tokio::test]
async fn redb_a_retried_proposal_applies_once_across_restart_and_snapshot() {
    a_retried_proposal_applies_once(Backend::Redb).await;
}

#[tokio::test]
async fn sled_a_retried_proposal_applies_once_across_restart_and_snapshot() {
    a_retried_proposal_applies_once(Backend::Sled).await;
}

async fn entries_without_an_id_apply_every_time(backend: Backend) {
    let dir = TempDir::new().unwrap();
    let (tx, _) = broadcast::channel(64);
    let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
    // As written by the previous binary: the bare proposal, no request id.
    let old = |index, command| {
        let bytes = serde_json::to_vec(&Proposal { now: 1, command }).unwrap();
        Entry::new_normal(log_id(index), serde_json::from_slice(&bytes).unwrap())
    };
    apply(
        &mut sm,
        vec![
            old(1, Command::CreateKey { record: key() }),
            old(2, describe("x")),
            old(3, describe("y")),
        ],
    )
    .await;
    assert_eq!(description(&sm), "y");
    assert!(sm.remembered_rows().is_empty());
    // And with no id nothing is deduplicated: a repeat is applied (and refused by the domain).
    let state_before = sm.state().read().unwrap().clone();
    apply(&mut sm, vec![old(4, Command::CreateKey { record: key() })]).await;
    assert_eq!(sm.state().read().unwrap().state, state_before);
    assert!(matches!(
        keystore::apply::apply(
            &mut state_before.clone(),
            &Proposal {
                now: 1,
                command: Command::CreateKey { record: key() }
            }
        )
        .0,
        Err(DomainError::AlreadyExists(_))
    ));
}

#[tokio::test]
async fn redb_entries_without_an_id_apply_every_time() {
    entries_without_an_id_apply_every_time(Backend::Redb).await;
}

#[tokio::test]
async fn sled_entries_without_an_id_apply_every_time() {
    entries_without_an_id_apply_every_time(Backend::Sled).await;
}

async fn ids_are_forgotten_after_the_window_on_disk_too(backend: Backend) {
    let dir = TempDir::new().unwrap();
    {
        let (tx, _) = broadcast::channel(64);
        let (_log, mut sm) = open_store(backend, dir.path(), tx).unwrap();
        apply(
            &mut sm,
            vec![
                entry(1, 1_000, Some(CREATE), Command::CreateKey { record: key() }),
                entry(2, 2_000, Some(SET_X), describe("x")),
            ],
        )
        .await;
        // Leader time moves past the first id's window, not the second's.
        apply(
            &mut sm,
            vec![entry(3, 1_001 + WINDOW_MS, None, describe("y"))],
        )
        .await;
        assert_eq!(sm.remembered(&RequestId(CREATE)), None);
        assert!(sm.remembered(&RequestId(SET_X)).is_some());
    }
    let (tx, _) = broadcast::channel(64);
    let (_log, sm) = open_store(backend, dir.path(), tx).unwrap();
    let indexes: Vec<u64> = sm.remembered_rows().iter().map(|r| r.index).collect();
    assert_eq!(indexes, vec![2]);
    let on_disk = sm.kv().range(Table::Requests, &[], None).unwrap();
    assert_eq!(
        on_disk.len(),
        1,
        "the evicted row was deleted in the same commit"
    );
}

#[tokio::test]
async fn redb_ids_are_forgotten_after_the_window_on_disk_too() {
    ids_are_forgotten_after_the_window_on_disk_too(Backend::Redb).await;
}

#[tokio::test]
async fn sled_ids_are_forgotten_after_the_window_on_disk_too() {
    ids_are_forgotten_after_the_window_on_disk_too(Backend::Sled).await;
}

#[tokio::test]
async fn a_format_2_snapshot_installs_with_an_empty_request_table() {
    let leader_dir = TempDir::new().unwrap();
    let (tx, _) = broadcast::channel(64);
    let (_l, mut leader) = open_store(Backend::Redb, leader_dir.path(), tx).unwrap();
    apply(
        &mut leader,
        vec![entry(
            1,
            1,
            Some(CREATE),
            Command::CreateKey { record: key() },
        )],
    )
    .await;
    let mut builder = leader.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&snap.snapshot.clone().complete().unwrap()).unwrap();
    assert_eq!(doc["format"], 4);
    assert_eq!(doc["requests"].as_array().unwrap().len(), 1);
    // What a node before request ids wrote: format 2, no "requests".
    let old = format!(
        "{{\"format\":2,\"state\":{},\"audit_records\":[],\"audit_digests\":[]}}",
        doc["state"]
    );

    let dir = TempDir::new().unwrap();
    let (tx, _) = broadcast::channel(64);
    let (_f, mut follower) = open_store(Backend::Redb, dir.path(), tx).unwrap();
    apply(&mut follower, vec![entry(1, 1, Some(7), describe("gone"))]).await;
    follower
        .install_snapshot(&snap.meta, SnapshotData::from_bytes(old.into_bytes()))
        .await
        .unwrap();
    assert_eq!(follower.state().read().unwrap().keys.len(), 1);
    assert!(follower.remembered_rows().is_empty());
    assert!(follower
        .kv()
        .range(Table::Requests, &[], None)
        .unwrap()
        .is_empty());
}
