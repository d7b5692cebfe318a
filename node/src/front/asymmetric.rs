//! Asymmetric, HMAC and key-agreement keys over the AWS API (issue 3's key spec table).
//!
//! A child module of `ops` (declared there with `#[path]`), so it shares the private
//! plumbing every operation uses — `resolve`, `authorize_key`, `seal_under`, the domain
//! key — without widening its visibility.
//!
//! # Layout
//!
//! ```text
//!  CreateKey            spec_and_usage (AWS's spec/usage rules) -> new_wrapped_material
//!  GetPublicKey         RSA / ECC / Ed25519 / ML-DSA keys: DER SubjectPublicKeyInfo
//!  Sign, Verify         SIGN_VERIFY keys                    keystore::sign
//!  GenerateMac/VerifyMac GENERATE_VERIFY_MAC keys           keystore::mac
//!  DeriveSharedSecret   KEY_AGREEMENT keys (ECDH)           keystore::ecdh
//!  Encrypt/Decrypt      RSAES_OAEP_* with RSA keys (ops routes them here)  keystore::rsa_encrypt
//!  GenerateDataKeyPair* a fresh pair; the private key sealed under a symmetric key
//! ```
//!
//! Each operation: validate the shape -> resolve (cache) -> authorize -> check_state ->
//! key usage -> unwrap the material (`spec_material`) -> keystore -> AWS response.
//! Unwrapped material, messages, MACs' plaintexts and shared secrets stay in
//! zeroizing types (`SecretKeyMaterial`, `Secret`, `SecretBlob`) and never reach a log.

use keystore::data_key_pair::{self, DataKeyPair};
use keystore::error::DomainError;
use keystore::material::SecretKeyMaterial;
use keystore::model::{KeySpec, KeyUsage, Wrapped};
use keystore::spec::{
    DataKeyPairSpec, EncryptionAlgorithm, KeyAgreementAlgorithm, MacAlgorithm, MessageType,
    SigningAlgorithm, MAX_MESSAGE_LEN,
};
use keystore::{ecdh, mac, rsa_encrypt, sign};

use super::*;

/// Longest `Signature` / `Mac` / RSA ciphertext accepted (bytes), as in AWS's model.
const MAX_SIGNATURE: usize = 6144;
/// Longest `PublicKey` DeriveSharedSecret accepts (bytes).
const MAX_PUBLIC_KEY: usize = 8192;

// ---- shapes (botocore's kms/2014-11-01 members) ----------------------------------------------

macro_rules! shape {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

shape!(
    /// `GetPublicKeyRequest`.
    GetPublicKeyRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Accepted, ignored (no grants yet).
        grant_tokens: Vec<String>,
    }
);

shape!(
    /// `GetPublicKeyResponse`.
    GetPublicKeyResponse {
        /// Key ARN.
        key_id: String,
        /// DER `SubjectPublicKeyInfo`.
        public_key: Blob,
        /// Legacy spelling of `KeySpec`.
        customer_master_key_spec: String,
        /// Key spec.
        key_spec: String,
        /// Key usage.
        key_usage: String,
        /// `ENCRYPT_DECRYPT` keys.
        encryption_algorithms: Vec<String>,
        /// `SIGN_VERIFY` keys.
        signing_algorithms: Vec<String>,
        /// `KEY_AGREEMENT` keys.
        key_agreement_algorithms: Vec<String>,
    }
);

shape!(
    /// `SignRequest`.
    SignRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// 1..=4096 bytes (sensitive in AWS's model).
        message: SecretBlob,
        /// `RAW` (default), `DIGEST` or `EXTERNAL_MU`.
        message_type: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Required.
        signing_algorithm: String,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `SignResponse`.
    SignResponse {
        /// Key ARN.
        key_id: String,
        /// The signature.
        signature: Blob,
        /// The algorithm used.
        signing_algorithm: String,
    }
);

