//! Every AWS KMS key spec, key usage and algorithm name, with the tables that tie them
//! together exactly as `DescribeKey` reports them.
//!
//! The names here are the wire strings (`RSA_2048`, `ECDSA_SHA_256`, ...): `parse` and
//! `as_str` convert, and serde uses the same strings, so a record that stores one of these
//! enums reads like the AWS API. `model::KeySpec` / `model::KeyUsage` are aliases of
//! [`AwsKeySpec`] / [`AwsKeyUsage`]; deserialization also accepts the Rust variant names
//! (`SymmetricDefault`) that records stored before the two met.
//!
//! # Layout
//!
//! ```text
//!  AwsKeySpec --usages()--> [AwsKeyUsage]          (CreateKey: check_usage)
//!      |
//!      +--signing_algorithms(usage)-------> [SigningAlgorithm]       (sign.rs)
//!      +--encryption_algorithms(usage)----> [EncryptionAlgorithm]    (rsa_encrypt.rs)
//!      +--mac_algorithms(usage)-----------> [MacAlgorithm]           (mac.rs)
//!      +--key_agreement_algorithms(usage)-> [KeyAgreementAlgorithm]  (ecdh.rs)
//!  DataKeyPairSpec --key_spec()--> AwsKeySpec | ML-KEM                (data_key_pair.rs, ml_kem.rs)
//! ```

use crate::error::DomainError;

