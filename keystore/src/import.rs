//! Bring Your Own Key: importing customer key material into keys of origin `EXTERNAL`, as
//! AWS KMS does it (GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial,
//! expiry of imported material).
//!
//! # Layout
//!
//! ```text
//!  front: GetParametersForImport
//!     WrappingKeyPair (RSA 2048/3072/4096, PKCS#8) --wrap_wrapping_key(dk, key, token id)-->
//!     Command::PutImportParameters { wrapped private key, public key, token id, algorithm }
//!     apply: KeyImport.parameters, valid for 24 h from the leader's clock
//!     ImportToken = encode_token(dk, key id, token id)   (MAC'd; unforgeable without dk)
//!  front: ImportKeyMaterial
//!     decode_token -> unwrap_wrapping_key -> unwrap_import(alg, EncryptedKeyMaterial)
//!     -> validate for the key spec -> fingerprint(dk) -> wrap under dk (version 1)
//!     Command::ImportKeyMaterial { token id, material, fingerprint, expiry }
//!     apply: token still current and unexpired, same material as before (fingerprint)
//!  leader scheduler: due_expirations(state, now) -> Command::ExpireImportedMaterial
//! ```
//!
//! Imported material keeps material version 1 across re-imports: AWS only accepts the same
//! material again, so ciphertexts made before a deletion or expiry decrypt after re-import.
//! "The same" is decided on a keyed fingerprint (HMAC under a domain-key-derived key), so
//! storage nodes can compare it without ever seeing the material.
//!
//! `RSA_AES_KEY_WRAP_SHA_*` is RSA-OAEP of an ephemeral 256-bit AES key followed by AES key
//! wrap with padding (RFC 5649 / NIST SP 800-38F KWP) of the material, from aws-lc-rs.

use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_128, AES_256};
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::command::{Change, Command, CommandOutput};
use crate::crypto::{self, ct_eq, hmac_sha256, DomainKey, Secret};
use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::model::{
    EpochMillis, KeyRecord, KeySpec, KeyState, MaterialVersion, Origin, State, Wrapped,
};
use crate::state::state_phrase;

/// How long GetParametersForImport's public key and import token stay valid.
pub const IMPORT_PARAMETERS_VALID_MS: u64 = 24 * 60 * 60 * 1000;
/// Latest `ValidTo` ImportKeyMaterial accepts, from now (AWS: 365 days).
pub const MAX_VALID_TO_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// Bytes of the random id an import token names.
pub const TOKEN_ID_LEN: usize = 16;

const LABEL_WRAPPING_KEY: &[u8] = b"keyraft/v1/wrap/import-wrapping-key";
const LABEL_TOKEN_KEY: &[u8] = b"keyraft/v1/import-token-mac-key";
const LABEL_FINGERPRINT_KEY: &[u8] = b"keyraft/v1/import-fingerprint-key";
const TOKEN_MAGIC: &[u8; 5] = b"KRIT1";
const TAG_LEN: usize = 32;

/// `WrappingAlgorithm` of GetParametersForImport (the ones keyraft accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WrappingAlgorithm {
    /// RSA-OAEP, SHA-1 (and MGF1-SHA-1), empty label.
    RsaesOaepSha1,
    /// RSA-OAEP, SHA-256 (and MGF1-SHA-256), empty label.
    RsaesOaepSha256,
    /// RSA-OAEP-SHA-1 of an AES-256 key, then AES-KWP of the material.
    RsaAesKeyWrapSha1,
    /// RSA-OAEP-SHA-256 of an AES-256 key, then AES-KWP of the material.
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    /// Every accepted value.
    pub const ALL: &'static [WrappingAlgorithm] = &[
        WrappingAlgorithm::RsaesOaepSha1,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ];

    /// The AWS wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            WrappingAlgorithm::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            WrappingAlgorithm::RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
            WrappingAlgorithm::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
        }
    }

    /// Parses the wire string; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => {
                &OAEP_SHA1_MGF1SHA1
            }
            WrappingAlgorithm::RsaesOaepSha256 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
                &OAEP_SHA256_MGF1SHA256
            }
        }
    }

    fn is_key_wrap(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        )
    }
}

