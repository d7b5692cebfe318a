//! Request and response shapes of the AWS KMS JSON 1.1 protocol, member for member as in
//! botocore's `kms/2014-11-01/service-2.json`.
//!
//! Conventions of the protocol: member names in PascalCase; blobs as base64 strings;
//! timestamps as epoch seconds (a JSON number, fractional allowed). Unknown members are
//! ignored, as AWS's services do, so newer clients keep working. Required members are
//! `Option`s here and checked by the operations, so that a missing one becomes AWS's
//! `ValidationException` ("Value null at 'keyId' ...") rather than a parse error.
//!
//! Plaintext-carrying members use [`SecretBlob`]: zeroized on drop, redacted in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use keystore::crypto::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::errors::KmsError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A non-secret binary member (ciphertext blobs), base64 on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map(Blob)
            // No echo of the input: it may be anything the caller sent.
            .map_err(|_| serde::de::Error::custom("blob member is not valid base64"))
    }
}

/// A secret binary member (plaintexts, data keys), base64 on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBlob(pub Secret);

impl SecretBlob {
    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBlob(<redacted {} bytes>)", self.0.len())
    }
}

impl Serialize for SecretBlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The encoded copy is secret too: hold it in a `Secret` so it is wiped on drop.
        let encoded = Secret::new(B64.encode(self.0.expose_secret()).into_bytes());
        s.serialize_str(std::str::from_utf8(encoded.expose_secret()).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for SecretBlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Secret::new(String::deserialize(d)?.into_bytes());
        B64.decode(s.expose_secret())
            .map(|b| SecretBlob(Secret::new(b)))
            .map_err(|_| serde::de::Error::custom("blob member is not valid base64"))
    }
}

/// Seconds since the Unix epoch (AWS JSON timestamps).
pub type EpochSeconds = f64;

/// Converts a record timestamp (milliseconds) to the wire form.
pub fn epoch_seconds(millis: u64) -> EpochSeconds {
    millis as f64 / 1000.0
}

/// Parses a request body into `T`. Type mismatches and broken JSON are
/// `SerializationException`; the message gives a position, never the offending value.
pub fn parse_request<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, KmsError> {
    // AWS accepts an empty body for operations without required members.
    let body = if body.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}".as_slice()
    } else {
        body
    };
    // serde would accept a JSON array for a struct; the protocol only has objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(KmsError::Serialization(
            "The request body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "Unexpected value type or malformed member",
            serde_json::error::Category::Eof => "Unexpected end of request body",
            _ => "Malformed JSON",
        };
        KmsError::Serialization(format!("{what} at line {} column {}", e.line(), e.column()))
    })
}

/// Serializes a response.
pub fn to_body<T: Serialize>(v: &T) -> Result<Vec<u8>, KmsError> {
    serde_json::to_vec(v).map_err(|_| KmsError::internal())
}

/// `Tag`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// 1..=128 characters.
    pub tag_key: Option<String>,
    /// 0..=256 characters.
    pub tag_value: Option<String>,
}

/// Encryption context on the wire.
pub type EncryptionContextMap = BTreeMap<String, String>;

