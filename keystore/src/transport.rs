//! Material crossing regions (multi-region keys): each region has a transport key pair
//! (ECDH P-384) that other regions wrap material to, and an Ed25519 replication signing key
//! that authenticates what it sends. Neither region ever sees the other's domain key.
//!
//! # Data flow
//!
//! ```text
//!  source front: unwrap (own domain key) -> seal_for_region (ephemeral ECDH P-384 with the
//!    target's transport public key -> HKDF-SHA-384 -> AES-256-GCM-SIV, AAD binds key id,
//!    version, spec, source and target region) -> message -> sign (Ed25519)
//!  target front: verify (configured peer public key) -> open_from_region (own transport
//!    private key) -> wrap under own domain key -> Raft
//! ```
//!
//! Plaintext material exists only inside [`rewrap_for_region`] / [`rewrap_from_region`]
//! and is zeroized when they return.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use aws_lc_rs::agreement::{self, ECDH_P384};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{self, DomainKey, KeyMaterial};
use crate::error::DomainError;
use crate::model::Wrapped;
use crate::spec::AwsKeySpec;

const LABEL_TRANSPORT: &[u8] = b"keyraft/v1/mr-transport";
const LABEL_SIGNATURE: &[u8] = b"keyraft/v1/mr-replication-signature";
/// Bytes of a P-384 private scalar.
pub const TRANSPORT_PRIVATE_LEN: usize = 48;

fn internal(what: &str) -> DomainError {
    DomainError::Internal(format!("multi-region transport: {what}"))
}

/// A region's transport private key (ECDH P-384). Zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TransportPrivateKey {
    scalar: [u8; TRANSPORT_PRIVATE_LEN],
}

impl TransportPrivateKey {
    /// A fresh key (region init).
    pub fn generate() -> Result<Self, DomainError> {
        let k = agreement::PrivateKey::generate(&ECDH_P384)
            .map_err(|_| internal("P-384 key generation failed"))?;
        let bin: EcPrivateKeyBin = k
            .as_be_bytes()
            .map_err(|_| internal("P-384 key export failed"))?;
        Self::from_bytes(bin.as_ref())
    }

    /// From the 48-byte big-endian scalar (the key file).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DomainError> {
        let scalar: [u8; TRANSPORT_PRIVATE_LEN] = bytes.try_into().map_err(|_| {
            DomainError::Validation(format!(
                "a transport key is {TRANSPORT_PRIVATE_LEN} bytes, got {}",
                bytes.len()
            ))
        })?;
        // Reject scalars that are not a valid P-384 key now, not at first use.
        agreement::PrivateKey::from_private_key(&ECDH_P384, &scalar)
            .map_err(|_| DomainError::Validation("not a P-384 private key".into()))?;
        Ok(Self { scalar })
    }

    /// The raw scalar (for writing the key file).
    pub fn expose_secret(&self) -> &[u8] {
        &self.scalar
    }

    fn key(&self) -> Result<agreement::PrivateKey, DomainError> {
        agreement::PrivateKey::from_private_key(&ECDH_P384, &self.scalar)
            .map_err(|_| internal("transport key does not load"))
    }

    /// The uncompressed SEC1 public point (97 bytes) that peers wrap to.
    pub fn public_key(&self) -> Result<Vec<u8>, DomainError> {
        let pk = self
            .key()?
            .compute_public_key()
            .map_err(|_| internal("public key"))?;
        Ok(pk.as_ref().to_vec())
    }
}

/// A region's Ed25519 replication signing key. Zeroized on drop, never printed.
pub struct ReplicationSigningKey {
    key: ed25519_dalek::SigningKey,
}

impl ReplicationSigningKey {
    /// A fresh key (region init).
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        crypto::fill_random(&mut seed[..]);
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// From the 32-byte seed (the key file).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DomainError> {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.try_into().map_err(|_| {
            DomainError::Validation(format!(
                "a replication signing key is 32 bytes, got {}",
                bytes.len()
            ))
        })?);
        Ok(Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The seed (for writing the key file).
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The 32-byte public key peers verify with.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a replication message body sent from `source` to `target`.
    pub fn sign(&self, source: &str, target: &str, body: &[u8]) -> Vec<u8> {
        let msg = signed_bytes(source, target, body);
        self.key.sign(&msg).to_bytes().to_vec()
    }
}

