//! The state machine: the authoritative in-memory `keystore::model::State`, persisted entity by
//! entity. Each applied batch writes the current value of every touched entity, the audit
//! records and digests its entries appended (with the chain head), the request ids it applied
//! or forgot (see `dedup`: an entry whose id was already applied is answered with the first
//! copy's response and changes nothing), last-applied and last membership in one durable
//! commit.
//!
//! ```text
//! openraft sm worker --apply(entries)--> keystore::apply on AppliedState (write lock)
//!                                        --> one commit: entities, audit rows, requests, last_applied
//!                    --snapshot builder--> clone of State + request rows (read lock)
//!                                        --> stored doc (format 4, no audit chain) + ChainEnd
//!                    --get_current_snapshot--> SnapshotData::Persisted (meta only: document
//!                                        and chain read when sent)
//! network --full_snapshot--> SnapshotData::complete() --> whole document with the chain
//! follower --install_snapshot--> entities, chain, requests, stored doc: one commit
//! open: entities scan (batches) --> decode + hash (a thread per core) --> merge into State
//! ```

use std::collections::BTreeSet;
use std::io;
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};

use futures::{Stream, TryStreamExt};
use keystore::command::Change;
use keystore::grant::GrantRecord;
use keystore::model::{AccessKeyRecord, AliasRecord, IdentityRecord, KeyRecord, State};
use keystore::usage::KeyUsageMark;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::audit;
use super::dedup::{Dedup, Row};
use super::digest::{EntityDigest, EntityHashes};
use super::kv::{KvBackend, Op, Pairs, Table};
use super::snapshot_docs::SnapshotDocs;
use super::{from_json, to_json};
use crate::client::WatchEvent;
use crate::types::{
    LogId, RequestId, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};

const LAST_APPLIED: &[u8] = b"last_applied";
const LAST_MEMBERSHIP: &[u8] = b"last_membership";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Where the stored snapshot's audit chain ends ([`audit::ChainEnd`]).
const SNAPSHOT_AUDIT: &[u8] = b"snapshot_audit";

/// The in-memory state machine and the log index it reflects, under one lock: a reader sees a
/// state together with the entry it was last changed by (the status RPC's `stateHash` at
/// `stateApplied`), never one without the other.
#[derive(Debug, Default)]
pub struct AppliedState {
    /// The region's state.
    pub state: State,
    /// The last log entry applied to `state` (`None` before the first).
    pub applied: Option<LogId>,
    /// The digest of the entities as stored, updated with every put and delete.
    entities: EntityDigest,
}

impl AppliedState {
    /// SHA-256 (lowercase hex) of the stored entities (as a set) and the audit head: equal on
    /// every replica that applied the same entries, and O(1) at any state size. jepsen-lite
    /// compares it across nodes.
    pub fn digest_hex(&self) -> String {
        let audit = serde_json::to_vec(&self.state.audit).unwrap_or_default();
        self.entities.state_hash_hex(&audit)
    }

    /// How many entities the state holds (keys, aliases, grants, identities, ...).
    pub fn entity_count(&self) -> usize {
        self.entities.count()
    }

    /// The same digest recomputed from scratch over `state` (tests check the incremental one
    /// against it).
    pub fn recomputed_digest_hex(&self) -> io::Result<String> {
        let mut entities = EntityDigest::default();
        for e in all_entities(&self.state) {
            entities.set(&e.storage_key()?, Some(&to_json(&e)?));
        }
        let audit = serde_json::to_vec(&self.state.audit).unwrap_or_default();
        Ok(entities.state_hash_hex(&audit))
    }
}

/// Queues the write of entity `key` (`None`: its deletion) and accounts it in `digest`.
fn put_entity(ops: &mut Vec<Op>, digest: &mut EntityDigest, key: Vec<u8>, value: Option<Vec<u8>>) {
    digest.set(&key, value.as_deref());
    match value {
        Some(v) => ops.push(Op::Put(Table::Entities, key, v)),
        None => ops.push(Op::Delete(Table::Entities, key)),
    }
}

