//! The audit chain on disk: the `audit` and `audit_digests` tables, the chain head in
//! `sm_meta`, and the snapshot format that carries them.
//!
//! Records and digests are append-only and immutable: the state machine writes the ones each
//! entry appended (`AuditLog::take_appended`) in the same commit as the entities and
//! last-applied, and writes the head (`AuditLog`: chain head + newest digest) with them. Reads
//! for fronts come straight from the tables (after a read index, see `server.rs`).
//!
//! # Snapshot format
//!
//! Format 4 (since snapshots stopped carrying the chain when stored). What a node *stores*
//! (every `LogRetention::snapshot_every` entries, a file named by `sm_meta/snapshot_file`, see
//! `snapshot_docs`) is only the live state:
//!
//! ```text
//! {"format":4,"state":<State>,"requests":[<dedup::Row>,..]}
//! ```
//!
//! with the chain's end (`ChainEnd`: last record seq, last digest seq) beside it in
//! `sm_meta/snapshot_audit`. The chain stays in its tables, so building and storing a snapshot
//! costs O(live state), not O(audit history). Only when a snapshot is *sent* to a follower is it
//! completed ([`complete`]) with the records and digests up to that end, read page by page
//! and spliced in as stored:
//!
//! ```text
//! {"format":4,"state":..,"requests":[..],"audit_records":[..],"audit_digests":[..],
//!  "audit_pruned_through":<seq>}
//! ```
//!
//! `audit_pruned_through` covers records a `PruneAudit` after the snapshot deleted on the
//! sender (the follower replays that prune from the log). Formats 3 (the chain inline, no
//! `audit_pruned_through`), 2 (also no `requests`) and 1 (a bare `State`) are still read,
//! with empty tables for what they lack; a stored snapshot of an older format is sent as it
//! is. Older binaries refuse format 4 (unknown format) rather than misread it.

use std::io;

use keystore::audit::{AuditRecord, ChainHead, DigestRecord};
use keystore::model::{AuditLog, State};
use serde::{Deserialize, Serialize};

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};

/// `sm_meta` key of the serialized [`AuditLog`] (chain head + newest digest).
pub(crate) const AUDIT_LOG: &[u8] = b"audit_log";

/// Most records or digests one read returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// The snapshot format this binary writes.
const SNAPSHOT_FORMAT: u32 = 4;
/// The oldest JSON-object format still read (format 1 is a bare `State`).
const SNAPSHOT_FORMAT_2: u32 = 2;
const FORMAT_PREFIX: &[u8] = b"{\"format\":";
const STORED_PREFIX: &[u8] = b"{\"format\":4,";

/// `sm_meta` key: records up to this seq were absent from the last installed snapshot
/// (pruned on the sender after the snapshot was taken; the follower replays that prune from
/// the log). Lets a node restart before replaying it with an empty or shorter table.
const ABSENT_THROUGH: &[u8] = b"audit_absent_through";

/// The ops that persist what one apply appended to the chain.
pub(crate) fn append_ops(
    records: &[AuditRecord],
    digests: &[DigestRecord],
    ops: &mut Vec<Op>,
) -> io::Result<()> {
    for r in records {
        ops.push(Op::Put(Table::Audit, seq_key(r.seq), to_json(r)?));
    }
    for d in digests {
        ops.push(Op::Put(
            Table::AuditDigests,
            seq_key(d.digest_seq),
            to_json(d)?,
        ));
    }
    Ok(())
}

/// The ops that delete pruned records `from..=through` (retention). One `Delete` per seq
/// rather than a range: a record appended earlier in the same commit is deleted too, on
/// every backend. `apply` bounds a prune to `keystore::apply::MAX_PRUNE_BATCH` records.
pub(crate) fn prune_ops(from: u64, through: u64, ops: &mut Vec<Op>) {
    ops.extend((from..=through).map(|seq| Op::Delete(Table::Audit, seq_key(seq))));
}

/// The op that persists the chain head and newest digest.
pub(crate) fn head_op(log: &AuditLog) -> io::Result<Op> {
    Ok(Op::Put(Table::SmMeta, AUDIT_LOG.to_vec(), to_json(log)?))
}

