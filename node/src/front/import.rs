//! Imported key material (BYOK) over the AWS API — GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial — for keys created with `Origin: EXTERNAL` (design:
//! `keystore::import`).
//!
//! A child module of `ops`, so it shares `Kms`'s private plumbing (resolve, authorize,
//! propose) without widening it.
//!
//! # Data flow
//!
//! ```text
//!  GetParametersForImport: RSA pair (spawn_blocking) -> private half wrapped under the domain
//!      key -> PutImportParameters (Raft; valid 24 h from the leader's clock)
//!      -> PublicKey, ImportToken (MAC'd key id + token id), ParametersValidTo
//!  ImportKeyMaterial: token MAC -> stored parameters -> unwrap the wrapping key -> decrypt the
//!      material -> validate for the spec -> fingerprint + wrap under the domain key
//!      -> ImportKeyMaterial (Raft: token current and unexpired, same material as before)
//!  DeleteImportedKeyMaterial -> Raft; the leader's scheduler does the same at ValidTo.
//! ```
//!
//! The customer's material exists unwrapped only inside this front, in zeroizing types.

use keystore::import::{self as imp, ExpirationModel, ImportParameters, WrappingAlgorithm};
use keystore::material::SecretKeyMaterial;
use keystore::model::KeySpec;
use serde::{Deserialize, Serialize};

use super::*;

const WRAPPING_ALGORITHMS: &[&str] = &[
    "RSAES_PKCS1_V1_5",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
    "SM2PKE",
];
const WRAPPING_KEY_SPECS: &[&str] = &["RSA_2048", "RSA_3072", "RSA_4096", "SM2"];
const EXPIRATION_MODELS: &[&str] = &["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"];
/// Longest `ImportToken` / `EncryptedKeyMaterial` accepted (AWS's model: 32768 bytes).
const MAX_IMPORT_BLOB: usize = 32_768;

// ---- shapes ------------------------------------------------------------------------------

/// `GetParametersForImportRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportRequest {
    /// Key id or key ARN.
    #[serde(default)]
    pub key_id: Option<String>,
    /// How the material will be wrapped.
    #[serde(default)]
    pub wrapping_algorithm: Option<String>,
    /// `RSA_2048` | `RSA_3072` | `RSA_4096`.
    #[serde(default)]
    pub wrapping_key_spec: Option<String>,
}

/// `GetParametersForImportResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportResponse {
    /// Key ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Opaque; pass it back to ImportKeyMaterial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_token: Option<Blob>,
    /// DER `SubjectPublicKeyInfo` of the RSA wrapping key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Blob>,
    /// When the token and public key stop working (24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_valid_to: Option<EpochSeconds>,
}

/// `ImportKeyMaterialRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialRequest {
    /// Key id or key ARN.
    #[serde(default)]
    pub key_id: Option<String>,
    /// From GetParametersForImport.
    #[serde(default)]
    pub import_token: Option<Blob>,
    /// The material, wrapped with the public key.
    #[serde(default)]
    pub encrypted_key_material: Option<Blob>,
    /// When the material expires (with KEY_MATERIAL_EXPIRES).
    #[serde(default)]
    pub valid_to: Option<EpochSeconds>,
    /// `KEY_MATERIAL_EXPIRES` | `KEY_MATERIAL_DOES_NOT_EXPIRE`.
    #[serde(default)]
    pub expiration_model: Option<String>,
    /// `EXISTING_KEY_MATERIAL` (the default); `NEW_KEY_MATERIAL` is not supported.
    #[serde(default)]
    pub import_type: Option<String>,
    /// Accepted, ignored.
    #[serde(default)]
    pub key_material_description: Option<String>,
    /// Accepted, ignored.
    #[serde(default)]
    pub key_material_id: Option<String>,
}

