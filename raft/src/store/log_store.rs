//! The Raft log and vote on a [`KvBackend`]. Appends and votes are committed durably before
//! openraft is told they are done.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};
use crate::types::{Entry, LogId, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log store (also its own log reader: it is a cheap handle).
#[derive(Clone)]
pub struct LogStore {
    kv: Arc<dyn KvBackend>,
}

impl LogStore {
    /// A log store over `kv`.
    pub fn new(kv: Arc<dyn KvBackend>) -> Self {
        LogStore { kv }
    }

    async fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        // fsync blocks; keep it off the async workers that also drive heartbeats.
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || kv.commit(ops))
            .await
            .map_err(io::Error::other)?
    }
}

fn index_key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        if let Some(end) = end {
            if end <= start {
                return Ok(Vec::new());
            }
        }
        let end_key = end.map(index_key);
        self.kv
            .range(Table::Log, &index_key(start), end_key.as_deref())?
            .into_iter()
            .map(|(_, v)| from_json(&v))
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.kv
            .get(Table::RaftMeta, VOTE)?
            .map(|v| from_json(&v))
            .transpose()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self
            .kv
            .get(Table::RaftMeta, LAST_PURGED)?
            .map(|v| from_json(&v))
            .transpose()?;
        let last = match self.kv.last(Table::Log)? {
            Some((_, v)) => Some(from_json::<Entry>(&v)?.log_id),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.commit(vec![Op::Put(
            Table::RaftMeta,
            VOTE.to_vec(),
            to_json(vote)?,
        )])
        .await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for e in entries {
            ops.push(Op::Put(Table::Log, index_key(e.log_id.index), to_json(&e)?));
        }
        // Durable before acknowledging: the callback tells openraft the entries are on disk.
        let res = self.commit(ops).await;
        let ack = match &res {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        callback.io_completed(ack);
        res
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(l) => l.index.saturating_add(1),
            None => 0,
        };
        self.commit(vec![Op::DeleteRange(Table::Log, index_key(from), None)])
            .await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = index_key(log_id.index.saturating_add(1));
        // One transaction: the purge marker and the deletion never disagree after a crash.
        self.commit(vec![
            Op::Put(Table::RaftMeta, LAST_PURGED.to_vec(), to_json(&log_id)?),
            Op::DeleteRange(Table::Log, index_key(0), Some(upto)),
        ])
        .await
    }
}
