//! Imported key material (BYOK) through the keyraft Rust SDK (`client::Client`, gRPC + mTLS)
//! against a real three-node dev region: an EXTERNAL key, GetParametersForImport, material
//! wrapped offline for the returned public key, ImportKeyMaterial, encryption over gRPC that
//! decrypts over the AWS JSON API, DeleteImportedKeyMaterial and re-import of the same
//! material, and the import errors as gRPC statuses with `x-kms-error-type`.
//!
//! The material is wrapped with keyraft's own `keystore::rsa_encrypt::encrypt_with_public_key`
//! (RSAES_OAEP_SHA_256 to a DER SubjectPublicKeyInfo, aws-lc-rs underneath): tests may not
//! depend on crypto crates directly, and the Python venv with `cryptography` exists in CI only
//! after the Python step. tests/python/test_import.py covers wrapping by an independent
//! implementation (`cryptography`) over the JSON API, which these adapters share.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use client::{proto, Client};
use keystore::rsa_encrypt::encrypt_with_public_key;
use keystore::spec::{AwsKeySpec, EncryptionAlgorithm};

async fn external_key(kms: &Client) -> proto::KeyMetadata {
    kms.create_key()
        .description("byok")
        .origin("EXTERNAL")
        .send()
        .await
        .unwrap()
        .key_metadata
        .expect("CreateKey returns KeyMetadata")
}

async fn state(kms: &Client, key_id: &str) -> String {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
}

async fn parameters(kms: &Client, key_id: &str) -> proto::GetParametersForImportResponse {
    kms.get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm("RSAES_OAEP_SHA_256")
        .wrapping_key_spec("RSA_2048")
        .send()
        .await
        .unwrap()
}

/// EncryptedKeyMaterial: `material` under the RSA_2048 wrapping key, RSAES_OAEP_SHA_256.
fn wrap(params: &proto::GetParametersForImportResponse, material: &[u8]) -> Vec<u8> {
    encrypt_with_public_key(
        AwsKeySpec::parse("RSA_2048").unwrap(),
        &params.public_key,
        EncryptionAlgorithm::parse("RSAES_OAEP_SHA_256").unwrap(),
        material,
    )
    .unwrap()
}

