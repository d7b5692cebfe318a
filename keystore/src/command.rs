//! The replicated command set, the read-only queries, and what applying a command changed.
//!
//! A front validates a request's *shape* (lengths, patterns) before proposing; `apply`
//! re-checks everything that depends on state (existence, key state, uniqueness), because two
//! fronts may race and only the log order decides.

use serde::{Deserialize, Serialize};

use crate::grant::GrantRecord;
use crate::model::{
    AccessKeyRecord, AliasRecord, EpochMillis, IdentityRecord, KeyRecord, MaterialVersion,
};
use crate::rotation::RotationType;

/// A command as it sits in the Raft log: the leader stamps `now` when it proposes, so every
/// replica applies the same time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Leader's wall clock when proposing.
    pub now: EpochMillis,
    /// What to do.
    pub command: Command,
}

/// Everything that changes replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Insert a new key (the front generated id, ARN and wrapped material).
    CreateKey {
        /// The complete record, state Enabled (or PendingImport).
        record: KeyRecord,
    },
    /// EnableKey / DisableKey.
    SetKeyEnabled {
        /// Key id.
        key_id: String,
        /// true = Enabled, false = Disabled.
        enabled: bool,
    },
    /// UpdateKeyDescription.
    UpdateKeyDescription {
        /// Key id.
        key_id: String,
        /// New description.
        description: String,
    },
    /// PutKeyPolicy: replace the key policy (the front validated the document and ran the
    /// lockout safety check).
    PutKeyPolicy {
        /// Key id.
        key_id: String,
        /// The new key policy document.
        policy: String,
    },
    /// ScheduleKeyDeletion: state PendingDeletion, deletion date = now + days.
    ScheduleKeyDeletion {
        /// Key id.
        key_id: String,
        /// 7..=30.
        pending_window_days: u32,
    },
    /// CancelKeyDeletion: back to Disabled, as AWS does.
    CancelKeyDeletion {
        /// Key id.
        key_id: String,
    },
    /// Issued by the Raft leader's scheduler: delete a key whose deletion date has passed
    /// (and its aliases). A no-op if the key is gone, no longer pending, or not yet due, so it
    /// is idempotent across leader changes.
    DeleteDueKey {
        /// Key id.
        key_id: String,
    },
    /// CreateAlias.
    CreateAlias {
        /// Owning account.
        account_id: String,
        /// `alias/…`.
        alias_name: String,
        /// `arn:aws:kms:<region>:<account>:alias/<name>`.
        alias_arn: String,
        /// Target key id (resolved by the front).
        target_key_id: String,
    },
    /// UpdateAlias.
    UpdateAlias {
        /// Owning account.
        account_id: String,
        /// `alias/…`.
        alias_name: String,
        /// New target key id.
        target_key_id: String,
    },
    /// DeleteAlias.
    DeleteAlias {
        /// Owning account.
        account_id: String,
        /// `alias/…`.
        alias_name: String,
    },
    /// TagResource (upsert by tag key).
    TagResource {
        /// Key id.
        key_id: String,
        /// (TagKey, TagValue) pairs.
        tags: Vec<(String, String)>,
    },
    /// UntagResource.
    UntagResource {
        /// Key id.
        key_id: String,
        /// Tag keys to remove (absent ones are ignored, as AWS does).
        tag_keys: Vec<String>,
    },
    /// Create or replace an identity.
    PutIdentity {
        /// The identity.
        identity: IdentityRecord,
    },
    /// Create or replace an access key.
    PutAccessKey {
        /// The access key, secret wrapped.
        record: AccessKeyRecord,
    },
    /// EnableKeyRotation: turn automatic rotation on (or change its period). The front also
    /// hands over the next version's wrapped material, so the leader can later activate it.
    EnableKeyRotation {
        /// Key id.
        key_id: String,
        /// 90..=2560.
        rotation_period_days: u32,
        /// The next version's material, wrapped by the front (kept only if none is prepared).
        prepared: Option<MaterialVersion>,
    },
    /// DisableKeyRotation.
    DisableKeyRotation {
        /// Key id.
        key_id: String,
    },
    /// A front stores the next version's wrapped material with the key ahead of time. A no-op
    /// when material is already prepared or `material` is not for the next version.
    PrepareNextMaterial {
        /// Key id.
        key_id: String,
        /// Version `rotation::next_version(key)`, wrapped under the domain key.
        material: MaterialVersion,
    },
    /// RotateKeyOnDemand: records the request; the leader's scheduler activates it.
    StartOnDemandRotation {
        /// Key id.
        key_id: String,
        /// Next-version material, when the front saw none prepared.
        prepared: Option<MaterialVersion>,
    },
    /// Issued by the Raft leader's scheduler: make the prepared material `to_version`
    /// current. Idempotent, keyed by (key, `to_version`): a no-op unless that exact rotation
    /// is due, so leader changes and retries cannot rotate twice.
    RotateKey {
        /// Key id.
        key_id: String,
        /// The version that becomes current.
        to_version: u32,
        /// Automatic or on demand.
        rotation_type: RotationType,
    },
    /// GetParametersForImport: the front made an RSA wrapping key pair; the store keeps it
    /// (private half wrapped) as the key's newest import parameters, valid 24 h from `now`.
    PutImportParameters {
        /// Key id.
        key_id: String,
        /// `valid_to` is ignored and set by `apply`.
        parameters: crate::import::ImportParameters,
    },
    /// ImportKeyMaterial: material unwrapped and re-wrapped under the domain key by the front.
    ImportKeyMaterial {
        /// Key id.
        key_id: String,
        /// The token id the customer's import token named.
        token_id: String,
        /// Version 1, wrapped under the domain key.
        material: MaterialVersion,
        /// `import::fingerprint` of the material.
        fingerprint: Vec<u8>,
        /// Expires or not.
        expiration_model: crate::import::ExpirationModel,
        /// When it expires (KEY_MATERIAL_EXPIRES only).
        valid_to: Option<EpochMillis>,
    },
    /// DeleteImportedKeyMaterial: material gone, key PendingImport.
    DeleteImportedKeyMaterial {
        /// Key id.
        key_id: String,
    },
    /// Issued by the Raft leader's scheduler: delete imported material whose `ValidTo` has
    /// passed. A no-op unless that is still so, hence idempotent across leader changes.
    ExpireImportedMaterial {
        /// Key id.
        key_id: String,
    },
    /// CreateGrant: the front filled in the random grant id and token nonce and authorized
    /// the caller; `apply` checks the key and `grant::validated`. Returns the stored grant,
    /// or the existing one when a named grant with the same parameters exists (idempotent).
    CreateGrant {
        /// The grant; `creation_date` is set by `apply`.
        grant: GrantRecord,
    },
    /// RetireGrant (the front checked `grant::may_retire` or the caller's policy).
    RetireGrant {
        /// Key id.
        key_id: String,
        /// Grant id.
        grant_id: String,
    },
    /// RevokeGrant.
    RevokeGrant {
        /// Key id.
        key_id: String,
        /// Grant id.
        grant_id: String,
    },
    /// Delete an identity together with its access keys.
    DeleteIdentity {
        /// ARN.
        arn: String,
    },
    /// Create or replace one inline identity policy.
    PutIdentityPolicy {
        /// Identity ARN.
        arn: String,
        /// Policy name.
        name: String,
        /// The JSON document, already validated by the front.
        document: String,
    },
    /// Delete one inline identity policy.
    DeleteIdentityPolicy {
        /// Identity ARN.
        arn: String,
        /// Policy name.
        name: String,
    },
    /// Delete an access key.
    DeleteAccessKey {
        /// Access key id.
        access_key_id: String,
    },
    /// A front's group commit: audit events (CloudTrail JSON text, built and redacted by the
    /// front) appended to the region's hash chain in order.
    AppendAudit {
        /// Event texts, hashed exactly as given.
        events: Vec<String>,
        /// The key-usage marks of `events` (GetKeyLastUsage, see `crate::usage`). `None` in
        /// entries written before usage tracking existed, so replaying them never starts
        /// tracking.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<crate::usage::UsageBatch>,
    },
    /// The leader's periodic signed digest of the chain.
    AppendDigest {
        /// The digest (must follow the newest one).
        digest: crate::audit::DigestRecord,
    },
    /// An export wrote every record up to `through_seq` to durable files: those records may
    /// now be pruned (retention). Refused beyond the chain head or beyond the newest signed
    /// digest; at or below the current mark it is a no-op (it never moves back).
    MarkAuditExported {
        /// Last exported seq (inclusive).
        through_seq: u64,
    },
    /// ReplicateKey, on the primary's region: add a replica region and queue its creation
    /// and every material version in the outbox.
    ReplicateKey {
        /// Key id (`mrk-…`).
        key_id: String,
        /// The new replica's region.
        replica_region: String,
        /// The replica's independent properties.
        init: crate::multi_region::ReplicaInit,
    },
    /// A front of this region received (and verified, and re-wrapped) a delivery from the
    /// primary's region: create the replica, install missing material versions (idempotent
    /// by (key, version)), adopt the configuration, or become the primary.
    InstallReplica {
        /// What arrived.
        install: Box<crate::multi_region::ReplicaInstall>,
    },
    /// The replicator delivered every outbox entry of `region` up to `through_seq`.
    AckReplication {
        /// Key id.
        key_id: String,
        /// Target region.
        region: String,
        /// Highest seq delivered.
        through_seq: u64,
    },
    /// UpdatePrimaryRegion, on the primary's region: the key becomes `Updating` and a
    /// promotion is queued for the new primary region.
    UpdatePrimaryRegion {
        /// Key id.
        key_id: String,
        /// The replica region that becomes primary.
        primary_region: String,
    },
    /// A replica region's key is gone: forget it on the primary (which moves from
    /// PendingReplicaDeletion to PendingDeletion when it was the last one).
    RemoveReplicaRegion {
        /// Key id.
        key_id: String,
        /// The region whose replica was deleted.
        region: String,
    },
    /// Issued by the Raft leader's digest task when a retention period is set: delete the
    /// records up to `through_seq` from storage. Refused beyond what was exported or covered
    /// by a signed digest; at or below the current mark it is a no-op. Digests stay.
    PruneAudit {
        /// Last pruned seq (inclusive).
        through_seq: u64,
    },
}

