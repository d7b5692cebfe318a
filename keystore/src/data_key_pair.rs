//! GenerateDataKeyPair(WithoutPlaintext): a fresh asymmetric pair that keyraft does not keep.
//!
//! # Layout
//!
//! ```text
//!  generate_data_key_pair(KeyPairSpec) -> SecretKeyMaterial::generate(spec.key_spec())
//!                                       | ml_kem::generate (ML_KEM_*: PKCS#8 seed form)
//!        -> DataKeyPair { private: PKCS#8 DER (Secret), public: SPKI DER }
//!  front: PrivateKeyCiphertextBlob = ciphertext::seal(private, symmetric KMS key, context)
//! ```
//!
//! The private key is PKCS#8 `PrivateKeyInfo` DER and the public key DER
//! `SubjectPublicKeyInfo`, the formats AWS returns in `PrivateKeyPlaintext` and `PublicKey`.

use crate::crypto::Secret;
use crate::error::DomainError;
use crate::material::SecretKeyMaterial;
use crate::ml_kem::{self, MlKemParams};
use crate::spec::DataKeyPairSpec;

/// A generated data key pair. No `Debug`: the private key is secret.
pub struct DataKeyPair {
    private_key: Secret,
    public_key: Vec<u8>,
}

impl DataKeyPair {
    /// The private key, PKCS#8 DER (`PrivateKeyPlaintext`).
    pub fn private_key_pkcs8(&self) -> &Secret {
        &self.private_key
    }

    /// The public key, DER SubjectPublicKeyInfo (`PublicKey`).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    /// Both halves, by value.
    pub fn into_parts(self) -> (Secret, Vec<u8>) {
        (self.private_key, self.public_key)
    }
}

/// A fresh pair of `spec`.
pub fn generate_data_key_pair(spec: DataKeyPairSpec) -> Result<DataKeyPair, DomainError> {
    let Some(key_spec) = spec.key_spec() else {
        let params = match spec {
            DataKeyPairSpec::MlKem512 => MlKemParams::MlKem512,
            DataKeyPairSpec::MlKem768 => MlKemParams::MlKem768,
            _ => MlKemParams::MlKem1024,
        };
        let (private_key, public_key) = ml_kem::generate(params)?;
        return Ok(DataKeyPair {
            private_key,
            public_key,
        });
    };
    let m = SecretKeyMaterial::generate(key_spec)?;
    let public_key = m.public_key_der()?;
    Ok(DataKeyPair {
        private_key: Secret::new(m.expose_secret().to_vec()),
        public_key,
    })
}
