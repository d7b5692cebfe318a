//! Multi-region keys (issue 7): the per-key configuration, the replication outbox, and
//! `apply` for the commands that move shared properties between region clusters.
//!
//! Each region is its own Raft cluster. A multi-region key (`mrk-` + 32 hex) has one
//! *primary* region that owns the shared properties (material versions, spec, usage,
//! origin) and any number of *replica* regions that hold the same key id with their own
//! independent properties (policy, aliases, tags, description, enabled state, grants).
//!
//! # Data flow
//!
//! ```text
//!  primary region (Raft)                                        replica region (Raft)
//!  ReplicateKey / RotateKey / UpdatePrimaryRegion
//!    -> apply: outbox entries on the key (seq, region, kind)
//!  front replicator: Query::ReplicationOutbox
//!    -> ReplicationMessage (materials re-wrapped to the target's transport key, signed)
//!    ---------------------- mTLS ---------------------->  front: verify, re-wrap under its
//!                                                         domain key -> Command::InstallReplica
//!    <--------------------- ok ------------------------   (idempotent by (key, version))
//!    -> Command::AckReplication { region, through_seq }  (entries removed)
//! ```
//!
//! Every state here lives in the key record (`KeyRecord::multi_region_config`), so storage
//! persists it with the key entity and the watch stream invalidates it like any key change.
//! A primary-region move is ordered by `epoch`: each promotion increments it, and a region
//! ignores configuration from an older epoch, so a late message from a former primary can
//! never make two regions primary.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{Change, Command, CommandOutput};
use crate::error::DomainError;
use crate::model::{EpochMillis, KeyRecord, KeyState, MaterialVersion, State};

/// Prefix of multi-region key ids.
pub const MRK_PREFIX: &str = "mrk-";

/// Whether `key_id` has the multi-region shape: `mrk-` + 32 lowercase hex digits.
pub fn is_mrk_id(key_id: &str) -> bool {
    key_id.strip_prefix(MRK_PREFIX).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A fresh multi-region key id (front-side randomness).
pub fn new_mrk_id() -> String {
    let mut b = [0u8; 16];
    crate::crypto::fill_random(&mut b);
    format!("{MRK_PREFIX}{}", hex::encode(b))
}

/// `MultiRegionKeyType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiRegionKeyType {
    /// Owns the shared properties.
    Primary,
    /// Receives them from the primary.
    Replica,
}

impl MultiRegionKeyType {
    /// The wire string (`PRIMARY` / `REPLICA`).
    pub fn as_str(self) -> &'static str {
        match self {
            MultiRegionKeyType::Primary => "PRIMARY",
            MultiRegionKeyType::Replica => "REPLICA",
        }
    }
}

/// The independent properties a new replica starts with (ReplicateKey's parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInit {
    /// Description of the replica.
    pub description: String,
    /// Key policy of the replica (the front validated it or chose the default).
    pub policy: String,
    /// Tags of the replica.
    pub tags: BTreeMap<String, String>,
}

/// What one outbox entry asks the replicator to deliver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxKind {
    /// Create the replica with these independent properties.
    CreateReplica(ReplicaInit),
    /// Deliver material version `version`.
    Material {
        /// Material version.
        version: u32,
    },
    /// Tell the region the current configuration (a replica was added elsewhere).
    Config,
    /// UpdatePrimaryRegion: make the target region the primary.
    Promote,
}

/// One pending delivery to one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Increasing per key; acknowledgements name the highest seq delivered.
    pub seq: u64,
    /// Target region.
    pub region: String,
    /// What to deliver.
    pub kind: OutboxKind,
    /// When it was queued (replication lag is measured from here).
    pub enqueued_at: EpochMillis,
}

/// Per-replica progress, kept by the primary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    /// Highest material version queued for this replica.
    pub enqueued_through: u32,
    /// When the replica last acknowledged a delivery (0 = never).
    pub last_ack_at: EpochMillis,
}

/// An UpdatePrimaryRegion in progress on the (old) primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryUpdate {
    /// The region becoming primary.
    pub to_region: String,
    /// The key state to return to (the key is `Updating` meanwhile).
    pub prior_state: KeyState,
}

