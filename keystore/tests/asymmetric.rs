//! Round trips and refusals for every key spec and algorithm of issue 3, through the API the
//! front calls (`material`, `sign`, `rsa_encrypt`, `mac`, `ecdh`, `data_key_pair`).

use std::collections::HashMap;
use std::sync::OnceLock;

use keystore::data_key_pair::generate_data_key_pair;
use keystore::error::DomainError;
use keystore::material::SecretKeyMaterial;
use keystore::spec::{
    AwsKeySpec, AwsKeyUsage, DataKeyPairSpec, EncryptionAlgorithm, KeyAgreementAlgorithm,
    MacAlgorithm, MessageType, SigningAlgorithm, MAX_MESSAGE_LEN,
};
use keystore::{ecdh, mac, rsa_encrypt, sign};
use proptest::prelude::*;
use sha2::Digest as _;

use AwsKeySpec as S;
use AwsKeyUsage as U;

/// One generated key per spec, shared by all tests (RSA-4096 generation is slow in debug).
fn key(spec: AwsKeySpec) -> &'static SecretKeyMaterial {
    static KEYS: OnceLock<HashMap<AwsKeySpec, SecretKeyMaterial>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        AwsKeySpec::ALL
            .iter()
            .map(|s| (*s, SecretKeyMaterial::generate(*s).unwrap()))
            .collect()
    })[&spec]
}

fn signing_specs() -> impl Iterator<Item = AwsKeySpec> {
    AwsKeySpec::ALL
        .iter()
        .copied()
        .filter(|s| s.usages().contains(&U::SignVerify))
}

fn hash_for(alg: SigningAlgorithm, msg: &[u8]) -> Vec<u8> {
    match alg.digest_len() {
        Some(32) => sha2::Sha256::digest(msg).to_vec(),
        Some(48) => sha2::Sha384::digest(msg).to_vec(),
        _ => sha2::Sha512::digest(msg).to_vec(),
    }
}

/// The message type each algorithm is exercised with, and the bytes to send for `msg`.
fn inputs(alg: SigningAlgorithm, msg: &[u8]) -> Vec<(MessageType, Vec<u8>)> {
    match alg {
        SigningAlgorithm::Ed25519Sha512 | SigningAlgorithm::MlDsaShake256 => {
            vec![(MessageType::Raw, msg.to_vec())]
        }
        SigningAlgorithm::Ed25519PhSha512 => vec![(MessageType::Digest, hash_for(alg, msg))],
        _ => vec![
            (MessageType::Raw, msg.to_vec()),
            (MessageType::Digest, hash_for(alg, msg)),
        ],
    }
}

fn is_validation(r: Result<impl Sized, DomainError>) -> bool {
    matches!(r, Err(DomainError::Validation(_)))
}
fn is_invalid_key_usage(r: Result<impl Sized, DomainError>) -> bool {
    matches!(r, Err(DomainError::InvalidKeyUsage(_)))
}

// ---------------------------------------------------------------- material, public keys

#[test]
fn every_spec_generates_material_that_reloads_from_its_bytes() {
    for spec in AwsKeySpec::ALL {
        let k = key(*spec);
        assert_eq!(k.spec(), *spec);
        let again = SecretKeyMaterial::from_bytes(*spec, k.expose_secret()).unwrap();
        assert!(again == *k, "{spec}");
        if spec.is_asymmetric() {
            assert_eq!(
                again.public_key_der().unwrap(),
                k.public_key_der().unwrap(),
                "{spec}"
            );
        }
    }
}

#[test]
fn two_generations_differ() {
    for spec in [
        S::EccNistP256,
        S::EccNistEdwards25519,
        S::MlDsa44,
        S::Hmac256,
    ] {
        let a = SecretKeyMaterial::generate(spec).unwrap();
        let b = SecretKeyMaterial::generate(spec).unwrap();
        assert!(a != b, "{spec}");
    }
}