shape!(
    /// `VerifyRequest`.
    VerifyRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// 1..=4096 bytes.
        message: SecretBlob,
        /// `RAW` (default), `DIGEST` or `EXTERNAL_MU`.
        message_type: String,
        /// The signature to check.
        signature: Blob,
        /// Required.
        signing_algorithm: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `VerifyResponse` (only ever `SignatureValid: true`; an invalid signature is
    /// `KMSInvalidSignatureException`).
    VerifyResponse {
        /// Key ARN.
        key_id: String,
        /// Always true.
        signature_valid: bool,
        /// The algorithm used.
        signing_algorithm: String,
    }
);

shape!(
    /// `GenerateMacRequest`.
    GenerateMacRequest {
        /// 1..=4096 bytes.
        message: SecretBlob,
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Required.
        mac_algorithm: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `GenerateMacResponse`.
    GenerateMacResponse {
        /// The tag.
        mac: Blob,
        /// The algorithm used.
        mac_algorithm: String,
        /// Key ARN.
        key_id: String,
    }
);

shape!(
    /// `VerifyMacRequest`.
    VerifyMacRequest {
        /// 1..=4096 bytes.
        message: SecretBlob,
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Required.
        mac_algorithm: String,
        /// The tag to check.
        mac: Blob,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `VerifyMacResponse` (only ever `MacValid: true`; otherwise `KMSInvalidMacException`).
    VerifyMacResponse {
        /// Key ARN.
        key_id: String,
        /// Always true.
        mac_valid: bool,
        /// The algorithm used.
        mac_algorithm: String,
    }
);

shape!(
    /// `DeriveSharedSecretRequest`.
    DeriveSharedSecretRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// `ECDH`.
        key_agreement_algorithm: String,
        /// The peer's DER `SubjectPublicKeyInfo`.
        public_key: Blob,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
        /// Nitro Enclaves attestation: not supported.
        recipient: serde_json::Value,
    }
);

shape!(
    /// `DeriveSharedSecretResponse`.
    DeriveSharedSecretResponse {
        /// Key ARN.
        key_id: String,
        /// The raw ECDH shared secret.
        shared_secret: SecretBlob,
        /// Never set (no `Recipient` support).
        ciphertext_for_recipient: Blob,
        /// `ECDH`.
        key_agreement_algorithm: String,
        /// `AWS_KMS`.
        key_origin: String,
    }
);

shape!(
    /// `GenerateDataKeyPairRequest` and `GenerateDataKeyPairWithoutPlaintextRequest`.
    GenerateDataKeyPairRequest {
        /// Bound to the private key's ciphertext.
        encryption_context: EncryptionContextMap,
        /// The symmetric key that seals the private key.
        key_id: String,
        /// `RSA_2048`, ..., `ECC_SECG_P256K1`.
        key_pair_spec: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Nitro Enclaves attestation: not supported.
        recipient: serde_json::Value,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `GenerateDataKeyPairResponse`.
    GenerateDataKeyPairResponse {
        /// The private key (PKCS#8) sealed under the KMS key (normal ciphertext format).
        private_key_ciphertext_blob: Blob,
        /// PKCS#8 `PrivateKeyInfo` DER.
        private_key_plaintext: SecretBlob,
        /// DER `SubjectPublicKeyInfo`.
        public_key: Blob,
        /// Key ARN.
        key_id: String,
        /// The pair's spec.
        key_pair_spec: String,
    }
);

shape!(
    /// `GenerateDataKeyPairWithoutPlaintextResponse`.
    GenerateDataKeyPairWithoutPlaintextResponse {
        /// The private key (PKCS#8) sealed under the KMS key.
        private_key_ciphertext_blob: Blob,
        /// DER `SubjectPublicKeyInfo`.
        public_key: Blob,
        /// Key ARN.
        key_id: String,
        /// The pair's spec.
        key_pair_spec: String,
    }
);

// ---- helpers shared with ops -----------------------------------------------------------------

/// A DescribeKey / GetPublicKey algorithm list: absent when empty, as AWS omits it.
pub(super) fn wire_list<T: std::fmt::Display>(algs: &[T]) -> Option<Vec<String>> {
    (!algs.is_empty()).then(|| algs.iter().map(|a| a.to_string()).collect())
}

/// CreateKey's spec/usage rules. Both strings already passed the model's enum check; SM2
/// (China regions only) and ML-KEM are the specs of the enum keyraft does not offer.
/// `KeyUsage` may be omitted only for `SYMMETRIC_DEFAULT` (AWS: "optional when you are
/// creating a symmetric encryption KMS key; otherwise, it is required").
pub(super) fn spec_and_usage(
    spec: &str,
    usage: &str,
    usage_given: bool,
) -> Result<(KeySpec, KeyUsage), KmsError> {
    let key_spec = KeySpec::parse(spec).map_err(|_| {
        KmsError::UnsupportedOperation(format!("KeySpec {spec} is not supported in this region."))
    })?;
    if !usage_given && key_spec != KeySpec::SymmetricDefault {
        return Err(KmsError::Validation(format!(
            "You must specify a KeyUsage value when KeySpec is {spec}."
        )));
    }
    let key_usage = KeyUsage::parse(usage)?;
    key_spec.check_usage(key_usage)?;
    Ok((key_spec, key_usage))
}

/// Whether an `EncryptionAlgorithm` member names an RSA algorithm (the request then goes to
/// the RSA path; any other value stays on the symmetric path and its checks).
pub(super) fn is_rsa_algorithm(alg: &Option<String>) -> bool {
    matches!(
        alg.as_deref(),
        Some("RSAES_OAEP_SHA_1") | Some("RSAES_OAEP_SHA_256")
    )
}

fn op_name(op: state::Operation) -> &'static str {
    use state::Operation as S;
    match op {
        S::Encrypt => "Encrypt",
        S::Decrypt => "Decrypt",
        S::ReEncryptFrom | S::ReEncryptTo => "ReEncrypt",
        S::GenerateDataKey => "GenerateDataKey",
        S::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
        S::GenerateDataKeyPair => "GenerateDataKeyPair",
        S::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
        S::GetPublicKey => "GetPublicKey",
        S::Sign => "Sign",
        S::Verify => "Verify",
        S::GenerateMac => "GenerateMac",
        S::VerifyMac => "VerifyMac",
        S::DeriveSharedSecret => "DeriveSharedSecret",
        _ => "this operation",
    }
}

/// `InvalidKeyUsageException` for a key whose usage does not allow `op`.
fn wrong_usage(key: &KeyRecord, op: state::Operation) -> KmsError {
    KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {}.",
        key.arn,
        key.key_usage,
        op_name(op)
    ))
}

