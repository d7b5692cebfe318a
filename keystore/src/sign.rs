//! Sign and Verify for every signing key spec, with AWS's `MessageType` rules.
//!
//! # Layout
//!
//! ```text
//!  sign(key, usage, alg, type, msg)                 verify(key, usage, alg, type, msg, sig)
//!       |                                                |   (public half of key)
//!       |   ensure_usage -> prepare(spec, alg, type, msg) <- verify_with_public_key(spec, spki, ..)
//!       v                         |
//!  Prepared::Digest  --> RSA PKCS#1 v1.5 / PSS, ECDSA (DER)       aws-lc-rs
//!  Prepared::Message --> Ed25519 (pure), ML-DSA (pure, empty ctx) ed25519-dalek / aws-lc-rs
//!  Prepared::Ed25519Ph --> Ed25519ph (empty ctx)                  ed25519-dalek
//! ```
//!
//! `MessageType` rules (as AWS applies them): `RAW` is hashed here with the algorithm's
//! hash; `DIGEST` must be exactly the hash length of the algorithm; pure Ed25519 takes only
//! `RAW`, Ed25519ph only a 64-byte SHA-512 `DIGEST`; ML-DSA takes `RAW` (and `EXTERNAL_MU`,
//! which aws-lc-rs does not expose yet, so it is refused). Messages are 1..=4096 bytes.
//!
//! A signature that does not verify — including one that is not even well-formed — is
//! `Ok(false)`, never an error: the front turns it into `KMSInvalidSignatureException`.
//! Errors are reserved for requests AWS rejects before verifying (wrong usage, algorithm,
//! message type or digest length).

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rsa::{PublicEncryptingKey, RsaParameters};
use aws_lc_rs::signature::{
    EcdsaVerificationAlgorithm, ParsedPublicKey, PqdsaVerificationAlgorithm, RsaEncoding,
    ECDSA_P256K1_SHA256_ASN1, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ECDSA_P521_SHA512_ASN1, ML_DSA_44, ML_DSA_65, ML_DSA_87, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512, RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512,
    RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512,
};
use ed25519_dalek::Signer;
use sha2::digest::{consts::U64, FixedOutput, HashMarker, Output, OutputSizeUser, Update};

use crate::error::DomainError;
use crate::material::{ed25519_public_from_spki, SecretKeyMaterial};
use crate::spec::{
    check_message_len, ensure_usage, unsupported_algorithm, AwsKeySpec, AwsKeyUsage, MessageType,
    SigningAlgorithm,
};

use SigningAlgorithm as A;

/// What the primitive consumes after the `MessageType` rules were applied.
enum Prepared<'a> {
    /// A hash of the message with the algorithm's hash function.
    Digest(Digest),
    /// The message itself (pure Ed25519, ML-DSA).
    Message(&'a [u8]),
    /// SHA-512(message) for Ed25519ph.
    Ed25519Ph([u8; 64]),
}

fn hash_alg(alg: SigningAlgorithm) -> Option<&'static digest::Algorithm> {
    match alg {
        A::RsassaPssSha256 | A::RsassaPkcs1V15Sha256 | A::EcdsaSha256 => Some(&digest::SHA256),
        A::RsassaPssSha384 | A::RsassaPkcs1V15Sha384 | A::EcdsaSha384 => Some(&digest::SHA384),
        A::RsassaPssSha512 | A::RsassaPkcs1V15Sha512 | A::EcdsaSha512 => Some(&digest::SHA512),
        A::Ed25519PhSha512 | A::Ed25519Sha512 | A::MlDsaShake256 => None,
    }
}

