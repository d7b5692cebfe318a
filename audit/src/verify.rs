//! Offline verification of an audit log (or an export of part of it) against its digests.
//!
//! [`Verifier`] is streaming: feed records in file order with [`Verifier::push`] (a live log
//! can be paged through without holding it in memory) and call [`Verifier::finish`];
//! [`verify`] does this for a slice. Verification stops at the first failure and names it.
//!
//! # Rules
//!
//! 1. Digests first, in file order: each must be signed by a key in `keys` that is valid at
//!    its `signed_at`, and each must [follow](DigestRecord::follows) the one before it. The
//!    first digest in scope may start mid-chain (an export of a later range); digest 1 must
//!    start at record 1 with no previous signature. A digest with `to_seq = 0` must name the
//!    genesis hash.
//! 2. Records, in file order: seqs consecutive; each record's hash recomputed from (seq,
//!    prev_hash, event); its prev_hash equal to the previous record's hash; and wherever a
//!    digest ends (`to_seq`), the recomputed hash equal to the digest's `head_hash`.
//! 3. Where the log starts. Without a range, the first record must be seq 1 and link to the
//!    genesis hash: records missing before it are deleted records, never "a partial export"
//!    (otherwise deleting a prefix that ends on a digest boundary would go unnoticed). An
//!    export that starts mid-chain is verified with a range starting exactly at its first
//!    seq: the caller's range vouches for that record's prev_hash, a valid digest ending at
//!    `from - 1` (if given) must agree with it, and every later digest checks it anyway,
//!    because its head hash depends on it.
//! 4. At the end, the records must reach the newest valid digest's `to_seq` (capped at the
//!    range end): otherwise the log was truncated.
//!
//! With a `range = (from, to)`, records outside it are skipped, and only digests that touch it
//! (`to_seq >= from - 1` and `from_seq <= to + 1`) are checked.
//!
//! When two checks fail, the report names the failure at the lower record seq (a record
//! failure wins a tie). A digest failure is placed at the digest's `from_seq`: the first record
//! it no longer vouches for.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::chain::decode_hash;
use super::digest::truncate;
use super::{verify_digest, AuditPublicKey, AuditRecord, DigestRecord, GENESIS_HASH};

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that passed every check.
    pub records_checked: u64,
    /// Digests whose signature and chain link passed.
    pub digests_checked: u64,
    /// The first failure, `None` if everything verified.
    pub first_failure: Option<Failure>,
}

impl VerifyReport {
    /// Whether everything verified.
    pub fn is_ok(&self) -> bool {
        self.first_failure.is_none()
    }
}

/// The first thing that did not verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The record seq at which the log stops being trustworthy (the edited record, the first
    /// missing one, ...); `None` only for failures that concern no record.
    pub seq: Option<u64>,
    /// The digest involved, if any.
    pub digest_seq: Option<u64>,
    /// What kind of tampering (or damage) this looks like.
    pub kind: FailureKind,
    /// A sentence for the operator.
    pub message: String,
}

/// Kinds of verification failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum FailureKind {
    /// A record's stored hash is not the hash of its contents (its event or prev_hash was
    /// edited, or a field is malformed).
    EditedRecord,
    /// A record's prev_hash is not the previous record's hash (a record was deleted, inserted
    /// or replaced together with its hash).
    BrokenLink,
    /// Records are missing: the seq after N is not N + 1 (deleted, or the export starts after
    /// a point nothing vouches for).
    SequenceGap,
    /// A seq appears after a higher one, or twice (reordered or duplicated records).
    SequenceOutOfOrder,
    /// The chain hash at a digest's `to_seq` is not the digest's `head_hash` (records up to it
    /// were rewritten with recomputed hashes).
    DigestMismatch,
    /// A digest's signature is malformed or does not verify.
    BadSignature,
    /// A digest names an audit key that is not among the given public keys.
    UnknownKey,
    /// A digest was signed outside its key's validity period.
    KeyNotValidAt,
    /// The digests do not chain: a digest was deleted, reordered, or altered, or its range does
    /// not continue the previous one.
    DigestChainBroken,
    /// The newest digest covers records that are missing from the end of the log.
    Truncated,
}

