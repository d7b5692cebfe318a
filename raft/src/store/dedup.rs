//! Exactly-once application of proposals: the deduplication table.
//!
//! [`crate::StoreClient::propose`] retries after ambiguous failures (a connection lost after
//! the request was sent, a timeout, a failed forward), so one logical proposal can reach the
//! log more than once. Each carries the same [`RequestId`]; the state machine applies the first
//! entry with an id and remembers `id -> (log index, leader time, Response)`. A later entry
//! with the same id is not applied again: it answers with the remembered `Response` (so a
//! retried `CreateKey` returns the key the first attempt created) and changes nothing.
//!
//! # The bound
//!
//! Rows are kept in log-index order and dropped from the oldest, deterministically (every
//! replica applies the same entries, so every replica holds the same rows):
//!
//! - when applying a normal entry stamped `now` by its leader, every oldest row whose own
//!   leader time is more than [`WINDOW_MS`] (5 minutes) before `now` is dropped;
//! - and at most [`MAX_ROWS`] rows are kept (the oldest go first).
//!
//! Why 5 minutes is safe: every copy of one logical proposal is sent within one `propose` call,
//! which starts no attempt after its retry budget (default 10 s) and bounds each attempt (5 s,
//! plus one forward). Every copy is therefore stamped by some leader within ~15 s of the first,
//! so a duplicate finds its original unless leader clocks disagree by minutes. Callers that
//! reuse an id across their own retries ([`crate::StoreClient::propose_with_id`]) must finish
//! well inside the window too. The row cap protects memory: at more than `MAX_ROWS / 300 s`
//! (~330) identified proposals per second sustained, the window shrinks below 5 minutes; a
//! warning is logged when a row younger than the window is dropped for space.
//!
//! # Persistence
//!
//! Table `requests`: big-endian log index -> serde_json [`Row`]. Rows are put and dropped in the
//! same commit as the entities, audit records and `last_applied` of the batch that added or
//! evicted them, so after a crash the table is exactly the one after `last_applied`. Snapshots
//! (format 3) carry the rows; installing one replaces the table.

use std::collections::{BTreeMap, HashMap};
use std::io;

use keystore::model::EpochMillis;
use serde::{Deserialize, Serialize};

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};
use crate::types::{RequestId, Response};

/// How long (in leader time) a request id is remembered.
pub const WINDOW_MS: EpochMillis = 5 * 60 * 1000;
/// Most request ids remembered at once.
pub const MAX_ROWS: usize = 100_000;

/// One remembered proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Log index of the entry that applied it.
    pub index: u64,
    /// Its request id.
    pub request_id: RequestId,
    /// The leader time stamped on that entry.
    pub now: EpochMillis,
    /// What applying it returned.
    pub response: Response,
}

/// The in-memory deduplication table (mirrors table `requests`).
#[derive(Clone, Debug, Default)]
pub struct Dedup {
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<RequestId, u64>,
    /// Rows dropped while still in the window since the last warning, and when that was:
    /// under a sustained overflow every entry drops one, so warn every few seconds, not per
    /// entry. (Logging only; no replica state.)
    squeezed_unreported: usize,
    last_squeeze_warning: Option<std::time::Instant>,
}