impl Command {
    /// The entities this command names. `apply` may touch more (deleting a key also removes
    /// the aliases pointing at it), so this is for a proposer refreshing what it named, not a
    /// replacement for the `Change` list `apply` returns.
    pub fn subjects(&self) -> Vec<Change> {
        match self {
            Command::CreateKey { record } => vec![Change::Key(record.key_id.clone())],
            Command::SetKeyEnabled { key_id, .. }
            | Command::UpdateKeyDescription { key_id, .. }
            | Command::PutKeyPolicy { key_id, .. }
            | Command::ScheduleKeyDeletion { key_id, .. }
            | Command::CancelKeyDeletion { key_id }
            | Command::DeleteDueKey { key_id }
            | Command::TagResource { key_id, .. }
            | Command::UntagResource { key_id, .. } => vec![Change::Key(key_id.clone())],
            Command::EnableKeyRotation { key_id, .. }
            | Command::DisableKeyRotation { key_id }
            | Command::PrepareNextMaterial { key_id, .. }
            | Command::StartOnDemandRotation { key_id, .. }
            | Command::RotateKey { key_id, .. } => vec![Change::Key(key_id.clone())],
            Command::PutImportParameters { key_id, .. }
            | Command::ImportKeyMaterial { key_id, .. }
            | Command::DeleteImportedKeyMaterial { key_id }
            | Command::ExpireImportedMaterial { key_id } => vec![Change::Key(key_id.clone())],
            Command::ReplicateKey { key_id, .. }
            | Command::AckReplication { key_id, .. }
            | Command::UpdatePrimaryRegion { key_id, .. }
            | Command::RemoveReplicaRegion { key_id, .. } => vec![Change::Key(key_id.clone())],
            Command::InstallReplica { install } => vec![Change::Key(install.key_id.clone())],
            Command::CreateAlias {
                account_id,
                alias_name,
                ..
            }
            | Command::UpdateAlias {
                account_id,
                alias_name,
                ..
            }
            | Command::DeleteAlias {
                account_id,
                alias_name,
            } => {
                vec![Change::Alias(account_id.clone(), alias_name.clone())]
            }
            Command::PutIdentity { identity } => vec![Change::Identity(identity.arn.clone())],
            Command::DeleteIdentity { arn }
            | Command::PutIdentityPolicy { arn, .. }
            | Command::DeleteIdentityPolicy { arn, .. } => vec![Change::Identity(arn.clone())],
            Command::PutAccessKey { record } => {
                vec![Change::AccessKey(record.access_key_id.clone())]
            }
            Command::DeleteAccessKey { access_key_id } => {
                vec![Change::AccessKey(access_key_id.clone())]
            }
            Command::CreateGrant { grant } => {
                vec![Change::Grant(grant.key_id.clone(), grant.grant_id.clone())]
            }
            Command::RetireGrant { key_id, grant_id }
            | Command::RevokeGrant { key_id, grant_id } => {
                vec![Change::Grant(key_id.clone(), grant_id.clone())]
            }
            // The audit chain is no cached entity.
            Command::AppendAudit { .. }
            | Command::AppendDigest { .. }
            | Command::MarkAuditExported { .. }
            | Command::PruneAudit { .. } => vec![],
        }
    }
}

