//! Multi-region keys in the pure model: two region states, and a replicator simulated the
//! way fronts run it (outbox -> InstallReplica in the target -> AckReplication in the
//! source), so the whole protocol is checked without I/O. Material is opaque here; its
//! transport crypto has its own tests in `keystore::transport`.

mod common;

use std::collections::BTreeMap;

use common::*;
use keystore::apply;
use keystore::command::{Command, CommandOutput, Proposal, Query, QueryOutput};
use keystore::error::DomainError;
use keystore::ids::key_arn;
use keystore::model::{KeyRecord, KeyState, MaterialVersion, State, Wrapped};
use keystore::multi_region::{
    MultiRegionConfig, MultiRegionKeyType, OutboxKind, ReplicaInit, ReplicaInstall,
};
use keystore::rotation::{next_version, RotationType};

const A: &str = "us-east-1";
const B: &str = "us-west-2";
const C: &str = "eu-west-1";
const ID: &str = "mrk-1234abcd12ab34cd56ef1234567890ab";

fn run(st: &mut State, now: u64, command: Command) -> Result<CommandOutput, DomainError> {
    let before = st.clone();
    let (r, changes) = apply(st, &Proposal { now, command });
    if r.is_err() {
        assert_eq!(
            *st, before,
            "a refused command must leave the state untouched"
        );
        assert!(changes.is_empty());
    }
    r
}

fn material(version: u32, tag: u8) -> MaterialVersion {
    MaterialVersion {
        version,
        wrapped: Wrapped {
            domain_key_version: 1,
            nonce: [tag; 12],
            ciphertext: vec![tag; 48],
        },
        created_at: 1,
    }
}

fn primary_record(region: &str) -> KeyRecord {
    let mut k = key(ID, KeyState::Enabled);
    k.arn = key_arn(region, ACCT, ID);
    k.region = region.into();
    k.multi_region = true;
    k.multi_region_config = Some(Box::new(MultiRegionConfig::primary(region)));
    k
}

fn init(desc: &str) -> ReplicaInit {
    ReplicaInit {
        description: desc.into(),
        policy: keystore::policy::default_key_policy(ACCT),
        tags: BTreeMap::from([("team".to_string(), desc.to_string())]),
    }
}

fn cfg(st: &State) -> &MultiRegionConfig {
    st.keys[ID].multi_region_config.as_deref().unwrap()
}

/// One replicator pass from `src` (region `src_region`) into `dst` (region `dst_region`),
/// doing what a front does: build the delivery from the outbox entries of that region,
/// "re-wrap" (here: mark) the material, propose InstallReplica in the target, then ack.
fn replicate(
    src: &mut State,
    src_region: &str,
    dst: &mut State,
    dst_region: &str,
    now: u64,
) -> bool {
    let k = src.keys[ID].clone();
    let c = k.multi_region_config.as_deref().unwrap();
    let entries: Vec<_> = c
        .outbox
        .iter()
        .filter(|e| e.region == dst_region)
        .cloned()
        .collect();
    let Some(through) = entries.iter().map(|e| e.seq).max() else {
        return false;
    };
    let mut init = None;
    let mut promote = false;
    let mut materials = vec![];
    for e in &entries {
        match &e.kind {
            OutboxKind::CreateReplica(i) => init = Some(i.clone()),
            OutboxKind::Material { version } => {
                let m = k.materials.iter().find(|m| m.version == *version).unwrap();
                // Re-wrapped under the target's domain key: distinguishable bytes.
                let mut m = m.clone();
                m.wrapped.ciphertext[0] ^= 0xff;
                materials.push(m);
            }
            OutboxKind::Config => {}
            OutboxKind::Promote => promote = true,
        }
    }
    let install = ReplicaInstall {
        key_id: ID.into(),
        arn: key_arn(dst_region, ACCT, ID),
        account_id: k.account_id.clone(),
        source_region: src_region.into(),
        key_spec: k.key_spec,
        key_usage: k.key_usage,
        origin: k.origin,
        creation_date: k.creation_date,
        primary_region: c.primary_region.clone(),
        replica_regions: c.replica_regions.clone(),
        epoch: c.epoch,
        current_version: k.current_material_version,
        init,
        materials,
        promote,
    };
    run(
        dst,
        now,
        Command::InstallReplica {
            install: Box::new(install),
        },
    )
    .unwrap();
    run(
        src,
        now,
        Command::AckReplication {
            key_id: ID.into(),
            region: dst_region.into(),
            through_seq: through,
        },
    )
    .unwrap();
    true
}

