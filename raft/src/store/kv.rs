//! The storage trait both backends implement: seven tables of byte keys and values, point and
//! range reads, and atomic, durable multi-table commits.

use std::io;

/// The tables of a node's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Raft log: big-endian u64 index -> entry.
    Log,
    /// Raft metadata: vote, last purged log id.
    RaftMeta,
    /// State machine entities: encoded `Change` -> encoded `Entity`.
    Entities,
    /// State machine metadata: last applied, last membership, audit chain head, current
    /// snapshot.
    SmMeta,
    /// The region's audit chain: big-endian u64 seq -> serde_json `AuditRecord`.
    Audit,
    /// Signed digests of the chain: big-endian u64 digest_seq -> serde_json `DigestRecord`.
    AuditDigests,
    /// The deduplication table: big-endian u64 log index -> serde_json `dedup::Row` (request
    /// id, leader time, response) of the recently applied proposals that carried an id.
    Requests,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 7] = [
        Table::Log,
        Table::RaftMeta,
        Table::Entities,
        Table::SmMeta,
        Table::Audit,
        Table::AuditDigests,
        Table::Requests,
    ];

    /// The table's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Table::Log => "log",
            Table::RaftMeta => "raft_meta",
            Table::Entities => "entities",
            Table::SmMeta => "sm_meta",
            Table::Audit => "audit",
            Table::AuditDigests => "audit_digests",
            Table::Requests => "requests",
        }
    }

    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

/// Whether `start..end` is empty (backends must not hand an inverted range to the database).
pub(crate) fn empty_range(start: &[u8], end: Option<&[u8]>) -> bool {
    matches!(end, Some(end) if end <= start)
}

/// One write of a commit.
#[derive(Clone, Debug)]
pub enum Op {
    /// Insert or overwrite.
    Put(Table, Vec<u8>, Vec<u8>),
    /// Remove one key (absent keys are fine).
    Delete(Table, Vec<u8>),
    /// Remove every key in `start..end` (`end = None`: to the end of the table).
    DeleteRange(Table, Vec<u8>, Option<Vec<u8>>),
}

/// Key-value pairs, as `range` and `scan` return them.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Hands `each` the pairs `pairs` yields, `batch` at a time (both backends' `scan`).
pub(crate) fn in_batches(
    pairs: impl Iterator<Item = io::Result<(Vec<u8>, Vec<u8>)>>,
    batch: usize,
    each: &mut dyn FnMut(Pairs) -> io::Result<()>,
) -> io::Result<()> {
    let batch = batch.max(1);
    let mut out = Vec::with_capacity(batch);
    for pair in pairs {
        out.push(pair?);
        if out.len() >= batch {
            each(std::mem::replace(&mut out, Vec::with_capacity(batch)))?;
        }
    }
    if !out.is_empty() {
        each(out)?;
    }
    Ok(())
}

/// A key-value store with atomic, durable commits.
///
/// `commit` must apply all of its ops or none, and must not return `Ok` before the data would
/// survive a power loss (fsync). Callers write from one task at a time per table group (the
/// Raft log worker, the state-machine worker), so implementations may expand `DeleteRange` by
/// scanning keys before the transaction.
pub trait KvBackend: Send + Sync + 'static {
    /// One value.
    fn get(&self, table: Table, key: &[u8]) -> io::Result<Option<Vec<u8>>>;
    /// Key-ordered pairs in `start..end` (`end = None`: to the end).
    fn range(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The greatest key and its value.
    fn last(&self, table: Table) -> io::Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Hands `each` every pair of `table` in key order, `batch` pairs at a time, from one
    /// consistent read: loading a large table without a second copy of all of it in memory.
    fn scan(
        &self,
        table: Table,
        batch: usize,
        each: &mut dyn FnMut(Pairs) -> io::Result<()>,
    ) -> io::Result<()>;
    /// Applies `ops` atomically and durably.
    fn commit(&self, ops: Vec<Op>) -> io::Result<()>;
}