macro_rules! shape {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
// iam.rs declares its shapes with the same macro.
pub(crate) use shape;

shape!(
    /// `CreateKeyRequest`.
    CreateKeyRequest {
        /// Key policy JSON.
        policy: String,
        /// Description.
        description: String,
        /// `ENCRYPT_DECRYPT` only for now.
        key_usage: String,
        /// Legacy spelling of `KeySpec`.
        customer_master_key_spec: String,
        /// `SYMMETRIC_DEFAULT` only for now.
        key_spec: String,
        /// `AWS_KMS` only for now.
        origin: String,
        /// Not supported.
        custom_key_store_id: String,
        /// Accepted and ignored.
        bypass_policy_lockout_safety_check: bool,
        /// Tags.
        tags: Vec<Tag>,
        /// A multi-region primary key (`mrk-` id).
        multi_region: bool,
        /// Not supported.
        xks_key_id: String,
    }
);

shape!(
    /// `KeyMetadata`.
    KeyMetadata {
        /// Owning account.
        #[serde(rename = "AWSAccountId")]
        aws_account_id: String,
        /// Key id.
        key_id: String,
        /// Key ARN.
        arn: String,
        /// Creation date.
        creation_date: EpochSeconds,
        /// State is Enabled.
        enabled: bool,
        /// Description.
        description: String,
        /// `ENCRYPT_DECRYPT`.
        key_usage: String,
        /// Key state.
        key_state: String,
        /// When a pending deletion happens.
        deletion_date: EpochSeconds,
        /// `AWS_KMS` / `EXTERNAL`.
        origin: String,
        /// `CUSTOMER`.
        key_manager: String,
        /// Legacy spec.
        customer_master_key_spec: String,
        /// Spec.
        key_spec: String,
        /// Supported algorithms.
        encryption_algorithms: Vec<String>,
        /// Signing algorithms (`SIGN_VERIFY` keys).
        signing_algorithms: Vec<String>,
        /// MAC algorithms (`GENERATE_VERIFY_MAC` keys).
        mac_algorithms: Vec<String>,
        /// Key agreement algorithms (`KEY_AGREEMENT` keys).
        key_agreement_algorithms: Vec<String>,
        /// Multi-region key.
        multi_region: bool,
        /// Primary and replicas of a multi-region key, as this region knows them.
        multi_region_configuration: MultiRegionConfiguration,
        /// Waiting period of a pending deletion.
        pending_deletion_window_in_days: u32,
        /// When imported key material expires (origin `EXTERNAL`).
        valid_to: EpochSeconds,
        /// `KEY_MATERIAL_EXPIRES` / `KEY_MATERIAL_DOES_NOT_EXPIRE` (origin `EXTERNAL`).
        expiration_model: String,
    }
);

shape!(
    /// `MultiRegionKey`: one key of a multi-region key family.
    MultiRegionKey {
        /// Its ARN (in its region).
        arn: String,
        /// Its region.
        region: String,
    }
);

shape!(
    /// `MultiRegionConfiguration`.
    MultiRegionConfiguration {
        /// `PRIMARY` or `REPLICA`.
        multi_region_key_type: String,
        /// The primary key.
        primary_key: MultiRegionKey,
        /// Every replica key.
        replica_keys: Vec<MultiRegionKey>,
    }
);

shape!(
    /// `CreateKeyResponse`.
    CreateKeyResponse {
        /// The new key.
        key_metadata: KeyMetadata,
    }
);

shape!(
    /// `DescribeKeyRequest`.
    DescribeKeyRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Accepted, ignored (no grants yet).
        grant_tokens: Vec<String>,
    }
);

shape!(
    /// `DescribeKeyResponse`.
    DescribeKeyResponse {
        /// The key.
        key_metadata: KeyMetadata,
    }
);

shape!(
    /// `ListKeysRequest`.
    ListKeysRequest {
        /// 1..=1000, default 100.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
    }
);

shape!(
    /// `KeyListEntry`.
    KeyListEntry {
        /// Key id.
        key_id: String,
        /// Key ARN.
        key_arn: String,
    }
);

/// `ListKeysResponse`. `Truncated` is always present, as AWS sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    /// This page.
    pub keys: Vec<KeyListEntry>,
    /// Set when `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More pages remain.
    pub truncated: bool,
}

shape!(
    /// `EnableKeyRequest`, `DisableKeyRequest`, `CancelKeyDeletionRequest`.
    KeyIdRequest {
        /// Key id or key ARN.
        key_id: String,
    }
);

/// An empty response (`{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

shape!(
    /// `UpdateKeyDescriptionRequest`.
    UpdateKeyDescriptionRequest {
        /// Key id or key ARN.
        key_id: String,
        /// New description.
        description: String,
    }
);

shape!(
    /// `ScheduleKeyDeletionRequest`.
    ScheduleKeyDeletionRequest {
        /// Key id or key ARN.
        key_id: String,
        /// 7..=30, default 30.
        pending_window_in_days: i64,
    }
);

shape!(
    /// `ScheduleKeyDeletionResponse`.
    ScheduleKeyDeletionResponse {
        /// Key ARN.
        key_id: String,
        /// When the key will be deleted.
        deletion_date: EpochSeconds,
        /// `PendingDeletion`.
        key_state: String,
        /// The waiting period.
        pending_window_in_days: u32,
    }
);