impl std::ops::Deref for AppliedState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for AppliedState {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// A snapshot's data, as openraft hands it between building, storing, sending and installing.
///
/// A node's own snapshot is [`SnapshotData`] over its stored document and its database: the
/// audit chain it covers stays in the tables and is read only by [`SnapshotData::complete`],
/// when the snapshot is sent to a follower. Nothing the size of the chain is built or kept
/// in memory otherwise.
#[derive(Clone)]
pub struct SnapshotData(Repr);

#[derive(Clone)]
enum Repr {
    /// This node's stored snapshot: the format-4 document and where its chain ends in `kv`.
    Stored {
        doc: Arc<Vec<u8>>,
        end: audit::ChainEnd,
        kv: Arc<dyn KvBackend>,
    },
    /// This node's stored snapshot, not read yet: `get_current_snapshot` hands openraft the
    /// meta only (it asks at every start, and the document is ~0.8 GB at a million keys); the
    /// document is read when the snapshot is sent. `meta` is the stored meta it was found
    /// with, to check that the document read later is still that snapshot's.
    Persisted {
        meta: Vec<u8>,
        kv: Arc<dyn KvBackend>,
        docs: SnapshotDocs,
    },
    /// A complete document of any format (received, or stored by an older binary).
    Complete(Vec<u8>),
    /// A complete document already decoded and checked (by the install RPC).
    Decoded(Box<audit::SnapshotData>),
}

impl SnapshotData {
    /// A complete snapshot document (as sent between nodes), not checked yet.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SnapshotData(Repr::Complete(bytes))
    }

    /// Decodes and checks a complete document: `Err` for anything malformed, so that a bad
    /// snapshot is refused before openraft starts installing it.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        Ok(SnapshotData(Repr::Decoded(Box::new(
            audit::decode_snapshot(bytes)?,
        ))))
    }

    /// The complete document, as sent to a follower: a stored snapshot reads the audit
    /// records and digests it covers from the tables now. Blocking I/O.
    pub fn complete(self) -> io::Result<Vec<u8>> {
        self.complete_after(None)
    }

    /// [`SnapshotData::complete`] for a follower that already holds the audit chain up to
    /// `base`: when this node's chain extends it, only what follows is included.
    pub(crate) fn complete_after(self, base: Option<&audit::ChainBase>) -> io::Result<Vec<u8>> {
        match self.0 {
            Repr::Stored { doc, end, kv } => audit::complete(&doc, kv.as_ref(), end, base),
            Repr::Persisted { meta, kv, docs } => {
                read_persisted(&meta, kv, &docs)?.complete_after(base)
            }
            Repr::Complete(bytes) => Ok(bytes),
            Repr::Decoded(_) => Err(io::Error::other(
                "a decoded snapshot is only installed, never sent",
            )),
        }
    }

    /// The audit chain base a decoded snapshot was built on (`None`: it carries the whole
    /// retained chain).
    pub(crate) fn audit_base(&self) -> Option<&audit::ChainBase> {
        match &self.0 {
            Repr::Decoded(d) => d.audit_base.as_ref(),
            _ => None,
        }
    }

    fn into_decoded(self) -> io::Result<audit::SnapshotData> {
        match self.0 {
            Repr::Decoded(d) => Ok(*d),
            Repr::Complete(bytes) => audit::decode_snapshot(&bytes),
            stored @ (Repr::Stored { .. } | Repr::Persisted { .. }) => {
                audit::decode_snapshot(&SnapshotData(stored).complete()?)
            }
        }
    }
}

/// One persisted entity: the value stored under its encoded [`Change`] key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Entity {
    /// A key record.
    Key(KeyRecord),
    /// An alias.
    Alias(AliasRecord),
    /// An identity.
    Identity(IdentityRecord),
    /// An access key.
    AccessKey(AccessKeyRecord),
    /// A grant.
    Grant(GrantRecord),
    /// A key's newest successful cryptographic use (GetKeyLastUsage), stored under
    /// `{"KeyLastUsage":"<key id>"}`. Not a `Change`: watchers have nothing to invalidate.
    KeyLastUsage(KeyUsageMark),
}

/// The `entities` key of a key's last-usage mark (beside the encoded `Change` keys).
#[derive(Serialize)]
enum UsageKey<'a> {
    KeyLastUsage(&'a str),
}

