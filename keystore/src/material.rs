//! The secret half of a key of any [`AwsKeySpec`], generated, validated and serialized.
//!
//! # Layout
//!
//! ```text
//!  spec                      secret bytes (SecretKeyMaterial::expose_secret)   public half
//!  RSA_2048/3072/4096        PKCS#8 v1 DER (RFC 5208)                           SPKI DER
//!  ECC_NIST_P*/SECG_P256K1   PKCS#8 v1 DER, ECPrivateKey inside (RFC 5915)      SPKI DER
//!  ECC_NIST_EDWARDS25519     PKCS#8 v1 DER, 48 bytes (RFC 8410)                 SPKI DER
//!  ML_DSA_44/65/87           32-byte seed xi (FIPS 204 KeyGen)                  SPKI DER
//!  HMAC_224/256/384/512      raw key (28/32/48/64 bytes when generated)         none
//!  SYMMETRIC_DEFAULT         raw 32 bytes (what `crypto::KeyMaterial` holds)    none
//! ```
//!
//! These bytes are what the wiring session wraps under the domain key, and what
//! `from_bytes` accepts back (after unwrapping, or as BYOK import). ML-DSA keeps the seed,
//! not the 2.5–4.9 KB expanded key: it is what FIPS 204 and AWS's import format call the
//! private key, and the expanded key is re-derived in microseconds.
//!
//! `SecretKeyMaterial` zeroizes on drop (it holds a [`Secret`]), has no `Debug`, and hands
//! its bytes out only through `expose_secret`. The aws-lc-rs / ed25519-dalek key objects
//! built from it live only for the length of one operation; aws-lc-rs zeroizes its PKCS#8
//! output buffers and ed25519-dalek its `SigningKey` on drop.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, PqdsaKeyPair, PqdsaSigningAlgorithm, RsaKeyPair,
    ECDSA_P256K1_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING, ML_DSA_44_SIGNING,
    ML_DSA_65_SIGNING, ML_DSA_87_SIGNING,
};
use zeroize::Zeroizing;

use crate::crypto::{fill_random, Secret};
use crate::error::DomainError;
use crate::spec::AwsKeySpec;

/// PKCS#8 v1 `PrivateKeyInfo` for Ed25519 up to the 32-byte seed (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// `SubjectPublicKeyInfo` for Ed25519 up to the 32-byte public key (RFC 8410 §4).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Bytes of an ML-DSA seed (all parameter sets).
pub const ML_DSA_SEED_LEN: usize = 32;

/// One version of a key's secret material, unwrapped, tagged with its spec.
#[derive(Clone)]
pub struct SecretKeyMaterial {
    spec: AwsKeySpec,
    bytes: Secret,
}

impl PartialEq for SecretKeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        // Secret's equality is constant-time; the spec is not secret.
        self.spec == other.spec && self.bytes == other.bytes
    }
}
impl Eq for SecretKeyMaterial {}

fn internal(what: &str) -> DomainError {
    DomainError::Internal(format!("{what} failed in the crypto library"))
}

fn invalid(spec: AwsKeySpec, why: &str) -> DomainError {
    DomainError::Validation(format!("The key material is not a valid {spec} key: {why}"))
}