// ---- helpers -----------------------------------------------------------------------------

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, keystore::error::DomainError> + Send + 'static,
) -> Result<T, KmsError> {
    // RSA key generation is CPU work for up to seconds (4096 bits): off the async workers.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| KmsError::internal())?
        .map_err(KmsError::from)
}

fn import_blob(member: &str, b: Option<Blob>) -> Result<Vec<u8>, KmsError> {
    let b = require(b, member)?.0;
    if b.is_empty() || b.len() > MAX_IMPORT_BLOB {
        return Err(KmsError::constraint(
            member,
            "(blob)",
            &format!("Member must have length between 1 and {MAX_IMPORT_BLOB}"),
        ));
    }
    Ok(b)
}

/// ExpirationModel / ValidTo as AWS pairs them; `ValidTo` alone implies expiry.
fn expiration(
    model: Option<String>,
    valid_to: Option<EpochSeconds>,
    now: u64,
) -> Result<(ExpirationModel, Option<u64>), KmsError> {
    if let Some(m) = &model {
        check_enum("ExpirationModel", m, EXPIRATION_MODELS)?;
    }
    let model = match model.as_deref().and_then(ExpirationModel::parse) {
        Some(m) => m,
        None if valid_to.is_some() => ExpirationModel::KeyMaterialExpires,
        None => ExpirationModel::KeyMaterialDoesNotExpire,
    };
    match (model, valid_to) {
        (ExpirationModel::KeyMaterialDoesNotExpire, None) => Ok((model, None)),
        (ExpirationModel::KeyMaterialDoesNotExpire, Some(_)) => Err(KmsError::Validation(
            "ValidTo must not be set when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.".into(),
        )),
        (ExpirationModel::KeyMaterialExpires, None) => Err(KmsError::Validation(
            "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES.".into(),
        )),
        (ExpirationModel::KeyMaterialExpires, Some(secs)) => {
            let millis = if secs.is_finite() && secs > 0.0 {
                (secs * 1000.0) as u64
            } else {
                0
            };
            if millis <= now {
                return Err(KmsError::Validation(
                    "ValidTo must be a point in time in the future.".into(),
                ));
            }
            if millis > now.saturating_add(imp::MAX_VALID_TO_MS) {
                return Err(KmsError::Validation(
                    "ValidTo must be at most 365 days in the future.".into(),
                ));
            }
            Ok((model, Some(millis)))
        }
    }
}

impl Kms {
    /// Runs an import operation with a JSON request body.
    pub(super) async fn dispatch_import(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use Operation as O;
        match op {
            O::GetParametersForImport => to_body(
                &self
                    .get_parameters_for_import(caller, parse_request(body)?)
                    .await?,
            ),
            O::ImportKeyMaterial => to_body(
                &self
                    .import_key_material(caller, parse_request(body)?)
                    .await?,
            ),
            O::DeleteImportedKeyMaterial => to_body(
                &self
                    .delete_imported_key_material(caller, parse_request(body)?)
                    .await?,
            ),
            _ => Err(KmsError::internal()),
        }
    }