shape!(
    /// `CancelKeyDeletionResponse`.
    CancelKeyDeletionResponse {
        /// Key ARN.
        key_id: String,
    }
);

shape!(
    /// `CreateAliasRequest`, `UpdateAliasRequest`.
    AliasRequest {
        /// `alias/...`.
        alias_name: String,
        /// Key id or key ARN.
        target_key_id: String,
    }
);

shape!(
    /// `DeleteAliasRequest`.
    DeleteAliasRequest {
        /// `alias/...`.
        alias_name: String,
    }
);

shape!(
    /// `ListAliasesRequest`.
    ListAliasesRequest {
        /// Only aliases of this key.
        key_id: String,
        /// 1..=100 (larger values are capped), default 50.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
    }
);

shape!(
    /// `AliasListEntry`.
    AliasListEntry {
        /// `alias/...`.
        alias_name: String,
        /// Alias ARN.
        alias_arn: String,
        /// Key id.
        target_key_id: String,
        /// Creation date.
        creation_date: EpochSeconds,
        /// Last time the target changed.
        last_updated_date: EpochSeconds,
    }
);

/// `ListAliasesResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesResponse {
    /// This page.
    pub aliases: Vec<AliasListEntry>,
    /// Set when `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More pages remain.
    pub truncated: bool,
}

shape!(
    /// `TagResourceRequest`.
    TagResourceRequest {
        /// Key id or key ARN.
        key_id: String,
        /// Tags to add or overwrite.
        tags: Vec<Tag>,
    }
);

shape!(
    /// `UntagResourceRequest`.
    UntagResourceRequest {
        /// Key id or key ARN.
        key_id: String,
        /// Tag keys to remove.
        tag_keys: Vec<String>,
    }
);

shape!(
    /// `ListResourceTagsRequest`.
    ListResourceTagsRequest {
        /// Key id or key ARN.
        key_id: String,
        /// 1..=50, default 50.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
    }
);

/// `ListResourceTagsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsResponse {
    /// This page.
    pub tags: Vec<Tag>,
    /// Set when `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More pages remain.
    pub truncated: bool,
}

shape!(
    /// `EncryptRequest`.
    EncryptRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// 1..=4096 bytes.
        plaintext: SecretBlob,
        /// Bound as AAD.
        encryption_context: EncryptionContextMap,
        /// Accepted, ignored (no grants yet).
        grant_tokens: Vec<String>,
        /// `SYMMETRIC_DEFAULT`.
        encryption_algorithm: String,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `EncryptResponse`.
    EncryptResponse {
        /// The ciphertext.
        ciphertext_blob: Blob,
        /// Key ARN.
        key_id: String,
        /// `SYMMETRIC_DEFAULT`.
        encryption_algorithm: String,
    }
);