fn rsa_signing_encoding(alg: SigningAlgorithm) -> Option<&'static dyn RsaEncoding> {
    Some(match alg {
        A::RsassaPssSha256 => &RSA_PSS_SHA256,
        A::RsassaPssSha384 => &RSA_PSS_SHA384,
        A::RsassaPssSha512 => &RSA_PSS_SHA512,
        A::RsassaPkcs1V15Sha256 => &RSA_PKCS1_SHA256,
        A::RsassaPkcs1V15Sha384 => &RSA_PKCS1_SHA384,
        A::RsassaPkcs1V15Sha512 => &RSA_PKCS1_SHA512,
        _ => return None,
    })
}

/// PSS verification uses salt length = hash length, which is what AWS signs with.
fn rsa_verification_params(alg: SigningAlgorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        A::RsassaPssSha256 => &RSA_PSS_2048_8192_SHA256,
        A::RsassaPssSha384 => &RSA_PSS_2048_8192_SHA384,
        A::RsassaPssSha512 => &RSA_PSS_2048_8192_SHA512,
        A::RsassaPkcs1V15Sha256 => &RSA_PKCS1_2048_8192_SHA256,
        A::RsassaPkcs1V15Sha384 => &RSA_PKCS1_2048_8192_SHA384,
        A::RsassaPkcs1V15Sha512 => &RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

fn ecdsa_verification_alg(spec: AwsKeySpec) -> Option<&'static EcdsaVerificationAlgorithm> {
    Some(match spec {
        AwsKeySpec::EccNistP256 => &ECDSA_P256_SHA256_ASN1,
        AwsKeySpec::EccNistP384 => &ECDSA_P384_SHA384_ASN1,
        AwsKeySpec::EccNistP521 => &ECDSA_P521_SHA512_ASN1,
        AwsKeySpec::EccSecgP256k1 => &ECDSA_P256K1_SHA256_ASN1,
        _ => return None,
    })
}

fn ml_dsa_verification_alg(spec: AwsKeySpec) -> Option<&'static PqdsaVerificationAlgorithm> {
    Some(match spec {
        AwsKeySpec::MlDsa44 => &ML_DSA_44,
        AwsKeySpec::MlDsa65 => &ML_DSA_65,
        AwsKeySpec::MlDsa87 => &ML_DSA_87,
        _ => return None,
    })
}

fn requires(alg: SigningAlgorithm, mt: MessageType) -> DomainError {
    DomainError::Validation(format!(
        "The {alg} signing algorithm requires MessageType {mt}"
    ))
}

/// Applies the algorithm/spec and `MessageType` rules; shared by sign and verify so both
/// reject exactly the same requests.
fn prepare(
    spec: AwsKeySpec,
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Prepared<'_>, DomainError> {
    if !spec
        .signing_algorithms(AwsKeyUsage::SignVerify)
        .contains(&alg)
    {
        return Err(unsupported_algorithm(alg.as_str(), spec));
    }
    check_message_len(message)?;
    let wrong_digest_len =
        || DomainError::Validation(format!("Digest is invalid length for algorithm {alg}."));
    match alg {
        A::Ed25519Sha512 => match message_type {
            MessageType::Raw => Ok(Prepared::Message(message)),
            _ => Err(requires(alg, MessageType::Raw)),
        },
        A::Ed25519PhSha512 => match message_type {
            MessageType::Digest => {
                let d: [u8; 64] = message.try_into().map_err(|_| wrong_digest_len())?;
                Ok(Prepared::Ed25519Ph(d))
            }
            _ => Err(requires(alg, MessageType::Digest)),
        },
        A::MlDsaShake256 => match message_type {
            MessageType::Raw => Ok(Prepared::Message(message)),
            MessageType::ExternalMu => Err(DomainError::Validation(
                "MessageType EXTERNAL_MU is not supported by this server; use RAW".into(),
            )),
            MessageType::Digest => Err(DomainError::Validation(format!(
                "The {alg} signing algorithm does not support MessageType DIGEST; use RAW or \
                 EXTERNAL_MU"
            ))),
        },
        _ => {
            let h = hash_alg(alg).ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
            match message_type {
                MessageType::Raw => Ok(Prepared::Digest(digest::digest(h, message))),
                MessageType::Digest => Digest::import_less_safe(message, h)
                    .map(Prepared::Digest)
                    .map_err(|_| wrong_digest_len()),
                MessageType::ExternalMu => Err(DomainError::Validation(format!(
                    "MessageType EXTERNAL_MU is only valid with ML_DSA_SHAKE_256, not {alg}"
                ))),
            }
        }
    }
}

