//! Test support: an in-memory store that runs the real `keystore::apply`/`query`, so the
//! operations and the JSON router are exercised end to end without a cluster.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use keystore::command::{Command, CommandOutput, Proposal, Query, QueryOutput};
use keystore::crypto::{self, DomainKey, Secret};
use keystore::model::{AccessKeyRecord, IdentityRecord, State};
use tokio::sync::broadcast;

use super::store::{StoreApi, StoreError, WatchEvent};

/// `apply` behind a mutex, with a watch stream.
pub struct MemStore {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
    /// When set, every call fails with `Unavailable`.
    pub down: std::sync::atomic::AtomicBool,
}

impl MemStore {
    pub fn new() -> Self {
        MemStore {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
            down: Default::default(),
        }
    }

    fn check_up(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("test store is down".into()));
        }
        Ok(())
    }

    fn apply_now(&self, command: Command) -> Result<CommandOutput, StoreError> {
        self.check_up()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (out, changes) =
            keystore::apply(&mut self.state.lock().unwrap(), &Proposal { now, command });
        for c in changes {
            let _ = self.events.send(WatchEvent::Changed(c));
        }
        out.map_err(StoreError::Domain)
    }
}

impl StoreApi for MemStore {
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutput, StoreError>> {
        Box::pin(async move { self.apply_now(command) })
    }

    fn query(&self, q: Query) -> BoxFuture<'_, Result<QueryOutput, StoreError>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(keystore::query(&self.state.lock().unwrap(), &q))
        })
    }

    fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }
}

pub const ACCOUNT: &str = "111122223333";
pub const ROOT: &str = "arn:aws:iam::111122223333:root";
pub const ADMIN: &str = "arn:aws:iam::111122223333:user/admin";
pub const APP: &str = "arn:aws:iam::111122223333:role/App";
pub const OTHER_ROOT: &str = "arn:aws:iam::444455556666:root";
pub const ADMIN_AKID: &str = "AKIAADMINTEST0000001";
pub const ADMIN_SECRET: &str = "adminSecretKey/0123456789abcdefghijklmnop";
pub const APP_AKID: &str = "AKIAAPPTEST000000001";
pub const APP_SECRET: &str = "appSecretKey/0123456789abcdefghijklmnopqr";
pub const REGION: &str = "us-east-1";

/// Seeds identities and access keys the way `keyraft dev` does.
pub fn seed(store: &MemStore, dk: &DomainKey) {
    for (arn, account, admin) in [(ADMIN, ACCOUNT, true), (APP, ACCOUNT, false)] {
        store
            .apply_now(Command::PutIdentity {
                identity: IdentityRecord {
                    arn: arn.into(),
                    account_id: account.into(),
                    admin,
                },
            })
            .unwrap();
    }
    for (id, secret, arn) in [
        (ADMIN_AKID, ADMIN_SECRET, ADMIN),
        (APP_AKID, APP_SECRET, APP),
    ] {
        let wrapped = crypto::wrap_access_secret(dk, id, &Secret::new(secret.as_bytes().to_vec()));
        store
            .apply_now(Command::PutAccessKey {
                record: AccessKeyRecord {
                    access_key_id: id.into(),
                    principal_arn: arn.into(),
                    account_id: ACCOUNT.into(),
                    wrapped_secret: wrapped,
                    created_at: 0,
                },
            })
            .unwrap();
    }
}

/// A `Kms` over a fresh seeded `MemStore`; the store is returned for fault injection.
pub fn kms() -> (std::sync::Arc<super::Kms>, std::sync::Arc<MemStore>) {
    let dk = DomainKey::generate(1);
    let store = std::sync::Arc::new(MemStore::new());
    seed(&store, &dk);
    let kms = super::Kms::new(REGION.into(), store.clone(), dk, Duration::from_secs(1));
    (std::sync::Arc::new(kms), store)
}