    /// GetParametersForImport: a fresh RSA wrapping key pair and import token, valid 24 h.
    /// Each call replaces the previous parameters.
    pub async fn get_parameters_for_import(
        &self,
        caller: &Caller,
        req: GetParametersForImportRequest,
    ) -> Result<GetParametersForImportResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let alg = require(req.wrapping_algorithm, "WrappingAlgorithm")?;
        check_enum("WrappingAlgorithm", &alg, WRAPPING_ALGORITHMS)?;
        let spec = require(req.wrapping_key_spec, "WrappingKeySpec")?;
        check_enum("WrappingKeySpec", &spec, WRAPPING_KEY_SPECS)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::GetParametersForImport.action(),
            &key,
            Facts::none()
                .with("kms:WrappingAlgorithm", alg.clone())
                .with("kms:WrappingKeySpec", spec.clone()),
        )
        .await?;
        imp::check_importable(&key)?;
        imp::check_import_state(&key)?;
        let alg = WrappingAlgorithm::parse(&alg).ok_or_else(|| {
            KmsError::UnsupportedOperation(format!(
                "WrappingAlgorithm {alg} is not supported; use RSAES_OAEP_SHA_1, \
                 RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256."
            ))
        })?;
        let spec = KeySpec::parse(&spec)
            .ok()
            .filter(|s| s.rsa_bits().is_some())
            .ok_or_else(|| {
                KmsError::UnsupportedOperation(format!("WrappingKeySpec {spec} is not supported."))
            })?;
        let (private, public) = blocking(move || imp::generate_wrapping_key(spec)).await?;
        let token_id = imp::new_token_id();
        let parameters = ImportParameters {
            wrapped_private_key: imp::wrap_wrapping_key(
                &self.domain_key,
                &key.key_id,
                &token_id,
                &private,
            ),
            token_id: token_id.clone(),
            wrapping_algorithm: alg,
            wrapping_key_spec: spec,
            public_key: public.clone(),
            valid_to: 0,
        };
        drop(private);
        let updated = self
            .propose_key(Command::PutImportParameters {
                key_id: key.key_id.clone(),
                parameters,
            })
            .await?;
        let valid_to = updated
            .import
            .parameters
            .as_ref()
            .filter(|p| p.token_id == token_id)
            .map(|p| p.valid_to)
            .ok_or_else(KmsError::internal)?;
        Ok(GetParametersForImportResponse {
            key_id: Some(key.arn.clone()),
            import_token: Some(Blob(imp::encode_token(
                &self.domain_key,
                &key.key_id,
                &token_id,
            ))),
            public_key: Some(Blob(public)),
            parameters_valid_to: Some(epoch_seconds(valid_to)),
        })
    }

    /// ImportKeyMaterial: unwrap the customer's material here, re-wrap it under the domain
    /// key, and let the store check the token and that it is the key's material.
    pub async fn import_key_material(
        &self,
        caller: &Caller,
        req: ImportKeyMaterialRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let token = import_blob("ImportToken", req.import_token)?;
        let encrypted = import_blob("EncryptedKeyMaterial", req.encrypted_key_material)?;
        if let Some(t) = &req.import_type {
            check_enum(
                "ImportType",
                t,
                &["EXISTING_KEY_MATERIAL", "NEW_KEY_MATERIAL"],
            )?;
            // Rotating imported material (a second material per key) is not offered.
            if t == "NEW_KEY_MATERIAL" {
                return Err(KmsError::UnsupportedOperation(
                    "ImportType NEW_KEY_MATERIAL is not supported; imported keys hold one \
                     key material."
                        .into(),
                ));
            }
        }
        let (model, valid_to) = expiration(req.expiration_model, req.valid_to, now_millis())?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ImportKeyMaterial.action(),
            &key,
            Facts::none()
                .with("kms:ExpirationModel", model.as_str())
                // Epoch seconds: AWS's condition operators accept them for timestamps.
                .with_opt("kms:ValidTo", valid_to.map(|ms| (ms / 1000).to_string())),
        )
        .await?;
        imp::check_importable(&key)?;
        imp::check_import_state(&key)?;
        let (token_key_id, token_id) = imp::decode_token(&self.domain_key, &token)?;
        let params = key
            .import
            .parameters
            .as_ref()
            .filter(|p| token_key_id == key.key_id && p.token_id == token_id)
            .ok_or_else(|| KmsError::InvalidImportToken("Import token is invalid.".into()))?;
        let wrapping = imp::unwrap_wrapping_key(&self.domain_key, &key.key_id, params)?;
        let plain = imp::unwrap_import(&wrapping, params.wrapping_algorithm, &encrypted)?;
        drop(wrapping);
        let incorrect = |why: &str| {
            KmsError::IncorrectKeyMaterial(format!(
                "The key material is not valid for a {} key: {why}",
                key.key_spec
            ))
        };
        let fingerprint = imp::fingerprint(
            &self.domain_key,
            &key.key_id,
            key.key_spec,
            plain.expose_secret(),
        );
        let wrapped = if key.key_spec == KeySpec::SymmetricDefault {
            let m = KeyMaterial::from_bytes(plain.expose_secret())
                .map_err(|_| incorrect("symmetric key material is 256 bits"))?;
            crypto::wrap_material(&self.domain_key, &key.key_id, 1, &m)
        } else {
            let m = SecretKeyMaterial::from_bytes(key.key_spec, plain.expose_secret())
                .map_err(|_| incorrect("it does not parse as such a private key"))?;
            crypto::wrap_spec_material(&self.domain_key, &key.key_id, 1, &m)
        };
        drop(plain);
        if key
            .import
            .fingerprint
            .as_ref()
            .is_some_and(|f| !crypto::ct_eq(f, &fingerprint))
        {
            return Err(KmsError::IncorrectKeyMaterial(format!(
                "The key material is not the key material previously imported into {}.",
                key.arn
            )));
        }
        self.propose(Command::ImportKeyMaterial {
            key_id: key.key_id.clone(),
            token_id,
            material: imp::imported_version(wrapped, now_millis()),
            fingerprint,
            expiration_model: model,
            valid_to,
        })
        .await?;
        Ok(Empty {})
    }

    /// DeleteImportedKeyMaterial: the material is gone at once; the key waits for a
    /// re-import (PendingImport) unless it is pending deletion.
    pub async fn delete_imported_key_material(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<Empty, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::DeleteImportedKeyMaterial.action(),
            &key,
            Facts::none(),
        )
        .await?;
        imp::check_importable(&key)?;
        imp::check_delete_state(&key)?;
        self.propose(Command::DeleteImportedKeyMaterial { key_id: key.key_id })
            .await?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_model_and_valid_to_pair_as_aws_pairs_them() {
        let now = 1_000_000;
        let later = (now + 3_600_000) as f64 / 1000.0;
        assert_eq!(
            expiration(None, None, now).unwrap(),
            (ExpirationModel::KeyMaterialDoesNotExpire, None)
        );
        assert_eq!(
            expiration(None, Some(later), now).unwrap(),
            (ExpirationModel::KeyMaterialExpires, Some(now + 3_600_000))
        );
        for (m, v) in [
            (Some("KEY_MATERIAL_EXPIRES"), None),
            (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), Some(later)),
            (Some("KEY_MATERIAL_EXPIRES"), Some(1.0)),
            (Some("KEY_MATERIAL_EXPIRES"), Some(later + 400.0 * 86_400.0)),
            (Some("NEVER"), None),
        ] {
            let e = expiration(m.map(String::from), v, now).unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{m:?} {v:?}");
        }
    }

    mod in_process {
        //! A front over a real in-process storage node.
        use super::*;
        use crate::front::testing::{two_fronts, ADMIN};

        fn admin() -> Caller {
            Caller::from_principal_arn(ADMIN).unwrap()
        }

        async fn external_key(kms: &Kms) -> String {
            kms.create_key(
                &admin(),
                CreateKeyRequest {
                    origin: Some("EXTERNAL".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id
            .unwrap()
        }

        async fn params(kms: &Kms, key_id: &str, alg: &str) -> GetParametersForImportResponse {
            kms.get_parameters_for_import(
                &admin(),
                GetParametersForImportRequest {
                    key_id: Some(key_id.into()),
                    wrapping_algorithm: Some(alg.into()),
                    wrapping_key_spec: Some("RSA_2048".into()),
                },
            )
            .await
            .unwrap()
        }

        async fn import(
            kms: &Kms,
            key_id: &str,
            p: &GetParametersForImportResponse,
            alg: WrappingAlgorithm,
            material: &[u8],
        ) -> Result<Empty, KmsError> {
            let public = &p.public_key.as_ref().unwrap().0;
            let encrypted = imp::wrap_for_import(public, alg, material).unwrap();
            kms.import_key_material(
                &admin(),
                ImportKeyMaterialRequest {
                    key_id: Some(key_id.into()),
                    import_token: p.import_token.clone(),
                    encrypted_key_material: Some(Blob(encrypted)),
                    ..Default::default()
                },
            )
            .await
        }

        #[tokio::test]
        async fn imported_material_encrypts_and_survives_delete_and_reimport() {
            let (a, b, _node) = two_fronts(Duration::from_secs(1)).await;
            let admin = admin();
            let key_id = external_key(&a).await;
            let d = a
                .describe_key(
                    &admin,
                    DescribeKeyRequest {
                        key_id: Some(key_id.clone()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            assert_eq!(d.key_state.as_deref(), Some("PendingImport"));
            assert_eq!(d.origin.as_deref(), Some("EXTERNAL"));
            let req = || EncryptRequest {
                key_id: Some(key_id.clone()),
                plaintext: Some(SecretBlob(Secret::new(b"byok".to_vec()))),
                ..Default::default()
            };
            assert_eq!(
                a.encrypt(&admin, req()).await.unwrap_err().aws_type(),
                "KMSInvalidStateException"
            );

            let p = params(&a, &key_id, "RSA_AES_KEY_WRAP_SHA_256").await;
            import(
                &a,
                &key_id,
                &p,
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                &[7; 32],
            )
            .await
            .unwrap();
            let blob = a
                .encrypt(&admin, req())
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap();

            // A tampered token, other material, short material.
            let mut bad = p.clone();
            bad.import_token.as_mut().unwrap().0[8] ^= 1;
            let e = import(
                &a,
                &key_id,
                &bad,
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                &[7; 32],
            );
            assert_eq!(
                e.await.unwrap_err().aws_type(),
                "InvalidImportTokenException"
            );
            let e = import(
                &a,
                &key_id,
                &p,
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                &[8; 32],
            );
            assert_eq!(
                e.await.unwrap_err().aws_type(),
                "IncorrectKeyMaterialException"
            );
            let e = import(
                &a,
                &key_id,
                &p,
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                &[7; 16],
            );
            assert_eq!(
                e.await.unwrap_err().aws_type(),
                "IncorrectKeyMaterialException"
            );

            a.delete_imported_key_material(
                &admin,
                KeyIdRequest {
                    key_id: Some(key_id.clone()),
                },
            )
            .await
            .unwrap();
            assert_eq!(
                a.encrypt(&admin, req()).await.unwrap_err().aws_type(),
                "KMSInvalidStateException"
            );
            // Re-import the same material through the other front, with new parameters.
            let p2 = params(&b, &key_id, "RSAES_OAEP_SHA_256").await;
            let e = import(
                &b,
                &key_id,
                &p,
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                &[7; 32],
            );
            assert_eq!(
                e.await.unwrap_err().aws_type(),
                "InvalidImportTokenException"
            );
            import(
                &b,
                &key_id,
                &p2,
                WrappingAlgorithm::RsaesOaepSha256,
                &[7; 32],
            )
            .await
            .unwrap();
            let out = b
                .decrypt(
                    &admin,
                    DecryptRequest {
                        ciphertext_blob: Some(blob),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(out.plaintext.unwrap().expose_secret(), b"byok");
        }

        #[tokio::test]
        async fn import_operations_refuse_keys_with_generated_material() {
            let (a, _b, _node) = two_fronts(Duration::from_secs(1)).await;
            let key_id = a
                .create_key(&admin(), CreateKeyRequest::default())
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id
                .unwrap();
            let e = a
                .get_parameters_for_import(
                    &admin(),
                    GetParametersForImportRequest {
                        key_id: Some(key_id),
                        wrapping_algorithm: Some("RSAES_OAEP_SHA_256".into()),
                        wrapping_key_spec: Some("RSA_2048".into()),
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.aws_type(), "UnsupportedOperationException");
        }
    }
}
