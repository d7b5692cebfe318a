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
//!  Prepared::ExternalMu --> ML-DSA from a caller's 64-byte mu      ml-dsa (RustCrypto)
//! ```
//!
//! `MessageType` rules (as AWS applies them): `RAW` is hashed here with the algorithm's
//! hash; `DIGEST` must be exactly the hash length of the algorithm; pure Ed25519 takes only
//! `RAW`, Ed25519ph only a 64-byte SHA-512 `DIGEST`; ML-DSA takes `RAW` or `EXTERNAL_MU`
//! (exactly 64 bytes: the FIPS 204 message representative
//! mu = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64) of pure ML-DSA with an empty
//! context), never `DIGEST`; `EXTERNAL_MU` is refused for every other algorithm. Messages
//! are 1..=4096 bytes.
//!
//! # EXTERNAL_MU
//!
//! aws-lc-rs has no API that signs or verifies from mu, so that path alone uses the
//! RustCrypto `ml-dsa` crate: its signing key is expanded from the same stored 32-byte seed
//! xi (FIPS 204 `KeyGen_internal`, so both libraries agree on the key pair — a unit test
//! checks it), and signing is hedged (fresh 32-byte `rnd` from the OS), like AWS and like
//! the `RAW` path. The signature is an ordinary ML-DSA signature of M: anyone can verify it
//! with `RAW` semantics, and an `EXTERNAL_MU` Verify accepts a `RAW` signature of the same M.
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
    /// The caller's FIPS 204 mu for ML-DSA (`EXTERNAL_MU`).
    ExternalMu([u8; 64]),
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
            MessageType::ExternalMu => {
                let mu: [u8; 64] = message.try_into().map_err(|_| wrong_digest_len())?;
                Ok(Prepared::ExternalMu(mu))
            }
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
        Prepared::ExternalMu(mu) => {
            let seed = key.expose_secret();
            let sig = match spec {
                AwsKeySpec::MlDsa44 => sign_mu::<ml_dsa::MlDsa44>(seed, mu),
                AwsKeySpec::MlDsa65 => sign_mu::<ml_dsa::MlDsa65>(seed, mu),
                AwsKeySpec::MlDsa87 => sign_mu::<ml_dsa::MlDsa87>(seed, mu),
                _ => return Err(unsupported_algorithm(alg.as_str(), spec)),
            };
            sig.ok_or_else(|| sign_failed(alg))
        }
    }
}

/// Hedged ML-DSA.Sign from a pre-computed mu (FIPS 204 Algorithm 2 with external mu),
/// with the signing key expanded from the seed xi.
/// `None` if the seed is not 32 bytes or signing fails.
fn sign_mu<P: ml_dsa::MlDsaParams>(seed: &[u8], mu: [u8; 64]) -> Option<Vec<u8>> {
    use ml_dsa::common::array::Array;
    use ml_dsa::common::getrandom::{rand_core::UnwrapErr, SysRng};

    let mut xi = ml_dsa::Seed::try_from(seed).ok()?;
    let sk = ml_dsa::ExpandedSigningKey::<P>::from_seed(&xi);
    zeroize::Zeroize::zeroize(&mut xi);
    let sig = sk
        .sign_mu_randomized(&Array::from(mu), &mut UnwrapErr(SysRng))
        .ok()?;
    Some(sig.encode().to_vec())
}

/// ML-DSA.Verify from a pre-computed mu, against the raw FIPS 204 public key.
fn verify_mu<P: ml_dsa::MlDsaParams>(
    raw_public_key: &[u8],
    mu: [u8; 64],
    signature: &[u8],
) -> bool {
    use ml_dsa::common::array::Array;

    let Ok(enc) = ml_dsa::EncodedVerifyingKey::<P>::try_from(raw_public_key) else {
        return false;
    };
    let vk = ml_dsa::VerifyingKey::<P>::decode(&enc);
    let Ok(sig) = ml_dsa::Signature::<P>::try_from(signature) else {
        return false;
    };
    vk.verify_mu(&Array::from(mu), &sig)
}