#[test]
fn public_keys_are_der_spki_of_the_expected_size() {
    // Lengths of SPKI DER as AWS's GetPublicKey returns it (and OpenSSL writes it).
    for (spec, len) in [
        (S::Rsa2048, 294),
        (S::Rsa3072, 422),
        (S::Rsa4096, 550),
        (S::EccNistP256, 91),
        (S::EccNistP384, 120),
        (S::EccNistP521, 158),
        (S::EccSecgP256k1, 88),
        (S::EccNistEdwards25519, 44),
        (S::MlDsa44, 1312 + 22),
        (S::MlDsa65, 1952 + 22),
        (S::MlDsa87, 2592 + 22),
    ] {
        let der = key(spec).public_key_der().unwrap();
        assert_eq!(der[0], 0x30, "{spec}");
        assert_eq!(der.len(), len, "{spec}");
    }
}

#[test]
fn hmac_and_symmetric_keys_have_no_public_key() {
    for spec in [S::Hmac224, S::Hmac512, S::SymmetricDefault] {
        assert!(is_invalid_key_usage(key(spec).public_key_der()), "{spec}");
    }
}

#[test]
fn material_of_another_spec_is_refused() {
    let cases = [
        (S::Rsa2048, S::Rsa3072),
        (S::Rsa4096, S::Rsa2048),
        (S::EccNistP256, S::EccNistP384),
        (S::EccNistP256, S::EccSecgP256k1),
        (S::EccSecgP256k1, S::EccNistP256),
        (S::EccNistP521, S::EccNistP384),
        (S::EccNistP256, S::EccNistEdwards25519),
        (S::EccNistEdwards25519, S::EccNistP256),
        (S::Rsa2048, S::EccNistP256),
        (S::MlDsa44, S::EccNistEdwards25519),
        (S::Hmac224, S::SymmetricDefault),
    ];
    for (from, to) in cases {
        assert!(
            is_validation(SecretKeyMaterial::from_bytes(to, key(from).expose_secret())),
            "{from} material accepted as {to}"
        );
    }
}

#[test]
fn refusals_of_material_never_echo_the_bytes() {
    let secret = [0xA7u8; 40];
    for spec in AwsKeySpec::ALL {
        if let Err(e) = SecretKeyMaterial::from_bytes(*spec, &secret) {
            let msg = e.to_string().to_lowercase();
            assert!(!msg.contains("a7a7"), "{spec}: {msg}");
        }
    }
}

// ---------------------------------------------------------------- Sign / Verify

#[test]
fn every_signing_spec_signs_and_verifies_each_of_its_algorithms() {
    let msg = b"keyraft signs this";
    for spec in signing_specs() {
        let k = key(spec);
        for alg in spec.signing_algorithms(U::SignVerify) {
            for (mt, m) in inputs(*alg, msg) {
                let sig = sign::sign(k, U::SignVerify, *alg, mt, &m).unwrap();
                assert!(
                    sign::verify(k, U::SignVerify, *alg, mt, &m, &sig).unwrap(),
                    "{spec} {alg} {mt}"
                );
                let spki = k.public_key_der().unwrap();
                assert!(
                    sign::verify_with_public_key(spec, &spki, *alg, mt, &m, &sig).unwrap(),
                    "{spec} {alg} {mt} (public key)"
                );
            }
        }
    }
}

#[test]
fn raw_and_digest_signatures_are_interchangeable_for_rsa_and_ecdsa() {
    let msg = b"hash me";
    for spec in [S::Rsa2048, S::EccNistP256, S::EccNistP521, S::EccSecgP256k1] {
        for alg in spec.signing_algorithms(U::SignVerify) {
            let d = hash_for(*alg, msg);
            let sig = sign::sign(key(spec), U::SignVerify, *alg, MessageType::Raw, msg).unwrap();
            assert!(
                sign::verify(
                    key(spec),
                    U::SignVerify,
                    *alg,
                    MessageType::Digest,
                    &d,
                    &sig
                )
                .unwrap(),
                "{spec} {alg}"
            );
        }
    }
}

