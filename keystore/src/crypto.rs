//! Secrets and the primitives that touch them.
//!
//! Every secret type here zeroizes on drop, has no `Debug`/`Display`, compares in constant
//! time and hands its bytes out through exactly one method, `expose_secret()`, so a grep finds
//! every place plaintext leaves the type.
//!
//! Wrapping (material and access-key secrets under the region domain key) is AES-256-GCM-SIV
//! with a random 96-bit nonce. The AAD is a purpose label plus every identifier the wrapped
//! blob belongs to, so a blob copied onto another key, another version, or another purpose
//! fails to unwrap instead of silently yielding the wrong secret. GCM-SIV rather than GCM
//! because a repeated random nonce then only reveals equality of identical messages, instead
//! of the authentication key.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::model::Wrapped;
use crate::spec::AwsKeySpec;

/// AAD purpose label for wrapped key material.
const LABEL_MATERIAL: &[u8] = b"keyraft/v1/wrap/key-material";
/// AAD purpose label for wrapped access-key secrets.
const LABEL_ACCESS_SECRET: &[u8] = b"keyraft/v1/wrap/access-key-secret";
/// AAD purpose label for wrapped key material of any spec (`wrap_spec_material`).
const LABEL_SPEC_MATERIAL: &[u8] = b"keyraft/v1/wrap/spec-key-material";

/// The region domain key: 256 bits plus the version that names it in [`Wrapped`] blobs.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DomainKey {
    #[zeroize(skip)]
    version: u32,
    bytes: [u8; 32],
}

impl DomainKey {
    /// A fresh random domain key.
    pub fn generate(version: u32) -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self { version, bytes }
    }

    /// A domain key from its 32 raw bytes (as read from the domain key file).
    pub fn from_bytes(version: u32, bytes: &[u8]) -> Result<Self, DomainError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            DomainError::Validation(format!(
                "a domain key is 32 bytes, got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(Self { version, bytes })
    }

    /// The version recorded in every blob this key wraps.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key bytes.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl PartialEq for DomainKey {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}
impl Eq for DomainKey {}

/// One version of a KMS key's 256-bit symmetric material, unwrapped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial {
    bytes: [u8; 32],
}

impl KeyMaterial {
    /// Fresh random material.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self { bytes }
    }

    /// Material from 32 raw bytes (imported material, test vectors).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DomainError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            DomainError::Validation(format!(
                "key material is 32 bytes, got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(Self { bytes })
    }

    /// The raw material.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.bytes.ct_eq(&other.bytes))
    }
}
impl Eq for KeyMaterial {}

/// Arbitrary secret bytes: plaintexts, data keys, access-key secrets.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// Takes ownership of `bytes`; they are zeroized when the secret is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Length is not secret; subtle returns false for different lengths without a
        // data-dependent early exit over the contents.
        bool::from(self.bytes.as_slice().ct_eq(other.bytes.as_slice()))
    }
}
impl Eq for Secret {}

/// `len` random bytes from the operating system.
pub fn random_secret(len: usize) -> Secret {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    Secret::new(bytes)
}

/// Fills `buf` from the operating system RNG (salts, nonces: not secret).
pub(crate) fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// `label || u32 BE len(id) || id || u32 BE version || u32 BE dk version`; the length prefix
/// keeps `("ab", 1)` and `("a", …)` from ever producing the same AAD.
pub(crate) fn wrap_aad(label: &[u8], id: &str, version: Option<u32>, dk_version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(label.len() + id.len() + 12);
    aad.extend_from_slice(label);
    aad.extend_from_slice(&len_u32(id.len()).to_be_bytes());
    aad.extend_from_slice(id.as_bytes());
    if let Some(v) = version {
        aad.extend_from_slice(&v.to_be_bytes());
    }
    aad.extend_from_slice(&dk_version.to_be_bytes());
    aad
}

/// Lengths above u32::MAX cannot occur for ids (they are bounded far below); saturating keeps
/// this total without a panic path.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

pub(crate) fn seal_wrapped(dk: &DomainKey, aad: &[u8], plaintext: &[u8]) -> Wrapped {
    let cipher = Aes256GcmSiv::new(dk.expose_secret().into());
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption only fails for messages beyond GCM-SIV's 2^36-byte limit; wrapped
        // secrets are tens of bytes.
        .expect("AES-GCM-SIV encryption of a small secret cannot fail");
    Wrapped {
        domain_key_version: dk.version(),
        nonce,
        ciphertext,
    }
}

