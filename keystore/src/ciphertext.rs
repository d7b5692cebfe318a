//! The ciphertext blob, format v1 (the full specification is `docs/ciphertext-format.md`).
//!
//! ```text
//! version(1) = 0x01 | key id len(1) | key id (UTF-8) | material version (u32 BE) | salt(32) | AES-256-GCM-SIV ciphertext || tag(16)
//! \____________________________________ header (AAD prefix, HKDF info) ______________________/
//! ```
//!
//! Each message gets its own AES key, `HKDF-SHA256(ikm = material, salt = 32 random bytes,
//! info = label || header)`, so a (key, nonce) pair is never used twice unless two 256-bit
//! random salts collide. AAD = header || canonical encryption context, so the key id, the
//! material version and the context are all authenticated.
//!
//! Every failure to parse or open returns the same [`DomainError::InvalidCiphertext`]: the
//! caller learns nothing about *why* a blob is bad, which is what AWS does and what denies an
//! attacker a padding-oracle-style signal.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::crypto::{fill_random, KeyMaterial, Secret};
use crate::error::DomainError;

/// The format version byte of blobs written by this code.
pub const FORMAT_V1: u8 = 0x01;
/// Bytes of random HKDF salt per message.
pub const SALT_LEN: usize = 32;
/// Bytes of GCM-SIV authentication tag.
pub const TAG_LEN: usize = 16;
/// Longest key id a blob can name.
pub const MAX_KEY_ID_LEN: usize = u8::MAX as usize;
/// HKDF info label; the header follows it.
const HKDF_LABEL: &[u8] = b"keyraft/v1/ciphertext";

/// What a blob says about itself before it is opened: which key and material version made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiphertextHeader {
    /// Id of the KMS key that encrypted it.
    pub key_id: String,
    /// Material version used.
    pub material_version: u32,
}

/// A parsed blob, borrowing from the input.
struct Parsed<'a> {
    header: CiphertextHeader,
    /// Bytes `0..end of salt`.
    header_bytes: &'a [u8],
    salt: &'a [u8],
    body: &'a [u8],
}

fn parse(blob: &[u8]) -> Result<Parsed<'_>, DomainError> {
    let bad = || DomainError::InvalidCiphertext;
    let (&version, rest) = blob.split_first().ok_or_else(bad)?;
    if version != FORMAT_V1 {
        return Err(bad());
    }
    let (&id_len, rest) = rest.split_first().ok_or_else(bad)?;
    let id_len = usize::from(id_len);
    if id_len == 0 || rest.len() < id_len {
        return Err(bad());
    }
    let (id, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(id).map_err(|_| bad())?.to_owned();
    if rest.len() < 4 {
        return Err(bad());
    }
    let (mv, rest) = rest.split_at(4);
    let material_version = u32::from_be_bytes([mv[0], mv[1], mv[2], mv[3]]);
    if rest.len() < SALT_LEN + TAG_LEN {
        return Err(bad());
    }
    let (salt, body) = rest.split_at(SALT_LEN);
    let header_len = blob.len() - body.len();
    Ok(Parsed {
        header: CiphertextHeader {
            key_id,
            material_version,
        },
        header_bytes: &blob[..header_len],
        salt,
        body,
    })
}

/// Reads the header without opening the blob, so the caller can fetch the right key and
/// material version. [`DomainError::InvalidCiphertext`] if the blob is not a well-formed v1
/// blob (it may still fail to open).
pub fn peek_header(blob: &[u8]) -> Result<CiphertextHeader, DomainError> {
    parse(blob).map(|p| p.header)
}

/// The per-message AES key and nonce. Both come from HKDF so that the nonce is not a second
/// source of randomness to get wrong; with a fresh key per message any fixed nonce would do.
fn message_cipher(
    m: &KeyMaterial,
    salt: &[u8],
    header: &[u8],
) -> Result<(Aes256GcmSiv, [u8; 12]), DomainError> {
    let hk = Hkdf::<Sha256>::new(Some(salt), m.expose_secret());
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA256's 8160-byte limit; map anyway rather than panic.
    hk.expand_multi_info(&[HKDF_LABEL, header], okm.as_mut())
        .map_err(|_| DomainError::InvalidCiphertext)?;
    let cipher =
        Aes256GcmSiv::new_from_slice(&okm[..32]).map_err(|_| DomainError::InvalidCiphertext)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..44]);
    Ok((cipher, nonce))
}

fn aad(header: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&ctx.canonical_bytes());
    aad
}

