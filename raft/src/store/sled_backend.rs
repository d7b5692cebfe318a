//! sled 0.34 backend: one tree per table; multi-tree commits in a sled transaction, then
//! `Db::flush` (fsync) before returning.

use std::io;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::kv::{empty_range, in_batches, KvBackend, Op, Pairs, Table};

/// A sled database with one tree per [`Table`].
pub struct SledBackend {
    db: sled::Db,
    trees: [sled::Tree; 7],
}

/// How long `open` waits for a previous handle's file lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// sled releases its file lock only when the last handle's threads have wound down, which can
/// lag a drop by a few milliseconds on a loaded machine; a restart in that window would fail
/// with `WouldBlock`. Wait for it, briefly, instead of failing the restart.
fn open_waiting_for_lock(path: &Path) -> io::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(io::Error::other(e)),
        }
    }
}

impl SledBackend {
    /// Opens or creates the database directory at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        // No background flusher: every commit flushes itself, and a flusher thread would keep
        // the database (and its lock) alive past the last handle.
        let db = open_waiting_for_lock(path)?;
        let open = |t: Table| db.open_tree(t.name()).map_err(io::Error::other);
        let trees = [
            open(Table::Log)?,
            open(Table::RaftMeta)?,
            open(Table::Entities)?,
            open(Table::SmMeta)?,
            // Trees added later are created (empty) when an older database is opened.
            open(Table::Audit)?,
            open(Table::AuditDigests)?,
            open(Table::Requests)?,
        ];
        Ok(SledBackend { db, trees })
    }

    fn tree(&self, t: Table) -> &sled::Tree {
        &self.trees[t.idx()]
    }

    fn keys_in(&self, t: Table, start: &[u8], end: Option<&[u8]>) -> io::Result<Vec<Vec<u8>>> {
        if empty_range(start, end) {
            return Ok(Vec::new());
        }
        let tree = self.tree(t);
        let iter = match end {
            Some(end) => tree.range(start.to_vec()..end.to_vec()),
            None => tree.range(start.to_vec()..),
        };
        iter.keys()
            .map(|k| k.map(|k| k.to_vec()).map_err(io::Error::other))
            .collect()
    }
}

enum Write {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
}

impl KvBackend for SledBackend {
    fn get(&self, table: Table, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .tree(table)
            .get(key)
            .map_err(io::Error::other)?
            .map(|v| v.to_vec()))
    }

    fn range(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if empty_range(start, end) {
            return Ok(Vec::new());
        }
        let tree = self.tree(table);
        let iter = match end {
            Some(end) => tree.range(start.to_vec()..end.to_vec()),
            None => tree.range(start.to_vec()..),
        };
        iter.map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(io::Error::other)
        })
        .collect()
    }

    fn last(&self, table: Table) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .tree(table)
            .last()
            .map_err(io::Error::other)?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn scan(
        &self,
        table: Table,
        batch: usize,
        each: &mut dyn FnMut(Pairs) -> io::Result<()>,
    ) -> io::Result<()> {
        // sled's iterators are not point-in-time; callers scan before anything writes (load).
        let pairs = self.tree(table).iter().map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(io::Error::other)
        });
        in_batches(pairs, batch, each)
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        let mut writes = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put(t, k, v) => writes.push(Write::Put(t, k, v)),
                Op::Delete(t, k) => writes.push(Write::Delete(t, k)),
                Op::DeleteRange(t, start, end) => {
                    for k in self.keys_in(t, &start, end.as_deref())? {
                        writes.push(Write::Delete(t, k));
                    }
                }
            }
        }
        let [t0, t1, t2, t3, t4, t5, t6] = &self.trees;
        let all = (t0, t1, t2, t3, t4, t5, t6);
        let res: Result<(), TransactionError<()>> = all.transaction(|(a, b, c, d, e, f, g)| {
            let trees = [a, b, c, d, e, f, g];
            for w in &writes {
                match w {
                    Write::Put(t, k, v) => {
                        trees[t.idx()].insert(k.as_slice(), v.as_slice())?;
                    }
                    Write::Delete(t, k) => {
                        trees[t.idx()].remove(k.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        res.map_err(|e| io::Error::other(format!("sled transaction: {e:?}")))?;
        self.db.flush().map_err(io::Error::other)?;
        Ok(())
    }
}