/// Defines a fieldless enum over AWS wire strings with `ALL`, `as_str`, `parse`, `Display`
/// and serde as the wire string.
macro_rules! aws_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order AWS documents them.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The AWS wire string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// Parses the AWS wire string (exact, case-sensitive, like AWS).
            /// [`DomainError::Validation`] names the accepted values otherwise.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err(DomainError::Validation(format!(
                        "1 validation error detected: Value '{}' at '{}' failed to satisfy \
                         constraint: Member must satisfy enum value set: [{}]",
                        s,
                        $field,
                        [$($wire),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                // Records written before these enums existed stored the Rust variant name
                // (`SymmetricDefault`); storage keeps reading them.
                match s.as_ref() {
                    $( stringify!($variant) => return Ok($name::$variant), )+
                    _ => {}
                }
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

aws_enum! {
    /// `KeySpec`: every spec AWS offers outside the China regions (no `SM2`).
    AwsKeySpec, "keySpec" {
        /// RSA, 2048-bit modulus.
        Rsa2048 => "RSA_2048",
        /// RSA, 3072-bit modulus.
        Rsa3072 => "RSA_3072",
        /// RSA, 4096-bit modulus.
        Rsa4096 => "RSA_4096",
        /// NIST P-256 (secp256r1).
        EccNistP256 => "ECC_NIST_P256",
        /// NIST P-384 (secp384r1).
        EccNistP384 => "ECC_NIST_P384",
        /// NIST P-521 (secp521r1).
        EccNistP521 => "ECC_NIST_P521",
        /// secp256k1 (the cryptocurrency curve).
        EccSecgP256k1 => "ECC_SECG_P256K1",
        /// Ed25519.
        EccNistEdwards25519 => "ECC_NIST_EDWARDS25519",
        /// ML-DSA-44 (FIPS 204).
        MlDsa44 => "ML_DSA_44",
        /// ML-DSA-65 (FIPS 204).
        MlDsa65 => "ML_DSA_65",
        /// ML-DSA-87 (FIPS 204).
        MlDsa87 => "ML_DSA_87",
        /// 224-bit HMAC key.
        Hmac224 => "HMAC_224",
        /// 256-bit HMAC key.
        Hmac256 => "HMAC_256",
        /// 384-bit HMAC key.
        Hmac384 => "HMAC_384",
        /// 512-bit HMAC key.
        Hmac512 => "HMAC_512",
        /// 256-bit AES-GCM-SIV key (the existing symmetric core).
        SymmetricDefault => "SYMMETRIC_DEFAULT",
    }
}

aws_enum! {
    /// `KeyUsage`.
    AwsKeyUsage, "keyUsage" {
        /// Encrypt / Decrypt / ReEncrypt (and GenerateDataKey* for symmetric keys).
        EncryptDecrypt => "ENCRYPT_DECRYPT",
        /// Sign / Verify.
        SignVerify => "SIGN_VERIFY",
        /// GenerateMac / VerifyMac.
        GenerateVerifyMac => "GENERATE_VERIFY_MAC",
        /// DeriveSharedSecret.
        KeyAgreement => "KEY_AGREEMENT",
    }
}

aws_enum! {
    /// `SigningAlgorithm`.
    SigningAlgorithm, "signingAlgorithm" {
        /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
        RsassaPssSha256 => "RSASSA_PSS_SHA_256",
        /// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt.
        RsassaPssSha384 => "RSASSA_PSS_SHA_384",
        /// RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-byte salt.
        RsassaPssSha512 => "RSASSA_PSS_SHA_512",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
        /// ECDSA with SHA-256 (P-256 and secp256k1), DER signature.
        EcdsaSha256 => "ECDSA_SHA_256",
        /// ECDSA with SHA-384 (P-384), DER signature.
        EcdsaSha384 => "ECDSA_SHA_384",
        /// ECDSA with SHA-512 (P-521), DER signature.
        EcdsaSha512 => "ECDSA_SHA_512",
        /// PureEdDSA Ed25519 over the raw message.
        Ed25519Sha512 => "ED25519_SHA_512",
        /// HashEdDSA Ed25519ph over a SHA-512 digest.
        Ed25519PhSha512 => "ED25519_PH_SHA_512",
        /// ML-DSA (pure, empty context).
        MlDsaShake256 => "ML_DSA_SHAKE_256",
    }
}

aws_enum! {
    /// `EncryptionAlgorithmSpec` (no `SM2PKE`: China regions only).
    EncryptionAlgorithm, "encryptionAlgorithm" {
        /// The symmetric ciphertext format of `ciphertext`.
        SymmetricDefault => "SYMMETRIC_DEFAULT",
        /// RSAES-OAEP, SHA-1 and MGF1-SHA-1, empty label.
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        /// RSAES-OAEP, SHA-256 and MGF1-SHA-256, empty label.
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
    }
}

aws_enum! {
    /// `MacAlgorithm`.
    MacAlgorithm, "macAlgorithm" {
        /// HMAC-SHA-224.
        HmacSha224 => "HMAC_SHA_224",
        /// HMAC-SHA-256.
        HmacSha256 => "HMAC_SHA_256",
        /// HMAC-SHA-384.
        HmacSha384 => "HMAC_SHA_384",
        /// HMAC-SHA-512.
        HmacSha512 => "HMAC_SHA_512",
    }
}

aws_enum! {
    /// `KeyAgreementAlgorithm`.
    KeyAgreementAlgorithm, "keyAgreementAlgorithm" {
        /// Elliptic-curve Diffie-Hellman; the raw shared secret (x coordinate) is returned.
        Ecdh => "ECDH",
    }
}

aws_enum! {
    /// `MessageType` of Sign / Verify.
    MessageType, "messageType" {
        /// The message itself; keyraft hashes it.
        Raw => "RAW",
        /// A digest the caller computed with the algorithm's hash.
        Digest => "DIGEST",
        /// ML-DSA's 64-byte message representative mu (FIPS 204 "external mu").
        ExternalMu => "EXTERNAL_MU",
    }
}

aws_enum! {
    /// `KeyPairSpec` of GenerateDataKeyPair (no `SM2`: China regions only). The `ML_KEM_*`
    /// pairs have no KMS key spec of their own (`ml_kem.rs`).
    DataKeyPairSpec, "keyPairSpec" {
        /// RSA 2048.
        Rsa2048 => "RSA_2048",
        /// RSA 3072.
        Rsa3072 => "RSA_3072",
        /// RSA 4096.
        Rsa4096 => "RSA_4096",
        /// NIST P-256.
        EccNistP256 => "ECC_NIST_P256",
        /// NIST P-384.
        EccNistP384 => "ECC_NIST_P384",
        /// NIST P-521.
        EccNistP521 => "ECC_NIST_P521",
        /// secp256k1.
        EccSecgP256k1 => "ECC_SECG_P256K1",
        /// Ed25519 (PKCS#8 per RFC 8410).
        EccNistEdwards25519 => "ECC_NIST_EDWARDS25519",
        /// ML-KEM-512 (FIPS 203; PKCS#8 in the 64-byte seed form).
        MlKem512 => "ML_KEM_512",
        /// ML-KEM-768.
        MlKem768 => "ML_KEM_768",
        /// ML-KEM-1024.
        MlKem1024 => "ML_KEM_1024",
    }
}

/// Longest `Message` Sign/Verify/GenerateMac/VerifyMac accept, in bytes.
pub const MAX_MESSAGE_LEN: usize = 4096;

use AwsKeySpec as S;
use AwsKeyUsage as U;
use SigningAlgorithm as A;

const RSA_SIGNING: &[SigningAlgorithm] = &[
    A::RsassaPkcs1V15Sha256,
    A::RsassaPkcs1V15Sha384,
    A::RsassaPkcs1V15Sha512,
    A::RsassaPssSha256,
    A::RsassaPssSha384,
    A::RsassaPssSha512,
];
const RSA_ENCRYPTION: &[EncryptionAlgorithm] = &[
    EncryptionAlgorithm::RsaesOaepSha1,
    EncryptionAlgorithm::RsaesOaepSha256,
];

impl AwsKeySpec {
    /// The usages a key of this spec may be created with. (AWS defaults an omitted `KeyUsage`
    /// to `ENCRYPT_DECRYPT` for every spec and then rejects it where it does not fit; that
    /// default belongs to the front, not to this table.)
    pub fn usages(self) -> &'static [AwsKeyUsage] {
        match self {
            S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => &[U::EncryptDecrypt, U::SignVerify],
            S::EccNistP256 | S::EccNistP384 | S::EccNistP521 => &[U::SignVerify, U::KeyAgreement],
            S::EccSecgP256k1 | S::EccNistEdwards25519 | S::MlDsa44 | S::MlDsa65 | S::MlDsa87 => {
                &[U::SignVerify]
            }
            S::Hmac224 | S::Hmac256 | S::Hmac384 | S::Hmac512 => &[U::GenerateVerifyMac],
            S::SymmetricDefault => &[U::EncryptDecrypt],
        }
    }

    /// CreateKey's check: [`DomainError::Validation`] if `usage` does not fit this spec.
    pub fn check_usage(self, usage: AwsKeyUsage) -> Result<(), DomainError> {
        if self.usages().contains(&usage) {
            Ok(())
        } else {
            Err(DomainError::Validation(format!(
                "KeyUsage {usage} is not compatible with KeySpec {self}"
            )))
        }
    }

    /// Whether keys of this spec have a public half (GetPublicKey works).
    pub fn is_asymmetric(self) -> bool {
        !matches!(
            self,
            S::Hmac224 | S::Hmac256 | S::Hmac384 | S::Hmac512 | S::SymmetricDefault
        )
    }

    /// RSA modulus size in bits, for RSA specs.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            S::Rsa2048 => Some(2048),
            S::Rsa3072 => Some(3072),
            S::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// `SigningAlgorithms` of DescribeKey for a key of this spec and usage (empty unless
    /// the usage is `SIGN_VERIFY`).
    pub fn signing_algorithms(self, usage: AwsKeyUsage) -> &'static [SigningAlgorithm] {
        if usage != U::SignVerify {
            return &[];
        }
        match self {
            S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => RSA_SIGNING,
            S::EccNistP256 | S::EccSecgP256k1 => &[A::EcdsaSha256],
            S::EccNistP384 => &[A::EcdsaSha384],
            S::EccNistP521 => &[A::EcdsaSha512],
            S::EccNistEdwards25519 => &[A::Ed25519Sha512, A::Ed25519PhSha512],
            S::MlDsa44 | S::MlDsa65 | S::MlDsa87 => &[A::MlDsaShake256],
            _ => &[],
        }
    }

    /// `EncryptionAlgorithms` of DescribeKey (empty unless the usage is `ENCRYPT_DECRYPT`).
    pub fn encryption_algorithms(self, usage: AwsKeyUsage) -> &'static [EncryptionAlgorithm] {
        if usage != U::EncryptDecrypt {
            return &[];
        }
        match self {
            S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => RSA_ENCRYPTION,
            S::SymmetricDefault => &[EncryptionAlgorithm::SymmetricDefault],
            _ => &[],
        }
    }

    /// `MacAlgorithms` of DescribeKey (empty unless the usage is `GENERATE_VERIFY_MAC`).
    pub fn mac_algorithms(self, usage: AwsKeyUsage) -> &'static [MacAlgorithm] {
        if usage != U::GenerateVerifyMac {
            return &[];
        }
        match self {
            S::Hmac224 => &[MacAlgorithm::HmacSha224],
            S::Hmac256 => &[MacAlgorithm::HmacSha256],
            S::Hmac384 => &[MacAlgorithm::HmacSha384],
            S::Hmac512 => &[MacAlgorithm::HmacSha512],
            _ => &[],
        }
    }

    /// `KeyAgreementAlgorithms` of DescribeKey (empty unless the usage is `KEY_AGREEMENT`).
    pub fn key_agreement_algorithms(self, usage: AwsKeyUsage) -> &'static [KeyAgreementAlgorithm] {
        match (self, usage) {
            (S::EccNistP256 | S::EccNistP384 | S::EccNistP521, U::KeyAgreement) => {
                &[KeyAgreementAlgorithm::Ecdh]
            }
            _ => &[],
        }
    }
}

