//! Asymmetric, HMAC and key-agreement keys through the AWS SDK for Rust (aws-sdk-kms) against
//! a real dev region: the SDK's own model of every request and response, and its error
//! types. Public keys from GetPublicKey are used offline with keystore's public-key
//! functions (the Python suite checks the same against OpenSSL via `cryptography`).

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType,
    MacAlgorithmSpec, MessageType, SigningAlgorithmSpec,
};
use keystore::spec::{self, AwsKeySpec};

async fn create(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> String {
    let out = kms
        .create_key()
        .key_spec(spec.clone())
        .key_usage(usage.clone())
        .send()
        .await
        .unwrap();
    let meta = out.key_metadata().unwrap();
    assert_eq!(meta.key_spec(), Some(&spec));
    assert_eq!(meta.key_usage(), Some(&usage));
    meta.key_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecc_and_rsa_keys_sign_verify_and_encrypt_through_the_sdk() {
    let region = DevRegion::start(port_base_for(30));
    let kms = region.admin_client();

    // ECC P-256 SIGN_VERIFY: DescribeKey lists exactly ECDSA_SHA_256.
    let ecc = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let meta = kms.describe_key().key_id(&ecc).send().await.unwrap();
    let meta = meta.key_metadata().unwrap();
    assert_eq!(
        meta.signing_algorithms(),
        [SigningAlgorithmSpec::EcdsaSha256]
    );
    assert!(meta.encryption_algorithms().is_empty());

    let public = kms.get_public_key().key_id(&ecc).send().await.unwrap();
    assert_eq!(public.key_spec(), Some(&KeySpec::EccNistP256));
    assert_eq!(
        public.signing_algorithms(),
        [SigningAlgorithmSpec::EcdsaSha256]
    );
    let spki = public.public_key().unwrap().as_ref().to_vec();

    let message = b"the SDK signs this".to_vec();
    let signed = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(message.clone()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    let signature = signed.signature().unwrap().as_ref().to_vec();
    // Offline, with nothing but GetPublicKey's SPKI.
    assert!(keystore::sign::verify_with_public_key(
        AwsKeySpec::EccNistP256,
        &spki,
        spec::SigningAlgorithm::EcdsaSha256,
        spec::MessageType::Raw,
        &message,
        &signature,
    )
    .unwrap());
    let verified = kms
        .verify()
        .key_id(&ecc)
        .message(Blob::new(message.clone()))
        .signature(Blob::new(signature.clone()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(verified.signature_valid());
    let mut bad = signature.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = kms
        .verify()
        .key_id(&ecc)
        .message(Blob::new(message.clone()))
        .signature(Blob::new(bad))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "KMSInvalidSignatureException");
    assert!(err
        .as_service_error()
        .is_some_and(|e| e.is_kms_invalid_signature_exception()));
    // A digest of the wrong length for the algorithm.
    let err = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(vec![0u8; 31]))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    // A signing key cannot encrypt.
    let err = kms
        .encrypt()
        .key_id(&ecc)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidKeyUsageException");

    // RSA 2048 SIGN_VERIFY with PSS over a digest.
    let rsa_sign = create(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let digest = keystore::crypto::sha256(b"rsa message");
    let signed = kms
        .sign()
        .key_id(&rsa_sign)
        .message(Blob::new(digest.to_vec()))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.signature().unwrap().as_ref().len(), 256);
    let verified = kms
        .verify()
        .key_id(&rsa_sign)
        .message(Blob::new(b"rsa message".to_vec()))
        .signature(signed.signature().unwrap().clone())
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await
        .unwrap();
    assert!(verified.signature_valid());

    // RSA 2048 ENCRYPT_DECRYPT: encrypt offline to GetPublicKey's key, decrypt in keyraft.
    let rsa_enc = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let public = kms.get_public_key().key_id(&rsa_enc).send().await.unwrap();
    assert_eq!(
        public.encryption_algorithms(),
        [
            EncryptionAlgorithmSpec::RsaesOaepSha1,
            EncryptionAlgorithmSpec::RsaesOaepSha256
        ]
    );
    let blob = keystore::rsa_encrypt::encrypt_with_public_key(
        AwsKeySpec::Rsa2048,
        public.public_key().unwrap().as_ref(),
        spec::EncryptionAlgorithm::RsaesOaepSha256,
        b"offline plaintext",
    )
    .unwrap();
    let out = kms
        .decrypt()
        .key_id(&rsa_enc)
        .ciphertext_blob(Blob::new(blob))
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"offline plaintext");
    let err = kms
        .encrypt()
        .key_id(&rsa_enc)
        .plaintext(Blob::new(vec![0u8; 191]))
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");

    // A disabled asymmetric key refuses to sign.
    kms.disable_key().key_id(&ecc).send().await.unwrap();
    let err = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(message))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "DisabledException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_ecdh_and_data_key_pairs_through_the_sdk() {
    let region = DevRegion::start(port_base_for(31));
    let kms = region.admin_client();

    let hmac = create(&kms, KeySpec::Hmac384, KeyUsageType::GenerateVerifyMac).await;
    let mac = kms
        .generate_mac()
        .key_id(&hmac)
        .message(Blob::new("mac me"))
        .mac_algorithm(MacAlgorithmSpec::HmacSha384)
        .send()
        .await
        .unwrap();
    let tag = mac.mac().unwrap().as_ref().to_vec();
    assert_eq!(tag.len(), 48);
    let ok = kms
        .verify_mac()
        .key_id(&hmac)
        .message(Blob::new("mac me"))
        .mac(Blob::new(tag.clone()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha384)
        .send()
        .await
        .unwrap();
    assert!(ok.mac_valid());
    let err = kms
        .verify_mac()
        .key_id(&hmac)
        .message(Blob::new("mac me!"))
        .mac(Blob::new(tag))
        .mac_algorithm(MacAlgorithmSpec::HmacSha384)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "KMSInvalidMacException");
    let err = kms.get_public_key().key_id(&hmac).send().await.unwrap_err();
    assert_eq!(error_code(&err), "UnsupportedOperationException");

    // ECDH between two keyraft keys: each side derives with the other's public key.
    let a = create(&kms, KeySpec::EccNistP384, KeyUsageType::KeyAgreement).await;
    let b = create(&kms, KeySpec::EccNistP384, KeyUsageType::KeyAgreement).await;
    let pub_of = |id: String| {
        let kms = kms.clone();
        async move {
            kms.get_public_key()
                .key_id(id)
                .send()
                .await
                .unwrap()
                .public_key()
                .unwrap()
                .clone()
        }
    };
    let (pa, pb) = (pub_of(a.clone()).await, pub_of(b.clone()).await);
    let derive = |id: String, peer: Blob| {
        let kms = kms.clone();
        async move {
            kms.derive_shared_secret()
                .key_id(id)
                .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                .public_key(peer)
                .send()
                .await
                .unwrap()
                .shared_secret()
                .unwrap()
                .as_ref()
                .to_vec()
        }
    };
    let ab = derive(a, pb).await;
    let ba = derive(b, pa).await;
    assert_eq!(ab.len(), 48);
    assert_eq!(ab, ba);

    // Data key pairs: the sealed private key decrypts to the plaintext one.
    let sym = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let pair = kms
        .generate_data_key_pair()
        .key_id(&sym)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    assert_eq!(pair.key_pair_spec(), Some(&DataKeyPairSpec::EccNistP256));
    let opened = kms
        .decrypt()
        .ciphertext_blob(pair.private_key_ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.plaintext().unwrap().as_ref(),
        pair.private_key_plaintext().unwrap().as_ref()
    );
    let material = keystore::material::SecretKeyMaterial::from_bytes(
        AwsKeySpec::EccNistP256,
        pair.private_key_plaintext().unwrap().as_ref(),
    )
    .unwrap();
    assert_eq!(
        material.public_key_der().unwrap(),
        pair.public_key().unwrap().as_ref()
    );
    let without = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(&sym)
        .key_pair_spec(DataKeyPairSpec::Rsa2048)
        .send()
        .await
        .unwrap();
    assert!(without.private_key_ciphertext_blob().is_some());
    let err = kms
        .generate_data_key_pair()
        .key_id(&hmac)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidKeyUsageException");
}