impl Entity {
    /// The current value of the entity `c` names, or `None` when it does not exist.
    pub fn current(state: &State, c: &Change) -> Option<Entity> {
        match c {
            Change::Key(id) => state.keys.get(id).cloned().map(Entity::Key),
            Change::Alias(acct, name) => state
                .aliases
                .get(&(acct.clone(), name.clone()))
                .cloned()
                .map(Entity::Alias),
            Change::Identity(arn) => state.identities.get(arn).cloned().map(Entity::Identity),
            Change::AccessKey(id) => state.access_keys.get(id).cloned().map(Entity::AccessKey),
            Change::Grant(key_id, grant_id) => state
                .grants
                .get(&(key_id.clone(), grant_id.clone()))
                .cloned()
                .map(Entity::Grant),
        }
    }

    /// The `entities` key this entity is stored under.
    fn storage_key(&self) -> io::Result<Vec<u8>> {
        let change = match self {
            Entity::Key(k) => Change::Key(k.key_id.clone()),
            Entity::Alias(a) => Change::Alias(a.account_id.clone(), a.alias_name.clone()),
            Entity::Identity(i) => Change::Identity(i.arn.clone()),
            Entity::AccessKey(a) => Change::AccessKey(a.access_key_id.clone()),
            Entity::Grant(g) => Change::Grant(g.key_id.clone(), g.grant_id.clone()),
            Entity::KeyLastUsage(m) => return to_json(&UsageKey::KeyLastUsage(&m.key_id)),
        };
        to_json(&change)
    }

    fn insert_into(self, state: &mut State) {
        match self {
            Entity::Key(k) => {
                state.keys.insert(k.key_id.clone(), k);
            }
            Entity::Alias(a) => {
                state
                    .aliases
                    .insert((a.account_id.clone(), a.alias_name.clone()), a);
            }
            Entity::Identity(i) => {
                state.identities.insert(i.arn.clone(), i);
            }
            Entity::AccessKey(a) => {
                state.access_keys.insert(a.access_key_id.clone(), a);
            }
            Entity::Grant(g) => {
                state
                    .grants
                    .insert((g.key_id.clone(), g.grant_id.clone()), g);
            }
            Entity::KeyLastUsage(m) => {
                state.key_last_usage.insert(m.key_id.clone(), m);
            }
        }
    }
}

/// The ops persisting the last-usage marks `apply` set or removed since the last call.
fn usage_ops(applied: &mut AppliedState, ops: &mut Vec<Op>) -> io::Result<()> {
    for key_id in applied.state.take_usage_touched() {
        let key = to_json(&UsageKey::KeyLastUsage(&key_id))?;
        let value = match applied.state.key_last_usage.get(&key_id) {
            Some(m) => Some(to_json(&Entity::KeyLastUsage(m.clone()))?),
            None => None,
        };
        put_entity(ops, &mut applied.entities, key, value);
    }
    Ok(())
}

fn all_entities(state: &State) -> Vec<Entity> {
    let mut v = Vec::new();
    v.extend(state.keys.values().cloned().map(Entity::Key));
    v.extend(state.aliases.values().cloned().map(Entity::Alias));
    v.extend(state.identities.values().cloned().map(Entity::Identity));
    v.extend(state.access_keys.values().cloned().map(Entity::AccessKey));
    v.extend(state.grants.values().cloned().map(Entity::Grant));
    v.extend(
        state
            .key_last_usage
            .values()
            .cloned()
            .map(Entity::KeyLastUsage),
    );
    v
}

/// Stages a snapshot's stored document (format 4, raw) in `docs` and returns the ops that
/// make it current with its meta (as JSON) and where its audit chain ends. Blocking I/O.
fn snapshot_ops(
    docs: &SnapshotDocs,
    meta: &SnapshotMeta,
    doc: Vec<u8>,
    end: audit::ChainEnd,
) -> io::Result<Vec<Op>> {
    let mut ops = docs.stage(doc, meta.last_log_id.map(|l| l.index))?;
    ops.push(Op::Put(
        Table::SmMeta,
        SNAPSHOT_META.to_vec(),
        to_json(meta)?,
    ));
    ops.push(Op::Put(
        Table::SmMeta,
        SNAPSHOT_AUDIT.to_vec(),
        to_json(&end)?,
    ));
    Ok(ops)
}

