//! Read-through cache of the records crypto operations and authentication need: keys,
//! aliases, identities, access keys.
//!
//! Two mechanisms bound staleness: the store's watch stream drops an entry as soon as its
//! entity changes (and everything on `Resync` or lag), and every entry expires after
//! `staleness` (default 1 s) whatever the stream says, so a front with a broken stream still
//! sees a disabled key or revoked identity within that bound.
//!
//! A read that races an invalidation must not re-insert the value it read before the change:
//! each read notes the invalidation epoch before asking the store and inserts only if the
//! epoch has not moved.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keystore::command::{Change, Query, QueryOutput};
use keystore::grant::GrantRecord;
use keystore::model::{AccessKeyRecord, AliasRecord, IdentityRecord, KeyRecord};
use raft::{StoreClient, WatchEvent};
use tokio::sync::broadcast;

use super::errors::KmsError;

/// Bound on entries per map; beyond it the map is cleared (simple, and rare: a front serves
/// one region's keys).
const MAX_ENTRIES: usize = 100_000;

struct Map<K, V> {
    entries: Mutex<HashMap<K, (Instant, Option<V>)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, Option<V>)>> {
        // A panic while holding the lock cannot leave a map half-updated (single inserts and
        // removes), so a poisoned lock is safe to keep using.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, k: &K, staleness: Duration) -> Option<Option<V>> {
        let map = self.lock();
        let (at, v) = map.get(k)?;
        (at.elapsed() < staleness).then(|| v.clone())
    }

    fn insert(&self, k: K, v: Option<V>, at: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(k, (at, v));
    }

    fn remove(&self, k: &K) {
        self.lock().remove(k);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// The cache. Shared by every request of a front.
pub struct Cache {
    staleness: Duration,
    epoch: AtomicU64,
    keys: Map<String, KeyRecord>,
    aliases: Map<(String, String), AliasRecord>,
    identities: Map<String, IdentityRecord>,
    access_keys: Map<String, AccessKeyRecord>,
    // Every grant of a key, by key id: what `authorize` consults when policies say no.
    grants: Map<String, Arc<Vec<GrantRecord>>>,
}

impl Cache {
    /// A cache whose entries live at most `staleness`.
    pub fn new(staleness: Duration) -> Self {
        Cache {
            staleness,
            epoch: AtomicU64::new(0),
            keys: Map::new(),
            aliases: Map::new(),
            identities: Map::new(),
            access_keys: Map::new(),
            grants: Map::new(),
        }
    }

    /// Drop what `change` touched.
    pub fn invalidate(&self, change: &Change) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Key(id) => self.keys.remove(id),
            Change::Alias(account, name) => self.aliases.remove(&(account.clone(), name.clone())),
            Change::Identity(arn) => self.identities.remove(arn),
            Change::AccessKey(id) => self.access_keys.remove(id),
            Change::Grant(key_id, _) => self.grants.remove(key_id),
        }
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
        self.aliases.clear();
        self.identities.clear();
        self.access_keys.clear();
        self.grants.clear();
    }

    /// Apply the store's change stream until it closes. Lagging (missed events) clears all.
    pub async fn follow(self: Arc<Self>, mut rx: broadcast::Receiver<WatchEvent>) {
        loop {
            match rx.recv().await {
                Ok(WatchEvent::Changed(change)) => self.invalidate(&change),
                Ok(WatchEvent::Resync) => self.clear(),
                Err(broadcast::error::RecvError::Lagged(_)) => self.clear(),
                Err(broadcast::error::RecvError::Closed) => {
                    // Without a stream only the staleness bound protects us; keep serving.
                    self.clear();
                    tracing::warn!("store watch stream closed; cache relies on expiry alone");
                    return;
                }
            }
        }
    }

    async fn read<K, V, F>(
        &self,
        map: &Map<K, V>,
        key: K,
        store: &StoreClient,
        query: Query,
        extract: F,
    ) -> Result<Option<V>, KmsError>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: FnOnce(QueryOutput) -> Option<Option<V>>,
    {
        if let Some(hit) = map.get(&key, self.staleness) {
            return Ok(hit);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let started = Instant::now();
        let out = store.query(query).await?;
        let value = extract(out).ok_or_else(|| {
            tracing::error!("store answered a query with the wrong output kind");
            KmsError::internal()
        })?;
        if self.epoch.load(Ordering::SeqCst) == epoch {
            // Age counts from before the read, so the bound holds from the store's answer.
            map.insert(key, value.clone(), started);
        }
        Ok(value)
    }

    /// A key record by id.
    pub async fn key(
        &self,
        store: &StoreClient,
        key_id: &str,
    ) -> Result<Option<KeyRecord>, KmsError> {
        let q = Query::GetKey {
            key_id: key_id.to_string(),
        };
        self.read(&self.keys, key_id.to_string(), store, q, |o| match o {
            QueryOutput::Key(k) => Some(k.map(|b| *b)),
            _ => None,
        })
        .await
    }

    /// An alias by (account, name).
    pub async fn alias(
        &self,
        store: &StoreClient,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<AliasRecord>, KmsError> {
        let q = Query::GetAlias {
            account_id: account_id.to_string(),
            alias_name: alias_name.to_string(),
        };
        let k = (account_id.to_string(), alias_name.to_string());
        self.read(&self.aliases, k, store, q, |o| match o {
            QueryOutput::Alias(a) => Some(a),
            _ => None,
        })
        .await
    }

    /// An identity by ARN.
    pub async fn identity(
        &self,
        store: &StoreClient,
        arn: &str,
    ) -> Result<Option<IdentityRecord>, KmsError> {
        let q = Query::GetIdentity {
            arn: arn.to_string(),
        };
        self.read(&self.identities, arn.to_string(), store, q, |o| match o {
            QueryOutput::Identity(i) => Some(i),
            _ => None,
        })
        .await
    }

    /// Every grant of a key (all pages of ListGrants), under the same staleness bound and
    /// invalidation as the other entries.
    pub async fn grants(
        &self,
        store: &StoreClient,
        key_id: &str,
    ) -> Result<Arc<Vec<GrantRecord>>, KmsError> {
        if let Some(Some(hit)) = self.grants.get(&key_id.to_string(), self.staleness) {
            return Ok(hit);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let started = Instant::now();
        let mut all = Vec::new();
        let mut marker = None;
        loop {
            let out = store
                .query(Query::ListGrants {
                    key_id: key_id.to_string(),
                    grant_id: None,
                    grantee_principal: None,
                    marker: marker.take(),
                    limit: 100,
                })
                .await?;
            let QueryOutput::Grants {
                grants,
                next_marker,
            } = out
            else {
                tracing::error!("store answered a query with the wrong output kind");
                return Err(KmsError::internal());
            };
            all.extend(grants);
            match next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        let all = Arc::new(all);
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.grants
                .insert(key_id.to_string(), Some(all.clone()), started);
        }
        Ok(all)
    }

    /// An access key by id.
    pub async fn access_key(
        &self,
        store: &StoreClient,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRecord>, KmsError> {
        let q = Query::GetAccessKey {
            access_key_id: access_key_id.to_string(),
        };
        self.read(
            &self.access_keys,
            access_key_id.to_string(),
            store,
            q,
            |o| match o {
                QueryOutput::AccessKey(a) => Some(a),
                _ => None,
            },
        )
        .await
    }
}
