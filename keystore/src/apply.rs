//! `apply`: the replicated state machine's transition function.
//!
//! Pure and deterministic: the only clock is `proposal.now`, stamped by the leader, so every
//! replica that applies the same log reaches the same state. A refused command leaves the
//! state untouched and reports no changes; every check runs before the first mutation.

use std::collections::BTreeMap;

use crate::command::{Change, Command, CommandOutput, Proposal};
use crate::error::DomainError;
use crate::grant::{grants_of_key, GrantRecord, MAX_GRANTS_PER_KEY};
use crate::ids::parse_kms_arn;
use crate::model::{
    AliasRecord, EpochMillis, KeyRecord, KeyState, Origin, State, MAX_IDENTITY_POLICIES,
};
use crate::state::{check_state, Operation};

/// Most tags a key may carry (AWS quota).
pub const MAX_TAGS_PER_KEY: usize = 50;
/// Shortest and longest deletion waiting period, in days.
pub const PENDING_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 7..=30;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_LEN: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Longest key description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 8192;
pub(crate) const DAY_MILLIS: u64 = 86_400_000;

/// Applies one proposal. Returns the command's output and the entities it touched (sorted,
/// deduplicated; empty when the command was refused or was a no-op).
pub fn apply(
    state: &mut State,
    proposal: &Proposal,
) -> (Result<CommandOutput, DomainError>, Vec<Change>) {
    let mut changes = Vec::new();
    // Captured before the command runs: DeleteDueKey removes the record the event names.
    let service_event = service_event_subject(state, &proposal.command);
    let result = apply_command(state, proposal.now, &proposal.command, &mut changes);
    if result.is_err() {
        changes.clear();
    }
    changes.sort();
    changes.dedup();
    // A multi-region primary whose material changed (rotation, a new replica) queues the
    // new versions for its replicas, whichever command added them.
    if result.is_ok() {
        for change in &changes {
            if let Change::Key(key_id) = change {
                if let Some(key) = state.keys.get_mut(key_id) {
                    crate::multi_region::sync_outbox(key, proposal.now);
                }
            }
        }
    }
    // A deleted key's last usage goes with it.
    for change in &changes {
        if let Change::Key(key_id) = change {
            if !state.keys.contains_key(key_id) && state.key_last_usage.remove(key_id).is_some() {
                state.key_last_usage_touched.insert(key_id.clone());
            }
        }
    }
    if let (Ok(_), Some((event_name, key))) = (&result, service_event) {
        // Only an action that took effect is an event; a repeat (another leader's proposal,
        // a rotation that is no longer due) changes nothing and records nothing.
        if changes.contains(&Change::Key(key.key_id.clone())) {
            let event = crate::audit::AuditEvent::service_event(
                event_name,
                proposal.now,
                &key.region,
                &key.account_id,
                &key.arn,
                service_event_id(event_name, &key.key_id, proposal.now),
            );
            let record = state.audit.head.append(event.to_json());
            state.audit.appended_records.push(record);
        }
    }
    (result, changes)
}

/// The key a leader's scheduled action is about, and the CloudTrail event name it is recorded
/// under: `DeleteKey` (end of the waiting period), `RotateKey` (automatic or on-demand
/// activation), `DeleteExpiredKeyMaterial` (imported material past its `ValidTo`).
fn service_event_subject(state: &State, command: &Command) -> Option<(&'static str, KeyRecord)> {
    let (name, key_id) = match command {
        Command::DeleteDueKey { key_id } => ("DeleteKey", key_id),
        Command::RotateKey { key_id, .. } => ("RotateKey", key_id),
        Command::ExpireImportedMaterial { key_id } => ("DeleteExpiredKeyMaterial", key_id),
        _ => return None,
    };
    state.keys.get(key_id).map(|k| (name, k.clone()))
}

