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
//! A snapshot is one JSON document. Format 3 (written since request ids exist):
//!
//! ```text
//! {"format":3,"state":<State>,"audit_records":[<AuditRecord>,..],"audit_digests":[<DigestRecord>,..],
//!  "requests":[<dedup::Row>,..]}
//! ```
//!
//! Records and digests are spliced in as the exact bytes stored in the tables; `requests` is
//! the deduplication table as of the snapshot (see `dedup`). Format 2 (the same without
//! `requests`) is still read, with an empty request-id table; so is format 1 (older nodes: the
//! bare `State`), with empty audit tables too. Older binaries refuse format 3 rather than
//! silently dropping the request ids (which would let them apply a duplicate the others skip).
//! Building a snapshot holds the whole chain in memory (and stores one more copy in
//! `sm_meta`), so its cost grows with the audit log; see docs/storage.md. Streaming it is a
//! later step.

use std::io;

use keystore::audit::{AuditRecord, ChainHead, DigestRecord};
use keystore::model::{AuditLog, State};
use serde::Deserialize;

use super::kv::{KvBackend, Op, Table};
use super::{from_json, to_json};

/// `sm_meta` key of the serialized [`AuditLog`] (chain head + newest digest).
pub(crate) const AUDIT_LOG: &[u8] = b"audit_log";

/// Most records or digests one read returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

const SNAPSHOT_FORMAT: u32 = 3;
/// The format before the request-id table; still read.
const SNAPSHOT_FORMAT_2: u32 = 2;
const FORMAT_2_PREFIX: &[u8] = b"{\"format\":";

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
    check_consistent(
        &log,
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

/// Encodes a format-3 snapshot from the serialized state, the audit tables as stored, up to
/// `last_seq` / `last_digest_seq` (the chain as of the state; later appends are left out), and
/// the serialized request-id rows (a JSON array) as of the state.
pub(crate) fn encode_snapshot(
    kv: &dyn KvBackend,
    state_json: &[u8],
    last_seq: u64,
    last_digest_seq: u64,
    requests_json: &[u8],
) -> io::Result<Vec<u8>> {
    let upto = |n: u64| n.checked_add(1).map(seq_key);
    let records = kv.range(Table::Audit, &seq_key(0), upto(last_seq).as_deref())?;
    let digests = kv.range(
        Table::AuditDigests,
        &seq_key(0),
        upto(last_digest_seq).as_deref(),
    )?;
    let size = state_json.len()
        + requests_json.len()
        + records.iter().map(|(_, v)| v.len() + 1).sum::<usize>()
        + digests.iter().map(|(_, v)| v.len() + 1).sum::<usize>()
        + 64;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(FORMAT_2_PREFIX);
    out.extend_from_slice(SNAPSHOT_FORMAT.to_string().as_bytes());
    out.extend_from_slice(b",\"state\":");
    out.extend_from_slice(state_json);
    for (name, rows) in [("audit_records", &records), ("audit_digests", &digests)] {
        out.extend_from_slice(format!(",\"{name}\":[").as_bytes());
        for (i, (_, v)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(v);
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"requests\":");
    out.extend_from_slice(requests_json);
    out.push(b'}');
    Ok(out)
}

/// A decoded snapshot.
#[derive(Deserialize)]
pub(crate) struct SnapshotData {
    format: u32,
    pub(crate) state: State,
    #[serde(default)]
    pub(crate) audit_records: Vec<AuditRecord>,
    #[serde(default)]
    pub(crate) audit_digests: Vec<DigestRecord>,
    /// The request-id table (format 3; empty in older formats).
    #[serde(default)]
    pub(crate) requests: Vec<super::dedup::Row>,
}

/// Decodes a snapshot of either format and checks that its audit tables end where its state's
/// chain head and newest digest say.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> io::Result<SnapshotData> {
    let data = if bytes.starts_with(FORMAT_2_PREFIX) {
        let data: SnapshotData = from_json(bytes)?;
        if data.format != SNAPSHOT_FORMAT && data.format != SNAPSHOT_FORMAT_2 {
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
        }
    };
    check_consistent(
        &data.state.audit,
        data.audit_records.last(),
        data.audit_digests.last(),
    )?;
    Ok(data)
}

/// The ops that replace both audit tables and the head with a snapshot's.
pub(crate) fn install_ops(data: &SnapshotData, ops: &mut Vec<Op>) -> io::Result<()> {
    ops.push(Op::DeleteRange(Table::Audit, Vec::new(), None));
    ops.push(Op::DeleteRange(Table::AuditDigests, Vec::new(), None));
    append_ops(&data.audit_records, &data.audit_digests, ops)?;
    ops.push(head_op(&data.state.audit)?);
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