/// Entities per batch handed from the table scan to the decoding threads.
const LOAD_BATCH: usize = 1024;

/// Reads the `entities` table into a [`State`] and its digest.
///
/// Decoding and hashing every entity was most of a restart at a million keys, on one core. The
/// scan (one read transaction, this thread) feeds batches to one decoding thread per core,
/// which parse and hash; a merging thread puts the results into the maps (in any order: keys
/// are unique and the digest is a set hash).
fn load_entities(kv: &dyn KvBackend) -> io::Result<(State, EntityDigest)> {
    type Decoded = io::Result<Vec<(EntityHashes, Entity)>>;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    let (batches_tx, batches_rx) = mpsc::sync_channel::<Pairs>(threads * 2);
    // Shared by the decoders; when the last one stops (the merger failed), sends fail and the
    // scan ends.
    let batches_rx = Arc::new(Mutex::new(batches_rx));
    let (decoded_tx, decoded_rx) = mpsc::sync_channel::<Decoded>(threads * 2);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let batches = batches_rx.clone();
            let decoded = decoded_tx.clone();
            s.spawn(move || loop {
                let next = batches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv();
                let Ok(batch) = next else { break };
                let out = batch
                    .iter()
                    .map(|(k, v)| Ok((EntityHashes::of(k, v), from_json::<Entity>(v)?)))
                    .collect();
                if decoded.send(out).is_err() {
                    break;
                }
            });
        }
        drop(batches_rx);
        drop(decoded_tx);
        let merger = s.spawn(move || {
            let mut state = State::default();
            let mut digest = EntityDigest::default();
            for batch in decoded_rx {
                for (hashes, entity) in batch? {
                    digest.add_hashed(hashes);
                    entity.insert_into(&mut state);
                }
            }
            Ok::<_, io::Error>((state, digest))
        });
        let scanned = kv.scan(Table::Entities, LOAD_BATCH, &mut |batch| {
            batches_tx
                .send(batch)
                .map_err(|_| io::Error::other("entity decoding stopped"))
        });
        drop(batches_tx);
        let merged = merger
            .join()
            .map_err(|_| io::Error::other("entity loading panicked"))?;
        // A decoding error stops the merger and then the scan: report the cause first.
        let loaded = merged?;
        scanned?;
        Ok(loaded)
    })
}

/// Reads the stored snapshot whose stored meta was `meta`. Blocking I/O.
///
/// A newer snapshot replaces meta, document and chain end in one commit, so reading the meta
/// again after the document tells whether the document read is `meta`'s: snapshots only move
/// forward, and one rebuilt at the same log id has the same bytes. If it was replaced, the
/// caller fails and openraft asks for the current snapshot again.
fn read_persisted(
    meta: &[u8],
    kv: Arc<dyn KvBackend>,
    docs: &SnapshotDocs,
) -> io::Result<SnapshotData> {
    let replaced = || io::Error::other("the stored snapshot was replaced while it was read");
    let doc = match docs.read(kv.as_ref()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(replaced()),
        other => other?,
    };
    let end = kv.get(Table::SmMeta, SNAPSHOT_AUDIT)?;
    if kv.get(Table::SmMeta, SNAPSHOT_META)?.as_deref() != Some(meta) {
        return Err(replaced());
    }
    if !audit::is_stored_format(&doc) {
        // Written by an older binary: its chain is inline.
        return Ok(SnapshotData(Repr::Complete(doc)));
    }
    let end = match end {
        Some(v) => from_json(&v)?,
        None => return Err(io::Error::other("stored snapshot without its chain end")),
    };
    Ok(SnapshotData(Repr::Stored {
        doc: Arc::new(doc),
        end,
        kv,
    }))
}

/// The state machine of a node.
pub struct StateMachineStore {
    kv: Arc<dyn KvBackend>,
    state: Arc<RwLock<AppliedState>>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    events: broadcast::Sender<WatchEvent>,
    /// Recently applied request ids and their responses (exactly-once application).
    dedup: Dedup,
    /// The log's writer, when applied batches share its commits (see [`Self::commit_with`]).
    committer: Option<super::log_store::Committer>,
    /// Where the stored snapshot document is kept.
    docs: SnapshotDocs,
}