fn seq_key(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// Loads the persisted [`AuditLog`] (genesis for a data directory written before the audit
/// tables existed) and checks it against the newest stored record and digest, which the same
/// commits wrote: a mismatch means the database was altered behind the node's back.
pub(crate) fn load_head(kv: &dyn KvBackend) -> io::Result<AuditLog> {
    let log: AuditLog = kv
        .get(Table::SmMeta, AUDIT_LOG)?
        .map(|v| from_json(&v))
        .transpose()?
        .unwrap_or_default();
    // After installing a snapshot whose sender had pruned further than the snapshot's state
    // says, the table may start (or be empty) past `pruned_through` until that prune is
    // replayed from the log.
    let absent = absent_through(kv)?;
    let mut checked = log.clone();
    checked.pruned_through = checked.pruned_through.max(absent);
    check_consistent(
        &checked,
        kv.last(Table::Audit)?
            .map(|(_, v)| from_json::<AuditRecord>(&v))
            .transpose()?
            .as_ref(),
        kv.last(Table::AuditDigests)?
            .map(|(_, v)| from_json::<DigestRecord>(&v))
            .transpose()?
            .as_ref(),
    )?;
    Ok(log)
}

fn check_consistent(
    log: &AuditLog,
    last_record: Option<&AuditRecord>,
    last_digest: Option<&DigestRecord>,
) -> io::Result<()> {
    let head_of_records = match last_record {
        Some(r) => ChainHead::after(r).ok_or_else(|| invalid("audit record with a bad hash"))?,
        // Every record pruned: nothing left to compare the head with.
        None if log.pruned_through > 0 && log.pruned_through >= log.head.last_seq() => {
            log.head.clone()
        }
        None => ChainHead::genesis(),
    };
    if head_of_records != log.head {
        return Err(invalid(&format!(
            "audit chain head (next seq {}) does not match the stored records (next seq {})",
            log.head.next_seq, head_of_records.next_seq
        )));
    }
    if last_digest != log.last_digest.as_ref() {
        return Err(invalid(
            "newest audit digest does not match the stored digests",
        ));
    }
    Ok(())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) stored values of `table` from key `from` on, as
/// stored (JSON bytes), in seq order.
pub(crate) fn read_page(
    kv: &dyn KvBackend,
    table: Table,
    from: u64,
    limit: u32,
) -> io::Result<Vec<Vec<u8>>> {
    let limit = limit.min(MAX_AUDIT_PAGE) as u64;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let end = from.checked_add(limit).map(seq_key);
    Ok(kv
        .range(table, &seq_key(from), end.as_deref())?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Encodes the document a node stores as its snapshot (format 4): the serialized state and
/// request-id rows, without the audit chain, which stays in the tables (see [`complete`]).
pub(crate) fn encode_stored(state_json: &[u8], requests_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(state_json.len() + requests_json.len() + 48);
    out.extend_from_slice(FORMAT_PREFIX);
    out.extend_from_slice(SNAPSHOT_FORMAT.to_string().as_bytes());
    out.extend_from_slice(b",\"state\":");
    out.extend_from_slice(state_json);
    out.extend_from_slice(b",\"requests\":");
    out.extend_from_slice(requests_json);
    out.push(b'}');
    out
}

/// Whether `doc` is a stored format-4 document (the chain not inline). Older stored formats
/// carry their chain inline and are sent as they are.
pub(crate) fn is_stored_format(doc: &[u8]) -> bool {
    doc.starts_with(STORED_PREFIX)
}

/// Where a snapshot's audit chain ends: the last record seq and the last digest seq of the
/// state it was taken from. Stored beside the snapshot (`sm_meta/snapshot_audit`) so sending
/// it does not need to parse the state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChainEnd {
    pub(crate) last_seq: u64,
    pub(crate) last_digest_seq: u64,
}

impl ChainEnd {
    pub(crate) fn of(log: &AuditLog) -> Self {
        ChainEnd {
            last_seq: log.head.last_seq(),
            last_digest_seq: log.last_digest.as_ref().map_or(0, |d| d.digest_seq),
        }
    }
}

/// How much of the audit chain a follower already holds, as it answers the `AuditChainBase`
/// Raft RPC: its chain head, its newest digest, and up to where its table has no records. A
/// snapshot sent to it then carries only what follows (see [`complete`]). Applied entries are
/// committed, so a follower's chain is always a prefix of the leader's: the leader still checks
/// the hashes and sends everything when they disagree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChainBase {
    pub(crate) head: ChainHead,
    pub(crate) last_digest: Option<DigestRecord>,
    /// Records up to here are not in the follower's table (pruned, or absent from a snapshot).
    pub(crate) absent_through: u64,
}

impl ChainBase {
    /// This node's chain base: the applied state's audit log and the stored absent mark.
    pub(crate) fn of(log: &AuditLog, kv: &dyn KvBackend) -> io::Result<Self> {
        Ok(ChainBase {
            head: log.head.clone(),
            last_digest: log.last_digest.clone(),
            absent_through: log.pruned_through.max(absent_through(kv)?),
        })
    }

    fn last_digest_seq(&self) -> u64 {
        self.last_digest.as_ref().map_or(0, |d| d.digest_seq)
    }

    /// Whether the chain `log` (with its table in `kv`) extends this base: same records and
    /// digests up to the base's ends. A follower checks this before installing a snapshot that
    /// carries only what follows the base.
    pub(crate) fn is_extended_by(&self, log: &AuditLog, kv: &dyn KvBackend) -> io::Result<bool> {
        let seq = self.head.last_seq();
        let record_matches = if log.head == self.head {
            true
        } else if log.head.last_seq() < seq {
            false
        } else {
            match kv.get(Table::Audit, &seq_key(seq))? {
                Some(v) => ChainHead::after(&from_json(&v)?).as_ref() == Some(&self.head),
                // Pruned by an entry applied since the base was taken: applied entries are
                // committed, so the chain is still the same; there is just no hash to compare.
                None => log.pruned_through >= seq,
            }
        };
        let digest_matches = match &self.last_digest {
            None => true,
            Some(d) => match kv.get(Table::AuditDigests, &seq_key(d.digest_seq))? {
                Some(v) => from_json::<DigestRecord>(&v)? == *d,
                None => false,
            },
        };
        Ok(record_matches && digest_matches)
    }
}

/// The stored absent mark (0 when never set).
fn absent_through(kv: &dyn KvBackend) -> io::Result<u64> {
    Ok(kv
        .get(Table::SmMeta, ABSENT_THROUGH)?
        .map(|v| from_json(&v))
        .transpose()?
        .unwrap_or(0))
}

/// Rows read per range call while completing a snapshot, so that the rows read and the
/// output are never both whole in memory.
const COMPLETE_PAGE: u64 = 4096;

/// The complete document sent to a follower: the stored format-4 document `doc` plus the
/// audit records and digests up to `end`, read from the tables now and spliced in as
/// stored. Records and digests are append-only, so the ones up to `end` are exactly the
/// snapshot's, except records a later `PruneAudit` deleted since: those are absent, and
/// `"audit_pruned_through"` says up to where (the follower replays that prune from the log).
///
/// With the follower's [`ChainBase`], when this node's chain extends it, only the records and
/// digests after the base are sent, and `"audit_base"` names it: a follower that fell behind
/// receives what it missed, not the region's whole audit history.
pub(crate) fn complete(
    doc: &[u8],
    kv: &dyn KvBackend,
    end: ChainEnd,
    base: Option<&ChainBase>,
) -> io::Result<Vec<u8>> {
    let Some(body) = doc.strip_suffix(b"}") else {
        return Err(invalid("stored snapshot document is not a JSON object"));
    };
    // Records below the current prune mark are gone: start reading after it.
    let log_now = kv
        .get(Table::SmMeta, AUDIT_LOG)?
        .map(|v| from_json::<AuditLog>(&v))
        .transpose()?;
    let pruned_now = log_now.as_ref().map_or(0, |l| l.pruned_through);
    let base = match (base, &log_now) {
        (Some(b), Some(log)) if base_is_usable(b, log, kv, end)? => Some(b),
        _ => None,
    };
    let (records_from, digests_from) = match base {
        Some(b) => (b.head.last_seq() + 1, b.last_digest_seq() + 1),
        None => (pruned_now + 1, 0),
    };
    let mut out = Vec::with_capacity(doc.len() + 128);
    out.extend_from_slice(body);
    let mut first_record = None;
    for (name, table, from, last) in [
        ("audit_records", Table::Audit, records_from, end.last_seq),
        (
            "audit_digests",
            Table::AuditDigests,
            digests_from,
            end.last_digest_seq,
        ),
    ] {
        out.extend_from_slice(format!(",\"{name}\":[").as_bytes());
        let mut any = false;
        let mut from = from;
        while from <= last {
            let to = from.saturating_add(COMPLETE_PAGE).min(last + 1);
            for (k, v) in kv.range(table, &seq_key(from), Some(&seq_key(to)))? {
                if table == Table::Audit && first_record.is_none() {
                    first_record = Some(seq_of(&k)?);
                }
                if any {
                    out.push(b',');
                }
                out.extend_from_slice(&v);
                any = true;
            }
            from = to;
        }
        out.push(b']');
    }
    match base {
        // The follower checks that the records follow its base without a gap (a prune
        // committed while this ran would show as one: it then refuses, and gets a new try).
        Some(b) => {
            out.extend_from_slice(b",\"audit_base\":");
            out.extend_from_slice(&to_json(b)?);
            out.push(b'}');
        }
        None => {
            // A prune committed while this ran shows as a later first record (or none): the
            // follower checks that what it got is contiguous up to the head.
            let absent = first_record.map_or(end.last_seq, |s| s - 1);
            out.extend_from_slice(format!(",\"audit_pruned_through\":{absent}}}").as_bytes());
        }
    }
    Ok(out)
}

/// Whether a snapshot ending at `end` can be sent as the records after the follower's `base`:
/// this node's chain extends the base (same record hash and digest at its ends), the base is
/// not past the snapshot, and nothing after the base has been pruned here.
fn base_is_usable(
    base: &ChainBase,
    log_now: &AuditLog,
    kv: &dyn KvBackend,
    end: ChainEnd,
) -> io::Result<bool> {
    let seq = base.head.last_seq();
    if seq == 0 || seq > end.last_seq || base.last_digest_seq() > end.last_digest_seq {
        return Ok(false);
    }
    if log_now.pruned_through >= seq {
        return Ok(false);
    }
    base.is_extended_by(log_now, kv)
}

fn seq_of(key: &[u8]) -> io::Result<u64> {
    let b: [u8; 8] = key
        .try_into()
        .map_err(|_| invalid("audit table key is not a big-endian u64"))?;
    Ok(u64::from_be_bytes(b))
}

/// A decoded snapshot.
#[derive(Clone, Deserialize)]
pub(crate) struct SnapshotData {
    format: u32,
    pub(crate) state: State,
    #[serde(default)]
    pub(crate) audit_records: Vec<AuditRecord>,
    #[serde(default)]
    pub(crate) audit_digests: Vec<DigestRecord>,
    /// The request-id table (formats 3 and 4; empty in older formats).
    #[serde(default)]
    pub(crate) requests: Vec<super::dedup::Row>,
    /// Records up to here were pruned on the sender after the snapshot was taken (format 4;
    /// older formats carry every record above `state.audit.pruned_through`).
    #[serde(default)]
    pub(crate) audit_pruned_through: u64,
    /// Set when the records and digests are only those after the receiver's chain base (the
    /// receiver keeps what it holds up to there).
    #[serde(default)]
    pub(crate) audit_base: Option<ChainBase>,
}

impl SnapshotData {
    /// Records up to this seq are not in the snapshot (pruned before or after it was taken).
    pub(crate) fn absent_through(&self) -> u64 {
        self.audit_pruned_through
            .max(self.state.audit.pruned_through)
    }
}

/// Decodes a complete snapshot of any format and checks that its audit records are the
/// contiguous run the state's chain head and newest digest end with.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> io::Result<SnapshotData> {
    let data = if bytes.starts_with(FORMAT_PREFIX) {
        let data: SnapshotData = from_json(bytes)?;
        if !(SNAPSHOT_FORMAT_2..=SNAPSHOT_FORMAT).contains(&data.format) {
            return Err(invalid(&format!("unknown snapshot format {}", data.format)));
        }
        data
    } else {
        SnapshotData {
            format: 1,
            state: from_json(bytes)?,
            audit_records: Vec::new(),
            audit_digests: Vec::new(),
            requests: Vec::new(),
            audit_pruned_through: 0,
            audit_base: None,
        }
    };
    if let Some(base) = &data.audit_base {
        check_after_base(&data, base)?;
        return Ok(data);
    }
    let absent = data.absent_through();
    for (i, r) in data.audit_records.iter().enumerate() {
        if Some(r.seq) != absent.checked_add(i as u64 + 1) {
            return Err(invalid("snapshot audit records are not contiguous"));
        }
    }
    let mut log = data.state.audit.clone();
    log.pruned_through = absent;
    check_consistent(&log, data.audit_records.last(), data.audit_digests.last())?;
    Ok(data)
}