/// Encrypts `plaintext` under one material version of a key, binding `ctx`.
///
/// # Panics
///
/// If `key_id` is empty or longer than [`MAX_KEY_ID_LEN`] bytes. Key ids come from key
/// records, and `apply` refuses to create a key whose id does not fit, so this cannot be
/// reached from a request.
pub fn seal(
    key_id: &str,
    material_version: u32,
    m: &KeyMaterial,
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Vec<u8> {
    let id_len = u8::try_from(key_id.len())
        .ok()
        .filter(|&n| n > 0)
        .expect("key ids are 1..=255 bytes (enforced by apply on CreateKey)");
    let mut blob = Vec::with_capacity(2 + key_id.len() + 4 + SALT_LEN + plaintext.len() + TAG_LEN);
    blob.push(FORMAT_V1);
    blob.push(id_len);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(&material_version.to_be_bytes());
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt);
    blob.extend_from_slice(&salt);

    let (cipher, nonce) = message_cipher(m, &salt, &blob)
        .expect("HKDF and AES key setup cannot fail for fixed sizes");
    let body = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad(&blob, ctx),
            },
        )
        // Only messages beyond GCM-SIV's 2^36-byte limit fail; the front caps plaintexts.
        .expect("AES-GCM-SIV encryption fails only above 64 GiB");
    blob.extend_from_slice(&body);
    blob
}

