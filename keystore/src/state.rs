//! Which key state allows which operation: AWS's "Key states of AWS KMS keys" table.
//!
//! | operation                            | Enabled | Disabled | PendingDeletion | PendingImport | Unavailable |
//! |--------------------------------------|---------|----------|-----------------|---------------|-------------|
//! | DescribeKey, ListResourceTags        | ✓       | ✓        | ✓               | ✓             | ✓           |
//! | ListAliases, DeleteAlias             | ✓       | ✓        | ✓               | ✓             | ✓           |
//! | ListGrants, RetireGrant, RevokeGrant | ✓       | ✓        | ✓               | ✓             | ✓           |
//! | PutKeyPolicy, GetKeyPolicy, ListKeyPolicies | ✓ | ✓      | ✓               | ✓             | ✓           |
//! | Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*, GenerateDataKeyPair*, GetPublicKey, Sign, Verify, GenerateMac, VerifyMac, DeriveSharedSecret | ✓ | Disabled | InvalidState | InvalidState | InvalidState |
//! | EnableKey, DisableKey                | ✓       | ✓        | InvalidState    | InvalidState  | ✓           |
//! | UpdateKeyDescription, Tag/UntagResource, CreateAlias, UpdateAlias, ScheduleKeyDeletion, CreateGrant | ✓ | ✓ | InvalidState | ✓ | ✓ |
//! | CancelKeyDeletion                    | InvalidState | InvalidState | ✓       | InvalidState  | InvalidState |
//!
//! The multi-region transient states follow their nearest sibling: `Updating` behaves as
//! `Enabled`, `PendingReplicaDeletion` as `PendingDeletion`, and `Creating` allows only the
//! read-only operations.

use crate::error::DomainError;
use crate::model::{KeyRecord, KeyState};

/// Every KMS operation of this phase, as far as key state is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// CreateKey (not key-scoped: always allowed).
    CreateKey,
    /// DescribeKey.
    DescribeKey,
    /// ListResourceTags.
    ListResourceTags,
    /// ListAliases (with or without a KeyId filter).
    ListAliases,
    /// EnableKey.
    EnableKey,
    /// DisableKey.
    DisableKey,
    /// UpdateKeyDescription.
    UpdateKeyDescription,
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletion,
    /// CancelKeyDeletion.
    CancelKeyDeletion,
    /// CreateAlias (checked against the target key).
    CreateAlias,
    /// UpdateAlias (checked against the new target key).
    UpdateAlias,
    /// DeleteAlias (no key check: an alias can always be deleted).
    DeleteAlias,
    /// TagResource.
    TagResource,
    /// UntagResource.
    UntagResource,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
    /// ReEncrypt, checked against the source key.
    ReEncryptFrom,
    /// ReEncrypt, checked against the destination key.
    ReEncryptTo,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// GetPublicKey (asymmetric keys).
    GetPublicKey,
    /// Sign.
    Sign,
    /// Verify.
    Verify,
    /// GenerateMac.
    GenerateMac,
    /// VerifyMac.
    VerifyMac,
    /// DeriveSharedSecret.
    DeriveSharedSecret,
    /// GenerateDataKeyPair (checked against the symmetric key that seals the private key).
    GenerateDataKeyPair,
    /// GenerateDataKeyPairWithoutPlaintext.
    GenerateDataKeyPairWithoutPlaintext,
    /// CreateGrant.
    CreateGrant,
    /// ListGrants.
    ListGrants,
    /// RetireGrant (works in every state, so grants of any key can be cleaned up).
    RetireGrant,
    /// RevokeGrant (works in every state).
    RevokeGrant,
    /// PutKeyPolicy (every state: access to a key must stay repairable).
    PutKeyPolicy,
    /// GetKeyPolicy.
    GetKeyPolicy,
    /// ListKeyPolicies.
    ListKeyPolicies,
}