fn sign_failed(alg: SigningAlgorithm) -> DomainError {
    DomainError::Internal(format!("{alg} signing failed in the crypto library"))
}

/// Sign: the signature AWS returns (RSA: modulus-sized; ECDSA: DER `Ecdsa-Sig-Value`;
/// Ed25519: 64 bytes; ML-DSA: FIPS 204 encoding).
///
/// Errors: [`DomainError::InvalidKeyUsage`] if `usage` is not `SIGN_VERIFY` or `alg` is not
/// one of the spec's signing algorithms; [`DomainError::Validation`] for a message outside
/// 1..=4096 bytes, a `MessageType` the algorithm does not take, or a digest of the wrong
/// length.
pub fn sign(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Vec<u8>, DomainError> {
    let spec = key.spec();
    ensure_usage(spec, usage, AwsKeyUsage::SignVerify)?;
    match prepare(spec, alg, message_type, message)? {
        Prepared::Digest(d) => {
            if let Some(encoding) = rsa_signing_encoding(alg) {
                let kp = key.rsa_key_pair()?;
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign_digest(encoding, &d, &mut sig)
                    .map_err(|_| sign_failed(alg))?;
                Ok(sig)
            } else {
                let kp = key.ecdsa_key_pair()?;
                let sig = kp.sign_digest(&d).map_err(|_| sign_failed(alg))?;
                Ok(sig.as_ref().to_vec())
            }
        }
        Prepared::Message(m) => {
            if alg == A::Ed25519Sha512 {
                let sk = key.ed25519_signing_key()?;
                Ok(sk.sign(m).to_bytes().to_vec())
            } else {
                let kp = key.ml_dsa_key_pair()?;
                let mut sig = vec![0u8; kp.algorithm().signature_len()];
                let n = kp.sign(m, &mut sig).map_err(|_| sign_failed(alg))?;
                sig.truncate(n);
                Ok(sig)
            }
        }
        Prepared::Ed25519Ph(d) => {
            let sk = key.ed25519_signing_key()?;
            let sig = sk
                .sign_prehashed(PrehashedSha512(d), None)
                .map_err(|_| sign_failed(alg))?;
            Ok(sig.to_bytes().to_vec())
        }
    }
}

/// Verify with the key's own public half. `Ok(true)` iff `signature` is valid; `Ok(false)`
/// for any invalid or malformed signature (→ `KMSInvalidSignatureException`). Errors as
/// for [`sign`].
pub fn verify(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, DomainError> {
    ensure_usage(key.spec(), usage, AwsKeyUsage::SignVerify)?;
    // Validate the request before spending time on the public key.
    prepare(key.spec(), alg, message_type, message)?;
    let spki = key.public_key_der()?;
    verify_with_public_key(key.spec(), &spki, alg, message_type, message, signature)
}

fn bad_public_key(spec: AwsKeySpec) -> DomainError {
    DomainError::Validation(format!(
        "The public key is not a valid DER SubjectPublicKeyInfo for KeySpec {spec}"
    ))
}

/// Verify against a public key given as DER `SubjectPublicKeyInfo` of `spec` (what
/// GetPublicKey returned): the offline check a client would make, and what the test vectors
/// drive. Same rules and results as [`verify`]; additionally [`DomainError::Validation`] if
/// `public_key_der` is not an SPKI of that spec (wrong curve, RSA size, or garbage).
pub fn verify_with_public_key(
    spec: AwsKeySpec,
    public_key_der: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, DomainError> {
    let prepared = prepare(spec, alg, message_type, message)?;
    // aws-lc-rs would also take a raw point or a PKCS#1 key; GetPublicKey's format is SPKI,
    // which always starts with a SEQUENCE, so anything else is refused up front.
    if public_key_der.first() != Some(&0x30) {
        return Err(bad_public_key(spec));
    }
    match prepared {
        Prepared::Digest(d) => {
            let parsed = if let Some(params) = rsa_verification_params(alg) {
                let bits = PublicEncryptingKey::from_der(public_key_der)
                    .map_err(|_| bad_public_key(spec))?
                    .key_size_bits();
                if Some(bits) != spec.rsa_bits() {
                    return Err(bad_public_key(spec));
                }
                ParsedPublicKey::new(params, public_key_der)
            } else {
                let ecdsa = ecdsa_verification_alg(spec)
                    .ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
                ParsedPublicKey::new(ecdsa, public_key_der)
            }
            .map_err(|_| bad_public_key(spec))?;
            Ok(parsed.verify_digest_sig(&d, signature).is_ok())
        }
        Prepared::Message(m) => {
            if alg == A::Ed25519Sha512 {
                let vk = ed25519_verifying_key(spec, public_key_der)?;
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return Ok(false);
                };
                Ok(vk.verify_strict(m, &sig).is_ok())
            } else {
                let alg = ml_dsa_verification_alg(spec)
                    .ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
                let parsed =
                    ParsedPublicKey::new(alg, public_key_der).map_err(|_| bad_public_key(spec))?;
                Ok(parsed.verify_sig(m, signature).is_ok())
            }
        }
        Prepared::Ed25519Ph(d) => {
            let vk = ed25519_verifying_key(spec, public_key_der)?;
            let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                return Ok(false);
            };
            Ok(vk.verify_prehashed(PrehashedSha512(d), None, &sig).is_ok())
        }
    }
}

fn ed25519_verifying_key(
    spec: AwsKeySpec,
    der: &[u8],
) -> Result<ed25519_dalek::VerifyingKey, DomainError> {
    let raw = ed25519_public_from_spki(der).ok_or_else(|| bad_public_key(spec))?;
    ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| bad_public_key(spec))
}