/// How often a full request-id table is reported.
const SQUEEZE_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Dedup {
    /// A table holding `rows` (from disk or a snapshot).
    pub fn from_rows(rows: impl IntoIterator<Item = Row>) -> Self {
        let mut d = Dedup::default();
        for r in rows {
            d.by_id.insert(r.request_id, r.index);
            d.rows.insert(r.index, r);
        }
        d
    }

    /// Reads table `requests`.
    pub(crate) fn load(kv: &dyn KvBackend) -> io::Result<Self> {
        let mut rows = Vec::new();
        for (_, v) in kv.range(Table::Requests, &[], None)? {
            rows.push(from_json::<Row>(&v)?);
        }
        Ok(Self::from_rows(rows))
    }

    /// The response remembered for `id`, if it was applied within the window.
    pub fn get(&self, id: &RequestId) -> Option<&Response> {
        self.by_id
            .get(id)
            .and_then(|i| self.rows.get(i))
            .map(|r| &r.response)
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in log-index order.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    /// Remembers `row` (the caller checked the id is new) and queues its write.
    pub(crate) fn insert(&mut self, row: Row, ops: &mut Vec<Op>) -> io::Result<()> {
        ops.push(Op::Put(Table::Requests, key(row.index), to_json(&row)?));
        self.by_id.insert(row.request_id, row.index);
        self.rows.insert(row.index, row);
        Ok(())
    }

    /// Drops the rows that fell out of the window as of leader time `now`, and the oldest rows
    /// beyond [`MAX_ROWS`], queueing their deletes. Deterministic: depends only on the rows and
    /// `now`, which every replica shares.
    pub(crate) fn evict(&mut self, now: EpochMillis, ops: &mut Vec<Op>) {
        let mut squeezed = 0usize;
        while let Some(oldest) = self.rows.first_key_value().map(|(_, r)| r) {
            let expired = oldest.now.saturating_add(WINDOW_MS) < now;
            if !expired && self.rows.len() <= MAX_ROWS {
                break;
            }
            if !expired {
                squeezed += 1;
            }
            let (index, row) = self.rows.pop_first().expect("checked non-empty");
            if self.by_id.get(&row.request_id) == Some(&index) {
                self.by_id.remove(&row.request_id);
            }
            ops.push(Op::Delete(Table::Requests, key(index)));
        }
        if squeezed > 0 {
            self.squeezed_unreported += squeezed;
            let due = self
                .last_squeeze_warning
                .is_none_or(|t| t.elapsed() >= SQUEEZE_WARNING_EVERY);
            if due {
                tracing::warn!(
                    dropped = self.squeezed_unreported,
                    max_rows = MAX_ROWS,
                    "request-id table full: forgot ids younger than the deduplication window \
                     (dropped: since the last such warning)"
                );
                self.squeezed_unreported = 0;
                self.last_squeeze_warning = Some(std::time::Instant::now());
            }
        }
    }

    /// The ops that replace table `requests` with this table's rows (snapshot install).
    pub(crate) fn install_ops(&self, ops: &mut Vec<Op>) -> io::Result<()> {
        ops.push(Op::DeleteRange(Table::Requests, Vec::new(), None));
        for r in self.rows.values() {
            ops.push(Op::Put(Table::Requests, key(r.index), to_json(r)?));
        }
        Ok(())
    }
}

fn key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use keystore::command::CommandOutput;

    use super::*;

    fn row(index: u64, id: u128, now: EpochMillis) -> Row {
        Row {
            index,
            request_id: RequestId(id),
            now,
            response: Ok(CommandOutput::Done),
        }
    }

    #[test]
    fn ids_older_than_the_window_are_forgotten_oldest_first() {
        let mut d = Dedup::default();
        let mut ops = Vec::new();
        d.insert(row(1, 1, 1_000), &mut ops).unwrap();
        d.insert(row(2, 2, 2_000), &mut ops).unwrap();
        ops.clear();
        d.evict(1_000 + WINDOW_MS, &mut ops);
        assert!(
            ops.is_empty(),
            "exactly at the window edge nothing is dropped"
        );
        d.evict(1_001 + WINDOW_MS, &mut ops);
        assert!(d.get(&RequestId(1)).is_none());
        assert!(d.get(&RequestId(2)).is_some());
        assert!(matches!(&ops[..], [Op::Delete(Table::Requests, k)] if *k == key(1)));
    }

    #[test]
    fn a_leader_clock_behind_the_previous_one_forgets_nothing() {
        let mut d = Dedup::from_rows([row(1, 1, 10_000_000)]);
        let mut ops = Vec::new();
        d.evict(5, &mut ops);
        assert_eq!(d.len(), 1);
        assert!(ops.is_empty());
    }

    #[test]
    fn the_table_never_holds_more_than_max_rows() {
        let mut d = Dedup::from_rows((1..=MAX_ROWS as u64).map(|i| row(i, i as u128, 0)));
        let mut ops = Vec::new();
        d.insert(row(MAX_ROWS as u64 + 1, 0, 0), &mut ops).unwrap();
        d.evict(0, &mut ops);
        assert_eq!(d.len(), MAX_ROWS);
        assert!(d.get(&RequestId(1)).is_none(), "the oldest went first");
        assert!(d.get(&RequestId(0)).is_some());
    }
}
