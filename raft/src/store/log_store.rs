//! The Raft log and vote on a [`KvBackend`]. Appends and votes are committed durably before
//! openraft is told they are done.
//!
//! Appends do not block openraft's core: `append` hands the entries to a writer thread and
//! returns (openraft's contract: the entries must be readable at once, durable when the
//! `IOFlushed` callback fires). Until their commit returns, the entries stay readable from
//! `pending`. The writer commits whatever is queued in one transaction, so appends that
//! arrive while a commit (and its fsync) is under way share the next one: group commit.
//! Votes, truncations and purges go through the same queue (in order) and are awaited.
//!
//! The state machine commits through the same queue ([`Committer`], see
//! [`StateMachineStore::commit_with`](super::StateMachineStore::commit_with)): an applied
//! batch and the appends queued meanwhile share one transaction. Every redb commit rewrites
//! the pages it touches up to each table's root plus its own bookkeeping pages and ends in
//! an fsync; a 150k-key profile had 41% of the leader's CPU in commits, half of them the
//! state machine's.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};
use crate::types::{Entry, LogId, TypeConfig, Vote};

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";
/// Most queued writes merged into one commit.
const MAX_GROUP: usize = 64;

/// Entries handed to the writer whose commit has not returned yet, by index.
type Pending = Arc<Mutex<BTreeMap<u64, Entry>>>;

/// Who waits for one queued write.
enum Done {
    /// openraft, for appended entries (removed from `pending` once durable).
    Flushed(IOFlushed<TypeConfig>, Vec<LogId>),
    /// An awaited write (vote, truncate, purge).
    Waiter(tokio::sync::oneshot::Sender<io::Result<()>>),
}

struct Job {
    ops: Vec<Op>,
    done: Done,
}

/// The Raft log store (also its own log reader: it is a cheap handle).
#[derive(Clone)]
pub struct LogStore {
    kv: Arc<dyn KvBackend>,
    pending: Pending,
    writer: Arc<Writer>,
}

/// The writer thread's queue. Dropping the last handle closes the queue and waits for the
/// thread to finish what was queued, so the database is released when the store is (a
/// restart in the same process opens it again at once).
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .ok_or_else(writer_stopped)?
            .send(job)
            .map_err(|_| writer_stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LogStore {
    /// A log store over `kv`; starts its writer thread.
    pub fn new(kv: Arc<dyn KvBackend>) -> Self {
        let pending = Pending::default();
        let (jobs, rx) = mpsc::channel();
        let (writer_kv, writer_pending) = (kv.clone(), pending.clone());
        // fsync blocks; keep it off the async workers that also drive heartbeats.
        let thread = std::thread::Builder::new()
            .name("keyraft-log-writer".into())
            .spawn(move || write_loop(writer_kv, writer_pending, rx));
        let writer = match thread {
            Ok(t) => Writer {
                jobs: Some(jobs),
                thread: Some(t),
            },
            Err(e) => {
                // Every write then fails with "log writer stopped", and openraft stops the node.
                tracing::error!(error = %e, "cannot start the log writer thread");
                Writer {
                    jobs: None,
                    thread: None,
                }
            }
        };
        LogStore {
            kv,
            pending,
            writer: Arc::new(writer),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `ops` behind every earlier write and waits until they are durable.
    async fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        self.committer().commit(ops).await
    }

    /// A handle that commits through this store's writer (group commit with the log).
    pub fn committer(&self) -> Committer {
        Committer {
            writer: self.writer.clone(),
        }
    }
}

/// Commits through a log store's writer thread: queued behind every earlier write, merged
/// with whatever else is queued into one transaction. Holding one keeps the writer running.
#[derive(Clone)]
pub struct Committer {
    writer: Arc<Writer>,
}

impl Committer {
    /// Queues `ops` and waits until they are durable.
    pub async fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer.send(Job {
            ops,
            done: Done::Waiter(tx),
        })?;
        rx.await.map_err(|_| writer_stopped())?
    }
}

fn writer_stopped() -> io::Error {
    io::Error::other("log writer stopped")
}

/// The writer thread: one commit for everything queued, then every waiter is told.
fn write_loop(kv: Arc<dyn KvBackend>, pending: Pending, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let ops = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.ops))
            .collect();
        let res = kv.commit(ops);
        if res.is_ok() {
            // Durable now, and readable from the database: drop the in-memory copies (unless
            // a truncation already replaced one with another entry at the same index).
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            for j in &jobs {
                if let Done::Flushed(_, ids) = &j.done {
                    for id in ids {
                        if p.get(&id.index).is_some_and(|e| e.log_id == *id) {
                            p.remove(&id.index);
                        }
                    }
                }
            }
        }
        for j in jobs {
            let r = match &res {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            match j.done {
                Done::Flushed(callback, _) => callback.io_completed(r),
                Done::Waiter(tx) => {
                    let _ = tx.send(r);
                }
            }
        }
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
        // Pending first: an entry leaves `pending` only after it is in the database, so
        // reading in this order never misses one that is being flushed.
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out: BTreeMap<u64, Entry> = self
            .pending()
            .range((Bound::Included(start), upper))
            .map(|(i, e)| (*i, e.clone()))
            .collect();
        let end_key = end.map(index_key);
        for (_, v) in self
            .kv
            .range(Table::Log, &index_key(start), end_key.as_deref())?
        {
            let e: Entry = from_json(&v)?;
            out.entry(e.log_id.index).or_insert(e);
        }
        Ok(out.into_values().collect())
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
        let last_pending = self.pending().values().next_back().map(|e| e.log_id);
        let last_stored = match self.kv.last(Table::Log)? {
            Some((_, v)) => Some(from_json::<Entry>(&v)?.log_id),
            None => None,
        };
        let last = match (last_pending, last_stored) {
            (Some(p), Some(s)) => Some(if p.index >= s.index { p } else { s }),
            (p, s) => p.or(s).or(last_purged),
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
        let mut ids = Vec::new();
        let mut entries_in_memory = Vec::new();
        for e in entries {
            ops.push(Op::Put(Table::Log, index_key(e.log_id.index), to_json(&e)?));
            ids.push(e.log_id);
            entries_in_memory.push(e);
        }
        // Readable from now on; durable (and acknowledged through the callback) only once the
        // writer's commit returns.
        self.pending()
            .extend(entries_in_memory.into_iter().map(|e| (e.log_id.index, e)));
        self.writer.send(Job {
            ops,
            done: Done::Flushed(callback, ids),
        })
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(l) => l.index.saturating_add(1),
            None => 0,
        };
        self.pending().split_off(&from);
        self.commit(vec![Op::DeleteRange(Table::Log, index_key(from), None)])
            .await
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = index_key(log_id.index.saturating_add(1));
        // Purged entries were applied, so flushed long ago; drop any copy all the same.
        {
            let mut p = self.pending();
            *p = p.split_off(&log_id.index.saturating_add(1));
        }
        // One transaction: the purge marker and the deletion never disagree after a crash.
        self.commit(vec![
            Op::Put(Table::RaftMeta, LAST_PURGED.to_vec(), to_json(&log_id)?),
            Op::DeleteRange(Table::Log, index_key(0), Some(upto)),
        ])
        .await
    }
}