/// `MultiRegionConfiguration` plus the primary's replication bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiRegionConfig {
    /// PRIMARY or REPLICA (in this region).
    pub key_type: MultiRegionKeyType,
    /// The region holding the primary key.
    pub primary_region: String,
    /// Every region holding a replica (as known here; authoritative on the primary).
    pub replica_regions: BTreeSet<String>,
    /// Increments with each primary-region move; older configuration is ignored.
    #[serde(default)]
    pub epoch: u64,
    /// Primary only: deliveries not yet acknowledged, in seq order.
    #[serde(default)]
    pub outbox: Vec<OutboxEntry>,
    /// Primary only: the next outbox seq.
    #[serde(default)]
    pub next_seq: u64,
    /// Primary only: progress per replica region.
    #[serde(default)]
    pub replicas: BTreeMap<String, ReplicaProgress>,
    /// Set on the old primary during UpdatePrimaryRegion.
    #[serde(default)]
    pub updating: Option<PrimaryUpdate>,
}

impl MultiRegionConfig {
    /// A new primary's configuration in `region`.
    pub fn primary(region: &str) -> Self {
        Self {
            key_type: MultiRegionKeyType::Primary,
            primary_region: region.into(),
            replica_regions: BTreeSet::new(),
            epoch: 0,
            outbox: vec![],
            next_seq: 1,
            replicas: BTreeMap::new(),
            updating: None,
        }
    }

    fn push(&mut self, region: &str, kind: OutboxKind, now: EpochMillis) {
        let seq = self.next_seq.max(1);
        self.next_seq = seq + 1;
        self.outbox.push(OutboxEntry {
            seq,
            region: region.into(),
            kind,
            enqueued_at: now,
        });
    }

    /// The oldest unacknowledged entry's age at `now`, per region (replication lag).
    pub fn lag_millis(&self, now: EpochMillis) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for e in &self.outbox {
            out.entry(e.region.clone())
                .or_insert_with(|| now.saturating_sub(e.enqueued_at));
        }
        out
    }
}

/// The replicated body of a cross-region delivery, after the receiving front verified the
/// signature and re-wrapped the material under its own domain key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInstall {
    /// The multi-region key id (the same in every region).
    pub key_id: String,
    /// The key ARN in the receiving region.
    pub arn: String,
    /// Owning account.
    pub account_id: String,
    /// Region that sent it (the primary, or the old primary for a promotion).
    pub source_region: String,
    /// Shared: key spec.
    pub key_spec: crate::model::KeySpec,
    /// Shared: key usage.
    pub key_usage: crate::model::KeyUsage,
    /// Shared: origin.
    pub origin: crate::model::Origin,
    /// Shared: the primary's creation date.
    pub creation_date: EpochMillis,
    /// The primary region as the sender knows it.
    pub primary_region: String,
    /// Every replica region as the sender knows it.
    pub replica_regions: BTreeSet<String>,
    /// The sender's epoch.
    pub epoch: u64,
    /// The primary's current material version.
    pub current_version: u32,
    /// Independent properties, when this delivery creates the replica.
    pub init: Option<ReplicaInit>,
    /// Material versions, wrapped under the receiving region's domain key.
    pub materials: Vec<MaterialVersion>,
    /// UpdatePrimaryRegion: the receiving region becomes the primary.
    pub promote: bool,
}

/// The multi-region configuration of a key, or `UnsupportedOperation` as AWS answers for a
/// single-region key.
pub fn config_of(key: &KeyRecord) -> Result<&MultiRegionConfig, DomainError> {
    key.multi_region_config.as_deref().ok_or_else(|| {
        DomainError::UnsupportedOperation(format!("{} is not a multi-Region key.", key.arn))
    })
}

/// Whether the key is a multi-region primary (not in the middle of moving away).
pub fn is_primary(key: &KeyRecord) -> bool {
    key.multi_region_config
        .as_deref()
        .is_some_and(|c| c.key_type == MultiRegionKeyType::Primary)
}

/// Whether the key is a multi-region replica.
pub fn is_replica(key: &KeyRecord) -> bool {
    key.multi_region_config
        .as_deref()
        .is_some_and(|c| c.key_type == MultiRegionKeyType::Replica)
}