#[test]
fn signatures_have_the_shapes_aws_returns() {
    let m = b"shape";
    let sig = |spec, alg, mt: MessageType, m: &[u8]| {
        sign::sign(key(spec), U::SignVerify, alg, mt, m).unwrap()
    };
    for (spec, len) in [(S::Rsa2048, 256), (S::Rsa3072, 384), (S::Rsa4096, 512)] {
        assert_eq!(
            sig(spec, SigningAlgorithm::RsassaPssSha512, MessageType::Raw, m).len(),
            len
        );
    }
    for (spec, alg, max) in [
        (S::EccNistP256, SigningAlgorithm::EcdsaSha256, 72),
        (S::EccNistP384, SigningAlgorithm::EcdsaSha384, 104),
        (S::EccNistP521, SigningAlgorithm::EcdsaSha512, 139),
        (S::EccSecgP256k1, SigningAlgorithm::EcdsaSha256, 72),
    ] {
        let s = sig(spec, alg, MessageType::Raw, m);
        // DER Ecdsa-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }.
        assert_eq!(s[0], 0x30, "{spec}");
        assert!(s.len() <= max, "{spec}: {}", s.len());
    }
    let ed = sig(
        S::EccNistEdwards25519,
        SigningAlgorithm::Ed25519Sha512,
        MessageType::Raw,
        m,
    );
    assert_eq!(ed.len(), 64);
    for (spec, len) in [(S::MlDsa44, 2420), (S::MlDsa65, 3309), (S::MlDsa87, 4627)] {
        assert_eq!(
            sig(spec, SigningAlgorithm::MlDsaShake256, MessageType::Raw, m).len(),
            len
        );
    }
}

#[test]
fn pure_ed25519_is_deterministic_and_matches_rfc8032() {
    // RFC 8032 §7.1 TEST 2: one-byte message 0x72.
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend(
        hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").unwrap(),
    );
    let k = SecretKeyMaterial::from_bytes(S::EccNistEdwards25519, &der).unwrap();
    let sig = sign::sign(
        &k,
        U::SignVerify,
        SigningAlgorithm::Ed25519Sha512,
        MessageType::Raw,
        &[0x72],
    )
    .unwrap();
    assert_eq!(
        hex::encode(sig),
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
         085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    );
}