/// `ExpirationModel` of ImportKeyMaterial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpirationModel {
    /// The material expires at `ValidTo`.
    KeyMaterialExpires,
    /// The material never expires.
    KeyMaterialDoesNotExpire,
}

impl ExpirationModel {
    /// The AWS wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpirationModel::KeyMaterialExpires => "KEY_MATERIAL_EXPIRES",
            ExpirationModel::KeyMaterialDoesNotExpire => "KEY_MATERIAL_DOES_NOT_EXPIRE",
        }
    }

    /// Parses the wire string; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ExpirationModel::KeyMaterialExpires,
            ExpirationModel::KeyMaterialDoesNotExpire,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// The public key and import token GetParametersForImport handed out last (only the newest
/// pair is accepted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportParameters {
    /// Hex of the random id the import token names.
    pub token_id: String,
    /// How the customer wraps the material.
    pub wrapping_algorithm: WrappingAlgorithm,
    /// `RSA_2048` / `RSA_3072` / `RSA_4096`.
    pub wrapping_key_spec: KeySpec,
    /// The RSA private key (PKCS#8), wrapped under the domain key ([`wrap_wrapping_key`]).
    pub wrapped_private_key: Wrapped,
    /// The RSA public key, DER `SubjectPublicKeyInfo`.
    pub public_key: Vec<u8>,
    /// When the parameters stop working; set by `apply` from the leader's clock.
    pub valid_to: EpochMillis,
}

/// What a key of origin `EXTERNAL` records about its imported material. The default is
/// "nothing imported yet", which is also what records written before import existed read as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyImport {
    /// The newest GetParametersForImport answer.
    pub parameters: Option<ImportParameters>,
    /// The expiration model of the material currently imported.
    pub expiration_model: Option<ExpirationModel>,
    /// When the current material expires (KEY_MATERIAL_EXPIRES only).
    pub valid_to: Option<EpochMillis>,
    /// Keyed fingerprint of the first material ever imported ([`fingerprint`]): re-imports
    /// must match it.
    pub fingerprint: Option<Vec<u8>>,
}

// ---- crypto ------------------------------------------------------------------------------

fn wrapping_key_aad(key_id: &str, token_id: &str, dk_version: u32) -> Vec<u8> {
    let mut aad = crypto::wrap_aad(LABEL_WRAPPING_KEY, key_id, None, dk_version);
    aad.extend_from_slice(token_id.as_bytes());
    aad
}

/// A fresh RSA wrapping key pair of `spec` (`RSA_2048/3072/4096`): the private half as
/// PKCS#8 material, the public half as DER SPKI.
pub fn generate_wrapping_key(spec: KeySpec) -> Result<(SecretKeyMaterial, Vec<u8>), DomainError> {
    if spec.rsa_bits().is_none() {
        return Err(DomainError::Validation(format!(
            "{spec} is not a valid wrapping key spec"
        )));
    }
    let private = SecretKeyMaterial::generate(spec)?;
    let public = private.public_key_der()?;
    Ok((private, public))
}

/// Wraps an import wrapping private key under the domain key, bound to the key and token id.
pub fn wrap_wrapping_key(
    dk: &DomainKey,
    key_id: &str,
    token_id: &str,
    private: &SecretKeyMaterial,
) -> Wrapped {
    let aad = wrapping_key_aad(key_id, token_id, dk.version());
    crypto::seal_wrapped(dk, &aad, private.expose_secret())
}

/// Unwraps what [`wrap_wrapping_key`] wrapped for the same key and token id.
pub fn unwrap_wrapping_key(
    dk: &DomainKey,
    key_id: &str,
    params: &ImportParameters,
) -> Result<SecretKeyMaterial, DomainError> {
    let w = &params.wrapped_private_key;
    let aad = wrapping_key_aad(key_id, &params.token_id, w.domain_key_version);
    let plain = Secret::new(crypto::open_wrapped(dk, &aad, w, "import wrapping key")?);
    SecretKeyMaterial::from_bytes(params.wrapping_key_spec, plain.expose_secret())
        .map_err(|_| DomainError::Internal("import wrapping key does not parse".into()))
}