/// Streaming verifier; see the module doc for the rules.
pub struct Verifier {
    range: Option<(u64, u64)>,
    digest_failure: Option<Failure>,
    digests_checked: u64,
    /// Valid digests by `to_seq`: (digest_seq, head_hash).
    heads: BTreeMap<u64, Vec<(u64, String)>>,
    /// Newest `to_seq` a valid digest claims, with that digest's seq.
    claimed_end: Option<(u64, u64)>,
    /// Seq of the last record accepted.
    last_seq: Option<u64>,
    /// Hash of the last record accepted.
    prev_hash: [u8; 32],
    /// (expected, seen): a higher seq came where `expected` should have; the next record tells
    /// a reorder from a deletion.
    pending_gap: Option<(u64, u64)>,
    records_checked: u64,
    record_failure: Option<Failure>,
}

fn failure(seq: Option<u64>, digest_seq: Option<u64>, kind: FailureKind, msg: String) -> Failure {
    Failure {
        seq,
        digest_seq,
        kind,
        message: msg,
    }
}

impl Verifier {
    /// Checks `digests` against `keys` (rule 1) and prepares to take records. `range` is
    /// `(from, to)`, inclusive; `from = 0` means 1.
    pub fn new(
        digests: &[DigestRecord],
        keys: &[AuditPublicKey],
        range: Option<(u64, u64)>,
    ) -> Self {
        let range = range.map(|(from, to)| (from.max(1), to));
        let mut v = Verifier {
            range,
            digest_failure: None,
            digests_checked: 0,
            heads: BTreeMap::new(),
            claimed_end: None,
            last_seq: None,
            prev_hash: GENESIS_HASH,
            pending_gap: None,
            records_checked: 0,
            record_failure: None,
        };
        let in_scope = |d: &&DigestRecord| match range {
            None => true,
            Some((from, to)) => {
                d.to_seq.saturating_add(1) >= from && d.from_seq <= to.saturating_add(1)
            }
        };
        let mut previous: Option<&DigestRecord> = None;
        for d in digests.iter().filter(in_scope) {
            if let Err(f) = check_digest(d, previous, keys) {
                v.digest_failure = Some(f);
                break;
            }
            v.digests_checked += 1;
            v.heads
                .entry(d.to_seq)
                .or_default()
                .push((d.digest_seq, d.head_hash.clone()));
            if v.claimed_end.is_none_or(|(end, _)| d.to_seq >= end) {
                v.claimed_end = Some((d.to_seq, d.digest_seq));
            }
            previous = Some(d);
        }
        v
    }

    /// Checks the next record in file order (rules 2 and 3). Returns whether verification can
    /// continue; once it returns false, further records are ignored.
    pub fn push(&mut self, record: &AuditRecord) -> bool {
        if self.record_failure.is_some() {
            return false;
        }
        if let Some((from, to)) = self.range {
            if record.seq < from || record.seq > to {
                return true;
            }
        }
        if let Some((expected, seen)) = self.pending_gap.take() {
            let kind = if record.seq < seen {
                FailureKind::SequenceOutOfOrder
            } else {
                FailureKind::SequenceGap
            };
            self.fail_gap(kind, expected, seen);
            return false;
        }
        match self.check_record(record) {
            Ok(()) => true,
            Err(Some(f)) => {
                self.record_failure = Some(f);
                false
            }
            // A gap whose kind the next record decides.
            Err(None) => true,
        }
    }

    fn fail_gap(&mut self, kind: FailureKind, expected: u64, seen: u64) {
        let message = match kind {
            FailureKind::SequenceOutOfOrder => format!(
                "record {expected} is out of order: record {seen} comes before it (reordered records)"
            ),
            _ => format!(
                "record {expected} is missing: the record after {} is {seen} (deleted records)",
                expected.saturating_sub(1)
            ),
        };
        self.record_failure = Some(failure(Some(expected), None, kind, message));
    }

