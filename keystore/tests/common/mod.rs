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