fn token_mac(dk: &DomainKey, body: &[u8]) -> [u8; 32] {
    let mut label = LABEL_TOKEN_KEY.to_vec();
    label.extend_from_slice(&dk.version().to_be_bytes());
    let mac_key = Zeroizing::new(hmac_sha256(dk.expose_secret(), &label));
    hmac_sha256(mac_key.as_ref(), body)
}

/// A fresh random token id (hex).
pub fn new_token_id() -> String {
    let mut id = [0u8; TOKEN_ID_LEN];
    crypto::fill_random(&mut id);
    hex::encode(id)
}

/// The opaque ImportToken: `KRIT1 || len || key id || token id || HMAC` under a key derived
/// from the domain key, so nobody without it can make or alter one.
pub fn encode_token(dk: &DomainKey, key_id: &str, token_id: &str) -> Vec<u8> {
    let mut body = TOKEN_MAGIC.to_vec();
    body.push(u8::try_from(key_id.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(key_id.as_bytes());
    body.extend_from_slice(token_id.as_bytes());
    let tag = token_mac(dk, &body);
    body.extend_from_slice(&tag);
    body
}

fn invalid_token() -> DomainError {
    DomainError::InvalidImportToken("Import token is invalid.".into())
}

/// Checks a token's MAC and returns the (key id, token id) it names.
/// [`DomainError::InvalidImportToken`] for anything malformed or altered.
pub fn decode_token(dk: &DomainKey, token: &[u8]) -> Result<(String, String), DomainError> {
    if token.len() < TOKEN_MAGIC.len() + 1 + TAG_LEN || !token.starts_with(TOKEN_MAGIC) {
        return Err(invalid_token());
    }
    let (body, tag) = token.split_at(token.len() - TAG_LEN);
    if !ct_eq(&token_mac(dk, body), tag) {
        return Err(invalid_token());
    }
    let rest = &body[TOKEN_MAGIC.len()..];
    let id_len = usize::from(rest[0]);
    let rest = &rest[1..];
    if rest.len() != id_len + 2 * TOKEN_ID_LEN {
        return Err(invalid_token());
    }
    let (key_id, token_id) = rest.split_at(id_len);
    let key_id = String::from_utf8(key_id.to_vec()).map_err(|_| invalid_token())?;
    let token_id = String::from_utf8(token_id.to_vec()).map_err(|_| invalid_token())?;
    Ok((key_id, token_id))
}

/// The keyed fingerprint of imported material: equal material for the same key and spec
/// gives an equal fingerprint; without the domain key it reveals nothing about the material.
pub fn fingerprint(dk: &DomainKey, key_id: &str, spec: KeySpec, material: &[u8]) -> Vec<u8> {
    let fp_key = Zeroizing::new(hmac_sha256(dk.expose_secret(), LABEL_FINGERPRINT_KEY));
    let mut data = Zeroizing::new(Vec::with_capacity(material.len() + key_id.len() + 40));
    data.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
    data.extend_from_slice(key_id.as_bytes());
    data.extend_from_slice(&(spec.as_str().len() as u64).to_be_bytes());
    data.extend_from_slice(spec.as_str().as_bytes());
    data.extend_from_slice(material);
    hmac_sha256(fp_key.as_ref(), &data).to_vec()
}

fn kek(key: &[u8]) -> Result<AesKek, DomainError> {
    let cipher = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        n => {
            return Err(DomainError::Validation(format!(
                "an AES key-wrapping key is 16 or 32 bytes, got {n}"
            )))
        }
    };
    AesKek::new(cipher, key).map_err(|_| DomainError::Internal("AES KEK setup failed".into()))
}

/// AES key wrap with padding (RFC 5649, NIST SP 800-38F KWP) under a 128- or 256-bit KEK.
pub fn aes_kwp_wrap(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, DomainError> {
    let mut out = vec![0u8; plaintext.len() + 16];
    let n = kek(key)?
        .wrap_with_padding(plaintext, &mut out)
        .map_err(|_| DomainError::Validation("AES-KWP cannot wrap this input".into()))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Inverse of [`aes_kwp_wrap`]; any integrity failure is [`DomainError::InvalidCiphertext`].
pub fn aes_kwp_unwrap(key: &[u8], ciphertext: &[u8]) -> Result<Secret, DomainError> {
    let kek = kek(key)?;
    if ciphertext.len() < 16 || !ciphertext.len().is_multiple_of(8) {
        return Err(DomainError::InvalidCiphertext);
    }
    let mut out = Zeroizing::new(vec![0u8; ciphertext.len()]);
    let plain = kek
        .unwrap_with_padding(ciphertext, &mut out)
        .map_err(|_| DomainError::InvalidCiphertext)?;
    Ok(Secret::new(plain.to_vec()))
}

/// Decrypts `EncryptedKeyMaterial` with the wrapping private key. Every failure of the
/// ciphertext itself is [`DomainError::InvalidCiphertext`] (one answer, no padding oracle).
pub fn unwrap_import(
    wrapping: &SecretKeyMaterial,
    alg: WrappingAlgorithm,
    encrypted: &[u8],
) -> Result<Secret, DomainError> {
    let private = PrivateDecryptingKey::from_pkcs8(wrapping.expose_secret())
        .map_err(|_| DomainError::Internal("import wrapping key does not parse".into()))?;
    let oaep = OaepPrivateDecryptingKey::new(private)
        .map_err(|_| DomainError::Internal("import wrapping key is not usable".into()))?;
    let k = oaep.key_size_bytes();
    let decrypt = |ct: &[u8]| -> Result<Secret, DomainError> {
        if ct.len() != k {
            return Err(DomainError::InvalidCiphertext);
        }
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let plain = oaep
            .decrypt(alg.oaep(), ct, &mut out, None)
            .map_err(|_| DomainError::InvalidCiphertext)?;
        Ok(Secret::new(plain.to_vec()))
    };
    if !alg.is_key_wrap() {
        return decrypt(encrypted);
    }
    if encrypted.len() <= k {
        return Err(DomainError::InvalidCiphertext);
    }
    let (head, tail) = encrypted.split_at(k);
    let aes_key = decrypt(head)?;
    if aes_key.len() != 32 {
        return Err(DomainError::InvalidCiphertext);
    }
    aes_kwp_unwrap(aes_key.expose_secret(), tail)
}

/// What a client does offline with GetParametersForImport's public key (tests, tools):
/// wraps `material` for import with `alg`.
pub fn wrap_for_import(
    public_key_der: &[u8],
    alg: WrappingAlgorithm,
    material: &[u8],
) -> Result<Vec<u8>, DomainError> {
    let bad_key = || DomainError::Validation("not an RSA public key".into());
    let public = PublicEncryptingKey::from_der(public_key_der).map_err(|_| bad_key())?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| bad_key())?;
    let encrypt = |pt: &[u8]| -> Result<Vec<u8>, DomainError> {
        let mut out = vec![0u8; oaep.ciphertext_size()];
        let n = oaep
            .encrypt(alg.oaep(), pt, &mut out, None)
            .map_err(|_| DomainError::Validation("material too long for RSA-OAEP".into()))?
            .len();
        out.truncate(n);
        Ok(out)
    };
    if !alg.is_key_wrap() {
        return encrypt(material);
    }
    let aes_key = crypto::random_secret(32);
    let mut out = encrypt(aes_key.expose_secret())?;
    out.extend_from_slice(&aes_kwp_wrap(aes_key.expose_secret(), material)?);
    Ok(out)
}

// ---- rules ---------------------------------------------------------------------------------

/// Import operations exist only for keys of origin `EXTERNAL`.
pub fn check_importable(key: &KeyRecord) -> Result<(), DomainError> {
    if key.origin != Origin::External {
        return Err(DomainError::UnsupportedOperation(format!(
            "{} origin is AWS_KMS which is not valid for this operation.",
            key.arn
        )));
    }
    Ok(())
}

/// GetParametersForImport and ImportKeyMaterial work while the key is enabled, disabled or
/// waiting for material; anything else (pending deletion above all) is `KMSInvalidStateException`.
pub fn check_import_state(key: &KeyRecord) -> Result<(), DomainError> {
    match key.state {
        KeyState::Enabled | KeyState::Disabled | KeyState::PendingImport | KeyState::Updating => {
            Ok(())
        }
        other => Err(DomainError::InvalidState(format!(
            "{} is {}.",
            key.arn,
            state_phrase(other)
        ))),
    }
}

/// DeleteImportedKeyMaterial also works on a key pending deletion (it stays pending).
pub fn check_delete_state(key: &KeyRecord) -> Result<(), DomainError> {
    match key.state {
        KeyState::PendingDeletion => Ok(()),
        _ => check_import_state(key),
    }
}

/// Keys whose imported material has expired: what the leader proposes
/// [`Command::ExpireImportedMaterial`] for.
pub fn due_expirations(state: &State, now: EpochMillis) -> Vec<Command> {
    state
        .keys
        .values()
        .filter(|k| is_expired(k, now))
        .map(|k| Command::ExpireImportedMaterial {
            key_id: k.key_id.clone(),
        })
        .collect()
}

fn is_expired(key: &KeyRecord, now: EpochMillis) -> bool {
    key.origin == Origin::External
        && !key.materials.is_empty()
        && key.import.expiration_model == Some(ExpirationModel::KeyMaterialExpires)
        && key.import.valid_to.is_some_and(|v| v <= now)
}

/// Material gone: back to PendingImport (a key pending deletion stays so).
fn remove_material(key: &mut KeyRecord) {
    key.materials.clear();
    key.import.valid_to = None;
    key.import.expiration_model = None;
    if key.state != KeyState::PendingDeletion {
        key.state = KeyState::PendingImport;
    }
}

fn key_mut<'a>(state: &'a mut State, key_id: &str) -> Result<&'a mut KeyRecord, DomainError> {
    state
        .keys
        .get_mut(key_id)
        .ok_or_else(|| DomainError::NotFound(format!("Key '{key_id}' does not exist")))
}

