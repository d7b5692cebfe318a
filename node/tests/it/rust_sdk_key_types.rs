//! Every key type and rotation through the keyraft Rust SDK (`client::Client`, gRPC + mTLS)
//! against a real three-node dev region: ECC signing (and a gRPC signature verified over the
//! AWS JSON API), RSA encryption, HMAC, ECDH between two keyraft keys, data key pairs, public
//! keys, and on-demand rotation that leaves old ciphertexts decryptable.

use std::time::{Duration, Instant};

use crate::common::{port_base_for, DevRegion};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use client::Client;

async fn new_key(kms: &Client, spec: &str, usage: &str) -> client::types::KeyMetadata {
    kms.create_key()
        .description(format!("{spec} {usage}"))
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec}/{usage}: {e}"))
        .key_metadata
        .expect("CreateKey returns KeyMetadata")
}

/// DER `SubjectPublicKeyInfo` starts with a SEQUENCE.
fn looks_like_spki(der: &[u8]) {
    assert!(der.len() > 40, "{} bytes", der.len());
    assert_eq!(der[0], 0x30, "not a DER SEQUENCE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecc_signatures_verify_over_grpc_and_the_aws_json_api_and_bad_ones_are_errors() {
    let region = DevRegion::start(port_base_for(60));
    let kms = region.grpc_admin();
    let key = new_key(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    assert_eq!(key.key_spec, "ECC_NIST_P256");
    assert_eq!(key.key_usage, "SIGN_VERIFY");
    assert_eq!(key.signing_algorithms, vec!["ECDSA_SHA_256"]);
    assert!(key.encryption_algorithms.is_empty());

    let message = b"transfer 100 to alice".to_vec();
    let signed = kms
        .sign()
        .key_id(&key.key_id)
        .message(message.clone())
        .message_type("RAW")
        .signing_algorithm("ECDSA_SHA_256")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.key_id, key.arn);
    assert_eq!(signed.signing_algorithm, "ECDSA_SHA_256");
    assert_eq!(signed.signature[0], 0x30, "ECDSA signatures are DER");

    let ok = kms
        .verify()
        .key_id(&key.key_id)
        .message(message.clone())
        .message_type("RAW")
        .signature(signed.signature.clone())
        .signing_algorithm("ECDSA_SHA_256")
        .send()
        .await
        .unwrap();
    assert!(ok.signature_valid);
    assert_eq!(ok.key_id, key.arn);

    // A flipped bit, or another message: AWS's error, never `signature_valid: false`.
    let mut bad = signed.signature.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    for (msg, sig) in [
        (message.clone(), bad),
        (
            b"transfer 900 to mallory".to_vec(),
            signed.signature.clone(),
        ),
    ] {
        let err = kms
            .verify()
            .key_id(&key.key_id)
            .message(msg)
            .signature(sig)
            .signing_algorithm("ECDSA_SHA_256")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "KMSInvalidSignatureException", "{err}");
        assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
        assert!(!err.is_retryable());
    }

    // DryRun checks and answers AWS's DryRunOperationException.
    let err = kms
        .sign()
        .key_id(&key.key_id)
        .message(message.clone())
        .signing_algorithm("ECDSA_SHA_256")
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DryRunOperationException", "{err}");

    // An algorithm of another spec, and a symmetric key, are refused as AWS refuses them.
    let err = kms
        .sign()
        .key_id(&key.key_id)
        .message(message.clone())
        .signing_algorithm("RSASSA_PSS_SHA_256")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidKeyUsageException", "{err}");
    let symmetric = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let err = kms
        .sign()
        .key_id(&symmetric.key_id)
        .message(message.clone())
        .signing_algorithm("ECDSA_SHA_256")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidKeyUsageException", "{err}");
    let err = kms
        .get_public_key()
        .key_id(&symmetric.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "UnsupportedOperationException", "{err}");

    // GetPublicKey over gRPC: the same DER key the JSON API returns.
    let public = kms
        .get_public_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    looks_like_spki(&public.public_key);
    assert_eq!(public.key_id, key.arn);
    assert_eq!(public.key_spec, "ECC_NIST_P256");
    assert_eq!(public.customer_master_key_spec, "ECC_NIST_P256");
    assert_eq!(public.key_usage, "SIGN_VERIFY");
    assert_eq!(public.signing_algorithms, vec!["ECDSA_SHA_256"]);
    let aws = region.admin_client();
    let over_json = aws
        .get_public_key()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        over_json.public_key().unwrap().as_ref(),
        public.public_key.as_slice()
    );

    // Interop: the gRPC signature verifies over the AWS JSON API, and a JSON signature
    // verifies over gRPC.
    let verified = aws
        .verify()
        .key_id(&key.key_id)
        .message(Blob::new(message.clone()))
        .message_type(MessageType::Raw)
        .signature(Blob::new(signed.signature.clone()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(verified.signature_valid());
    let json_sig = aws
        .sign()
        .key_id(&key.key_id)
        .message(Blob::new(message.clone()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    let ok = kms
        .verify()
        .key_id(&key.key_id)
        .message(message)
        .signature(json_sig.signature().unwrap().as_ref().to_vec())
        .signing_algorithm("ECDSA_SHA_256")
        .send()
        .await
        .unwrap();
    assert!(ok.signature_valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_encryption_hmac_ecdh_and_data_key_pairs_work_through_the_sdk() {
    let region = DevRegion::start(port_base_for(61));
    let kms = region.grpc_admin();

    // RSA encryption: OAEP both ways, the algorithm echoed, the key named by ARN.
    let rsa = new_key(&kms, "RSA_2048", "ENCRYPT_DECRYPT").await;
    assert_eq!(
        rsa.encryption_algorithms,
        vec!["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    );
    let sealed = kms
        .encrypt()
        .key_id(&rsa.key_id)
        .plaintext(b"card 4111".to_vec())
        .encryption_algorithm("RSAES_OAEP_SHA_256")
        .send()
        .await
        .unwrap();
    assert_eq!(sealed.encryption_algorithm, "RSAES_OAEP_SHA_256");
    assert_eq!(sealed.ciphertext_blob.len(), 256, "RSA-2048 ciphertext");
    let opened = kms
        .decrypt()
        .key_id(&rsa.key_id)
        .ciphertext_blob(sealed.ciphertext_blob.clone())
        .encryption_algorithm("RSAES_OAEP_SHA_256")
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"card 4111");
    assert_eq!(opened.key_id, rsa.arn);
    let err = kms
        .decrypt()
        .key_id(&rsa.key_id)
        .ciphertext_blob(sealed.ciphertext_blob)
        .encryption_algorithm("RSAES_OAEP_SHA_1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException", "{err}");

    // HMAC: generate, verify, and a wrong tag is KMSInvalidMacException.
    let hmac = new_key(&kms, "HMAC_256", "GENERATE_VERIFY_MAC").await;
    assert_eq!(hmac.mac_algorithms, vec!["HMAC_SHA_256"]);
    let mac = kms
        .generate_mac()
        .key_id(&hmac.key_id)
        .message(b"session 42".to_vec())
        .mac_algorithm("HMAC_SHA_256")
        .send()
        .await
        .unwrap();
    assert_eq!(mac.mac.len(), 32);
    assert_eq!(mac.mac_algorithm, "HMAC_SHA_256");
    let ok = kms
        .verify_mac()
        .key_id(&hmac.key_id)
        .message(b"session 42".to_vec())
        .mac_algorithm("HMAC_SHA_256")
        .mac(mac.mac.clone())
        .send()
        .await
        .unwrap();
    assert!(ok.mac_valid);
    let err = kms
        .verify_mac()
        .key_id(&hmac.key_id)
        .message(b"session 43".to_vec())
        .mac_algorithm("HMAC_SHA_256")
        .mac(mac.mac)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "KMSInvalidMacException", "{err}");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));

    // ECDH between two keyraft keys: each side derives the same secret from the other's
    // public key.
    let alice = new_key(&kms, "ECC_NIST_P256", "KEY_AGREEMENT").await;
    let bob = new_key(&kms, "ECC_NIST_P256", "KEY_AGREEMENT").await;
    assert_eq!(alice.key_agreement_algorithms, vec!["ECDH"]);
    let public = |k: &client::types::KeyMetadata| {
        let kms = kms.clone();
        let id = k.key_id.clone();
        async move {
            let p = kms.get_public_key().key_id(id).send().await.unwrap();
            assert_eq!(p.key_agreement_algorithms, vec!["ECDH"]);
            p.public_key
        }
    };
    let (alice_pub, bob_pub) = (public(&alice).await, public(&bob).await);
    let derive = |k: &client::types::KeyMetadata, peer: Vec<u8>| {
        kms.derive_shared_secret()
            .key_id(k.key_id.clone())
            .key_agreement_algorithm("ECDH")
            .public_key(peer)
            .send()
    };
    let at_alice = derive(&alice, bob_pub.clone()).await.unwrap();
    let at_bob = derive(&bob, alice_pub).await.unwrap();
    assert_eq!(at_alice.shared_secret.len(), 32);
    assert_eq!(at_alice.shared_secret, at_bob.shared_secret);
    assert_eq!(at_alice.key_agreement_algorithm, "ECDH");
    assert_eq!(at_alice.key_origin, "AWS_KMS");
    assert_eq!(at_alice.key_id, alice.arn);
    assert_eq!(at_alice.ciphertext_for_recipient, None);
    let err = derive(&alice, b"not a public key".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");

    // Data key pairs: the private key comes back sealed under a symmetric key (with its
    // context), and Decrypt opens it.
    let wrapping = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let pair = kms
        .generate_data_key_pair()
        .key_id(&wrapping.key_id)
        .key_pair_spec("ECC_NIST_P256")
        .encryption_context("purpose", "device-7")
        .send()
        .await
        .unwrap();
    assert_eq!(pair.key_pair_spec, "ECC_NIST_P256");
    assert_eq!(pair.key_id, wrapping.arn);
    looks_like_spki(&pair.public_key);
    assert_eq!(pair.private_key_plaintext[0], 0x30, "PKCS#8 DER");
    let opened = kms
        .decrypt()
        .ciphertext_blob(pair.private_key_ciphertext_blob.clone())
        .encryption_context("purpose", "device-7")
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext, pair.private_key_plaintext);
    let err = kms
        .decrypt()
        .ciphertext_blob(pair.private_key_ciphertext_blob)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidCiphertextException", "{err}");
    let without = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(&wrapping.key_id)
        .key_pair_spec("RSA_2048")
        .send()
        .await
        .unwrap();
    assert_eq!(without.key_pair_spec, "RSA_2048");
    looks_like_spki(&without.public_key);
    let opened = kms
        .decrypt()
        .ciphertext_blob(without.private_key_ciphertext_blob)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext[0], 0x30, "PKCS#8 DER");
    // Only symmetric keys seal data key pairs.
    let err = kms
        .generate_data_key_pair()
        .key_id(&rsa.key_id)
        .key_pair_spec("ECC_NIST_P256")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidKeyUsageException", "{err}");
}

/// Polls ListKeyRotations (all pages, 1 per page) until it shows `n` rotations.
async fn wait_for_rotations(
    kms: &Client,
    key_id: &str,
    n: usize,
) -> Vec<client::types::RotationsListEntry> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = kms
            .list_key_rotations()
            .key_id(key_id)
            .limit(1)
            .send_all()
            .await
            .unwrap();
        if got.len() >= n {
            assert_eq!(got.len(), n, "more rotations than requested");
            return got;
        }
        assert!(Instant::now() < deadline, "waited for {n} rotations");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_demand_is_listed_and_old_ciphertexts_keep_decrypting() {
    let region = DevRegion::start(port_base_for(62));
    let kms = region.grpc_admin();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let encrypt = |text: &'static str| {
        kms.encrypt()
            .key_id(key.key_id.clone())
            .plaintext(text.as_bytes().to_vec())
            .send()
    };
    let before = encrypt("before rotation").await.unwrap().ciphertext_blob;

    let status = kms
        .get_key_rotation_status()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled);
    assert_eq!(status.key_id, key.arn);
    assert_eq!(status.rotation_period_in_days, None);

    // Automatic rotation on and off.
    let err = kms
        .enable_key_rotation()
        .key_id(&key.key_id)
        .rotation_period_in_days(10)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ValidationException", "{err}");
    kms.enable_key_rotation()
        .key_id(&key.key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled);
    assert_eq!(status.rotation_period_in_days, Some(90));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let next = status.next_rotation_date.expect("next rotation date");
    assert!((next - (now + 90.0 * 86_400.0)).abs() < 600.0, "{next}");
    kms.disable_key_rotation()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled);
    assert_eq!(status.next_rotation_date, None);

    // Two rotations on demand, one after the other; each is listed once, oldest first.
    assert!(kms
        .list_key_rotations()
        .key_id(&key.key_id)
        .send_all()
        .await
        .unwrap()
        .is_empty());
    let r = kms
        .rotate_key_on_demand()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.key_id, key.key_id);
    wait_for_rotations(&kms, &key.key_id, 1).await;
    let middle = encrypt("after one rotation").await.unwrap().ciphertext_blob;
    kms.rotate_key_on_demand()
        .key_id(&key.key_id)
        .send()
        .await
        .unwrap();
    let rotations = wait_for_rotations(&kms, &key.key_id, 2).await;
    for r in &rotations {
        assert_eq!(r.rotation_type, "ON_DEMAND");
        assert_eq!(r.key_id, key.key_id);
        assert!(r.rotation_date.unwrap() > 1.6e9);
    }
    assert!(rotations[0].rotation_date <= rotations[1].rotation_date);
    let page = kms
        .list_key_rotations()
        .key_id(&key.key_id)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.rotations.len(), 1);
    assert!(page.truncated);
    assert!(page.next_marker.is_some());
    let after = encrypt("after two rotations")
        .await
        .unwrap()
        .ciphertext_blob;

    for (blob, text) in [
        (before, "before rotation"),
        (middle, "after one rotation"),
        (after, "after two rotations"),
    ] {
        let out = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
        assert_eq!(out.plaintext, text.as_bytes());
    }

    // Asymmetric keys do not rotate.
    let signer = new_key(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let err = kms
        .rotate_key_on_demand()
        .key_id(&signer.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "UnsupportedOperationException", "{err}");
}