/// The aws-lc-rs signing algorithm whose key format an ECC spec uses.
pub(crate) fn ecdsa_signing_alg(spec: AwsKeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        AwsKeySpec::EccNistP256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
        AwsKeySpec::EccNistP384 => Some(&ECDSA_P384_SHA384_ASN1_SIGNING),
        AwsKeySpec::EccNistP521 => Some(&ECDSA_P521_SHA512_ASN1_SIGNING),
        AwsKeySpec::EccSecgP256k1 => Some(&ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

pub(crate) fn ml_dsa_alg(spec: AwsKeySpec) -> Option<&'static PqdsaSigningAlgorithm> {
    match spec {
        AwsKeySpec::MlDsa44 => Some(&ML_DSA_44_SIGNING),
        AwsKeySpec::MlDsa65 => Some(&ML_DSA_65_SIGNING),
        AwsKeySpec::MlDsa87 => Some(&ML_DSA_87_SIGNING),
        _ => None,
    }
}

/// Generated length, and accepted (min, max) lengths, of an HMAC key. Generated keys are
/// as long as the spec says; imported ones may be up to one hash block, as AWS allows.
fn hmac_key_lens(spec: AwsKeySpec) -> Option<(usize, usize)> {
    match spec {
        AwsKeySpec::Hmac224 => Some((28, 64)),
        AwsKeySpec::Hmac256 => Some((32, 64)),
        AwsKeySpec::Hmac384 => Some((48, 128)),
        AwsKeySpec::Hmac512 => Some((64, 128)),
        _ => None,
    }
}

/// Ed25519 public key as SPKI DER.
pub(crate) fn ed25519_spki(public: &[u8; 32]) -> Vec<u8> {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    der
}

/// The 32-byte Ed25519 public key inside an SPKI, if `der` is exactly one.
pub(crate) fn ed25519_public_from_spki(der: &[u8]) -> Option<[u8; 32]> {
    let rest = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    rest.try_into().ok()
}

impl SecretKeyMaterial {
    /// Fresh material for `spec` from the operating system RNG.
    pub fn generate(spec: AwsKeySpec) -> Result<Self, DomainError> {
        let bytes = match spec {
            AwsKeySpec::Rsa2048 | AwsKeySpec::Rsa3072 | AwsKeySpec::Rsa4096 => {
                let size = match spec {
                    AwsKeySpec::Rsa2048 => KeySize::Rsa2048,
                    AwsKeySpec::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let kp = RsaKeyPair::generate(size).map_err(|_| internal("RSA key generation"))?;
                let der = kp.as_der().map_err(|_| internal("RSA PKCS#8 encoding"))?;
                der.as_ref().to_vec()
            }
            AwsKeySpec::EccNistP256
            | AwsKeySpec::EccNistP384
            | AwsKeySpec::EccNistP521
            | AwsKeySpec::EccSecgP256k1 => {
                let alg = ecdsa_signing_alg(spec).ok_or_else(|| internal("EC curve lookup"))?;
                let kp = EcdsaKeyPair::generate(alg).map_err(|_| internal("EC key generation"))?;
                let doc = kp
                    .to_pkcs8v1()
                    .map_err(|_| internal("EC PKCS#8 encoding"))?;
                doc.as_ref().to_vec()
            }
            AwsKeySpec::EccNistEdwards25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                fill_random(seed.as_mut());
                let mut der = ED25519_PKCS8_PREFIX.to_vec();
                der.extend_from_slice(seed.as_ref());
                der
            }
            AwsKeySpec::MlDsa44 | AwsKeySpec::MlDsa65 | AwsKeySpec::MlDsa87 => {
                let mut seed = vec![0u8; ML_DSA_SEED_LEN];
                fill_random(&mut seed);
                seed
            }
            AwsKeySpec::Hmac224
            | AwsKeySpec::Hmac256
            | AwsKeySpec::Hmac384
            | AwsKeySpec::Hmac512 => {
                let (len, _) = hmac_key_lens(spec).ok_or_else(|| internal("HMAC key size"))?;
                let mut key = vec![0u8; len];
                fill_random(&mut key);
                key
            }
            AwsKeySpec::SymmetricDefault => {
                let mut key = vec![0u8; 32];
                fill_random(&mut key);
                key
            }
        };
        Ok(Self {
            spec,
            bytes: Secret::new(bytes),
        })
    }

    /// Material of `spec` from its serialized form (see the module table): after
    /// unwrapping, or BYOK import. The bytes are fully parsed and checked against the spec
    /// (curve, modulus size, lengths); [`DomainError::Validation`] if they do not fit. The
    /// error never contains the bytes.
    pub fn from_bytes(spec: AwsKeySpec, bytes: &[u8]) -> Result<Self, DomainError> {
        let m = Self {
            spec,
            bytes: Secret::new(bytes.to_vec()),
        };
        match spec {
            AwsKeySpec::Rsa2048 | AwsKeySpec::Rsa3072 | AwsKeySpec::Rsa4096 => {
                m.rsa_key_pair()
                    .map_err(|_| invalid(spec, "not an RSA PKCS#8 private key of that size"))?;
            }
            AwsKeySpec::EccNistP256
            | AwsKeySpec::EccNistP384
            | AwsKeySpec::EccNistP521
            | AwsKeySpec::EccSecgP256k1 => {
                m.ecdsa_key_pair()
                    .map_err(|_| invalid(spec, "not a PKCS#8 private key on that curve"))?;
            }
            AwsKeySpec::EccNistEdwards25519 => {
                m.ed25519_signing_key()
                    .map_err(|_| invalid(spec, "not a 48-byte PKCS#8 Ed25519 private key"))?;
            }
            AwsKeySpec::MlDsa44 | AwsKeySpec::MlDsa65 | AwsKeySpec::MlDsa87 => {
                m.ml_dsa_key_pair()
                    .map_err(|_| invalid(spec, "an ML-DSA private key is a 32-byte seed"))?;
            }
            AwsKeySpec::Hmac224
            | AwsKeySpec::Hmac256
            | AwsKeySpec::Hmac384
            | AwsKeySpec::Hmac512 => {
                let (min, max) = hmac_key_lens(spec).ok_or_else(|| internal("HMAC key size"))?;
                if !(min..=max).contains(&bytes.len()) {
                    return Err(invalid(
                        spec,
                        &format!("HMAC keys of this spec are {min} to {max} bytes"),
                    ));
                }
            }
            AwsKeySpec::SymmetricDefault => {
                if bytes.len() != 32 {
                    return Err(invalid(spec, "symmetric keys are 32 bytes"));
                }
            }
        }
        Ok(m)
    }

    /// The spec these bytes belong to.
    pub fn spec(&self) -> AwsKeySpec {
        self.spec
    }

    /// The serialized secret (PKCS#8 DER, seed or raw key; see the module table).
    pub fn expose_secret(&self) -> &[u8] {
        self.bytes.expose_secret()
    }

    /// GetPublicKey's `PublicKey`: DER `SubjectPublicKeyInfo`. [`DomainError::InvalidKeyUsage`]
    /// for HMAC and symmetric specs, which have no public half (the front should have
    /// refused earlier with AWS's `UnsupportedOperationException`).
    pub fn public_key_der(&self) -> Result<Vec<u8>, DomainError> {
        match self.spec {
            AwsKeySpec::Rsa2048 | AwsKeySpec::Rsa3072 | AwsKeySpec::Rsa4096 => {
                let kp = self.rsa_key_pair()?;
                let der = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| internal("RSA public key encoding"))?;
                Ok(der.as_ref().to_vec())
            }
            AwsKeySpec::EccNistP256
            | AwsKeySpec::EccNistP384
            | AwsKeySpec::EccNistP521
            | AwsKeySpec::EccSecgP256k1 => {
                let kp = self.ecdsa_key_pair()?;
                let der = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| internal("EC public key encoding"))?;
                Ok(der.as_ref().to_vec())
            }
            AwsKeySpec::EccNistEdwards25519 => {
                let sk = self.ed25519_signing_key()?;
                Ok(ed25519_spki(sk.verifying_key().as_bytes()))
            }
            AwsKeySpec::MlDsa44 | AwsKeySpec::MlDsa65 | AwsKeySpec::MlDsa87 => {
                let kp = self.ml_dsa_key_pair()?;
                let der = kp
                    .public_key()
                    .as_der()
                    .map_err(|_| internal("ML-DSA public key encoding"))?;
                Ok(der.as_ref().to_vec())
            }
            AwsKeySpec::Hmac224
            | AwsKeySpec::Hmac256
            | AwsKeySpec::Hmac384
            | AwsKeySpec::Hmac512
            | AwsKeySpec::SymmetricDefault => Err(DomainError::InvalidKeyUsage(format!(
                "Keys of KeySpec {} have no public key",
                self.spec
            ))),
        }
    }

    pub(crate) fn rsa_key_pair(&self) -> Result<RsaKeyPair, DomainError> {
        let bits = self
            .spec
            .rsa_bits()
            .ok_or_else(|| DomainError::Internal(format!("{} is not an RSA spec", self.spec)))?;
        let kp = RsaKeyPair::from_pkcs8(self.expose_secret())
            .map_err(|_| DomainError::Internal("RSA key material does not parse".into()))?;
        if kp.public_modulus_len() * 8 != bits {
            return Err(DomainError::Internal(format!(
                "RSA key material is not {bits} bits"
            )));
        }
        Ok(kp)
    }

    pub(crate) fn ecdsa_key_pair(&self) -> Result<EcdsaKeyPair, DomainError> {
        let alg = ecdsa_signing_alg(self.spec)
            .ok_or_else(|| DomainError::Internal(format!("{} is not an ECC spec", self.spec)))?;
        EcdsaKeyPair::from_pkcs8(alg, self.expose_secret())
            .map_err(|_| DomainError::Internal("EC key material does not parse".into()))
    }

    pub(crate) fn ed25519_signing_key(&self) -> Result<ed25519_dalek::SigningKey, DomainError> {
        let bad = || DomainError::Internal("Ed25519 key material does not parse".into());
        if self.spec != AwsKeySpec::EccNistEdwards25519 {
            return Err(bad());
        }
        let seed = self
            .expose_secret()
            .strip_prefix(&ED25519_PKCS8_PREFIX[..])
            .ok_or_else(bad)?;
        let seed: &[u8; 32] = seed.try_into().map_err(|_| bad())?;
        // SigningKey zeroizes itself on drop (ed25519-dalek's default `zeroize` feature).
        Ok(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    pub(crate) fn ml_dsa_key_pair(&self) -> Result<PqdsaKeyPair, DomainError> {
        let alg = ml_dsa_alg(self.spec)
            .ok_or_else(|| DomainError::Internal(format!("{} is not an ML-DSA spec", self.spec)))?;
        PqdsaKeyPair::from_seed(alg, self.expose_secret())
            .map_err(|_| DomainError::Internal("ML-DSA seed does not expand".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_material_is_rfc8410_pkcs8() {
        let m = SecretKeyMaterial::generate(AwsKeySpec::EccNistEdwards25519).unwrap();
        assert_eq!(m.expose_secret().len(), 48);
        assert!(m.expose_secret().starts_with(&ED25519_PKCS8_PREFIX));
        let spki = m.public_key_der().unwrap();
        assert_eq!(spki.len(), 44);
        assert!(ed25519_public_from_spki(&spki).is_some());
    }

    #[test]
    fn rfc8032_test_1_public_key_is_derived_from_its_seed() {
        // RFC 8032 §7.1 TEST 1.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let m = SecretKeyMaterial::from_bytes(AwsKeySpec::EccNistEdwards25519, &der).unwrap();
        assert_eq!(
            hex::encode(ed25519_public_from_spki(&m.public_key_der().unwrap()).unwrap()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn hmac_lengths_follow_the_spec() {
        for (spec, len) in [
            (AwsKeySpec::Hmac224, 28),
            (AwsKeySpec::Hmac256, 32),
            (AwsKeySpec::Hmac384, 48),
            (AwsKeySpec::Hmac512, 64),
        ] {
            assert_eq!(
                SecretKeyMaterial::generate(spec)
                    .unwrap()
                    .expose_secret()
                    .len(),
                len
            );
            assert!(SecretKeyMaterial::from_bytes(spec, &vec![1; len - 1]).is_err());
            assert!(SecretKeyMaterial::from_bytes(spec, &vec![1; len]).is_ok());
        }
    }
}