impl SigningAlgorithm {
    /// Length in bytes of the digest a `DIGEST` message must have (`None` where `DIGEST` is
    /// not allowed: pure Ed25519 and ML-DSA).
    pub fn digest_len(self) -> Option<usize> {
        match self {
            A::RsassaPssSha256 | A::RsassaPkcs1V15Sha256 | A::EcdsaSha256 => Some(32),
            A::RsassaPssSha384 | A::RsassaPkcs1V15Sha384 | A::EcdsaSha384 => Some(48),
            A::RsassaPssSha512 | A::RsassaPkcs1V15Sha512 | A::EcdsaSha512 => Some(64),
            A::Ed25519PhSha512 => Some(64),
            A::Ed25519Sha512 | A::MlDsaShake256 => None,
        }
    }
}

impl MacAlgorithm {
    /// Tag length in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            MacAlgorithm::HmacSha224 => 28,
            MacAlgorithm::HmacSha256 => 32,
            MacAlgorithm::HmacSha384 => 48,
            MacAlgorithm::HmacSha512 => 64,
        }
    }
}

impl DataKeyPairSpec {
    /// The KMS key spec whose private key format the pair uses; `None` for the ML-KEM
    /// pairs, which no KMS key spec shares.
    pub fn key_spec(self) -> Option<AwsKeySpec> {
        match self {
            DataKeyPairSpec::Rsa2048 => Some(S::Rsa2048),
            DataKeyPairSpec::Rsa3072 => Some(S::Rsa3072),
            DataKeyPairSpec::Rsa4096 => Some(S::Rsa4096),
            DataKeyPairSpec::EccNistP256 => Some(S::EccNistP256),
            DataKeyPairSpec::EccNistP384 => Some(S::EccNistP384),
            DataKeyPairSpec::EccNistP521 => Some(S::EccNistP521),
            DataKeyPairSpec::EccSecgP256k1 => Some(S::EccSecgP256k1),
            DataKeyPairSpec::EccNistEdwards25519 => Some(S::EccNistEdwards25519),
            DataKeyPairSpec::MlKem512 | DataKeyPairSpec::MlKem768 | DataKeyPairSpec::MlKem1024 => {
                None
            }
        }
    }
}