/// A snapshot carrying only what follows `base`: its records and digests continue the base
/// without a gap and end at the state's chain head and newest digest.
fn check_after_base(data: &SnapshotData, base: &ChainBase) -> io::Result<()> {
    let mut head = base.head.clone();
    for r in &data.audit_records {
        if r.seq != head.next_seq {
            return Err(invalid(
                "snapshot audit records do not follow the chain base",
            ));
        }
        head = ChainHead::after(r).ok_or_else(|| invalid("audit record with a bad hash"))?;
    }
    if head != data.state.audit.head {
        return Err(invalid(
            "snapshot audit records do not end at the snapshot's chain head",
        ));
    }
    let mut digest_seq = base.last_digest_seq();
    for d in &data.audit_digests {
        if d.digest_seq != digest_seq + 1 {
            return Err(invalid(
                "snapshot audit digests do not follow the chain base",
            ));
        }
        digest_seq = d.digest_seq;
    }
    let last_digest = data.audit_digests.last().or(base.last_digest.as_ref());
    if last_digest != data.state.audit.last_digest.as_ref() {
        return Err(invalid(
            "snapshot audit digests do not end at the snapshot's newest digest",
        ));
    }
    Ok(())
}

/// The ops that replace both audit tables and the head with a snapshot's, and note up to
/// where its records were absent (see [`load_head`]).
///
/// A snapshot with an `audit_base` keeps the receiver's records and digests up to the base
/// (after checking that they are the base's): only records the snapshot's state has pruned
/// and anything past its head are deleted, and what follows the base is written.
pub(crate) fn install_ops(
    data: &SnapshotData,
    kv: &dyn KvBackend,
    current: &AuditLog,
    ops: &mut Vec<Op>,
) -> io::Result<()> {
    let Some(base) = &data.audit_base else {
        ops.push(Op::DeleteRange(Table::Audit, Vec::new(), None));
        ops.push(Op::DeleteRange(Table::AuditDigests, Vec::new(), None));
        append_ops(&data.audit_records, &data.audit_digests, ops)?;
        ops.push(head_op(&data.state.audit)?);
        ops.push(Op::Put(
            Table::SmMeta,
            ABSENT_THROUGH.to_vec(),
            to_json(&data.absent_through())?,
        ));
        return Ok(());
    };
    if !base.is_extended_by(current, kv)? {
        return Err(invalid(
            "this node's audit chain does not extend the snapshot's chain base",
        ));
    }
    let end = ChainEnd::of(&data.state.audit);
    let pruned = data.state.audit.pruned_through;
    if pruned > 0 {
        ops.push(Op::DeleteRange(
            Table::Audit,
            Vec::new(),
            Some(seq_key(pruned + 1)),
        ));
    }
    ops.push(Op::DeleteRange(
        Table::Audit,
        seq_key(end.last_seq + 1),
        None,
    ));
    ops.push(Op::DeleteRange(
        Table::AuditDigests,
        seq_key(end.last_digest_seq + 1),
        None,
    ));
    append_ops(&data.audit_records, &data.audit_digests, ops)?;
    ops.push(head_op(&data.state.audit)?);
    ops.push(Op::Put(
        Table::SmMeta,
        ABSENT_THROUGH.to_vec(),
        to_json(&data.absent_through().max(base.absent_through))?,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbBackend;

    /// A node's database holding a chain of `n` records (and no digests), its head stored.
    fn node_with_chain(dir: &std::path::Path, n: u64) -> (RedbBackend, State) {
        std::fs::create_dir_all(dir).unwrap();
        let kv = RedbBackend::open(&dir.join("db")).unwrap();
        let mut state = State::default();
        let records: Vec<_> = (0..n)
            .map(|i| state.audit.head.append(format!("{{\"event\":{i}}}")))
            .collect();
        let mut ops = Vec::new();
        append_ops(&records, &[], &mut ops).unwrap();
        ops.push(head_op(&state.audit).unwrap());
        kv.commit(ops).unwrap();
        (kv, state)
    }

    fn table(kv: &RedbBackend) -> Vec<(Vec<u8>, Vec<u8>)> {
        kv.range(Table::Audit, &[], None).unwrap()
    }

    #[test]
    fn a_snapshot_for_a_follower_carries_only_the_records_after_its_chain_base() {
        let dirs = tempfile::tempdir().unwrap();
        let (leader, state) = node_with_chain(&dirs.path().join("leader"), 50);
        // The follower holds the first 30 records of the same chain.
        let (follower, follower_state) = node_with_chain(&dirs.path().join("follower"), 30);
        let base = ChainBase::of(&follower_state.audit, &follower).unwrap();
        let doc = encode_stored(&to_json(&state).unwrap(), b"[]");
        let end = ChainEnd::of(&state.audit);

        let sent = complete(&doc, &leader, end, Some(&base)).unwrap();
        let data = decode_snapshot(&sent).unwrap();
        assert_eq!(data.audit_base.as_ref(), Some(&base));
        let seqs: Vec<u64> = data.audit_records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (31..=50).collect::<Vec<_>>());

        // Installed on the follower, its table is the leader's, byte for byte.
        let mut ops = Vec::new();
        install_ops(&data, &follower, &follower_state.audit, &mut ops).unwrap();
        follower.commit(ops).unwrap();
        assert_eq!(table(&follower), table(&leader));
        assert_eq!(load_head(&follower).unwrap().head, state.audit.head);

        // Without a base (or for an empty follower) the whole chain goes.
        let full = decode_snapshot(&complete(&doc, &leader, end, None).unwrap()).unwrap();
        assert!(full.audit_base.is_none());
        assert_eq!(full.audit_records.len(), 50);
    }

    #[test]
    fn a_chain_base_the_leader_does_not_share_gets_the_whole_chain() {
        let dirs = tempfile::tempdir().unwrap();
        let (leader, state) = node_with_chain(&dirs.path().join("leader"), 20);
        // A different chain of 10 records: same seqs, other hashes.
        let mut other = State::default();
        for i in 0..10 {
            other.audit.head.append(format!("{{\"other\":{i}}}"));
        }
        let base = ChainBase {
            head: other.audit.head.clone(),
            last_digest: None,
            absent_through: 0,
        };
        let doc = encode_stored(&to_json(&state).unwrap(), b"[]");
        let sent = complete(&doc, &leader, ChainEnd::of(&state.audit), Some(&base)).unwrap();
        let data = decode_snapshot(&sent).unwrap();
        assert!(data.audit_base.is_none());
        assert_eq!(data.audit_records.len(), 20);
    }

    #[test]
    fn a_snapshot_whose_records_skip_past_the_base_is_refused() {
        let dirs = tempfile::tempdir().unwrap();
        let (leader, state) = node_with_chain(&dirs.path().join("leader"), 20);
        let (follower, follower_state) = node_with_chain(&dirs.path().join("follower"), 5);
        let base = ChainBase::of(&follower_state.audit, &follower).unwrap();
        let doc = encode_stored(&to_json(&state).unwrap(), b"[]");
        let sent = complete(&doc, &leader, ChainEnd::of(&state.audit), Some(&base)).unwrap();
        // Record 6 missing on the sender: a gap after the base.
        leader
            .commit(vec![Op::Delete(Table::Audit, seq_key(6))])
            .unwrap();
        let gap = complete(&doc, &leader, ChainEnd::of(&state.audit), Some(&base)).unwrap();
        let Err(err) = decode_snapshot(&gap) else {
            panic!("a gap after the base was accepted");
        };
        assert!(
            err.to_string().contains("do not follow the chain base"),
            "{err}"
        );

        // A follower whose chain is not the base's refuses to install.
        let data = decode_snapshot(&sent).unwrap();
        let (stranger, stranger_state) = node_with_chain(&dirs.path().join("stranger"), 3);
        let mut ops = Vec::new();
        assert!(install_ops(&data, &stranger, &stranger_state.audit, &mut ops).is_err());
    }

    #[test]
    fn a_format_1_snapshot_is_a_bare_state_with_no_audit_records() {
        let state = State::default();
        let data = decode_snapshot(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert!(data.audit_records.is_empty() && data.audit_digests.is_empty());
        assert_eq!(data.state.audit.head, ChainHead::genesis());
    }

    #[test]
    fn a_snapshot_whose_records_disagree_with_its_head_is_refused() {
        let mut head = ChainHead::genesis();
        let r1 = head.append("{\"a\":1}".into());
        let mut state = State::default();
        // The state's head is still genesis, but the snapshot carries one record.
        let bytes = format!(
            "{{\"format\":2,\"state\":{},\"audit_records\":[{}],\"audit_digests\":[]}}",
            serde_json::to_string(&state).unwrap(),
            serde_json::to_string(&r1).unwrap()
        );
        assert!(decode_snapshot(bytes.as_bytes()).is_err());
        state.audit.head = head;
        let bytes = format!(
            "{{\"format\":2,\"state\":{},\"audit_records\":[{}],\"audit_digests\":[]}}",
            serde_json::to_string(&state).unwrap(),
            serde_json::to_string(&r1).unwrap()
        );
        let data = decode_snapshot(bytes.as_bytes()).unwrap();
        assert_eq!(data.audit_records, vec![r1]);
    }
}