    /// `Err(None)`: a possible gap, pending until the next record.
    fn check_record(&mut self, r: &AuditRecord) -> Result<(), Option<Failure>> {
        let seq = r.seq;
        let fail = |kind, message: String| Some(failure(Some(seq), None, kind, message));
        // The hash this record must link to.
        let expected_prev: [u8; 32] = match self.last_seq {
            Some(last) => match last.checked_add(1) {
                Some(expected) if seq == expected => self.prev_hash,
                Some(expected) if seq > expected => {
                    self.pending_gap = Some((expected, seq));
                    return Err(None);
                }
                _ => {
                    return Err(fail(
                        FailureKind::SequenceOutOfOrder,
                        format!("record {seq} comes after record {last} (reordered or duplicated)"),
                    ))
                }
            },
            None => self.anchor(r)?,
        };
        let Some(computed) = r.compute_hash() else {
            return Err(fail(
                FailureKind::EditedRecord,
                format!("record {seq}: prev_hash is not 64 hex digits"),
            ));
        };
        let computed_hex = hex::encode(computed);
        if computed_hex != r.hash {
            return Err(fail(
                FailureKind::EditedRecord,
                format!("record {seq}: its hash does not match its contents (edited record)"),
            ));
        }
        if decode_hash(&r.prev_hash) != Some(expected_prev) {
            return Err(fail(
                FailureKind::BrokenLink,
                format!(
                    "record {seq}: prev_hash is not the hash of the record before it \
                     (deleted, inserted or replaced records)"
                ),
            ));
        }
        if let Some(heads) = self.heads.get(&seq) {
            for (digest_seq, head) in heads {
                if *head != computed_hex {
                    return Err(Some(failure(
                        Some(seq),
                        Some(*digest_seq),
                        FailureKind::DigestMismatch,
                        format!(
                            "digest {digest_seq} signed a different chain hash at record {seq} \
                             (records up to {seq} were rewritten)"
                        ),
                    )));
                }
            }
        }
        self.last_seq = Some(seq);
        self.prev_hash = computed;
        self.records_checked += 1;
        Ok(())
    }

    /// Rule 3: what the first record's prev_hash must be.
    fn anchor(&self, r: &AuditRecord) -> Result<[u8; 32], Option<Failure>> {
        let seq = r.seq;
        if seq == 0 {
            return Err(Some(failure(
                Some(0),
                None,
                FailureKind::EditedRecord,
                "record with seq 0: seqs start at 1 (edited record)".to_owned(),
            )));
        }
        let start = self.range.map_or(1, |(from, _)| from);
        if seq > start {
            let hint = if self.range.is_none() {
                format!(
                    "; if this is an export that starts mid-chain, verify it with a range \
                     starting at {seq}"
                )
            } else {
                String::new()
            };
            return Err(Some(failure(
                Some(start),
                None,
                FailureKind::SequenceGap,
                format!(
                    "records {start} to {} are missing{hint}",
                    seq.saturating_sub(1)
                ),
            )));
        }
        if seq == 1 {
            return Ok(GENESIS_HASH);
        }
        // A ranged export starting exactly at `from`: a digest ending just before it must
        // agree; without one, the caller's range vouches.
        if let Some(head) = self.digest_head(seq - 1) {
            return Ok(head);
        }
        decode_hash(&r.prev_hash).ok_or_else(|| {
            Some(failure(
                Some(seq),
                None,
                FailureKind::EditedRecord,
                format!("record {seq}: prev_hash is not 64 hex digits"),
            ))
        })
    }

    /// The head hash a valid digest signed at `to_seq` (a malformed one can match nothing).
    fn digest_head(&self, to_seq: u64) -> Option<[u8; 32]> {
        let (_, head) = self.heads.get(&to_seq)?.first()?;
        Some(decode_hash(head).unwrap_or([0xff; 32]))
    }