/// What a successfully applied command returns to its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutput {
    /// The key after the change.
    Key(Box<KeyRecord>),
    /// The alias after the change.
    Alias(AliasRecord),
    /// CreateGrant: the grant created, or the existing identical named grant.
    Grant(GrantRecord),
    /// AppendAudit: the seqs the events got (inclusive).
    AuditAppended {
        /// First event's seq.
        first_seq: u64,
        /// Last event's seq.
        last_seq: u64,
    },
    /// Nothing to return.
    Done,
}

/// An entity a command touched. Storage writes the entity's current value (or deletes it if
/// it is gone) in the same transaction as last-applied; fronts use the same values to
/// invalidate their caches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Change {
    /// A key by id.
    Key(String),
    /// An alias by (account id, alias name).
    Alias(String, String),
    /// An identity by ARN.
    Identity(String),
    /// An access key by id.
    AccessKey(String),
    /// A grant by (key id, grant id).
    Grant(String, String),
}

/// Read-only questions a front asks the store; answered from the state machine after a read
/// index (linearizable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// One key by id.
    GetKey {
        /// Key id.
        key_id: String,
    },
    /// One alias.
    GetAlias {
        /// Owning account.
        account_id: String,
        /// `alias/…`.
        alias_name: String,
    },
    /// Keys of an account in key-id order, starting after `marker`.
    ListKeys {
        /// Owning account.
        account_id: String,
        /// Page size (1..=1000).
        limit: u32,
        /// Exclusive start key id (the previous page's `next_marker`).
        marker: Option<String>,
    },
    /// Aliases of an account in name order, optionally only those of one key.
    ListAliases {
        /// Owning account.
        account_id: String,
        /// Only aliases targeting this key id.
        key_id: Option<String>,
        /// Page size (1..=100).
        limit: u32,
        /// Exclusive start alias name.
        marker: Option<String>,
    },
    /// One identity.
    GetIdentity {
        /// ARN.
        arn: String,
    },
    /// One access key.
    GetAccessKey {
        /// Access key id.
        access_key_id: String,
    },
    /// Ids of keys in PendingDeletion whose deletion date is at or before `now`.
    DueForDeletion {
        /// The current time.
        now: EpochMillis,
    },
    /// Ids of keys waiting for a front to prepare their next material
    /// (`rotation::needs_material`).
    KeysAwaitingMaterial,
    /// Of `key_ids`, the ones waiting for a front to prepare their next material: what a front
    /// asks after some keys changed, instead of scanning every key of the region.
    KeysAwaitingMaterialAmong {
        /// Key ids (unknown ones are skipped).
        key_ids: Vec<String>,
    },
    /// One grant.
    GetGrant {
        /// Key id.
        key_id: String,
        /// Grant id.
        grant_id: String,
    },
    /// Grants of one key in grant-id order, optionally filtered (ListGrants).
    ListGrants {
        /// Key id.
        key_id: String,
        /// Only this grant.
        grant_id: Option<String>,
        /// Only grants to this grantee.
        grantee_principal: Option<String>,
        /// Exclusive start grant id (the previous page's `next_marker`).
        marker: Option<String>,
        /// Page size (1..=100).
        limit: u32,
    },
    /// Grants of every key that `retiring_principal` may retire as their retiring principal,
    /// in (key id, grant id) order (ListRetirableGrants).
    ListRetirableGrants {
        /// The retiring principal.
        retiring_principal: String,
        /// Exclusive start: `<key id>/<grant id>` (the previous page's `next_marker`).
        marker: Option<String>,
        /// Page size (1..=100).
        limit: u32,
    },
    /// Identities of an account in ARN order.
    ListIdentities {
        /// Owning account.
        account_id: String,
        /// Exclusive start ARN.
        marker: Option<String>,
        /// Page size (1..=1000).
        limit: u32,
    },
    /// Every access key of one principal, in access key id order.
    ListAccessKeys {
        /// The principal they authenticate as.
        principal_arn: String,
    },
    /// How far the audit chain has been exported and pruned (retention).
    AuditRetention,
    /// The newest successful cryptographic use of one key (GetKeyLastUsage).
    GetKeyLastUsage {
        /// Key id.
        key_id: String,
    },
    /// Multi-region keys whose replication outbox is not empty (answered as `Keys`).
    ReplicationOutbox,
}

