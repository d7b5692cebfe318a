//! `query`: read-only answers from the replicated state.

use std::ops::Bound;

use crate::command::{Query, QueryOutput};
use crate::model::{KeyState, State};

/// Largest ListKeys page.
pub const MAX_LIST_KEYS_LIMIT: u32 = 1000;
/// Largest ListAliases page.
pub const MAX_LIST_ALIASES_LIMIT: u32 = 100;
/// Largest ListGrants / ListRetirableGrants page.
pub const MAX_LIST_GRANTS_LIMIT: u32 = 100;
/// Largest ListIdentities page.
pub const MAX_LIST_IDENTITIES_LIMIT: u32 = 1000;

/// Answers one query. Page sizes outside the API's range are clamped into it.
pub fn query(state: &State, q: &Query) -> QueryOutput {
    match q {
        Query::GetKey { key_id } => QueryOutput::Key(state.keys.get(key_id).cloned().map(Box::new)),
        Query::GetAlias {
            account_id,
            alias_name,
        } => QueryOutput::Alias(
            state
                .aliases
                .get(&(account_id.clone(), alias_name.clone()))
                .cloned(),
        ),
        Query::ListKeys {
            account_id,
            limit,
            marker,
        } => {
            let start = match marker {
                Some(m) => Bound::Excluded(m.clone()),
                None => Bound::Unbounded,
            };
            let mut items = state
                .keys
                .range::<String, _>((start, Bound::Unbounded))
                .map(|(_, k)| k)
                .filter(|k| k.account_id == *account_id);
            let (keys, more) = page(&mut items, clamp(*limit, MAX_LIST_KEYS_LIMIT));
            let next_marker = more
                .then(|| keys.last().map(|k| k.key_id.clone()))
                .flatten();
            QueryOutput::Keys { keys, next_marker }
        }
        Query::ListAliases {
            account_id,
            key_id,
            limit,
            marker,
        } => {
            let start = match marker {
                Some(m) => Bound::Excluded((account_id.clone(), m.clone())),
                None => Bound::Included((account_id.clone(), String::new())),
            };
            let mut items = state
                .aliases
                .range((start, Bound::Unbounded))
                .map(|(_, a)| a)
                .take_while(|a| a.account_id == *account_id)
                .filter(|a| key_id.as_ref().is_none_or(|id| a.target_key_id == *id));
            let (aliases, more) = page(&mut items, clamp(*limit, MAX_LIST_ALIASES_LIMIT));
            let next_marker = more
                .then(|| aliases.last().map(|a| a.alias_name.clone()))
                .flatten();
            QueryOutput::Aliases {
                aliases,
                next_marker,
            }
        }
        Query::GetIdentity { arn } => QueryOutput::Identity(state.identities.get(arn).cloned()),
        Query::GetAccessKey { access_key_id } => {
            QueryOutput::AccessKey(state.access_keys.get(access_key_id).cloned())
        }
        Query::DueForDeletion { now } => QueryOutput::KeyIds(
            state
                .keys
                .values()
                .filter(|k| {
                    k.state == KeyState::PendingDeletion
                        && k.deletion_date.is_some_and(|d| d <= *now)
                })
                .map(|k| k.key_id.clone())
                .collect(),
        ),
        Query::KeysAwaitingMaterial => {
            QueryOutput::KeyIds(crate::rotation::awaiting_material(state))
        }
        Query::KeysAwaitingMaterialAmong { key_ids } => QueryOutput::KeyIds(
            key_ids
                .iter()
                .filter(|id| {
                    state
                        .keys
                        .get(id.as_str())
                        .is_some_and(crate::rotation::needs_material)
                })
                .cloned()
                .collect(),
        ),
        Query::GetGrant { key_id, grant_id } => QueryOutput::Grant(
            state
                .grants
                .get(&(key_id.clone(), grant_id.clone()))
                .cloned(),
        ),
        Query::ListGrants {
            key_id,
            grant_id,
            grantee_principal,
            marker,
            limit,
        } => {
            let start = match marker {
                Some(m) => Bound::Excluded((key_id.clone(), m.clone())),
                None => Bound::Included((key_id.clone(), String::new())),
            };
            let mut items = state
                .grants
                .range((start, Bound::Unbounded))
                .take_while(|((k, _), _)| k == key_id)
                .map(|(_, g)| g)
                .filter(|g| grant_id.as_ref().is_none_or(|id| g.grant_id == *id))
                .filter(|g| {
                    grantee_principal
                        .as_ref()
                        .is_none_or(|p| g.grantee_principal == *p)
                });
            let (grants, more) = page(&mut items, clamp(*limit, MAX_LIST_GRANTS_LIMIT));
            let next_marker = more
                .then(|| grants.last().map(|g| g.grant_id.clone()))
                .flatten();
            QueryOutput::Grants {
                grants,
                next_marker,
            }
        }
        Query::ListRetirableGrants {
            retiring_principal,
            marker,
            limit,
        } => {
            let start = match marker.as_deref().map(split_grant_marker) {
                Some(after) => Bound::Excluded(after),
                None => Bound::Unbounded,
            };
            let mut items = state
                .grants
                .range((start, Bound::Unbounded))
                .map(|(_, g)| g)
                .filter(|g| g.retiring_principal.as_deref() == Some(retiring_principal.as_str()));
            let (grants, more) = page(&mut items, clamp(*limit, MAX_LIST_GRANTS_LIMIT));
            let next_marker = more
                .then(|| {
                    grants
                        .last()
                        .map(|g| format!("{}/{}", g.key_id, g.grant_id))
                })
                .flatten();
            QueryOutput::Grants {
                grants,
                next_marker,
            }
        }
        Query::ListIdentities {
            account_id,
            marker,
            limit,
        } => {
            let start = match marker {
                Some(m) => Bound::Excluded(m.clone()),
                None => Bound::Unbounded,
            };
            let mut items = state
                .identities
                .range::<String, _>((start, Bound::Unbounded))
                .map(|(_, i)| i)
                .filter(|i| i.account_id == *account_id);
            let (identities, more) = page(&mut items, clamp(*limit, MAX_LIST_IDENTITIES_LIMIT));
            let next_marker = more
                .then(|| identities.last().map(|i| i.arn.clone()))
                .flatten();
            QueryOutput::Identities {
                identities,
                next_marker,
            }
        }
        Query::ListAccessKeys { principal_arn } => QueryOutput::AccessKeys(
            state
                .access_keys
                .values()
                .filter(|k| k.principal_arn == *principal_arn)
                .cloned()
                .collect(),
        ),
        Query::AuditRetention => QueryOutput::AuditRetention {
            exported_through: state.audit.exported_through,
            pruned_through: state.audit.pruned_through,
        },
        Query::GetKeyLastUsage { key_id } => QueryOutput::KeyLastUsage {
            last_usage: state.key_last_usage.get(key_id).cloned(),
            tracking_start: state.audit.usage_tracking_start,
        },
        Query::ReplicationOutbox => QueryOutput::Keys {
            keys: crate::multi_region::keys_with_outbox(state)
                .iter()
                .filter_map(|id| state.keys.get(id).cloned())
                .collect(),
            next_marker: None,
        },
    }
}

/// A ListRetirableGrants marker `<key id>/<grant id>` as the (key id, grant id) to start
/// after. Grant ids are alphanumeric, so the last `/` separates them. The front validates
/// markers; one without `/` starts at the first grant of the key it names.
fn split_grant_marker(marker: &str) -> (String, String) {
    match marker.rsplit_once('/') {
        Some((key_id, grant_id)) => (key_id.to_owned(), grant_id.to_owned()),
        None => (marker.to_owned(), String::new()),
    }
}

fn clamp(limit: u32, max: u32) -> usize {
    // u32 -> usize is lossless on every platform keyraft targets (32 and 64 bit).
    usize::try_from(limit.clamp(1, max)).unwrap_or(1)
}

/// Takes up to `limit` items and reports whether any remain.
fn page<'a, T: Clone + 'a>(
    items: &mut impl Iterator<Item = &'a T>,
    limit: usize,
) -> (Vec<T>, bool) {
    let out: Vec<T> = items.by_ref().take(limit).cloned().collect();
    let more = items.next().is_some();
    (out, more)
}