/// Refuses operations that change shared properties on a replica (rotation, import):
/// they belong to the primary, as in AWS.
pub fn check_not_replica(key: &KeyRecord) -> Result<(), DomainError> {
    if is_replica(key) {
        return Err(DomainError::UnsupportedOperation(format!(
            "{} is a multi-Region replica key. Perform this operation on the primary key.",
            key.arn
        )));
    }
    Ok(())
}

/// Ids of keys the replicators have work for: a non-empty outbox, or a primary waiting in
/// PendingReplicaDeletion (its replicas are probed until each is gone).
pub fn keys_with_outbox(state: &State) -> Vec<String> {
    state
        .keys
        .values()
        .filter(|k| {
            k.multi_region_config.as_deref().is_some_and(|c| {
                !c.outbox.is_empty()
                    || (c.key_type == MultiRegionKeyType::Primary
                        && k.state == KeyState::PendingReplicaDeletion
                        && !c.replica_regions.is_empty())
            })
        })
        .map(|k| k.key_id.clone())
        .collect()
}

/// Queues material versions the primary has not queued yet for each replica (a rotation
/// activated a version, or a replica was added). Called by `apply` for every key a command
/// touched, so every path that adds material feeds the outbox without knowing about it.
pub(crate) fn sync_outbox(key: &mut KeyRecord, now: EpochMillis) -> bool {
    let versions: Vec<u32> = key.materials.iter().map(|m| m.version).collect();
    let Some(cfg) = key.multi_region_config.as_deref_mut() else {
        return false;
    };
    if cfg.key_type != MultiRegionKeyType::Primary {
        return false;
    }
    let mut changed = false;
    let regions: Vec<String> = cfg.replica_regions.iter().cloned().collect();
    for region in regions {
        let through = cfg
            .replicas
            .entry(region.clone())
            .or_default()
            .enqueued_through;
        let mut newest = through;
        for v in versions.iter().copied().filter(|v| *v > through) {
            cfg.push(&region, OutboxKind::Material { version: v }, now);
            newest = newest.max(v);
            changed = true;
        }
        if let Some(p) = cfg.replicas.get_mut(&region) {
            p.enqueued_through = newest;
        }
    }
    changed
}

fn key_mut<'a>(state: &'a mut State, key_id: &str) -> Result<&'a mut KeyRecord, DomainError> {
    state
        .keys
        .get_mut(key_id)
        .ok_or_else(|| DomainError::NotFound(format!("Key '{key_id}' does not exist")))
}

fn primary_mut(key: &mut KeyRecord) -> Result<&mut MultiRegionConfig, DomainError> {
    let arn = key.arn.clone();
    let cfg = key.multi_region_config.as_deref_mut().ok_or_else(|| {
        DomainError::UnsupportedOperation(format!("{arn} is not a multi-Region key."))
    })?;
    if cfg.key_type != MultiRegionKeyType::Primary {
        return Err(DomainError::UnsupportedOperation(format!(
            "{arn} is not a multi-Region primary key. The primary key is in {}.",
            cfg.primary_region
        )));
    }
    Ok(cfg)
}