/// The bytes the signature covers: a label, both regions (length-prefixed) and the body, so
/// a message signed for one target cannot be replayed to another.
fn signed_bytes(source: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut m =
        Vec::with_capacity(LABEL_SIGNATURE.len() + source.len() + target.len() + body.len() + 16);
    m.extend_from_slice(LABEL_SIGNATURE);
    for part in [source.as_bytes(), target.as_bytes(), body] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

/// Verifies a message body from `source` to `target` against the source region's configured
/// replication public key. Any failure is the same `Validation` error (no oracle).
pub fn verify(
    peer_public_key: &[u8],
    source: &str,
    target: &str,
    body: &[u8],
    signature: &[u8],
) -> Result<(), DomainError> {
    let bad = || DomainError::Validation("The replication message signature is invalid.".into());
    let pk: [u8; 32] = peer_public_key.try_into().map_err(|_| bad())?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| bad())?;
    let sig: [u8; 64] = signature.try_into().map_err(|_| bad())?;
    vk.verify(
        &signed_bytes(source, target, body),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| bad())
}

/// One material version sealed to a target region's transport key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportSealed {
    /// The sender's ephemeral P-384 public point (uncompressed SEC1).
    pub ephemeral_public: Vec<u8>,
    /// HKDF salt (random).
    pub salt: [u8; 32],
    /// GCM-SIV nonce.
    pub nonce: [u8; 12],
    /// Ciphertext with tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for TransportSealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TransportSealed({} bytes)", self.ciphertext.len())
    }
}

/// What the AEAD binds: key id, version, spec, source and target region (length-prefixed).
fn transport_aad(
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    source: &str,
    target: &str,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LABEL_TRANSPORT.len() + 64);
    aad.extend_from_slice(LABEL_TRANSPORT);
    for part in [key_id, spec.as_str(), source, target] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// HKDF-SHA-384(ikm = ECDH secret, salt, info = label || eph pub || target pub || aad) -> 32.