/// A deterministic, UUID-shaped event id for a service event: the first 16 bytes of
/// SHA-256("keyraft-service-event-v1" || len-prefixed name || len-prefixed key id || now BE),
/// with the version (8, "custom") and variant bits of RFC 9562 set. Every replica computes the
/// same id, and one action on one key at one time has one id.
pub fn service_event_id(event_name: &str, key_id: &str, now: EpochMillis) -> String {
    let mut input = Vec::with_capacity(64 + event_name.len() + key_id.len());
    input.extend_from_slice(b"keyraft-service-event-v1");
    for part in [event_name, key_id] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    input.extend_from_slice(&now.to_be_bytes());
    let digest = crate::crypto::sha256(&input);
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Most records one PruneAudit deletes (bounds the commit that deletes them).
pub const MAX_PRUNE_BATCH: u64 = 10_000;
/// Most events one AppendAudit carries (a front's group commit is far smaller).
pub const MAX_AUDIT_BATCH: usize = 4096;
/// Largest audit event text (bytes); redaction keeps events far below it.
pub const MAX_AUDIT_EVENT_BYTES: usize = 256 * 1024;

fn key_not_found(key_id: &str) -> DomainError {
    DomainError::NotFound(format!("Key '{key_id}' does not exist"))
}

/// An alias target that does not exist in the alias's account, named as AWS names it: by
/// the key ARN it would have in the alias's region and account.
fn target_not_found(alias_arn: &str, key_id: &str) -> DomainError {
    match parse_kms_arn(alias_arn) {
        Some((region, account, _)) => {
            key_not_found(&crate::ids::key_arn(&region, &account, key_id))
        }
        None => key_not_found(key_id),
    }
}

fn alias_not_found(alias: &str) -> DomainError {
    DomainError::NotFound(format!("Alias {alias} is not found."))
}

/// The key a key-scoped command names, if it exists.
fn command_key<'a>(state: &'a State, command: &Command) -> Option<&'a KeyRecord> {
    command.subjects().into_iter().find_map(|c| match c {
        Change::Key(id) => state.keys.get(&id),
        _ => None,
    })
}

fn key_mut<'a>(state: &'a mut State, key_id: &str) -> Result<&'a mut KeyRecord, DomainError> {
    state
        .keys
        .get_mut(key_id)
        .ok_or_else(|| key_not_found(key_id))
}