/// The check every operation makes first: the key's usage must be the one the operation
/// needs, and the spec must allow that usage. [`DomainError::InvalidKeyUsage`] otherwise,
/// as AWS raises it.
pub(crate) fn ensure_usage(
    spec: AwsKeySpec,
    usage: AwsKeyUsage,
    required: AwsKeyUsage,
) -> Result<(), DomainError> {
    if usage != required || !spec.usages().contains(&usage) {
        return Err(DomainError::InvalidKeyUsage(format!(
            "This operation requires a key with KeyUsage {required}; the key is {spec} with \
             KeyUsage {usage}"
        )));
    }
    Ok(())
}

/// [`DomainError::InvalidKeyUsage`] for an algorithm the key's spec does not support.
pub(crate) fn unsupported_algorithm(alg: &str, spec: AwsKeySpec) -> DomainError {
    DomainError::InvalidKeyUsage(format!(
        "Algorithm {alg} is not supported by keys of KeySpec {spec}"
    ))
}

/// AWS's `Message` length constraint (1..=4096 bytes).
pub(crate) fn check_message_len(message: &[u8]) -> Result<(), DomainError> {
    if message.is_empty() || message.len() > MAX_MESSAGE_LEN {
        return Err(DomainError::Validation(format!(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: \
             Member must have length between 1 and {MAX_MESSAGE_LEN}, got {} bytes",
            message.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_string_round_trips() {
        for s in AwsKeySpec::ALL {
            assert_eq!(AwsKeySpec::parse(s.as_str()).unwrap(), *s);
        }
        for a in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::parse(a.as_str()).unwrap(), *a);
        }
        for m in MessageType::ALL {
            assert_eq!(MessageType::parse(m.as_str()).unwrap(), *m);
        }
    }

    #[test]
    fn parse_is_case_sensitive_and_names_the_field() {
        let Err(DomainError::Validation(msg)) = AwsKeySpec::parse("rsa_2048") else {
            panic!("expected Validation");
        };
        assert!(
            msg.contains("'keySpec'") && msg.contains("RSA_2048"),
            "{msg}"
        );
    }

    #[test]
    fn serde_uses_the_wire_strings() {
        let json = serde_json::to_string(&AwsKeySpec::EccSecgP256k1).unwrap();
        assert_eq!(json, "\"ECC_SECG_P256K1\"");
        let back: AwsKeySpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, AwsKeySpec::EccSecgP256k1);
        assert!(serde_json::from_str::<AwsKeySpec>("\"SM2\"").is_err());
        // Records written by the symmetric-only model.
        let legacy: AwsKeySpec = serde_json::from_str("\"SymmetricDefault\"").unwrap();
        assert_eq!(legacy, AwsKeySpec::SymmetricDefault);
        let legacy: AwsKeyUsage = serde_json::from_str("\"EncryptDecrypt\"").unwrap();
        assert_eq!(legacy, AwsKeyUsage::EncryptDecrypt);
    }

    #[test]
    fn records_written_by_the_symmetric_only_model_still_read() {
        // A KeyRecord as the code before issue 3 persisted it (serde_json, Rust variant
        // names for spec and usage); dev directories and clusters keep such records.
        let old = r#"{"key_id":"k","arn":"arn:aws:kms:us-east-1:111122223333:key/k",
            "account_id":"111122223333","region":"us-east-1","description":"",
            "key_spec":"SymmetricDefault","key_usage":"EncryptDecrypt","origin":"AwsKms",
            "state":"Enabled","creation_date":1,"deletion_date":null,
            "pending_deletion_window_days":null,"tags":{},"policy":"{}","multi_region":false,
            "materials":[],"current_material_version":1}"#;
        let record: crate::model::KeyRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.key_spec, AwsKeySpec::SymmetricDefault);
        assert_eq!(record.key_usage, AwsKeyUsage::EncryptDecrypt);
        // Written back, it uses the wire strings, which read again.
        let new = serde_json::to_value(&record).unwrap();
        assert_eq!(new["key_spec"], "SYMMETRIC_DEFAULT");
        assert_eq!(new["key_usage"], "ENCRYPT_DECRYPT");
        let again: crate::model::KeyRecord = serde_json::from_value(new).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn every_spec_has_algorithms_for_each_of_its_usages() {
        for spec in AwsKeySpec::ALL {
            for usage in spec.usages() {
                let n = spec.signing_algorithms(*usage).len()
                    + spec.encryption_algorithms(*usage).len()
                    + spec.mac_algorithms(*usage).len()
                    + spec.key_agreement_algorithms(*usage).len();
                assert!(n > 0, "{spec} {usage}");
            }
            for usage in AwsKeyUsage::ALL {
                if !spec.usages().contains(usage) {
                    assert!(spec.check_usage(*usage).is_err(), "{spec} {usage}");
                }
            }
        }
    }

    #[test]
    fn describe_key_lists_match_aws() {
        assert_eq!(
            AwsKeySpec::Rsa3072
                .signing_algorithms(AwsKeyUsage::SignVerify)
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
            [
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512"
            ]
        );
        assert!(AwsKeySpec::Rsa3072
            .signing_algorithms(AwsKeyUsage::EncryptDecrypt)
            .is_empty());
        assert_eq!(
            AwsKeySpec::Rsa2048.encryption_algorithms(AwsKeyUsage::EncryptDecrypt),
            [
                EncryptionAlgorithm::RsaesOaepSha1,
                EncryptionAlgorithm::RsaesOaepSha256
            ]
        );
        assert_eq!(
            AwsKeySpec::EccNistP521.signing_algorithms(AwsKeyUsage::SignVerify),
            [SigningAlgorithm::EcdsaSha512]
        );
        assert_eq!(
            AwsKeySpec::EccNistP384.key_agreement_algorithms(AwsKeyUsage::KeyAgreement),
            [KeyAgreementAlgorithm::Ecdh]
        );
        assert_eq!(
            AwsKeySpec::Hmac384.mac_algorithms(AwsKeyUsage::GenerateVerifyMac),
            [MacAlgorithm::HmacSha384]
        );
        assert!(AwsKeySpec::EccSecgP256k1
            .check_usage(AwsKeyUsage::KeyAgreement)
            .is_err());
    }
}
