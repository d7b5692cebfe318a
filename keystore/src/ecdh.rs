//! DeriveSharedSecret: ECDH between a KEY_AGREEMENT key and a peer's public key.
//!
//! # Layout
//!
//! ```text
//!  derive_shared_secret(key, usage, ECDH, peer SPKI DER)
//!     -> ensure_usage(KEY_AGREEMENT), curve of the key's spec
//!     -> peer: must be an X.509 SubjectPublicKeyInfo on the same curve, a valid point
//!     -> aws-lc-rs ECDH -> raw shared secret (the x coordinate, as AWS returns it)
//! ```
//!
//! The peer key must be a named-curve SPKI with an uncompressed point, as every library
//! writes it by default and as AWS requires SPKI; aws-lc-rs would also take a bare SEC1
//! point or explicit curve parameters, which are refused here. Points not on the curve, the
//! point at infinity and keys on other curves are [`DomainError::Validation`].

use aws_lc_rs::agreement::{
    self, ParsedPublicKey, ParsedPublicKeyFormat, UnparsedPublicKey, ECDH_P256, ECDH_P384,
    ECDH_P521,
};
use aws_lc_rs::error::Unspecified;

use crate::crypto::Secret;
use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::spec::{
    ensure_usage, unsupported_algorithm, AwsKeySpec, AwsKeyUsage, KeyAgreementAlgorithm,
};

/// The exact DER of a named-curve SPKI up to an uncompressed point, and the point length.
/// Peer keys must match it byte for byte: explicit curve parameters (which aws-lc accepts
/// when they spell out a known curve, even with fields missing) and compressed points are
/// refused, so only the encoding every library emits by default gets through.
fn spki_prefix(spec: AwsKeySpec) -> Option<(&'static [u8], usize)> {
    match spec {
        AwsKeySpec::EccNistP256 => Some((
            &[
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ],
            65,
        )),
        AwsKeySpec::EccNistP384 => Some((
            &[
                0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
            ],
            97,
        )),
        AwsKeySpec::EccNistP521 => Some((
            &[
                0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
            ],
            133,
        )),
        _ => None,
    }
}

fn curve(spec: AwsKeySpec) -> Option<&'static agreement::Algorithm> {
    match spec {
        AwsKeySpec::EccNistP256 => Some(&ECDH_P256),
        AwsKeySpec::EccNistP384 => Some(&ECDH_P384),
        AwsKeySpec::EccNistP521 => Some(&ECDH_P521),
        _ => None,
    }
}

/// The shared secret of `key` and `peer_public_key_der`. Errors:
/// [`DomainError::InvalidKeyUsage`] if `usage` is not `KEY_AGREEMENT` or the spec has no
/// such algorithm; [`DomainError::Validation`] if the peer key is not a valid SPKI point on
/// the key's curve.
pub fn derive_shared_secret(
    key: &SecretKeyMaterial,
    usage: AwsKeyUsage,
    alg: KeyAgreementAlgorithm,
    peer_public_key_der: &[u8],
) -> Result<Secret, DomainError> {
    let spec = key.spec();
    ensure_usage(spec, usage, AwsKeyUsage::KeyAgreement)?;
    if !spec.key_agreement_algorithms(usage).contains(&alg) {
        return Err(unsupported_algorithm(alg.as_str(), spec));
    }
    let curve = curve(spec).ok_or_else(|| unsupported_algorithm(alg.as_str(), spec))?;
    let bad_peer = || {
        DomainError::Validation(format!(
            "The public key must be a DER-encoded SubjectPublicKeyInfo of a valid point on \
             the curve of {spec}"
        ))
    };
    let (prefix, point_len) = spki_prefix(spec).ok_or_else(bad_peer)?;
    let point = peer_public_key_der
        .strip_prefix(prefix)
        .ok_or_else(bad_peer)?;
    if point.len() != point_len || point.first() != Some(&0x04) {
        return Err(bad_peer());
    }
    let peer = ParsedPublicKey::try_from(&UnparsedPublicKey::new(curve, peer_public_key_der))
        .map_err(|_| bad_peer())?;
    if peer.format() != ParsedPublicKeyFormat::X509 || peer.alg() != curve {
        return Err(bad_peer());
    }
    let private = agreement::PrivateKey::from_private_key_der(curve, key.expose_secret())
        .map_err(|_| DomainError::Internal("EC key material does not parse".into()))?;
    agreement::agree(&private, peer, Unspecified, |shared| {
        Ok(Secret::new(shared.to_vec()))
    })
    .map_err(|_| bad_peer())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_prefixes_match_what_aws_lc_writes() {
        for spec in [
            AwsKeySpec::EccNistP256,
            AwsKeySpec::EccNistP384,
            AwsKeySpec::EccNistP521,
        ] {
            let der = SecretKeyMaterial::generate(spec)
                .unwrap()
                .public_key_der()
                .unwrap();
            let (prefix, point_len) = spki_prefix(spec).unwrap();
            assert_eq!(&der[..prefix.len()], prefix, "{spec}");
            assert_eq!(der.len(), prefix.len() + point_len, "{spec}");
        }
    }
}