/// Validates (key, value) pairs as AWS does for TagResource and CreateKey's `Tags`.
fn validate_tags(tags: &[(String, String)]) -> Result<(), DomainError> {
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        let klen = k.chars().count();
        if klen == 0 || klen > MAX_TAG_KEY_LEN {
            return Err(DomainError::Tag(format!(
                "Tag keys must be 1 to {MAX_TAG_KEY_LEN} characters long"
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE_LEN {
            return Err(DomainError::Tag(format!(
                "Tag values must be 0 to {MAX_TAG_VALUE_LEN} characters long"
            )));
        }
        if k.starts_with("aws:") {
            return Err(DomainError::Tag(
                "Tag keys beginning with aws: are reserved for AWS use".into(),
            ));
        }
        if !seen.insert(k.as_str()) {
            return Err(DomainError::Tag(format!("Duplicate tag key: {k}")));
        }
    }
    Ok(())
}

fn too_many_tags() -> DomainError {
    DomainError::LimitExceeded(format!(
        "A KMS key can have at most {MAX_TAGS_PER_KEY} tags"
    ))
}

fn apply_command(
    state: &mut State,
    now: EpochMillis,
    command: &Command,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    match command {
        Command::CreateKey { record } => {
            if state.keys.contains_key(&record.key_id) {
                return Err(DomainError::AlreadyExists(format!(
                    "Key '{}' already exists",
                    record.arn
                )));
            }
            // The ciphertext header stores the id behind a one-byte length.
            if record.key_id.is_empty() || record.key_id.len() > crate::ciphertext::MAX_KEY_ID_LEN {
                return Err(DomainError::Validation(
                    "A key id must be 1 to 255 bytes long".into(),
                ));
            }
            if record.description.chars().count() > MAX_DESCRIPTION_LEN {
                return Err(description_too_long());
            }
            let tags: Vec<_> = record
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            validate_tags(&tags)?;
            if tags.len() > MAX_TAGS_PER_KEY {
                return Err(too_many_tags());
            }
            if let Some(cfg) = record.multi_region_config.as_deref() {
                // CreateKey makes primaries only; replicas arrive through InstallReplica.
                let ok = record.multi_region
                    && crate::multi_region::is_mrk_id(&record.key_id)
                    && cfg.key_type == crate::multi_region::MultiRegionKeyType::Primary
                    && cfg.primary_region == record.region
                    && cfg.replica_regions.is_empty()
                    && cfg.outbox.is_empty();
                if !ok {
                    return Err(DomainError::Validation(
                        "A multi-Region key is created as a primary with an mrk- id".into(),
                    ));
                }
            } else if record.multi_region {
                return Err(DomainError::Validation(
                    "A multi-Region key needs its multi-Region configuration".into(),
                ));
            }
            state.keys.insert(record.key_id.clone(), record.clone());
            changes.push(Change::Key(record.key_id.clone()));
            Ok(CommandOutput::Key(Box::new(record.clone())))
        }

        Command::SetKeyEnabled { key_id, enabled } => {
            let key = key_mut(state, key_id)?;
            let op = if *enabled {
                Operation::EnableKey
            } else {
                Operation::DisableKey
            };
            check_state(key, op)?;
            key.state = if *enabled {
                KeyState::Enabled
            } else {
                KeyState::Disabled
            };
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::UpdateKeyDescription {
            key_id,
            description,
        } => {
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::UpdateKeyDescription)?;
            if description.chars().count() > MAX_DESCRIPTION_LEN {
                return Err(description_too_long());
            }
            key.description = description.clone();
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::PutKeyPolicy { key_id, policy } => {
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::PutKeyPolicy)?;
            if policy.is_empty() || policy.len() > crate::policy::MAX_KEY_POLICY_BYTES {
                return Err(DomainError::Validation(format!(
                    "The key policy must be 1 to {} bytes long.",
                    crate::policy::MAX_KEY_POLICY_BYTES
                )));
            }
            key.policy = policy.clone();
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::ScheduleKeyDeletion {
            key_id,
            pending_window_days,
        } => {
            let days = *pending_window_days;
            if !PENDING_WINDOW_DAYS.contains(&days) {
                let bound = if days < *PENDING_WINDOW_DAYS.start() {
                    "greater than or equal to 7"
                } else {
                    "less than or equal to 30"
                };
                return Err(DomainError::Validation(format!(
                    "1 validation error detected: Value '{days}' at 'pendingWindowInDays' \
                     failed to satisfy constraint: Member must have value {bound}"
                )));
            }
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::ScheduleKeyDeletion)?;
            let has_replicas = key.multi_region_config.as_deref().is_some_and(|c| {
                crate::multi_region::is_primary(key) && !c.replica_regions.is_empty()
            });
            if has_replicas {
                // AWS: a primary with replicas waits until every replica is deleted; its
                // own waiting period starts then (`RemoveReplicaRegion`).
                key.state = KeyState::PendingReplicaDeletion;
                key.deletion_date = None;
            } else {
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(now.saturating_add(u64::from(days) * DAY_MILLIS));
            }
            key.pending_deletion_window_days = Some(days);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::CancelKeyDeletion { key_id } => {
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::CancelKeyDeletion)?;
            // AWS returns a cancelled key Disabled; an imported key whose material is gone
            // goes back to waiting for it.
            key.state = if key.origin == Origin::External && key.materials.is_empty() {
                KeyState::PendingImport
            } else {
                KeyState::Disabled
            };
            key.deletion_date = None;
            key.pending_deletion_window_days = None;
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::DeleteDueKey { key_id } => {
            let due = state.keys.get(key_id).is_some_and(|k| {
                k.state == KeyState::PendingDeletion && k.deletion_date.is_some_and(|d| d <= now)
            });
            if !due {
                return Ok(CommandOutput::Done);
            }
            state.keys.remove(key_id);
            changes.push(Change::Key(key_id.clone()));
            state.aliases.retain(|(account, name), alias| {
                let keep = alias.target_key_id != *key_id;
                if !keep {
                    changes.push(Change::Alias(account.clone(), name.clone()));
                }
                keep
            });
            // A deleted key's grants go with it (AWS deletes them with the key).
            let grant_ids: Vec<String> = grants_of_key(state, key_id)
                .map(|g| g.grant_id.clone())
                .collect();
            for grant_id in grant_ids {
                state.grants.remove(&(key_id.clone(), grant_id.clone()));
                changes.push(Change::Grant(key_id.clone(), grant_id));
            }
            Ok(CommandOutput::Done)
        }

        Command::CreateAlias {
            account_id,
            alias_name,
            alias_arn,
            target_key_id,
        } => {
            let id = (account_id.clone(), alias_name.clone());
            if state.aliases.contains_key(&id) {
                return Err(DomainError::AlreadyExists(format!(
                    "An alias with the name {alias_arn} already exists"
                )));
            }
            let target = state
                .keys
                .get(target_key_id)
                .filter(|k| k.account_id == *account_id)
                .ok_or_else(|| target_not_found(alias_arn, target_key_id))?;
            check_state(target, Operation::CreateAlias)?;
            let record = AliasRecord {
                alias_name: alias_name.clone(),
                account_id: account_id.clone(),
                alias_arn: alias_arn.clone(),
                target_key_id: target_key_id.clone(),
                creation_date: now,
                last_updated_date: now,
            };
            state.aliases.insert(id, record.clone());
            changes.push(Change::Alias(account_id.clone(), alias_name.clone()));
            Ok(CommandOutput::Alias(record))
        }

        Command::UpdateAlias {
            account_id,
            alias_name,
            target_key_id,
        } => {
            let id = (account_id.clone(), alias_name.clone());
            let alias = state
                .aliases
                .get(&id)
                .ok_or_else(|| alias_not_found(alias_name))?;
            let target = state
                .keys
                .get(target_key_id)
                .filter(|k| k.account_id == *account_id)
                .ok_or_else(|| target_not_found(&alias.alias_arn, target_key_id))?;
            check_state(target, Operation::UpdateAlias)?;
            if let Some(current) = state.keys.get(&alias.target_key_id) {
                if current.key_spec != target.key_spec || current.key_usage != target.key_usage {
                    return Err(DomainError::Validation(format!(
                        "{} must be associated with a KMS key of the same key spec and key \
                         usage as its current key",
                        alias.alias_arn
                    )));
                }
            }
            let alias = state
                .aliases
                .get_mut(&id)
                .ok_or_else(|| alias_not_found(alias_name))?;
            alias.target_key_id = target_key_id.clone();
            alias.last_updated_date = now;
            let record = alias.clone();
            changes.push(Change::Alias(account_id.clone(), alias_name.clone()));
            Ok(CommandOutput::Alias(record))
        }

        Command::DeleteAlias {
            account_id,
            alias_name,
        } => {
            let id = (account_id.clone(), alias_name.clone());
            if state.aliases.remove(&id).is_none() {
                return Err(alias_not_found(alias_name));
            }
            changes.push(Change::Alias(account_id.clone(), alias_name.clone()));
            Ok(CommandOutput::Done)
        }

        Command::TagResource { key_id, tags } => {
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::TagResource)?;
            validate_tags(tags)?;
            let mut merged: BTreeMap<String, String> = key.tags.clone();
            merged.extend(tags.iter().cloned());
            if merged.len() > MAX_TAGS_PER_KEY {
                return Err(too_many_tags());
            }
            key.tags = merged;
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::UntagResource { key_id, tag_keys } => {
            let key = key_mut(state, key_id)?;
            check_state(key, Operation::UntagResource)?;
            for k in tag_keys {
                key.tags.remove(k);
            }
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::PutIdentity { identity } => {
            state
                .identities
                .insert(identity.arn.clone(), identity.clone());
            changes.push(Change::Identity(identity.arn.clone()));
            Ok(CommandOutput::Done)
        }

        Command::EnableKeyRotation { .. }
        | Command::DisableKeyRotation { .. }
        | Command::PrepareNextMaterial { .. }
        | Command::StartOnDemandRotation { .. }
        | Command::RotateKey { .. } => {
            // Material versions are shared properties: only the primary rotates.
            if let Some(key) = command_key(state, command) {
                crate::multi_region::check_not_replica(key)?;
            }
            crate::rotation::apply_rotation(state, now, command, changes)
        }

        Command::PutImportParameters { .. }
        | Command::ImportKeyMaterial { .. }
        | Command::DeleteImportedKeyMaterial { .. }
        | Command::ExpireImportedMaterial { .. } => {
            if let Some(key) = command_key(state, command) {
                crate::multi_region::check_not_replica(key)?;
            }
            crate::import::apply_import(state, now, command, changes)
        }

        Command::ReplicateKey { .. }
        | Command::InstallReplica { .. }
        | Command::AckReplication { .. }
        | Command::UpdatePrimaryRegion { .. }
        | Command::RemoveReplicaRegion { .. } => {
            crate::multi_region::apply_multi_region(state, now, command, changes)
        }

        Command::PutAccessKey { record } => {
            state
                .access_keys
                .insert(record.access_key_id.clone(), record.clone());
            changes.push(Change::AccessKey(record.access_key_id.clone()));
            Ok(CommandOutput::Done)
        }

        Command::AppendAudit { events, usage } => {
            if events.is_empty() || events.len() > MAX_AUDIT_BATCH {
                return Err(DomainError::Validation(format!(
                    "An audit batch holds 1 to {MAX_AUDIT_BATCH} events."
                )));
            }
            if let Some(big) = events.iter().find(|e| e.len() > MAX_AUDIT_EVENT_BYTES) {
                return Err(DomainError::Validation(format!(
                    "An audit event of {} bytes exceeds {MAX_AUDIT_EVENT_BYTES} bytes.",
                    big.len()
                )));
            }
            if let Some(batch) = usage {
                validate_usage_marks(events.len(), &batch.marks)?;
            }
            let first_seq = state.audit.head.next_seq;
            for event in events {
                let record = state.audit.head.append(event.clone());
                state.audit.appended_records.push(record);
            }
            if let Some(batch) = usage {
                record_usage(state, now, batch);
            }
            Ok(CommandOutput::AuditAppended {
                first_seq,
                last_seq: state.audit.head.last_seq(),
            })
        }

        Command::AppendDigest { digest } => {
            let audit = &mut state.audit;
            let follows = match &audit.last_digest {
                Some(last) => digest.follows(last),
                None => {
                    digest.digest_seq == 1
                        && digest.from_seq == 1
                        && digest.previous_digest_signature.is_none()
                }
            };
            // A digest may lag the head (the leader signed what it had applied), never lead
            // it; at the head it must name the head's hash. A repeated proposal after a leader
            // change no longer follows and is refused.
            let head_ok = digest.to_seq < audit.head.last_seq()
                || (digest.to_seq == audit.head.last_seq()
                    && digest.head_hash == audit.head.head_hash_hex());
            if !follows || !head_ok || digest.from_seq > digest.to_seq.saturating_add(1) {
                return Err(DomainError::Conflict(
                    "The audit digest does not follow the newest digest and chain head.".into(),
                ));
            }
            audit.last_digest = Some(digest.clone());
            audit.appended_digests.push(digest.clone());
            Ok(CommandOutput::Done)
        }

        Command::MarkAuditExported { through_seq } => {
            let audit = &mut state.audit;
            if *through_seq > audit.head.last_seq() {
                return Err(DomainError::Validation(format!(
                    "Cannot mark audit records through seq {through_seq} exported: the chain \
                     ends at seq {}.",
                    audit.head.last_seq()
                )));
            }
            let signed = audit.last_digest.as_ref().map_or(0, |d| d.to_seq);
            if *through_seq > signed {
                return Err(DomainError::Validation(format!(
                    "Cannot mark audit records through seq {through_seq} exported: signed \
                     digests cover only seqs up to {signed}."
                )));
            }
            if *through_seq > audit.exported_through {
                audit.exported_through = *through_seq;
                audit.retention_moved = true;
            }
            Ok(CommandOutput::Done)
        }

        Command::PruneAudit { through_seq } => {
            let audit = &mut state.audit;
            let signed = audit.last_digest.as_ref().map_or(0, |d| d.to_seq);
            let limit = audit.exported_through.min(signed);
            if *through_seq > limit {
                return Err(DomainError::Conflict(format!(
                    "Cannot prune audit records through seq {through_seq}: only seqs up to \
                     {limit} are exported and covered by a signed digest."
                )));
            }
            if through_seq.saturating_sub(audit.pruned_through) > MAX_PRUNE_BATCH {
                return Err(DomainError::Validation(format!(
                    "One PruneAudit deletes at most {MAX_PRUNE_BATCH} records."
                )));
            }
            if *through_seq > audit.pruned_through {
                let from = match audit.pruned_pending {
                    Some((from, _)) => from,
                    None => audit.pruned_through + 1,
                };
                audit.pruned_pending = Some((from, *through_seq));
                audit.pruned_through = *through_seq;
                audit.retention_moved = true;
            }
            Ok(CommandOutput::Done)
        }

        Command::DeleteAccessKey { access_key_id } => {
            if state.access_keys.remove(access_key_id).is_none() {
                return Err(DomainError::NotFound(format!(
                    "Access key '{access_key_id}' does not exist"
                )));
            }
            changes.push(Change::AccessKey(access_key_id.clone()));
            Ok(CommandOutput::Done)
        }

        Command::DeleteIdentity { arn } => {
            if state.identities.remove(arn).is_none() {
                return Err(identity_not_found(arn));
            }
            changes.push(Change::Identity(arn.clone()));
            // Its access keys would authenticate as nobody; they go too. Grants naming the
            // principal stay, as in AWS: they are the key's, not the principal's.
            state.access_keys.retain(|id, k| {
                let keep = k.principal_arn != *arn;
                if !keep {
                    changes.push(Change::AccessKey(id.clone()));
                }
                keep
            });
            Ok(CommandOutput::Done)
        }

        Command::PutIdentityPolicy {
            arn,
            name,
            document,
        } => {
            let identity = state
                .identities
                .get_mut(arn)
                .ok_or_else(|| identity_not_found(arn))?;
            if !identity.policies.contains_key(name)
                && identity.policies.len() >= MAX_IDENTITY_POLICIES
            {
                return Err(DomainError::LimitExceeded(format!(
                    "An identity can have at most {MAX_IDENTITY_POLICIES} inline policies"
                )));
            }
            identity.policies.insert(name.clone(), document.clone());
            changes.push(Change::Identity(arn.clone()));
            Ok(CommandOutput::Done)
        }

        Command::DeleteIdentityPolicy { arn, name } => {
            let identity = state
                .identities
                .get_mut(arn)
                .ok_or_else(|| identity_not_found(arn))?;
            if identity.policies.remove(name).is_none() {
                return Err(DomainError::NotFound(format!(
                    "Policy '{name}' does not exist on identity '{arn}'"
                )));
            }
            changes.push(Change::Identity(arn.clone()));
            Ok(CommandOutput::Done)
        }

        Command::CreateGrant { grant } => create_grant(state, now, grant, changes),

        Command::RetireGrant { key_id, grant_id } | Command::RevokeGrant { key_id, grant_id } => {
            let key = state
                .keys
                .get(key_id)
                .ok_or_else(|| key_not_found(key_id))?;
            let op = if matches!(command, Command::RetireGrant { .. }) {
                Operation::RetireGrant
            } else {
                Operation::RevokeGrant
            };
            check_state(key, op)?;
            if state
                .grants
                .remove(&(key_id.clone(), grant_id.clone()))
                .is_none()
            {
                return Err(DomainError::InvalidGrantId(format!(
                    "Grant ID {grant_id} is not valid for key {}",
                    key.arn
                )));
            }
            changes.push(Change::Grant(key_id.clone(), grant_id.clone()));
            Ok(CommandOutput::Done)
        }
    }
}

/// Checks an AppendAudit's usage marks before anything is appended: at most two per event
/// (ReEncrypt marks two keys), ids of sane length.
fn validate_usage_marks(
    events: usize,
    marks: &[crate::usage::KeyUsageMark],
) -> Result<(), DomainError> {
    use crate::usage::MAX_MARK_ID_LEN;
    if marks.len() > events.saturating_mul(2) {
        return Err(DomainError::Validation(format!(
            "An audit batch of {events} events carries at most {} usage marks.",
            events.saturating_mul(2)
        )));
    }
    let bad = marks.iter().any(|m| {
        m.key_id.is_empty()
            || m.key_id.len() > crate::ciphertext::MAX_KEY_ID_LEN
            || m.event_id.len() > MAX_MARK_ID_LEN
            || m.request_id.len() > MAX_MARK_ID_LEN
    });
    if bad {
        return Err(DomainError::Validation(
            "A usage mark names no key or carries an overlong id.".into(),
        ));
    }
    Ok(())
}

/// Keeps the newest mark per existing key (by `at`; a tie goes to the later mark, so every
/// replica agrees), and starts the region's tracking at the first batch that carries marks.
fn record_usage(state: &mut State, now: EpochMillis, batch: &crate::usage::UsageBatch) {
    if state.audit.usage_tracking_start.is_none() {
        state.audit.usage_tracking_start = Some(batch.tracked_since.min(now));
    }
    for mark in &batch.marks {
        if !state.keys.contains_key(&mark.key_id) {
            continue;
        }
        let newer = state
            .key_last_usage
            .get(&mark.key_id)
            .is_none_or(|old| mark.at >= old.at);
        if newer {
            state
                .key_last_usage
                .insert(mark.key_id.clone(), mark.clone());
            state.key_last_usage_touched.insert(mark.key_id.clone());
        }
    }
}

fn identity_not_found(arn: &str) -> DomainError {
    DomainError::NotFound(format!("Identity '{arn}' does not exist"))
}

/// CreateGrant: the key must exist in a state that allows it, the grant must pass AWS's rules
/// for that key, a named grant asked for again is returned as it is, and a key holds at most
/// [`MAX_GRANTS_PER_KEY`] grants.
fn create_grant(
    state: &mut State,
    now: EpochMillis,
    grant: &GrantRecord,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    let key = state
        .keys
        .get(&grant.key_id)
        .ok_or_else(|| key_not_found(&grant.key_id))?;
    check_state(key, Operation::CreateGrant)?;
    let mut record = crate::grant::validated(key, grant)?;
    // The key's own identity wins over whatever the front copied, so a grant can never name
    // another key's ARN or account.
    record.key_arn = key.arn.clone();
    record.account_id = key.account_id.clone();
    record.creation_date = now;

    if let Some(existing) = grants_of_key(state, &grant.key_id).find(|g| g.same_request_as(&record))
    {
        return Ok(CommandOutput::Grant(existing.clone()));
    }
    let id = (record.key_id.clone(), record.grant_id.clone());
    if let Some(existing) = state.grants.get(&id) {
        // The same proposal applied twice (a front's retry) returns the first result; a
        // different grant reusing the id is refused (ids are 256 random bits, so this is a
        // front bug, not bad luck).
        let retried = GrantRecord {
            creation_date: existing.creation_date,
            ..record.clone()
        };
        if *existing == retried {
            return Ok(CommandOutput::Grant(existing.clone()));
        }
        return Err(DomainError::AlreadyExists(format!(
            "Grant {} already exists on key {}",
            record.grant_id, record.key_arn
        )));
    }
    if grants_of_key(state, &grant.key_id).count() >= MAX_GRANTS_PER_KEY {
        return Err(DomainError::LimitExceeded(format!(
            "A KMS key can have at most {MAX_GRANTS_PER_KEY} grants"
        )));
    }
    state.grants.insert(id, record.clone());
    changes.push(Change::Grant(
        record.key_id.clone(),
        record.grant_id.clone(),
    ));
    Ok(CommandOutput::Grant(record))
}

fn description_too_long() -> DomainError {
    DomainError::Validation(format!(
        "1 validation error detected: Value at 'description' failed to satisfy constraint: \
         Member must have length less than or equal to {MAX_DESCRIPTION_LEN}"
    ))
}
