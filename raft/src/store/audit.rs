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
//! (every 1000 entries, `sm_meta/snapshot_data`) is only the live state:
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
    let absent: u64 = kv
        .get(Table::SmMeta, ABSENT_THROUGH)?
        .map(|v| from_json(&v))
        .transpose()?
        .unwrap_or(0);
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

/// Rows read per range call while completing a snapshot, so that the rows read and the
/// output are never both whole in memory.
const COMPLETE_PAGE: u64 = 4096;

/// The complete document sent to a follower: the stored format-4 document `doc` plus the
/// audit records and digests up to `end`, read from the tables now and spliced in as
/// stored. Records and digests are append-only, so the ones up to `end` are exactly the
/// snapshot's, except records a later `PruneAudit` deleted since: those are absent, and
/// `"audit_pruned_through"` says up to where (the follower replays that prune from the log).
pub(crate) fn complete(doc: &[u8], kv: &dyn KvBackend, end: ChainEnd) -> io::Result<Vec<u8>> {
    let Some(body) = doc.strip_suffix(b"}") else {
        return Err(invalid("stored snapshot document is not a JSON object"));
    };
    // Records below the current prune mark are gone: start reading after it.
    let pruned_now = kv
        .get(Table::SmMeta, AUDIT_LOG)?
        .map(|v| from_json::<AuditLog>(&v))
        .transpose()?
        .map_or(0, |l| l.pruned_through);
    let mut out = Vec::with_capacity(doc.len() + 128);
    out.extend_from_slice(body);
    let mut first_record = None;
    for (name, table, from, last) in [
        ("audit_records", Table::Audit, pruned_now + 1, end.last_seq),
        ("audit_digests", Table::AuditDigests, 0, end.last_digest_seq),
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
    // A prune committed while this ran shows as a later first record (or none): the follower
    // checks that what it got is contiguous up to the head.
    let absent = first_record.map_or(end.last_seq, |s| s - 1);
    out.extend_from_slice(format!(",\"audit_pruned_through\":{absent}}}").as_bytes());
    Ok(out)
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
        }
    };
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

/// The ops that replace both audit tables and the head with a snapshot's, and note up to
/// where its records were absent (see [`load_head`]).
pub(crate) fn install_ops(data: &SnapshotData, ops: &mut Vec<Op>) -> io::Result<()> {
    ops.push(Op::DeleteRange(Table::Audit, Vec::new(), None));
    ops.push(Op::DeleteRange(Table::AuditDigests, Vec::new(), None));
    append_ops(&data.audit_records, &data.audit_digests, ops)?;
    ops.push(head_op(&data.state.audit)?);
    ops.push(Op::Put(
        Table::SmMeta,
        ABSENT_THROUGH.to_vec(),
        to_json(&data.absent_through())?,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