#[test]
fn tampered_messages_and_signatures_do_not_verify() {
    let msg = b"original message";
    for spec in signing_specs() {
        let k = key(spec);
        for alg in spec.signing_algorithms(U::SignVerify) {
            for (mt, m) in inputs(*alg, msg) {
                let sig = sign::sign(k, U::SignVerify, *alg, mt, &m).unwrap();
                let mut other = m.clone();
                other[0] ^= 1;
                assert!(
                    !sign::verify(k, U::SignVerify, *alg, mt, &other, &sig).unwrap(),
                    "{spec} {alg} message"
                );
                for i in [0, sig.len() / 2, sig.len() - 1] {
                    let mut bad = sig.clone();
                    bad[i] ^= 0x01;
                    assert!(
                        !sign::verify(k, U::SignVerify, *alg, mt, &m, &bad).unwrap(),
                        "{spec} {alg} byte {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_signatures_are_false_not_errors() {
    let junk: [&[u8]; 5] = [&[], &[0], &[0x30, 0x00], &[0xFF; 64], &[0x30; 6000]];
    for spec in signing_specs() {
        for alg in spec.signing_algorithms(U::SignVerify) {
            for (mt, m) in inputs(*alg, b"m") {
                for sig in junk {
                    assert_eq!(
                        sign::verify(key(spec), U::SignVerify, *alg, mt, &m, sig),
                        Ok(false),
                        "{spec} {alg} {} bytes",
                        sig.len()
                    );
                }
            }
        }
    }
}

#[test]
fn a_signature_by_another_key_of_the_same_spec_does_not_verify() {
    for spec in [
        S::Rsa2048,
        S::EccNistP384,
        S::EccNistEdwards25519,
        S::MlDsa65,
    ] {
        let other = SecretKeyMaterial::generate(spec).unwrap();
        let alg = spec.signing_algorithms(U::SignVerify)[0];
        let (mt, m) = inputs(alg, b"who signed").remove(0);
        let sig = sign::sign(&other, U::SignVerify, alg, mt, &m).unwrap();
        assert!(
            !sign::verify(key(spec), U::SignVerify, alg, mt, &m, &sig).unwrap(),
            "{spec}"
        );
    }
}

#[test]
fn digests_of_the_wrong_length_are_validation_errors() {
    for spec in signing_specs() {
        for alg in spec.signing_algorithms(U::SignVerify) {
            let Some(len) = alg.digest_len() else {
                continue;
            };
            for bad in [len - 1, len + 1, 20] {
                let d = vec![7u8; bad];
                assert!(
                    is_validation(sign::sign(
                        key(spec),
                        U::SignVerify,
                        *alg,
                        MessageType::Digest,
                        &d
                    )),
                    "{spec} {alg} {bad}"
                );
                assert!(
                    is_validation(sign::verify(
                        key(spec),
                        U::SignVerify,
                        *alg,
                        MessageType::Digest,
                        &d,
                        &[0; 64]
                    )),
                    "{spec} {alg} {bad}"
                );
            }
        }
    }
}

#[test]
fn messages_must_be_1_to_4096_bytes() {
    let alg = SigningAlgorithm::EcdsaSha256;
    let k = key(S::EccNistP256);
    assert!(is_validation(sign::sign(
        k,
        U::SignVerify,
        alg,
        MessageType::Raw,
        b""
    )));
    let long = vec![1u8; MAX_MESSAGE_LEN + 1];
    assert!(is_validation(sign::sign(
        k,
        U::SignVerify,
        alg,
        MessageType::Raw,
        &long
    )));
    let max = vec![1u8; MAX_MESSAGE_LEN];
    assert!(sign::sign(k, U::SignVerify, alg, MessageType::Raw, &max).is_ok());
}

#[test]
fn message_type_rules_follow_aws() {
    let ed = key(S::EccNistEdwards25519);
    let d64 = [1u8; 64];
    use SigningAlgorithm as A;
    // Pure Ed25519: RAW only. Ed25519ph: DIGEST only.
    assert!(is_validation(sign::sign(
        ed,
        U::SignVerify,
        A::Ed25519Sha512,
        MessageType::Digest,
        &d64
    )));
    assert!(is_validation(sign::sign(
        ed,
        U::SignVerify,
        A::Ed25519PhSha512,
        MessageType::Raw,
        b"m"
    )));
    assert!(is_validation(sign::sign(
        ed,
        U::SignVerify,
        A::Ed25519PhSha512,
        MessageType::ExternalMu,
        &d64
    )));
    // ML-DSA: RAW or EXTERNAL_MU (exactly 64 bytes of mu), never DIGEST.
    let ml = key(S::MlDsa44);
    assert!(is_validation(sign::sign(
        ml,
        U::SignVerify,
        A::MlDsaShake256,
        MessageType::Digest,
        &d64
    )));
    assert!(is_validation(sign::sign(
        ml,
        U::SignVerify,
        A::MlDsaShake256,
        MessageType::ExternalMu,
        &d64[..63]
    )));
    assert!(sign::sign(
        ml,
        U::SignVerify,
        A::MlDsaShake256,
        MessageType::ExternalMu,
        &d64
    )
    .is_ok());
    // EXTERNAL_MU is for ML-DSA only.
    assert!(is_validation(sign::sign(
        key(S::Rsa2048),
        U::SignVerify,
        A::RsassaPssSha512,
        MessageType::ExternalMu,
        &d64
    )));
}

#[test]
fn algorithms_of_other_specs_are_invalid_key_usage() {
    use SigningAlgorithm as A;
    let cases = [
        (S::EccNistP256, A::EcdsaSha384),
        (S::EccNistP384, A::EcdsaSha256),
        (S::EccNistP521, A::EcdsaSha256),
        (S::EccSecgP256k1, A::EcdsaSha512),
        (S::Rsa2048, A::EcdsaSha256),
        (S::EccNistP256, A::RsassaPssSha256),
        (S::EccNistEdwards25519, A::MlDsaShake256),
        (S::MlDsa87, A::Ed25519Sha512),
    ];
    for (spec, alg) in cases {
        let (mt, m) = inputs(alg, b"m").remove(0);
        assert!(
            is_invalid_key_usage(sign::sign(key(spec), U::SignVerify, alg, mt, &m)),
            "{spec} {alg}"
        );
        assert!(
            is_invalid_key_usage(sign::verify(key(spec), U::SignVerify, alg, mt, &m, b"s")),
            "{spec} {alg}"
        );
    }
}

#[test]
fn keys_without_sign_verify_usage_cannot_sign() {
    let alg = SigningAlgorithm::RsassaPssSha256;
    // An RSA key created for ENCRYPT_DECRYPT.
    assert!(is_invalid_key_usage(sign::sign(
        key(S::Rsa2048),
        U::EncryptDecrypt,
        alg,
        MessageType::Raw,
        b"m"
    )));
    // A P-256 key created for KEY_AGREEMENT.
    assert!(is_invalid_key_usage(sign::sign(
        key(S::EccNistP256),
        U::KeyAgreement,
        SigningAlgorithm::EcdsaSha256,
        MessageType::Raw,
        b"m"
    )));
    // HMAC and symmetric keys, whatever usage is claimed.
    for spec in [S::Hmac256, S::SymmetricDefault] {
        for usage in AwsKeyUsage::ALL {
            assert!(
                is_invalid_key_usage(sign::sign(key(spec), *usage, alg, MessageType::Raw, b"m")),
                "{spec} {usage}"
            );
        }
    }
}

#[test]
fn verify_with_public_key_refuses_keys_that_do_not_fit_the_spec() {
    let p256 = key(S::EccNistP256).public_key_der().unwrap();
    let p384 = key(S::EccNistP384).public_key_der().unwrap();
    let rsa3072 = key(S::Rsa3072).public_key_der().unwrap();
    let alg = SigningAlgorithm::EcdsaSha256;
    let cases: Vec<(AwsKeySpec, SigningAlgorithm, Vec<u8>)> = vec![
        (S::EccNistP256, alg, p384.clone()),
        (S::EccSecgP256k1, alg, p256.clone()),
        (S::EccNistP256, alg, p256[p256.len() - 65..].to_vec()), // bare SEC1 point
        (S::EccNistP256, alg, vec![]),
        (S::EccNistP256, alg, vec![0x30, 0x03, 0x02, 0x01, 0x00]),
        (S::Rsa2048, SigningAlgorithm::RsassaPssSha256, rsa3072),
        (S::Rsa2048, SigningAlgorithm::RsassaPssSha256, p256.clone()),
        (
            S::EccNistEdwards25519,
            SigningAlgorithm::Ed25519Sha512,
            p256.clone(),
        ),
        (
            S::MlDsa44,
            SigningAlgorithm::MlDsaShake256,
            key(S::MlDsa65).public_key_der().unwrap(),
        ),
    ];
    for (spec, alg, der) in cases {
        let (mt, m) = inputs(alg, b"m").remove(0);
        assert!(
            is_validation(sign::verify_with_public_key(
                spec,
                &der,
                alg,
                mt,
                &m,
                &[0x30, 0]
            )),
            "{spec} {alg} {} bytes",
            der.len()
        );
    }
}

// ---------------------------------------------------------------- RSA Encrypt / Decrypt

const OAEP: [EncryptionAlgorithm; 2] = [
    EncryptionAlgorithm::RsaesOaepSha1,
    EncryptionAlgorithm::RsaesOaepSha256,
];

#[test]
fn oaep_limits_are_aws_per_size_limits() {
    let table = [
        (S::Rsa2048, 214, 190),
        (S::Rsa3072, 342, 318),
        (S::Rsa4096, 470, 446),
    ];
    for (spec, sha1, sha256) in table {
        assert_eq!(rsa_encrypt::max_plaintext_len(spec, OAEP[0]), Some(sha1));
        assert_eq!(rsa_encrypt::max_plaintext_len(spec, OAEP[1]), Some(sha256));
    }
    assert_eq!(
        rsa_encrypt::max_plaintext_len(S::EccNistP256, OAEP[0]),
        None
    );
}

#[test]
fn rsa_keys_round_trip_the_longest_plaintext_and_refuse_one_byte_more() {
    for spec in [S::Rsa2048, S::Rsa3072, S::Rsa4096] {
        let k = key(spec);
        for alg in OAEP {
            let max = rsa_encrypt::max_plaintext_len(spec, alg).unwrap();
            let pt: Vec<u8> = (0..max).map(|i| i as u8).collect();
            let ct = rsa_encrypt::encrypt(k, U::EncryptDecrypt, alg, &pt).unwrap();
            assert_eq!(ct.len(), spec.rsa_bits().unwrap() / 8);
            let back = rsa_encrypt::decrypt(k, U::EncryptDecrypt, alg, &ct).unwrap();
            assert_eq!(back.expose_secret(), &pt[..], "{spec} {alg}");
            let too_long = vec![0u8; max + 1];
            assert!(
                is_validation(rsa_encrypt::encrypt(k, U::EncryptDecrypt, alg, &too_long)),
                "{spec} {alg}"
            );
            assert!(
                is_validation(rsa_encrypt::encrypt(k, U::EncryptDecrypt, alg, b"")),
                "{spec} {alg}"
            );
        }
    }
}

#[test]
fn oaep_encryption_is_randomized() {
    let k = key(S::Rsa2048);
    let a = rsa_encrypt::encrypt(k, U::EncryptDecrypt, OAEP[1], b"same").unwrap();
    let b = rsa_encrypt::encrypt(k, U::EncryptDecrypt, OAEP[1], b"same").unwrap();
    assert_ne!(a, b);
}

#[test]
fn every_bad_rsa_ciphertext_is_the_same_invalid_ciphertext_error() {
    let k = key(S::Rsa2048);
    let ct = rsa_encrypt::encrypt(k, U::EncryptDecrypt, OAEP[1], b"secret").unwrap();
    let mut flipped = ct.clone();
    flipped[100] ^= 0x40;
    let mut longer = ct.clone();
    longer.push(0);
    let other =
        rsa_encrypt::encrypt(key(S::Rsa3072), U::EncryptDecrypt, OAEP[1], b"secret").unwrap();
    let cases: Vec<(EncryptionAlgorithm, Vec<u8>)> = vec![
        (OAEP[0], ct.clone()), // wrong algorithm
        (OAEP[1], flipped),
        (OAEP[1], ct[..255].to_vec()),
        (OAEP[1], longer),
        (OAEP[1], vec![]),
        (OAEP[1], vec![0xFF; 256]), // above the modulus
        (OAEP[1], vec![0; 256]),
        (OAEP[1], other[..256].to_vec()),
    ];
    for (alg, c) in cases {
        assert_eq!(
            rsa_encrypt::decrypt(k, U::EncryptDecrypt, alg, &c).err(),
            Some(DomainError::InvalidCiphertext),
            "{alg} {} bytes",
            c.len()
        );
    }
}

#[test]
fn rsa_encryption_needs_encrypt_decrypt_usage_and_an_oaep_algorithm() {
    let k = key(S::Rsa2048);
    assert!(is_invalid_key_usage(rsa_encrypt::encrypt(
        k,
        U::SignVerify,
        OAEP[1],
        b"x"
    )));
    assert!(is_invalid_key_usage(rsa_encrypt::decrypt(
        k,
        U::SignVerify,
        OAEP[1],
        &[0; 256]
    )));
    assert!(is_invalid_key_usage(rsa_encrypt::encrypt(
        k,
        U::EncryptDecrypt,
        EncryptionAlgorithm::SymmetricDefault,
        b"x"
    )));
    assert!(is_invalid_key_usage(rsa_encrypt::encrypt(
        key(S::EccNistP256),
        U::EncryptDecrypt,
        OAEP[1],
        b"x"
    )));
    assert!(is_invalid_key_usage(rsa_encrypt::encrypt(
        key(S::SymmetricDefault),
        U::EncryptDecrypt,
        OAEP[1],
        b"x"
    )));
}

#[test]
fn encrypting_to_the_public_key_offline_decrypts_in_keyraft() {
    for spec in [S::Rsa2048, S::Rsa4096] {
        let spki = key(spec).public_key_der().unwrap();
        let ct = rsa_encrypt::encrypt_with_public_key(spec, &spki, OAEP[0], b"byok").unwrap();
        let pt = rsa_encrypt::decrypt(key(spec), U::EncryptDecrypt, OAEP[0], &ct).unwrap();
        assert_eq!(pt.expose_secret(), b"byok");
    }
    let spki3072 = key(S::Rsa3072).public_key_der().unwrap();
    assert!(is_validation(rsa_encrypt::encrypt_with_public_key(
        S::Rsa2048,
        &spki3072,
        OAEP[0],
        b"x"
    )));
}

// ---------------------------------------------------------------- HMAC

#[test]
fn every_hmac_spec_generates_and_verifies_its_mac() {
    for (spec, alg) in [
        (S::Hmac224, MacAlgorithm::HmacSha224),
        (S::Hmac256, MacAlgorithm::HmacSha256),
        (S::Hmac384, MacAlgorithm::HmacSha384),
        (S::Hmac512, MacAlgorithm::HmacSha512),
    ] {
        let k = key(spec);
        let u = U::GenerateVerifyMac;
        let tag = mac::generate_mac(k, u, alg, b"message").unwrap();
        assert_eq!(tag.len(), alg.tag_len());
        assert_eq!(
            mac::generate_mac(k, u, alg, b"message").unwrap(),
            tag,
            "deterministic"
        );
        assert!(mac::verify_mac(k, u, alg, b"message", &tag).unwrap());
        assert!(!mac::verify_mac(k, u, alg, b"messagE", &tag).unwrap());
        let mut bad = tag.clone();
        bad[0] ^= 1;
        assert!(!mac::verify_mac(k, u, alg, b"message", &bad).unwrap());
        assert!(!mac::verify_mac(k, u, alg, b"message", &tag[..tag.len() - 1]).unwrap());
        let mut longer = tag.clone();
        longer.push(0);
        assert!(!mac::verify_mac(k, u, alg, b"message", &longer).unwrap());
        assert!(!mac::verify_mac(k, u, alg, b"message", b"").unwrap());
        assert!(is_validation(mac::generate_mac(k, u, alg, b"")));
        assert!(is_validation(mac::generate_mac(
            k,
            u,
            alg,
            &vec![0; MAX_MESSAGE_LEN + 1]
        )));
    }
}

#[test]
fn hmac_keys_accept_only_their_own_algorithm_and_usage() {
    let k = key(S::Hmac256);
    for alg in [
        MacAlgorithm::HmacSha224,
        MacAlgorithm::HmacSha384,
        MacAlgorithm::HmacSha512,
    ] {
        assert!(
            is_invalid_key_usage(mac::generate_mac(k, U::GenerateVerifyMac, alg, b"m")),
            "{alg}"
        );
    }
    assert!(is_invalid_key_usage(mac::generate_mac(
        k,
        U::SignVerify,
        MacAlgorithm::HmacSha256,
        b"m"
    )));
    assert!(is_invalid_key_usage(mac::generate_mac(
        key(S::SymmetricDefault),
        U::GenerateVerifyMac,
        MacAlgorithm::HmacSha256,
        b"m"
    )));
}

#[test]
fn hmac_matches_an_independent_implementation_for_an_imported_key() {
    // aws-lc-rs computes the MAC; RustCrypto's `hmac` crate checks it.
    use hmac::Mac as _;
    let raw = [0x0bu8; 32];
    let k = SecretKeyMaterial::from_bytes(S::Hmac256, &raw).unwrap();
    let ours = mac::generate_mac(
        &k,
        U::GenerateVerifyMac,
        MacAlgorithm::HmacSha256,
        b"Hi There",
    )
    .unwrap();
    let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(&raw).unwrap();
    h.update(b"Hi There");
    assert_eq!(ours, h.finalize().into_bytes().to_vec());
}

// ---------------------------------------------------------------- ECDH

fn derive(k: &SecretKeyMaterial, peer: &[u8]) -> Result<Vec<u8>, DomainError> {
    ecdh::derive_shared_secret(k, U::KeyAgreement, KeyAgreementAlgorithm::Ecdh, peer)
        .map(|s| s.expose_secret().to_vec())
}

#[test]
fn both_sides_of_ecdh_derive_the_same_secret_on_every_nist_curve() {
    for (spec, len) in [
        (S::EccNistP256, 32),
        (S::EccNistP384, 48),
        (S::EccNistP521, 66),
    ] {
        let a = key(spec);
        let b = SecretKeyMaterial::generate(spec).unwrap();
        let ab = derive(a, &b.public_key_der().unwrap()).unwrap();
        let ba = derive(&b, &a.public_key_der().unwrap()).unwrap();
        assert_eq!(ab, ba, "{spec}");
        assert_eq!(ab.len(), len, "{spec}");
    }
}

#[test]
fn ecdh_refuses_peers_that_are_not_an_spki_point_on_the_curve() {
    let k = key(S::EccNistP256);
    let good = SecretKeyMaterial::generate(S::EccNistP256)
        .unwrap()
        .public_key_der()
        .unwrap();
    let mut off_curve = good.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: Vec<Vec<u8>> = vec![
        key(S::EccNistP384).public_key_der().unwrap(),
        key(S::EccSecgP256k1).public_key_der().unwrap(),
        key(S::Rsa2048).public_key_der().unwrap(),
        good[good.len() - 65..].to_vec(),
        off_curve,
        trailing,
        good[..good.len() - 1].to_vec(),
        vec![],
        vec![0x30],
    ];
    for peer in cases {
        assert!(is_validation(derive(k, &peer)), "{} bytes", peer.len());
    }
}

#[test]
fn ecdh_needs_key_agreement_usage_on_a_nist_curve() {
    let peer = key(S::EccNistP256).public_key_der().unwrap();
    let alg = KeyAgreementAlgorithm::Ecdh;
    assert!(is_invalid_key_usage(ecdh::derive_shared_secret(
        key(S::EccNistP256),
        U::SignVerify,
        alg,
        &peer
    )));
    for spec in [
        S::EccSecgP256k1,
        S::EccNistEdwards25519,
        S::Rsa2048,
        S::Hmac256,
    ] {
        assert!(
            is_invalid_key_usage(ecdh::derive_shared_secret(
                key(spec),
                U::KeyAgreement,
                alg,
                &peer
            )),
            "{spec}"
        );
    }
}

// ---------------------------------------------------------------- data key pairs

#[test]
fn every_data_key_pair_spec_yields_a_usable_pkcs8_and_spki_pair() {
    for spec in DataKeyPairSpec::ALL {
        let pair = generate_data_key_pair(*spec).unwrap();
        let Some(ks) = spec.key_spec() else {
            // ML-KEM: checked in ml_kem.rs against aws-lc-rs and in tests/python.
            assert!(spec.as_str().starts_with("ML_KEM_"));
            continue;
        };
        let private = SecretKeyMaterial::from_bytes(ks, pair.private_key_pkcs8().expose_secret())
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            private.public_key_der().unwrap(),
            pair.public_key_der(),
            "{spec}"
        );
        let alg = ks.signing_algorithms(U::SignVerify)[0];
        let sig = sign::sign(&private, U::SignVerify, alg, MessageType::Raw, b"pair").unwrap();
        assert!(sign::verify_with_public_key(
            ks,
            pair.public_key_der(),
            alg,
            MessageType::Raw,
            b"pair",
            &sig
        )
        .unwrap());
        let (sk, pk) = pair.into_parts();
        assert!(!sk.is_empty() && pk[0] == 0x30);
    }
}

// ---------------------------------------------------------------- no panics on any input

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_material_bytes_never_panic(
        idx in 0..AwsKeySpec::ALL.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = SecretKeyMaterial::from_bytes(AwsKeySpec::ALL[idx], &bytes);
    }

    #[test]
    fn arbitrary_public_keys_and_signatures_never_panic(
        idx in 0..AwsKeySpec::ALL.len(),
        der in proptest::collection::vec(any::<u8>(), 0..200),
        sig in proptest::collection::vec(any::<u8>(), 0..200),
        msg in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let spec = AwsKeySpec::ALL[idx];
        for alg in SigningAlgorithm::ALL {
            for mt in MessageType::ALL {
                let _ = sign::verify_with_public_key(spec, &der, *alg, *mt, &msg, &sig);
            }
        }
    }

    #[test]
    fn arbitrary_peers_and_ciphertexts_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut with_prefix = key(S::EccNistP256).public_key_der().unwrap()[..26].to_vec();
        with_prefix.extend_from_slice(&bytes);
        prop_assert!(derive(key(S::EccNistP256), &bytes).is_err());
        let _ = derive(key(S::EccNistP256), &with_prefix);
        prop_assert_eq!(
            rsa_encrypt::decrypt(key(S::Rsa2048), U::EncryptDecrypt, OAEP[1], &bytes).err(),
            Some(DomainError::InvalidCiphertext)
        );
    }
}