pub(crate) fn open_wrapped(
    dk: &DomainKey,
    aad: &[u8],
    w: &Wrapped,
    what: &str,
) -> Result<Vec<u8>, DomainError> {
    if w.domain_key_version != dk.version() {
        return Err(DomainError::Internal(format!(
            "{what} is wrapped under domain key version {}, but the loaded domain key is version {}",
            w.domain_key_version,
            dk.version()
        )));
    }
    let cipher = Aes256GcmSiv::new(dk.expose_secret().into());
    cipher
        .decrypt(
            &Nonce::from(w.nonce),
            Payload {
                msg: &w.ciphertext,
                aad,
            },
        )
        .map_err(|_| {
            DomainError::Internal(format!(
                "{what} does not unwrap under domain key version {}",
                dk.version()
            ))
        })
}

/// Wraps one version of a key's material under the domain key.
pub fn wrap_material(dk: &DomainKey, key_id: &str, version: u32, m: &KeyMaterial) -> Wrapped {
    let aad = wrap_aad(LABEL_MATERIAL, key_id, Some(version), dk.version());
    seal_wrapped(dk, &aad, m.expose_secret())
}

/// Unwraps material wrapped by [`wrap_material`] for the same key id and version.
pub fn unwrap_material(
    dk: &DomainKey,
    key_id: &str,
    version: u32,
    w: &Wrapped,
) -> Result<KeyMaterial, DomainError> {
    let aad = wrap_aad(LABEL_MATERIAL, key_id, Some(version), w.domain_key_version);
    let plain = Secret::new(open_wrapped(dk, &aad, w, "key material")?);
    KeyMaterial::from_bytes(plain.expose_secret())
        .map_err(|_| DomainError::Internal("unwrapped key material has the wrong length".into()))
}

/// `label || u32 BE len(id) || id || u32 BE version || u32 BE len(spec) || spec ||
/// u32 BE dk version`: the spec is bound too, so material of one spec can never be
/// unwrapped and parsed as another.
fn spec_wrap_aad(key_id: &str, version: u32, spec: AwsKeySpec, dk_version: u32) -> Vec<u8> {
    let spec = spec.as_str();
    let mut aad = Vec::with_capacity(LABEL_SPEC_MATERIAL.len() + key_id.len() + spec.len() + 16);
    aad.extend_from_slice(LABEL_SPEC_MATERIAL);
    aad.extend_from_slice(&len_u32(key_id.len()).to_be_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&len_u32(spec.len()).to_be_bytes());
    aad.extend_from_slice(spec.as_bytes());
    aad.extend_from_slice(&dk_version.to_be_bytes());
    aad
}

/// Wraps one version of a key's material of any spec (PKCS#8, ML-DSA seed, HMAC key; see
/// `material`) under the domain key. `SYMMETRIC_DEFAULT` keys keep using
/// [`wrap_material`], so records stored before other specs existed stay readable.
pub fn wrap_spec_material(
    dk: &DomainKey,
    key_id: &str,
    version: u32,
    m: &SecretKeyMaterial,
) -> Wrapped {
    let aad = spec_wrap_aad(key_id, version, m.spec(), dk.version());
    seal_wrapped(dk, &aad, m.expose_secret())
}

/// Unwraps material wrapped by [`wrap_spec_material`] for the same key id, version and
/// spec, and parses it as that spec. Every failure is [`DomainError::Internal`] without
/// the bytes.
pub fn unwrap_spec_material(
    dk: &DomainKey,
    key_id: &str,
    version: u32,
    spec: AwsKeySpec,
    w: &Wrapped,
) -> Result<SecretKeyMaterial, DomainError> {
    let aad = spec_wrap_aad(key_id, version, spec, w.domain_key_version);
    let plain = Secret::new(open_wrapped(dk, &aad, w, "key material")?);
    SecretKeyMaterial::from_bytes(spec, plain.expose_secret())
        .map_err(|_| DomainError::Internal(format!("unwrapped {spec} key material does not parse")))
}

/// Wraps a SigV4 secret access key under the domain key.
pub fn wrap_access_secret(dk: &DomainKey, access_key_id: &str, secret: &Secret) -> Wrapped {
    let aad = wrap_aad(LABEL_ACCESS_SECRET, access_key_id, None, dk.version());
    seal_wrapped(dk, &aad, secret.expose_secret())
}