impl StateMachineStore {
    /// Loads the persisted state machine from `kv`.
    pub fn load(kv: Arc<dyn KvBackend>, events: broadcast::Sender<WatchEvent>) -> io::Result<Self> {
        let (mut state, entities) = load_entities(kv.as_ref())?;
        let last_applied = kv
            .get(Table::SmMeta, LAST_APPLIED)?
            .map(|v| from_json(&v))
            .transpose()?;
        let last_membership = kv
            .get(Table::SmMeta, LAST_MEMBERSHIP)?
            .map(|v| from_json(&v))
            .transpose()?
            .unwrap_or_default();
        state.audit = audit::load_head(kv.as_ref())?;
        let dedup = Dedup::load(kv.as_ref())?;
        Ok(StateMachineStore {
            kv,
            state: Arc::new(RwLock::new(AppliedState {
                state,
                applied: last_applied,
                entities,
            })),
            last_applied,
            last_membership,
            events,
            dedup,
            committer: None,
            docs: SnapshotDocs::in_table(),
        })
    }

    /// The stored snapshot's document (format 4, without the audit chain; empty when none).
    pub fn stored_snapshot_doc(&self) -> io::Result<Vec<u8>> {
        self.docs.read(self.kv.as_ref())
    }

    /// Keeps stored snapshot documents as files in `dir` (see [`SnapshotDocs`]), removing any
    /// a crash left unreferenced there.
    pub fn keep_snapshot_docs_in(&mut self, dir: &std::path::Path) -> io::Result<()> {
        self.docs = SnapshotDocs::in_dir(dir, self.kv.as_ref())?;
        Ok(())
    }

    /// Commits applied batches (and installed snapshots) through `log`'s writer, so they and
    /// the appends queued meanwhile share one transaction and one fsync instead of two.
    pub fn commit_with(&mut self, log: &super::LogStore) {
        self.committer = Some(log.committer());
    }

    /// The shared in-memory state (with the index it reflects), for answering queries after
    /// a read index.
    pub fn state(&self) -> Arc<RwLock<AppliedState>> {
        self.state.clone()
    }

    /// The database, for reading the audit tables after a read index.
    pub fn kv(&self) -> Arc<dyn KvBackend> {
        self.kv.clone()
    }

    /// The response remembered for request `id` (applied within the deduplication window).
    pub fn remembered(&self, id: &RequestId) -> Option<Response> {
        self.dedup.get(id).cloned()
    }

    /// The deduplication table's rows, in log-index order.
    pub fn remembered_rows(&self) -> Vec<Row> {
        self.dedup.rows().cloned().collect()
    }