fn rotate(st: &mut State, now: u64) {
    let v = next_version(&st.keys[ID]);
    run(
        st,
        now,
        Command::StartOnDemandRotation {
            key_id: ID.into(),
            prepared: Some(material(v, v as u8)),
        },
    )
    .unwrap();
    run(
        st,
        now,
        Command::RotateKey {
            key_id: ID.into(),
            to_version: v,
            rotation_type: RotationType::OnDemand,
        },
    )
    .unwrap();
    assert_eq!(st.keys[ID].current_material_version, v);
}

fn region_a_with_primary() -> State {
    let mut a = State::default();
    run(
        &mut a,
        1,
        Command::CreateKey {
            record: primary_record(A),
        },
    )
    .unwrap();
    a
}

#[test]
fn create_replicate_rotate_converge_and_independent_properties_stay_per_region() {
    let mut a = region_a_with_primary();
    let mut b = State::default();
    run(
        &mut a,
        2,
        Command::ReplicateKey {
            key_id: ID.into(),
            replica_region: B.into(),
            init: init("b"),
        },
    )
    .unwrap();
    let kinds: Vec<_> = cfg(&a)
        .outbox
        .iter()
        .map(|e| (e.region.as_str(), e.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (B, OutboxKind::CreateReplica(init("b"))),
            (B, OutboxKind::Material { version: 1 })
        ]
    );
    assert!(matches!(
        keystore::query(&a, &Query::ReplicationOutbox),
        QueryOutput::Keys { keys, .. } if keys.len() == 1
    ));
    assert_eq!(cfg(&a).lag_millis(10)[B], 8);

    assert!(replicate(&mut a, A, &mut b, B, 3));
    assert!(
        cfg(&a).outbox.is_empty(),
        "acknowledged entries are removed"
    );
    let r = &b.keys[ID];
    assert_eq!(r.state, KeyState::Enabled);
    assert_eq!(r.region, B);
    assert_eq!(r.arn, key_arn(B, ACCT, ID));
    assert_eq!(r.description, "b");
    assert_eq!(r.materials.len(), 1);
    let rc = r.multi_region_config.as_deref().unwrap();
    assert_eq!(rc.key_type, MultiRegionKeyType::Replica);
    assert_eq!(rc.primary_region, A);
    assert!(rc.replica_regions.contains(B));

    // Rotation on the primary queues the new version, whatever command added it.
    rotate(&mut a, 4);
    assert_eq!(cfg(&a).outbox.len(), 1);
    assert_eq!(cfg(&a).outbox[0].kind, OutboxKind::Material { version: 2 });
    // A delivery repeated (two fronts, a lost ack) installs once.
    let snapshot = a.clone();
    assert!(replicate(&mut a, A, &mut b, B, 5));
    let mut a2 = snapshot;
    let b_before = b.clone();
    replicate(&mut a2, A, &mut b, B, 6);
    assert_eq!(
        b.keys[ID], b_before.keys[ID],
        "idempotent by (key, version)"
    );
    assert_eq!(b.keys[ID].current_material_version, 2);
    assert_eq!(
        b.keys[ID]
            .materials
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );

    // Independent properties stay per region.
    run(
        &mut b,
        7,
        Command::UpdateKeyDescription {
            key_id: ID.into(),
            description: "only b".into(),
        },
    )
    .unwrap();
    run(
        &mut b,
        7,
        Command::SetKeyEnabled {
            key_id: ID.into(),
            enabled: false,
        },
    )
    .unwrap();
    assert_eq!(a.keys[ID].description, "");
    assert_eq!(a.keys[ID].state, KeyState::Enabled);
    rotate(&mut a, 8);
    replicate(&mut a, A, &mut b, B, 9);
    assert_eq!(b.keys[ID].description, "only b");
    assert_eq!(b.keys[ID].state, KeyState::Disabled);
    assert_eq!(b.keys[ID].current_material_version, 3);
}

