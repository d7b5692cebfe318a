//! Key last usage (AWS `GetKeyLastUsage`), derived from the audit trail.
//!
//! When a front appends a batch of audit events (`Command::AppendAudit`), it also hands over a
//! [`UsageBatch`]: one [`KeyUsageMark`] per key used by each *successful* cryptographic
//! operation in the batch (the operations AWS tracks, [`TrackedOperation`]; ReEncrypt marks
//! both keys), and since when the front has been tracking (its start). `apply` keeps the newest
//! mark per key in `State.key_last_usage` and, at the first batch that carries a `UsageBatch`
//! at all, records the region's tracking start (`AuditLog::usage_tracking_start`): that
//! front's `tracked_since`, capped at the entry's `now`.
//!
//! "Newest" is by the mark's `at` (the front's clock, the event's time); a tie goes to the later
//! log entry, so every replica keeps the same mark. Marks for keys that do not exist (any more)
//! are ignored, and a key's mark goes with the key, so the map never outgrows the key table.
//!
//! `TrackingStartDate` is the later of the key's creation date and the region's tracking start:
//! before it, the region ran a version without marks, so an older use cannot be ruled out.
//! (While fronts of both versions serve one region, the older ones' uses are not tracked.)

use serde::{Deserialize, Serialize};

use crate::model::EpochMillis;

/// The cryptographic operations whose last use AWS tracks (`KeyLastUsageTrackingOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TrackedOperation {
    /// Decrypt.
    Decrypt,
    /// DeriveSharedSecret.
    DeriveSharedSecret,
    /// Encrypt.
    Encrypt,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyPair.
    GenerateDataKeyPair,
    /// GenerateDataKeyPairWithoutPlaintext.
    GenerateDataKeyPairWithoutPlaintext,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// GenerateMac.
    GenerateMac,
    /// ReEncrypt (marks the source and the destination key).
    ReEncrypt,
    /// Sign.
    Sign,
    /// Verify (only a signature that verified).
    Verify,
    /// VerifyMac (only a MAC that verified).
    VerifyMac,
    /// Encapsulate (ML-KEM; not served by keyraft yet, accepted for completeness).
    Encapsulate,
    /// Decapsulate (ML-KEM; not served by keyraft yet).
    Decapsulate,
}

impl TrackedOperation {
    /// Every tracked operation.
    pub const ALL: [TrackedOperation; 14] = [
        TrackedOperation::Decrypt,
        TrackedOperation::DeriveSharedSecret,
        TrackedOperation::Encrypt,
        TrackedOperation::GenerateDataKey,
        TrackedOperation::GenerateDataKeyPair,
        TrackedOperation::GenerateDataKeyPairWithoutPlaintext,
        TrackedOperation::GenerateDataKeyWithoutPlaintext,
        TrackedOperation::GenerateMac,
        TrackedOperation::ReEncrypt,
        TrackedOperation::Sign,
        TrackedOperation::Verify,
        TrackedOperation::VerifyMac,
        TrackedOperation::Encapsulate,
        TrackedOperation::Decapsulate,
    ];

    /// The AWS wire name (also the CloudTrail `eventName`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackedOperation::Decrypt => "Decrypt",
            TrackedOperation::DeriveSharedSecret => "DeriveSharedSecret",
            TrackedOperation::Encrypt => "Encrypt",
            TrackedOperation::GenerateDataKey => "GenerateDataKey",
            TrackedOperation::GenerateDataKeyPair => "GenerateDataKeyPair",
            TrackedOperation::GenerateDataKeyPairWithoutPlaintext => {
                "GenerateDataKeyPairWithoutPlaintext"
            }
            TrackedOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            TrackedOperation::GenerateMac => "GenerateMac",
            TrackedOperation::ReEncrypt => "ReEncrypt",
            TrackedOperation::Sign => "Sign",
            TrackedOperation::Verify => "Verify",
            TrackedOperation::VerifyMac => "VerifyMac",
            TrackedOperation::Encapsulate => "Encapsulate",
            TrackedOperation::Decapsulate => "Decapsulate",
        }
    }

    /// The tracked operation an audit event name stands for (`None`: not tracked).
    pub fn from_event_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// One successful cryptographic use of one key, as a front reports it with the audit batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsageMark {
    /// Key id (not ARN).
    pub key_id: String,
    /// What the key was used for.
    pub operation: TrackedOperation,
    /// The audit event's `eventID` (CloudTrailEventId).
    pub event_id: String,
    /// The call's request id (KmsRequestId).
    #[serde(default)]
    pub request_id: String,
    /// The event's time (front clock), epoch millis.
    pub at: EpochMillis,
}

/// What a front attaches to one audit batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBatch {
    /// Since when the proposing front has tracked usage (its start): the region's tracking
    /// start is taken from the first batch that carries marks (capped at its `now`).
    pub tracked_since: EpochMillis,
    /// One mark per key used by each successful tracked cryptographic operation in the
    /// batch's events.
    pub marks: Vec<KeyUsageMark>,
}

/// Longest event id or request id a mark may carry (UUIDs are 36).
pub const MAX_MARK_ID_LEN: usize = 128;