    async fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        if let Some(c) = &self.committer {
            return c.commit(ops).await;
        }
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || kv.commit(ops))
            .await
            .map_err(io::Error::other)?
    }

    fn read_state(&self) -> io::Result<std::sync::RwLockReadGuard<'_, AppliedState>> {
        self.state
            .read()
            .map_err(|_| io::Error::other("state lock poisoned"))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(());
        }

        let mut responses = Vec::new();
        let mut changes_in_order = Vec::new();
        let mut touched = BTreeSet::new();
        let mut ops = Vec::new();
        {
            let mut state = self
                .state
                .write()
                .map_err(|_| io::Error::other("state lock poisoned"))?;
            let mut audit_moved = false;
            for (entry, responder) in batch {
                self.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Ok(keystore::command::CommandOutput::Done),
                    EntryPayload::Normal(req) => {
                        let now = req.proposal.now;
                        let seen = req.request_id.and_then(|id| self.dedup.get(&id).cloned());
                        let res = if let Some(first) = seen {
                            // A retried copy of a proposal already applied: answer what the
                            // first copy got, change nothing.
                            tracing::debug!(
                                kind = req.kind(),
                                index = entry.log_id.index,
                                "duplicate request id, not applied again"
                            );
                            first
                        } else {
                            let (res, changes) = keystore::apply::apply(&mut state, &req.proposal);
                            touched.extend(changes.iter().cloned());
                            changes_in_order.extend(changes);
                            // Audit records go into the same commit as last-applied: a restart
                            // never re-applies an entry whose records are already stored, and
                            // never misses one.
                            let (records, digests) = state.audit.take_appended();
                            if !records.is_empty() || !digests.is_empty() {
                                audit_moved = true;
                                audit::append_ops(&records, &digests, &mut ops)?;
                            }
                            // Pruned records leave in that commit too (retention).
                            let (retention_moved, pruned) = state.audit.take_retention();
                            audit_moved |= retention_moved;
                            if let Some((from, through)) = pruned {
                                audit::prune_ops(from, through, &mut ops);
                            }
                            // Its request id joins the same commit, for the same reason: after a
                            // crash the table is exactly the one as of last-applied.
                            if let Some(request_id) = req.request_id {
                                let row = Row {
                                    index: entry.log_id.index,
                                    request_id,
                                    now,
                                    response: res.clone(),
                                };
                                self.dedup.insert(row, &mut ops)?;
                            }
                            res
                        };
                        self.dedup.evict(now, &mut ops);
                        res
                    }
                    EntryPayload::Membership(m) => {
                        self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                        Ok(keystore::command::CommandOutput::Done)
                    }
                };
                if let Some(r) = responder {
                    responses.push((r, response));
                }
            }
            for c in &touched {
                let key = to_json(c)?;
                let value = match Entity::current(&state, c) {
                    Some(e) => Some(to_json(&e)?),
                    None => None,
                };
                put_entity(&mut ops, &mut state.entities, key, value);
            }
            usage_ops(&mut state, &mut ops)?;
            if audit_moved {
                ops.push(audit::head_op(&state.audit)?);
            }
            // Under the same lock as the state it describes (status: hash at this index).
            state.applied = self.last_applied;
        }
        ops.push(Op::Put(
            Table::SmMeta,
            LAST_APPLIED.to_vec(),
            to_json(&self.last_applied)?,
        ));
        ops.push(Op::Put(
            Table::SmMeta,
            LAST_MEMBERSHIP.to_vec(),
            to_json(&self.last_membership)?,
        ));
        self.commit(ops).await?;

        for (r, resp) in responses {
            r.send(resp);
        }
        for c in changes_in_order {
            // No receivers is fine: nobody is watching this node.
            let _ = self.events.send(WatchEvent::Changed(c));
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Capture the state now, on the state-machine worker, so the snapshot is consistent
        // with last_applied even if building runs while later entries are applied. The audit
        // tables are append-only, so noting where the chain ends is enough: the builder reads
        // records and digests up to there (all committed by now) off this worker.
        // The request-id table is captured too: it must be exactly the one as of last_applied,
        // or a node installing the snapshot would deduplicate differently from the others.
        // Only copies are taken here; serializing them (hundreds of ms in a debug build once
        // the state and the table are large) happens in the builder, while entries are
        // applied.
        let data = match self.read_state() {
            Ok(s) => Ok((s.state.clone(), self.remembered_rows())),
            Err(e) => Err(e.to_string()),
        };
        SnapshotBuilder {
            kv: self.kv.clone(),
            docs: self.docs.clone(),
            data,
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }

    #[tracing::instrument(level = "info", skip_all)]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        let mut data = super::low_priority(move || snapshot.into_decoded()).await??;
        // Entities, audit tables, metadata and the snapshot itself: one commit.
        let mut ops = vec![Op::DeleteRange(Table::Entities, Vec::new(), None)];
        let mut entities = EntityDigest::default();
        for e in all_entities(&data.state) {
            put_entity(
                &mut ops,
                &mut entities,
                e.storage_key()?,
                Some(to_json(&e)?),
            );
        }
        let current_audit = self.read_state()?.state.audit.clone();
        audit::install_ops(&data, self.kv.as_ref(), &current_audit, &mut ops)?;
        // The ops hold their own copies of the chain.
        data.audit_records = Vec::new();
        data.audit_digests = Vec::new();
        // What this node keeps (and sends, should it lead) is the stored form: the chain just
        // written to the tables stays there.
        let end = audit::ChainEnd::of(&data.state.audit);
        let doc = audit::encode_stored(&to_json(&data.state)?, &to_json(&data.requests)?);
        let dedup = Dedup::from_rows(data.requests);
        dedup.install_ops(&mut ops)?;
        let docs = self.docs.clone();
        let replacing = docs.replacing().await;
        let (staging, stored_meta) = (docs.clone(), meta.clone());
        let staged =
            super::low_priority(move || snapshot_ops(&staging, &stored_meta, doc, end)).await??;
        ops.push(Op::Put(
            Table::SmMeta,
            LAST_APPLIED.to_vec(),
            to_json(&meta.last_log_id)?,
        ));
        ops.push(Op::Put(
            Table::SmMeta,
            LAST_MEMBERSHIP.to_vec(),
            to_json(&meta.last_membership)?,
        ));
        ops.extend(staged);
        let prepare_ms = started.elapsed().as_millis() as u64;
        let (op_count, committing) = (ops.len(), std::time::Instant::now());
        self.commit(ops).await?;
        let commit_ms = committing.elapsed().as_millis() as u64;
        self.docs.remove_unreferenced(self.kv.as_ref())?;
        drop(replacing);

        *self
            .state
            .write()
            .map_err(|_| io::Error::other("state lock poisoned"))? = AppliedState {
            state: data.state,
            applied: meta.last_log_id,
            entities,
        };
        self.dedup = dedup;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        let _ = self.events.send(WatchEvent::Resync);
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            prepare_ms,
            op_count,
            commit_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "installed snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some(meta) = self.kv.get(Table::SmMeta, SNAPSHOT_META)? else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta: from_json(&meta)?,
            snapshot: SnapshotData(Repr::Persisted {
                meta,
                kv: self.kv.clone(),
                docs: self.docs.clone(),
            }),
        }))
    }
}