fn derive_key(
    shared: &[u8],
    salt: &[u8; 32],
    ephemeral_public: &[u8],
    target_public: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<[u8; 32]>, DomainError> {
    let hk = hkdf::Hkdf::<sha2::Sha384>::new(Some(salt), shared);
    let mut info = Vec::with_capacity(
        LABEL_TRANSPORT.len() + ephemeral_public.len() + target_public.len() + aad.len(),
    );
    info.extend_from_slice(LABEL_TRANSPORT);
    info.extend_from_slice(ephemeral_public);
    info.extend_from_slice(target_public);
    info.extend_from_slice(aad);
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(&info, &mut okm[..])
        .map_err(|_| internal("HKDF expand"))?;
    Ok(okm)
}

/// Seals `plaintext` (one material version) to the target region's transport public key.
pub fn seal_for_region(
    target_public: &[u8],
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    source: &str,
    target: &str,
    plaintext: &[u8],
) -> Result<TransportSealed, DomainError> {
    let eph = agreement::PrivateKey::generate(&ECDH_P384)
        .map_err(|_| internal("ephemeral key generation"))?;
    let eph_pub = eph
        .compute_public_key()
        .map_err(|_| internal("ephemeral public key"))?
        .as_ref()
        .to_vec();
    let peer = agreement::UnparsedPublicKey::new(&ECDH_P384, target_public);
    let shared = agreement::agree(
        &eph,
        peer,
        DomainError::Validation("The target region's transport public key is invalid.".into()),
        |s| Ok(Zeroizing::new(s.to_vec())),
    )?;
    let mut salt = [0u8; 32];
    crypto::fill_random(&mut salt);
    let aad = transport_aad(key_id, version, spec, source, target);
    let key = derive_key(&shared, &salt, &eph_pub, target_public, &aad)?;
    let mut nonce = [0u8; 12];
    crypto::fill_random(&mut nonce);
    let ciphertext = Aes256GcmSiv::new((&*key).into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| internal("seal"))?;
    Ok(TransportSealed {
        ephemeral_public: eph_pub,
        salt,
        nonce,
        ciphertext,
    })
}

/// Opens what [`seal_for_region`] sealed to this region. Every failure (tampering, another
/// key id/version/spec/region, another region's key) is the same `Validation` error.
pub fn open_from_region(
    own: &TransportPrivateKey,
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    source: &str,
    target: &str,
    sealed: &TransportSealed,
) -> Result<crypto::Secret, DomainError> {
    let bad = || DomainError::Validation("The replicated key material does not open.".into());
    let own_pub = own.public_key()?;
    let peer = agreement::UnparsedPublicKey::new(&ECDH_P384, &sealed.ephemeral_public[..]);
    let shared = agreement::agree(&own.key()?, peer, bad(), |s| Ok(Zeroizing::new(s.to_vec())))?;
    let aad = transport_aad(key_id, version, spec, source, target);
    let key = derive_key(
        &shared,
        &sealed.salt,
        &sealed.ephemeral_public,
        &own_pub,
        &aad,
    )?;
    let plain = Aes256GcmSiv::new((&*key).into())
        .decrypt(
            &Nonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| bad())?;
    Ok(crypto::Secret::new(plain))
}

/// Source side: unwraps one material version under this region's domain key and seals it to
/// the target region. The plaintext never leaves this function.
#[allow(clippy::too_many_arguments)]
pub fn rewrap_for_region(
    dk: &DomainKey,
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    wrapped: &Wrapped,
    target_public: &[u8],
    source: &str,
    target: &str,
) -> Result<TransportSealed, DomainError> {
    if spec == AwsKeySpec::SymmetricDefault {
        let m = crypto::unwrap_material(dk, key_id, version, wrapped)?;
        seal_for_region(
            target_public,
            key_id,
            version,
            spec,
            source,
            target,
            m.expose_secret(),
        )
    } else {
        let m = crypto::unwrap_spec_material(dk, key_id, version, spec, wrapped)?;
        seal_for_region(
            target_public,
            key_id,
            version,
            spec,
            source,
            target,
            m.expose_secret(),
        )
    }
}

/// Target side: opens a sealed version and wraps it under this region's domain key, as
/// `crypto::wrap_material` / `wrap_spec_material` would for material generated here.
#[allow(clippy::too_many_arguments)]
pub fn rewrap_from_region(
    dk: &DomainKey,
    own: &TransportPrivateKey,
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    sealed: &TransportSealed,
    source: &str,
    target: &str,
) -> Result<Wrapped, DomainError> {
    let plain = open_from_region(own, key_id, version, spec, source, target, sealed)?;
    if spec == AwsKeySpec::SymmetricDefault {
        let m = KeyMaterial::from_bytes(plain.expose_secret()).map_err(|_| {
            DomainError::Validation("replicated material has the wrong length".into())
        })?;
        Ok(crypto::wrap_material(dk, key_id, version, &m))
    } else {
        let m = crate::material::SecretKeyMaterial::from_bytes(spec, plain.expose_secret())
            .map_err(|_| DomainError::Validation("replicated material does not parse".into()))?;
        Ok(crypto::wrap_spec_material(dk, key_id, version, &m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "mrk-1234abcd12ab34cd56ef1234567890ab";

    fn sealed_v1(target: &TransportPrivateKey, m: &KeyMaterial) -> TransportSealed {
        seal_for_region(
            &target.public_key().unwrap(),
            ID,
            1,
            AwsKeySpec::SymmetricDefault,
            "us-east-1",
            "us-west-2",
            m.expose_secret(),
        )
        .unwrap()
    }

    #[test]
    fn material_crosses_regions_without_either_domain_key_leaving_its_region() {
        let (dk_a, dk_b) = (DomainKey::generate(1), DomainKey::generate(1));
        let b = TransportPrivateKey::generate().unwrap();
        let m = KeyMaterial::generate();
        let w_a = crypto::wrap_material(&dk_a, ID, 3, &m);
        let sealed = rewrap_for_region(
            &dk_a,
            ID,
            3,
            AwsKeySpec::SymmetricDefault,
            &w_a,
            &b.public_key().unwrap(),
            "us-east-1",
            "us-west-2",
        )
        .unwrap();
        let w_b = rewrap_from_region(
            &dk_b,
            &b,
            ID,
            3,
            AwsKeySpec::SymmetricDefault,
            &sealed,
            "us-east-1",
            "us-west-2",
        )
        .unwrap();
        assert!(crypto::unwrap_material(&dk_b, ID, 3, &w_b).unwrap() == m);
        assert!(crypto::unwrap_material(&dk_a, ID, 3, &w_b).is_err());
    }

    #[test]
    fn sealed_material_opens_only_for_its_key_version_regions_and_target() {
        let b = TransportPrivateKey::generate().unwrap();
        let other = TransportPrivateKey::generate().unwrap();
        let m = KeyMaterial::generate();
        let s = sealed_v1(&b, &m);
        let open = |k: &TransportPrivateKey,
                    id: &str,
                    v: u32,
                    src: &str,
                    dst: &str,
                    s: &TransportSealed| {
            open_from_region(k, id, v, AwsKeySpec::SymmetricDefault, src, dst, s)
                .map(|p| p.expose_secret().to_vec())
        };
        assert_eq!(
            open(&b, ID, 1, "us-east-1", "us-west-2", &s).unwrap(),
            m.expose_secret()
        );
        assert!(
            open(&other, ID, 1, "us-east-1", "us-west-2", &s).is_err(),
            "wrong target key"
        );
        assert!(
            open(&b, ID, 2, "us-east-1", "us-west-2", &s).is_err(),
            "version"
        );
        assert!(
            open(
                &b,
                "mrk-00000000000000000000000000000000",
                1,
                "us-east-1",
                "us-west-2",
                &s
            )
            .is_err(),
            "key id"
        );
        assert!(
            open(&b, ID, 1, "eu-west-1", "us-west-2", &s).is_err(),
            "source region"
        );
        assert!(
            open(&b, ID, 1, "us-east-1", "eu-west-1", &s).is_err(),
            "target region"
        );
        assert!(
            open_from_region(&b, ID, 1, AwsKeySpec::Hmac256, "us-east-1", "us-west-2", &s).is_err(),
            "spec"
        );
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(
            open(&b, ID, 1, "us-east-1", "us-west-2", &t).is_err(),
            "ciphertext"
        );
        let mut t = s.clone();
        t.salt[0] ^= 1;
        assert!(
            open(&b, ID, 1, "us-east-1", "us-west-2", &t).is_err(),
            "salt"
        );
        let mut t = s.clone();
        t.ephemeral_public = other.public_key().unwrap();
        assert!(
            open(&b, ID, 1, "us-east-1", "us-west-2", &t).is_err(),
            "ephemeral key"
        );
    }

    #[test]
    fn signatures_bind_body_and_both_regions_and_the_signer() {
        let a = ReplicationSigningKey::generate();
        let c = ReplicationSigningKey::generate();
        let sig = a.sign("us-east-1", "us-west-2", b"body");
        let pk = a.public_key();
        verify(&pk, "us-east-1", "us-west-2", b"body", &sig).unwrap();
        assert!(verify(&pk, "us-east-1", "us-west-2", b"bodY", &sig).is_err());
        assert!(verify(&pk, "us-east-1", "eu-west-1", b"body", &sig).is_err());
        assert!(verify(&pk, "eu-west-1", "us-west-2", b"body", &sig).is_err());
        assert!(
            verify(&c.public_key(), "us-east-1", "us-west-2", b"body", &sig).is_err(),
            "wrong peer"
        );
        assert!(verify(&pk, "us-east-1", "us-west-2", b"body", &sig[..63]).is_err());
        let reloaded = ReplicationSigningKey::from_bytes(a.expose_secret()).unwrap();
        assert_eq!(reloaded.public_key(), pk);
    }

    #[test]
    fn transport_keys_reload_from_their_file_bytes_and_reject_garbage() {
        let k = TransportPrivateKey::generate().unwrap();
        let again = TransportPrivateKey::from_bytes(k.expose_secret()).unwrap();
        assert_eq!(k.public_key().unwrap(), again.public_key().unwrap());
        assert_eq!(k.public_key().unwrap().len(), 97);
        assert!(TransportPrivateKey::from_bytes(&[0u8; 48]).is_err());
        assert!(TransportPrivateKey::from_bytes(&[1u8; 47]).is_err());
        assert!(seal_for_region(
            &[4u8; 97],
            ID,
            1,
            AwsKeySpec::SymmetricDefault,
            "a",
            "b",
            b"x"
        )
        .is_err());
    }
}