/// Bytes of the raw ML-DSA public key (`pk` of FIPS 204) of `spec`.
fn ml_dsa_public_key_len(spec: AwsKeySpec) -> Option<usize> {
    Some(match spec {
        AwsKeySpec::MlDsa44 => 1312,
        AwsKeySpec::MlDsa65 => 1952,
        AwsKeySpec::MlDsa87 => 2592,
        _ => return None,
    })
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
        Prepared::ExternalMu(mu) => {
            // aws-lc-rs validates the SPKI (OID of this parameter set, key length); its
            // BIT STRING, the last field, then holds exactly the raw public key.
            let vk_alg = ml_dsa_verification_alg(spec)
                .ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
            let pk_len = ml_dsa_public_key_len(spec)
                .ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
            ParsedPublicKey::new(vk_alg, public_key_der).map_err(|_| bad_public_key(spec))?;
            let raw = public_key_der
                .len()
                .checked_sub(pk_len)
                .map(|start| &public_key_der[start..])
                .ok_or_else(|| bad_public_key(spec))?;
            Ok(match spec {
                AwsKeySpec::MlDsa44 => verify_mu::<ml_dsa::MlDsa44>(raw, mu, signature),
                AwsKeySpec::MlDsa65 => verify_mu::<ml_dsa::MlDsa65>(raw, mu, signature),
                AwsKeySpec::MlDsa87 => verify_mu::<ml_dsa::MlDsa87>(raw, mu, signature),
                _ => return Err(unsupported_algorithm(alg.as_str(), spec)),
            })
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
    use aws_lc_rs::signature::KeyPair as _;
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

    const ML_DSA_SPECS: [AwsKeySpec; 3] = [
        AwsKeySpec::MlDsa44,
        AwsKeySpec::MlDsa65,
        AwsKeySpec::MlDsa87,
    ];

    fn ml_dsa_key(spec: AwsKeySpec, seed_byte: u8) -> SecretKeyMaterial {
        SecretKeyMaterial::from_bytes(spec, &[seed_byte; 32]).unwrap()
    }

    /// The raw FIPS 204 public key aws-lc-rs derives from the key's seed.
    fn aws_lc_raw_public_key(key: &SecretKeyMaterial) -> Vec<u8> {
        key.ml_dsa_key_pair()
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec()
    }

    /// mu = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64), computed by the `ml-dsa`
    /// crate from a public key taken from aws-lc-rs (not from the `ml-dsa` signing key).
    fn mu_of<P: ml_dsa::MlDsaParams>(raw_pk: &[u8], message: &[u8]) -> [u8; 64] {
        use ml_dsa::signature::digest::Update as _;
        let enc = ml_dsa::EncodedVerifyingKey::<P>::try_from(raw_pk).unwrap();
        let vk = ml_dsa::VerifyingKey::<P>::decode(&enc);
        let mu = vk
            .compute_mu(
                |h| {
                    h.update(message);
                    Ok(())
                },
                &[],
            )
            .unwrap();
        mu.into()
    }

    fn mu_for(key: &SecretKeyMaterial, message: &[u8]) -> [u8; 64] {
        let pk = aws_lc_raw_public_key(key);
        match key.spec() {
            AwsKeySpec::MlDsa44 => mu_of::<ml_dsa::MlDsa44>(&pk, message),
            AwsKeySpec::MlDsa65 => mu_of::<ml_dsa::MlDsa65>(&pk, message),
            AwsKeySpec::MlDsa87 => mu_of::<ml_dsa::MlDsa87>(&pk, message),
            other => panic!("not ML-DSA: {other}"),
        }
    }

    fn ml_dsa_crate_public_key<P: ml_dsa::MlDsaParams>(seed: &[u8]) -> Vec<u8> {
        let sk = ml_dsa::SigningKey::<P>::from_seed(&ml_dsa::Seed::try_from(seed).unwrap());
        sk.expanded_key().verifying_key().encode().to_vec()
    }

    /// Both libraries run FIPS 204 KeyGen_internal(xi) on the stored seed: same key pair.
    #[test]
    fn ml_dsa_crate_and_aws_lc_derive_the_same_public_key_from_a_seed() {
        for spec in ML_DSA_SPECS {
            for seed_byte in [0u8, 7, 0xff] {
                let key = ml_dsa_key(spec, seed_byte);
                let seed = key.expose_secret();
                let ours = match spec {
                    AwsKeySpec::MlDsa44 => ml_dsa_crate_public_key::<ml_dsa::MlDsa44>(seed),
                    AwsKeySpec::MlDsa65 => ml_dsa_crate_public_key::<ml_dsa::MlDsa65>(seed),
                    _ => ml_dsa_crate_public_key::<ml_dsa::MlDsa87>(seed),
                };
                assert_eq!(ours, aws_lc_raw_public_key(&key), "{spec} seed {seed_byte}");
                // And the SPKI GetPublicKey returns ends with exactly that raw key.
                assert!(key.public_key_der().unwrap().ends_with(&ours));
            }
        }
    }

    #[test]
    fn external_mu_sign_then_verify_and_interoperates_with_raw() {
        let message = b"external mu: the caller hashed the message";
        for spec in ML_DSA_SPECS {
            let key = ml_dsa_key(spec, 42);
            let mu = mu_for(&key, message);
            let sig = sign(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::ExternalMu,
                &mu,
            )
            .unwrap();
            let verify_as = |mt: MessageType, msg: &[u8], sig: &[u8]| {
                verify(
                    &key,
                    AwsKeyUsage::SignVerify,
                    A::MlDsaShake256,
                    mt,
                    msg,
                    sig,
                )
                .unwrap()
            };
            // verify_mu (ml-dsa) accepts it ...
            assert!(verify_as(MessageType::ExternalMu, &mu, &sig), "{spec}");
            // ... and it is an ordinary ML-DSA signature of M for aws-lc-rs.
            assert!(verify_as(MessageType::Raw, message, &sig), "{spec}");
            // Hedged: two signatures of the same mu differ.
            let sig2 = sign(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::ExternalMu,
                &mu,
            )
            .unwrap();
            assert_ne!(sig, sig2, "{spec}: EXTERNAL_MU signing must be randomized");
            // A RAW signature (aws-lc-rs) verifies through EXTERNAL_MU (ml-dsa).
            let raw_sig = sign(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::Raw,
                message,
            )
            .unwrap();
            assert!(verify_as(MessageType::ExternalMu, &mu, &raw_sig), "{spec}");
            // Tampering: signature bit, mu bit, other message, truncated signature.
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!verify_as(MessageType::ExternalMu, &mu, &bad), "{spec}");
            let mut other_mu = mu;
            other_mu[0] ^= 1;
            assert!(
                !verify_as(MessageType::ExternalMu, &other_mu, &sig),
                "{spec}"
            );
            assert!(
                !verify_as(MessageType::Raw, b"another message", &sig),
                "{spec}"
            );
            assert!(!verify_as(
                MessageType::ExternalMu,
                &mu,
                &sig[..sig.len() - 1]
            ));
            // Offline verification against the SPKI GetPublicKey returns.
            let spki = key.public_key_der().unwrap();
            assert!(verify_with_public_key(
                spec,
                &spki,
                A::MlDsaShake256,
                MessageType::ExternalMu,
                &mu,
                &sig
            )
            .unwrap());
        }
    }

    #[test]
    fn external_mu_must_be_64_bytes_and_ml_dsa_only() {
        let key = ml_dsa_key(AwsKeySpec::MlDsa65, 1);
        for len in [1usize, 32, 63, 65, 128] {
            let mu = vec![0x5a; len];
            let err = sign(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::ExternalMu,
                &mu,
            )
            .unwrap_err();
            assert!(matches!(err, DomainError::Validation(_)), "{len}: {err:?}");
            let err = verify(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::ExternalMu,
                &mu,
                &[0; 3309],
            )
            .unwrap_err();
            assert!(matches!(err, DomainError::Validation(_)), "{len}: {err:?}");
        }
        // DIGEST stays refused for ML-DSA, EXTERNAL_MU for everything else.
        assert!(matches!(
            sign(
                &key,
                AwsKeyUsage::SignVerify,
                A::MlDsaShake256,
                MessageType::Digest,
                &[0; 64]
            ),
            Err(DomainError::Validation(_))
        ));
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&[9; 32]);
        let ed = SecretKeyMaterial::from_bytes(AwsKeySpec::EccNistEdwards25519, &der).unwrap();
        assert!(matches!(
            sign(
                &ed,
                AwsKeyUsage::SignVerify,
                A::Ed25519Sha512,
                MessageType::ExternalMu,
                &[0; 64]
            ),
            Err(DomainError::Validation(_))
        ));
    }
}