impl Operation {
    /// Every operation, for tables and tests.
    pub const ALL: &'static [Operation] = &[
        Operation::CreateKey,
        Operation::DescribeKey,
        Operation::ListResourceTags,
        Operation::ListAliases,
        Operation::EnableKey,
        Operation::DisableKey,
        Operation::UpdateKeyDescription,
        Operation::ScheduleKeyDeletion,
        Operation::CancelKeyDeletion,
        Operation::CreateAlias,
        Operation::UpdateAlias,
        Operation::DeleteAlias,
        Operation::TagResource,
        Operation::UntagResource,
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::ReEncryptFrom,
        Operation::ReEncryptTo,
        Operation::GenerateDataKey,
        Operation::GenerateDataKeyWithoutPlaintext,
        Operation::GetPublicKey,
        Operation::Sign,
        Operation::Verify,
        Operation::GenerateMac,
        Operation::VerifyMac,
        Operation::DeriveSharedSecret,
        Operation::GenerateDataKeyPair,
        Operation::GenerateDataKeyPairWithoutPlaintext,
        Operation::CreateGrant,
        Operation::ListGrants,
        Operation::RetireGrant,
        Operation::RevokeGrant,
        Operation::PutKeyPolicy,
        Operation::GetKeyPolicy,
        Operation::ListKeyPolicies,
    ];

    /// Whether this is a cryptographic operation (uses key material).
    pub fn is_cryptographic(self) -> bool {
        matches!(
            self,
            Operation::Encrypt
                | Operation::Decrypt
                | Operation::ReEncryptFrom
                | Operation::ReEncryptTo
                | Operation::GenerateDataKey
                | Operation::GenerateDataKeyWithoutPlaintext
                | Operation::GetPublicKey
                | Operation::Sign
                | Operation::Verify
                | Operation::GenerateMac
                | Operation::VerifyMac
                | Operation::DeriveSharedSecret
                | Operation::GenerateDataKeyPair
                | Operation::GenerateDataKeyPairWithoutPlaintext
        )
    }

    /// Operations that work in every state (reads, and removals of things that hang off a
    /// key: aliases and grants).
    fn is_read_only(self) -> bool {
        matches!(
            self,
            Operation::CreateKey
                | Operation::DescribeKey
                | Operation::ListResourceTags
                | Operation::ListAliases
                | Operation::DeleteAlias
                | Operation::ListGrants
                | Operation::RetireGrant
                | Operation::RevokeGrant
                | Operation::PutKeyPolicy
                | Operation::GetKeyPolicy
                | Operation::ListKeyPolicies
        )
    }
}

/// How AWS words a state in its error messages (`<arn> is pending deletion.`).
pub fn state_phrase(state: KeyState) -> &'static str {
    match state {
        KeyState::Creating => "creating",
        KeyState::Enabled => "enabled",
        KeyState::Disabled => "disabled",
        KeyState::PendingDeletion => "pending deletion",
        KeyState::PendingImport => "pending import",
        KeyState::PendingReplicaDeletion => "pending replica deletion",
        KeyState::Unavailable => "unavailable",
        KeyState::Updating => "updating",
    }
}

