//! The per-region hash chain of audit records.
//!
//! `hash(n) = SHA-256("keyraft-audit-v1" || seq BE u64 || prev_hash (32 raw bytes) || event)`,
//! with `prev_hash` of seq 1 = [`GENESIS_HASH`] (32 zero bytes). Seqs start at 1, so a digest
//! taken before the first record covers `1..=0` and names the genesis hash.
//!
//! The event is hashed and stored as the exact JSON text it arrived as: re-serializing a parsed
//! event could reorder or re-escape members, and then an honest record would fail to verify.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain-separation label at the start of every record hash.
pub const RECORD_HASH_LABEL: &[u8] = b"keyraft-audit-v1";

/// `prev_hash` of the first record (seq 1).
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// One record of the chain; serialized as one JSON object per line in exports
/// (`{"seq":..,"prev_hash":"..","event":"..","hash":".."}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the region's chain, from 1, without gaps.
    pub seq: u64,
    /// Lowercase hex of the previous record's hash ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: String,
    /// The event's JSON text ([`super::AuditEvent::to_json`]), verbatim.
    pub event: String,
    /// Lowercase hex of [`record_hash`] over this record.
    pub hash: String,
}

impl AuditRecord {
    /// Recomputes this record's hash from its seq, prev_hash and event; `None` when
    /// `prev_hash` is not 64 hex digits.
    pub fn compute_hash(&self) -> Option<[u8; 32]> {
        let prev = decode_hash(&self.prev_hash)?;
        Some(record_hash(self.seq, &prev, self.event.as_bytes()))
    }

    /// Whether the stored `hash` is the recomputed one (and `prev_hash` is well-formed).
    pub fn hash_is_valid(&self) -> bool {
        self.compute_hash()
            .is_some_and(|h| hex::encode(h) == self.hash)
    }
}

/// The record hash (see the module doc). Fixed-width fields precede the event, so no two
/// different (seq, prev, event) triples share an input.
pub fn record_hash(seq: u64, prev_hash: &[u8; 32], event: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RECORD_HASH_LABEL);
    h.update(seq.to_be_bytes());
    h.update(prev_hash);
    h.update(event);
    h.finalize().into()
}

/// 64 hex digits -> 32 bytes (either case accepted for decoding; the chain writes lowercase).
pub(crate) fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The tip of a chain: what the state machine keeps (next to the records) to append.
///
/// Serialized as `{"next_seq":..,"head_hash":"<hex>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Seq the next appended record gets (1 for an empty chain).
    pub next_seq: u64,
    /// Hash of the last record, [`GENESIS_HASH`] for an empty chain.
    #[serde(with = "hex_hash")]
    pub head_hash: [u8; 32],
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::genesis()
    }
}

impl ChainHead {
    /// An empty chain.
    pub fn genesis() -> Self {
        Self {
            next_seq: 1,
            head_hash: GENESIS_HASH,
        }
    }

    /// The head after `last` (to resume appending from stored records). `None` if `last`'s
    /// hash is not 64 hex digits.
    pub fn after(last: &AuditRecord) -> Option<Self> {
        Some(Self {
            next_seq: last.seq.saturating_add(1),
            head_hash: decode_hash(&last.hash)?,
        })
    }

    /// Seq of the last record, 0 for an empty chain.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Lowercase hex of `head_hash` (what digests carry).
    pub fn head_hash_hex(&self) -> String {
        hex::encode(self.head_hash)
    }

    /// Appends one event (its JSON text, kept verbatim) and returns the new record. Pure and
    /// deterministic: replicas applying the same log produce identical records.
    pub fn append(&mut self, event_json: String) -> AuditRecord {
        let seq = self.next_seq;
        let hash = record_hash(seq, &self.head_hash, event_json.as_bytes());
        let record = AuditRecord {
            seq,
            prev_hash: hex::encode(self.head_hash),
            event: event_json,
            hash: hex::encode(hash),
        };
        // 2^64 records cannot happen; saturating keeps this total, and a repeated seq would be
        // reported by `verify`.
        self.next_seq = seq.saturating_add(1);
        self.head_hash = hash;
        record
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::decode_hash(&text)
            .ok_or_else(|| serde::de::Error::custom("head_hash must be 64 hex digits"))
    }
}
