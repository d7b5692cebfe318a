//! Durable storage of a node: the Raft log, the vote and the state machine, on one embedded
//! database behind the small [`KvBackend`] trait (sled or redb).
//!
//! Seven tables: `log` (index as big-endian u64 -> serde_json `Entry`), `raft_meta` (`vote`,
//! `last_purged`), `entities` (serde_json `Change` -> serde_json [`Entity`]), `sm_meta`
//! (`last_applied`, `last_membership`, `audit_log`, `snapshot_*`), `audit` (seq -> serde_json
//! `AuditRecord`), `audit_digests` (digest seq -> serde_json `DigestRecord`) and `requests`
//! (log index -> the [`dedup`] row of a proposal with a request id). The stored snapshot
//! document is a file in `<data dir>/snapshots` ([`SnapshotDocs`]). See docs/storage.md.

pub(crate) mod audit;
pub mod dedup;
mod digest;
mod kv;
mod log_store;
mod redb_backend;
mod sled_backend;
mod snapshot_docs;
mod state_machine;

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

pub use audit::MAX_AUDIT_PAGE;
pub use kv::{KvBackend, Op, Pairs, Table};
pub use log_store::{Committer, LogStore};
pub use redb_backend::RedbBackend;
pub use sled_backend::SledBackend;
pub use snapshot_docs::SnapshotDocs;
pub use state_machine::{AppliedState, Entity, SnapshotBuilder, SnapshotData, StateMachineStore};

use crate::client::WatchEvent;

/// Which embedded database a node keeps its log and state machine in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// sled 0.34 (selectable; see docs/storage.md for why it is not the default).
    Sled,
    /// redb 4: stable file format, crash-safe commits. The default.
    #[default]
    Redb,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sled => "sled",
            Backend::Redb => "redb",
        })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sled" => Ok(Backend::Sled),
            "redb" => Ok(Backend::Redb),
            other => Err(format!(
                "unknown storage backend {other:?} (expected redb or sled)"
            )),
        }
    }
}

impl Backend {
    /// Opens (creating if needed) this backend's database under `dir`.
    pub fn open_kv(self, dir: &Path) -> io::Result<Arc<dyn KvBackend>> {
        Ok(self.open_kv_with_close_signal(dir)?.0)
    }

    /// [`Backend::open_kv`], plus a receiver that resolves once the database has been closed
    /// (its last handle dropped and its file lock released).
    pub fn open_kv_with_close_signal(
        self,
        dir: &Path,
    ) -> io::Result<(Arc<dyn KvBackend>, tokio::sync::oneshot::Receiver<()>)> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let kv: Arc<dyn KvBackend> = match self {
            Backend::Sled => Arc::new(Closing {
                inner: SledBackend::open(&dir.join("sled"))?,
                _closed: tx,
            }),
            Backend::Redb => Arc::new(Closing {
                inner: RedbBackend::open(&dir.join("keyraft.redb"))?,
                _closed: tx,
            }),
        };
        Ok((kv, rx))
    }
}

/// A backend that drops a oneshot sender after the database: fields drop in declaration
/// order, so the receiver resolves only once the database is really closed.
struct Closing<B> {
    inner: B,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl<B: KvBackend> KvBackend for Closing<B> {
    fn get(&self, table: Table, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }
    fn range(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.range(table, start, end)
    }
    fn last(&self, table: Table) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.last(table)
    }
    fn scan(
        &self,
        table: Table,
        batch: usize,
        each: &mut dyn FnMut(Pairs) -> io::Result<()>,
    ) -> io::Result<()> {
        self.inner.scan(table, batch, each)
    }
    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        self.inner.commit(ops)
    }
}

/// Opens the log store and the state machine of a node under `dir`, loading the persisted
/// state machine back into memory. `events` receives a [`WatchEvent`] for every entity touched
/// by each applied entry (and `Resync` when a snapshot replaces everything).
pub fn open_store(
    backend: Backend,
    dir: &Path,
    events: tokio::sync::broadcast::Sender<WatchEvent>,
) -> io::Result<(LogStore, StateMachineStore)> {
    open_store_on(backend.open_kv(dir)?, dir, events)
}

/// [`open_store`] over an already opened database `kv` of the node directory `dir`: the log
/// store with its writer thread, and the state machine loaded from `kv`, committing through
/// that writer and keeping its snapshot documents in `dir/snapshots`.
pub fn open_store_on(
    kv: Arc<dyn KvBackend>,
    dir: &Path,
    events: tokio::sync::broadcast::Sender<WatchEvent>,
) -> io::Result<(LogStore, StateMachineStore)> {
    let log = LogStore::new(kv.clone());
    let mut sm = StateMachineStore::load(kv, events)?;
    sm.commit_with(&log);
    sm.keep_snapshot_docs_in(&dir.join("snapshots"))?;
    Ok((log, sm))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    serde_json::from_slice(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Runs `f` on a thread of its own at a lower CPU priority (nice 10) and waits for it.
///
/// Building, decoding and completing snapshots serialize the whole state: seconds at a million
/// keys, on every node at once. At normal priority on a loaded 2-core host they starved the
/// Raft and request threads — heartbeats came late, elections followed and audited calls
/// failed closed (`bench/scale.sh`). At nice 10 those threads go first.
pub(crate) async fn low_priority<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("keyraft-snapshot".into())
        .spawn(move || {
            // Per thread on Linux: only this one is reniced.
            if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10)
            {
                tracing::debug!(error = %e, "could not lower the snapshot thread's priority");
            }
            let _ = tx.send(f());
        })?;
    rx.await
        .map_err(|_| io::Error::other("the snapshot thread panicked"))
}