/// Answers to [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryOutput {
    /// GetKey.
    Key(Option<Box<KeyRecord>>),
    /// GetAlias.
    Alias(Option<AliasRecord>),
    /// ListKeys.
    Keys {
        /// This page.
        keys: Vec<KeyRecord>,
        /// Set when more remain.
        next_marker: Option<String>,
    },
    /// ListAliases.
    Aliases {
        /// This page.
        aliases: Vec<AliasRecord>,
        /// Set when more remain.
        next_marker: Option<String>,
    },
    /// GetIdentity.
    Identity(Option<IdentityRecord>),
    /// GetAccessKey.
    AccessKey(Option<AccessKeyRecord>),
    /// DueForDeletion.
    KeyIds(Vec<String>),
    /// GetGrant.
    Grant(Option<GrantRecord>),
    /// ListGrants, ListRetirableGrants.
    Grants {
        /// This page.
        grants: Vec<GrantRecord>,
        /// Set when more remain.
        next_marker: Option<String>,
    },
    /// ListIdentities.
    Identities {
        /// This page.
        identities: Vec<IdentityRecord>,
        /// Set when more remain.
        next_marker: Option<String>,
    },
    /// ListAccessKeys.
    AccessKeys(Vec<AccessKeyRecord>),
    /// AuditRetention.
    AuditRetention {
        /// Every record with seq <= this has been exported (`MarkAuditExported`); 0 = none.
        exported_through: u64,
        /// Every record with seq <= this has been pruned from storage (`PruneAudit`); 0 = none.
        pruned_through: u64,
    },
    /// GetKeyLastUsage.
    KeyLastUsage {
        /// The newest mark of the key (`None`: not used since tracking started).
        last_usage: Option<crate::usage::KeyUsageMark>,
        /// When the region started tracking (`None`: not yet).
        tracking_start: Option<EpochMillis>,
    },
}