async fn import(kms: &Client, key_id: &str, material: &[u8]) -> Result<(), client::Error> {
    let params = parameters(kms, key_id).await;
    kms.import_key_material()
        .key_id(key_id)
        .import_token(params.import_token.clone())
        .encrypted_key_material(wrap(&params, material))
        .expiration_model("KEY_MATERIAL_DOES_NOT_EXPIRE")
        .send()
        .await
        .map(|_| ())
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_material_encrypts_over_grpc_decrypts_over_json_and_comes_back_after_deletion() {
    let region = DevRegion::start(port_base_for(70));
    let kms = region.grpc_admin();

    let key = external_key(&kms).await;
    assert_eq!(key.origin, "EXTERNAL");
    assert_eq!(key.key_state, "PendingImport");
    assert!(!key.enabled);

    let params = parameters(&kms, &key.key_id).await;
    assert_eq!(params.key_id, key.arn);
    assert!(params.import_token.len() > 16, "{:?}", params.import_token);
    assert_eq!(params.public_key[0], 0x30, "DER SubjectPublicKeyInfo");
    let valid_to = params.parameters_valid_to.expect("ParametersValidTo");
    assert!(
        (valid_to - (now_secs() + 24.0 * 3600.0)).abs() < 600.0,
        "ParametersValidTo {valid_to} is not 24 h from now"
    );

    // 32 random bytes (from keyraft: tests use no RNG crate), wrapped offline.
    let material = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap()
        .plaintext;
    assert_eq!(material.len(), 32);
    kms.import_key_material()
        .key_id(&key.key_id)
        .import_token(params.import_token.clone())
        .encrypted_key_material(wrap(&params, &material))
        .expiration_model("KEY_MATERIAL_DOES_NOT_EXPIRE")
        .send()
        .await
        .unwrap();
    let meta = kms
        .describe_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, "Enabled");
    assert_eq!(
        meta.expiration_model.as_deref(),
        Some("KEY_MATERIAL_DOES_NOT_EXPIRE")
    );
    assert_eq!(meta.valid_to, None);

    // Encrypt and decrypt over gRPC; the same ciphertext decrypts over the AWS JSON API.
    let ciphertext = kms
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(b"bring your own key".to_vec())
        .send()
        .await
        .unwrap()
        .ciphertext_blob;
    let back = kms
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, b"bring your own key");
    assert_eq!(back.key_id, key.arn);
    let aws = region.admin_client();
    let over_json = aws
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        over_json.plaintext().unwrap().as_ref(),
        b"bring your own key"
    );

    // Deleted material: the key waits for a re-import and refuses cryptography.
    kms.delete_imported_key_material()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &key.key_id).await, "PendingImport");
    let err = kms
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(b"x".to_vec())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "KMSInvalidStateException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err}");

    // Other material is refused; the same material comes back and old ciphertexts decrypt.
    let mut other = material.clone();
    other[0] ^= 0xff;
    let err = import(&kms, &key.key_id, &other).await.unwrap_err();
    assert_eq!(err.error_type(), "IncorrectKeyMaterialException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
    import(&kms, &key.key_id, &material).await.unwrap();
    assert_eq!(state(&kms, &key.key_id).await, "Enabled");
    let back = kms
        .decrypt()
        .ciphertext_blob(ciphertext)
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext, b"bring your own key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_errors_are_aws_error_types_on_grpc_statuses() {
    let region = DevRegion::start(port_base_for(71));
    let kms = region.grpc_admin();
    let key = external_key(&kms).await;
    let params = parameters(&kms, &key.key_id).await;
    let material = [7u8; 32];
    let wrapped = wrap(&params, &material);

    // A tampered token.
    let mut token = params.import_token.clone();
    let mid = token.len() / 2;
    token[mid] ^= 0x01;
    let err = kms
        .import_key_material()
        .key_id(&key.key_id)
        .import_token(token)
        .encrypted_key_material(wrapped.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidImportTokenException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");

    // Missing members: AWS's ValidationException, as on the JSON endpoint.
    let err = kms
        .get_parameters_for_import()
        .key_id(&key.key_id)
        .wrapping_key_spec("RSA_2048")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");
    let err = kms
        .import_key_material()
        .key_id(&key.key_id)
        .import_token(params.import_token.clone())
        .encrypted_key_material(wrapped.clone())
        .expiration_model("KEY_MATERIAL_EXPIRES")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");

    // A key created by KMS has no import parameters.
    let own = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let err = kms
        .get_parameters_for_import()
        .key_id(&own.key_id)
        .wrapping_algorithm("RSAES_OAEP_SHA_256")
        .wrapping_key_spec("RSA_2048")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "UnsupportedOperationException", "{err}");

    // An expiring import over gRPC: ValidTo (epoch seconds) comes back on the key.
    let valid_to = (now_secs() + 7.0 * 86_400.0).floor();
    kms.import_key_material()
        .key_id(&key.key_id)
        .import_token(params.import_token.clone())
        .encrypted_key_material(wrapped)
        .expiration_model("KEY_MATERIAL_EXPIRES")
        .valid_to(valid_to)
        .send()
        .await
        .unwrap();
    let meta = kms
        .describe_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, "Enabled");
    assert_eq!(
        meta.expiration_model.as_deref(),
        Some("KEY_MATERIAL_EXPIRES")
    );
    assert_eq!(meta.valid_to, Some(valid_to));
    let aws = region.admin_client();
    let described = aws.describe_key().key_id(&key.key_id).send().await.unwrap();
    let json_valid_to = described.key_metadata().unwrap().valid_to().unwrap();
    assert_eq!(json_valid_to.secs() as f64, valid_to);
}