/// Whether `op` may run on `key` in its current state. Crypto operations on a disabled key
/// are `DisabledException`; every other refusal is `KMSInvalidStateException`, worded as AWS
/// words it (`<key ARN> is pending deletion.`).
pub fn check_state(key: &KeyRecord, op: Operation) -> Result<(), DomainError> {
    use KeyState as S;
    if op.is_read_only() {
        return Ok(());
    }
    let invalid =
        || DomainError::InvalidState(format!("{} is {}.", key.arn, state_phrase(key.state)));
    if op == Operation::CancelKeyDeletion {
        return match key.state {
            S::PendingDeletion | S::PendingReplicaDeletion => Ok(()),
            _ => Err(DomainError::InvalidState(format!(
                "{} is not pending deletion.",
                key.arn
            ))),
        };
    }
    match key.state {
        S::Enabled | S::Updating => Ok(()),
        S::Disabled if op.is_cryptographic() => {
            Err(DomainError::Disabled(format!("{} is disabled.", key.arn)))
        }
        S::Disabled => Ok(()),
        S::PendingDeletion | S::PendingReplicaDeletion | S::Creating => Err(invalid()),
        S::PendingImport => match op {
            _ if op.is_cryptographic() => Err(invalid()),
            Operation::EnableKey | Operation::DisableKey => Err(invalid()),
            _ => Ok(()),
        },
        S::Unavailable if op.is_cryptographic() => Err(invalid()),
        S::Unavailable => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeySpec, KeyUsage, Origin};
    use std::collections::BTreeMap;

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn key(state: KeyState) -> KeyRecord {
        KeyRecord {
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            arn: ARN.into(),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            state,
            creation_date: 0,
            deletion_date: None,
            pending_deletion_window_days: None,
            tags: BTreeMap::new(),
            policy: String::new(),
            multi_region: false,
            materials: vec![],
            current_material_version: 1,
            rotation: Default::default(),
            import: Default::default(),
            multi_region_config: None,
        }
    }

    /// The expected outcome of every operation in every state: `ok`, `dis` (DisabledException)
    /// or `inv` (KMSInvalidStateException). Columns follow `STATES`.
    const TABLE: &str = "
        #                                Enab Disa PDel PImp Unav Crea Updt PRep
        CreateKey                        ok   ok   ok   ok   ok   ok   ok   ok
        DescribeKey                      ok   ok   ok   ok   ok   ok   ok   ok
        ListResourceTags                 ok   ok   ok   ok   ok   ok   ok   ok
        ListAliases                      ok   ok   ok   ok   ok   ok   ok   ok
        DeleteAlias                      ok   ok   ok   ok   ok   ok   ok   ok
        EnableKey                        ok   ok   inv  inv  ok   inv  ok   inv
        DisableKey                       ok   ok   inv  inv  ok   inv  ok   inv
        UpdateKeyDescription             ok   ok   inv  ok   ok   inv  ok   inv
        ScheduleKeyDeletion              ok   ok   inv  ok   ok   inv  ok   inv
        CancelKeyDeletion                inv  inv  ok   inv  inv  inv  inv  ok
        CreateAlias                      ok   ok   inv  ok   ok   inv  ok   inv
        UpdateAlias                      ok   ok   inv  ok   ok   inv  ok   inv
        TagResource                      ok   ok   inv  ok   ok   inv  ok   inv
        UntagResource                    ok   ok   inv  ok   ok   inv  ok   inv
        Encrypt                          ok   dis  inv  inv  inv  inv  ok   inv
        Decrypt                          ok   dis  inv  inv  inv  inv  ok   inv
        ReEncryptFrom                    ok   dis  inv  inv  inv  inv  ok   inv
        ReEncryptTo                      ok   dis  inv  inv  inv  inv  ok   inv
        GenerateDataKey                  ok   dis  inv  inv  inv  inv  ok   inv
        GenerateDataKeyWithoutPlaintext  ok   dis  inv  inv  inv  inv  ok   inv
        GetPublicKey                     ok   dis  inv  inv  inv  inv  ok   inv
        Sign                             ok   dis  inv  inv  inv  inv  ok   inv
        Verify                           ok   dis  inv  inv  inv  inv  ok   inv
        GenerateMac                      ok   dis  inv  inv  inv  inv  ok   inv
        VerifyMac                        ok   dis  inv  inv  inv  inv  ok   inv
        DeriveSharedSecret               ok   dis  inv  inv  inv  inv  ok   inv
        GenerateDataKeyPair              ok   dis  inv  inv  inv  inv  ok   inv
        GenerateDataKeyPairWithoutPlaintext ok dis inv  inv  inv  inv  ok   inv
        CreateGrant                      ok   ok   inv  ok   ok   inv  ok   inv
        ListGrants                       ok   ok   ok   ok   ok   ok   ok   ok
        RetireGrant                      ok   ok   ok   ok   ok   ok   ok   ok
        RevokeGrant                      ok   ok   ok   ok   ok   ok   ok   ok
        PutKeyPolicy                     ok   ok   ok   ok   ok   ok   ok   ok
        GetKeyPolicy                     ok   ok   ok   ok   ok   ok   ok   ok
        ListKeyPolicies                  ok   ok   ok   ok   ok   ok   ok   ok
    ";

    const STATES: [KeyState; 8] = [
        KeyState::Enabled,
        KeyState::Disabled,
        KeyState::PendingDeletion,
        KeyState::PendingImport,
        KeyState::Unavailable,
        KeyState::Creating,
        KeyState::Updating,
        KeyState::PendingReplicaDeletion,
    ];

    fn outcome(r: Result<(), DomainError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(DomainError::Disabled(_)) => "dis",
            Err(DomainError::InvalidState(_)) => "inv",
            Err(other) => panic!("unexpected error kind {other:?}"),
        }
    }

    #[test]
    fn every_operation_in_every_state_follows_the_aws_table() {
        let mut covered = Vec::new();
        for line in TABLE.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            let op = *Operation::ALL
                .iter()
                .find(|op| format!("{op:?}") == cols[0])
                .unwrap_or_else(|| panic!("unknown operation {}", cols[0]));
            assert_eq!(cols.len(), 1 + STATES.len(), "{line}");
            for (state, want) in STATES.iter().zip(&cols[1..]) {
                let got = outcome(check_state(&key(*state), op));
                assert_eq!(got, *want, "{op:?} in {state:?}");
            }
            covered.push(op);
        }
        covered.sort();
        let mut all = Operation::ALL.to_vec();
        all.sort();
        assert_eq!(
            covered, all,
            "the table must list every operation exactly once"
        );
    }

    #[test]
    fn crypto_on_a_disabled_key_says_the_arn_is_disabled() {
        assert_eq!(
            check_state(&key(KeyState::Disabled), Operation::Encrypt),
            Err(DomainError::Disabled(format!("{ARN} is disabled.")))
        );
    }

    #[test]
    fn crypto_on_a_key_pending_deletion_says_it_is_pending_deletion() {
        assert_eq!(
            check_state(&key(KeyState::PendingDeletion), Operation::Decrypt),
            Err(DomainError::InvalidState(format!(
                "{ARN} is pending deletion."
            )))
        );
    }

    #[test]
    fn crypto_on_a_key_pending_import_says_it_is_pending_import() {
        assert_eq!(
            check_state(&key(KeyState::PendingImport), Operation::GenerateDataKey),
            Err(DomainError::InvalidState(format!(
                "{ARN} is pending import."
            )))
        );
    }

    #[test]
    fn cancelling_deletion_of_a_live_key_says_it_is_not_pending_deletion() {
        assert_eq!(
            check_state(&key(KeyState::Enabled), Operation::CancelKeyDeletion),
            Err(DomainError::InvalidState(format!(
                "{ARN} is not pending deletion."
            )))
        );
    }

    #[test]
    fn only_the_fourteen_crypto_operations_are_cryptographic() {
        let crypto: Vec<_> = Operation::ALL
            .iter()
            .filter(|op| op.is_cryptographic())
            .collect();
        assert_eq!(crypto.len(), 14);
    }
}