/// Unwraps a secret wrapped by [`wrap_access_secret`] for the same access key id.
pub fn unwrap_access_secret(
    dk: &DomainKey,
    access_key_id: &str,
    w: &Wrapped,
) -> Result<Secret, DomainError> {
    let aad = wrap_aad(
        LABEL_ACCESS_SECRET,
        access_key_id,
        None,
        w.domain_key_version,
    );
    open_wrapped(dk, &aad, w, "access key secret").map(Secret::new)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (SigV4 key derivation and signatures).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (long ones are hashed), so this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality (for signatures and MACs). Lengths are compared openly.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk(version: u32) -> DomainKey {
        DomainKey::from_bytes(version, &[7u8; 32]).unwrap()
    }

    #[test]
    fn material_round_trips_through_wrapping() {
        let m = KeyMaterial::generate();
        let w = wrap_material(&dk(1), "key-1", 3, &m);
        assert_eq!(w.domain_key_version, 1);
        assert!(unwrap_material(&dk(1), "key-1", 3, &w).unwrap() == m);
    }

    #[test]
    fn wrapped_material_does_not_contain_the_material() {
        let m = KeyMaterial::from_bytes(&[0xAB; 32]).unwrap();
        let w = wrap_material(&dk(1), "key-1", 1, &m);
        assert!(!w.ciphertext.windows(8).any(|win| win == [0xAB; 8]));
    }

    #[test]
    fn unwrapping_material_under_another_key_id_fails() {
        let w = wrap_material(&dk(1), "key-1", 1, &KeyMaterial::generate());
        assert!(matches!(
            unwrap_material(&dk(1), "key-2", 1, &w),
            Err(DomainError::Internal(_))
        ));
    }

    #[test]
    fn unwrapping_material_under_another_version_fails() {
        let w = wrap_material(&dk(1), "key-1", 1, &KeyMaterial::generate());
        assert!(matches!(
            unwrap_material(&dk(1), "key-1", 2, &w),
            Err(DomainError::Internal(_))
        ));
    }

    #[test]
    fn unwrapping_with_another_domain_key_fails() {
        let w = wrap_material(&dk(1), "key-1", 1, &KeyMaterial::generate());
        let other = DomainKey::from_bytes(1, &[8u8; 32]).unwrap();
        assert!(matches!(
            unwrap_material(&other, "key-1", 1, &w),
            Err(DomainError::Internal(_))
        ));
    }

    #[test]
    fn unwrapping_with_another_domain_key_version_fails_and_says_which() {
        let w = wrap_material(&dk(1), "key-1", 1, &KeyMaterial::generate());
        let Err(DomainError::Internal(msg)) = unwrap_material(&dk(2), "key-1", 1, &w) else {
            panic!("expected Internal");
        };
        assert!(
            msg.contains("version 1") && msg.contains("version 2"),
            "{msg}"
        );
    }

    #[test]
    fn relabelled_domain_key_version_on_a_blob_fails() {
        // The version field is not authenticated by the header alone: the AAD binds it.
        let mut w = wrap_material(&dk(1), "key-1", 1, &KeyMaterial::generate());
        w.domain_key_version = 2;
        let same_bytes_v2 = DomainKey::from_bytes(2, &[7u8; 32]).unwrap();
        assert!(unwrap_material(&same_bytes_v2, "key-1", 1, &w).is_err());
    }

    #[test]
    fn tampered_wrapped_material_fails_without_leaking_bytes() {
        let m = KeyMaterial::from_bytes(&[0x5A; 32]).unwrap();
        let mut w = wrap_material(&dk(1), "key-1", 1, &m);
        w.ciphertext[0] ^= 1;
        let Err(DomainError::Internal(msg)) = unwrap_material(&dk(1), "key-1", 1, &w) else {
            panic!("expected Internal");
        };
        assert!(
            !msg.contains("5a") && !msg.contains("5A") && !msg.contains("90"),
            "{msg}"
        );
    }

    #[test]
    fn wrapping_twice_uses_fresh_nonces() {
        let m = KeyMaterial::generate();
        let a = wrap_material(&dk(1), "k", 1, &m);
        let b = wrap_material(&dk(1), "k", 1, &m);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn spec_material_round_trips_and_is_bound_to_id_version_and_spec() {
        let m = SecretKeyMaterial::generate(AwsKeySpec::Hmac256).unwrap();
        let w = wrap_spec_material(&dk(1), "key-1", 2, &m);
        let back = unwrap_spec_material(&dk(1), "key-1", 2, AwsKeySpec::Hmac256, &w).unwrap();
        assert!(back == m);
        assert!(unwrap_spec_material(&dk(1), "key-2", 2, AwsKeySpec::Hmac256, &w).is_err());
        assert!(unwrap_spec_material(&dk(1), "key-1", 1, AwsKeySpec::Hmac256, &w).is_err());
        // Same length and a valid HMAC_224 length, but the spec is bound in the AAD.
        assert!(unwrap_spec_material(&dk(1), "key-1", 2, AwsKeySpec::Hmac224, &w).is_err());
        assert!(unwrap_spec_material(&dk(2), "key-1", 2, AwsKeySpec::Hmac256, &w).is_err());
    }

    #[test]
    fn spec_material_and_symmetric_material_are_not_interchangeable() {
        let sym = SecretKeyMaterial::generate(AwsKeySpec::SymmetricDefault).unwrap();
        let w = wrap_spec_material(&dk(1), "k", 1, &sym);
        assert!(unwrap_material(&dk(1), "k", 1, &w).is_err());
        let w = wrap_material(&dk(1), "k", 1, &KeyMaterial::generate());
        assert!(unwrap_spec_material(&dk(1), "k", 1, AwsKeySpec::SymmetricDefault, &w).is_err());
    }

    #[test]
    fn ecc_material_round_trips_through_spec_wrapping() {
        let m = SecretKeyMaterial::generate(AwsKeySpec::EccNistP256).unwrap();
        let w = wrap_spec_material(&dk(3), "ecc", 1, &m);
        let back = unwrap_spec_material(&dk(3), "ecc", 1, AwsKeySpec::EccNistP256, &w).unwrap();
        assert_eq!(back.public_key_der().unwrap(), m.public_key_der().unwrap());
    }

    #[test]
    fn access_secret_round_trips_and_is_bound_to_its_access_key_id() {
        let s = Secret::new(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_vec());
        let w = wrap_access_secret(&dk(4), "AKIAEXAMPLE", &s);
        assert!(unwrap_access_secret(&dk(4), "AKIAEXAMPLE", &w).unwrap() == s);
        assert!(unwrap_access_secret(&dk(4), "AKIAOTHER", &w).is_err());
    }

    #[test]
    fn wrapped_material_cannot_be_unwrapped_as_an_access_secret() {
        // Purpose labels keep one kind of wrapped blob from being replayed as another.
        let w = wrap_material(&dk(1), "AKIAEXAMPLE", 1, &KeyMaterial::generate());
        assert!(unwrap_access_secret(&dk(1), "AKIAEXAMPLE", &w).is_err());
    }

    #[test]
    fn domain_key_and_material_reject_wrong_lengths() {
        assert!(DomainKey::from_bytes(1, &[0; 31]).is_err());
        assert!(DomainKey::from_bytes(1, &[0; 33]).is_err());
        assert!(KeyMaterial::from_bytes(&[0; 16]).is_err());
        assert_eq!(DomainKey::generate(9).version(), 9);
    }

    #[test]
    fn generated_secrets_are_random_and_sized() {
        assert_eq!(random_secret(0).len(), 0);
        assert!(random_secret(0).is_empty());
        assert_eq!(random_secret(64).len(), 64);
        assert!(random_secret(32) != random_secret(32));
        assert!(KeyMaterial::generate() != KeyMaterial::generate());
        assert!(DomainKey::generate(1) != DomainKey::generate(1));
    }

    #[test]
    fn secret_equality_compares_content_and_length() {
        assert!(Secret::new(vec![1, 2, 3]) == Secret::new(vec![1, 2, 3]));
        assert!(Secret::new(vec![1, 2, 3]) != Secret::new(vec![1, 2, 4]));
        assert!(Secret::new(vec![1, 2]) != Secret::new(vec![1, 2, 3]));
    }

    #[test]
    fn sha256_matches_the_fips_test_vector() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha256_accepts_keys_longer_than_a_block() {
        let long = [0xaa; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &long,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn ct_eq_is_plain_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
