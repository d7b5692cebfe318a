//! Where a node keeps its stored snapshot document: a file of its own in `<data dir>/snapshots`,
//! named in `sm_meta` beside the snapshot's meta.
//!
//! ```text
//! build / install: doc --write tmp, fsync, rename, fsync dir--> snapshots/snapshot-<index>-<n>.json
//!                  then one commit: sm_meta/snapshot_meta + snapshot_file (+ entities ...)
//!                  then every other file in snapshots/ is removed
//! send:            sm_meta/snapshot_file --> read that file (gone: a newer snapshot replaced it)
//! open:            files sm_meta does not name (a crash between write and commit) are removed
//! ```
//!
//! Why not a value in the database, as before 2026-11-29: at a million keys the document is
//! ~0.8 GB. Committing it held the database's single write lock for seconds on every node at
//! once (appends and applies waited: elections, audited calls failing closed), each commit
//! rewrote it in fresh pages while the old ones stayed allocated until freed (the file grew by
//! twice the document), and redb's crash repair walks every allocated page. A data directory
//! written before still has its document in `sm_meta/snapshot_data`: it is read from there until
//! the next snapshot replaces it. Without a directory (a bare [`KvBackend`], as some tests and
//! tools open one) documents stay in the table.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};

/// `sm_meta` key of the stored document, when it is kept in the table.
pub(crate) const SNAPSHOT_DATA: &[u8] = b"snapshot_data";
/// `sm_meta` key naming the current document's file in the snapshots directory.
const SNAPSHOT_FILE: &[u8] = b"snapshot_file";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".json";

/// Makes names unique within a process (several builds at one index: a rebuilt snapshot).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A node's stored snapshot documents (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct SnapshotDocs {
    dir: Option<PathBuf>,
    /// Held from staging a document until its commit and cleanup are done. A build and an
    /// install can run at once (openraft builds in a task of its own): a cleanup between the
    /// other's stage and commit would remove the file that commit is about to name.
    replacing: Arc<tokio::sync::Mutex<()>>,
}

impl SnapshotDocs {
    /// Documents as files in `dir` (created if missing). Files `kv` does not name are left
    /// from a crash between writing one and committing it, and are removed.
    pub fn in_dir(dir: &Path, kv: &dyn KvBackend) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let docs = SnapshotDocs {
            dir: Some(dir.to_path_buf()),
            replacing: Arc::default(),
        };
        docs.remove_unreferenced(kv)?;
        Ok(docs)
    }

    /// Documents as values in `sm_meta` (no directory).
    pub fn in_table() -> Self {
        SnapshotDocs::default()
    }

    /// Exclusive right to replace the stored document (stage, commit, clean up), from async
    /// code.
    pub(crate) async fn replacing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.replacing.lock().await
    }

    /// [`Self::replacing`] from a plain thread (not a runtime's: that would panic).
    pub(crate) fn replacing_blocking(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.replacing.blocking_lock()
    }

    /// Makes `doc` durable without making it current, and returns the ops that make it
    /// current: commit them (with the snapshot's meta), then call [`Self::remove_unreferenced`].
    pub(crate) fn stage(&self, doc: Vec<u8>, index: Option<u64>) -> io::Result<Vec<Op>> {
        let Some(dir) = &self.dir else {
            return Ok(vec![Op::Put(Table::SmMeta, SNAPSHOT_DATA.to_vec(), doc)]);
        };
        let name = format!(
            "{PREFIX}{}-{}-{}{SUFFIX}",
            index.map_or_else(|| "none".to_string(), |i| i.to_string()),
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join(format!("{name}.tmp"));
        {
            // Owner-only: it holds the wrapped key material and the access-key records.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&doc)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(&name))?;
        fs::File::open(dir)?.sync_all()?;
        Ok(vec![
            Op::Put(Table::SmMeta, SNAPSHOT_FILE.to_vec(), to_json(&name)?),
            // A document of an older binary, now superseded.
            Op::Delete(Table::SmMeta, SNAPSHOT_DATA.to_vec()),
        ])
    }

    /// The current document (empty when there is none). A file that is gone was replaced by a
    /// newer snapshot since its name was read: `NotFound`.
    pub(crate) fn read(&self, kv: &dyn KvBackend) -> io::Result<Vec<u8>> {
        match (&self.dir, current_file(kv)?) {
            (Some(dir), Some(name)) => fs::read(dir.join(name)),
            (None, Some(_)) => Err(io::Error::other(
                "the snapshot document is in a file, but no snapshots directory was given",
            )),
            (_, None) => Ok(kv.get(Table::SmMeta, SNAPSHOT_DATA)?.unwrap_or_default()),
        }
    }

    /// Removes every document file but the current one (and unfinished writes).
    pub(crate) fn remove_unreferenced(&self, kv: &dyn KvBackend) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let current = current_file(kv)?;
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(PREFIX) && Some(name) != current.as_deref() {
                match fs::remove_file(dir.join(name)) {
                    Ok(()) => {}
                    // A concurrent cleanup got there first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

fn current_file(kv: &dyn KvBackend) -> io::Result<Option<String>> {
    let name: Option<String> = kv
        .get(Table::SmMeta, SNAPSHOT_FILE)?
        .map(|v| from_json(&v))
        .transpose()?;
    match name {
        // Only a plain name this module made: never a path out of the directory.
        Some(n) if !n.starts_with(PREFIX) || n.contains(['/', '\\']) || n.contains("..") => {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad snapshot file name in sm_meta",
            ))
        }
        other => Ok(other),
    }
}