/// Every signing key spec and algorithm of issue 3's table: created over gRPC, signed over
/// gRPC, verified over gRPC and over the AWS JSON API; DIGEST messages too where AWS has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signing_spec_and_algorithm_round_trips_and_verifies_over_json() {
    let region = DevRegion::start(port_base_for(64));
    let kms = region.grpc_admin();
    let aws = region.admin_client();
    let rsa_algs = [
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
    ];
    // (spec, algorithm, message type, message length)
    let mut cases: Vec<(&str, &str, &str, usize)> = rsa_algs
        .iter()
        .map(|a| ("RSA_2048", *a, "RAW", 100))
        .collect();
    cases.extend([
        ("RSA_2048", "RSASSA_PSS_SHA_256", "DIGEST", 32),
        ("ECC_NIST_P256", "ECDSA_SHA_256", "RAW", 100),
        ("ECC_NIST_P256", "ECDSA_SHA_256", "DIGEST", 32),
        ("ECC_NIST_P384", "ECDSA_SHA_384", "RAW", 100),
        ("ECC_NIST_P521", "ECDSA_SHA_512", "RAW", 100),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", "RAW", 100),
        ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512", "RAW", 100),
        ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "DIGEST", 64),
        ("ML_DSA_44", "ML_DSA_SHAKE_256", "RAW", 100),
        ("ML_DSA_65", "ML_DSA_SHAKE_256", "RAW", 100),
        ("ML_DSA_87", "ML_DSA_SHAKE_256", "RAW", 100),
    ]);
    let mut keys = std::collections::HashMap::new();
    for (spec, alg, message_type, len) in cases {
        let case = format!("{spec} {alg} {message_type}");
        if !keys.contains_key(spec) {
            let key = new_key(&kms, spec, "SIGN_VERIFY").await;
            let public = kms
                .get_public_key()
                .key_id(&key.key_id)
                .send()
                .await
                .unwrap();
            looks_like_spki(&public.public_key);
            assert_eq!(public.key_spec, spec);
            assert_eq!(public.signing_algorithms, key.signing_algorithms);
            keys.insert(spec, key);
        }
        let key = &keys[spec];
        assert!(key.signing_algorithms.iter().any(|a| a == alg), "{case}");
        let message: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        let signed = kms
            .sign()
            .key_id(&key.key_id)
            .message(message.clone())
            .message_type(message_type)
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(signed.signing_algorithm, alg);
        let ok = kms
            .verify()
            .key_id(&key.key_id)
            .message(message.clone())
            .message_type(message_type)
            .signature(signed.signature.clone())
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(ok.signature_valid, "{case}");
        let over_json = aws
            .verify()
            .key_id(&key.key_id)
            .message(Blob::new(message.clone()))
            .message_type(MessageType::from(message_type))
            .signature(Blob::new(signed.signature.clone()))
            .signing_algorithm(SigningAlgorithmSpec::from(alg))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case} over JSON: {e:?}"));
        assert!(over_json.signature_valid(), "{case}");
        let mut other = message;
        other[0] ^= 0xff;
        let err = kms
            .verify()
            .key_id(&key.key_id)
            .message(other)
            .message_type(message_type)
            .signature(signed.signature)
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "KMSInvalidSignatureException", "{case}");
    }

    // Every HMAC spec with its algorithm.
    for (spec, alg, len) in [
        ("HMAC_224", "HMAC_SHA_224", 28),
        ("HMAC_256", "HMAC_SHA_256", 32),
        ("HMAC_384", "HMAC_SHA_384", 48),
        ("HMAC_512", "HMAC_SHA_512", 64),
    ] {
        let key = new_key(&kms, spec, "GENERATE_VERIFY_MAC").await;
        assert_eq!(key.mac_algorithms, vec![alg]);
        let mac = kms
            .generate_mac()
            .key_id(&key.key_id)
            .message(b"m".to_vec())
            .mac_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert_eq!(mac.mac.len(), len, "{spec}");
        let ok = kms
            .verify_mac()
            .key_id(&key.key_id)
            .message(b"m".to_vec())
            .mac_algorithm(alg)
            .mac(mac.mac)
            .send()
            .await
            .unwrap();
        assert!(ok.mac_valid, "{spec}");
    }

    // ECDH on every NIST curve, and RSA encryption with both OAEP digests on a larger key.
    for spec in ["ECC_NIST_P384", "ECC_NIST_P521"] {
        let a = new_key(&kms, spec, "KEY_AGREEMENT").await;
        let b = new_key(&kms, spec, "KEY_AGREEMENT").await;
        let pa = kms.get_public_key().key_id(&a.key_id).send().await.unwrap();
        let pb = kms.get_public_key().key_id(&b.key_id).send().await.unwrap();
        let sa = kms
            .derive_shared_secret()
            .key_id(&a.key_id)
            .key_agreement_algorithm("ECDH")
            .public_key(pb.public_key)
            .send()
            .await
            .unwrap();
        let sb = kms
            .derive_shared_secret()
            .key_id(&b.key_id)
            .key_agreement_algorithm("ECDH")
            .public_key(pa.public_key)
            .send()
            .await
            .unwrap();
        assert_eq!(sa.shared_secret, sb.shared_secret, "{spec}");
    }
    let rsa = new_key(&kms, "RSA_3072", "ENCRYPT_DECRYPT").await;
    for alg in ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"] {
        let sealed = kms
            .encrypt()
            .key_id(&rsa.key_id)
            .plaintext(alg.as_bytes().to_vec())
            .encryption_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert_eq!(sealed.ciphertext_blob.len(), 384, "{alg}");
        let opened = kms
            .decrypt()
            .ciphertext_blob(sealed.ciphertext_blob)
            .key_id(&rsa.key_id)
            .encryption_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert_eq!(opened.plaintext, alg.as_bytes());
    }
}