#[test]
fn a_replica_is_creating_until_material_arrives_and_never_rotates_itself() {
    let mut b = State::default();
    let install = ReplicaInstall {
        key_id: ID.into(),
        arn: key_arn(B, ACCT, ID),
        account_id: ACCT.into(),
        source_region: A.into(),
        key_spec: keystore::model::KeySpec::SymmetricDefault,
        key_usage: keystore::model::KeyUsage::EncryptDecrypt,
        origin: keystore::model::Origin::AwsKms,
        creation_date: 1,
        primary_region: A.into(),
        replica_regions: [B.to_string()].into(),
        epoch: 0,
        current_version: 1,
        init: Some(init("b")),
        materials: vec![],
        promote: false,
    };
    run(
        &mut b,
        1,
        Command::InstallReplica {
            install: Box::new(install.clone()),
        },
    )
    .unwrap();
    assert_eq!(b.keys[ID].state, KeyState::Creating);
    let mut with = install.clone();
    with.init = None;
    with.materials = vec![material(1, 1)];
    run(
        &mut b,
        2,
        Command::InstallReplica {
            install: Box::new(with),
        },
    )
    .unwrap();
    assert_eq!(b.keys[ID].state, KeyState::Enabled);
    let err = run(
        &mut b,
        3,
        Command::EnableKeyRotation {
            key_id: ID.into(),
            rotation_period_days: 365,
            prepared: None,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, DomainError::UnsupportedOperation(_)),
        "{err:?}"
    );
    // A delivery for a key this region never saw, without creation data, is refused.
    let mut orphan = install;
    orphan.key_id = "mrk-00000000000000000000000000000000".into();
    orphan.init = None;
    assert!(matches!(
        run(
            &mut b,
            4,
            Command::InstallReplica {
                install: Box::new(orphan)
            }
        ),
        Err(DomainError::NotFound(_))
    ));
}

#[test]
fn replicate_key_refusals() {
    let mut a = region_a_with_primary();
    let rep = |region: &str| Command::ReplicateKey {
        key_id: ID.into(),
        replica_region: region.into(),
        init: init("x"),
    };
    assert!(matches!(
        run(&mut a, 2, rep(A)),
        Err(DomainError::Validation(_))
    ));
    run(&mut a, 2, rep(B)).unwrap();
    assert!(matches!(
        run(&mut a, 3, rep(B)),
        Err(DomainError::AlreadyExists(_))
    ));
    // A second replica: the first learns the new configuration.
    run(&mut a, 4, rep(C)).unwrap();
    assert!(cfg(&a)
        .outbox
        .iter()
        .any(|e| e.region == B && e.kind == OutboxKind::Config));
    // Single-region key.
    let mut st = world();
    let r = run(
        &mut st,
        2,
        Command::ReplicateKey {
            key_id: "k-enabled".into(),
            replica_region: B.into(),
            init: init("x"),
        },
    );
    assert!(
        matches!(r, Err(DomainError::UnsupportedOperation(_))),
        "{r:?}"
    );
    // CreateKey cannot make an mrk without the primary configuration, nor a replica.
    let mut bad = primary_record(A);
    bad.multi_region_config.as_deref_mut().unwrap().key_type = MultiRegionKeyType::Replica;
    assert!(matches!(
        run(&mut State::default(), 1, Command::CreateKey { record: bad }),
        Err(DomainError::Validation(_))
    ));
    let mut bad = primary_record(A);
    bad.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab".into();
    assert!(run(&mut State::default(), 1, Command::CreateKey { record: bad }).is_err());
}