/// Decrypts a blob made by [`seal`] with the same material and context. Any failure is
/// [`DomainError::InvalidCiphertext`], whatever its cause.
pub fn open(blob: &[u8], m: &KeyMaterial, ctx: &EncryptionContext) -> Result<Secret, DomainError> {
    let p = parse(blob)?;
    let (cipher, nonce) = message_cipher(m, p.salt, p.header_bytes)?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: p.body,
                aad: &aad(p.header_bytes, ctx),
            },
        )
        .map(Secret::new)
        .map_err(|_| DomainError::InvalidCiphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    fn material() -> KeyMaterial {
        KeyMaterial::from_bytes(&[0x42; 32]).unwrap()
    }

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs.iter().copied().collect()
    }

    fn sample() -> (Vec<u8>, EncryptionContext) {
        let c = ctx(&[("Department", "10"), ("Purpose", "Test")]);
        (seal(KEY_ID, 3, &material(), b"hello, kms", &c), c)
    }

    #[test]
    fn sealed_blob_opens_to_the_plaintext() {
        let (blob, c) = sample();
        assert_eq!(
            open(&blob, &material(), &c).unwrap().expose_secret(),
            b"hello, kms"
        );
    }

    #[test]
    fn header_names_key_id_and_material_version() {
        let (blob, _) = sample();
        assert_eq!(
            peek_header(&blob).unwrap(),
            CiphertextHeader {
                key_id: KEY_ID.into(),
                material_version: 3
            }
        );
    }

    #[test]
    fn blob_layout_matches_the_documented_format() {
        let (blob, _) = sample();
        assert_eq!(blob[0], FORMAT_V1);
        assert_eq!(usize::from(blob[1]), KEY_ID.len());
        assert_eq!(&blob[2..2 + KEY_ID.len()], KEY_ID.as_bytes());
        let o = 2 + KEY_ID.len();
        assert_eq!(&blob[o..o + 4], &[0, 0, 0, 3]);
        assert_eq!(blob.len(), o + 4 + SALT_LEN + b"hello, kms".len() + TAG_LEN);
    }

    #[test]
    fn sealing_twice_gives_different_blobs() {
        let c = EncryptionContext::new();
        let a = seal(KEY_ID, 1, &material(), b"same", &c);
        let b = seal(KEY_ID, 1, &material(), b"same", &c);
        assert_ne!(a, b);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let c = EncryptionContext::new();
        let blob = seal(KEY_ID, 1, &material(), b"", &c);
        assert!(open(&blob, &material(), &c).unwrap().is_empty());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let (blob, c) = sample();
        for i in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = blob.clone();
                bad[i] ^= bit;
                assert_eq!(
                    open(&bad, &material(), &c).err(),
                    Some(DomainError::InvalidCiphertext),
                    "byte {i} bit {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let (blob, c) = sample();
        for len in 0..blob.len() {
            assert_eq!(
                open(&blob[..len], &material(), &c).err(),
                Some(DomainError::InvalidCiphertext),
                "length {len}"
            );
        }
    }

    #[test]
    fn truncation_into_the_header_is_rejected_by_peek() {
        let (blob, _) = sample();
        let min = 2 + KEY_ID.len() + 4 + SALT_LEN + TAG_LEN;
        for len in 0..min {
            assert_eq!(
                peek_header(&blob[..len]),
                Err(DomainError::InvalidCiphertext),
                "{len}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let (mut blob, c) = sample();
        blob.push(0);
        assert_eq!(
            open(&blob, &material(), &c).err(),
            Some(DomainError::InvalidCiphertext)
        );
    }

    #[test]
    fn unknown_format_versions_are_rejected() {
        let (blob, c) = sample();
        for v in [0x00u8, 0x02, 0xFF] {
            let mut bad = blob.clone();
            bad[0] = v;
            assert_eq!(peek_header(&bad), Err(DomainError::InvalidCiphertext));
            assert_eq!(
                open(&bad, &material(), &c).err(),
                Some(DomainError::InvalidCiphertext)
            );
        }
    }

    #[test]
    fn empty_and_non_utf8_key_ids_are_rejected() {
        let mut zero_len = vec![FORMAT_V1, 0];
        zero_len.extend_from_slice(&[0u8; 4 + SALT_LEN + TAG_LEN]);
        assert_eq!(peek_header(&zero_len), Err(DomainError::InvalidCiphertext));
        let mut bad_utf8 = vec![FORMAT_V1, 1, 0xFF];
        bad_utf8.extend_from_slice(&[0u8; 4 + SALT_LEN + TAG_LEN]);
        assert_eq!(peek_header(&bad_utf8), Err(DomainError::InvalidCiphertext));
    }

    #[test]
    fn wrong_material_is_rejected() {
        let (blob, c) = sample();
        let other = KeyMaterial::from_bytes(&[0x43; 32]).unwrap();
        assert_eq!(
            open(&blob, &other, &c).err(),
            Some(DomainError::InvalidCiphertext)
        );
    }

    #[test]
    fn context_mismatches_are_rejected() {
        let (blob, _) = sample();
        let wrong = [
            ctx(&[]),
            ctx(&[("Department", "10")]),
            ctx(&[("department", "10"), ("Purpose", "Test")]),
            ctx(&[("Department", "10"), ("Purpose", "test")]),
            ctx(&[("Department", "10"), ("Purpose", "Test"), ("Extra", "1")]),
            ctx(&[("Department", "1"), ("Purpose", "0Test")]),
        ];
        for c in wrong {
            assert_eq!(
                open(&blob, &material(), &c).err(),
                Some(DomainError::InvalidCiphertext),
                "{c:?}"
            );
        }
    }

    #[test]
    fn relabelled_header_is_rejected_even_with_valid_structure() {
        // Swap the material version: still parses, must not open.
        let (mut blob, c) = sample();
        let o = 2 + KEY_ID.len();
        blob[o + 3] = 4;
        assert_eq!(peek_header(&blob).unwrap().material_version, 4);
        assert_eq!(
            open(&blob, &material(), &c).err(),
            Some(DomainError::InvalidCiphertext)
        );
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        for blob in [
            vec![],
            vec![1],
            vec![1, 255],
            vec![0xFF; 300],
            vec![1; 1000],
        ] {
            assert_eq!(
                open(&blob, &material(), &EncryptionContext::new()).err(),
                Some(DomainError::InvalidCiphertext)
            );
        }
    }

    #[test]
    fn longest_key_id_round_trips() {
        let id = "k".repeat(MAX_KEY_ID_LEN);
        let c = EncryptionContext::new();
        let blob = seal(&id, 1, &material(), b"x", &c);
        assert_eq!(peek_header(&blob).unwrap().key_id, id);
        assert_eq!(open(&blob, &material(), &c).unwrap().expose_secret(), b"x");
    }

    proptest! {
        #[test]
        fn any_plaintext_and_context_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..512),
            pairs in proptest::collection::btree_map(".{0,12}", ".{0,12}", 0..6),
            key_id in "[a-zA-Z0-9:/_-]{1,64}",
            version in any::<u32>(),
        ) {
            let m = KeyMaterial::generate();
            let c = EncryptionContext::from_map(pairs);
            let blob = seal(&key_id, version, &m, &plaintext, &c);
            prop_assert_eq!(
                peek_header(&blob).unwrap(),
                CiphertextHeader { key_id: key_id.clone(), material_version: version }
            );
            let opened = open(&blob, &m, &c).unwrap();
            prop_assert_eq!(opened.expose_secret(), plaintext.as_slice());
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_open(blob in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = peek_header(&blob);
            prop_assert_eq!(
                open(&blob, &material(), &EncryptionContext::new()).err(),
                Some(DomainError::InvalidCiphertext)
            );
        }
    }
}
