//! Signed digests: the region's Ed25519 audit key vouching for the chain up to a seq.
//!
//! The leader writes one per interval (and at shutdown), even when no record was appended
//! since the last one (then `from_seq = to_seq + 1`). Each names the previous digest's
//! signature, so digests form a chain of their own: a deleted or altered digest breaks it.
//!
//! # Canonical bytes (what is signed)
//!
//! Defined here, byte by byte, not by serde's field order, so a re-serialized digest (other
//! member order, other whitespace) still verifies and no two different digests sign the same
//! bytes. Integers are big-endian `u64`; `str(x)` is `u64 BE len(x) || utf8(x)`:
//!
//! ```text
//! "keyraft-audit-digest-v1"
//! || digest_seq || str(region) || from_seq || to_seq || str(head_hash)
//! || 0x00                                   (no previous digest)
//!  | 0x01 || str(previous_digest_signature)
//! || signed_at || str(key_id)
//! ```
//!
//! Text fields are signed as the text they are (hex, base64), so signing is total and a
//! digest whose head_hash is upper-case hex is simply one that does not match the chain.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::verify::{Failure, FailureKind};
use super::{AuditError, ChainHead};
use crate::EpochMillis;

/// Domain-separation label at the start of every digest's signed bytes.
pub const DIGEST_SIGNATURE_LABEL: &[u8] = b"keyraft-audit-digest-v1";

/// A signed digest; one JSON object per line in the digest export file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestRecord {
    /// Position in the region's digest chain, from 1.
    pub digest_seq: u64,
    /// Region whose chain this digest covers.
    pub region: String,
    /// First record seq covered (the previous digest's `to_seq + 1`).
    pub from_seq: u64,
    /// Last record seq covered, inclusive; `from_seq - 1` when the digest covers no new record.
    pub to_seq: u64,
    /// Lowercase hex of the chain hash at `to_seq` (the genesis hash for `to_seq = 0`).
    pub head_hash: String,
    /// `signature` of digest `digest_seq - 1`; `None` only for the first digest.
    pub previous_digest_signature: Option<String>,
    /// When the leader signed it (epoch millis); the key must be valid at this time.
    pub signed_at: EpochMillis,
    /// Which audit key signed it ([`AuditPublicKey::key_id`]).
    pub key_id: String,
    /// Base64 Ed25519 signature over [`DigestRecord::canonical_bytes`].
    pub signature: String,
}

/// A digest before signing: everything but `key_id` and `signature`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestBody {
    /// See [`DigestRecord::digest_seq`].
    pub digest_seq: u64,
    /// See [`DigestRecord::region`].
    pub region: String,
    /// See [`DigestRecord::from_seq`].
    pub from_seq: u64,
    /// See [`DigestRecord::to_seq`].
    pub to_seq: u64,
    /// See [`DigestRecord::head_hash`].
    pub head_hash: String,
    /// See [`DigestRecord::previous_digest_signature`].
    pub previous_digest_signature: Option<String>,
    /// See [`DigestRecord::signed_at`].
    pub signed_at: EpochMillis,
}

impl DigestBody {
    /// The digest that follows `previous` (or the first one) and covers the chain up to
    /// `head`: what the leader signs on its timer.
    pub fn next(
        previous: Option<&DigestRecord>,
        region: &str,
        head: &ChainHead,
        signed_at: EpochMillis,
    ) -> Self {
        let (digest_seq, from_seq, previous_digest_signature) = match previous {
            Some(p) => (
                p.digest_seq.saturating_add(1),
                p.to_seq.saturating_add(1),
                Some(p.signature.clone()),
            ),
            None => (1, 1, None),
        };
        Self {
            digest_seq,
            region: region.to_owned(),
            from_seq,
            to_seq: head.last_seq(),
            head_hash: head.head_hash_hex(),
            previous_digest_signature,
            signed_at,
        }
    }
}