shape!(
    /// `DecryptRequest`.
    DecryptRequest {
        /// The ciphertext.
        ciphertext_blob: Blob,
        /// Must equal the one used to encrypt.
        encryption_context: EncryptionContextMap,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// If given, must name the key that made the ciphertext.
        key_id: String,
        /// `SYMMETRIC_DEFAULT`.
        encryption_algorithm: String,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `DecryptResponse`.
    DecryptResponse {
        /// Key ARN.
        key_id: String,
        /// The plaintext.
        plaintext: SecretBlob,
        /// `SYMMETRIC_DEFAULT`.
        encryption_algorithm: String,
    }
);

shape!(
    /// `ReEncryptRequest`.
    ReEncryptRequest {
        /// The ciphertext.
        ciphertext_blob: Blob,
        /// Context it was made with.
        source_encryption_context: EncryptionContextMap,
        /// If given, must name the key that made the ciphertext.
        source_key_id: String,
        /// Key for the new ciphertext.
        destination_key_id: String,
        /// Context for the new ciphertext.
        destination_encryption_context: EncryptionContextMap,
        /// `SYMMETRIC_DEFAULT`.
        source_encryption_algorithm: String,
        /// `SYMMETRIC_DEFAULT`.
        destination_encryption_algorithm: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `ReEncryptResponse`.
    ReEncryptResponse {
        /// The new ciphertext.
        ciphertext_blob: Blob,
        /// Source key ARN.
        source_key_id: String,
        /// Destination key ARN.
        key_id: String,
        /// `SYMMETRIC_DEFAULT`.
        source_encryption_algorithm: String,
        /// `SYMMETRIC_DEFAULT`.
        destination_encryption_algorithm: String,
    }
);

shape!(
    /// `GenerateDataKeyRequest` and `GenerateDataKeyWithoutPlaintextRequest`.
    GenerateDataKeyRequest {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Bound as AAD.
        encryption_context: EncryptionContextMap,
        /// 1..=1024 (exclusive with `KeySpec`).
        number_of_bytes: i64,
        /// `AES_256` or `AES_128` (exclusive with `NumberOfBytes`).
        key_spec: String,
        /// Accepted, ignored.
        grant_tokens: Vec<String>,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `GenerateDataKeyResponse`.
    GenerateDataKeyResponse {
        /// The data key encrypted under the KMS key.
        ciphertext_blob: Blob,
        /// The data key.
        plaintext: SecretBlob,
        /// Key ARN.
        key_id: String,
    }
);

shape!(
    /// `GenerateDataKeyWithoutPlaintextResponse`.
    GenerateDataKeyWithoutPlaintextResponse {
        /// The data key encrypted under the KMS key.
        ciphertext_blob: Blob,
        /// Key ARN.
        key_id: String,
    }
);

shape!(
    /// `GenerateRandomRequest`.
    GenerateRandomRequest {
        /// 1..=1024.
        number_of_bytes: i64,
        /// Not supported.
        custom_key_store_id: String,
    }
);

shape!(
    /// `GenerateRandomResponse`.
    GenerateRandomResponse {
        /// Random bytes.
        plaintext: SecretBlob,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_request_parses_aws_json_and_ignores_unknown_members() {
        let r: EncryptRequest = parse_request(
            br#"{"KeyId":"alias/a","Plaintext":"aGVsbG8=","EncryptionContext":{"k":"v"},"SomethingNew":1}"#,
        )
        .unwrap();
        assert_eq!(r.key_id.as_deref(), Some("alias/a"));
        assert_eq!(r.plaintext.unwrap().expose_secret(), b"hello");
        assert_eq!(r.encryption_context.unwrap()["k"], "v");
    }

    #[test]
    fn bad_base64_is_a_serialization_error_without_echo() {
        let e = parse_request::<EncryptRequest>(br#"{"KeyId":"k","Plaintext":"s3cr3t!!"}"#)
            .unwrap_err();
        assert_eq!(e.aws_type(), "SerializationException");
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn wrong_types_and_broken_json_are_serialization_errors() {
        for body in [
            br#"{"NumberOfBytes":"32"}"#.as_slice(),
            br#"{"NumberOfBytes":32"#,
            br#"[]"#,
            br#"nonsense"#,
            b"\xff\xfe",
        ] {
            let e = parse_request::<GenerateRandomRequest>(body).unwrap_err();
            assert_eq!(e.aws_type(), "SerializationException", "{body:?}");
        }
    }

    #[test]
    fn empty_body_is_an_empty_request() {
        assert_eq!(
            parse_request::<ListKeysRequest>(b"").unwrap(),
            ListKeysRequest::default()
        );
    }

    #[test]
    fn responses_use_pascal_case_base64_and_epoch_seconds() {
        let r = EncryptResponse {
            ciphertext_blob: Some(Blob(vec![1, 2, 3])),
            key_id: Some("arn".into()),
            encryption_algorithm: Some("SYMMETRIC_DEFAULT".into()),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"CiphertextBlob": "AQID", "KeyId": "arn", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        );
        let m = KeyMetadata {
            aws_account_id: Some("111122223333".into()),
            creation_date: Some(epoch_seconds(1_700_000_000_500)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"AWSAccountId": "111122223333", "CreationDate": 1_700_000_000.5})
        );
        let l = ListKeysResponse::default();
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"Keys": [], "Truncated": false})
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let r = DecryptResponse {
            plaintext: Some(SecretBlob(Secret::new(b"top secret".to_vec()))),
            ..Default::default()
        };
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("top secret") && !dbg.contains("116"), "{dbg}");
    }
}

// ---- key policies (access control) ------------------------------------------------------

shape!(
    /// `PutKeyPolicyRequest`.
    PutKeyPolicyRequest {
        /// Key id or key ARN.
        key_id: String,
        /// `default` (optional since 2024).
        policy_name: String,
        /// The new key policy document.
        policy: String,
        /// Skip the lockout safety check.
        bypass_policy_lockout_safety_check: bool,
    }
);

shape!(
    /// `GetKeyPolicyRequest`.
    GetKeyPolicyRequest {
        /// Key id or key ARN.
        key_id: String,
        /// `default`.
        policy_name: String,
    }
);

shape!(
    /// `GetKeyPolicyResponse`.
    GetKeyPolicyResponse {
        /// The key policy document.
        policy: String,
        /// `default`.
        policy_name: String,
    }
);

shape!(
    /// `ListKeyPoliciesRequest`.
    ListKeyPoliciesRequest {
        /// Key id or key ARN.
        key_id: String,
        /// 1..=1000.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
    }
);

shape!(
    /// `ListKeyPoliciesResponse`.
    ListKeyPoliciesResponse {
        /// Always `["default"]`.
        policy_names: Vec<String>,
        /// Set when `truncated`.
        next_marker: String,
        /// More pages remain.
        truncated: bool,
    }
);

// ---- grants -------------------------------------------------------------------------------

/// `GrantConstraints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantConstraintsShape {
    /// The request's encryption context must contain these pairs (and may have more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_subset: Option<EncryptionContextMap>,
    /// The request's encryption context must be exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_equals: Option<EncryptionContextMap>,
}

shape!(
    /// `CreateGrantRequest`.
    CreateGrantRequest {
        /// Key id or key ARN.
        key_id: String,
        /// Who may use the grant.
        grantee_principal: String,
        /// Who may retire it.
        retiring_principal: String,
        /// `Decrypt`, `Encrypt`, ...
        operations: Vec<String>,
        /// Encryption context constraints.
        constraints: GrantConstraintsShape,
        /// Grant tokens of the request.
        grant_tokens: Vec<String>,
        /// Makes CreateGrant idempotent.
        name: String,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `CreateGrantResponse`.
    CreateGrantResponse {
        /// Usable at once, before the grant has propagated.
        grant_token: String,
        /// 64 hex digits.
        grant_id: String,
    }
);

shape!(
    /// `ListGrantsRequest`.
    ListGrantsRequest {
        /// 1..=100, default 50.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
        /// Key id or key ARN.
        key_id: String,
        /// Only this grant.
        grant_id: String,
        /// Only grants for this grantee.
        grantee_principal: String,
    }
);

shape!(
    /// `ListRetirableGrantsRequest`.
    ListRetirableGrantsRequest {
        /// 1..=100, default 50.
        limit: i64,
        /// From a previous `NextMarker`.
        marker: String,
        /// Grants this principal may retire.
        retiring_principal: String,
    }
);

/// `GrantListEntry`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantListEntry {
    /// Key id (AWS gives the id, not the ARN).
    pub key_id: String,
    /// 64 hex digits.
    pub grant_id: String,
    /// Name, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Epoch seconds.
    pub creation_date: f64,
    /// Grantee.
    pub grantee_principal: String,
    /// Retiring principal, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    /// `arn:aws:iam::<account>:root` of the key's account.
    pub issuing_account: String,
    /// The operations.
    pub operations: Vec<String>,
    /// Constraints, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<GrantConstraintsShape>,
}

/// `ListGrantsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGrantsResponse {
    /// This page.
    pub grants: Vec<GrantListEntry>,
    /// Set when `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More pages remain.
    pub truncated: bool,
}

shape!(
    /// `RetireGrantRequest`.
    RetireGrantRequest {
        /// The token CreateGrant returned.
        grant_token: String,
        /// Key ARN (with `GrantId`).
        key_id: String,
        /// Grant id (with `KeyId`).
        grant_id: String,
        /// Check permissions only.
        dry_run: bool,
    }
);

shape!(
    /// `RevokeGrantRequest`.
    RevokeGrantRequest {
        /// Key id or key ARN.
        key_id: String,
        /// Grant id.
        grant_id: String,
        /// Check permissions only.
        dry_run: bool,
    }
);
