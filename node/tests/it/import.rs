//! Bring Your Own Key end to end with the AWS SDK for Rust, against a real dev region whose
//! storage nodes follow a DANGER clock-offset file: material wrapped offline with the
//! returned public key imports, encrypts and decrypts; the leader's scheduler expires it at
//! `ValidTo` (key back to PendingImport); the same material imports again and old
//! ciphertexts decrypt.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyState, OriginType, WrappingKeySpec,
};
use keystore::import::{wrap_for_import, WrappingAlgorithm};

const HOUR_MS: i64 = 3_600_000;

async fn key_state(kms: &aws_sdk_kms::Client, key_id: &str) -> KeyState {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_state()
        .cloned()
        .unwrap()
}

/// GetParametersForImport + ImportKeyMaterial of `material`, wrapped as a customer would.
async fn import(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    material: &[u8],
    valid_to: Option<DateTime>,
) -> Result<(), String> {
    let p = kms
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(AlgorithmSpec::RsaAesKeyWrapSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa3072)
        .send()
        .await
        .unwrap();
    let public = p.public_key().unwrap().as_ref();
    let encrypted =
        wrap_for_import(public, WrappingAlgorithm::RsaAesKeyWrapSha256, material).unwrap();
    let mut req = kms
        .import_key_material()
        .key_id(key_id)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(Blob::new(encrypted));
    if let Some(v) = valid_to {
        req = req
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(v);
    }
    req.send().await.map(|_| ()).map_err(|e| error_code(&e))
}

#[tokio::test]
async fn imported_material_expires_on_the_leaders_clock_and_comes_back() {
    let offset_dir = tempfile::tempdir().unwrap();
    let offset = offset_dir.path().join("clock-offset-ms");
    let region = DevRegion::start_with(
        port_base_for(50),
        &["--danger-clock-offset-file", offset.to_str().unwrap()],
    );
    let kms = region.admin_client();
    let key_id = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    assert_eq!(key_state(&kms, &key_id).await, KeyState::PendingImport);

    let material = [0x5Cu8; 32];
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let valid_to = DateTime::from_millis(now_ms + HOUR_MS);
    import(&kms, &key_id, &material, Some(valid_to))
        .await
        .unwrap();
    let meta = kms.describe_key().key_id(&key_id).send().await.unwrap();
    let meta = meta.key_metadata().unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        meta.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(meta.valid_to().map(|d| d.secs()), Some(valid_to.secs()));
    let blob = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new("imported"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone();

    // Other material is refused while the key has material.
    assert_eq!(
        import(&kms, &key_id, &[0x5Du8; 32], None).await,
        Err("IncorrectKeyMaterialException".into())
    );

    // Two hours later the leader's scheduler removes the material.
    std::fs::write(&offset, (2 * HOUR_MS).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while key_state(&kms, &key_id).await != KeyState::PendingImport {
        assert!(Instant::now() < deadline, "material did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match kms.decrypt().ciphertext_blob(blob.clone()).send().await {
            Err(e) => {
                assert_eq!(error_code(&e), "KMSInvalidStateException");
                break;
            }
            Ok(_) => assert!(Instant::now() < deadline, "expired material still decrypts"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same material comes back, and what it encrypted before decrypts again.
    import(&kms, &key_id, &material, None).await.unwrap();
    assert_eq!(key_state(&kms, &key_id).await, KeyState::Enabled);
    let out = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"imported");
}