/// The symmetric operations (Encrypt/Decrypt/ReEncrypt/GenerateDataKey*/GenerateDataKeyPair*)
/// need a `SYMMETRIC_DEFAULT` key; anything else is `InvalidKeyUsageException`.
pub(super) fn check_symmetric(key: &KeyRecord, op: state::Operation) -> Result<(), KmsError> {
    use state::Operation as S;
    if key.key_spec == KeySpec::SymmetricDefault {
        return Ok(());
    }
    let encrypts = matches!(
        op,
        S::Encrypt | S::Decrypt | S::ReEncryptFrom | S::ReEncryptTo
    );
    if key.key_usage == KeyUsage::EncryptDecrypt && encrypts {
        return Err(KmsError::InvalidKeyUsage(format!(
            "The encryption algorithm {SYMMETRIC_DEFAULT} is not compatible with the key spec {}.",
            key.key_spec
        )));
    }
    if key.key_usage == KeyUsage::EncryptDecrypt {
        return Err(KmsError::InvalidKeyUsage(format!(
            "{} key spec is {} which is not valid for {}.",
            key.arn,
            key.key_spec,
            op_name(op)
        )));
    }
    Err(wrong_usage(key, op))
}

fn check_message(message: &SecretBlob) -> Result<(), KmsError> {
    if message.0.is_empty() || message.0.len() > MAX_MESSAGE_LEN {
        return Err(KmsError::constraint(
            "Message",
            "(blob)",
            &format!("Member must have length between 1 and {MAX_MESSAGE_LEN}"),
        ));
    }
    Ok(())
}

fn check_blob(member: &str, blob: &Blob, max: usize) -> Result<(), KmsError> {
    if blob.0.is_empty() || blob.0.len() > max {
        return Err(KmsError::constraint(
            member,
            "(blob)",
            &format!("Member must have length between 1 and {max}"),
        ));
    }
    Ok(())
}

fn no_recipient(recipient: &Option<serde_json::Value>) -> Result<(), KmsError> {
    match recipient {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(_) => Err(KmsError::UnsupportedOperation(
            "Recipient (AWS Nitro Enclaves attestation) is not supported.".into(),
        )),
    }
}

fn incompatible_algorithm(kind: &str, alg: &str, spec: KeySpec) -> KmsError {
    KmsError::InvalidKeyUsage(format!(
        "The {kind} algorithm {alg} is not compatible with the key spec {spec}."
    ))
}

