//! redb 4 backend: one table per [`Table`] in one file; every commit is a write transaction
//! with `Durability::Immediate` (fsync before `commit` returns).

use std::io;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::kv::{empty_range, in_batches, KvBackend, Op, Pairs, Table};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

// Indexed by `Table::idx`; opening a database written before a table existed creates it
// (empty), so older data directories open unchanged.
const DEFS: [Def; 7] = [
    TableDefinition::new("log"),
    TableDefinition::new("raft_meta"),
    TableDefinition::new("entities"),
    TableDefinition::new("sm_meta"),
    TableDefinition::new("audit"),
    TableDefinition::new("audit_digests"),
    TableDefinition::new("requests"),
];

fn def(t: Table) -> Def {
    DEFS[t.idx()]
}

fn err<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    io::Error::other(e)
}

/// redb's page cache. Its default (1 GiB) is held resident once the file is that large; the
/// state machine keeps its state in memory and reads the tables only for the log tail, audit
/// pages and snapshots, so a smaller cache costs little.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A redb database file with one table per [`Table`].
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Opens or creates the database file at `path`, creating missing tables.
    pub fn open(path: &Path) -> io::Result<Self> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(err)?;
        let mut tx = db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        for t in Table::ALL {
            tx.open_table(def(t)).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(RedbBackend { db })
    }
}

impl KvBackend for RedbBackend {
    fn get(&self, table: Table, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
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
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        let iter = match end {
            Some(end) => t.range(start..end).map_err(err)?,
            None => t.range(start..).map_err(err)?,
        };
        let mut out = Vec::new();
        for kv in iter {
            let (k, v) = kv.map_err(err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn last(&self, table: Table) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        let last = t
            .last()
            .map_err(err)?
            .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
        Ok(last)
    }

    fn scan(
        &self,
        table: Table,
        batch: usize,
        each: &mut dyn FnMut(Pairs) -> io::Result<()>,
    ) -> io::Result<()> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(def(table)).map_err(err)?;
        let pairs = t.iter().map_err(err)?.map(|kv| {
            kv.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .map_err(err)
        });
        in_batches(pairs, batch, each)
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        {
            let mut tables = Vec::with_capacity(Table::ALL.len());
            for t in Table::ALL {
                tables.push(tx.open_table(def(t)).map_err(err)?);
            }
            for op in ops {
                match op {
                    Op::Put(t, k, v) => {
                        tables[t.idx()]
                            .insert(k.as_slice(), v.as_slice())
                            .map_err(err)?;
                    }
                    Op::Delete(t, k) => {
                        tables[t.idx()].remove(k.as_slice()).map_err(err)?;
                    }
                    Op::DeleteRange(_, start, end) if empty_range(&start, end.as_deref()) => {}
                    Op::DeleteRange(t, start, end) => {
                        let table = &mut tables[t.idx()];
                        let keys: Vec<Vec<u8>> = {
                            let iter = match &end {
                                Some(end) => {
                                    table.range(start.as_slice()..end.as_slice()).map_err(err)?
                                }
                                None => table.range(start.as_slice()..).map_err(err)?,
                            };
                            let mut keys = Vec::new();
                            for kv in iter {
                                keys.push(kv.map_err(err)?.0.value().to_vec());
                            }
                            keys
                        };
                        for k in keys {
                            table.remove(k.as_slice()).map_err(err)?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }
}