/// Builds a snapshot from the state captured when it was created (plus the audit chain up to
/// that state's head), and persists it.
pub struct SnapshotBuilder {
    kv: Arc<dyn KvBackend>,
    docs: SnapshotDocs,
    /// The state and the request-id rows as of `last_applied`.
    data: Result<(State, Vec<Row>), String>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    #[tracing::instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (state, rows) = std::mem::replace(&mut self.data, Err("snapshot already built".into()))
            .map_err(io::Error::other)?;
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        };
        let (kv, docs) = (self.kv.clone(), self.docs.clone());
        let meta_json = to_json(&meta)?;
        let stored_meta = meta.clone();
        let started = std::time::Instant::now();
        let (bytes, end) = super::low_priority(move || -> io::Result<_> {
            // The chain stays in its tables: only where it ends goes with the state.
            let end = audit::ChainEnd::of(&state.audit);
            let doc = audit::encode_stored(&to_json(&state)?, &to_json(&rows)?);
            drop((state, rows));
            let bytes = doc.len();
            let _replacing = docs.replacing_blocking();
            // An install may have stored a newer snapshot while this one was built: keep that.
            let stored: Option<SnapshotMeta> = kv
                .get(Table::SmMeta, SNAPSHOT_META)?
                .map(|v| from_json(&v))
                .transpose()?;
            if stored.is_some_and(|s| s.last_log_id > stored_meta.last_log_id) {
                tracing::info!("a newer snapshot was installed meanwhile; this build is not kept");
                return Ok((bytes, end));
            }
            kv.commit(snapshot_ops(&docs, &stored_meta, doc, end)?)?;
            docs.remove_unreferenced(kv.as_ref())?;
            Ok((bytes, end))
        })
        .await??;
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            bytes,
            audit_last_seq = end.last_seq,
            ms = started.elapsed().as_millis() as u64,
            "built snapshot"
        );
        // Not kept in memory: like the one `get_current_snapshot` gives, it is read back when
        // sent (openraft keeps only the meta of a snapshot it built).
        Ok(Snapshot {
            meta,
            snapshot: SnapshotData(Repr::Persisted {
                meta: meta_json,
                kv: self.kv.clone(),
                docs: self.docs.clone(),
            }),
        })
    }
}