fn no_context_with_asymmetric(ctx: &Option<EncryptionContextMap>) -> Result<(), KmsError> {
    if ctx.as_ref().is_some_and(|c| !c.is_empty()) {
        // Silently ignoring it would let a caller believe the context is bound.
        return Err(KmsError::Validation(
            "EncryptionContext is not supported with asymmetric KMS keys.".into(),
        ));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, KmsError> {
    // Key generation (RSA above all) is CPU work for milliseconds to seconds: keep it off
    // the async workers.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| KmsError::internal())?
        .map_err(KmsError::from)
}

impl Kms {
    /// Fresh material for a new key of `spec`, wrapped under the domain key.
    /// `SYMMETRIC_DEFAULT` keeps the 32-byte format (`wrap_material`) that stored records use.
    pub(super) async fn new_wrapped_material(
        &self,
        spec: KeySpec,
        key_id: &str,
        version: u32,
    ) -> Result<Wrapped, KmsError> {
        if spec == KeySpec::SymmetricDefault {
            let m = KeyMaterial::generate();
            return Ok(crypto::wrap_material(&self.domain_key, key_id, version, &m));
        }
        let m = blocking(move || SecretKeyMaterial::generate(spec)).await?;
        Ok(crypto::wrap_spec_material(
            &self.domain_key,
            key_id,
            version,
            &m,
        ))
    }

    /// The current material of a non-symmetric key, unwrapped.
    fn spec_material(&self, key: &KeyRecord) -> Result<SecretKeyMaterial, KmsError> {
        let version = key.current_material_version;
        let mv = key
            .materials
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| {
                tracing::error!(key_id = %key.key_id, version, "current material version missing");
                KmsError::internal()
            })?;
        Ok(crypto::unwrap_spec_material(
            &self.domain_key,
            &key.key_id,
            version,
            key.key_spec,
            &mv.wrapped,
        )?)
    }

    /// Resolve (cache) -> authorize -> key state -> usage: the common start of every
    /// operation here.
    async fn usable_key(
        &self,
        caller: &Caller,
        key_id: &str,
        op: Operation,
        sop: state::Operation,
        usage: Option<KeyUsage>,
        facts: Facts<'_>,
    ) -> Result<KeyRecord, KmsError> {
        self.usable_key_for(caller, key_id, op.action(), sop, usage, facts)
            .await
    }

    /// [`Kms::usable_key`] with an explicit IAM action (`kms:ReEncryptFrom`).
    async fn usable_key_for(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
        sop: state::Operation,
        usage: Option<KeyUsage>,
        facts: Facts<'_>,
    ) -> Result<KeyRecord, KmsError> {
        let key = self.resolve(caller, key_id, CRYPTO).await?;
        self.authorize_key(caller, action, &key, facts.key_ref(key_id))
            .await?;
        check_state(&key, sop)?;
        if let Some(usage) = usage {
            if key.key_usage != usage {
                return Err(wrong_usage(&key, sop));
            }
        }
        Ok(key)
    }

    /// Runs one of this module's operations on a JSON body.
    pub(super) async fn dispatch_asymmetric(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use Operation as O;
        match op {
            O::GetPublicKey => to_body(&self.get_public_key(caller, parse_request(body)?).await?),
            O::Sign => to_body(&self.sign(caller, parse_request(body)?).await?),
            O::Verify => to_body(&self.verify(caller, parse_request(body)?).await?),
            O::GenerateMac => to_body(&self.generate_mac(caller, parse_request(body)?).await?),
            O::VerifyMac => to_body(&self.verify_mac(caller, parse_request(body)?).await?),
            O::DeriveSharedSecret => to_body(
                &self
                    .derive_shared_secret(caller, parse_request(body)?)
                    .await?,
            ),
            O::GenerateDataKeyPair => to_body(
                &self
                    .generate_data_key_pair(caller, parse_request(body)?)
                    .await?,
            ),
            O::GenerateDataKeyPairWithoutPlaintext => to_body(
                &self
                    .generate_data_key_pair_without_plaintext(caller, parse_request(body)?)
                    .await?,
            ),
            _ => Err(KmsError::internal()),
        }
    }

    /// GetPublicKey: the DER SPKI of an asymmetric key, with its spec, usage and algorithms.
    /// Symmetric and HMAC keys have none: `UnsupportedOperationException`.
    pub async fn get_public_key(
        &self,
        caller: &Caller,
        req: GetPublicKeyRequest,
    ) -> Result<GetPublicKeyResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                Operation::GetPublicKey,
                state::Operation::GetPublicKey,
                None,
                Facts::none().tokens(&req.grant_tokens),
            )
            .await?;
        if !key.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} key spec is {}, which does not have a public key. GetPublicKey is \
                 supported only on asymmetric KMS keys.",
                key.arn, key.key_spec
            )));
        }
        let public_key = self.spec_material(&key)?.public_key_der()?;
        let (spec, usage) = (key.key_spec, key.key_usage);
        Ok(GetPublicKeyResponse {
            key_id: Some(key.arn),
            public_key: Some(Blob(public_key)),
            customer_master_key_spec: Some(spec.to_string()),
            key_spec: Some(spec.to_string()),
            key_usage: Some(usage.to_string()),
            encryption_algorithms: wire_list(spec.encryption_algorithms(usage)),
            signing_algorithms: wire_list(spec.signing_algorithms(usage)),
            key_agreement_algorithms: wire_list(spec.key_agreement_algorithms(usage)),
        })
    }

    /// The shape checks Sign and Verify share; returns the parsed algorithm and type.
    fn signing_request(
        alg: Option<String>,
        message_type: Option<String>,
        message: &SecretBlob,
    ) -> Result<(SigningAlgorithm, MessageType), KmsError> {
        let alg = SigningAlgorithm::parse(&require(alg, "SigningAlgorithm")?)?;
        let mt = MessageType::parse(message_type.as_deref().unwrap_or("RAW"))?;
        check_message(message)?;
        if mt == MessageType::ExternalMu && alg != SigningAlgorithm::MlDsaShake256 {
            // AWS takes a 64-byte mu only for ML-DSA; the keystore checks its length.
            return Err(KmsError::Validation(format!(
                "MessageType EXTERNAL_MU is only valid with ML_DSA_SHAKE_256, not {alg}."
            )));
        }
        Ok((alg, mt))
    }

    fn check_signing_algorithm(key: &KeyRecord, alg: SigningAlgorithm) -> Result<(), KmsError> {
        if key
            .key_spec
            .signing_algorithms(key.key_usage)
            .contains(&alg)
        {
            Ok(())
        } else {
            Err(incompatible_algorithm(
                "signing",
                alg.as_str(),
                key.key_spec,
            ))
        }
    }

    /// Sign.
    pub async fn sign(&self, caller: &Caller, req: SignRequest) -> Result<SignResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let message = require(req.message, "Message")?;
        let (alg, mt) = Self::signing_request(req.signing_algorithm, req.message_type, &message)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                Operation::Sign,
                state::Operation::Sign,
                Some(KeyUsage::SignVerify),
                Facts::none()
                    .tokens(&req.grant_tokens)
                    .with("kms:SigningAlgorithm", alg.as_str())
                    .with("kms:MessageType", mt.as_str()),
            )
            .await?;
        Self::check_signing_algorithm(&key, alg)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let material = self.spec_material(&key)?;
        let signature = blocking(move || {
            sign::sign(
                &material,
                KeyUsage::SignVerify,
                alg,
                mt,
                message.expose_secret(),
            )
        })
        .await?;
        Ok(SignResponse {
            key_id: Some(key.arn),
            signature: Some(Blob(signature)),
            signing_algorithm: Some(alg.to_string()),
        })
    }

    /// Verify. An invalid signature is `KMSInvalidSignatureException`, as AWS raises it.
    pub async fn verify(
        &self,
        caller: &Caller,
        req: VerifyRequest,
    ) -> Result<VerifyResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let message = require(req.message, "Message")?;
        let signature = require(req.signature, "Signature")?;
        let (alg, mt) = Self::signing_request(req.signing_algorithm, req.message_type, &message)?;
        check_blob("Signature", &signature, MAX_SIGNATURE)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                Operation::Verify,
                state::Operation::Verify,
                Some(KeyUsage::SignVerify),
                Facts::none()
                    .tokens(&req.grant_tokens)
                    .with("kms:SigningAlgorithm", alg.as_str())
                    .with("kms:MessageType", mt.as_str()),
            )
            .await?;
        Self::check_signing_algorithm(&key, alg)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let material = self.spec_material(&key)?;
        let valid = blocking(move || {
            sign::verify(
                &material,
                KeyUsage::SignVerify,
                alg,
                mt,
                message.expose_secret(),
                &signature.0,
            )
        })
        .await?;
        if !valid {
            return Err(KmsError::KmsInvalidSignature(String::new()));
        }
        Ok(VerifyResponse {
            key_id: Some(key.arn),
            signature_valid: Some(true),
            signing_algorithm: Some(alg.to_string()),
        })
    }

    async fn mac_key(
        &self,
        caller: &Caller,
        key_id: Option<String>,
        alg: Option<String>,
        message: &Option<SecretBlob>,
        grant_tokens: &Option<Vec<String>>,
        (op, sop): (Operation, state::Operation),
    ) -> Result<(KeyRecord, MacAlgorithm), KmsError> {
        let key_id = require(key_id, "KeyId")?;
        let message = message
            .as_ref()
            .ok_or_else(|| KmsError::missing("Message"))?;
        let alg = MacAlgorithm::parse(&require(alg, "MacAlgorithm")?)?;
        check_message(message)?;
        check_grant_tokens(grant_tokens)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                op,
                sop,
                Some(KeyUsage::GenerateVerifyMac),
                Facts::none()
                    .tokens(grant_tokens)
                    .with("kms:MacAlgorithm", alg.as_str()),
            )
            .await?;
        if !key.key_spec.mac_algorithms(key.key_usage).contains(&alg) {
            return Err(incompatible_algorithm("MAC", alg.as_str(), key.key_spec));
        }
        Ok((key, alg))
    }

    /// GenerateMac.
    pub async fn generate_mac(
        &self,
        caller: &Caller,
        req: GenerateMacRequest,
    ) -> Result<GenerateMacResponse, KmsError> {
        let (key, alg) = self
            .mac_key(
                caller,
                req.key_id,
                req.mac_algorithm,
                &req.message,
                &req.grant_tokens,
                (Operation::GenerateMac, state::Operation::GenerateMac),
            )
            .await?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let message = require(req.message, "Message")?;
        let material = self.spec_material(&key)?;
        let tag = mac::generate_mac(&material, key.key_usage, alg, message.expose_secret())?;
        Ok(GenerateMacResponse {
            mac: Some(Blob(tag)),
            mac_algorithm: Some(alg.to_string()),
            key_id: Some(key.arn),
        })
    }

    /// VerifyMac. A MAC that does not match is `KMSInvalidMacException`.
    pub async fn verify_mac(
        &self,
        caller: &Caller,
        req: VerifyMacRequest,
    ) -> Result<VerifyMacResponse, KmsError> {
        let tag = require(req.mac.clone(), "Mac")?;
        check_blob("Mac", &tag, MAX_SIGNATURE)?;
        let (key, alg) = self
            .mac_key(
                caller,
                req.key_id,
                req.mac_algorithm,
                &req.message,
                &req.grant_tokens,
                (Operation::VerifyMac, state::Operation::VerifyMac),
            )
            .await?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let message = require(req.message, "Message")?;
        let material = self.spec_material(&key)?;
        if !mac::verify_mac(
            &material,
            key.key_usage,
            alg,
            message.expose_secret(),
            &tag.0,
        )? {
            return Err(KmsError::KmsInvalidMac(String::new()));
        }
        Ok(VerifyMacResponse {
            key_id: Some(key.arn),
            mac_valid: Some(true),
            mac_algorithm: Some(alg.to_string()),
        })
    }

    /// DeriveSharedSecret (ECDH with a KEY_AGREEMENT key and the peer's DER SPKI).
    pub async fn derive_shared_secret(
        &self,
        caller: &Caller,
        req: DeriveSharedSecretRequest,
    ) -> Result<DeriveSharedSecretResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let alg = KeyAgreementAlgorithm::parse(&require(
            req.key_agreement_algorithm,
            "KeyAgreementAlgorithm",
        )?)?;
        let peer = require(req.public_key, "PublicKey")?;
        check_blob("PublicKey", &peer, MAX_PUBLIC_KEY)?;
        check_grant_tokens(&req.grant_tokens)?;
        no_recipient(&req.recipient)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                Operation::DeriveSharedSecret,
                state::Operation::DeriveSharedSecret,
                Some(KeyUsage::KeyAgreement),
                Facts::none()
                    .tokens(&req.grant_tokens)
                    .with("kms:KeyAgreementAlgorithm", alg.as_str()),
            )
            .await?;
        if !key
            .key_spec
            .key_agreement_algorithms(key.key_usage)
            .contains(&alg)
        {
            return Err(incompatible_algorithm(
                "key agreement",
                alg.as_str(),
                key.key_spec,
            ));
        }
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let material = self.spec_material(&key)?;
        let shared = ecdh::derive_shared_secret(&material, key.key_usage, alg, &peer.0)?;
        Ok(DeriveSharedSecretResponse {
            key_id: Some(key.arn),
            shared_secret: Some(SecretBlob(shared)),
            ciphertext_for_recipient: None,
            key_agreement_algorithm: Some(alg.to_string()),
            key_origin: Some("AWS_KMS".into()),
        })
    }

    /// An RSA `ENCRYPT_DECRYPT` key for `alg`, or AWS's `InvalidKeyUsageException`.
    fn check_rsa_encryption_key(
        key: &KeyRecord,
        alg: EncryptionAlgorithm,
        sop: state::Operation,
    ) -> Result<(), KmsError> {
        if key
            .key_spec
            .encryption_algorithms(key.key_usage)
            .contains(&alg)
        {
            return Ok(());
        }
        if key.key_usage == KeyUsage::EncryptDecrypt {
            return Err(incompatible_algorithm(
                "encryption",
                alg.as_str(),
                key.key_spec,
            ));
        }
        Err(wrong_usage(key, sop))
    }

    /// Encrypt with an RSA key (`EncryptionAlgorithm` `RSAES_OAEP_SHA_1|256`): the raw OAEP
    /// ciphertext, as AWS returns it, so anyone holding GetPublicKey's key can produce the
    /// same format offline.
    pub(super) async fn encrypt_rsa(
        &self,
        caller: &Caller,
        key_id: String,
        plaintext: SecretBlob,
        ctx: Option<EncryptionContextMap>,
        alg: Option<String>,
        dry: Option<bool>,
    ) -> Result<EncryptResponse, KmsError> {
        let alg = EncryptionAlgorithm::parse(alg.as_deref().unwrap_or(SYMMETRIC_DEFAULT))?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                Operation::Encrypt,
                state::Operation::Encrypt,
                None,
                Facts::none()
                    .context(ctx.as_ref())
                    .with("kms:EncryptionAlgorithm", alg.as_str()),
            )
            .await?;
        Self::check_rsa_encryption_key(&key, alg, state::Operation::Encrypt)?;
        no_context_with_asymmetric(&ctx)?;
        if dry == Some(true) {
            return Err(dry_run());
        }
        let material = self.spec_material(&key)?;
        let blob = rsa_encrypt::encrypt(&material, key.key_usage, alg, plaintext.expose_secret())?;
        Ok(EncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            key_id: Some(key.arn),
            encryption_algorithm: Some(alg.to_string()),
        })
    }

    /// Decrypts a raw OAEP `blob` with the RSA key `key_id` names (shared by Decrypt and
    /// ReEncrypt). RSA ciphertexts carry no header, so the key must be named.
    #[allow(clippy::too_many_arguments)]
    async fn open_rsa(
        &self,
        caller: &Caller,
        (action, sop): (&str, state::Operation),
        blob: Option<Blob>,
        (key_member, key_id): (&str, Option<String>),
        alg: EncryptionAlgorithm,
        ctx: Option<EncryptionContextMap>,
        dry: bool,
    ) -> Result<(KeyRecord, Secret), KmsError> {
        let blob = require(blob, "CiphertextBlob")?;
        check_blob("CiphertextBlob", &blob, MAX_CIPHERTEXT)?;
        let Some(key_id) = key_id else {
            return Err(KmsError::Validation(format!(
                "{key_member} is required when decrypting with an asymmetric KMS key."
            )));
        };
        let key = self
            .usable_key_for(
                caller,
                &key_id,
                action,
                sop,
                None,
                Facts::none()
                    .context(ctx.as_ref())
                    .with("kms:EncryptionAlgorithm", alg.as_str()),
            )
            .await?;
        Self::check_rsa_encryption_key(&key, alg, sop)?;
        no_context_with_asymmetric(&ctx)?;
        if dry {
            return Err(dry_run());
        }
        let material = self.spec_material(&key)?;
        let plaintext = blocking(move || {
            rsa_encrypt::decrypt(&material, KeyUsage::EncryptDecrypt, alg, &blob.0)
        })
        .await?;
        Ok((key, plaintext))
    }

    /// Decrypt with an RSA key (`EncryptionAlgorithm` `RSAES_OAEP_SHA_1|256`).
    pub(super) async fn decrypt_rsa(
        &self,
        caller: &Caller,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        let alg = EncryptionAlgorithm::parse(
            req.encryption_algorithm
                .as_deref()
                .unwrap_or(SYMMETRIC_DEFAULT),
        )?;
        let (key, plaintext) = self
            .open_rsa(
                caller,
                (Operation::Decrypt.action(), state::Operation::Decrypt),
                req.ciphertext_blob,
                ("KeyId", req.key_id),
                alg,
                req.encryption_context,
                req.dry_run == Some(true),
            )
            .await?;
        Ok(DecryptResponse {
            key_id: Some(key.arn),
            plaintext: Some(SecretBlob(plaintext)),
            encryption_algorithm: Some(alg.to_string()),
        })
    }

    /// ReEncrypt where either side uses an RSA key (ops routes here when either algorithm
    /// is `RSAES_OAEP_*`); the plaintext never leaves the front.
    pub(super) async fn re_encrypt_rsa(
        &self,
        caller: &Caller,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, KmsError> {
        let dest_id = require(req.destination_key_id, "DestinationKeyId")?;
        let (src_rsa, dst_rsa) = (
            is_rsa_algorithm(&req.source_encryption_algorithm),
            is_rsa_algorithm(&req.destination_encryption_algorithm),
        );
        if !src_rsa {
            check_algorithm(
                "SourceEncryptionAlgorithm",
                &req.source_encryption_algorithm,
            )?;
        }
        if !dst_rsa {
            check_algorithm(
                "DestinationEncryptionAlgorithm",
                &req.destination_encryption_algorithm,
            )?;
        }
        let parse = |a: &Option<String>| {
            EncryptionAlgorithm::parse(a.as_deref().unwrap_or(SYMMETRIC_DEFAULT))
        };
        let (src_alg, dst_alg) = (
            parse(&req.source_encryption_algorithm)?,
            parse(&req.destination_encryption_algorithm)?,
        );
        let dry = req.dry_run == Some(true);
        let from = ("kms:ReEncryptFrom", state::Operation::ReEncryptFrom);
        let (source, plaintext) = if src_rsa {
            self.open_rsa(
                caller,
                from,
                req.ciphertext_blob,
                ("SourceKeyId", req.source_key_id),
                src_alg,
                req.source_encryption_context,
                false,
            )
            .await?
        } else {
            self.open_blob(
                caller,
                from.0,
                from.1,
                req.ciphertext_blob,
                req.source_key_id,
                req.source_encryption_context,
                &req.grant_tokens,
            )
            .await?
        };
        let to = state::Operation::ReEncryptTo;
        let dest = self
            .usable_key_for(
                caller,
                &dest_id,
                "kms:ReEncryptTo",
                to,
                None,
                Facts::none()
                    .context(req.destination_encryption_context.as_ref())
                    .tokens(&req.grant_tokens)
                    .with("kms:EncryptionAlgorithm", dst_alg.as_str()),
            )
            .await?;
        let blob = if dst_rsa {
            Self::check_rsa_encryption_key(&dest, dst_alg, to)?;
            no_context_with_asymmetric(&req.destination_encryption_context)?;
            if dry {
                return Err(dry_run());
            }
            let material = self.spec_material(&dest)?;
            rsa_encrypt::encrypt(
                &material,
                dest.key_usage,
                dst_alg,
                plaintext.expose_secret(),
            )?
        } else {
            check_symmetric(&dest, to)?;
            if dry {
                return Err(dry_run());
            }
            self.seal_under(
                &dest,
                plaintext.expose_secret(),
                &context(req.destination_encryption_context),
            )?
        };
        Ok(ReEncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            source_key_id: Some(source.arn),
            key_id: Some(dest.arn),
            source_encryption_algorithm: Some(src_alg.to_string()),
            destination_encryption_algorithm: Some(dst_alg.to_string()),
        })
    }

    async fn data_key_pair(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
        (op, sop): (Operation, state::Operation),
    ) -> Result<(KeyRecord, DataKeyPairSpec, DataKeyPair, Vec<u8>), KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let spec = DataKeyPairSpec::parse(&require(req.key_pair_spec, "KeyPairSpec")?)?;
        check_grant_tokens(&req.grant_tokens)?;
        no_recipient(&req.recipient)?;
        let key = self
            .usable_key(
                caller,
                &key_id,
                op,
                sop,
                None,
                Facts::none()
                    .context(req.encryption_context.as_ref())
                    .tokens(&req.grant_tokens)
                    .with("kms:DataKeyPairSpec", spec.as_str()),
            )
            .await?;
        check_symmetric(&key, sop)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let pair = blocking(move || data_key_pair::generate_data_key_pair(spec)).await?;
        let blob = self.seal_under(
            &key,
            pair.private_key_pkcs8().expose_secret(),
            &context(req.encryption_context),
        )?;
        Ok((key, spec, pair, blob))
    }

    /// GenerateDataKeyPair: a fresh pair of `KeyPairSpec`, the private key (PKCS#8) both in
    /// plaintext and sealed under the symmetric KMS key.
    pub async fn generate_data_key_pair(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        let (key, spec, pair, blob) = self
            .data_key_pair(
                caller,
                req,
                (
                    Operation::GenerateDataKeyPair,
                    state::Operation::GenerateDataKeyPair,
                ),
            )
            .await?;
        let (private, public) = pair.into_parts();
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: Some(Blob(blob)),
            private_key_plaintext: Some(SecretBlob(private)),
            public_key: Some(Blob(public)),
            key_id: Some(key.arn),
            key_pair_spec: Some(spec.to_string()),
        })
    }

    /// GenerateDataKeyPairWithoutPlaintext.
    pub async fn generate_data_key_pair_without_plaintext(
        &self,
        caller: &Caller,
        req: GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairWithoutPlaintextResponse, KmsError> {
        let (key, spec, pair, blob) = self
            .data_key_pair(
                caller,
                req,
                (
                    Operation::GenerateDataKeyPairWithoutPlaintext,
                    state::Operation::GenerateDataKeyPairWithoutPlaintext,
                ),
            )
            .await?;
        let (_private, public) = pair.into_parts();
        Ok(GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: Some(Blob(blob)),
            public_key: Some(Blob(public)),
            key_id: Some(key.arn),
            key_pair_spec: Some(spec.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::testing::{kms as test_kms, ADMIN, APP};

    fn caller(arn: &str) -> Caller {
        Caller::from_principal_arn(arn).unwrap()
    }

    fn blob(b: &[u8]) -> Option<SecretBlob> {
        Some(SecretBlob(keystore::crypto::Secret::new(b.to_vec())))
    }

    async fn create(kms: &Kms, spec: &str, usage: &str) -> KeyMetadata {
        kms.create_key(
            &caller(ADMIN),
            CreateKeyRequest {
                key_spec: Some(spec.into()),
                key_usage: Some(usage.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key_metadata
        .unwrap()
    }

    fn sign_req(key_id: &str, message: &[u8]) -> SignRequest {
        SignRequest {
            key_id: Some(key_id.into()),
            message: blob(message),
            signing_algorithm: Some("ECDSA_SHA_256".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn sign_verify_and_describe_over_a_real_storage_node() {
        let (kms, _node) = test_kms().await;
        let admin = caller(ADMIN);
        let meta = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
        assert_eq!(meta.key_spec.as_deref(), Some("ECC_NIST_P256"));
        assert_eq!(
            meta.signing_algorithms,
            Some(vec!["ECDSA_SHA_256".to_string()])
        );
        assert_eq!(meta.encryption_algorithms, None);
        let key_id = meta.key_id.unwrap();
        let signed = kms.sign(&admin, sign_req(&key_id, b"m")).await.unwrap();
        let signature = signed.signature.unwrap();
        let verify = |sig: Blob, message: &[u8]| VerifyRequest {
            key_id: Some(key_id.clone()),
            message: blob(message),
            signature: Some(sig),
            signing_algorithm: Some("ECDSA_SHA_256".into()),
            ..Default::default()
        };
        let ok = kms.verify(&admin, verify(signature.clone(), b"m")).await;
        assert_eq!(ok.unwrap().signature_valid, Some(true));
        let bad = kms.verify(&admin, verify(signature, b"other")).await;
        assert_eq!(bad.unwrap_err().aws_type(), "KMSInvalidSignatureException");
        let dry = SignRequest {
            dry_run: Some(true),
            ..sign_req(&key_id, b"m")
        };
        let e = kms.sign(&admin, dry).await.unwrap_err();
        assert_eq!(e.aws_type(), "DryRunOperationException");
    }

    #[tokio::test]
    async fn callers_without_permission_are_denied_kms_sign() {
        let (kms, _node) = test_kms().await;
        let key_id = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY")
            .await
            .key_id
            .unwrap();
        let e = kms
            .sign(&caller(APP), sign_req(&key_id, b"m"))
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
        assert!(e.to_string().contains("kms:Sign"), "{e}");
    }

    #[tokio::test]
    async fn symmetric_operations_refuse_other_keys_and_macs_need_hmac_keys() {
        let (kms, _node) = test_kms().await;
        let admin = caller(ADMIN);
        let hmac = create(&kms, "HMAC_256", "GENERATE_VERIFY_MAC").await;
        assert_eq!(hmac.mac_algorithms, Some(vec!["HMAC_SHA_256".to_string()]));
        let hmac = hmac.key_id.unwrap();
        let e = kms
            .generate_data_key(
                &admin,
                GenerateDataKeyRequest {
                    key_id: Some(hmac.clone()),
                    number_of_bytes: Some(32),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "InvalidKeyUsageException");
        let mac = kms
            .generate_mac(
                &admin,
                GenerateMacRequest {
                    key_id: Some(hmac.clone()),
                    message: blob(b"m"),
                    mac_algorithm: Some("HMAC_SHA_256".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(mac.mac.unwrap().0.len(), 32);
        let e = kms
            .get_public_key(
                &admin,
                GetPublicKeyRequest {
                    key_id: Some(hmac),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "UnsupportedOperationException");
    }

    #[test]
    fn create_key_spec_and_usage_follow_aws() {
        assert_eq!(
            spec_and_usage("ECC_NIST_P256", "KEY_AGREEMENT", true).unwrap(),
            (KeySpec::EccNistP256, KeyUsage::KeyAgreement)
        );
        assert_eq!(
            spec_and_usage("HMAC_256", "ENCRYPT_DECRYPT", true)
                .unwrap_err()
                .aws_type(),
            "ValidationException"
        );
        assert_eq!(
            spec_and_usage("ECC_SECG_P256K1", "KEY_AGREEMENT", true)
                .unwrap_err()
                .aws_type(),
            "ValidationException"
        );
        assert_eq!(
            spec_and_usage("SM2", "SIGN_VERIFY", true)
                .unwrap_err()
                .aws_type(),
            "UnsupportedOperationException"
        );
        // KeyUsage may be omitted only for symmetric keys, even where the default would fit.
        let e = spec_and_usage("RSA_2048", "ENCRYPT_DECRYPT", false).unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");
        assert!(e.to_string().contains("KeySpec is RSA_2048"), "{e}");
        assert_eq!(
            spec_and_usage("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", false).unwrap(),
            (KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt)
        );
    }

    #[test]
    fn algorithm_lists_are_absent_when_empty() {
        assert_eq!(wire_list::<SigningAlgorithm>(&[]), None);
        assert_eq!(
            wire_list(&[SigningAlgorithm::EcdsaSha256]),
            Some(vec!["ECDSA_SHA_256".to_string()])
        );
    }

    #[test]
    fn only_rsa_algorithms_take_the_rsa_path() {
        assert!(is_rsa_algorithm(&Some("RSAES_OAEP_SHA_1".into())));
        assert!(is_rsa_algorithm(&Some("RSAES_OAEP_SHA_256".into())));
        assert!(!is_rsa_algorithm(&Some("SYMMETRIC_DEFAULT".into())));
        assert!(!is_rsa_algorithm(&Some("SM2PKE".into())));
        assert!(!is_rsa_algorithm(&None));
    }

    #[test]
    fn secrets_in_new_shapes_are_redacted_in_debug() {
        let r = GenerateDataKeyPairResponse {
            private_key_plaintext: Some(SecretBlob(keystore::crypto::Secret::new(
                b"PRIVATE".to_vec(),
            ))),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("PRIVATE"));
        let r = SignRequest {
            message: Some(SecretBlob(keystore::crypto::Secret::new(b"MSG".to_vec()))),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("MSG"));
    }
}
