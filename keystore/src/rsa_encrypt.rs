//! Encrypt / Decrypt with RSA keys: RSAES-OAEP with SHA-1 or SHA-256 (same hash for MGF1,
//! empty label), as AWS does it, with AWS's per-size plaintext limits.
//!
//! # Layout
//!
//! ```text
//!  encrypt(key, usage, alg, pt) -> public half -> encrypt_with_public_key(spec, spki, alg, pt)
//!  decrypt(key, usage, alg, ct) -> PKCS#8 -> aws-lc-rs OAEP decrypt -> Secret
//! ```
//!
//! Limits are the OAEP maximum `k - 2·hLen - 2` for a `k`-byte modulus, which is exactly
//! AWS's table: RSA_2048 214 (SHA-1) / 190 (SHA-256), RSA_3072 342 / 318, RSA_4096 470 / 446.
//!
//! Every decryption failure — wrong length, wrong key, bad padding — is the same
//! [`DomainError::InvalidCiphertext`], so nothing distinguishes padding errors (Manger's
//! attack). The RustCrypto `rsa` crate is deliberately not used (Marvin timing advisory).

use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use zeroize::Zeroizing;

use crate::crypto::Secret;
use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::spec::{
    ensure_usage, unsupported_algorithm, AwsKeySpec, AwsKeyUsage, EncryptionAlgorithm,
};

fn oaep(spec: AwsKeySpec, alg: EncryptionAlgorithm) -> Result<&'static OaepAlgorithm, DomainError> {
    if spec.rsa_bits().is_none() {
        return Err(unsupported_algorithm(alg.as_str(), spec));
    }
    match alg {
        EncryptionAlgorithm::RsaesOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        EncryptionAlgorithm::SymmetricDefault => Err(unsupported_algorithm(alg.as_str(), spec)),
    }
}

/// Longest plaintext `alg` can encrypt under a key of `spec` (`None` if the pair is not an
/// RSA spec with an OAEP algorithm).
pub fn max_plaintext_len(spec: AwsKeySpec, alg: EncryptionAlgorithm) -> Option<usize> {
    let k = spec.rsa_bits()? / 8;
    match alg {
        EncryptionAlgorithm::RsaesOaepSha1 => Some(k - 2 * 20 - 2),
        EncryptionAlgorithm::RsaesOaepSha256 => Some(k - 2 * 32 - 2),
        EncryptionAlgorithm::SymmetricDefault => None,
    }
}

/// Encrypt with the key's public half. Errors: [`DomainError::InvalidKeyUsage`] if `usage`
/// is not `ENCRYPT_DECRYPT` or `alg` is not an OAEP algorithm of an RSA spec;
/// [`DomainError::Validation`] for an empty plaintext or one above the limit.
pub fn encrypt(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, DomainError> {
    ensure_usage(key.spec(), usage, AwsKeyUsage::EncryptDecrypt)?;
    oaep(key.spec(), alg)?;
    let spki = key.public_key_der()?;
    encrypt_with_public_key(key.spec(), &spki, alg, plaintext)
}

/// Encrypt to an RSA public key given as DER `SubjectPublicKeyInfo` of `spec` (what a
/// client does offline with GetPublicKey's output). [`DomainError::Validation`] also if the
/// key is not an RSA SPKI of that size.
pub fn encrypt_with_public_key(
    spec: AwsKeySpec,
    public_key_der: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, DomainError> {
    let oaep_alg = oaep(spec, alg)?;
    let max = max_plaintext_len(spec, alg).unwrap_or(0);
    if plaintext.is_empty() || plaintext.len() > max {
        return Err(DomainError::Validation(format!(
            "Plaintext must be 1 to {max} bytes for {alg} with a {spec} key, got {} bytes",
            plaintext.len()
        )));
    }
    let bad_key = || {
        DomainError::Validation(format!(
            "The public key is not a DER SubjectPublicKeyInfo of a {spec} key"
        ))
    };
    if public_key_der.first() != Some(&0x30) {
        return Err(bad_key());
    }
    let public = PublicEncryptingKey::from_der(public_key_der).map_err(|_| bad_key())?;
    if Some(public.key_size_bits()) != spec.rsa_bits() {
        return Err(bad_key());
    }
    let oaep_key = OaepPublicEncryptingKey::new(public).map_err(|_| bad_key())?;
    let mut out = vec![0u8; oaep_key.ciphertext_size()];
    let n = oaep_key
        .encrypt(oaep_alg, plaintext, &mut out, None)
        .map_err(|_| DomainError::Internal(format!("{alg} encryption failed")))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Decrypt an OAEP ciphertext. Any failure of the ciphertext itself is
/// [`DomainError::InvalidCiphertext`]; usage/algorithm errors as for [`encrypt`].
pub fn decrypt(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Secret, DomainError> {
    ensure_usage(key.spec(), usage, AwsKeyUsage::EncryptDecrypt)?;
    let oaep_alg = oaep(key.spec(), alg)?;
    // The same PKCS#8 serves signing (rsa_key_pair) and decryption; this also checks size.
    key.rsa_key_pair()?;
    let private = PrivateDecryptingKey::from_pkcs8(key.expose_secret())
        .map_err(|_| DomainError::Internal("RSA key material does not parse".into()))?;
    let oaep_key = OaepPrivateDecryptingKey::new(private)
        .map_err(|_| DomainError::Internal("RSA key material is not usable for OAEP".into()))?;
    if ciphertext.len() != oaep_key.key_size_bytes() {
        return Err(DomainError::InvalidCiphertext);
    }
    let mut out = Zeroizing::new(vec![0u8; oaep_key.min_output_size()]);
    let plain = oaep_key
        .decrypt(oaep_alg, ciphertext, &mut out, None)
        .map_err(|_| DomainError::InvalidCiphertext)?;
    Ok(Secret::new(plain.to_vec()))
}