#[test]
fn update_primary_region_moves_the_primary_without_ever_two_primaries() {
    let mut a = region_a_with_primary();
    let mut b = State::default();
    run(
        &mut a,
        2,
        Command::ReplicateKey {
            key_id: ID.into(),
            replica_region: B.into(),
            init: init("b"),
        },
    )
    .unwrap();
    replicate(&mut a, A, &mut b, B, 3);
    assert!(matches!(
        run(
            &mut a,
            4,
            Command::UpdatePrimaryRegion {
                key_id: ID.into(),
                primary_region: C.into()
            }
        ),
        Err(DomainError::NotFound(_))
    ));
    assert!(matches!(
        run(
            &mut b,
            4,
            Command::UpdatePrimaryRegion {
                key_id: ID.into(),
                primary_region: A.into()
            }
        ),
        Err(DomainError::UnsupportedOperation(_))
    ));
    run(
        &mut a,
        4,
        Command::UpdatePrimaryRegion {
            key_id: ID.into(),
            primary_region: B.into(),
        },
    )
    .unwrap();
    assert_eq!(a.keys[ID].state, KeyState::Updating);
    // Updating: no second move, no rotation.
    assert!(run(
        &mut a,
        5,
        Command::UpdatePrimaryRegion {
            key_id: ID.into(),
            primary_region: B.into()
        }
    )
    .is_err());

    // Deliver the promotion but lose the acknowledgement.
    let mut a_lost = a.clone();
    replicate(&mut a_lost, A, &mut b, B, 6);
    let bc = b.keys[ID].multi_region_config.as_deref().unwrap().clone();
    assert_eq!(bc.key_type, MultiRegionKeyType::Primary);
    assert_eq!(bc.primary_region, B);
    assert!(bc.replica_regions.contains(A) && !bc.replica_regions.contains(B));
    // Region A still Updating (frozen, not acting as primary); B's first delivery to A
    // completes the move even without the ack.
    assert_eq!(a.keys[ID].state, KeyState::Updating);
    assert!(replicate(&mut b, B, &mut a, A, 7));
    let ac = cfg(&a);
    assert_eq!(ac.key_type, MultiRegionKeyType::Replica);
    assert_eq!(ac.primary_region, B);
    assert_eq!(a.keys[ID].state, KeyState::Enabled);
    // The lost ack arriving late changes nothing (the entry is gone with the move).
    let before = a.clone();
    run(
        &mut a,
        8,
        Command::AckReplication {
            key_id: ID.into(),
            region: B.into(),
            through_seq: 99,
        },
    )
    .unwrap();
    assert_eq!(a, before);

    // B rotates, A receives.
    rotate(&mut b, 9);
    replicate(&mut b, B, &mut a, A, 10);
    assert_eq!(a.keys[ID].current_material_version, 2);
    // A stale delivery from A's primary days (epoch 0, naming A primary) cannot flip B back.
    let _ = a_lost;
    let stale = ReplicaInstall {
        key_id: ID.into(),
        arn: key_arn(B, ACCT, ID),
        account_id: ACCT.into(),
        source_region: A.into(),
        key_spec: keystore::model::KeySpec::SymmetricDefault,
        key_usage: keystore::model::KeyUsage::EncryptDecrypt,
        origin: keystore::model::Origin::AwsKms,
        creation_date: 1,
        primary_region: A.into(),
        replica_regions: [B.to_string()].into(),
        epoch: 0,
        current_version: 1,
        init: None,
        materials: vec![],
        promote: false,
    };
    let r = run(
        &mut b,
        11,
        Command::InstallReplica {
            install: Box::new(stale),
        },
    );
    assert!(matches!(r, Ok(CommandOutput::Done)), "{r:?}");
    assert_eq!(
        b.keys[ID].multi_region_config.as_deref().unwrap().key_type,
        MultiRegionKeyType::Primary
    );
}

#[test]
fn scheduling_deletion_of_a_primary_with_replicas_waits_for_them() {
    let mut a = region_a_with_primary();
    run(
        &mut a,
        2,
        Command::ReplicateKey {
            key_id: ID.into(),
            replica_region: B.into(),
            init: init("b"),
        },
    )
    .unwrap();
    run(
        &mut a,
        3,
        Command::ScheduleKeyDeletion {
            key_id: ID.into(),
            pending_window_days: 7,
        },
    )
    .unwrap();
    assert_eq!(a.keys[ID].state, KeyState::PendingReplicaDeletion);
    assert_eq!(a.keys[ID].deletion_date, None);
    run(
        &mut a,
        4 * DAY,
        Command::RemoveReplicaRegion {
            key_id: ID.into(),
            region: B.into(),
        },
    )
    .unwrap();
    assert_eq!(a.keys[ID].state, KeyState::PendingDeletion);
    assert_eq!(a.keys[ID].deletion_date, Some(11 * DAY));
    // A primary without replicas goes straight to PendingDeletion.
    let mut solo = region_a_with_primary();
    run(
        &mut solo,
        3,
        Command::ScheduleKeyDeletion {
            key_id: ID.into(),
            pending_window_days: 7,
        },
    )
    .unwrap();
    assert_eq!(solo.keys[ID].state, KeyState::PendingDeletion);
}

#[test]
fn a_state_with_multi_region_keys_round_trips_and_old_records_still_read() {
    let mut a = region_a_with_primary();
    run(
        &mut a,
        2,
        Command::ReplicateKey {
            key_id: ID.into(),
            replica_region: B.into(),
            init: init("b"),
        },
    )
    .unwrap();
    let json = serde_json::to_vec(&a).unwrap();
    assert_eq!(serde_json::from_slice::<State>(&json).unwrap(), a);
    // A single-region key serializes without the field, as before.
    let plain = serde_json::to_string(&key("k", KeyState::Enabled)).unwrap();
    assert!(!plain.contains("multi_region_config"));
    let back: KeyRecord = serde_json::from_str(&plain).unwrap();
    assert!(back.multi_region_config.is_none());
}
