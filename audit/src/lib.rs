//! keyraft's tamper-evident audit trail, pure core: CloudTrail-shaped events, the allow-list
//! redaction that keeps secrets out of them, the per-region hash chain, signed digests,
//! offline verification and the JSON Lines export format.
//!
//! A leaf crate of the domain: `keystore` re-exports it as `keystore::audit` (the state
//! machine appends and signs with it), and the client SDK uses it alone for `kmsctl audit
//! verify`, so verifying an export never needs the rest of the domain.
//!
//! Nothing here does I/O or reads a clock: times come in as epoch millis, ids come in from the
//! caller, and the only randomness is [`AuditSigningKey::generate`]. The Raft state machine can
//! therefore call [`ChainHead::append`] in log order on every replica and get byte-identical
//! records everywhere.
//!
//! # Layout
//!
//! - `event`: [`AuditEvent`] (CloudTrail's record shape, camelCase on the wire) and its
//!   builder, [`read_only`], [`format_event_time`].
//! - `redact`: [`request_parameters`] / [`response_elements`]: per-operation allow-lists from
//!   the KMS JSON request/response (PascalCase) to CloudTrail's camelCase members. Anything not
//!   on a list (plaintext, ciphertext, signatures, import tokens, secrets, unknown members) is
//!   dropped, so a member added to the API later can never leak by default.
//! - `chain`: [`AuditRecord`] (seq, prev_hash, event text, hash), [`ChainHead`] and its pure
//!   `append`.
//! - `digest`: [`DigestRecord`], its canonical signed bytes, [`AuditSigningKey`] (secret) and
//!   [`AuditPublicKey`] (with validity).
//! - `verify`: [`verify`] / [`Verifier`]: replays the chain and the digests and names the first
//!   record that fails, with a [`FailureKind`].
//! - `jsonl`: [`to_jsonl`] / [`parse_jsonl`], the export format for records and digests.
//! - `retention`: which exported, digest-covered prefix is old enough to prune.
//!
//! # Data flow
//!
//! ```text
//!  front:   request JSON --redact::request_parameters--> AuditEvent::api_call(..)...build
//!           response JSON --redact::response_elements-->        | .to_json()  (event text)
//!                                                               v
//!  raft:    a command carrying a batch of event texts (group commit) -> every replica, in
//!           log order, for each event:
//!              ChainHead::append(event_text) -> AuditRecord { seq, prev_hash, event, hash }
//!              persist record + new ChainHead (state machine state)
//!  leader:  every minute / at shutdown: DigestBody::next(last digest, head, region, now)
//!              -> sign_digest(audit key) -> a command carrying the DigestRecord
//!  offline: parse_jsonl(records), parse_jsonl(digests), public keys -> verify(..) -> report
//! ```
//!
//! # Trust rules (what `verify` proves)
//!
//! - Every record's `hash` is recomputed from (seq, prev_hash, event); `prev_hash` must equal
//!   the previous record's hash; seqs must be consecutive. So an edited, deleted, inserted or
//!   reordered record breaks the chain at or before its own position.
//! - A digest is signed over [`DigestRecord::canonical_bytes`]; it names the chain hash at its
//!   `to_seq` and the previous digest's signature, so digests form their own chain and anchor
//!   the record chain: rewriting a suffix and recomputing every hash still fails at the next
//!   digest, and dropping records at the end fails against the newest digest (`Truncated`).
//!   Records after the newest digest are protected only by the chain until the next digest.
//! - Start of the log: without a range, records must start at seq 1 from the genesis hash,
//!   so deleting a prefix is caught. An export that starts mid-chain is verified with a range
//!   starting exactly at its first seq: the range vouches for that record's prev_hash, a
//!   digest ending just before it (if present) must agree, and every later digest checks it
//!   transitively.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Milliseconds since the Unix epoch (the same type as `keystore::model::EpochMillis`).
pub type EpochMillis = u64;

mod chain;
mod digest;
mod event;
mod jsonl;
mod redact;
pub mod retention;
mod verify;

pub use chain::{record_hash, AuditRecord, ChainHead, GENESIS_HASH, RECORD_HASH_LABEL};
pub use digest::{
    sign_digest, verify_digest, AuditPublicKey, AuditSigningKey, DigestBody, DigestRecord,
    DIGEST_SIGNATURE_LABEL,
};
pub use event::{
    format_event_time, read_only, AuditEvent, EventType, IdentityType, Resource, TlsDetails,
    UserIdentity, EVENT_CATEGORY, EVENT_SOURCE, EVENT_VERSION, KMS_KEY_RESOURCE_TYPE,
};
pub use jsonl::{parse_jsonl, to_jsonl};
pub use redact::{request_parameters, response_elements};
pub use verify::{verify, Failure, FailureKind, Verifier, VerifyReport};

/// Errors of the audit module's parsers and key handling. Verification failures are not
/// errors: they are the [`VerifyReport`]'s `first_failure`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A JSON Lines file has a line that is not a valid record.
    #[error("line {line}: {message}")]
    Jsonl {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An event could not be parsed from its JSON text.
    #[error("invalid audit event: {0}")]
    Event(String),
    /// A public key that is not 32 bytes of base64, or not a valid Ed25519 point.
    #[error("invalid audit public key: {0}")]
    PublicKey(String),
    /// A digest's signature does not verify, or its key is unknown or not valid at its time.
    #[error("{0}")]
    Digest(String),
}