/// `apply` for the import commands; any other command is a programming error.
pub(crate) fn apply_import(
    state: &mut State,
    now: EpochMillis,
    command: &Command,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    match command {
        Command::PutImportParameters { key_id, parameters } => {
            let key = key_mut(state, key_id)?;
            check_importable(key)?;
            check_import_state(key)?;
            let mut p = parameters.clone();
            p.valid_to = now.saturating_add(IMPORT_PARAMETERS_VALID_MS);
            key.import.parameters = Some(p);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::ImportKeyMaterial {
            key_id,
            token_id,
            material,
            fingerprint,
            expiration_model,
            valid_to,
        } => {
            let key = key_mut(state, key_id)?;
            check_importable(key)?;
            check_import_state(key)?;
            let params = key
                .import
                .parameters
                .as_ref()
                .filter(|p| p.token_id == *token_id)
                .ok_or_else(invalid_token)?;
            if params.valid_to <= now {
                return Err(DomainError::ExpiredImportToken(
                    "The import token has expired. Use GetParametersForImport to get a new \
                     import token and public key."
                        .into(),
                ));
            }
            if let Some(previous) = &key.import.fingerprint {
                if !ct_eq(previous, fingerprint) {
                    return Err(DomainError::IncorrectKeyMaterial(format!(
                        "The key material is not the key material previously imported into {}.",
                        key.arn
                    )));
                }
            }
            match (expiration_model, valid_to) {
                (ExpirationModel::KeyMaterialExpires, Some(_))
                | (ExpirationModel::KeyMaterialDoesNotExpire, None) => {}
                _ => {
                    return Err(DomainError::Validation(
                        "ValidTo is required with KEY_MATERIAL_EXPIRES and not allowed with \
                         KEY_MATERIAL_DOES_NOT_EXPIRE."
                            .into(),
                    ))
                }
            }
            if material.version != 1 {
                return Err(DomainError::Internal(
                    "imported material must be version 1".into(),
                ));
            }
            let mut m = material.clone();
            m.created_at = now;
            key.materials = vec![m];
            key.current_material_version = 1;
            key.import.fingerprint = Some(fingerprint.clone());
            key.import.expiration_model = Some(*expiration_model);
            key.import.valid_to = *valid_to;
            if key.state == KeyState::PendingImport {
                key.state = KeyState::Enabled;
            }
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::DeleteImportedKeyMaterial { key_id } => {
            let key = key_mut(state, key_id)?;
            check_importable(key)?;
            check_delete_state(key)?;
            remove_material(key);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::ExpireImportedMaterial { key_id } => {
            // Idempotent: only a key whose material is present and past its ValidTo changes,
            // so a repeated proposal (leader change, retry) is a no-op.
            let Some(key) = state.keys.get_mut(key_id) else {
                return Ok(CommandOutput::Done);
            };
            if !is_expired(key, now) {
                return Ok(CommandOutput::Done);
            }
            remove_material(key);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        _ => Err(DomainError::Internal(
            "apply_import called with a non-import command".into(),
        )),
    }
}

/// The material version an import creates (always 1, see the module docs).
pub fn imported_version(wrapped: Wrapped, now: EpochMillis) -> MaterialVersion {
    MaterialVersion {
        version: 1,
        wrapped,
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk() -> DomainKey {
        DomainKey::from_bytes(1, &[9u8; 32]).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_any_change_is_refused() {
        let id = new_token_id();
        let t = encode_token(&dk(), "key-1", &id);
        assert_eq!(decode_token(&dk(), &t).unwrap(), ("key-1".into(), id));
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 1;
            assert_eq!(decode_token(&dk(), &bad), Err(invalid_token()), "byte {i}");
        }
        let other = DomainKey::from_bytes(1, &[8u8; 32]).unwrap();
        assert!(decode_token(&other, &t).is_err());
        assert!(decode_token(&dk(), &t[..t.len() - 1]).is_err());
        assert!(decode_token(&dk(), b"").is_err());
    }

    #[test]
    fn fingerprints_depend_on_material_key_and_domain_key() {
        let a = fingerprint(&dk(), "k", KeySpec::SymmetricDefault, &[1; 32]);
        assert_eq!(
            a,
            fingerprint(&dk(), "k", KeySpec::SymmetricDefault, &[1; 32])
        );
        assert_ne!(
            a,
            fingerprint(&dk(), "k", KeySpec::SymmetricDefault, &[2; 32])
        );
        assert_ne!(
            a,
            fingerprint(&dk(), "j", KeySpec::SymmetricDefault, &[1; 32])
        );
        let other = DomainKey::from_bytes(1, &[8u8; 32]).unwrap();
        assert_ne!(
            a,
            fingerprint(&other, "k", KeySpec::SymmetricDefault, &[1; 32])
        );
    }

    #[test]
    fn every_wrapping_algorithm_round_trips_and_tampering_is_invalid_ciphertext() {
        let (private, public) = generate_wrapping_key(KeySpec::Rsa2048).unwrap();
        for alg in WrappingAlgorithm::ALL {
            let ct = wrap_for_import(&public, *alg, &[0x42; 32]).unwrap();
            let pt = unwrap_import(&private, *alg, &ct).unwrap();
            assert_eq!(pt.expose_secret(), &[0x42; 32], "{alg:?}");
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(
                unwrap_import(&private, *alg, &bad).err(),
                Some(DomainError::InvalidCiphertext)
            );
            assert!(unwrap_import(&private, *alg, &ct[..ct.len() - 8]).is_err());
        }
    }

    #[test]
    fn wrapping_keys_round_trip_bound_to_key_and_token() {
        let (private, public) = generate_wrapping_key(KeySpec::Rsa2048).unwrap();
        let token_id = new_token_id();
        let mut params = ImportParameters {
            token_id: token_id.clone(),
            wrapping_algorithm: WrappingAlgorithm::RsaesOaepSha256,
            wrapping_key_spec: KeySpec::Rsa2048,
            wrapped_private_key: wrap_wrapping_key(&dk(), "k", &token_id, &private),
            public_key: public,
            valid_to: 0,
        };
        assert!(unwrap_wrapping_key(&dk(), "k", &params).unwrap() == private);
        assert!(unwrap_wrapping_key(&dk(), "j", &params).is_err());
        params.token_id = new_token_id();
        assert!(unwrap_wrapping_key(&dk(), "k", &params).is_err());
    }
}
