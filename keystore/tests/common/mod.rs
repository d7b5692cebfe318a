//! Builders shared by the integration tests: a small world of keys and aliases.
#![allow(dead_code)]

use std::collections::BTreeMap;

use keystore::ids::{alias_arn, key_arn};
use keystore::model::{
    AliasRecord, KeyRecord, KeySpec, KeyState, KeyUsage, MaterialVersion, Origin, State, Wrapped,
};

pub const ACCT: &str = "111122223333";
pub const OTHER: &str = "444455556666";
pub const REGION: &str = "us-east-1";
pub const DAY: u64 = 86_400_000;

pub fn arn(key_id: &str) -> String {
    key_arn(REGION, ACCT, key_id)
}

pub fn key_in(account: &str, key_id: &str, state: KeyState) -> KeyRecord {
    KeyRecord {
        key_id: key_id.into(),
        arn: key_arn(REGION, account, key_id),
        account_id: account.into(),
        region: REGION.into(),
        description: String::new(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state,
        creation_date: 1,
        deletion_date: None,
        pending_deletion_window_days: None,
        tags: BTreeMap::new(),
        policy: keystore::policy::default_key_policy(account),
        multi_region: false,
        materials: vec![MaterialVersion {
            version: 1,
            wrapped: Wrapped {
                domain_key_version: 1,
                nonce: [0; 12],
                ciphertext: vec![0; 48],
            },
            created_at: 1,
        }],
        current_material_version: 1,
        rotation: Default::default(),
        import: Default::default(),
        multi_region_config: None,
    }
}

pub fn key(key_id: &str, state: KeyState) -> KeyRecord {
    key_in(ACCT, key_id, state)
}

pub fn alias(name: &str, target: &str) -> AliasRecord {
    AliasRecord {
        alias_name: name.into(),
        account_id: ACCT.into(),
        alias_arn: alias_arn(REGION, ACCT, name),
        target_key_id: target.into(),
        creation_date: 1,
        last_updated_date: 1,
    }
}

pub fn insert_key(s: &mut State, k: KeyRecord) {
    s.keys.insert(k.key_id.clone(), k);
}

pub fn insert_alias(s: &mut State, a: AliasRecord) {
    s.aliases
        .insert((a.account_id.clone(), a.alias_name.clone()), a);
}

/// Keys in each interesting state, two aliases, and a key of another account.
///
/// - `k-enabled` (alias/app), `k-disabled`, `k-other` (account OTHER),
/// - `k-pending`: PendingDeletion, due at `10 * DAY` (alias/old, alias/older),
/// - `k-import`: PendingImport, origin EXTERNAL, no material.
pub fn world() -> State {
    let mut s = State::default();
    insert_key(&mut s, key("k-enabled", KeyState::Enabled));
    insert_key(&mut s, key("k-disabled", KeyState::Disabled));
    let mut pending = key("k-pending", KeyState::PendingDeletion);
    pending.deletion_date = Some(10 * DAY);
    pending.pending_deletion_window_days = Some(7);
    insert_key(&mut s, pending);
    let mut import = key("k-import", KeyState::PendingImport);
    import.origin = Origin::External;
    import.materials.clear();
    insert_key(&mut s, import);
    insert_key(&mut s, key_in(OTHER, "k-other", KeyState::Enabled));
    insert_alias(&mut s, alias("alias/app", "k-enabled"));
    insert_alias(&mut s, alias("alias/old", "k-pending"));
    insert_alias(&mut s, alias("alias/older", "k-pending"));
    s
}

// ---- grants and identities ----

use keystore::grant::{account_root_arn, GrantConstraints, GrantOperation, GrantRecord};
use keystore::model::{AccessKeyRecord, IdentityRecord};

/// The principal grants are given to in these tests.
pub const GRANTEE: &str = "arn:aws:iam::111122223333:role/app";
/// A retiring principal.
pub const RETIRER: &str = "arn:aws:iam::111122223333:role/ops";
/// `arn:aws:iam::ACCT:user/alice`.
pub const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
/// `arn:aws:iam::ACCT:user/bob`.
pub const BOB: &str = "arn:aws:iam::111122223333:user/bob";

/// An unnamed, unconstrained grant on `key_id` (account ACCT) to GRANTEE, created at 1.
pub fn grant_on(key_id: &str, grant_id: &str, operations: &[GrantOperation]) -> GrantRecord {
    GrantRecord {
        grant_id: grant_id.into(),
        key_id: key_id.into(),
        key_arn: arn(key_id),
        account_id: ACCT.into(),
        name: None,
        grantee_principal: GRANTEE.into(),
        retiring_principal: None,
        issuing_account: account_root_arn(ACCT),
        operations: operations.to_vec(),
        constraints: None,
        creation_date: 1,
        token_nonce: [7; 16],
    }
}

pub fn insert_grant(s: &mut State, g: GrantRecord) {
    s.grants.insert((g.key_id.clone(), g.grant_id.clone()), g);
}

/// Constraints with only EncryptionContextSubset = `pairs`.
pub fn subset(pairs: &[(&str, &str)]) -> Option<GrantConstraints> {
    Some(GrantConstraints {
        encryption_context_equals: None,
        encryption_context_subset: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    })
}

pub fn identity(arn: &str, account: &str) -> IdentityRecord {
    IdentityRecord {
        arn: arn.into(),
        account_id: account.into(),
        created_at: 1,
        ..Default::default()
    }
}

pub fn access_key(id: &str, principal: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: id.into(),
        principal_arn: principal.into(),
        account_id: ACCT.into(),
        wrapped_secret: Wrapped {
            domain_key_version: 1,
            nonce: [1; 12],
            ciphertext: vec![2; 56],
        },
        created_at: 1,
    }
}

/// world() plus grants and identities:
///
/// - `k-enabled`: `g1` named `app-grant` (Decrypt, Encrypt) and `g2` (DescribeKey,
///   RetireGrant; retiring principal RETIRER), both to GRANTEE;
/// - `k-pending`: `g3` (Decrypt);
/// - identities ALICE (access keys AKIA1, AKIA2; policy `read`) and BOB (access key AKIA3).
pub fn with_grants() -> State {
    let mut s = world();
    let mut g1 = grant_on(
        "k-enabled",
        "g1",
        &[GrantOperation::Decrypt, GrantOperation::Encrypt],
    );
    g1.name = Some("app-grant".into());
    insert_grant(&mut s, g1);
    let mut g2 = grant_on(
        "k-enabled",
        "g2",
        &[GrantOperation::DescribeKey, GrantOperation::RetireGrant],
    );
    g2.retiring_principal = Some(RETIRER.into());
    insert_grant(&mut s, g2);
    insert_grant(
        &mut s,
        grant_on("k-pending", "g3", &[GrantOperation::Decrypt]),
    );
    let mut alice = identity(ALICE, ACCT);
    alice.policies.insert("read".into(), "{}".into());
    s.identities.insert(ALICE.into(), alice);
    s.identities.insert(BOB.into(), identity(BOB, ACCT));
    for (id, who) in [("AKIA1", ALICE), ("AKIA2", ALICE), ("AKIA3", BOB)] {
        s.access_keys.insert(id.into(), access_key(id, who));
    }
    s
}
