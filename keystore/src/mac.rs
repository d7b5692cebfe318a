//! GenerateMac / VerifyMac with HMAC keys.
//!
//! # Layout
//!
//! ```text
//!  generate_mac(key, usage, alg, msg) --+--> aws-lc-rs HMAC (key from SecretKeyMaterial)
//!  verify_mac(key, usage, alg, msg, mac) +--> constant-time tag comparison -> bool
//! ```
//!
//! Each HMAC spec has exactly one algorithm (`HMAC_256` → `HMAC_SHA_256`, ...); any other is
//! [`DomainError::InvalidKeyUsage`]. A MAC that does not match — wrong bytes, truncated,
//! too long — is `Ok(false)`, which the front reports as `KMSInvalidMacException`.

use aws_lc_rs::hmac;

use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::spec::{
    check_message_len, ensure_usage, unsupported_algorithm, AwsKeyUsage, MacAlgorithm,
};

fn hmac_key(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: MacAlgorithm,
    message: &[u8],
) -> Result<hmac::Key, DomainError> {
    let spec = key.spec();
    ensure_usage(spec, usage, AwsKeyUsage::GenerateVerifyMac)?;
    if !spec.mac_algorithms(usage).contains(&alg) {
        return Err(unsupported_algorithm(alg.as_str(), spec));
    }
    check_message_len(message)?;
    let lc_alg = match alg {
        MacAlgorithm::HmacSha224 => hmac::HMAC_SHA224,
        MacAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        MacAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        MacAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    };
    Ok(hmac::Key::new(lc_alg, key.expose_secret()))
}

/// GenerateMac: the full-length HMAC tag of `message` (1..=4096 bytes).
pub fn generate_mac(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: MacAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>, DomainError> {
    let k = hmac_key(key, usage, alg, message)?;
    Ok(hmac::sign(&k, message).as_ref().to_vec())
}

/// VerifyMac: whether `mac` is exactly the full tag, compared in constant time.
pub fn verify_mac(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: MacAlgorithm,
    message: &[u8],
    mac: &[u8],
) -> Result<bool, DomainError> {
    let k = hmac_key(key, usage, alg, message)?;
    // hmac::verify compares in constant time and rejects tags of any other length.
    Ok(hmac::verify(&k, message, mac).is_ok())
}