impl DigestRecord {
    /// The bytes the signature covers (see the module doc).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(DIGEST_SIGNATURE_LABEL);
        out.extend_from_slice(&self.digest_seq.to_be_bytes());
        put_str(&mut out, &self.region);
        out.extend_from_slice(&self.from_seq.to_be_bytes());
        out.extend_from_slice(&self.to_seq.to_be_bytes());
        put_str(&mut out, &self.head_hash);
        match &self.previous_digest_signature {
            None => out.push(0),
            Some(sig) => {
                out.push(1);
                put_str(&mut out, sig);
            }
        }
        out.extend_from_slice(&self.signed_at.to_be_bytes());
        put_str(&mut out, &self.key_id);
        out
    }

    /// Whether this digest directly follows `previous` in the digest chain: next digest_seq,
    /// next record range, and `previous_digest_signature` naming `previous`'s signature.
    /// (The state machine can use this to refuse a stale digest proposal.)
    pub fn follows(&self, previous: &DigestRecord) -> bool {
        previous.digest_seq.checked_add(1) == Some(self.digest_seq)
            && previous.to_seq.checked_add(1) == Some(self.from_seq)
            && self.previous_digest_signature.as_deref() == Some(previous.signature.as_str())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Signs `body` with `key`. Deterministic (Ed25519), so signing twice gives the same record.
pub fn sign_digest(key: &AuditSigningKey, body: DigestBody) -> DigestRecord {
    let mut digest = DigestRecord {
        digest_seq: body.digest_seq,
        region: body.region,
        from_seq: body.from_seq,
        to_seq: body.to_seq,
        head_hash: body.head_hash,
        previous_digest_signature: body.previous_digest_signature,
        signed_at: body.signed_at,
        key_id: key.key_id(),
        signature: String::new(),
    };
    let signature = key.signing_key().sign(&digest.canonical_bytes());
    digest.signature = B64.encode(signature.to_bytes());
    digest
}

/// Checks `digest`'s signature with the key it names, which must be in `keys` and valid at
/// `signed_at`. Says nothing about the chain it covers (that is [`super::verify`]'s job).
/// The failure carries `digest_seq` and one of `UnknownKey`, `KeyNotValidAt`, `BadSignature`.
pub fn verify_digest(digest: &DigestRecord, keys: &[AuditPublicKey]) -> Result<(), Failure> {
    let fail = |kind, message: String| Failure {
        seq: None,
        digest_seq: Some(digest.digest_seq),
        kind,
        message,
    };
    let Some(key) = keys.iter().find(|k| k.key_id == digest.key_id) else {
        return Err(fail(
            FailureKind::UnknownKey,
            format!(
                "digest {} is signed by audit key '{}', which is not among the {} public keys given",
                digest.digest_seq,
                truncate(&digest.key_id),
                keys.len()
            ),
        ));
    };
    if !key.valid_at(digest.signed_at) {
        return Err(fail(
            FailureKind::KeyNotValidAt,
            format!(
                "digest {} was signed at {} by audit key {}, valid from {} to {}",
                digest.digest_seq,
                digest.signed_at,
                key.key_id,
                key.valid_from,
                key.valid_to
                    .map_or_else(|| "(no end)".to_owned(), |t| t.to_string())
            ),
        ));
    }
    let verifying = key
        .verifying_key()
        .map_err(|e| fail(FailureKind::UnknownKey, e.to_string()))?;
    let signature = B64
        .decode(digest.signature.as_bytes())
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| {
            fail(
                FailureKind::BadSignature,
                format!(
                    "digest {}: signature is not 64 bytes of base64",
                    digest.digest_seq
                ),
            )
        })?;
    verifying
        .verify(&digest.canonical_bytes(), &signature)
        .map_err(|_| {
            fail(
                FailureKind::BadSignature,
                format!(
                    "digest {}: the signature does not match its contents under audit key {}",
                    digest.digest_seq, key.key_id
                ),
            )
        })
}

/// Attacker-controlled text in messages is cut short.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A region's Ed25519 audit signing key (32-byte seed). Secret: zeroized on drop, no
/// `Debug`/`Display`, bytes only through [`AuditSigningKey::expose_secret`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AuditSigningKey {
    seed: [u8; 32],
}

impl AuditSigningKey {
    /// A fresh key from the OS RNG.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Self { seed }
    }

    /// The key from its 32-byte seed (as read from the audit key file).
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self { seed: *seed }
    }

    /// The 32-byte seed.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.seed
    }

    /// Its key id ([`AuditPublicKey::key_id`]).
    pub fn key_id(&self) -> String {
        key_id_of(&self.signing_key().verifying_key())
    }

    /// Its public half, valid from `valid_from` until `valid_to` (exclusive; `None` = no end
    /// yet). Validity is not a property of the key bytes, so the caller states it.
    pub fn public_key(
        &self,
        valid_from: EpochMillis,
        valid_to: Option<EpochMillis>,
    ) -> AuditPublicKey {
        let verifying = self.signing_key().verifying_key();
        AuditPublicKey {
            key_id: key_id_of(&verifying),
            public_key: B64.encode(verifying.as_bytes()),
            valid_from,
            valid_to,
        }
    }

    // ed25519-dalek's SigningKey zeroizes itself on drop, so the expanded key is short-lived.
    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.seed)
    }
}

impl PartialEq for AuditSigningKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.seed.ct_eq(&other.seed))
    }
}
impl Eq for AuditSigningKey {}

/// A published audit public key with the period it may sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPublicKey {
    /// First 16 hex digits of SHA-256 of the 32 public key bytes.
    pub key_id: String,
    /// Base64 of the 32 public key bytes.
    pub public_key: String,
    /// Start of validity (epoch millis, inclusive).
    pub valid_from: EpochMillis,
    /// End of validity (epoch millis, exclusive); `None` while the key is current.
    pub valid_to: Option<EpochMillis>,
}

impl AuditPublicKey {
    /// Whether a digest signed at `at` may use this key: `valid_from <= at < valid_to`.
    pub fn valid_at(&self, at: EpochMillis) -> bool {
        self.valid_from <= at && self.valid_to.is_none_or(|to| at < to)
    }

    /// The Ed25519 key, checking that `public_key` is 32 bytes of base64, a valid point, and
    /// that `key_id` is really its id.
    pub fn verifying_key(&self) -> Result<VerifyingKey, AuditError> {
        let bytes: [u8; 32] = B64
            .decode(self.public_key.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                AuditError::PublicKey(format!(
                    "audit key {}: public_key must be 32 bytes of base64",
                    truncate(&self.key_id)
                ))
            })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            AuditError::PublicKey(format!(
                "audit key {}: not a valid Ed25519 public key",
                truncate(&self.key_id)
            ))
        })?;
        if key_id_of(&key) != self.key_id {
            return Err(AuditError::PublicKey(format!(
                "audit key {}: key_id does not match the public key (expected {})",
                truncate(&self.key_id),
                key_id_of(&key)
            )));
        }
        Ok(key)
    }
}

fn key_id_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}