    /// Rule 4 and the report.
    pub fn finish(mut self) -> VerifyReport {
        if let Some((expected, seen)) = self.pending_gap.take() {
            self.fail_gap(FailureKind::SequenceGap, expected, seen);
        }
        if self.record_failure.is_none() {
            if let Some((claimed, digest_seq)) = self.claimed_end {
                let end = self.range.map_or(claimed, |(_, to)| claimed.min(to));
                let start = self.range.map_or(1, |(from, _)| from);
                let have = self.last_seq.unwrap_or(start.saturating_sub(1));
                if end > have {
                    let first_missing = have.saturating_add(1);
                    self.record_failure = Some(failure(
                        Some(first_missing),
                        Some(digest_seq),
                        FailureKind::Truncated,
                        format!(
                            "digest {digest_seq} covers records up to {claimed}, but the log \
                             ends at {have} (records {first_missing} to {end} are missing)"
                        ),
                    ));
                }
            }
        }
        let first_failure = match (self.record_failure, self.digest_failure) {
            (Some(r), Some(d)) => Some(if d.seq < r.seq { d } else { r }),
            (r, d) => r.or(d),
        };
        VerifyReport {
            records_checked: self.records_checked,
            digests_checked: self.digests_checked,
            first_failure,
        }
    }
}

/// Rule 1 for one digest.
fn check_digest(
    d: &DigestRecord,
    previous: Option<&DigestRecord>,
    keys: &[AuditPublicKey],
) -> Result<(), Failure> {
    let at = Some(d.from_seq);
    let broken = |msg: String| failure(at, Some(d.digest_seq), FailureKind::DigestChainBroken, msg);
    verify_digest(d, keys).map_err(|mut f| {
        f.seq = at;
        f
    })?;
    if d.from_seq > d.to_seq.saturating_add(1) {
        return Err(broken(format!(
            "digest {}: from_seq {} is beyond to_seq {} + 1",
            d.digest_seq, d.from_seq, d.to_seq
        )));
    }
    match previous {
        Some(p) if !d.follows(p) => {
            return Err(broken(format!(
                "digest {} does not follow digest {} (covering up to record {}): a digest was \
                 deleted, reordered or altered",
                d.digest_seq, p.digest_seq, p.to_seq
            )))
        }
        None if d.digest_seq == 1 && (d.from_seq != 1 || d.previous_digest_signature.is_some()) => {
            return Err(broken(
                "digest 1 must start at record 1 with no previous digest".to_owned(),
            ))
        }
        _ => {}
    }
    if d.to_seq == 0 && d.head_hash != hex::encode(GENESIS_HASH) {
        return Err(failure(
            at,
            Some(d.digest_seq),
            FailureKind::DigestMismatch,
            format!(
                "digest {} covers no record but names head hash '{}', not the genesis hash",
                d.digest_seq,
                truncate(&d.head_hash)
            ),
        ));
    }
    Ok(())
}

/// Verifies `records` (in file order) against `digests` and `keys`; see the module doc.
/// A gap whose missing record appears later in `records` is reported as
/// `SequenceOutOfOrder` (moved), not `SequenceGap` (deleted).
pub fn verify(
    records: &[AuditRecord],
    digests: &[DigestRecord],
    keys: &[AuditPublicKey],
    range: Option<(u64, u64)>,
) -> VerifyReport {
    let mut verifier = Verifier::new(digests, keys, range);
    for record in records {
        if !verifier.push(record) {
            break;
        }
    }
    let mut report = verifier.finish();
    if let Some(f) = &mut report.first_failure {
        if f.kind == FailureKind::SequenceGap && f.digest_seq.is_none() {
            if let Some(missing) = f.seq {
                let present: HashSet<u64> = records.iter().map(|r| r.seq).collect();
                if present.contains(&missing) {
                    f.kind = FailureKind::SequenceOutOfOrder;
                    f.message = format!(
                        "record {missing} is out of order: it appears later in the log (moved)"
                    );
                }
            }
        }
    }
    report
}