/// `apply` for the multi-region commands; any other command is a programming error.
pub(crate) fn apply_multi_region(
    state: &mut State,
    now: EpochMillis,
    command: &Command,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    match command {
        Command::ReplicateKey {
            key_id,
            replica_region,
            init,
        } => {
            let key = key_mut(state, key_id)?;
            let own_region = key.region.clone();
            let arn = key.arn.clone();
            let key_state = key.state;
            let cfg = primary_mut(key)?;
            if cfg.updating.is_some() || key_state == KeyState::Updating {
                return Err(DomainError::InvalidState(format!("{arn} is updating.")));
            }
            if !matches!(key_state, KeyState::Enabled | KeyState::Disabled) {
                return Err(DomainError::InvalidState(format!(
                    "{arn} is {}.",
                    crate::state::state_phrase(key_state)
                )));
            }
            if *replica_region == own_region {
                return Err(DomainError::Validation(format!(
                    "The replica region {replica_region} is the region of the primary key."
                )));
            }
            if cfg.replica_regions.contains(replica_region) {
                return Err(DomainError::AlreadyExists(format!(
                    "Multi-Region key {key_id} already has a replica in {replica_region}."
                )));
            }
            // The others learn about the new replica; the new one gets everything.
            let others: Vec<String> = cfg.replica_regions.iter().cloned().collect();
            for other in others {
                cfg.push(&other, OutboxKind::Config, now);
            }
            cfg.replica_regions.insert(replica_region.clone());
            cfg.replicas
                .insert(replica_region.clone(), ReplicaProgress::default());
            cfg.push(replica_region, OutboxKind::CreateReplica(init.clone()), now);
            sync_outbox(key, now);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::InstallReplica { install } => install_replica(state, now, install, changes),

        Command::AckReplication {
            key_id,
            region,
            through_seq,
        } => {
            let Some(key) = state.keys.get_mut(key_id) else {
                // Deleted meanwhile: nothing left to acknowledge.
                return Ok(CommandOutput::Done);
            };
            let Some(cfg) = key.multi_region_config.as_deref_mut() else {
                return Ok(CommandOutput::Done);
            };
            let promoted = cfg.outbox.iter().any(|e| {
                e.region == *region && e.seq <= *through_seq && e.kind == OutboxKind::Promote
            });
            let before = cfg.outbox.len();
            cfg.outbox
                .retain(|e| !(e.region == *region && e.seq <= *through_seq));
            if cfg.outbox.len() == before {
                return Ok(CommandOutput::Done);
            }
            if let Some(p) = cfg.replicas.get_mut(region) {
                p.last_ack_at = now;
            }
            if promoted {
                complete_primary_move(key, region, None);
            }
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::UpdatePrimaryRegion {
            key_id,
            primary_region,
        } => {
            let key = key_mut(state, key_id)?;
            let arn = key.arn.clone();
            let key_state = key.state;
            let own_region = key.region.clone();
            let cfg = primary_mut(key)?;
            if cfg.updating.is_some() {
                return Err(DomainError::InvalidState(format!("{arn} is updating.")));
            }
            if !matches!(key_state, KeyState::Enabled | KeyState::Disabled) {
                return Err(DomainError::InvalidState(format!(
                    "{arn} is {}.",
                    crate::state::state_phrase(key_state)
                )));
            }
            if *primary_region == own_region {
                return Err(DomainError::Validation(format!(
                    "{arn} is already the primary key in {primary_region}."
                )));
            }
            if !cfg.replica_regions.contains(primary_region) {
                return Err(DomainError::NotFound(format!(
                    "Multi-Region key {key_id} has no replica in {primary_region}."
                )));
            }
            cfg.updating = Some(PrimaryUpdate {
                to_region: primary_region.clone(),
                prior_state: key_state,
            });
            cfg.push(primary_region, OutboxKind::Promote, now);
            key.state = KeyState::Updating;
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::RemoveReplicaRegion { key_id, region } => {
            let Some(key) = state.keys.get_mut(key_id) else {
                return Ok(CommandOutput::Done);
            };
            let Some(cfg) = key.multi_region_config.as_deref_mut() else {
                return Ok(CommandOutput::Done);
            };
            if cfg.key_type != MultiRegionKeyType::Primary || !cfg.replica_regions.remove(region) {
                return Ok(CommandOutput::Done);
            }
            cfg.replicas.remove(region);
            cfg.outbox.retain(|e| e.region != *region);
            let empty = cfg.replica_regions.is_empty();
            if empty && key.state == KeyState::PendingReplicaDeletion {
                // The last replica is gone: the primary's own waiting period starts now.
                let days = key.pending_deletion_window_days.unwrap_or(30);
                key.state = KeyState::PendingDeletion;
                key.deletion_date =
                    Some(now.saturating_add(u64::from(days) * crate::apply::DAY_MILLIS));
            }
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        _ => Err(DomainError::Internal(
            "apply_multi_region called with a command it does not handle".into(),
        )),
    }
}

/// The old primary hands over: it becomes a replica of `new_primary`, back in the state it
/// had before the move, with nothing left to deliver (the new primary re-sends whatever a
/// replica may lack, idempotently).
fn complete_primary_move(key: &mut KeyRecord, new_primary: &str, epoch: Option<u64>) {
    let own = key.region.clone();
    let Some(cfg) = key.multi_region_config.as_deref_mut() else {
        return;
    };
    let prior = cfg.updating.take().map(|u| u.prior_state);
    cfg.key_type = MultiRegionKeyType::Replica;
    cfg.primary_region = new_primary.into();
    cfg.replica_regions.remove(new_primary);
    cfg.replica_regions.insert(own);
    cfg.epoch = epoch.unwrap_or(cfg.epoch + 1).max(cfg.epoch);
    cfg.outbox.clear();
    cfg.replicas.clear();
    if key.state == KeyState::Updating {
        key.state = prior.unwrap_or(KeyState::Enabled);
    }
}

fn install_replica(
    state: &mut State,
    now: EpochMillis,
    m: &ReplicaInstall,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    if !is_mrk_id(&m.key_id) {
        return Err(DomainError::Validation(format!(
            "{} is not a multi-Region key id.",
            m.key_id
        )));
    }
    let mut versions = BTreeSet::new();
    for mv in &m.materials {
        if mv.version == 0 || !versions.insert(mv.version) {
            return Err(DomainError::Validation(
                "replicated material versions must be distinct and positive".into(),
            ));
        }
    }
    let Some(key) = state.keys.get_mut(&m.key_id) else {
        let Some(init) = &m.init else {
            return Err(DomainError::NotFound(format!(
                "Key '{}' does not exist",
                m.key_id
            )));
        };
        if m.promote {
            return Err(DomainError::Validation(
                "a replica cannot be created and promoted at once".into(),
            ));
        }
        let mut materials = m.materials.clone();
        materials.sort_by_key(|mv| mv.version);
        let current = current_version(&materials, m.current_version);
        let record = KeyRecord {
            key_id: m.key_id.clone(),
            arn: m.arn.clone(),
            account_id: m.account_id.clone(),
            region: region_of_arn(&m.arn),
            description: init.description.clone(),
            key_spec: m.key_spec,
            key_usage: m.key_usage,
            origin: m.origin,
            // A replica is Creating until its material has arrived.
            state: if current.is_some() {
                KeyState::Enabled
            } else {
                KeyState::Creating
            },
            creation_date: m.creation_date,
            deletion_date: None,
            pending_deletion_window_days: None,
            tags: init.tags.clone(),
            policy: init.policy.clone(),
            multi_region: true,
            current_material_version: current.unwrap_or(1),
            materials,
            rotation: Default::default(),
            import: Default::default(),
            multi_region_config: Some(Box::new(MultiRegionConfig {
                key_type: MultiRegionKeyType::Replica,
                primary_region: m.primary_region.clone(),
                replica_regions: m.replica_regions.clone(),
                epoch: m.epoch,
                outbox: vec![],
                next_seq: 1,
                replicas: BTreeMap::new(),
                updating: None,
            })),
        };
        if record.region.is_empty() {
            return Err(DomainError::Validation(format!(
                "{} is not a key ARN.",
                m.arn
            )));
        }
        state.keys.insert(m.key_id.clone(), record.clone());
        changes.push(Change::Key(m.key_id.clone()));
        return Ok(CommandOutput::Key(Box::new(record)));
    };

    let own_region = key.region.clone();
    if key.account_id != m.account_id
        || key.key_spec != m.key_spec
        || key.key_usage != m.key_usage
        || key.origin != m.origin
    {
        return Err(DomainError::Conflict(format!(
            "{} exists here with other shared properties.",
            key.arn
        )));
    }
    let arn = key.arn.clone();
    let Some(cfg) = key.multi_region_config.as_deref_mut() else {
        return Err(DomainError::Conflict(format!(
            "{arn} exists here and is not a multi-Region key."
        )));
    };
    if m.epoch < cfg.epoch {
        // A late message from a former primary: configuration and promotions it carries
        // are stale. Material versions are immutable, so none is taken from it either.
        return Ok(CommandOutput::Done);
    }
    let mut changed = false;
    match cfg.key_type {
        MultiRegionKeyType::Primary => {
            // Only the region this primary is handing over to may speak as primary now:
            // that completes the move (the promotion's acknowledgement may still be on
            // its way). Anyone else claiming primacy is refused: never two primaries.
            let handing_to = cfg.updating.as_ref().map(|u| u.to_region.clone());
            if handing_to.as_deref() == Some(m.source_region.as_str())
                && m.primary_region == m.source_region
                && m.epoch > cfg.epoch
            {
                complete_primary_move(key, &m.source_region, Some(m.epoch));
                if let Some(cfg) = key.multi_region_config.as_deref_mut() {
                    cfg.replica_regions = m.replica_regions.clone();
                }
                changed = true;
            } else if m.promote && m.primary_region == own_region {
                // A repeated promotion this region already performed.
                return Ok(CommandOutput::Key(Box::new(key.clone())));
            } else {
                return Err(DomainError::Conflict(format!(
                    "{arn} is the primary key here; {} cannot replicate into it.",
                    m.source_region
                )));
            }
        }
        MultiRegionKeyType::Replica => {
            if m.primary_region != cfg.primary_region
                || m.replica_regions != cfg.replica_regions
                || m.epoch != cfg.epoch
            {
                cfg.primary_region = m.primary_region.clone();
                cfg.replica_regions = m.replica_regions.clone();
                cfg.epoch = m.epoch;
                changed = true;
            }
        }
    }
    // Idempotent by (key, version): a version already held is never replaced.
    for mv in &m.materials {
        if !key.materials.iter().any(|have| have.version == mv.version) {
            key.materials.push(mv.clone());
            changed = true;
        }
    }
    key.materials.sort_by_key(|mv| mv.version);
    if let Some(current) = current_version(&key.materials, m.current_version) {
        if current > key.current_material_version || key.state == KeyState::Creating {
            key.current_material_version = current;
            changed = true;
        }
        if key.state == KeyState::Creating {
            key.state = KeyState::Enabled;
            changed = true;
        }
    }
    if m.promote {
        let cfg = key
            .multi_region_config
            .as_deref_mut()
            .ok_or_else(|| DomainError::Internal("configuration vanished".into()))?;
        if cfg.key_type == MultiRegionKeyType::Replica {
            cfg.key_type = MultiRegionKeyType::Primary;
            cfg.replica_regions.remove(&own_region);
            cfg.replica_regions.insert(m.source_region.clone());
            cfg.primary_region = own_region.clone();
            cfg.epoch = m.epoch + 1;
            cfg.next_seq = cfg.next_seq.max(1);
            // Every replica (the old primary included) hears of the new primary and gets
            // any version it may lack; deliveries are idempotent.
            cfg.replicas = cfg
                .replica_regions
                .iter()
                .map(|r| (r.clone(), ReplicaProgress::default()))
                .collect();
            let regions: Vec<String> = cfg.replica_regions.iter().cloned().collect();
            for r in regions {
                cfg.push(&r, OutboxKind::Config, now);
            }
            sync_outbox(key, now);
            changed = true;
        }
    }
    if changed {
        changes.push(Change::Key(m.key_id.clone()));
    }
    Ok(CommandOutput::Key(Box::new(key.clone())))
}

/// The version a replica should use for new ciphertexts: the primary's current version when
/// it has arrived, else the newest it holds.
fn current_version(materials: &[MaterialVersion], primary_current: u32) -> Option<u32> {
    if materials.iter().any(|m| m.version == primary_current) {
        return Some(primary_current);
    }
    materials.iter().map(|m| m.version).max()
}

fn region_of_arn(arn: &str) -> String {
    crate::ids::parse_kms_arn(arn)
        .map(|(region, _, _)| region)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrk_ids_have_the_aws_shape() {
        let id = new_mrk_id();
        assert!(is_mrk_id(&id), "{id}");
        assert_eq!(id.len(), 36);
        assert!(!is_mrk_id("mrk-1234"));
        assert!(!is_mrk_id("mrk-1234567890ABCDEF1234567890abcdef"));
        assert!(!is_mrk_id("1234abcd-12ab-34cd-56ef-1234567890ab"));
    }
}