/// A "hash" whose output is a SHA-512 digest the caller already computed (MessageType
/// DIGEST). ed25519-dalek's Ed25519ph API takes a hash *state* and finalizes it itself;
/// this hands it the given digest instead. It ignores `update`, and dalek never calls it.
#[derive(Clone)]
struct PrehashedSha512([u8; 64]);

impl Default for PrehashedSha512 {
    fn default() -> Self {
        Self([0; 64])
    }
}
impl HashMarker for PrehashedSha512 {}
impl OutputSizeUser for PrehashedSha512 {
    type OutputSize = U64;
}
impl Update for PrehashedSha512 {
    fn update(&mut self, _data: &[u8]) {}
}
impl FixedOutput for PrehashedSha512 {
    fn finalize_into(self, out: &mut Output<Self>) {
        out.copy_from_slice(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha512};

    /// RFC 8032 §7.3, TEST abc (Ed25519ph): the prehash path must be the RFC's, not a
    /// pure-Ed25519 signature over the digest.
    #[test]
    fn ed25519ph_matches_rfc8032_test_abc() {
        let seed = hex::decode("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
            .unwrap();
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&seed);
        let key = SecretKeyMaterial::from_bytes(AwsKeySpec::EccNistEdwards25519, &der).unwrap();
        let digest = Sha512::digest(b"abc");
        let sig = sign(
            &key,
            AwsKeyUsage::SignVerify,
            A::Ed25519PhSha512,
            MessageType::Digest,
            &digest,
        )
        .unwrap();
        assert_eq!(
            hex::encode(sig),
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
             31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
        );
    }
}
